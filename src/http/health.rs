//! `/health`: liveness and readiness, each naming every service's state,
//! restart count, last error and log lag.

use crate::node::{HealthReport, Node};
use actix_web::web::Data;
use actix_web::{get, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health_live).service(health_ready).service(health_of_the_worker).service(metrics);
}

/// The node's metrics, in Prometheus text format.
#[utoipa::path(tag = "node", responses((status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain; version=0.0.4", body = String)))]
#[get("/metrics")]
async fn metrics(node: Data<Node>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(node.metrics_text())
}

/// Liveness: 503 only when the node can no longer make progress (a service
/// did not answer a ping in time). A restarting service is healing, not
/// stuck.
#[utoipa::path(tag = "node", responses(
    (status = 200, description = "Live", body = HealthReport),
    (status = 503, description = "Stuck: restart the node", body = HealthReport, headers(("Retry-After" = u64)))
))]
#[get("/health/live")]
async fn health_live(node: Data<Node>) -> HttpResponse {
    respond(node.live().await)
}

/// Readiness: 503 while a service is not running (restarting, failed,
/// paused), the node is draining, the store cannot flush, or a failover
/// leader's lease ran out before it renewed it: send no traffic here.
#[utoipa::path(tag = "node", responses(
    (status = 200, description = "Ready", body = HealthReport),
    (status = 503, description = "Not ready, and why", body = HealthReport, headers(("Retry-After" = u64)))
))]
#[get("/health/ready")]
async fn health_ready(node: Data<Node>) -> HttpResponse {
    respond(node.health())
}

/// The node that does the work, whichever node is asked: the readiness
/// report, as `/health/ready` gives it. On one node the two are the same.
/// In failover mode a follower answers `/health/ready` about itself (for
/// its probes) and forwards this path to the leader, so that a page such
/// as the console shows the services wherever it was opened.
#[utoipa::path(tag = "node", responses(
    (status = 200, description = "Ready", body = HealthReport),
    (status = 503, description = "Not ready, and why; or, through a follower, no node leads just now (problem+json)", body = HealthReport, headers(("Retry-After" = u64)))
))]
#[get("/health")]
async fn health_of_the_worker(node: Data<Node>) -> HttpResponse {
    respond(node.health())
}

fn respond(report: HealthReport) -> HttpResponse {
    if report.is_ok() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "1")).json(report)
    }
}
