//! The payment service: card payments through the (simulated) gateway, and
//! the payment record of every order, captured when the order is paid and
//! refunded (once) when a paid order is canceled.
//!
//! Calls into the gateway are limited in rate (governor) and go through a
//! circuit breaker ([`crate::resilience::breaker`]). When card payment is unavailable,
//! the order's workflow either refuses the order or defers the payment: a
//! deferred payment is kept here and retried with backoff until the gateway
//! takes it ([`crate::domain::EventKind::PaymentCaptured`]) or declines it
//! ([`crate::domain::EventKind::PaymentFailed`]).

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::gateway::{last4, CardGateway, GatewayError};
use super::supervision::guarded;
use super::ServiceEnv;
use crate::config::PaymentSettings;
use crate::domain::payment::{Attempt, Backoff};
use crate::domain::{now_ms, Event, Money, OrderId};
use crate::error::{CallError, NodeError, Refused};
use crate::resilience::{Breaker, BreakerState, Rejected};
use crate::store::{Table, Tx, TxResult};
use actix::prelude::*;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

// ---- messages ----

/// Authorises a card payment for an order about to be placed.
#[derive(Message)]
#[rtype(result = "Result<Authorization, NodeError>")]
pub struct Authorize {
    pub order_id: OrderId,
    pub amount: Money,
    pub card: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub payment_id: String,
}

/// Keeps a card payment to take later, when the gateway is available.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct Defer {
    pub order_id: OrderId,
    pub amount: Money,
    pub card: String,
}

/// The payment record of an order.
#[derive(Message)]
#[rtype(result = "Result<Option<PaymentRecord>, NodeError>")]
pub struct GetPayment(pub OrderId);

/// Internal: try the deferred payments that are due.
#[derive(Message)]
#[rtype(result = "()")]
struct RetryDeferred;

// ---- state ----

pub use crate::domain::payment::{PaymentRecord, PaymentStatus};

pub struct PaymentActor {
    cursor: Cursor,
    gateway: CardGateway,
    breaker: Breaker,
    limiter: DefaultDirectRateLimiter,
    settings: PaymentSettings,
    /// A round of deferred retries is under way.
    retrying: bool,
    /// Deferred payments waiting (the index by due time holds as many).
    deferred: u64,
}

const PAYMENTS: Table<PaymentRecord> = Table::new("payments");
/// The deferred payments by when they are due: `due_ms(be) order` → ().
/// Due work is found from the front without reading what is not due.
const DUE: Table<()> = Table::new("payments_due");
/// Before [`DUE`]: the deferred payments by order id. Moved into [`DUE`] at
/// start ([`upgrade_deferred`]).
const DEFERRED: Table<()> = Table::new("payments_deferred");

fn due_key(due_ms: u64, order: &OrderId) -> Vec<u8> {
    let mut key = due_ms.to_be_bytes().to_vec();
    key.extend_from_slice(order.as_str().as_bytes());
    key
}

fn order_of_due_key(key: &[u8]) -> Option<OrderId> {
    OrderId::parse(std::str::from_utf8(key.get(8..)?).ok()?).ok()
}
pub const NAME: &str = crate::service::Service::Payment.name();

/// Brings deferred payments kept by earlier versions up to date, at start:
/// indexed by order, they move to the index by due time; a card number
/// kept before the gateway issued tokens becomes a token, so that none
/// stays on disk. Returns how many cards were replaced.
pub fn upgrade_deferred(store: &crate::store::Store) -> Result<usize, NodeError> {
    let waiting: Vec<Vec<u8>> =
        store.entries_from(DEFERRED, [])?.map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    let mut scrubbed = 0;
    for key in waiting {
        let record = store.get(PAYMENTS, &key)?;
        let order = OrderId::parse(&String::from_utf8_lossy(&key))?;
        store.write(|tx| -> TxResult<(), NodeError> {
            tx.remove(DEFERRED, &key)?;
            let Some(mut record) = record.clone().filter(PaymentRecord::is_deferred) else { return Ok(()) };
            if let Some(card) =
                record.card_token.as_deref().filter(|c| !c.starts_with(super::gateway::TOKEN_PREFIX))
            {
                record.card_token = Some(super::gateway::tokenize(card));
                tx.put(PAYMENTS, &key, &record)?;
            }
            tx.put(DUE, due_key(record.next_attempt_ms, &order), &())
        })?;
        scrubbed += usize::from(
            record.and_then(|r| r.card_token).is_some_and(|c| !c.starts_with(super::gateway::TOKEN_PREFIX)),
        );
    }
    Ok(scrubbed)
}
/// The breaker's name in metrics and health.
pub const BREAKER: &str = "card_gateway";
/// Deferred payments read for one round at most; the gateway's rate limit
/// decides how many of them are tried.
const ROUND: usize = 1024;

