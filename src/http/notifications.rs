//! `/notifications`: what each customer was told, oldest first.

use super::status::ByCustomer;
use super::who::Who;
use super::ApiError;
use crate::node::Node;
use actix_web::web::{self, Data, Query, ServiceConfig};
use actix_web::HttpResponse;
use serde::Serialize;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/notifications", web::get().to(list));
}

#[derive(Serialize)]
struct Listing {
    customer: String,
    notifications: Vec<crate::domain::Notification>,
}

async fn list(node: Data<Node>, who: Who, query: Query<ByCustomer>) -> Result<HttpResponse, ApiError> {
    let notifications = who.on(&node).notifications(&query.customer).await?;
    Ok(HttpResponse::Ok().json(Listing { customer: query.into_inner().customer, notifications }))
}
