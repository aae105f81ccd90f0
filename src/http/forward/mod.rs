//! A failover follower's gateway: requests go to the node that leads, so
//! that any node can be sent any request (a Kubernetes Service in front of
//! all of them, a client that knows one address). Status reads, an
//! order's command side, what a customer was told and live streams are
//! the exception: the follower
//! answers them from its own store, with the leader's checks (`reads`,
//! `streams`).
//!
//! For what it forwards, the follower does not authenticate or check
//! anything itself: the leader does, exactly as for a request sent to it
//! directly. It adds the
//! client's address to `X-Forwarded-For` (believed only from the leader's
//! `http.trusted_proxies`), and streams the answer back as it comes, so
//! that live event streams pass through too.
//!
//! While no node leads (the leader died and its lease has not run out
//! yet), or the leader cannot be reached, the answer is 503 with
//! `Retry-After`: a request that was on its way to a leader that died may
//! or may not have been done, so a client retries with the same
//! `Idempotency-Key`.

mod reads;
mod streams;

pub use reads::{LocalReads, BACKLOG_AT_MOST, CATCH_UP, LAG_AT_MOST};

use super::notifications::{resume_of, sse, CustomerNotifications, Following as StreamQuery};
use super::status::{ByCustomer, Listed, Listing, StatusListing};
use super::ApiError;
use actix_web::http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{get, HttpRequest, HttpResponse};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Marks a forwarded request, so that it is forwarded once at most.
const FORWARDED: &str = "fulfil-forwarded";

/// Largest body forwarded; the leader applies its own, smaller limits.
const BODY_LIMIT: usize = 1024 * 1024;

/// What a follower knows of the cluster, kept current by its follow loop.
#[derive(Default)]
pub struct Following {
    state: RwLock<FollowState>,
    /// Reads it answers itself, once it has reached the servers.
    local: RwLock<Option<Arc<LocalReads>>>,
    /// Reads answered from its own store.
    local_reads: AtomicU64,
}

#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct FollowState {
    /// The leader's advertised URL, if a node leads.
    pub leader: Option<String>,
    /// Whether this node has applied everything the stream held when it
    /// last looked, a third of a lease ago.
    pub caught_up: bool,
    /// The stream sequence of the last copy applied.
    pub applied: u64,
    /// Copies between it and the stream's end, a third of a lease ago.
    pub behind: u64,
}

impl Following {
    pub fn set(&self, state: FollowState) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn get(&self) -> FollowState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Answers the reads `local` can from now on (`None`: forwards them).
    /// The live streams the reads it replaces followed end: their clients
    /// reconnect, and a server stopping does not wait for them.
    pub fn set_local(&self, local: Option<LocalReads>) {
        let old = std::mem::replace(
            &mut *self.local.write().unwrap_or_else(|p| p.into_inner()),
            local.map(Arc::new),
        );
        if let Some(old) = old {
            old.end_streams();
        }
    }

    fn local(&self) -> Option<Arc<LocalReads>> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The follower's routes: its own health, status reads, notification
/// lists and live streams from its store when it can, and everything
/// else forwarded.
pub fn follower_routes(following: Arc<Following>) -> impl Fn(&mut ServiceConfig) + Clone {
    // Only a TLS backend that cannot start fails here; forwarding then
    // answers 503 and says why.
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let client = Arc::new(client.map_err(|e| e.to_string()));
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(Data::from(following.clone()))
            .app_data(Data::from(client.clone()))
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .service(live)
            .service(ready)
            .service(metrics)
            // The console's page and assets are the binary's own: served
            // here, so that it opens while no node leads.
            .configure(super::console::follower_routes)
            .service(order_status)
            .service(order)
            .service(delivery)
            .service(workflows)
            .service(statuses)
            .service(notifications)
            .service(events)
            .default_service(web::to(forward));
    }
}

#[derive(Serialize)]
struct FollowerHealth {
    status: &'static str,
    role: &'static str,
    #[serde(flatten)]
    state: FollowState,
}

/// The node's own paths, answered by the follower (the document
/// describes the leader's answers; a follower's say `"role": "follower"`).
#[get("/health/live")]
async fn live(following: Data<Following>) -> HttpResponse {
    HttpResponse::Ok().json(FollowerHealth { status: "ok", role: "follower", state: following.get() })
}

