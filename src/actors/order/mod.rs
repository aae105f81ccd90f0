//! The order service and the saga's process manager.
//!
//! It alone writes the events that change an order's status, so every
//! transition goes through the state machine in [`crate::domain::order`].
//! It places orders (asking inventory for prices and, for card payment, the
//! payment service for an authorisation, both synchronously with timeouts),
//! runs the customers' and sellers' commands, and reacts to the facts the
//! other services record in the log (stock reserved or short, delivery
//! started or completed).
//!
//! Its records are written behind ([`super::write_behind`]): a fact's
//! change to an order is folded in memory and committed with others every
//! so often, while the reactions it decides are appended to the log at
//! once; after a crash the facts are folded again and the reactions the
//! log holds already are not appended twice ([`super::recorded`]). Commands are
//! written at once, durable before they are answered.

use super::consumer::{catch_up, Cursor, Delivery, LogConsumer};
use super::delivery::DeliveryActor;
use super::inventory::{InventoryActor, Quote, ReleaseNow, ReserveNow};
use super::payment::PaymentActor;
use super::recorded::Recorded;
use super::supervision::guarded;
use super::write_behind::WriteBehind;
use super::{ask, durably, inventory, ServiceEnv};
use crate::clock::Clock;
use crate::config::TimeoutSettings;
use crate::domain::order::{Command, Settlement};
use crate::domain::shard::Shards;
use crate::domain::{
    Event, EventKind, Money, Order, OrderId, OrderRequest, OrderStatus, PaymentMethod, ReservationMode,
    ValidOrder, Workflow, Workflows,
};
use crate::error::{CallError, NodeError, Refused};
use crate::store::{abort, Table, Tx, TxResult};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

mod charge;
mod course;
mod from_store;
pub mod idempotency;
mod parties;
mod timers;

use charge::Charge;
pub use course::LegOrder;
pub use from_store::order_in;

// ---- messages ----

/// Places an order. With an idempotency key, a retry of the same request
/// returns the first receipt and creates nothing.
#[derive(Message)]
#[rtype(result = "Result<OrderReceipt, NodeError>")]
pub struct PlaceOrder {
    pub request: OrderRequest,
    pub idempotency_key: Option<String>,
}

/// What placing an order answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderReceipt {
    pub id: OrderId,
    pub status: OrderStatus,
    pub total: Money,
    /// True when this is the stored answer to an earlier request with the
    /// same idempotency key.
    pub replayed: bool,
}

/// A command on an existing order.
#[derive(Message)]
#[rtype(result = "Result<Order, NodeError>")]
pub struct OrderCommand {
    pub order_id: OrderId,
    pub command: Command,
    /// The principal that gives it, when one is known: recorded with the
    /// command's events (see [`crate::domain::EventKind::Acted`]).
    pub by: Option<String>,
}

/// The command side's record of an order.
#[derive(Message)]
#[rtype(result = "Result<Order, NodeError>")]
pub struct GetOrder(pub OrderId);

/// Writes the placements that are ready (sent to itself; see
/// [`OrderActor::placing`]).
#[derive(Message)]
#[rtype(result = "()")]
struct RecordPlacements;

// ---- state ----

/// Longest idempotency key accepted.
const MAX_KEY_LEN: usize = 255;

pub struct OrderActor {
    cursor: Cursor,
    inventory: Addr<InventoryActor>,
    payment: Addr<PaymentActor>,
    delivery: Addr<DeliveryActor>,
    workflows: Arc<Workflows>,
    timeouts: TimeoutSettings,
    /// Idempotency keys of placements still waiting on other services.
    in_flight: HashSet<String>,
    /// Placements priced and authorised, waiting to be written. Every one
    /// that becomes ready while the actor is busy is written by the next
    /// [`RecordPlacements`] in one store write: the log's writer lock is the
    /// node's narrowest point, and a write's cost there is mostly fixed.
    placing: Vec<Placing>,
    /// Orders held while the delivery decides a leg command, and the
    /// commands waiting behind them (see [`course`]).
    turns: course::Turns,
    /// The engine's time, for timers.
    clock: Arc<dyn Clock>,
    /// How often due timers are looked for.
    timer_tick: Duration,
    /// How long an idempotency key is remembered.
    key_ttl_ms: u64,
    /// The records (orders, timers, parties' orders), written behind.
    behind: WriteBehind,
    /// On a cluster split into shards: the shards, and the one whose store
    /// this is. Its new orders get ids that name it.
    shard: Option<(Shards, u32)>,
}

