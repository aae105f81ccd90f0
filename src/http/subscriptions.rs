//! `/subscriptions`: webhooks that receive notifications as they happen.

use super::body::JsonObject;
use super::who::Who;
use super::ApiError;
use crate::domain::subscription::NewSubscription;
use crate::node::Node;
use actix_web::http::header;
use actix_web::web::{self, Data, Path, ServiceConfig};
use actix_web::HttpResponse;
use serde_json::json;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/subscriptions", web::post().to(subscribe))
        .route("/subscriptions", web::get().to(list))
        .route("/subscriptions/{id}", web::delete().to(unsubscribe));
}

async fn subscribe(
    node: Data<Node>,
    who: Who,
    body: JsonObject<NewSubscription>,
) -> Result<HttpResponse, ApiError> {
    let subscription = who.on(&node).subscribe(body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/subscriptions/{}", subscription.id)))
        .json(subscription))
}

async fn list(node: Data<Node>, who: Who) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(json!({ "subscriptions": who.on(&node).subscriptions().await? })))
}

async fn unsubscribe(node: Data<Node>, who: Who, id: Path<u64>) -> Result<HttpResponse, ApiError> {
    who.on(&node).unsubscribe(id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
