//! `/deliveries`: the courier's reports.

use super::ApiError;
use crate::Node;
use actix_web::web::{self, Data, Path, ServiceConfig};
use actix_web::HttpResponse;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/deliveries/{order_id}", web::get().to(get))
        .route("/deliveries/{order_id}/complete", web::post().to(complete));
}

async fn get(node: Data<Node>, order_id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(node.delivery(&order_id).await?))
}

async fn complete(node: Data<Node>, order_id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(node.complete_delivery(&order_id).await?))
}
