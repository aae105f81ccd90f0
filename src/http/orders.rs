//! `/orders`: placing orders and the customer's commands on them.

use super::body::{JsonObject, OptionalJsonObject};
use super::who::Who;
use super::ApiError;
use crate::domain::OrderRequest;
use crate::error::{NodeError, Refused};
use crate::node::Node;
use actix_web::http::header;
use actix_web::web::{self, Data, Path, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;

/// Header a client sets to make `POST /orders` safe to retry.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/orders", web::post().to(place))
        .route("/orders/{id}", web::get().to(get))
        .route("/orders/{id}/cancel", web::post().to(cancel))
        .route("/orders/{id}/seller-cancel", web::post().to(seller_cancel))
        .route("/orders/{id}/receipt", web::post().to(confirm_receipt))
        .route("/orders/{id}/accept", web::post().to(accept))
        .route("/orders/{id}/reject", web::post().to(reject));
}

/// `by` names the party on an open node; with keys, the principal acts
/// as itself and `by` may only repeat it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    #[serde(default)]
    by: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBody {
    #[serde(default)]
    by: Option<String>,
    reason: String,
}

async fn accept(
    node: Data<Node>,
    who: Who,
    id: Path<String>,
    body: OptionalJsonObject<AcceptBody>,
) -> Result<HttpResponse, ApiError> {
    let by = body.0.as_ref().and_then(|b| b.by.as_deref());
    Ok(HttpResponse::Ok().json(who.on(&node).accept_order(&id, by).await?))
}

async fn reject(
    node: Data<Node>,
    who: Who,
    id: Path<String>,
    body: JsonObject<RejectBody>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).reject_order(&id, body.by.as_deref(), &body.reason).await?))
}

async fn place(
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

async fn get(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).order(&id).await?))
}

async fn cancel(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).cancel_order(&id).await?))
}

async fn seller_cancel(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).seller_cancel_order(&id).await?))
}

async fn confirm_receipt(node: Data<Node>, who: Who, id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).confirm_receipt(&id).await?))
}
