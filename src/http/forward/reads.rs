//! Reads a failover follower answers from its own store instead of
//! forwarding them: `GET /status/{order_id}`, the read clients poll, the
//! `GET /status` lists (a customer's orders, the parties' work lists), an
//! order's command side `GET /orders/{id}` and its delivery `GET
//! /deliveries/{id}`, a product and a pool's free units, what a customer
//! was told `GET /notifications`, the webhook subscriptions and the
//! workflows. Every follower holds the whole store (the stream's copies),
//! so reads spread over all nodes, and go on while no node leads.
//!
//! # Why a read here sees every acknowledged write
//!
//! A write is acknowledged only once its copy is in the stream. Before it
//! reads, the follower asks where the stream ends and waits until it has
//! applied that far ([`ReplicaReads::holding`]): so an order placed a
//! moment ago, through any node, is there. A follower that cannot tell,
//! or is not there within [`CATCH_UP`], forwards the read to the leader,
//! as it does every other request.
//!
//! # Same answer as the leader's
//!
//! The same keys authenticate (`auth`), the same per-client rate limit
//! counts (on this node), the same rule says who may see the order
//! ([`Principal::may_see_view`], and the listing rules), and the same
//! view comes out: the projection's committed view with the order's
//! later events folded on (`actors::projection::from_store`), and the
//! notification service's committed records with the same
//! (`actors::notification::from_store`), and likewise the order,
//! delivery and inventory services' records with the facts after their
//! offsets folded on by their own rules (`order_in`, `delivery_in`,
//! `product_in`).

use super::super::{client_by, ApiError};
use super::streams::Live;
use crate::actors::delivery::delivery_in;
use crate::actors::inventory::{availability_in, product_in};
use crate::actors::notification::{backlog_in, follow, notifications_in, subscriptions_in};
use crate::actors::order::order_in;
use crate::actors::projection::{page_in, report_in, reports_of_in, ListByStatus, Page, StatusReport};
use crate::auth::Authenticator;
use crate::cluster::{ReplicaReads, StreamEnd};
use crate::config::Settings;
use crate::domain::access::{OrderFacts, Principal};
use crate::domain::stay::Stay;
use crate::domain::{CustomerId, Notification, Order, OrderId, Sku, Workflows};
use crate::error::{NodeError, Refused};
use crate::http::notifications::Whose;
use crate::node::bodies;
use crate::resilience::ClientLimiter;
use crate::store::Reader;
use actix_web::http::header;
use actix_web::HttpRequest;
use futures_util::stream::{BoxStream, StreamExt};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The longest a read waits for this follower to apply what the stream
/// held when it came, before the leader is asked instead.
pub const CATCH_UP: Duration = Duration::from_secs(1);
/// Events after a live stream's `Last-Event-ID` a follower reads itself;
/// a longer backlog the leader reads, a page at a time.
pub const BACKLOG_AT_MOST: usize = 10_000;
/// Copies a follower may lag behind the stream's end and still wait to
/// answer a read; one further behind (starting, catching up) forwards
/// at once rather than make every read wait [`CATCH_UP`].
pub const LAG_AT_MOST: u64 = 1000;

/// What a follower needs to answer reads as the leader would.
pub struct LocalReads {
    reads: ReplicaReads,
    end: StreamEnd,
    authenticator: Authenticator,
    limiter: Option<ClientLimiter>,
    workflows: Arc<Workflows>,
    trusted_proxies: Vec<IpAddr>,
    forwarded: ForwardedReads,
    live: Arc<Live>,
}

/// Why a read this follower could answer went to the leader instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forwarded {
    /// The servers could not say where the stream ends.
    Unreachable,
    /// More than [`LAG_AT_MOST`] copies behind the stream's end.
    Behind,
    /// Not caught up with the stream's end within [`CATCH_UP`].
    Late,
    /// Its store could not answer (being refilled, unreadable, or too
    /// many events past the projection's view to fold).
    Unreadable,
}

impl Forwarded {
    const ALL: [Forwarded; 4] =
        [Forwarded::Unreachable, Forwarded::Behind, Forwarded::Late, Forwarded::Unreadable];

    fn name(self) -> &'static str {
        match self {
            Forwarded::Unreachable => "unreachable",
            Forwarded::Behind => "behind",
            Forwarded::Late => "late",
            Forwarded::Unreadable => "unreadable",
        }
    }
}

/// The reads a follower sent to the leader, by why: for an operator
/// asking why a follower does not take its share of the reads.
#[derive(Debug, Default)]
struct ForwardedReads([AtomicU64; 4]);

