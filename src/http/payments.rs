//! `/payments`: the seller's confirmation of a bank-transfer deposit.

use super::who::Who;
use super::ApiError;
use crate::node::Node;
use actix_web::web::{Data, Path};
use actix_web::{post, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(confirm_deposit);
}

/// The seller confirms that a bank transfer arrived: the order is paid.
#[utoipa::path(
    tag = "payments",
    params(("order_id" = String, Path, description = "The order's id")),
    responses((status = 200, description = "The order, paid", body = crate::node::bodies::Order))
)]
#[post("/payments/{order_id}/confirm")]
async fn confirm_deposit(
    node: Data<Node>,
    who: Who,
    order_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).confirm_deposit(&order_id).await?))
}
