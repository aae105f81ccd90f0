//! A running fulfil node: the embedding API.
//!
//! [`Node::start`] opens the store and starts every actor under a supervisor,
//! each on its own arbiter, inside an actix `System` on a dedicated thread.
//! Actix actors can only live inside a `System`; owning one here means an
//! application on a plain `#[tokio::main]` (or inside actix-web, or anything
//! else) can start a node and call it: [`Node`] only holds actor addresses,
//! whose `send` futures run on any executor.

use crate::actors::consumer::{Pause, Ping, Redeliver, Resume};
use crate::actors::delivery::{CompleteDelivery, Delivery, DeliveryActor, GetDelivery};
use crate::actors::faults::{FaultSpec, Faults};

use crate::actors::breaker::BreakerState;
use crate::actors::health::{Health, ServiceHealth, ServiceState};
use crate::actors::inventory::{
    AddProduct, GetProduct, GetReservation, InventoryActor, Reservation, Restock,
};
use crate::actors::notification::{ListNotifications, NotificationActor};
use crate::actors::order::{GetOrder, OrderActor, OrderCommand, OrderReceipt, PlaceOrder, Workflows};
use crate::actors::payment::{GetPayment, PaymentActor, PaymentRecord, BREAKER as PAYMENT_BREAKER};
use crate::actors::projection::{
    GetDeadLetter, GetStatus, ListDeadLetters, ListStatus, ProjectionActor, StatusReport,
};
use crate::actors::{ask, NodeError, ServiceEnv};
use crate::config::Settings;
use crate::domain::order::Command;
use crate::domain::{
    CustomerId, NewProduct, Notification, Order, OrderId, OrderRequest, Product, Sku, StatusView,
};
use crate::http::ClientLimiter;
use crate::metrics::Metrics;
use crate::store::{DeadLetter, Store};
use actix::dev::{MessageResponse, ToEnvelope};
use actix::{Actor, Addr, Arbiter, Handler, Recipient, Supervisor, System};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::sync::Semaphore;

/// The names of a node's services, as health reports and faults use them.
pub const SERVICES: [&str; 6] = ["order", "payment", "inventory", "delivery", "notification", "projection"];

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
    store_healthy: Arc<AtomicBool>,
    draining: AtomicBool,
    timeout: Duration,
    ping_timeout: Duration,
    admin_token: String,
    data_dir: std::path::PathBuf,
    running: Mutex<Option<Running>>,
}

/// Admission to one service: as many calls in flight as its mailbox holds.
/// A caller waits up to `wait` for room, then gets [`NodeError::Busy`]: a
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

#[derive(Clone)]
struct Actors {
    order: Addr<OrderActor>,
    payment: Addr<PaymentActor>,
    inventory: Addr<InventoryActor>,
    delivery: Addr<DeliveryActor>,
    notification: Addr<NotificationActor>,
    projection: Addr<ProjectionActor>,
}

/// The services of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Order,
    Payment,
    Inventory,
    Delivery,
    Notification,
    Projection,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Order,
        Service::Payment,
        Service::Inventory,
        Service::Delivery,
        Service::Notification,
        Service::Projection,
    ];

    pub fn name(self) -> &'static str {
        SERVICES[self as usize]
    }

    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The node's health, as `/health/*` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `ready`, or why not: `degraded` (a service is not running), `draining`
    /// (shutting down), `store_unavailable` (flushing fails); for liveness,
    /// `live` or `stuck`.
    pub status: &'static str,
    /// The last sequence number in the event log.
    pub log_head: u64,
    pub services: BTreeMap<&'static str, ServiceHealth>,
    /// Circuit breakers and their states; an open breaker does not make the
    /// node unready (orders are still taken, per the workflow's fallback).
    pub breakers: BTreeMap<&'static str, BreakerState>,
    /// For liveness: the services that did not answer a ping in time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresponsive: Vec<&'static str>,
}