impl ForwardedReads {
    /// Counts one read sent on for `why`; `None`, the answer that says so.
    fn count<R>(&self, why: Forwarded) -> Option<R> {
        self.0[why as usize].fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl LocalReads {
    pub fn new(
        settings: &Settings,
        reads: ReplicaReads,
        end: StreamEnd,
    ) -> Result<LocalReads, crate::auth::AuthError> {
        let workflows = Arc::new(settings.workflow_rules());
        Ok(LocalReads {
            live: Live::start(reads.clone(), workflows.clone()),
            reads,
            end,
            authenticator: Authenticator::from_settings(&settings.auth, &settings.admin)?,
            limiter: ClientLimiter::new(settings.http.rate_per_client, settings.http.burst_per_client),
            workflows,
            trusted_proxies: settings.trusted_proxies(),
            forwarded: ForwardedReads::default(),
        })
    }

    /// `fulfil_failover_forwarded_reads_total`, in Prometheus text format.
    pub fn forwarded_metrics(&self) -> String {
        let mut text = String::from(
            "# HELP fulfil_failover_forwarded_reads_total Reads this follower could answer and sent to the \
             leader instead, by why.\n# TYPE fulfil_failover_forwarded_reads_total counter\n",
        );
        for why in Forwarded::ALL {
            let count = self.forwarded.0[why as usize].load(Ordering::Relaxed);
            text += &format!("fulfil_failover_forwarded_reads_total{{reason=\"{}\"}} {count}\n", why.name());
        }
        text
    }

    /// The order's report, if this follower can give it (`None`: the
    /// leader is asked). Credentials and the rate limit are checked first,
    /// as the leader's edge checks them.
    pub async fn status(&self, req: &HttpRequest, order_id: &str) -> Result<Option<StatusReport>, ApiError> {
        let principal = self.admit(req)?;
        let id = OrderId::parse(order_id).map_err(|_| NodeError::not_found("order", order_id))?;
        let Some(report) = self.fresh(move |store, workflows| report_in(store, workflows, &id)).await? else {
            return Ok(None);
        };
        match principal.may_see_view(&report.view, &self.workflows) {
            true => Ok(Some(report)),
            false => Err(NodeError::not_found("order", order_id).into()),
        }
    }

    /// The order's command side (`GET /orders/{id}`), as
    /// [`LocalReads::status`]: the leader's checks, the same rule on who
    /// may see it ([`Principal::may_see`]), the order as the order service
    /// would answer ([`order_in`]).
    pub async fn order(&self, req: &HttpRequest, order_id: &str) -> Result<Option<bodies::Order>, ApiError> {
        let principal = self.admit(req)?;
        let id = OrderId::parse(order_id).map_err(|_| NodeError::not_found("order", order_id))?;
        let Some(order) = self.fresh(move |store, workflows| order_in(store, workflows, &id)).await? else {
            return Ok(None);
        };
        match may_see(&principal, &order, &self.workflows)? {
            true => Ok(Some(order.into())),
            false => Err(NodeError::not_found("order", order_id).into()),
        }
    }

    /// An order's delivery (`GET /deliveries/{order_id}`), as
    /// [`LocalReads::status`]: the leader's checks in the leader's order
    /// (who does not see everything must see the order first), the
    /// delivery as the delivery service would answer ([`delivery_in`]).
    pub async fn delivery(
        &self,
        req: &HttpRequest,
        order_id: &str,
    ) -> Result<Option<bodies::Delivery>, ApiError> {
        let principal = self.admit(req)?;
        let id = OrderId::parse(order_id).map_err(|_| NodeError::not_found("order", order_id))?;
        let read = move |store: &Reader<'_>, workflows: &Workflows| {
            if !principal.sees_everything() {
                let Some(order) = order_in(store, workflows, &id)? else { return Ok(None) };
                if !may_see(&principal, &order, workflows)? {
                    return Err(NodeError::not_found("order", &id));
                }
            }
            delivery_in(store, &id)
        };
        Ok(self.fresh(read).await?.map(Into::into))
    }

    /// A product (`GET /products/{sku}`), as [`LocalReads::status`]: the
    /// product as the inventory service would answer ([`product_in`]).
    pub async fn product(&self, req: &HttpRequest, sku: &str) -> Result<Option<bodies::Product>, ApiError> {
        self.admit(req)?;
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        Ok(self.fresh(move |store, _| product_in(store, &sku)).await?.map(Into::into))
    }

    /// The units of a pool free for a whole range
    /// (`GET /products/{sku}/availability`), as [`LocalReads::product`].
    pub async fn availability(
        &self,
        req: &HttpRequest,
        sku: &str,
        from: &str,
        to: &str,
    ) -> Result<Option<bodies::Availability>, ApiError> {
        self.admit(req)?;
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        let stay = Stay::parse(from, to).map_err(NodeError::from)?;
        let (asked, range) = (sku.clone(), stay);
        let free = self.fresh(move |store, _| availability_in(store, &asked, &range)).await?;
        Ok(free.map(|free| bodies::Availability { sku, stay, free }))
    }

    /// The caller's webhook subscriptions (all of them for who sees
    /// everything), as [`LocalReads::status`].
    pub async fn subscriptions(
        &self,
        req: &HttpRequest,
    ) -> Result<Option<Vec<bodies::Subscription>>, ApiError> {
        let principal = self.admit(req)?;
        let Some(all) = self.fresh(|store, _| subscriptions_in(store).map(Some)).await? else {
            return Ok(None);
        };
        let me = principal.to_string();
        let mine = all.into_iter().filter(|s| principal.sees_everything() || s.owner == me);
        Ok(Some(mine.map(Into::into).collect()))
    }

    /// The workflows, and which the caller may list the orders of: from
    /// the settings every node shares, after the leader's checks.
    pub fn workflows(&self, req: &HttpRequest) -> Result<Vec<bodies::Workflow>, ApiError> {
        let principal = self.admit(req)?;
        Ok(bodies::Workflow::all_of(&self.workflows, |w| principal.may_list(w)))
    }

    /// A customer's reports, oldest first, as [`LocalReads::status`].
    pub async fn statuses(
        &self,
        req: &HttpRequest,
        customer: &str,
    ) -> Result<Option<Vec<StatusReport>>, ApiError> {
        let customer = self.listing_customer(req, customer)?;
        self.fresh(move |store, workflows| reports_of_in(store, workflows, &customer)).await
    }

    /// What a customer was told, oldest first, as [`LocalReads::status`].
    pub async fn notifications(
        &self,
        req: &HttpRequest,
        customer: &str,
    ) -> Result<Option<Vec<Notification>>, ApiError> {
        let customer = self.listing_customer(req, customer)?;
        self.fresh(move |store, workflows| notifications_in(store, workflows, &customer)).await
    }

    /// Ends the live streams this follower follows.
    pub fn end_streams(&self) {
        self.live.end();
    }

    /// `customer`, if the request's principal may list what is theirs.
    fn listing_customer(&self, req: &HttpRequest, customer: &str) -> Result<CustomerId, ApiError> {
        customer_for(&self.admit(req)?, customer)
    }

    /// A live stream of notifications (`GET /events`), followed from this
    /// follower's store (`streams`); `None` when it cannot follow it (the
    /// leader serves it). The leader's checks, in the leader's order.
    pub(in crate::http) async fn events(
        &self,
        req: &HttpRequest,
        whose: Whose<'_>,
        resume: Option<u64>,
    ) -> Result<Option<BoxStream<'static, Notification>>, ApiError> {
        let principal = self.admit(req)?;
        let forbidden = |why: String| ApiError::from(NodeError::from(Refused::Forbidden(why)));
        let wanted = match whose {
            Whose::Customer(customer) => {
                let customer = customer_for(&principal, customer)?;
                return self.customer_events(customer, resume.unwrap_or(0)).await;
            }
            Whose::Workflow(workflow) => {
                let wf = self.workflows.get(workflow).map_err(NodeError::from)?;
                if let Some(why) = principal.work_list_refused(wf) {
                    return Err(forbidden(why));
                }
                vec![wf.name.clone()]
            }
            Whose::Party(party) => {
                if let Some(why) = principal.party_stream_refused(party) {
                    return Err(forbidden(why));
                }
                let wanted = self.workflows.of_party(party);
                if wanted.is_empty() {
                    return Err(NodeError::not_found("party with a step in any workflow", party).into());
                }
                wanted
            }
        };
        self.workflows_events(wanted, resume).await
    }

