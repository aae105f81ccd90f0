//! `/status`: the CQRS read side, served from the projection.

use super::ApiError;
use crate::Node;
use actix_web::web::{self, Data, Path, Query, ServiceConfig};
use actix_web::HttpResponse;
use serde::{Deserialize, Serialize};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/status", web::get().to(list)).route("/status/{order_id}", web::get().to(get));
}

async fn get(node: Data<Node>, order_id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(node.status(&order_id).await?))
}

#[derive(Deserialize)]
pub(super) struct ByCustomer {
    pub customer: String,
}

#[derive(Serialize)]
struct Listing<T> {
    customer: String,
    orders: Vec<T>,
}

async fn list(node: Data<Node>, query: Query<ByCustomer>) -> Result<HttpResponse, ApiError> {
    let orders = node.statuses(&query.customer).await?;
    Ok(HttpResponse::Ok().json(Listing { customer: query.into_inner().customer, orders }))
}
