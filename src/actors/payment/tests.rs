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
    assert!(matches!(p.send(declined).await.unwrap(), Err(NodeError::Refused(Refused::PaymentDeclined(_)))));
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

/// A deferred payment kept by an earlier version (indexed by order, the
/// card in clear) is indexed by due time and holds a token at start.
#[test]
fn a_deferred_payment_of_an_earlier_version_is_reindexed_and_its_card_replaced() {
    let t = temp_store();
    let legacy = PaymentRecord::deferred(&order(1), money(100), "4111111111111111", "1111", 5);
    t.store
        .write(|tx| -> TxResult<(), NodeError> {
            tx.put(PAYMENTS, order(1).as_str(), &legacy)?;
            tx.put(DEFERRED, order(1).as_str(), &())
        })
        .unwrap();
    assert_eq!(upgrade_deferred(&t.store).unwrap(), 1);
    assert_eq!(upgrade_deferred(&t.store).unwrap(), 0, "once");
    let record = t.store.get(PAYMENTS, order(1).as_str()).unwrap().unwrap();
    let token = record.card_token.unwrap();
    assert!(token.starts_with("tok_") && token.ends_with("_1111"), "{token}");
    assert!(t.store.get(DUE, due_key(5, &order(1))).unwrap().is_some());
    assert_eq!(count_deferred(&t.store).unwrap(), 1);
}
