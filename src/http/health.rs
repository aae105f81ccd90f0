//! `/health`: liveness and readiness, each naming every service's state,
//! restart count, last error and log lag.

use crate::node::Node;
use actix_web::web::{self, Data, ServiceConfig};
use actix_web::HttpResponse;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

/// Prometheus text format.
async fn metrics(node: Data<Node>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(node.metrics_text())
}

/// 503 only when the node can no longer make progress: a service did not
/// answer a ping in time. A restarting service is healing, not stuck.
async fn live(node: Data<Node>) -> HttpResponse {
    respond(node.live().await)
}

/// 503 while a service is not running (restarting, failed, paused), the
/// node is draining, or the store cannot flush: send no traffic here.
async fn ready(node: Data<Node>) -> HttpResponse {
    respond(node.health())
}

fn respond(report: crate::node::HealthReport) -> HttpResponse {
    if report.is_ok() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "1")).json(report)
    }
}