/// A placement waiting to be written, and who waits for its receipt.
struct Placing {
    priced: Priced,
    key: Option<String>,
    reply: oneshot::Sender<Result<OrderReceipt, NodeError>>,
}

const ORDERS: Table<Order> = Table::new("orders");
pub const NAME: &str = crate::service::Service::Order.name();

/// A placement ready to be written: everything the other services said.
struct Priced {
    id: OrderId,
    order: ValidOrder,
    prices: Vec<Money>,
    settlement: Settlement,
    /// Units reserved at placement, for workflows that reserve then.
    reserved: Option<Vec<String>>,
}

enum Prepared {
    Replay(OrderReceipt),
    New(OrderId, ValidOrder),
}

impl OrderActor {
    pub fn new(
        env: &ServiceEnv,
        inventory: Addr<InventoryActor>,
        payment: Addr<PaymentActor>,
        delivery: Addr<DeliveryActor>,
        workflows: Arc<Workflows>,
        timeouts: TimeoutSettings,
    ) -> Result<Self, NodeError> {
        Ok(OrderActor {
            cursor: Cursor::load(env, NAME)?,
            inventory,
            payment,
            delivery,
            workflows,
            timeouts,
            in_flight: HashSet::new(),
            placing: Vec::new(),
            turns: course::Turns::default(),
            clock: env.clock.clone(),
            timer_tick: env.timer_tick,
            key_ttl_ms: env.key_ttl_ms,
            // Only this service writes the events that change a status.
            behind: WriteBehind::new(env, NAME).reacting(|kind| kind.status().is_some()),
            shard: None,
        })
    }

    /// Places orders as shard `index` of `shards`: each new order's id
    /// names this shard, and an order drawing on another shard's products
    /// is refused (their stock is decided there).
    pub fn on_shard(mut self, shards: Shards, index: u32) -> Self {
        self.shard = Some((shards, index));
        self
    }

    /// A new order's id: on a shard, one that names it.
    fn new_id(&self, order: &ValidOrder) -> Result<OrderId, NodeError> {
        let Some((shards, here)) = self.shard else { return Ok(new_order_id()) };
        let there =
            shards.of_lines(order.lines.iter().map(|(sku, _)| sku)).map_err(|e| Refused::Invalid(e.0))?;
        if let Some(there) = there.filter(|there| *there != here) {
            return Err(Refused::Invalid(format!(
                "this order's items are held on shard {there}, not on shard {here}, which it was sent to"
            ))
            .into());
        }
        shards.order_id_on(here, new_order_id).ok_or_else(|| {
            CallError::Failed { service: NAME, reason: format!("no order id of shard {here} could be made") }
                .into()
        })
    }

    /// Holds records back for `every` instead (tests that look before the
    /// commit).
    pub fn committing_every(self, every: Duration) -> Self {
        OrderActor { behind: self.behind.every(every), ..self }
    }

    /// An order's record, held back or committed.
    fn order(&self, id: &OrderId) -> Result<Order, NodeError> {
        self.behind.get(ORDERS, id.as_str())?.ok_or_else(|| NodeError::not_found("order", id))
    }

    /// Every check that needs no other service, and the idempotency lookup.
    fn prepare(&mut self, msg: &PlaceOrder) -> Result<Prepared, NodeError> {
        let workflow = self.workflows.get(msg.request.workflow_name(self.workflows.default_name()))?;
        let order = msg.request.validate(workflow)?;
        if let Some(key) = &msg.idempotency_key {
            if key.is_empty() || key.len() > MAX_KEY_LEN || !key.chars().all(|c| c.is_ascii_graphic()) {
                return Err(NodeError::Refused(Refused::Invalid(format!(
                    "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
                ))));
            }
            let since = self.clock.now_ms().saturating_sub(self.key_ttl_ms);
            if let Some(first) = idempotency::lookup(&self.cursor.store, key, since)? {
                return match first.is_for(&order) {
                    true => Ok(Prepared::Replay(OrderReceipt { replayed: true, ..first.receipt })),
                    false => Err(NodeError::Refused(Refused::IdempotencyMismatch)),
                };
            }
        }
        let id = self.new_id(&order)?;
        if let Some(key) = &msg.idempotency_key {
            if !self.in_flight.insert(key.clone()) {
                return Err(NodeError::Refused(Refused::IdempotencyInProgress));
            }
        }
        Ok(Prepared::New(id, order))
    }

