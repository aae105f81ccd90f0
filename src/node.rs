//! A running fulfil node: the embedding API.
//!
//! [`Node::start`] opens the store and starts every actor under a supervisor,
//! each on its own arbiter, inside an actix `System` on a dedicated thread.
//! Actix actors can only live inside a `System`; owning one here means an
//! application on a plain `#[tokio::main]` (or inside actix-web, or anything
//! else) can start a node and call it: [`Node`] only holds actor addresses,
//! whose `send` futures run on any executor.

use crate::actors::consumer::{Pause, Resume};
use crate::actors::delivery::{CompleteDelivery, Delivery, DeliveryActor, GetDelivery};
use crate::actors::gateway::CardGateway;
use crate::actors::health::{Health, ServiceHealth};
use crate::actors::inventory::{
    AddProduct, GetProduct, GetReservation, InventoryActor, Reservation, Restock,
};
use crate::actors::notification::{ListNotifications, NotificationActor};
use crate::actors::order::{GetOrder, OrderActor, OrderCommand, OrderReceipt, PlaceOrder, Workflows};
use crate::actors::payment::{GetPayment, PaymentActor, PaymentRecord};
use crate::actors::projection::{GetStatus, ListStatus, ProjectionActor};
use crate::actors::{ask, NodeError};
use crate::config::Settings;
use crate::domain::order::Command;
use crate::domain::{
    CustomerId, NewProduct, Notification, Order, OrderId, OrderRequest, Product, Sku, StatusView,
};
use crate::store::Store;
use actix::{Actor, Addr, Arbiter, Handler, Recipient, Supervisor, System};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// A handle to a running node; cheap to clone, safe to share across threads
/// and runtimes. Every call waits at most the configured request timeout.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    actors: Actors,
    health: Health,
    head: tokio::sync::watch::Receiver<u64>,
    timeout: Duration,
    data_dir: std::path::PathBuf,
    running: Mutex<Option<Running>>,
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

/// The services of a node, for [`Node::pause`] and [`Node::resume`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Order,
    Payment,
    Inventory,
    Delivery,
    Notification,
    Projection,
}

/// The node's health, as `/health/*` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `ready` when every service is running, else `degraded`.
    pub status: &'static str,
    /// The last sequence number in the event log.
    pub log_head: u64,
    pub services: BTreeMap<&'static str, ServiceHealth>,
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
        std::thread::Builder::new().name("fulfil-actors".into()).spawn(move || {
            run_system(settings, ready_tx, stopped_tx);
        })?;
        let (actors, health, head, system) = ready_rx.await.map_err(|_| StartError::Aborted)??;
        tracing::info!(data = %data_dir.display(), "node started");
        Ok(Node {
            inner: Arc::new(Inner {
                actors,
                health,
                head,
                timeout,
                data_dir,
                running: Mutex::new(Some(Running { system, stopped })),
            }),
        })
    }

    /// Stops every actor, flushes the store and closes it. Calls made after
    /// this fail with [`NodeError::Unavailable`]. Calling it twice is fine.
    pub async fn shutdown(&self) {
        let running = self.inner.running.lock().ok().and_then(|mut r| r.take());
        if let Some(Running { system, stopped }) = running {
            system.stop();
            let _ = stopped.await;
            tracing::info!(data = %self.inner.data_dir.display(), "node stopped; store flushed");
        }
    }

    /// Where the node keeps its data.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    // ---- products ----

    pub async fn add_product(&self, product: NewProduct) -> Result<Product, NodeError> {
        ask(&self.inner.actors.inventory, AddProduct(product), self.inner.timeout, "inventory").await
    }

    pub async fn product(&self, sku: &str) -> Result<Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        ask(&self.inner.actors.inventory, GetProduct(sku), self.inner.timeout, "inventory").await
    }

    pub async fn restock(&self, sku: &str, qty: i64) -> Result<Product, NodeError> {
        let sku = Sku::parse(sku).map_err(|_| NodeError::not_found("product", sku))?;
        ask(&self.inner.actors.inventory, Restock { sku, qty }, self.inner.timeout, "inventory").await
    }

    /// The inventory's reservation for an order, if it knows the order.
    pub async fn reservation(&self, order_id: &str) -> Result<Option<Reservation>, NodeError> {
        let id = order_id_of(order_id)?;
        ask(&self.inner.actors.inventory, GetReservation(id), self.inner.timeout, "inventory").await
    }

    // ---- orders ----

    /// Places an order; see [`PlaceOrder`] for the idempotency key.
    pub async fn place_order(
        &self,
        request: OrderRequest,
        idempotency_key: Option<String>,
    ) -> Result<OrderReceipt, NodeError> {
        let msg = PlaceOrder { request, idempotency_key };
        ask(&self.inner.actors.order, msg, self.inner.timeout, "order").await
    }

    /// The command side's record of an order (always current).
    pub async fn order(&self, order_id: &str) -> Result<Order, NodeError> {
        let id = order_id_of(order_id)?;
        ask(&self.inner.actors.order, GetOrder(id), self.inner.timeout, "order").await
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
        ask(&self.inner.actors.order, msg, self.inner.timeout, "order").await
    }

    /// The payment service's record for an order.
    pub async fn payment(&self, order_id: &str) -> Result<Option<PaymentRecord>, NodeError> {
        let id = order_id_of(order_id)?;
        ask(&self.inner.actors.payment, GetPayment(id), self.inner.timeout, "payment").await
    }

    // ---- delivery ----

    /// The courier reports the delivery complete.
    pub async fn complete_delivery(&self, order_id: &str) -> Result<Delivery, NodeError> {
        let id = order_id_of(order_id)?;
        ask(&self.inner.actors.delivery, CompleteDelivery(id), self.inner.timeout, "delivery").await
    }

    pub async fn delivery(&self, order_id: &str) -> Result<Delivery, NodeError> {
        let id = order_id_of(order_id)?;
        ask(&self.inner.actors.delivery, GetDelivery(id), self.inner.timeout, "delivery").await
    }

    // ---- read side ----

    /// The status view of an order. It is built from events and may lag the
    /// commands by a moment.
    pub async fn status(&self, order_id: &str) -> Result<StatusView, NodeError> {
        let id = order_id_of(order_id)?;
        ask(&self.inner.actors.projection, GetStatus(id), self.inner.timeout, "projection").await
    }

    /// The status views of a customer's orders, oldest first.
    pub async fn statuses(&self, customer: &str) -> Result<Vec<StatusView>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        ask(&self.inner.actors.projection, ListStatus(customer), self.inner.timeout, "projection").await
    }

    /// A customer's notifications, oldest first.
    pub async fn notifications(&self, customer: &str) -> Result<Vec<Notification>, NodeError> {
        let customer = CustomerId::parse(customer)?;
        let msg = ListNotifications(customer);
        ask(&self.inner.actors.notification, msg, self.inner.timeout, "notification").await
    }

    // ---- operations ----

    pub fn health(&self) -> HealthReport {
        let head = *self.inner.head.borrow();
        let services = self.inner.health.snapshot(head);
        let ready = !services.is_empty()
            && services.values().all(|s| s.state == crate::actors::health::ServiceState::Running);
        HealthReport { status: if ready { "ready" } else { "degraded" }, log_head: head, services }
    }

    /// Stops a service from consuming the log; it keeps answering commands
    /// and catches up from its offset on [`Node::resume`].
    pub async fn pause(&self, service: Service) -> Result<(), NodeError> {
        self.signal(service, Pause).await
    }

    pub async fn resume(&self, service: Service) -> Result<(), NodeError> {
        self.signal(service, Resume).await
    }

    /// Sends a message every service understands to one of them.
    async fn signal<M>(&self, service: Service, msg: M) -> Result<(), NodeError>
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
        to.send(msg).await.map_err(|_| NodeError::Unavailable("node"))
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