impl HealthReport {
    pub fn is_ok(&self) -> bool {
        matches!(self.status, "ready" | "live")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store at {path}: {source}")]
    Store { path: String, source: crate::store::StoreError },
    #[error("cannot start the actors: {0}")]
    Actors(NodeError),
    #[error("cannot start the actor thread: {0}")]
    Thread(#[from] std::io::Error),
    #[error("the actor thread ended before the node started")]
    Aborted,
}

impl Node {
    /// Opens the store in `settings.store.path` and starts every service.
    pub async fn start(settings: Settings) -> Result<Node, StartError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stopped_tx, stopped) = oneshot::channel();
        // Absolute, so the log says exactly where the data is.
        let data_dir =
            std::path::absolute(&settings.store.path).unwrap_or_else(|_| settings.store.path.clone());
        let timeout = settings.timeouts.request();
        let ping_timeout = Duration::from_millis(settings.supervision.ping_timeout_ms);
        let admin_token = settings.admin.token.clone();
        let wait = Duration::from_millis(settings.mailbox.wait_ms);
        let m = &settings.mailbox;
        // In the order of `Service::ALL`.
        let gates = [m.order, m.payment, m.inventory, m.delivery, m.notification, m.projection]
            .map(|capacity| Gate::new(capacity, wait));
        let limiter = ClientLimiter::new(settings.http.rate_per_client, settings.http.burst_per_client);
        let metrics = Arc::new(Metrics::new());
        let env_metrics = metrics.clone();
        let faults = Faults::default();
        for (service, spec) in &settings.faults {
            faults.set(service, spec.clone());
        }
        let env_faults = faults.clone();
        std::thread::Builder::new().name("fulfil-actors".into()).spawn(move || {
            run_system(settings, env_faults, env_metrics, ready_tx, stopped_tx);
        })?;
        let started = ready_rx.await.map_err(|_| StartError::Aborted)??;
        tracing::info!(data = %data_dir.display(), "node started");
        Ok(Node {
            inner: Arc::new(Inner {
                actors: started.actors,
                gates,
                limiter,
                metrics,
                health: started.health,
                faults,
                head: started.head,
                store_healthy: started.store_healthy,
                draining: AtomicBool::new(false),
                timeout,
                ping_timeout,
                admin_token,
                data_dir,
                running: Mutex::new(Some(Running { system: started.system, stopped })),
            }),
        })
    }

    /// Stops every actor, flushes the store and closes it. Calls made after
    /// this fail with [`NodeError::Unavailable`]. Calling it twice is fine.
    pub async fn shutdown(&self) {
        self.drain();
        let running = self.inner.running.lock().ok().and_then(|mut r| r.take());
        if let Some(Running { system, stopped }) = running {
            system.stop();
            let _ = stopped.await;
            tracing::info!(data = %self.inner.data_dir.display(), "node stopped; store flushed");
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

    /// Where the node keeps its data.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    /// The bearer token of the admin API; empty when it is disabled.
    pub fn admin_token(&self) -> &str {
        &self.inner.admin_token
    }

    // ---- products ----

    pub async fn add_product(&self, product: NewProduct) -> Result<Product, NodeError> {
        self.call(Service::Inventory, &self.inner.actors.inventory, AddProduct(product)).await
    }

    pub async fn product(&self, sku: &str) -> Result<Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        self.call(Service::Inventory, &self.inner.actors.inventory, GetProduct(sku)).await
    }

    pub async fn restock(&self, sku: &str, qty: i64) -> Result<Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        self.call(Service::Inventory, &self.inner.actors.inventory, Restock { sku, qty }).await
    }

