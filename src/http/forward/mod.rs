//! A failover follower's gateway: requests go to the node that leads, so
//! that any node can be sent any request (a Kubernetes Service in front of
//! all of them, a client that knows one address). The everyday reads are
//! the exception (an order's status, its command side and delivery, a
//! product, the lists, what a customer was told, the subscriptions, the
//! workflows, the live streams, the console's page): the follower answers
//! them from its own store, with the leader's checks (`reads`,
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

pub mod by_shard;
mod merged_events;
mod reads;
pub mod router;
mod streams;

pub use reads::{LocalReads, BACKLOG_AT_MOST, CATCH_UP, LAG_AT_MOST};

use super::notifications::{resume_of, sse, CustomerNotifications, Following as StreamQuery};
use super::status::{ByCustomer, Listed, Listing, StatusListing};
use super::ApiError;
use actix_web::dev::Payload;
use actix_web::http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{get, FromRequest, HttpRequest, HttpResponse};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Marks a forwarded request, so that it is forwarded once at most.
const FORWARDED: &str = "fulfil-forwarded";
/// On a request forwarded to a node of a cluster split into shards: the
/// shard it was sent there for.
const SHARD: &str = "fulfil-shard";
/// On a subscription written to a shard by this machine's router: the id
/// the cluster's first shard gave it, which every shard keeps it under.
pub(crate) const SUBSCRIPTION_ID: &str = "fulfil-subscription-id";
/// With [`SHARD`]: the cluster's hop key, which says that one of its
/// routers sent the request (`cluster::replica::hop_key`). Without it, the
/// marks above are a client's and are not believed.
pub(crate) const HOP: &str = "fulfil-hop";

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
    /// Where this node serves the group itself, while it leads it (a
    /// shard's server on a loopback port).
    here: RwLock<Option<String>>,
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

    /// Says where this node serves the group while it leads it (`None`:
    /// it does not).
    pub fn set_here(&self, address: Option<String>) {
        *self.here.write().unwrap_or_else(|p| p.into_inner()) = address;
    }

    pub fn here(&self) -> Option<String> {
        self.here.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn local(&self) -> Option<Arc<LocalReads>> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The follower's routes: its own health and metrics, the everyday reads
/// from its store when it can, and everything else forwarded.
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
            .service(product)
            .service(availability)
            .service(workflows)
            .service(subscriptions)
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

/// A request a follower answers from its own store when it can, and
/// sends on to the leader otherwise: what either way needs of it.
struct Ask {
    req: HttpRequest,
    body: Bytes,
    following: Data<Following>,
    client: Data<Client>,
}

impl FromRequest for Ask {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Ask, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = Bytes::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let body = body.await?;
            let (following, client) = (req.app_data::<Data<Following>>(), req.app_data::<Data<Client>>());
            match (following.cloned(), client.cloned()) {
                (Some(following), Some(client)) => Ok(Ask { req, body, following, client }),
                _ => {
                    Err(actix_web::error::ErrorInternalServerError("the follower's routes lack their state"))
                }
            }
        })
    }
}

impl Ask {
    /// What `read` finds in this follower's store, counted; the leader's
    /// answer when it cannot tell (`None`), or there is no store to read
    /// yet.
    async fn local_first<T, Fut>(
        self,
        read: impl FnOnce(Arc<LocalReads>, HttpRequest) -> Fut,
    ) -> Result<HttpResponse, ApiError>
    where
        T: Serialize,
        Fut: Future<Output = Result<Option<T>, ApiError>>,
    {
        let answer = match self.following.local() {
            Some(local) => read(local, self.req.clone()).await?,
            None => None,
        };
        match answer {
            Some(answer) => {
                self.following.local_reads.fetch_add(1, Ordering::Relaxed);
                Ok(HttpResponse::Ok().json(answer))
            }
            None => self.forward().await,
        }
    }
}

/// An order's status, from this follower's store when it can tell it
/// ([`LocalReads`]), else from the leader.
#[get("/status/{order_id}")]
async fn order_status(ask: Ask, order_id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move { local.status(&req, &order_id).await }).await
}

/// An order (its command side), as [`order_status`].
#[get("/orders/{order_id}")]
async fn order(ask: Ask, order_id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move { local.order(&req, &order_id).await }).await
}