/// A deferred payment's call to the gateway, and its order.
type DueCall = std::pin::Pin<Box<dyn std::future::Future<Output = (OrderId, Result<String, GatewayError>)>>>;

impl PaymentActor {
    pub fn new(env: &ServiceEnv, settings: &PaymentSettings) -> Result<Self, NodeError> {
        let rate = NonZeroU32::new(settings.gateway_rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(settings.gateway_burst).unwrap_or(NonZeroU32::MIN);
        env.health.breaker_is(BREAKER, BreakerState::Closed);
        Ok(PaymentActor {
            cursor: Cursor::load(env, NAME)?,
            gateway: CardGateway::new(settings, env.faults.clone()),
            breaker: Breaker::new(settings.breaker.clone(), Instant::now()),
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            settings: settings.clone(),
            retrying: false,
            deferred: count_deferred(&env.store)?,
        })
    }

    /// Reports the backlog to readiness and metrics.
    fn report_backlog(&self) {
        self.cursor.sup.health().backlog(NAME, self.deferred);
    }

    /// Refuses to defer more than `payment.max_deferred` payments: past
    /// that, pay a little later.
    fn room_to_defer(&self) -> Result<(), NodeError> {
        match self.deferred < self.settings.max_deferred {
            true => Ok(()),
            false => Err(NodeError::Call(CallError::PaymentUnavailable {
                reason: format!(
                    "{} card payments wait for the gateway already (payment.max_deferred)",
                    self.deferred
                ),
                retry_after: Duration::from_millis(self.settings.retry_max_ms),
            })),
        }
    }

    /// A ticket to call the gateway now: within its rate, breaker permitting.
    fn admit(&mut self) -> Result<(), NodeError> {
        let metrics = self.cursor.sup.metrics();
        if let Err(not_until) = self.limiter.check() {
            metrics.rate_limited.with_label_values(&["gateway"]).inc();
            // The limiter's own clock: making one calibrates a new timer each time.
            let retry_after = not_until.wait_time_from(self.limiter.clock().now());
            return Err(NodeError::Call(CallError::PaymentUnavailable {
                reason: "the gateway's rate limit is reached".into(),
                retry_after,
            }));
        }
        match self.breaker.acquire(Instant::now()) {
            Ok(moved) => {
                moved.into_iter().for_each(|s| self.breaker_moved(s));
                Ok(())
            }
            Err(Rejected(retry_after)) => Err(NodeError::Call(CallError::PaymentUnavailable {
                reason: "the circuit breaker is open".into(),
                retry_after,
            })),
        }
    }

    /// Tells the breaker and the metrics how a gateway call went.
    fn settle_breaker(&mut self, outcome: &Result<String, GatewayError>) {
        let (failed, label) = match outcome {
            Ok(_) => (false, "approved"),
            Err(GatewayError::Declined(_)) => (false, "declined"),
            Err(GatewayError::Failed(_)) => (true, "failed"),
        };
        self.cursor.sup.metrics().payments.with_label_values(&[label]).inc();
        if let Some(moved) = self.breaker.record(failed, Instant::now()) {
            self.breaker_moved(moved);
        }
    }

    /// Reports a transition of the breaker: its state to the health
    /// registry (where readiness and metrics read it), the count to metrics.
    fn breaker_moved(&self, to: BreakerState) {
        self.cursor.sup.metrics().breaker_moved(BREAKER, to);
        self.cursor.sup.health().breaker_is(BREAKER, to);
    }

    fn record_authorized(&self, msg: &Authorize, payment_id: &str) -> Result<Authorization, NodeError> {
        let record = PaymentRecord::authorized(payment_id, msg.amount, last4(&msg.card));
        // One key, no event: a plain insert (atomic on its own) rather than a
        // transaction under the log's writer lock. No need to wait for a
        // flush either: the order is acknowledged only after its own write is
        // flushed, which covers this one.
        self.cursor.store.put_now(PAYMENTS, msg.order_id.as_str(), &record)?;
        Ok(Authorization { payment_id: payment_id.to_owned() })
    }

    fn defer(&mut self, msg: &Defer) -> Result<(), NodeError> {
        self.room_to_defer()?;
        let first_try = now_ms() + self.settings.retry_min_ms;
        // The card itself is never written: the gateway's token stands in.
        let token = self.gateway.tokenize(&msg.card);
        let record = PaymentRecord::deferred(&msg.order_id, msg.amount, &token, last4(&msg.card), first_try);
        let (delta, _) = self.cursor.store.write(|tx| store_record(tx, &msg.order_id, None, &record))?;
        self.moved(delta);
        tracing::info!(order = %msg.order_id, "card payment deferred until the gateway is available");
        Ok(())
    }

    /// The backlog grew or shrank by `delta`.
    fn moved(&mut self, delta: i64) {
        self.deferred = self.deferred.saturating_add_signed(delta);
        self.report_backlog();
    }

    /// Starts a round of retries for the deferred payments that are due.
    fn retry_deferred(&mut self, ctx: &mut Context<Self>) {
        if self.retrying || self.cursor.sup.backing_off().is_some() {
            return;
        }
        let (calls, held_back) = match self.due_calls() {
            Ok(due) => due,
            Err(e) => return tracing::error!(error = %e, "reading deferred payments failed"),
        };
        if calls.is_empty() {
            if let Some(wait) = held_back {
                ctx.notify_later(RetryDeferred, wait);
            }
            return;
        }
        self.retrying = true;
        let round = futures_util::future::join_all(calls);
        ctx.spawn(round.into_actor(self).map(|results, act, ctx| {
            act.retrying = false;
            for (order, outcome) in results {
                act.settle_breaker(&outcome);
                match guarded(act, ctx, Some(&order), |act| act.settle_deferred(&order, &outcome)) {
                    Ok(delta) => act.moved(delta),
                    Err(e) => {
                        tracing::error!(order = %order, error = %e, "settling a deferred payment failed")
                    }
                }
            }
            // More may be due: the next round starts at once, as fast as
            // the gateway takes them.
            ctx.notify(RetryDeferred);
        }));
    }

    /// The gateway calls for the deferred payments due now, earliest first,
    /// as many as the gateway's rate and the breaker let through (at most
    /// [`ROUND`]), and how long the rest must wait if they held it back.
    /// Read from the front of the index by due time, stopping at the first
    /// that is not due, and at the first the gateway cannot take yet:
    /// reading a round's worth of records to send a few (a backlog behind
    /// the gateway's rate) was a sixth of a busy node's time.
    fn due_calls(&mut self) -> Result<(Vec<DueCall>, Option<Duration>), NodeError> {
        let now = now_ms();
        let store = self.cursor.store.clone();
        let mut calls = Vec::new();
        for entry in store.entries_from(DUE, [])? {
            let (key, ()) = entry?;
            let due_ms = key.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
            if due_ms > now || calls.len() == ROUND {
                break;
            }
            let Some(order) = order_of_due_key(&key) else { continue };
            let record = store.get(PAYMENTS, order.as_str())?.filter(|r| r.is_deferred());
            let Some((token, amount)) = record.and_then(|r| Some((r.card_token?, r.amount))) else {
                continue;
            };
            if let Err(e) = self.admit() {
                return Ok((calls, e.retry_after()));
            }
            let call = self.gateway.authorize(&order, &token, amount);
            calls.push(Box::pin(async move { (order, call.await) }));
        }
        Ok((calls, None))
    }

    /// Records how a deferred payment's attempt went, and tells the order.
    /// Returns how the backlog moved.
    fn settle_deferred(
        &self,
        order: &OrderId,
        outcome: &Result<String, GatewayError>,
    ) -> Result<i64, NodeError> {
        let attempt = match outcome {
            Ok(payment_id) => Attempt::Approved(payment_id.clone()),
            Err(GatewayError::Declined(reason)) => Attempt::Declined(reason.clone()),
            Err(GatewayError::Failed(_)) => Attempt::Failed,
        };
        let backoff = Backoff { min_ms: self.settings.retry_min_ms, max_ms: self.settings.retry_max_ms };
        let (delta, _) = self.cursor.store.write(|tx| {
            let record = tx.get::<PaymentRecord, _>(PAYMENTS, order.as_str())?;
            match record.clone().and_then(|r| r.settle(&attempt, now_ms(), backoff)) {
                Some((r, events)) => {
                    for kind in events {
                        tx.append(order, None, kind)?;
                    }
                    store_record(tx, order, record.as_ref(), &r)
                }
                // Gone, or no longer deferred: nothing to take.
                None => Ok(0),
            }
        })?;
        Ok(delta)
    }
}

/// The deferred payments in the index, counted once at start.
fn count_deferred(store: &crate::store::Store) -> Result<u64, NodeError> {
    let mut n = 0;
    for entry in store.entries_from(DUE, [])? {
        entry?;
        n += 1;
    }
    Ok(n)
}

/// Writes an order's payment record and keeps the index by due time in
/// step with it (`before`: the record as it was). Returns how the backlog
/// of deferred payments moved (-1, 0 or 1).
fn store_record(
    tx: &mut Tx<'_>,
    order: &OrderId,
    before: Option<&PaymentRecord>,
    r: &PaymentRecord,
) -> TxResult<i64, NodeError> {
    let was = before.filter(|b| b.is_deferred()).map(|b| due_key(b.next_attempt_ms, order));
    let is = r.is_deferred().then(|| due_key(r.next_attempt_ms, order));
    if was != is {
        if let Some(key) = &was {
            tx.remove(DUE, key)?;
        }
        if let Some(key) = &is {
            tx.put(DUE, key, &())?;
        }
    }
    tx.put(PAYMENTS, order.as_str(), r)?;
    Ok(i64::from(is.is_some()) - i64::from(was.is_some()))
}

crate::log_consumer!(PaymentActor);

impl LogConsumer for PaymentActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        self.cursor.apply(batch, delivery, on_event)?;
        Ok(())
    }

    fn on_restart(&mut self) {
        // A round in flight died with the failed instance; its payments are
        // still due in the index and are taken again.
        self.retrying = false;
        match count_deferred(&self.cursor.store) {
            Ok(n) => self.deferred = n,
            Err(e) => tracing::error!(error = %e, "counting deferred payments failed"),
        }
    }

    fn on_start(&mut self, ctx: &mut Context<Self>) {
        self.report_backlog();
        let every = Duration::from_millis(self.settings.retry_min_ms.max(10));
        ctx.run_interval(every, |_, ctx| ctx.notify(RetryDeferred));
    }
}