    /// Asks inventory for prices and, for card payment, payment for an
    /// authorisation. Runs while the actor serves other messages.
    fn price_and_authorize(
        &self,
        id: OrderId,
        order: ValidOrder,
    ) -> impl Future<Output = Result<Priced, NodeError>> {
        let inventory = self.inventory.clone();
        let payment = self.payment.clone();
        let timeouts = self.timeouts.clone();
        let workflow = self.workflows.get(&order.workflow).cloned();
        async move {
            let workflow = workflow?;
            let skus = order.lines.iter().map(|(sku, _)| sku.clone()).collect();
            let prices = ask(&inventory, Quote(skus), timeouts.request(), inventory::NAME).await?;
            // A unit (a driver) is taken before anything is charged: with
            // none free, the order is refused at once.
            let reserved = match workflow.reservation {
                ReservationMode::AtPlacement if !order.lines.is_empty() => {
                    let hold =
                        ReserveNow { order_id: id.clone(), lines: order.lines.clone(), stay: order.stay };
                    Some(ask(&inventory, hold, timeouts.request(), inventory::NAME).await?)
                }
                _ => None,
            };
            let settlement = match (&order.card, order.payment) {
                (Some(card), _) => {
                    let (_, amount) = Order::price(&order, &prices)?;
                    let charge = Charge {
                        payment,
                        timeouts: timeouts.clone(),
                        order_id: id.clone(),
                        amount,
                        card: card.clone(),
                    };
                    match charge.run(workflow.payment_fallback).await {
                        Ok(settlement) => settlement,
                        Err(e) => {
                            if reserved.is_some() {
                                let release = ReleaseNow(id.clone());
                                let _ = ask(&inventory, release, timeouts.request(), inventory::NAME).await;
                            }
                            return Err(e);
                        }
                    }
                }
                (None, PaymentMethod::BankTransfer) => Settlement::Pending,
                (None, _) => Settlement::NotNeeded,
            };
            Ok(Priced { id, order, prices, settlement, reserved })
        }
    }

