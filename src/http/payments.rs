//! `/payments`: the seller's confirmation of a bank-transfer deposit.

use super::who::Who;
use super::ApiError;
use crate::node::Node;
use actix_web::web::{self, Data, Path, ServiceConfig};
use actix_web::HttpResponse;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/payments/{order_id}/confirm", web::post().to(confirm_deposit));
}

async fn confirm_deposit(
    node: Data<Node>,
    who: Who,
    order_id: Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).confirm_deposit(&order_id).await?))
}