/// Ready once caught up with the stream. While no node leads (a leader
/// died, and its lease has not run out), a follower stays ready: it
/// answers 503 with `Retry-After` itself, which tells a client more than
/// a Service with no endpoints would.
#[get("/health/ready")]
async fn ready(following: Data<Following>) -> HttpResponse {
    let state = following.get();
    if state.caught_up {
        HttpResponse::Ok().json(FollowerHealth { status: "ok", role: "follower", state })
    } else {
        HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "1")).json(FollowerHealth {
            status: "following",
            role: "follower",
            state,
        })
    }
}

/// The follower's own figures, not the leader's: a scrape of every pod
/// must not count the leader's orders once per follower.
#[get("/metrics")]
async fn metrics(following: Data<Following>) -> HttpResponse {
    let state = following.get();
    let text = format!(
        "# HELP fulfil_failover_leading Whether this node leads (1) or follows (0).\n\
         # TYPE fulfil_failover_leading gauge\n\
         fulfil_failover_leading 0\n\
         # HELP fulfil_failover_applied Stream sequence of the last copy of the store this follower applied.\n\
         # TYPE fulfil_failover_applied gauge\n\
         fulfil_failover_applied {}\n\
         # HELP fulfil_failover_caught_up Whether this follower holds what the stream held a moment ago.\n\
         # TYPE fulfil_failover_caught_up gauge\n\
         fulfil_failover_caught_up {}\n\
         # HELP fulfil_failover_behind Copies of the store between this follower and the stream's end, a third of a lease ago.\n\
         # TYPE fulfil_failover_behind gauge\n\
         fulfil_failover_behind {}\n\
         # HELP fulfil_failover_local_reads_total Reads (and live streams) this follower answered from its own store.\n\
         # TYPE fulfil_failover_local_reads_total counter\n\
         fulfil_failover_local_reads_total {}\n{}",
        state.applied,
        u8::from(state.caught_up),
        state.behind,
        following.local_reads.load(Ordering::Relaxed),
        following.local().map(|local| local.forwarded_metrics()).unwrap_or_default(),
    );
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text)
}

type Client = Result<reqwest::Client, String>;

/// An order's status, from this follower's store when it can tell it
/// ([`LocalReads`]), else from the leader.
#[get("/status/{order_id}")]
async fn order_status(
    req: HttpRequest,
    body: Bytes,
    order_id: web::Path<String>,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let answer = match following.local() {
        Some(local) => local.status(&req, &order_id).await?,
        None => None,
    };
    local_or_forwarded(answer, req, body, following, client).await
}

/// An order (its command side), from this follower's store when it can
/// tell it, else from the leader.
#[get("/orders/{order_id}")]
async fn order(
    req: HttpRequest,
    body: Bytes,
    order_id: web::Path<String>,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let answer = match following.local() {
        Some(local) => local.order(&req, &order_id).await?,
        None => None,
    };
    local_or_forwarded(answer, req, body, following, client).await
}

/// An order's delivery, from this follower's store when it can tell it,
/// else from the leader.
#[get("/deliveries/{order_id}")]
async fn delivery(
    req: HttpRequest,
    body: Bytes,
    order_id: web::Path<String>,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let answer = match following.local() {
        Some(local) => local.delivery(&req, &order_id).await?,
        None => None,
    };
    local_or_forwarded(answer, req, body, following, client).await
}

/// The workflows, from the settings this follower shares with the leader.
#[get("/workflows")]
async fn workflows(
    req: HttpRequest,
    body: Bytes,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let answer = match following.local() {
        Some(local) => Some(super::workflows::Workflows { workflows: local.workflows(&req)? }),
        None => None,
    };
    local_or_forwarded(answer, req, body, following, client).await
}

/// A customer's orders, or a page of a work list, from this follower's
/// store when it can tell them, else from the leader.
#[get("/status")]
async fn statuses(
    req: HttpRequest,
    body: Bytes,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let answer = match following.local() {
        Some(local) => local_listing(&local, &req).await?,
        None => None,
    };
    local_or_forwarded(answer, req, body, following, client).await
}

