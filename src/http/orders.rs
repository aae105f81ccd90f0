//! `/orders`: placing orders and the customer's commands on them.

use super::body::{JsonObject, OptionalJsonObject};
use super::who::Who;
use super::ApiError;
use crate::actors::order::OrderReceipt;
use crate::domain::OrderRequest;
use crate::error::{NodeError, Refused};
use crate::node::bodies;
use crate::node::Node;
use actix_web::http::header;
use actix_web::web::{Data, Path};
use actix_web::{get, post, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

/// Header a client sets to make `POST /orders` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(place_order)
        .service(get_order)
        .service(cancel_order)
        .service(seller_cancel_order)
        .service(confirm_receipt)
        .service(accept_order)
        .service(reject_order);
}

/// `by` names the party on an open node; with keys, the principal acts
/// as itself and `by` may only repeat it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AcceptOrder {
    /// The accepting party's name (a driver's unit, the hotel).
    #[serde(default)]
    by: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct RejectOrder {
    #[serde(default)]
    by: Option<String>,
    /// Why, in the party's words; shown to the customer.
    #[schema(min_length = 1, max_length = 500, pattern = r"\S")]
    reason: String,
}

/// A party accepts the order (a hotel confirms, a driver takes the call).
#[utoipa::path(tag = "orders", params(("id" = String, Path, description = "The order's id")), request_body(content = Option<AcceptOrder>, description = "Optional; `by` only on an open node"), responses((status = 200, description = "The order after the step", body = bodies::Order)))]
#[post("/orders/{id}/accept")]
async fn accept_order(
    node: Data<Node>,
    who: Who,
    id: Path<String>,
    body: OptionalJsonObject<AcceptOrder>,
) -> Result<HttpResponse, ApiError> {
    let by = body.0.as_ref().and_then(|b| b.by.as_deref());
    Ok(HttpResponse::Ok().json(who.on(&node).accept_order(&id, by).await?))
}

/// A party turns the order down, with a reason; a paid order is refunded.
#[utoipa::path(tag = "orders", params(("id" = String, Path, description = "The order's id")), request_body = RejectOrder, responses((status = 200, description = "The order after the step", body = bodies::Order)))]
#[post("/orders/{id}/reject")]
async fn reject_order(
    node: Data<Node>,
    who: Who,
    id: Path<String>,
    body: JsonObject<RejectOrder>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).reject_order(&id, body.by.as_deref(), &body.reason).await?))
}

/// Places an order. It is acknowledged (201) only once it is durable.
#[utoipa::path(
    tag = "orders",
    request_body = crate::domain::OrderRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes the request safe to retry: the same key with the same body answers the first receipt (`Idempotent-Replayed: true`); with another body, 422")),
    responses((
        status = 201,
        description = "Placed (or the stored answer to the same Idempotency-Key)",
        body = OrderReceipt,
        headers(
            ("Location" = String, description = "The order's URL"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the stored answer to an earlier request")
        )
    ))
)]
#[post("/orders")]
async fn place_order(
    node: Data<Node>,
    who: Who,
    req: HttpRequest,
    body: JsonObject<OrderRequest>,
) -> Result<HttpResponse, ApiError> {
    let key = match req.headers().get(IDEMPOTENCY_KEY) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| {
                    NodeError::Refused(Refused::Invalid("Idempotency-Key must be visible ASCII".into()))
                })?
                .to_owned(),
        ),
        None => None,
    };
    let receipt = who.on(&node).place_order(body.into_inner(), key).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("/orders/{}", receipt.id)));
    if receipt.replayed {
        response.insert_header(("Idempotent-Replayed", "true"));
    }
    Ok(response.json(receipt))
}

/// The order: lines, payment, units, delivery, what it was told.
#[utoipa::path(tag = "orders", params(("id" = String, Path, description = "The order's id")), responses((status = 200, description = "The order", body = bodies::Order)))]
#[get("/orders/{id}")]
async fn get_order(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).order(&id).await?))
}

/// The customer cancels; what was paid is refunded and what was held is released.
#[utoipa::path(tag = "orders", params(("id" = String, Path, description = "The order's id")), responses((status = 200, description = "The order after the step", body = bodies::Order)))]
#[post("/orders/{id}/cancel")]
async fn cancel_order(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).cancel_order(&id).await?))
}

/// The seller cancels an order it cannot fill.
#[utoipa::path(tag = "orders", params(("id" = String, Path, description = "The order's id")), responses((status = 200, description = "The order after the step", body = bodies::Order)))]
#[post("/orders/{id}/seller-cancel")]
async fn seller_cancel_order(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).seller_cancel_order(&id).await?))
}

/// The customer confirms receipt (or checks out of a stay): the order completes.
#[utoipa::path(tag = "orders", params(("id" = String, Path, description = "The order's id")), responses((status = 200, description = "The order after the step", body = bodies::Order)))]
#[post("/orders/{id}/receipt")]
async fn confirm_receipt(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).confirm_receipt(&id).await?))
}
