//! A running fulfil node: the embedding API.
//!
//! [`Node::start`] opens the store and starts every actor under a supervisor,
//! each on its own arbiter, inside an actix `System` on a dedicated thread.
//! Actix actors can only live inside a `System`; owning one here means an
//! application on a plain `#[tokio::main]` (or inside actix-web, or anything
//! else) can start a node and call it: [`Node`] only holds actor addresses,
//! whose `send` futures run on any executor.
//!
//! - this file: [`Node`] itself, starting and stopping it, and how calls
//!   reach the actors (admission gates, timeouts);
//! - `api.rs`: the business calls (products, orders, payments, deliveries,
//!   status, notifications);
//! - `operations.rs`: health, liveness, draining, faults, dead letters,
//!   pausing services, metrics, the per-client rate limit;
//! - `boot.rs`: the actor thread: opening the store, starting each actor
//!   under a supervisor on its own arbiter, and tearing down.

mod acting;
mod api;
pub mod bodies;
mod boot;
pub mod check;
mod operations;

pub use acting::Acting;
pub use operations::HealthReport;

use crate::actors::ask;
use crate::actors::delivery::DeliveryActor;
use crate::actors::inventory::InventoryActor;
use crate::actors::notification::NotificationActor;
use crate::actors::order::OrderActor;
use crate::actors::payment::PaymentActor;
use crate::actors::projection::ProjectionActor;
use crate::config::Settings;
use crate::domain::OrderId;
use crate::error::{CallError, NodeError};
use crate::faults::Faults;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::resilience::ClientLimiter;
pub use crate::service::Service;
use actix::dev::{MessageResponse, ToEnvelope};
use actix::{Actor, Addr, Handler, Recipient, System};
use boot::run_system;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, Semaphore};

/// A handle to a running node; cheap to clone, safe to share across threads
/// and runtimes. Every call waits at most the configured request timeout.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    actors: Actors,
    gates: [Gate; 6],
    limiter: Option<ClientLimiter>,
    metrics: Arc<Metrics>,
    health: Health,
    faults: Faults,
    head: tokio::sync::watch::Receiver<u64>,
    store_condition: Arc<crate::store::Condition>,
    store_writer: Arc<crate::store::WriterStats>,
    /// For backups; every change goes through the actors.
    store: crate::store::Store,
    draining: AtomicBool,
    /// Until when a failover leader's lease is surely its own
    /// ([`Node::lead_until`]); `None`: the node answers with no lease.
    lease: std::sync::RwLock<Option<std::time::Instant>>,
    timeout: Duration,
    ping_timeout: Duration,
    authenticator: crate::auth::Authenticator,
    /// Every notification as it is written (live streams).
    live: tokio::sync::broadcast::Sender<crate::actors::notification::Published>,
    trusted_proxies: Vec<std::net::IpAddr>,
    body_timeout: Duration,
    workflows: Arc<crate::domain::Workflows>,
    data_dir: std::path::PathBuf,
    /// The shard this node runs, on a cluster split into shards.
    shard: Option<u32>,
    /// The cluster's hop key, on a shard that knows it: the shard takes
    /// requests with it only (from its node's router).
    hop: Option<String>,
    running: Mutex<Option<Running>>,
    /// Publishes the log to a NATS JetStream stream, when `[stream]` names
    /// a server.
    export: Mutex<Option<crate::stream::Export>>,
}

/// Admission to one service: as many calls in flight as its mailbox holds.
/// A caller waits up to `wait` for room, then gets [`CallError::Busy`]: a
/// full service pushes back instead of queueing without bound.
struct Gate {
    permits: Semaphore,
    wait: Duration,
}

impl Gate {
    fn new(capacity: usize, wait: Duration) -> Gate {
        Gate { permits: Semaphore::new(capacity), wait }
    }
}

/// What is needed to stop the actor system.
struct Running {
    system: System,
    stopped: oneshot::Receiver<()>,
}

/// Notifications a live stream may fall behind by before it is ended (its
/// client reconnects with `Last-Event-ID` and misses nothing).
const LIVE_BUFFER: usize = 4096;

#[derive(Clone)]
struct Actors {
    order: Addr<OrderActor>,
    payment: Addr<PaymentActor>,
    inventory: Addr<InventoryActor>,
    delivery: Addr<DeliveryActor>,
    notification: Addr<NotificationActor>,
    projection: Addr<ProjectionActor>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store at {path}: {source}")]
    Store { path: String, source: crate::store::StoreError },
    #[error("cannot start the actors: {0}")]
    Actors(NodeError),
    #[error("cannot listen on {address}: {source}")]
    Bind { address: String, source: std::io::Error },
    #[error("cannot start the actor thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the actor thread ended before the node started")]
    Aborted,
    #[error("{0}")]
    Auth(#[from] crate::auth::AuthError),
    /// A setting that cannot be used as it is (a file that cannot be read).
    #[error("{0}")]
    Settings(String),
    #[error(
        "http.bind {bind} is not loopback and no keys are configured: set auth.keys or auth.keys_file \
         (FULFIL_AUTH__KEYS_FILE), or bind to 127.0.0.1, so that the node is not open to anyone who can reach it"
    )]
    OpenToTheNetwork { bind: String },
}