/// What a customer was told, from this follower's store when it can tell
/// it, else from the leader (which also says what is wrong with a query
/// it cannot read).
#[get("/notifications")]
async fn notifications(
    req: HttpRequest,
    body: Bytes,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<ByCustomer>::from_query(req.query_string()).ok();
    let answer = match (following.local(), query) {
        (Some(local), Some(query)) => {
            let customer = query.into_inner().customer;
            let told = local.notifications(&req, &customer).await?;
            told.map(|notifications| CustomerNotifications { customer, notifications })
        }
        _ => None,
    };
    local_or_forwarded(answer, req, body, following, client).await
}

/// A live stream (`GET /events`), followed from this follower's store
/// when it can, else through to the leader (which also says what is wrong
/// with a query it cannot read).
#[get("/events")]
async fn events(
    req: HttpRequest,
    body: Bytes,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<StreamQuery>::from_query(req.query_string()).ok();
    if let (Some(local), Some(query), Ok(resume)) = (following.local(), query, resume_of(&req)) {
        if let Ok(whose) = query.whose() {
            if let Some(stream) = local.events(&req, whose, resume).await? {
                following.local_reads.fetch_add(1, Ordering::Relaxed);
                return Ok(sse(stream));
            }
        }
    }
    forward(req, body, following, client).await
}

/// `answer`, counted, when this follower could give it; else the leader's.
async fn local_or_forwarded(
    answer: Option<impl Serialize>,
    req: HttpRequest,
    body: Bytes,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    match answer {
        Some(answer) => {
            following.local_reads.fetch_add(1, Ordering::Relaxed);
            Ok(HttpResponse::Ok().json(answer))
        }
        None => forward(req, body, following, client).await,
    }
}

/// The listing `req` asks for, if this follower can tell it; a query it
/// cannot read goes to the leader, which says what is wrong with it.
async fn local_listing(local: &LocalReads, req: &HttpRequest) -> Result<Option<StatusListing>, ApiError> {
    let Ok(query) = web::Query::<Listing>::from_query(req.query_string()) else { return Ok(None) };
    let Ok(listed) = query.into_inner().listed() else { return Ok(None) };
    Ok(match listed {
        Listed::Customer(customer) => {
            local.statuses(req, &customer).await?.map(|orders| StatusListing::Customer { customer, orders })
        }
        Listed::Page { workflow, status, leg, after, limit } => {
            let page = local.page(req, &workflow, &status, leg.as_deref(), after, limit).await?;
            page.map(|page| StatusListing::page(workflow, status, page))
        }
    })
}

async fn forward(
    req: HttpRequest,
    body: Bytes,
    following: Data<Following>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    if req.headers().contains_key(FORWARDED) {
        // The leader it was sent to no longer leads, and forwarded it on:
        // no loop between followers.
        return Err(ApiError::NoLeader("the leader moved while this request was forwarded; retry".into()));
    }
    let leader = following.get().leader.ok_or_else(|| {
        ApiError::NoLeader(
            "no node leads just now (the last one stopped); one takes over within stream.lease_ms".into(),
        )
    })?;
    let client = client.as_ref().as_ref().map_err(|e| ApiError::NoLeader(format!("cannot forward: {e}")))?;
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::NoRoute(req.method().to_string()))?;
    let mut out = client.request(method, format!("{}{path}", leader.trim_end_matches('/')));
    for (name, value) in req.headers() {
        // X-Forwarded-For goes once, with the client's address added below.
        if !hop_by_hop(name) && name != HOST && name != CONTENT_LENGTH && name != "x-forwarded-for" {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    out = out.header(FORWARDED, "1");
    if let Some(peer) = req.peer_addr() {
        let forwarded = match req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        out = out.header("x-forwarded-for", forwarded);
    }
    let answer = out.body(body).send().await.map_err(|e| {
        ApiError::NoLeader(format!(
            "the leader at {leader} cannot be reached ({e}); retry with the same Idempotency-Key"
        ))
    })?;
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(answer.status().as_u16())
            .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
    );
    for (name, value) in answer.headers() {
        let name = HeaderName::from_bytes(name.as_str().as_bytes()).ok();
        if let Some(name) = name.filter(|n| !hop_by_hop(n) && *n != CONTENT_LENGTH) {
            response.append_header((name, value.as_bytes()));
        }
    }
    Ok(response.streaming(answer.bytes_stream()))
}

/// Headers about one connection, not the request (RFC 9110, 7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    *name == CONNECTION
        || *name == TRANSFER_ENCODING
        || matches!(name.as_str(), "keep-alive" | "te" | "trailer" | "upgrade" | "proxy-connection")
}
