//! `/deliveries`: the couriers' and checkpoints' reports, leg by leg.

use super::body::JsonObject;
use super::who::Who;
use super::ApiError;
use crate::node::Node;
use actix_web::web::{self, Data, Path, ServiceConfig};
use actix_web::HttpResponse;
use serde::Deserialize;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/deliveries/{order_id}", web::get().to(get))
        .route("/deliveries/{order_id}/complete", web::post().to(complete_current))
        .route("/deliveries/{order_id}/legs/{leg}/start", web::post().to(start))
        .route("/deliveries/{order_id}/legs/{leg}/complete", web::post().to(complete))
        .route("/deliveries/{order_id}/legs/{leg}/reject", web::post().to(reject));
}

async fn get(node: Data<Node>, who: Who, order_id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).delivery(&order_id).await?))
}

/// Completes whichever leg is under way.
async fn complete_current(
    node: Data<Node>,
    who: Who,
    order_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).complete_delivery(&order_id).await?))
}

async fn start(node: Data<Node>, who: Who, path: Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (order_id, leg) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).start_leg(&order_id, &leg).await?))
}

async fn complete(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, leg) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).complete_leg(&order_id, &leg).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    reason: String,
}

async fn reject(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
    body: JsonObject<RejectBody>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, leg) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).reject_leg(&order_id, &leg, &body.reason).await?))
}
