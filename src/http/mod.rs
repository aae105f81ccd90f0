//! The HTTP gateway: one module per resource, one error type
//! ([`ApiError`]) answering `application/problem+json`.
//!
//! [`routes`] registers everything on an actix-web `ServiceConfig`, so an
//! application can mount a node's API into its own `App`:
//!
//! ```no_run
//! # async fn demo(node: fulfil::Node) {
//! use actix_web::{App, HttpServer};
//! HttpServer::new(move || App::new().configure(fulfil::http::routes(node.clone())))
//!     .bind("127.0.0.1:0").unwrap().run().await.unwrap();
//! # }
//! ```

mod admin;
mod body;
mod console;
mod deliveries;
mod error;
pub mod forward;
mod health;
mod notifications;
pub mod openapi;
mod orders;
mod payments;
mod products;
mod status;
mod subscriptions;
mod who;
mod workflows;

pub use error::{ApiError, PROBLEM_JSON};

use crate::error::{CallError, NodeError};
use crate::node::Node;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::web::{self, ServiceConfig};
use tracing::Instrument;

/// Largest JSON body accepted.
const JSON_LIMIT: usize = 64 * 1024;

/// Every route of the node's API, with its shared state and JSON and query
/// error handling (so a bad body is a problem+json 4xx, never a plain-text
/// error).
pub fn routes(node: Node) -> impl Fn(&mut ServiceConfig) + Clone {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(node.clone()))
            .app_data(
                web::JsonConfig::default()
                    .limit(JSON_LIMIT)
                    .error_handler(|err, _| ApiError::from(err).into()),
            )
            .app_data(web::QueryConfig::default().error_handler(|err, _| ApiError::from(err).into()))
            .app_data(web::PathConfig::default().error_handler(|err, _| ApiError::from(err).into()));
        api(&mut utoipa_actix_web::service_config::ServiceConfig::new(cfg));
    }
}

/// Registers every route, and through utoipa-actix-web every route's
/// place in the OpenAPI document: [`openapi::document`] calls this too,
/// so the document and the routes come from one list.
fn api(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    // Health, the document and the console's static files stay outside
    // the draining guard and authentication: health must keep saying why,
    // and the console asks for a key itself.
    cfg.configure(health::routes).configure(openapi::routes).configure(console::routes).service(
        utoipa_actix_web::scope("")
            .wrap(from_fn(admit))
            .wrap(from_fn(observe))
            .configure(products::routes)
            .configure(orders::routes)
            .configure(payments::routes)
            .configure(deliveries::routes)
            .configure(status::routes)
            .configure(notifications::routes)
            .configure(subscriptions::routes)
            .configure(admin::routes)
            .configure(workflows::routes)
            .default_service(web::to(no_route)),
    );
}

/// The answer for a request no route matches; set it as the app's
/// `default_service` so that unknown paths get problem+json too: 405 with
/// `Allow` when the path is served with other methods, else 404.
pub async fn no_route(req: actix_web::HttpRequest) -> ApiError {
    let allow = openapi::methods_for(req.path());
    match allow.is_empty() {
        true => ApiError::NoRoute(format!("{} {}", req.method(), req.path())),
        false => ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            allow,
        },
    }
}

/// Header naming the client for the per-client rate limit, believed only
/// from a trusted proxy (`http.trusted_proxies`).
pub const CLIENT_ID: &str = "X-Client-Id";

/// Admission at the edge: while the node drains (shutting down), new
/// requests get 503 with `Retry-After` and requests in flight finish; a
/// request without valid credentials (on a node with keys) gets 401; over
/// its rate, a client gets 429 with `Retry-After` from governor's wait.
async fn admit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if let Some(node) = req.app_data::<web::Data<Node>>() {
        if node.is_draining() {
            return Err(ApiError::Node(NodeError::Call(CallError::Draining)).into());
        }
        if node.lease_lapsed() {
            return Err(ApiError::NoLeader(
                "this node's lease to lead ran out before it could renew it; another node may lead now"
                    .into(),
            )
            .into());
        }
        let hop = req.headers().get(forward::HOP).map(|key| key.as_bytes());
        if !node.takes_hop(hop) {
            return Err(ApiError::NotRouted.into());
        }
        let principal = who::authenticate(node, req.request())?;
        node.admit_client(&client_of(node, &req, &principal)).map_err(ApiError::RateLimited)?;
        who::remember(req.request(), principal);
    }
    next.call(req).await
}

/// Who the rate limit counts a request against: its principal when it is
/// authenticated (a client cannot escape its limit by renaming itself);
/// on a shard, the caller its node's router names (`X-Client-Id`, sent
/// with the hop key [`admit`] checked); else the client a trusted proxy
/// names (`X-Client-Id`, or the first address of `X-Forwarded-For`); else
/// the peer's IP address.
fn client_of(node: &Node, req: &ServiceRequest, principal: &crate::domain::access::Principal) -> String {
    client_by(req.request(), principal, node.routed_only(), |ip| node.trusts_proxy(ip))
}

/// [`client_of`] for a node that trusts the proxies `trusts` says it does
/// (a failover follower answering a read itself, a shard's router), and
/// that believes `X-Client-Id` whoever sent it when `routed` (a request
/// whose hop key was checked: its router named the caller).
pub(crate) fn client_by(
    req: &actix_web::HttpRequest,
    principal: &crate::domain::access::Principal,
    routed: bool,
    trusts: impl Fn(std::net::IpAddr) -> bool,
) -> String {
    if *principal != crate::domain::access::Principal::Open {
        return principal.to_string();
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let fits = |id: &&str| !id.is_empty() && id.len() <= 128;
    if let Some(id) = header(CLIENT_ID).filter(fits).filter(|_| routed) {
        return id.to_owned();
    }
    let peer = req.peer_addr().map(|a| a.ip());
    if peer.is_some_and(trusts) {
        let named = header(CLIENT_ID)
            .or_else(|| header("X-Forwarded-For").and_then(|f| f.split(',').next()).map(str::trim));
        if let Some(id) = named.filter(fits) {
            return id.to_owned();
        }
    }
    peer.map(|ip| ip.to_string()).unwrap_or_default()
}

/// Counts every request by route pattern (bounded label values) and status,
/// and observes its latency.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let node = req.app_data::<web::Data<Node>>().cloned();
    let method = req.method().to_string();
    // The path names the order where there is one (`/orders/{id}/…`); the
    // node's and the actors' spans nest under this one.
    let span = tracing::info_span!("http", method = %method, path = %req.path());
    let answer = next.call(req).instrument(span).await;
    if let Some(node) = node {
        let (route, status) = match &answer {
            Ok(res) => (res.request().match_pattern(), res.status()),
            Err(e) => (None, e.as_response_error().status_code()),
        };
        let route = route.unwrap_or_else(|| "unmatched".to_owned());
        node.metrics().observe_http(&route, &method, status.as_u16(), started.elapsed());
    }
    answer
}
