//! The actor thread: boots the actix System, runs it, tears it down.

use super::{Actors, StartError};
use crate::actors::delivery::DeliveryActor;
use crate::actors::inventory::InventoryActor;
use crate::actors::notification::NotificationActor;
use crate::actors::order::OrderActor;
use crate::actors::payment::PaymentActor;
use crate::actors::projection::ProjectionActor;
use crate::actors::ServiceEnv;
use crate::clock::Clock;
use crate::config::{MailboxSettings, Settings};
use crate::faults::Faults;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::service::Service;
use crate::store::Store;
use actix::{Actor, Addr, Arbiter, Supervisor, System};
use std::sync::Arc;
use tokio::sync::oneshot;

/// What the actor thread hands back once the node is up.
pub(super) struct Started {
    pub(super) actors: Actors,
    pub(super) health: Health,
    pub(super) head: tokio::sync::watch::Receiver<u64>,
    pub(super) store_condition: Arc<crate::store::Condition>,
    pub(super) store_writer: Arc<crate::store::WriterStats>,
    pub(super) store: Store,
    pub(super) system: System,
}

/// The actor thread: boots the system, reports, runs until stopped, then
/// tears everything down and flushes the store.
pub(super) fn run_system(
    parts: Parts,
    ready: oneshot::Sender<Result<Started, StartError>>,
    stopped: oneshot::Sender<()>,
) {
    let runner = actix::System::new();
    let booted = runner.block_on(async { boot(parts) });
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
        store_condition: env.store.condition(),
        store_writer: env.store.writer_stats(),
        store: env.store.clone(),
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

/// Where the notification service publishes every notification once it is
/// written (live streams read it).
pub(super) type Live = tokio::sync::broadcast::Sender<crate::actors::notification::Published>;

/// What the actor thread starts the services with.
pub(super) struct Parts {
    pub(super) settings: Settings,
    pub(super) faults: Faults,
    pub(super) metrics: Arc<Metrics>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) live: Live,
    /// Sends webhook deliveries: built before the store is opened, so that
    /// an unusable `webhooks.extra_ca_file` is refused first.
    pub(super) http: crate::actors::notification::Clients,
    /// A store opened by the caller (a failover leader's); none: the one in
    /// `settings.store.path`.
    pub(super) store: Option<Store>,
}

fn boot(parts: Parts) -> Result<(Actors, ServiceEnv, Vec<Arbiter>), StartError> {
    let Parts { settings, faults, metrics, clock, live, http, store } = parts;
    let settings = &settings;
    let path = &settings.store.path;
    let store = match store {
        Some(store) => store,
        None => Store::open(path, settings.store.cache_mb * 1024 * 1024)
            .map_err(|source| StartError::Store { path: path.display().to_string(), source })?,
    };
    let orphans =
        crate::actors::inventory::release_orphans(&store, |id| crate::actors::order::is_placed(&store, id));
    match orphans {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            orders = n,
            "released reservations of orders never placed (the node stopped while placing them)"
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not release the reservations of orders never placed; they stay held")
        }
    }
    scrub_card_numbers(&store);
    let env = ServiceEnv {
        store,
        health: Health::default(),
        faults,
        policy: settings.supervision.clone(),
        metrics,
        clock,
        timer_tick: std::time::Duration::from_millis(settings.timers.tick_ms),
        key_ttl_ms: settings.timers.idempotency_key_ttl_ms,
        hold_back: std::time::Duration::from_millis(settings.store.hold_back_ms),
    };
    let mut arbiters = Arbiters::new(settings.actors.threads, settings.mailbox.clone());
    let fail = StartError::Actors;

    let inventory = arbiters.supervise(Service::Inventory, InventoryActor::new(&env).map_err(fail)?);
    let payment =
        arbiters.supervise(Service::Payment, PaymentActor::new(&env, &settings.payment).map_err(fail)?);
    let delivery = arbiters.supervise(Service::Delivery, DeliveryActor::new(&env).map_err(fail)?);
    let workflows = Arc::new(settings.workflow_rules());
    let notification =
        NotificationActor::new(&env, workflows.clone(), &settings.webhooks, http, live).map_err(fail)?;
    let notification = arbiters.supervise(Service::Notification, notification);
    let projection = ProjectionActor::new(&env, workflows.clone()).map_err(fail)?;
    let projection = arbiters.supervise(Service::Projection, projection);
    let order = OrderActor::new(
        &env,
        inventory.clone(),
        payment.clone(),
        delivery.clone(),
        workflows,
        settings.timeouts.clone(),
    )
    .map_err(fail)?;
    let order = match &settings.stream.shard {
        Some(shard) => order.on_shard(settings.stream.sharding(), shard.index),
        None => order,
    };
    let order = arbiters.supervise(Service::Order, order);
    let threads = std::mem::take(&mut arbiters.threads);
    Ok((Actors { order, payment, inventory, delivery, notification, projection }, env, threads))
}

/// Rewrites what earlier versions kept of card numbers (idempotency
/// records, deferred payments) so that none stays on disk.
fn scrub_card_numbers(store: &Store) {
    let keys = crate::actors::order::idempotency::scrub_legacy(store);
    let payments = crate::actors::payment::upgrade_deferred(store);
    match (keys, payments) {
        (Ok(0), Ok(0)) => {}
        (Ok(keys), Ok(payments)) => {
            tracing::info!(keys, payments, "rewrote stored card numbers as digests and tokens")
        }
        (Err(e), _) | (_, Err(e)) => tracing::error!(error = %e, "could not rewrite stored card numbers"),
    }
}

/// The actor threads. Services are spread over them in turn. One thread per
/// service isolates them; fewer threads can be faster on a small machine
/// when the services contend for the store's writer lock (see `[actors]` in
/// `config.toml` and the README's performance section).
struct Arbiters {
    threads: Vec<Arbiter>,
    next: usize,
    mailbox: MailboxSettings,
}

/// Arbiters still held when a boot fails stop with it, and with them the
/// services already started, so that nothing keeps the store (and its lock)
/// open after a start that failed.
impl Drop for Arbiters {
    fn drop(&mut self) {
        for arbiter in self.threads.drain(..) {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }
}

impl Arbiters {
    fn new(count: usize, mailbox: MailboxSettings) -> Arbiters {
        Arbiters { threads: (0..count.max(1)).map(|_| Arbiter::new()).collect(), next: 0, mailbox }
    }

    /// Starts `service`'s `actor` under a supervisor on the next thread,
    /// with the bounded mailbox configured for it.
    fn supervise<A>(&mut self, service: Service, actor: A) -> Addr<A>
    where
        A: Actor<Context = actix::Context<A>> + actix::Supervised + Send,
    {
        let capacity = self.mailbox.capacity(service);
        let arbiter = &self.threads[self.next % self.threads.len()];
        self.next += 1;
        Supervisor::start_in_arbiter(&arbiter.handle(), move |ctx| {
            ctx.set_mailbox_capacity(capacity);
            actor
        })
    }
}