/// An order's delivery, as [`order_status`].
#[get("/deliveries/{order_id}")]
async fn delivery(ask: Ask, order_id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move { local.delivery(&req, &order_id).await }).await
}

/// A product, as [`order_status`].
#[get("/products/{sku}")]
async fn product(ask: Ask, sku: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move { local.product(&req, &sku).await }).await
}

/// A pool's free units for a range, as [`order_status`]; a query it
/// cannot read goes to the leader, which says what is wrong with it.
#[get("/products/{sku}/availability")]
async fn availability(ask: Ask, sku: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let range = web::Query::<super::products::Range>::from_query(ask.req.query_string()).ok();
    ask.local_first(|local, req| async move {
        let Some(range) = range else { return Ok(None) };
        local.availability(&req, &sku, &range.from, &range.to).await
    })
    .await
}

/// The caller's webhook subscriptions, as [`order_status`].
#[get("/subscriptions")]
async fn subscriptions(ask: Ask) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move {
        let listed = local.subscriptions(&req).await?;
        Ok(listed.map(|subscriptions| super::subscriptions::Subscriptions { subscriptions }))
    })
    .await
}

/// The workflows, from the settings this follower shares with the leader.
#[get("/workflows")]
async fn workflows(ask: Ask) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move {
        Ok(Some(super::workflows::Workflows { workflows: local.workflows(&req)? }))
    })
    .await
}

/// A customer's orders, or a page of a work list, as [`order_status`].
#[get("/status")]
async fn statuses(ask: Ask) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move { local_listing(&local, &req, req.query_string()).await }).await
}

/// What a customer was told, as [`availability`].
#[get("/notifications")]
async fn notifications(ask: Ask) -> Result<HttpResponse, ApiError> {
    ask.local_first(|local, req| async move { local_notifications(&local, &req, req.query_string()).await })
        .await
}

/// A live stream (`GET /events`), followed from this follower's store
/// when it can, else through to the leader (which also says what is wrong
/// with a query it cannot read).
#[get("/events")]
async fn events(ask: Ask) -> Result<HttpResponse, ApiError> {
    let query = web::Query::<StreamQuery>::from_query(ask.req.query_string()).ok();
    if let (Some(local), Some(query), Ok(resume)) = (ask.following.local(), query, resume_of(&ask.req)) {
        if let Ok(whose) = query.whose() {
            if let Some(stream) = local.events(&ask.req, whose, resume).await? {
                ask.following.local_reads.fetch_add(1, Ordering::Relaxed);
                return Ok(sse(stream));
            }
        }
    }
    ask.forward().await
}

/// A list `req` (to `GET /status` or `GET /notifications`, with `query`
/// in place of its own) asks for, as the leader answers it, if this
/// follower can tell it.
pub(super) async fn local_list(
    local: &LocalReads,
    req: &HttpRequest,
    query: &str,
) -> Result<Option<serde_json::Value>, ApiError> {
    // Lists serialize; were one not to, the leader would answer.
    Ok(match req.path() {
        "/status" => local_listing(local, req, query).await?.and_then(|l| serde_json::to_value(l).ok()),
        "/notifications" => {
            local_notifications(local, req, query).await?.and_then(|l| serde_json::to_value(l).ok())
        }
        _ => None,
    })
}

/// What a customer was told (`query` names them), if this follower can
/// tell it.
async fn local_notifications(
    local: &LocalReads,
    req: &HttpRequest,
    query: &str,
) -> Result<Option<CustomerNotifications>, ApiError> {
    let Ok(query) = web::Query::<ByCustomer>::from_query(query) else { return Ok(None) };
    let customer = query.into_inner().customer;
    let told = local.notifications(req, &customer).await?;
    // (`notifications` is the handler's name here.)
    Ok(told.map(|told| CustomerNotifications { customer, notifications: told }))
}