    /// The inventory's reservation for an order, if it knows the order.
    pub async fn reservation(&self, order_id: &str) -> Result<Option<Reservation>, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Inventory, &self.inner.actors.inventory, GetReservation(id)).await
    }

    // ---- orders ----

    /// Places an order; see [`PlaceOrder`] for the idempotency key.
    pub async fn place_order(
        &self,
        request: OrderRequest,
        idempotency_key: Option<String>,
    ) -> Result<OrderReceipt, NodeError> {
        let msg = PlaceOrder { request, idempotency_key };
        self.call(Service::Order, &self.inner.actors.order, msg).await
    }

    /// The command side's record of an order (always current).
    pub async fn order(&self, order_id: &str) -> Result<Order, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Order, &self.inner.actors.order, GetOrder(id)).await
    }

    /// The seller confirms the bank-transfer deposit.
    pub async fn confirm_deposit(&self, order_id: &str) -> Result<Order, NodeError> {
        self.command(order_id, Command::ConfirmDeposit).await
    }

    pub async fn cancel_order(&self, order_id: &str) -> Result<Order, NodeError> {
        self.command(order_id, Command::Cancel).await
    }

    /// The customer confirms receipt; the order closes.
    pub async fn confirm_receipt(&self, order_id: &str) -> Result<Order, NodeError> {
        self.command(order_id, Command::ConfirmReceipt).await
    }

    async fn command(&self, order_id: &str, command: Command) -> Result<Order, NodeError> {
        let msg = OrderCommand { order_id: order_id_of(order_id)?, command };
        self.call(Service::Order, &self.inner.actors.order, msg).await
    }

    /// The payment service's record for an order.
    pub async fn payment(&self, order_id: &str) -> Result<Option<PaymentRecord>, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Payment, &self.inner.actors.payment, GetPayment(id)).await
    }

    // ---- delivery ----

    /// The courier reports the delivery complete.
    pub async fn complete_delivery(&self, order_id: &str) -> Result<Delivery, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Delivery, &self.inner.actors.delivery, CompleteDelivery(id)).await
    }

    pub async fn delivery(&self, order_id: &str) -> Result<Delivery, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Delivery, &self.inner.actors.delivery, GetDelivery(id)).await
    }

    // ---- read side ----

    /// The status view of an order and anything about it that needs an
    /// operator's attention. Built from events; it may lag the commands by a
    /// moment.
    pub async fn status(&self, order_id: &str) -> Result<StatusReport, NodeError> {
        let id = order_id_of(order_id)?;
        self.call(Service::Projection, &self.inner.actors.projection, GetStatus(id)).await
    }

    /// The status views of a customer's orders, oldest first.
    pub async fn statuses(&self, customer: &str) -> Result<Vec<StatusView>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        self.call(Service::Projection, &self.inner.actors.projection, ListStatus(customer)).await
    }

    /// A customer's notifications, oldest first.
    pub async fn notifications(&self, customer: &str) -> Result<Vec<Notification>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        let msg = ListNotifications(customer);
        self.call(Service::Notification, &self.inner.actors.notification, msg).await
    }

    // ---- operations ----

    /// Calls a service through its admission gate (see [`Gate`]).
    async fn call<A, M, T>(&self, service: Service, addr: &Addr<A>, msg: M) -> Result<T, NodeError>
    where
        A: Actor + Handler<M>,
        A::Context: ToEnvelope<A, M>,
        M: actix::Message<Result = Result<T, NodeError>> + Send + 'static,
        T: Send + 'static,
        Result<T, NodeError>: MessageResponse<A, M> + Send,
    {
        let gate = &self.inner.gates[service as usize];
        let name = service.name();
        let asked = std::time::Instant::now();
        let permit = match tokio::time::timeout(gate.wait, gate.permits.acquire()).await {
            Ok(Ok(permit)) => permit,
            _ => {
                self.inner.metrics.mailbox_rejections.with_label_values(&[name]).inc();
                return Err(NodeError::Busy { service: name, retry_after: Duration::from_secs(1) });
            }
        };
        self.inner.metrics.mailbox_wait.with_label_values(&[name]).observe(asked.elapsed().as_secs_f64());
        let answer = ask(addr, msg, self.inner.timeout, name).await;
        drop(permit);
        answer
    }

    /// Admits one HTTP request from `client` under the per-client rate
    /// limit, or says how long it must wait.
    pub fn admit_client(&self, client: &str) -> Result<(), Duration> {
        match &self.inner.limiter {
            Some(limiter) => limiter.check(client).inspect_err(|_| {
                self.inner.metrics.rate_limited.with_label_values(&["http"]).inc();
            }),
            None => Ok(()),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Every metric in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.render(&self.health())
    }

    /// Readiness: every service running, the store flushing, not draining.
    pub fn health(&self) -> HealthReport {
        let head = *self.inner.head.borrow();
        let services = self.inner.health.snapshot(head);
        let status = if self.is_draining() {
            "draining"
        } else if !self.inner.store_healthy.load(Ordering::Relaxed) {
            "store_unavailable"
        } else if services.len() == SERVICES.len()
            && services.values().all(|s| s.state == ServiceState::Running)
        {
            "ready"
        } else {
            "degraded"
        };
        let breakers = BTreeMap::from([(PAYMENT_BREAKER, self.inner.metrics.breaker(PAYMENT_BREAKER))]);
        HealthReport { status, log_head: head, services, breakers, unresponsive: Vec::new() }
    }

    /// Liveness: can the node still make progress? Every actor must answer a
    /// ping within the configured timeout. A service that is restarting or
    /// backing off still answers: it is healing, not stuck.
    pub async fn live(&self) -> HealthReport {
        let pings = Service::ALL.map(|service| async move {
            let ping = tokio::time::timeout(self.inner.ping_timeout, self.send_to(service, Ping));
            (service, matches!(ping.await, Ok(Ok(()))))
        });
        let answers = futures_util::future::join_all(pings).await;
        let unresponsive: Vec<&'static str> =
            answers.into_iter().filter(|(_, ok)| !ok).map(|(s, _)| s.name()).collect();
        let mut report = self.health();
        report.status = if unresponsive.is_empty() { "live" } else { "stuck" };
        report.unresponsive = unresponsive;
        report
    }

    /// Stops a service from consuming the log; it keeps answering commands
    /// and catches up from its offset on [`Node::resume`].
    pub async fn pause(&self, service: Service) -> Result<(), NodeError> {
        self.send_to(service, Pause).await
    }

    pub async fn resume(&self, service: Service) -> Result<(), NodeError> {
        self.send_to(service, Resume).await
    }

    /// Injects a fault into a service (see [`FaultSpec`]); replaces any
    /// fault it had.
    pub fn inject_fault(&self, service: Service, spec: FaultSpec) -> Result<(), NodeError> {
        self.inject_fault_named(service.name(), spec)
    }

    /// Like [`Node::inject_fault`], by name: a service, or `"gateway"` for
    /// the simulated card gateway (its latency, jitter and failure rate).
    pub fn inject_fault_named(&self, name: &str, spec: FaultSpec) -> Result<(), NodeError> {
        if Service::parse(name).is_none() && name != crate::actors::gateway::NAME {
            return Err(NodeError::not_found("service", name));
        }
        spec.validate().map_err(NodeError::Invalid)?;
        self.inner.faults.set(name, spec);
        Ok(())
    }

    /// Clears the fault of a service or of the `"gateway"`.
    pub fn clear_fault_named(&self, name: &str) -> Result<(), NodeError> {
        if Service::parse(name).is_none() && name != crate::actors::gateway::NAME {
            return Err(NodeError::not_found("service", name));
        }
        self.inner.faults.clear(Some(name));
        Ok(())
    }

    /// Clears one service's fault, or every fault.
    pub fn clear_faults(&self, service: Option<Service>) {
        self.inner.faults.clear(service.map(Service::name));
    }

    pub fn faults(&self) -> BTreeMap<String, FaultSpec> {
        self.inner.faults.list()
    }

    /// Events the services set aside after failing on them repeatedly.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, NodeError> {
        self.call(Service::Projection, &self.inner.actors.projection, ListDeadLetters).await
    }

    /// Puts a dead letter back: its service applies the event again, and
    /// the dead letter is gone once that succeeds.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<(), NodeError> {
        let letter = self.call(Service::Projection, &self.inner.actors.projection, GetDeadLetter(id)).await?;
        let service = Service::parse(&letter.service)
            .ok_or_else(|| NodeError::not_found("service", &letter.service))?;
        let (a, msg) = (&self.inner.actors, Redeliver(letter));
        match service {
            Service::Order => self.call(service, &a.order, msg).await,
            Service::Payment => self.call(service, &a.payment, msg).await,
            Service::Inventory => self.call(service, &a.inventory, msg).await,
            Service::Delivery => self.call(service, &a.delivery, msg).await,
            Service::Notification => self.call(service, &a.notification, msg).await,
            Service::Projection => self.call(service, &a.projection, msg).await,
        }
    }

    /// Sends a message every service understands to one of them.
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
        let a = &self.inner.actors;
        let to: Recipient<M> = match service {
            Service::Order => a.order.clone().recipient(),
            Service::Payment => a.payment.clone().recipient(),
            Service::Inventory => a.inventory.clone().recipient(),
            Service::Delivery => a.delivery.clone().recipient(),
            Service::Notification => a.notification.clone().recipient(),
            Service::Projection => a.projection.clone().recipient(),
        };
        to.send(msg).await.map_err(|_| NodeError::Unavailable(service.name()))
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