type Started = (Actors, Health, tokio::sync::watch::Receiver<u64>, System);

/// The actor thread: boots the system, reports, runs until stopped, then
/// tears everything down and flushes the store.
fn run_system(
    settings: Settings,
    ready: oneshot::Sender<Result<Started, StartError>>,
    stopped: oneshot::Sender<()>,
) {
    let runner = actix::System::new();
    let booted = runner.block_on(async { boot(&settings) });
    let (actors, health, store, arbiters) = match booted {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let started = (actors, health, store.watch_head(), System::current());
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
    if let Err(e) = store.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    drop(store);
    let _ = stopped.send(());
}

fn boot(settings: &Settings) -> Result<(Actors, Health, Store, Vec<Arbiter>), StartError> {
    let path = &settings.store.path;
    let store = Store::open(path, settings.store.cache_mb * 1024 * 1024)
        .map_err(|source| StartError::Store { path: path.display().to_string(), source })?;
    let health = Health::default();
    let mailbox = &settings.mailbox;
    let mut arbiters = Vec::new();

    let inventory = InventoryActor::new(store.clone(), health.clone()).map_err(StartError::Actors)?;
    let inventory = supervise(&mut arbiters, mailbox.inventory, inventory);
    let gateway = CardGateway::new(settings.payment.decline_suffix.clone());
    let payment = PaymentActor::new(store.clone(), health.clone(), gateway).map_err(StartError::Actors)?;
    let payment = supervise(&mut arbiters, mailbox.payment, payment);
    let delivery = DeliveryActor::new(store.clone(), health.clone()).map_err(StartError::Actors)?;
    let delivery = supervise(&mut arbiters, mailbox.delivery, delivery);
    let notification = NotificationActor::new(store.clone(), health.clone()).map_err(StartError::Actors)?;
    let notification = supervise(&mut arbiters, mailbox.notification, notification);
    let projection = ProjectionActor::new(store.clone(), health.clone()).map_err(StartError::Actors)?;
    let projection = supervise(&mut arbiters, mailbox.projection, projection);
    let workflows = Arc::new(Workflows {
        by_name: settings.workflows.clone(),
        default: settings.workflow.default.clone(),
    });
    let order = OrderActor::new(
        store.clone(),
        health.clone(),
        inventory.clone(),
        payment.clone(),
        workflows,
        settings.timeouts.clone(),
    )
    .map_err(StartError::Actors)?;
    let order = supervise(&mut arbiters, mailbox.order, order);
    Ok((Actors { order, payment, inventory, delivery, notification, projection }, health, store, arbiters))
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