    /// Queues a placement for the next [`RecordPlacements`]; the receiver
    /// gets its receipt once written (not yet durable).
    fn enqueue(
        &mut self,
        priced: Priced,
        key: Option<String>,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Result<OrderReceipt, NodeError>> {
        let (reply, receipt) = oneshot::channel();
        if self.placing.is_empty() {
            ctx.notify(RecordPlacements);
        }
        self.placing.push(Placing { priced, key, reply });
        receipt
    }

    /// Writes new orders, their events and idempotency keys in one write.
    /// A placement the state machine refuses gets its own error; a failed
    /// write fails them all and writes nothing.
    fn record(&mut self, batch: &[(Priced, Option<String>)]) -> Vec<Result<OrderReceipt, NodeError>> {
        let mut answers = Vec::with_capacity(batch.len());
        let mut placed = Vec::with_capacity(batch.len());
        for (priced, key) in batch {
            match self.placement(priced) {
                Ok((order, events)) => {
                    let receipt = OrderReceipt {
                        id: order.id.clone(),
                        status: order.status,
                        total: order.total,
                        replayed: false,
                    };
                    answers.push(Ok(receipt.clone()));
                    placed.push((order, events, receipt, priced, key));
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        if placed.is_empty() {
            return answers;
        }
        let now_ms = self.clock.now_ms();
        let workflows = &self.workflows;
        let written = self.behind.write_now(|tx| -> TxResult<(), NodeError> {
            for (order, events, receipt, priced, key) in &placed {
                for kind in events {
                    tx.append(&order.id, None, kind.clone())?;
                }
                if let Ok(workflow) = workflows.get(&order.workflow) {
                    timers::schedule(tx, None, order, workflow, now_ms)?;
                }
                tx.put(ORDERS, order.id.as_str(), order)?;
                if let Some(key) = key {
                    let record = idempotency::KeyRecord::new(&priced.order, receipt, now_ms);
                    idempotency::remember(tx, key, &record)?;
                }
            }
            Ok(())
        });
        if let Err(e) = written {
            return batch.iter().map(|_| Err(e.clone())).collect();
        }
        for (order, ..) in &placed {
            tracing::info!(order = %order.id, customer = %order.customer, status = %order.status, "order placed");
        }
        answers
    }

    /// A new order and its first events, as the state machine places it.
    fn placement(&self, priced: &Priced) -> Result<(Order, Vec<crate::domain::EventKind>), NodeError> {
        let workflow = self.workflows.get(&priced.order.workflow)?;
        Ok(Order::place(
            &priced.id,
            &priced.order,
            &priced.prices,
            priced.settlement.clone(),
            priced.reserved.clone(),
            workflow,
        )?)
    }

    /// Runs a command on an order already caught up with the log.
    fn execute(&mut self, id: &OrderId, command: &Command, by: Option<&str>) -> Result<Order, NodeError> {
        let (workflows, now_ms) = (&self.workflows, self.clock.now_ms());
        let (order, _) = self.behind.write_now(|tx| {
            let Some(mut order) = tx.get::<Order, _>(ORDERS, id.as_str())? else {
                return abort(NodeError::not_found("order", id));
            };
            let workflow = match workflows.get(&order.workflow) {
                Ok(wf) => wf,
                Err(e) => return abort(e.into()),
            };
            if let Command::Accept { by } = command {
                parties::check_room(tx, &order, by, workflow)?;
            }
            let before = order.clone();
            let mut events = match order.decide(command, workflow) {
                Ok(events) => order.advance(events, workflow),
                Err(refusal) => return abort(refusal.into()),
            };
            if let Some(by) = by.filter(|_| command.is_a_step()) {
                events.push(crate::domain::EventKind::Acted {
                    step: command.name().to_owned(),
                    by: by.to_owned(),
                });
            }
            for kind in events {
                tx.append(id, None, kind)?;
            }
            upkeep(tx, &before, &order, workflow, now_ms)?;
            tx.put(ORDERS, id.as_str(), &order)?;
            Ok(order)
        })?;
        Ok(order)
    }
}

crate::log_consumer!(OrderActor);

impl LogConsumer for OrderActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        let (workflows, now_ms) = (self.workflows.clone(), self.clock.now_ms());
        let fold = |tx: &mut Tx<'_>, event: &Event, recorded: &Recorded| {
            on_fact(tx, event, &workflows, now_ms, recorded)
        };
        self.behind.apply(&self.cursor, batch, delivery, fold)
    }

    fn on_start(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.timer_tick, |act, ctx| act.expire_due(ctx));
    }

    fn on_restart(&mut self) {
        // Placements waiting to be written are dropped: their callers get an
        // error and nothing of them was written.
        self.in_flight.clear();
        self.placing.clear();
        self.turns.clear();
    }

    fn behind(&mut self) -> Option<&mut WriteBehind> {
        Some(&mut self.behind)
    }
}

/// Reacts to another service's fact. This actor's own events were applied
/// when written (applied again, a decline would be recorded twice).
fn on_fact(
    tx: &mut Tx<'_>,
    event: &Event,
    workflows: &Workflows,
    now_ms: u64,
    recorded: &Recorded,
) -> TxResult<(), NodeError> {
    if event.kind.is_the_orders() {
        return Ok(());
    }
    let key = event.order_id.as_str();
    let Some(mut order) = tx.get::<Order, _>(ORDERS, key)? else {
        return Ok(());
    };
    let workflow = match workflows.get(&order.workflow) {
        Ok(wf) => wf,
        Err(e) => return abort(e.into()),
    };
    let before = order.clone();
    let reactions = fold_fact(&mut order, &event.kind, workflow);
    // Folded again after a crash: the state moves on as it did, and what
    // it appended then is in the log already.
    if !recorded.holds(event.seq) {
        for kind in reactions {
            tx.append(&event.order_id, Some(event.seq), kind)?;
        }
    }
    upkeep(tx, &before, &order, workflow, now_ms)?;
    tx.put(ORDERS, key, &order)
}

