//! `/deliveries`: the couriers' and checkpoints' reports, leg by leg.

use super::body::JsonObject;
use super::who::Who;
use super::ApiError;
use crate::node::bodies::Delivery;
use crate::node::Node;
use actix_web::web::{Data, Path};
use actix_web::{get, post, HttpResponse};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(get_delivery)
        .service(complete_delivery)
        .service(start_leg)
        .service(complete_leg)
        .service(reject_leg);
}

/// The order's delivery: its legs and where it is.
#[utoipa::path(tag = "deliveries", params(("order_id" = String, Path, description = "The order's id")), responses((status = 200, description = "The delivery", body = Delivery)))]
#[get("/deliveries/{order_id}")]
async fn get_delivery(node: Data<Node>, who: Who, order_id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).delivery(&order_id).await?))
}

/// Completes whichever leg is under way.
#[utoipa::path(tag = "deliveries", params(("order_id" = String, Path, description = "The order's id")), responses((status = 200, description = "The delivery after the step", body = Delivery)))]
#[post("/deliveries/{order_id}/complete")]
async fn complete_delivery(
    node: Data<Node>,
    who: Who,
    order_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).complete_delivery(&order_id).await?))
}

/// The party starts a leg (a driver sets off, customs opens the parcel).
#[utoipa::path(tag = "deliveries", params(("order_id" = String, Path, description = "The order's id"), ("leg" = String, Path, description = "The leg's name in the workflow (`pickup`, `customs`, `ride`)")), responses((status = 200, description = "The delivery after the step", body = Delivery)))]
#[post("/deliveries/{order_id}/legs/{leg}/start")]
async fn start_leg(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, leg) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).start_leg(&order_id, &leg).await?))
}

/// The party completes a leg; after the last, the order is delivered.
#[utoipa::path(tag = "deliveries", params(("order_id" = String, Path, description = "The order's id"), ("leg" = String, Path, description = "The leg's name in the workflow (`pickup`, `customs`, `ride`)")), responses((status = 200, description = "The delivery after the step", body = Delivery)))]
#[post("/deliveries/{order_id}/legs/{leg}/complete")]
async fn complete_leg(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, leg) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).complete_leg(&order_id, &leg).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RejectLeg {
    /// Why, in the party's words (customs: "prohibited item").
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

/// The party rejects at a leg, with a reason; the order is turned down and refunded.
#[utoipa::path(tag = "deliveries", params(("order_id" = String, Path, description = "The order's id"), ("leg" = String, Path, description = "The leg's name in the workflow (`pickup`, `customs`, `ride`)")), request_body = RejectLeg, responses((status = 200, description = "The delivery after the step", body = Delivery)))]
#[post("/deliveries/{order_id}/legs/{leg}/reject")]
async fn reject_leg(
    node: Data<Node>,
    who: Who,
    path: Path<(String, String)>,
    body: JsonObject<RejectLeg>,
) -> Result<HttpResponse, ApiError> {
    let (order_id, leg) = path.into_inner();
    Ok(HttpResponse::Ok().json(who.on(&node).reject_leg(&order_id, &leg, &body.reason).await?))
}
