//! `/status`: the CQRS read side, served from the projection.

use super::who::Who;
use super::ApiError;
use crate::node::Node;
use actix_web::web::{self, Data, Path, Query, ServiceConfig};
use actix_web::HttpResponse;
use serde::Deserialize;
use serde_json::json;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/status", web::get().to(list)).route("/status/{order_id}", web::get().to(get));
}

async fn get(node: Data<Node>, who: Who, order_id: Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(who.on(&node).status(&order_id).await?))
}

#[derive(Deserialize)]
pub(super) struct ByCustomer {
    pub customer: String,
}

/// Either `customer`, or `workflow` and `status` (with optional `leg`,
/// `after` and `limit`).
#[derive(Deserialize)]
struct Listing {
    customer: Option<String>,
    workflow: Option<String>,
    status: Option<String>,
    leg: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

/// Page size when none is asked for.
const DEFAULT_LIMIT: usize = 50;

async fn list(node: Data<Node>, who: Who, query: Query<Listing>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let node = who.on(&node);
    match (q.customer, q.workflow, q.status) {
        (Some(customer), None, None) => {
            let orders = node.statuses(&customer).await?;
            Ok(HttpResponse::Ok().json(json!({ "customer": customer, "orders": orders })))
        }
        (None, Some(workflow), Some(status)) => {
            let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
            let page = node.list(&workflow, &status, q.leg.as_deref(), q.after, limit).await?;
            Ok(HttpResponse::Ok().json(json!({
                "workflow": workflow,
                "status": status,
                "orders": page.orders,
                "next": page.next,
            })))
        }
        _ => Err(ApiError::BadQuery("give customer=C, or workflow=W and status=S".into())),
    }
}