/// Another service's fact folded into its order: the fact itself, then
/// what the order does about it, returned as the order's own events
/// (appended by the service, already in the log for a store-only read).
pub(super) fn fold_fact(order: &mut Order, fact: &EventKind, workflow: &Workflow) -> Vec<EventKind> {
    order.apply(fact);
    let next = order.react(fact, workflow);
    order.advance(next, workflow)
}

/// A fresh order id: `ord-` and a UUIDv7, random (74 bits from the OS), so
/// that nobody can guess or count another's orders; time-ordered, so ids
/// sort roughly by placing.
fn new_order_id() -> OrderId {
    let id = format!("ord-{}", uuid::Uuid::now_v7().simple());
    OrderId::parse(&id).expect("hex digits make a valid id")
}

/// Whether `order` was placed: its record is written with its placing.
pub fn is_placed(store: &crate::store::Store, order: &OrderId) -> Result<bool, crate::store::StoreError> {
    Ok(store.get(ORDERS, order.as_str())?.is_some())
}

/// What a change of an order keeps in step, in the write that made it: its
/// timer, and the orders its party holds.
fn upkeep(
    tx: &mut Tx<'_>,
    before: &Order,
    order: &Order,
    workflow: &Workflow,
    now_ms: u64,
) -> TxResult<(), NodeError> {
    timers::schedule(tx, Some((before.status, before.leg)), order, workflow, now_ms)?;
    parties::track(tx, (before.status, before.accepted_by.as_deref()), order, workflow)
}

impl Handler<PlaceOrder> for OrderActor {
    /// Refusals are answered at once (`reply`): after a panic the actor
    /// stops, and an actor future would never be polled to deliver them.
    type Result = ActorResponse<Self, Result<OrderReceipt, NodeError>>;

    fn handle(&mut self, msg: PlaceOrder, ctx: &mut Context<Self>) -> Self::Result {
        let (id, order) = match guarded(self, ctx, None, |act| act.prepare(&msg)) {
            Ok(Prepared::New(id, order)) => (id, order),
            Ok(Prepared::Replay(receipt)) => {
                return ActorResponse::r#async(durably(&self.cursor.store, Ok(receipt)).into_actor(self))
            }
            Err(e) => return ActorResponse::reply(Err(e)),
        };
        let key = msg.idempotency_key;
        let span = tracing::info_span!("place", order = %id);
        let priced = self.price_and_authorize(id, order).instrument(span);
        ActorResponse::r#async(priced.into_actor(self).then(move |priced, act, ctx| {
            let waiting = match priced {
                Ok(priced) => Ok(act.enqueue(priced, key, ctx)),
                Err(e) => {
                    if let Some(key) = &key {
                        act.in_flight.remove(key);
                    }
                    Err(e)
                }
            };
            let store = act.cursor.store.clone();
            async move {
                // A dropped reply means the actor restarted before the
                // write: nothing was written.
                let receipt = waiting?.await.unwrap_or(Err(NodeError::Call(CallError::Unavailable(NAME))))?;
                store.durable().await?;
                Ok(receipt)
            }
            .into_actor(act)
        }))
    }
}

impl Handler<RecordPlacements> for OrderActor {
    type Result = ();

    fn handle(&mut self, _: RecordPlacements, ctx: &mut Context<Self>) {
        let (batch, replies): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.placing).into_iter().map(|p| ((p.priced, p.key), p.reply)).unzip();
        let answers = guarded(self, ctx, None, |act| Ok(act.record(&batch)));
        for key in batch.iter().filter_map(|(_, key)| key.as_ref()) {
            self.in_flight.remove(key);
        }
        for (i, reply) in replies.into_iter().enumerate() {
            let answer = match &answers {
                Ok(each) => each[i].clone(),
                Err(e) => Err(e.clone()),
            };
            let _ = reply.send(answer);
        }
    }
}

impl Handler<GetOrder> for OrderActor {
    type Result = Result<Order, NodeError>;

    fn handle(&mut self, msg: GetOrder, ctx: &mut Context<Self>) -> Self::Result {
        let found = guarded(self, ctx, Some(&msg.0), |act| {
            catch_up(act)?;
            act.order(&msg.0)
        });
        super::consumer::schedule_pending(self, ctx);
        found
    }
}

#[cfg(test)]
mod tests;