impl Node {
    /// Opens the store in `settings.store.path` and starts every service.
    pub async fn start(settings: Settings) -> Result<Node, StartError> {
        Node::start_with_clock(settings, Arc::new(crate::clock::SystemClock)).await
    }

    /// Like [`Node::start`], with the engine's time taken from `clock`
    /// (timers such as order expiries): tests and embedders that drive time
    /// themselves pass a [`crate::clock::ManualClock`].
    pub async fn start_with_clock(
        settings: Settings,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<Node, StartError> {
        Node::start_parts(settings, clock, None).await
    }

    /// Like [`Node::start_with_clock`], on `store`, opened by the caller
    /// (a failover leader's store, which copies its commits to the stream).
    pub async fn start_on(
        settings: Settings,
        clock: Arc<dyn crate::clock::Clock>,
        store: crate::store::Store,
    ) -> Result<Node, StartError> {
        Node::start_parts(settings, clock, Some(store)).await
    }

    async fn start_parts(
        settings: Settings,
        clock: Arc<dyn crate::clock::Clock>,
        store: Option<crate::store::Store>,
    ) -> Result<Node, StartError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stopped_tx, stopped) = oneshot::channel();
        // Absolute, so the log says exactly where the data is.
        let data_dir =
            std::path::absolute(&settings.store.path).unwrap_or_else(|_| settings.store.path.clone());
        let timeout = settings.timeouts.request();
        let ping_timeout = Duration::from_millis(settings.supervision.ping_timeout_ms);
        let authenticator = crate::auth::Authenticator::from_settings(&settings.auth, &settings.admin)?;
        let http = crate::actors::notification::clients(&settings.webhooks).map_err(StartError::Settings)?;
        let settings_body_timeout_ms = settings.http.body_timeout_ms;
        let stream = settings.stream.clone();
        let shard = stream.shard.as_ref().map(|shard| shard.index);
        let hop = stream.shard.as_ref().map(|shard| shard.hop.clone()).filter(|hop| !hop.is_empty());
        let trusted_proxies = settings.trusted_proxies();
        let workflows = Arc::new(settings.workflow_rules());
        let wait = Duration::from_millis(settings.mailbox.wait_ms);
        let gates = Service::ALL.map(|s| Gate::new(settings.mailbox.capacity(s), wait));
        let limiter = ClientLimiter::new(settings.http.rate_per_client, settings.http.burst_per_client);
        let metrics = Arc::new(Metrics::new());
        let env_metrics = metrics.clone();
        let faults = Faults::default();
        // A follower's fault is its own (`startup::failover`), not a service's.
        for (service, spec) in settings.faults.iter().filter(|(s, _)| *s != crate::service::REPLICA) {
            faults.set(service, spec.clone());
        }
        let env_faults = faults.clone();
        let (live, _) = tokio::sync::broadcast::channel(LIVE_BUFFER);
        let live_for_actors = live.clone();
        std::thread::Builder::new().name("fulfil-actors".into()).spawn(move || {
            let parts = boot::Parts {
                settings,
                faults: env_faults,
                metrics: env_metrics,
                clock,
                live: live_for_actors,
                http,
                store,
            };
            run_system(parts, ready_tx, stopped_tx);
        })?;
        let started = ready_rx.await.map_err(|_| StartError::Aborted)??;
        tracing::info!(data = %data_dir.display(), "node started");
        let node = Node {
            inner: Arc::new(Inner {
                actors: started.actors,
                gates,
                limiter,
                metrics,
                health: started.health,
                faults,
                head: started.head,
                store_condition: started.store_condition,
                store_writer: started.store_writer,
                store: started.store,
                draining: AtomicBool::new(false),
                lease: std::sync::RwLock::new(None),
                timeout,
                ping_timeout,
                authenticator,
                live,
                trusted_proxies,
                body_timeout: Duration::from_millis(settings_body_timeout_ms),
                workflows,
                data_dir,
                shard,
                hop,
                running: Mutex::new(Some(Running { system: started.system, stopped })),
                export: Mutex::new(None),
            }),
        };
        if !stream.url.is_empty() {
            match crate::stream::Export::start(stream, node.inner.store.clone(), node.inner.metrics.clone()) {
                Ok(export) => *node.inner.export.lock().unwrap_or_else(|p| p.into_inner()) = Some(export),
                // Stop the services already running, so that nothing keeps
                // the store open after a start that failed.
                Err(e) => {
                    node.shutdown().await;
                    return Err(e.into());
                }
            }
        }
        node.until_services_run().await;
        Ok(node)
    }

    /// Waits (briefly) until every service has started on its thread, so
    /// that a node that is back from `start` is ready, unless a service
    /// fails to start (readiness then says which).
    async fn until_services_run(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.health().status == "degraded" && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops every actor, flushes the store and closes it. Calls made after
    /// this fail with [`CallError::Unavailable`]. Calling it twice is fine.
    pub async fn shutdown(&self) {
        self.drain();
        let running = self.inner.running.lock().ok().and_then(|mut r| r.take());
        let export = self.inner.export.lock().ok().and_then(|mut e| e.take());
        if let Some(export) = export {
            // Dropping it joins its thread, which ends at once when told.
            let _ = tokio::task::spawn_blocking(move || drop(export)).await;
        }
        if let Some(Running { system, stopped }) = running {
            self.commit_held_back().await;
            system.stop();
            let _ = stopped.await;
            tracing::info!(data = %self.inner.data_dir.display(), "node stopped; store flushed");
        }
    }

    /// Commits what the services write behind (the orders, the stock and
    /// reservations, the deliveries, the status views, the notifications)
    /// before they stop; if not, the next start folds the
    /// same events again, which is slower but loses nothing.
    async fn commit_held_back(&self) {
        use crate::actors::consumer::CommitHeldBack;
        let actors = &self.inner.actors;
        let writers: [(&str, actix::Recipient<CommitHeldBack>); 5] = [
            (crate::actors::order::NAME, actors.order.clone().recipient()),
            (crate::actors::inventory::NAME, actors.inventory.clone().recipient()),
            (crate::actors::delivery::NAME, actors.delivery.clone().recipient()),
            (crate::actors::projection::NAME, actors.projection.clone().recipient()),
            (crate::actors::notification::NAME, actors.notification.clone().recipient()),
        ];
        for (service, writer) in writers {
            match tokio::time::timeout(self.inner.timeout, writer.send(CommitHeldBack)).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!(service, error = %e, "committing at shutdown failed"),
                _ => tracing::warn!(service, "no answer to the commit at shutdown"),
            }
        }
    }

    /// Starts shutting down: readiness turns 503 and the HTTP gateway answers
    /// new requests with 503, while requests in flight finish.
    pub fn drain(&self) {
        if !self.inner.draining.swap(true, Ordering::SeqCst) {
            tracing::info!("draining: no new requests");
        }
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Answers requests only until `until` (a failover leader, each time
    /// it renews its lease): after it, another node may lead and have
    /// acknowledged writes this one never saw, so the HTTP gateway answers
    /// 503 `no-leader` and readiness turns 503, until the next renewal
    /// moves the time on. A leader paused past its lease (a long GC, a
    /// frozen VM) thus serves no stale read in the moment between waking
    /// and learning it was deposed.
    pub fn lead_until(&self, until: std::time::Instant) {
        *self.inner.lease.write().unwrap_or_else(|p| p.into_inner()) = Some(until);
    }

    /// Whether the time set by [`Node::lead_until`] has passed.
    pub fn lease_lapsed(&self) -> bool {
        let until = *self.inner.lease.read().unwrap_or_else(|p| p.into_inner());
        until.is_some_and(|until| std::time::Instant::now() >= until)
    }

    /// The shard this node runs, on a cluster split into shards.
    pub fn shard(&self) -> Option<u32> {
        self.inner.shard
    }

    /// Whether this node takes requests only from its node's router: a
    /// shard that knows its cluster's hop key (any process on the machine
    /// could reach its loopback port).
    pub fn routed_only(&self) -> bool {
        self.inner.hop.is_some()
    }

    /// Whether a request that carries `given` as its hop key may be
    /// served: on a node that is [`Node::routed_only`], only with the
    /// cluster's key (compared in constant time); elsewhere, always.
    pub fn takes_hop(&self, given: Option<&[u8]>) -> bool {
        match &self.inner.hop {
            None => true,
            Some(key) => crate::auth::same_secret(given.unwrap_or_default(), key.as_bytes()),
        }
    }

    /// Where the node keeps its data.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    /// The bearer token of the admin API; empty when it is disabled.
    /// Who a request with this `Authorization` header value is by.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<crate::domain::access::Principal, crate::auth::AuthError> {
        self.inner.authenticator.authenticate(authorization)
    }

    /// How long a request body may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        self.inner.body_timeout
    }

    /// Whether `ip` is a proxy whose client headers are believed.
    pub fn trusts_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.inner.trusted_proxies.contains(&ip)
    }

    /// Whether any key opens the admin API.
    pub fn admin_enabled(&self) -> bool {
        self.inner.authenticator.has_admin()
    }

    /// Whether no keys are configured: anyone may do anything.
    pub fn auth_is_open(&self) -> bool {
        self.inner.authenticator.is_open()
    }

    /// Every workflow, as parties see them, by name; `listed` says
    /// whether `may_list` lets the asker list each one's orders.
    pub(crate) fn workflows_for(
        &self,
        may_list: impl Fn(&crate::domain::Workflow) -> bool,
    ) -> Vec<bodies::Workflow> {
        bodies::Workflow::all_of(&self.inner.workflows, may_list)
    }

    /// Every workflow, by name (the embedding application lists them all).
    pub fn workflows(&self) -> Vec<bodies::Workflow> {
        self.workflows_for(|_| true)
    }

    /// Every workflow's rules, as configured.
    pub(crate) fn workflow_rules(&self) -> &crate::domain::Workflows {
        &self.inner.workflows
    }

    /// The workflow called `name`.
    pub fn workflow(&self, name: &str) -> Result<Arc<crate::domain::Workflow>, NodeError> {
        Ok(self.inner.workflows.get(name)?.clone())
    }

    /// Calls a service through its admission gate (see [`Gate`]).
    async fn call<A, M, T>(&self, service: Service, addr: &Addr<A>, msg: M) -> Result<T, NodeError>
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: actix::Message<Result = Result<T, NodeError>> + Send + 'static,
        T: Send + 'static,
        Result<T, NodeError>: MessageResponse<A, M> + Send,
    {
        self.admitted(service, ask(addr, msg, self.inner.timeout, service.name())).await
    }

    /// Runs `call` once `service`'s admission gate lets it in (see [`Gate`]).
    async fn admitted<T>(
        &self,
        service: Service,
        call: impl std::future::Future<Output = Result<T, NodeError>>,
    ) -> Result<T, NodeError> {
        let gate = &self.inner.gates[service.index()];
        let name = service.name();
        let asked = std::time::Instant::now();
        let permit = match tokio::time::timeout(gate.wait, gate.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                self.inner.metrics.mailbox_rejections.with_label_values(&[name]).inc();
                return Err(NodeError::Call(CallError::Busy {
                    service: name,
                    retry_after: Duration::from_secs(1),
                }));
            }
        };
        self.inner.metrics.mailbox_wait.with_label_values(&[name]).observe(asked.elapsed().as_secs_f64());
        let answer = call.await;
        drop(permit);
        answer
    }

    /// The address of `service` for a message every service understands:
    /// the one place that maps a [`Service`] to its actor.
    fn recipient<M>(&self, service: Service) -> Recipient<M>
    where
        M: actix::Message + Send + 'static,
        M::Result: Send,
        OrderActor: Handler<M>,
        PaymentActor: Handler<M>,
        InventoryActor: Handler<M>,
        DeliveryActor: Handler<M>,
        NotificationActor: Handler<M>,
        ProjectionActor: Handler<M>,
    {
        let a = &self.inner.actors;
        match service {
            Service::Order => a.order.clone().recipient(),
            Service::Payment => a.payment.clone().recipient(),
            Service::Inventory => a.inventory.clone().recipient(),
            Service::Delivery => a.delivery.clone().recipient(),
            Service::Notification => a.notification.clone().recipient(),
            Service::Projection => a.projection.clone().recipient(),
        }
    }

    /// Sends a control message (ping, pause, resume) to one service, past
    /// its admission gate: control must get through a full service.
    async fn send_to<M>(&self, service: Service, msg: M) -> Result<(), NodeError>
    where
        M: actix::Message<Result = ()> + Send + 'static,
        OrderActor: Handler<M>,
        PaymentActor: Handler<M>,
        InventoryActor: Handler<M>,
        DeliveryActor: Handler<M>,
        NotificationActor: Handler<M>,
        ProjectionActor: Handler<M>,
    {
        let to: Recipient<M> = self.recipient(service);
        to.send(msg).await.map_err(|_| NodeError::Call(CallError::Unavailable(service.name())))
    }
}

impl Drop for Inner {
    /// A node dropped without [`Node::shutdown`] still stops its actors.
    fn drop(&mut self) {
        if let Some(running) = self.running.get_mut().ok().and_then(Option::take) {
            running.system.stop();
        }
    }
}

/// The span of a call about one order: every line logged on its way
/// through the node carries the order id.
fn order_span(id: &OrderId) -> tracing::Span {
    tracing::info_span!("order", order = %id)
}

/// An order id from a caller; one that cannot exist is simply not found.
fn order_id_of(raw: &str) -> Result<OrderId, NodeError> {
    OrderId::parse(raw).map_err(|_| NodeError::not_found("order", raw))
}
