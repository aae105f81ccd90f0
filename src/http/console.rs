//! `/console`: the operator's console, a small web app compiled into the
//! binary (no build step, nothing fetched from elsewhere). It uses the
//! public API like any client; see `console/console.js`.

use actix_web::http::header;
use actix_web::{get, HttpResponse};
use utoipa_actix_web::service_config::ServiceConfig;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The page may load its own script and style and talk to this node,
/// nothing else; no other site may frame it.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(console).service(console_script).service(console_style);
}

/// The same routes on a plain actix-web config (a failover follower's,
/// which has no OpenAPI document of its own).
pub fn follower_routes(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(console).service(console_script).service(console_style);
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The operator console (HTML): orders by status, live; the parties'
/// actions; an order's page; the node's health.
#[utoipa::path(tag = "node", responses((status = 200, description = "The console page", content_type = "text/html", body = String)))]
#[get("/console")]
async fn console() -> HttpResponse {
    asset("text/html; charset=utf-8", PAGE)
}

/// The console's script.
#[utoipa::path(tag = "node", responses((status = 200, description = "JavaScript", content_type = "text/javascript", body = String)))]
#[get("/console/console.js")]
async fn console_script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The console's style sheet.
#[utoipa::path(tag = "node", responses((status = 200, description = "CSS", content_type = "text/css", body = String)))]
#[get("/console/console.css")]
async fn console_style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}