/// The listing `query` asks for, if this follower can tell it; a query it
/// cannot read goes to the leader, which says what is wrong with it.
async fn local_listing(
    local: &LocalReads,
    req: &HttpRequest,
    query: &str,
) -> Result<Option<StatusListing>, ApiError> {
    let Ok(query) = web::Query::<Listing>::from_query(query) else { return Ok(None) };
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

/// Every request the follower does not answer itself.
async fn forward(ask: Ask) -> Result<HttpResponse, ApiError> {
    ask.forward().await
}

impl Ask {
    /// Sends the request on to the leader, once at most, and streams its
    /// answer back.
    async fn forward(self) -> Result<HttpResponse, ApiError> {
        let Ask { req, body, following, client } = self;
        if req.headers().contains_key(FORWARDED) {
            // The leader it was sent to no longer leads, and forwarded it on:
            // no loop between followers.
            return Err(ApiError::NoLeader(
                "the leader moved while this request was forwarded; retry".into(),
            ));
        }
        let leader = following.get().leader.ok_or_else(|| {
            ApiError::NoLeader(
                "no node leads just now (the last one stopped); one takes over within stream.lease_ms".into(),
            )
        })?;
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        Ok(streamed(relay(&req, body, &client, (&leader, None), path).await?))
    }
}

/// Where a request is relayed: a base URL, and what a router says with it.
type To<'a> = (&'a str, Option<Hop<'a>>);

/// What a shard's router says with a request it sends on (to another
/// node's router, or to a shard's server on this machine).
struct Hop<'a> {
    /// The shard it is for.
    shard: u32,
    /// The cluster's hop key, so the marks are believed.
    key: &'a str,
    /// Who the caller is, as the router that took the request from it
    /// decided (`X-Client-Id`): a shard's server trusts its router for
    /// it, and counts the caller's rate by it.
    caller: &'a str,
}

/// Sends `req` (with `body`) to `path` at `base`, marked as forwarded (for
/// a shard, if given), with the client's address added to
/// `X-Forwarded-For`.
async fn relay(
    req: &HttpRequest,
    body: Bytes,
    client: &Client,
    to: To<'_>,
    path: &str,
) -> Result<reqwest::Response, ApiError> {
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::NoRoute(req.method().to_string()))?;
    relay_as(req, (method, body), client, to, path, None).await
}

/// [`relay`], with `method` in place of the request's, and one more
/// header if given (in place of the request's of that name).
async fn relay_as(
    req: &HttpRequest,
    (method, body): (reqwest::Method, Bytes),
    client: &Client,
    (base, hop): To<'_>,
    path: &str,
    extra: Option<(&str, String)>,
) -> Result<reqwest::Response, ApiError> {
    let client = client.as_ref().map_err(|e| ApiError::NoLeader(format!("cannot forward: {e}")))?;
    let mut out = client.request(method, format!("{}{path}", base.trim_end_matches('/')));
    for (name, value) in req.headers() {
        // X-Forwarded-For goes once, with the client's address added below;
        // the marks are this node's to set.
        let ours =
            name == "x-forwarded-for" || [FORWARDED, SHARD, SUBSCRIPTION_ID, HOP].contains(&name.as_str());
        // On a router's hop, who the caller is is the router's to say.
        let ours = ours || (hop.is_some() && name.as_str().eq_ignore_ascii_case(super::CLIENT_ID));
        let ours = ours || extra.as_ref().is_some_and(|(extra, _)| name.as_str().eq_ignore_ascii_case(extra));
        if !hop_by_hop(name) && name != HOST && name != CONTENT_LENGTH && !ours {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    out = out.header(FORWARDED, "1");
    if let Some(hop) = hop {
        out = out
            .header(SHARD, hop.shard.to_string())
            .header(HOP, hop.key)
            .header(super::CLIENT_ID, hop.caller);
    }
    if let Some((name, value)) = extra {
        out = out.header(name, value);
    }
    if let Some(peer) = req.peer_addr() {
        let forwarded = match req.headers().get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(before) => format!("{before}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        out = out.header("x-forwarded-for", forwarded);
    }
    out.body(body).send().await.map_err(|e| {
        ApiError::NoLeader(format!(
            "the node at {base} cannot be reached ({e}); retry with the same Idempotency-Key"
        ))
    })
}

/// `answer`, streamed back as it comes (a live event stream too).
fn streamed(answer: reqwest::Response) -> HttpResponse {
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
    response.streaming(answer.bytes_stream())
}

/// Headers about one connection, not the request (RFC 9110, 7.6.1).
fn hop_by_hop(name: &HeaderName) -> bool {
    *name == CONNECTION
        || *name == TRANSFER_ENCODING
        || matches!(name.as_str(), "keep-alive" | "te" | "trailer" | "upgrade" | "proxy-connection")
}