/// An order id from a caller; one that cannot exist is simply not found.
fn order_id_of(raw: &str) -> Result<OrderId, NodeError> {
    OrderId::parse(raw).map_err(|_| NodeError::not_found("order", raw))
}

/// What the actor thread hands back once the node is up.
struct Started {
    actors: Actors,
    health: Health,
    head: tokio::sync::watch::Receiver<u64>,
    store_healthy: Arc<AtomicBool>,
    system: System,
}

/// The actor thread: boots the system, reports, runs until stopped, then
/// tears everything down and flushes the store.
fn run_system(
    settings: Settings,
    faults: Faults,
    metrics: Arc<Metrics>,
    ready: oneshot::Sender<Result<Started, StartError>>,
    stopped: oneshot::Sender<()>,
) {
    let runner = actix::System::new();
    let booted = runner.block_on(async { boot(&settings, faults, metrics) });
    let (actors, env, arbiters) = match booted {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let started = Started {
        actors,
        health: env.health.clone(),
        head: env.store.watch_head(),
        store_healthy: env.store.healthy(),
        system: System::current(),
    };
    if ready.send(Ok(started)).is_err() {
        System::current().stop();
    }
    if let Err(e) = runner.run() {
        tracing::error!(error = %e, "the actor system ended with an error");
    }
    for arbiter in arbiters {
        arbiter.stop();
        let _ = arbiter.join();
    }
    if let Err(e) = env.store.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    drop(env);
    let _ = stopped.send(());
}

fn boot(
    settings: &Settings,
    faults: Faults,
    metrics: Arc<Metrics>,
) -> Result<(Actors, ServiceEnv, Vec<Arbiter>), StartError> {
    let path = &settings.store.path;
    let store = Store::open(path, settings.store.cache_mb * 1024 * 1024)
        .map_err(|source| StartError::Store { path: path.display().to_string(), source })?;
    let env = ServiceEnv {
        store,
        health: Health::default(),
        faults,
        policy: settings.supervision.clone(),
        metrics,
    };
    let mailbox = &settings.mailbox;
    let mut arbiters = Vec::new();
    let fail = StartError::Actors;

    let inventory = supervise(&mut arbiters, mailbox.inventory, InventoryActor::new(&env).map_err(fail)?);
    let payment =
        supervise(&mut arbiters, mailbox.payment, PaymentActor::new(&env, &settings.payment).map_err(fail)?);
    let delivery = supervise(&mut arbiters, mailbox.delivery, DeliveryActor::new(&env).map_err(fail)?);
    let notification =
        supervise(&mut arbiters, mailbox.notification, NotificationActor::new(&env).map_err(fail)?);
    let projection = supervise(&mut arbiters, mailbox.projection, ProjectionActor::new(&env).map_err(fail)?);
    let workflows = Arc::new(Workflows {
        by_name: settings.workflows.clone(),
        default: settings.workflow.default.clone(),
    });
    let order =
        OrderActor::new(&env, inventory.clone(), payment.clone(), workflows, settings.timeouts.clone())
            .map_err(fail)?;
    let order = supervise(&mut arbiters, mailbox.order, order);
    Ok((Actors { order, payment, inventory, delivery, notification, projection }, env, arbiters))
}

/// Starts `actor` under a supervisor on an arbiter (thread) of its own, with
/// a bounded mailbox of `capacity`.
fn supervise<A>(arbiters: &mut Vec<Arbiter>, capacity: usize, actor: A) -> Addr<A>
where
    A: Actor<Context = actix::Context<A>> + actix::Supervised + Send,
{
    let arbiter = Arbiter::new();
    let addr = Supervisor::start_in_arbiter(&arbiter.handle(), move |ctx| {
        ctx.set_mailbox_capacity(capacity);
        actor
    });
    arbiters.push(arbiter);
    addr
}