/// Folds another service's fact into the order's payment.
fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let before: Option<PaymentRecord> = tx.get(PAYMENTS, event.order_id.as_str())?;
    let Some((record, events)) = PaymentRecord::on_fact(before.clone(), &event.order_id, &event.kind) else {
        return Ok(());
    };
    for kind in events {
        tx.append(&event.order_id, Some(event.seq), kind)?;
    }
    store_record(tx, &event.order_id, before.as_ref(), &record).map(|_| ())
}

impl Handler<Authorize> for PaymentActor {
    /// Refusals are answered at once; the gateway call runs while the actor
    /// serves other messages.
    type Result = ActorResponse<Self, Result<Authorization, NodeError>>;

    fn handle(&mut self, msg: Authorize, ctx: &mut Context<Self>) -> Self::Result {
        if let Err(e) = guarded(self, ctx, Some(&msg.order_id), |act| act.admit()) {
            return ActorResponse::reply(Err(e));
        }
        let call = self.gateway.authorize(&msg.order_id, &msg.card, msg.amount);
        ActorResponse::r#async(call.into_actor(self).map(move |outcome, act, ctx| {
            act.settle_breaker(&outcome);
            match outcome {
                Ok(payment_id) => {
                    guarded(act, ctx, Some(&msg.order_id), |act| act.record_authorized(&msg, &payment_id))
                }
                Err(GatewayError::Declined(why)) => Err(NodeError::Refused(Refused::PaymentDeclined(why))),
                Err(GatewayError::Failed(why)) => Err(NodeError::Call(CallError::PaymentUnavailable {
                    reason: why,
                    retry_after: Duration::from_secs(1),
                })),
            }
        }))
    }
}

impl Handler<Defer> for PaymentActor {
    type Result = Result<(), NodeError>;

    fn handle(&mut self, msg: Defer, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.order_id), |act| act.defer(&msg))
    }
}

impl Handler<RetryDeferred> for PaymentActor {
    type Result = ();

    fn handle(&mut self, _: RetryDeferred, ctx: &mut Context<Self>) {
        self.retry_deferred(ctx);
    }
}

impl Handler<GetPayment> for PaymentActor {
    type Result = Result<Option<PaymentRecord>, NodeError>;

    fn handle(&mut self, msg: GetPayment, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| Ok(act.cursor.store.get(PAYMENTS, msg.0.as_str())?))
    }
}

#[cfg(test)]
mod tests;