    /// Everything `customer` was told, then what it is told as it happens.
    async fn customer_events(
        &self,
        customer: CustomerId,
        after: u64,
    ) -> Result<Option<BoxStream<'static, Notification>>, ApiError> {
        let Some(live) = self.live.subscribe().await else { return Ok(None) };
        let asked = customer.clone();
        let Some(backlog) =
            self.fresh(move |store, workflows| notifications_in(store, workflows, &asked)).await?
        else {
            return Ok(None);
        };
        let backlog = futures_util::stream::iter(backlog.into_iter().map(Ok));
        Ok(Some(follow(backlog, live, after, move |n, _| n.customer == customer).boxed()))
    }

    /// What the `wanted` workflows' orders are told as it happens, after
    /// what they were told since `resume` if given.
    async fn workflows_events(
        &self,
        wanted: Vec<String>,
        resume: Option<u64>,
    ) -> Result<Option<BoxStream<'static, Notification>>, ApiError> {
        let Some(live) = self.live.subscribe().await else { return Ok(None) };
        let backlog = match resume {
            Some(after) => {
                let (asked, workflows) = (wanted.clone(), self.workflows.clone());
                let read = move |store: &Reader<'_>, _: &Workflows| {
                    backlog_in(store, &workflows, &asked, after, BACKLOG_AT_MOST)
                };
                match self.fresh(read).await? {
                    Some(backlog) => backlog,
                    None => return Ok(None),
                }
            }
            None => Vec::new(),
        };
        let backlog = futures_util::stream::iter(backlog.into_iter().map(Ok));
        let keep = move |_: &Notification, w: Option<&str>| w.is_some_and(|w| wanted.iter().any(|x| x == w));
        Ok(Some(follow(backlog, live, resume.unwrap_or(0), keep).boxed()))
    }

    /// A page of `workflow`'s orders at `status`, as
    /// [`LocalReads::status`]: the leader's checks in the leader's order.
    pub async fn page(
        &self,
        req: &HttpRequest,
        workflow: &str,
        status: &str,
        leg: Option<&str>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Option<Page>, ApiError> {
        let principal = self.admit(req)?;
        let wf = self.workflows.get(workflow).map_err(NodeError::from)?;
        if let Some(why) = principal.work_list_refused(wf) {
            return Err(NodeError::from(Refused::Forbidden(why)).into());
        }
        let q = ListByStatus::of(workflow, status, leg, after, limit)?;
        self.fresh(move |store, workflows| page_in(store, workflows, &q)).await
    }

    /// What `read` finds in this follower's store once it holds every
    /// copy the stream held when this was called; `None` (the leader
    /// answers) when it cannot say, or does not catch up within
    /// [`CATCH_UP`]. Only "not found" is an answer among its errors: any
    /// other is this follower's, and the leader answers instead.
    async fn fresh<R: Send + 'static>(
        &self,
        read: impl FnOnce(&Reader<'_>, &Workflows) -> Result<Option<R>, NodeError> + Send + 'static,
    ) -> Result<Option<R>, ApiError> {
        let end = match self.end.last().await {
            Ok(end) => end,
            Err(e) => {
                tracing::debug!(error = %e, "failover: cannot tell where the stream ends; the leader answers");
                return Ok(self.forwarded.count(Forwarded::Unreachable));
            }
        };
        if end > self.reads.applied() + LAG_AT_MOST {
            return Ok(self.forwarded.count(Forwarded::Behind));
        }
        if !self.reads.holding(end, CATCH_UP).await {
            return Ok(self.forwarded.count(Forwarded::Late));
        }
        let (reads, workflows) = (self.reads.clone(), self.workflows.clone());
        let read = actix_web::web::block(move || reads.read(|store| read(store, &workflows)));
        match read.await {
            Err(_) | Ok(None) | Ok(Some(Ok(None))) => Ok(self.forwarded.count(Forwarded::Unreadable)),
            Ok(Some(Ok(found))) => Ok(found),
            Ok(Some(Err(e @ NodeError::Refused(Refused::NotFound { .. })))) => Err(e.into()),
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, "failover: this follower's store cannot be read; the leader answers");
                Ok(self.forwarded.count(Forwarded::Unreadable))
            }
        }
    }

    /// The request's principal, within its rate.
    fn admit(&self, req: &HttpRequest) -> Result<Principal, ApiError> {
        let authorization = req.headers().get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("?"));
        let principal = self
            .authenticator
            .authenticate(authorization)
            .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
        if let Some(limiter) = &self.limiter {
            let client = client_by(req, &principal, false, |ip| self.trusted_proxies.contains(&ip));
            limiter.check(&client).map_err(ApiError::RateLimited)?;
        }
        Ok(principal)
    }
}

/// `customer`, if `principal` may list what is theirs.
/// Whether `principal` may see `order`: the leader's rule.
fn may_see(principal: &Principal, order: &Order, workflows: &Workflows) -> Result<bool, NodeError> {
    let facts = OrderFacts { customer: &order.customer, accepted_by: order.accepted_by.as_deref() };
    Ok(principal.may_see(facts, workflows.get(&order.workflow)?))
}

fn customer_for(principal: &Principal, customer: &str) -> Result<CustomerId, ApiError> {
    let customer = CustomerId::parse(customer).map_err(NodeError::from)?;
    match principal.customer_list_refused(&customer) {
        None => Ok(customer),
        Some(why) => Err(NodeError::from(Refused::Forbidden(why)).into()),
    }
}
