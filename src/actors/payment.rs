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
use governor::clock::{Clock, DefaultClock};
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
}

const PAYMENTS: Table<PaymentRecord> = Table::new("payments");
/// Index of the deferred payments: order id → ().
const DEFERRED: Table<()> = Table::new("payments_deferred");
pub const NAME: &str = crate::service::Service::Payment.name();

/// Replaces the card numbers that deferred payments kept before the gateway
/// issued tokens with tokens, at start, so that none stays on disk.
/// Returns how many.
pub fn scrub_cards(store: &crate::store::Store) -> Result<usize, NodeError> {
    let waiting: Vec<Vec<u8>> =
        store.entries_from(DEFERRED, [])?.map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    let mut scrubbed = 0;
    for key in waiting {
        let Some(mut record) = store.get(PAYMENTS, &key)? else { continue };
        match &record.card_token {
            Some(card) if !card.starts_with(super::gateway::TOKEN_PREFIX) => {
                record.card_token = Some(super::gateway::tokenize(card));
                store.write(|tx| -> TxResult<(), NodeError> { tx.put(PAYMENTS, &key, &record) })?;
                scrubbed += 1;
            }
            _ => {}
        }
    }
    Ok(scrubbed)
}
/// The breaker's name in metrics and health.
pub const BREAKER: &str = "card_gateway";
/// Deferred payments tried in one round at most.
const RETRY_BATCH: usize = 32;

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
        })
    }

    /// A ticket to call the gateway now: within its rate, breaker permitting.
    fn admit(&mut self) -> Result<(), NodeError> {
        let metrics = self.cursor.sup.metrics();
        if let Err(not_until) = self.limiter.check() {
            metrics.rate_limited.with_label_values(&["gateway"]).inc();
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
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

    fn defer(&self, msg: &Defer) -> Result<(), NodeError> {
        let first_try = now_ms() + self.settings.retry_min_ms;
        // The card itself is never written: the gateway's token stands in.
        let token = self.gateway.tokenize(&msg.card);
        let record = PaymentRecord::deferred(&msg.order_id, msg.amount, &token, last4(&msg.card), first_try);
        self.cursor.store.write(|tx| store_record(tx, &msg.order_id, false, &record))?;
        tracing::info!(order = %msg.order_id, "card payment deferred until the gateway is available");
        Ok(())
    }

    /// Starts a round of retries for the deferred payments that are due.
    fn retry_deferred(&mut self, ctx: &mut Context<Self>) {
        if self.retrying || self.cursor.sup.backing_off().is_some() {
            return;
        }
        let due = match self.due_deferred() {
            Ok(due) => due,
            Err(e) => return tracing::error!(error = %e, "reading deferred payments failed"),
        };
        let mut calls = Vec::new();
        for (order, record) in due {
            let Some(token) = record.card_token.as_deref() else { continue };
            if self.admit().is_err() {
                break;
            }
            let call = self.gateway.authorize(&order, token, record.amount);
            calls.push(async move { (order, call.await) });
        }
        if calls.is_empty() {
            return;
        }
        self.retrying = true;
        let round = futures_util::future::join_all(calls);
        ctx.spawn(round.into_actor(self).map(|results, act, ctx| {
            act.retrying = false;
            for (order, outcome) in results {
                act.settle_breaker(&outcome);
                if let Err(e) = guarded(act, ctx, Some(&order), |act| act.settle_deferred(&order, &outcome)) {
                    tracing::error!(order = %order, error = %e, "settling a deferred payment failed");
                }
            }
        }));
    }

    fn due_deferred(&self) -> Result<Vec<(OrderId, PaymentRecord)>, NodeError> {
        let now = now_ms();
        let mut due = Vec::new();
        let store = &self.cursor.store;
        for entry in store.entries_from(DEFERRED, [])? {
            let (key, ()) = entry?;
            let Ok(order) = OrderId::parse(&String::from_utf8_lossy(&key)) else { continue };
            match store.get(PAYMENTS, order.as_str())? {
                Some(r) if r.is_due(now) => due.push((order, r)),
                _ => {}
            }
            if due.len() == RETRY_BATCH {
                break;
            }
        }
        Ok(due)
    }

    /// Records how a deferred payment's attempt went, and tells the order.
    fn settle_deferred(
        &self,
        order: &OrderId,
        outcome: &Result<String, GatewayError>,
    ) -> Result<(), NodeError> {
        let attempt = match outcome {
            Ok(payment_id) => Attempt::Approved(payment_id.clone()),
            Err(GatewayError::Declined(reason)) => Attempt::Declined(reason.clone()),
            Err(GatewayError::Failed(_)) => Attempt::Failed,
        };
        let backoff = Backoff { min_ms: self.settings.retry_min_ms, max_ms: self.settings.retry_max_ms };
        self.cursor.store.write(|tx| {
            let record = tx.get::<PaymentRecord, _>(PAYMENTS, order.as_str())?;
            match record.and_then(|r| r.settle(&attempt, now_ms(), backoff)) {
                Some((r, events)) => {
                    for kind in events {
                        tx.append(order, None, kind)?;
                    }
                    store_record(tx, order, true, &r)
                }
                // Gone, or no longer deferred: nothing to take.
                None => tx.remove(DEFERRED, order.as_str()),
            }
        })?;
        Ok(())
    }
}

/// Writes an order's payment record and keeps the index of deferred
/// payments in step with it (`was_deferred`: whether it is indexed now).
fn store_record(
    tx: &mut Tx<'_>,
    order: &OrderId,
    was_deferred: bool,
    r: &PaymentRecord,
) -> TxResult<(), NodeError> {
    let key = order.as_str();
    match (was_deferred, r.is_deferred()) {
        (false, true) => tx.put(DEFERRED, key, &())?,
        (_, false) => tx.remove(DEFERRED, key)?,
        (true, true) => {}
    }
    tx.put(PAYMENTS, key, r)
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

    fn on_start(&mut self, ctx: &mut Context<Self>) {
        let every = Duration::from_millis(self.settings.retry_min_ms.max(10));
        ctx.run_interval(every, |_, ctx| ctx.notify(RetryDeferred));
    }
}

/// Folds another service's fact into the order's payment.
fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let record: Option<PaymentRecord> = tx.get(PAYMENTS, event.order_id.as_str())?;
    let was_deferred = record.as_ref().is_some_and(PaymentRecord::is_deferred);
    let Some((record, events)) = PaymentRecord::on_fact(record, &event.order_id, &event.kind) else {
        return Ok(());
    };
    for kind in events {
        tx.append(&event.order_id, Some(event.seq), kind)?;
    }
    store_record(tx, &event.order_id, was_deferred, &record)
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
mod tests {
    use super::*;
    use crate::actors::testing::{money, order, paid, placed, temp_store, TestStore};
    use crate::config::Settings;
    use crate::domain::{CancelReason, EventKind, PaymentMethod};
    use crate::faults::FaultSpec;

    fn settings() -> PaymentSettings {
        let mut s = Settings::default().payment;
        s.retry_min_ms = 10;
        s.retry_max_ms = 40;
        s
    }

    fn payment(t: &TestStore) -> Addr<PaymentActor> {
        PaymentActor::new(&t.env(), &settings()).unwrap().start()
    }

    fn refunds(t: &TestStore, n: u64) -> usize {
        t.events_of(&order(n)).iter().filter(|e| matches!(e, EventKind::PaymentRefunded { .. })).count()
    }

    async fn record(p: &Addr<PaymentActor>, n: u64) -> PaymentRecord {
        p.send(GetPayment(order(n))).await.unwrap().unwrap().unwrap()
    }

    #[actix::test]
    async fn the_test_card_is_declined_and_others_are_authorised() {
        let t = temp_store();
        let p = payment(&t);
        let declined = Authorize { order_id: order(1), amount: money(100), card: "4000000000000002".into() };
        assert!(matches!(
            p.send(declined).await.unwrap(),
            Err(NodeError::Refused(Refused::PaymentDeclined(_)))
        ));
        assert_eq!(p.send(GetPayment(order(1))).await.unwrap().unwrap(), None, "a decline records nothing");
        let ok = Authorize { order_id: order(2), amount: money(100), card: "4111111111111111".into() };
        assert_eq!(p.send(ok).await.unwrap().unwrap().payment_id, "pay-ord-2");
        let r = record(&p, 2).await;
        assert_eq!(
            (r.state, r.card_last4.as_deref(), r.card_token),
            (PaymentStatus::Authorized, Some("1111"), None)
        );
    }

    #[actix::test]
    async fn a_captured_payment_is_refunded_once_when_the_order_is_canceled() {
        let t = temp_store();
        let p = payment(&t);
        let cancel = EventKind::OrderCanceled { reason: CancelReason::OutOfStock };
        t.append(
            &order(1),
            vec![placed("kim", &[("A", 1, 300)], PaymentMethod::Card), paid(300), cancel.clone(), cancel],
        );
        t.caught_up(NAME).await;
        assert_eq!(record(&p, 1).await.state, PaymentStatus::Refunded);
        assert_eq!(refunds(&t, 1), 1);
    }

    #[actix::test]
    async fn a_pending_transfer_is_voided_not_refunded() {
        let t = temp_store();
        let p = payment(&t);
        t.append(
            &order(1),
            vec![
                placed("kim", &[("A", 1, 300)], PaymentMethod::BankTransfer),
                EventKind::PaymentPending { amount: money(300) },
                EventKind::OrderCanceled { reason: CancelReason::CustomerRequest },
            ],
        );
        t.caught_up(NAME).await;
        assert_eq!(record(&p, 1).await.state, PaymentStatus::Voided);
        assert_eq!(refunds(&t, 1), 0);
    }

    #[actix::test]
    async fn a_deferred_payment_is_retried_until_the_gateway_takes_it() {
        let t = temp_store();
        let env = t.env();
        env.faults.set(super::super::gateway::NAME, FaultSpec { fail_rate: 1.0, ..FaultSpec::default() });
        let p = PaymentActor::new(&env, &settings()).unwrap().start();
        let defer = Defer { order_id: order(1), amount: money(300), card: "4111111111111111".into() };
        p.send(defer).await.unwrap().unwrap();
        // The gateway keeps failing: attempts pile up, nothing is captured.
        let deadline = Instant::now() + Duration::from_secs(5);
        while record(&p, 1).await.attempts < 2 {
            assert!(Instant::now() < deadline, "no retries");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(t.events_of(&order(1)).is_empty());
        env.faults.clear(None);
        while t.events_of(&order(1)).is_empty() {
            assert!(Instant::now() < deadline, "never captured");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let captured = EventKind::PaymentCaptured { payment_id: "pay-ord-1".into(), amount: money(300) };
        assert_eq!(t.events_of(&order(1)), vec![captured]);
        let r = record(&p, 1).await;
        assert_eq!(
            (r.state, r.card_token),
            (PaymentStatus::Authorized, None),
            "the token is dropped once settled"
        );
    }

    #[actix::test]
    async fn the_breaker_opens_on_failures_and_then_refuses_at_once() {
        let t = temp_store();
        let env = t.env();
        env.faults.set(super::super::gateway::NAME, FaultSpec { fail_rate: 1.0, ..FaultSpec::default() });
        let p = PaymentActor::new(&env, &settings()).unwrap().start();
        for n in 0..5 {
            let a = Authorize { order_id: order(n), amount: money(1), card: "4111111111111111".into() };
            let err = p.send(a).await.unwrap().unwrap_err();
            assert!(
                matches!(err, NodeError::Call(CallError::PaymentUnavailable { ref reason, .. }) if reason.contains("failed")),
                "{err}"
            );
        }
        let a = Authorize { order_id: order(9), amount: money(1), card: "4111111111111111".into() };
        let err = p.send(a).await.unwrap().unwrap_err();
        assert!(
            matches!(err, NodeError::Call(CallError::PaymentUnavailable { ref reason, .. }) if reason.contains("breaker")),
            "{err}"
        );
        assert_eq!(env.health.breakers()[BREAKER], BreakerState::Open);
    }
}
