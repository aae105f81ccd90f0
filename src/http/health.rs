//! `/health`: liveness and readiness, each naming every service's state.

use crate::Node;
use actix_web::web::{self, Data, ServiceConfig};
use actix_web::HttpResponse;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/health/live", web::get().to(live)).route("/health/ready", web::get().to(ready));
}

/// The process answers: it is alive.
async fn live(node: Data<Node>) -> HttpResponse {
    HttpResponse::Ok().json(node.health())
}

/// 200 only while every service is running; 503 otherwise, so a load
/// balancer sends no traffic to a node that cannot serve it.
async fn ready(node: Data<Node>) -> HttpResponse {
    let report = node.health();
    match report.status {
        "ready" => HttpResponse::Ok().json(report),
        _ => HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "1")).json(report),
    }
}
