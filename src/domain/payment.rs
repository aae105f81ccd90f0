//! The payment of one order: how it was paid, and what happens to the money
//! when the order goes on or ends.
//!
//! A card is authorised while the order is placed; a bank transfer waits for
//! its deposit; a card payment the gateway could not take is deferred and
//! tried again with backoff. A paid order that ends early is refunded once
//! (unless the goods were forfeited); one that ends before anything was
//! taken is voided. The payment actor is a shell around this fold: it talks
//! to the gateway, and stores what the fold returns.

use super::fold::Fold;
use super::{EventKind, Money, OrderId, PaymentMethod};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub payment_id: String,
    pub method: PaymentMethod,
    pub amount: Money,
    pub state: PaymentStatus,
    /// Last four digits of the card, for card payments.
    pub card_last4: Option<String>,
    /// The gateway's token for the card, kept only while a deferred payment
    /// waits, and dropped once settled. Never the card number: that is not
    /// written anywhere.
    pub card_token: Option<String>,
    /// Failed attempts at a deferred payment, and when to try next.
    pub attempts: u32,
    pub next_attempt_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The card is authorised; the order is not recorded yet.
    Authorized,
    /// Waiting for the bank-transfer deposit.
    Pending,
    /// A card payment to take when the gateway is available.
    Deferred,
    Captured,
    Refunded,
    /// Canceled before anything was paid.
    Voided,
    /// A deferred card payment the issuer declined.
    Declined,
}

/// How one call to the card gateway went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// Taken, with the gateway's payment id.
    Approved(String),
    /// The issuer said no; trying again will not help.
    Declined(String),
    /// The gateway failed or did not answer; try again later.
    Failed,
}

/// Backoff between attempts (at a deferred payment, at a webhook
/// delivery): doubling from `min_ms`, at most `max_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub min_ms: u64,
    pub max_ms: u64,
}

impl Backoff {
    /// The wait after the `attempts`-th failure.
    pub fn after(self, attempts: u32) -> u64 {
        self.min_ms.saturating_mul(1u64 << attempts.min(20)).min(self.max_ms)
    }
}

impl PaymentRecord {
    /// A record with no card details and no retries yet.
    pub fn new(payment_id: String, method: PaymentMethod, amount: Money, state: PaymentStatus) -> Self {
        PaymentRecord {
            payment_id,
            method,
            amount,
            state,
            card_last4: None,
            card_token: None,
            attempts: 0,
            next_attempt_ms: 0,
        }
    }

    /// A card the gateway authorised while the order was being placed.
    pub fn authorized(payment_id: &str, amount: Money, card_last4: &str) -> Self {
        PaymentRecord {
            card_last4: Some(card_last4.to_owned()),
            ..PaymentRecord::new(
                payment_id.to_owned(),
                PaymentMethod::Card,
                amount,
                PaymentStatus::Authorized,
            )
        }
    }

    /// A card payment to take later with the gateway's token for the card,
    /// first tried `first_try_ms` from now.
    pub fn deferred(
        order: &OrderId,
        amount: Money,
        card_token: &str,
        card_last4: &str,
        first_try_at_ms: u64,
    ) -> Self {
        PaymentRecord {
            card_last4: Some(card_last4.to_owned()),
            card_token: Some(card_token.to_owned()),
            next_attempt_ms: first_try_at_ms,
            ..PaymentRecord::new(format!("pay-{order}"), PaymentMethod::Card, amount, PaymentStatus::Deferred)
        }
    }

    /// Whether it waits for another attempt at the gateway (the actor keeps
    /// an index of these).
    pub fn is_deferred(&self) -> bool {
        self.state == PaymentStatus::Deferred
    }

    /// Whether a deferred payment is due for an attempt at `now_ms`.
    pub fn is_due(&self, now_ms: u64) -> bool {
        self.is_deferred() && self.next_attempt_ms <= now_ms
    }

    /// Folds how an attempt at a deferred payment went: the new record and
    /// the fact to tell the order, or `None` when it is no longer deferred
    /// (canceled while the attempt was under way: nothing to take).
    pub fn settle(&self, attempt: &Attempt, now_ms: u64, backoff: Backoff) -> Option<(Self, Vec<EventKind>)> {
        if !self.is_deferred() {
            return None;
        }
        let mut r = self.clone();
        let events = match attempt {
            Attempt::Approved(payment_id) => {
                (r.state, r.payment_id, r.card_token) = (PaymentStatus::Authorized, payment_id.clone(), None);
                vec![EventKind::PaymentCaptured { payment_id: payment_id.clone(), amount: r.amount }]
            }
            Attempt::Declined(reason) => {
                (r.state, r.card_token) = (PaymentStatus::Declined, None);
                vec![EventKind::PaymentFailed { reason: reason.clone() }]
            }
            Attempt::Failed => {
                r.attempts += 1;
                r.next_attempt_ms = now_ms + backoff.after(r.attempts);
                vec![]
            }
        };
        Some((r, events))
    }

    /// Folds another service's fact about the order into its payment: the
    /// new record and the events that follow, or `None` when the fact
    /// changes nothing here.
    pub fn on_fact(
        record: Option<Self>,
        order: &OrderId,
        fact: &EventKind,
    ) -> Option<(Self, Vec<EventKind>)> {
        match (fact, record) {
            (EventKind::PaymentPending { amount }, None) => {
                let id = format!("dep-{order}");
                Some((
                    PaymentRecord::new(id, PaymentMethod::BankTransfer, *amount, PaymentStatus::Pending),
                    vec![],
                ))
            }
            (EventKind::OrderPaid { method, amount, payment_id }, record) => {
                let mut record = record.unwrap_or_else(|| {
                    PaymentRecord::new(payment_id.clone(), *method, *amount, PaymentStatus::Pending)
                });
                record.apply(fact);
                Some((record, vec![]))
            }
            // The order ended early: refund what was taken, unless the goods
            // were forfeited; void what was not taken yet.
            (kind, Some(mut record)) if kind.ends_order().is_some() => {
                let refund = kind.ends_order() == Some(true);
                match record.state {
                    PaymentStatus::Captured if refund => {
                        let refunded = EventKind::PaymentRefunded { amount: record.amount };
                        record.apply(&refunded);
                        Some((record, vec![refunded]))
                    }
                    PaymentStatus::Pending | PaymentStatus::Authorized | PaymentStatus::Deferred => {
                        (record.state, record.card_token) = (PaymentStatus::Voided, None);
                        Some((record, vec![]))
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

impl Fold for PaymentRecord {
    fn apply(&mut self, event: &EventKind) {
        match event {
            EventKind::OrderPaid { payment_id, .. }
                if matches!(
                    self.state,
                    PaymentStatus::Pending | PaymentStatus::Authorized | PaymentStatus::Deferred
                ) =>
            {
                (self.state, self.payment_id, self.card_token) =
                    (PaymentStatus::Captured, payment_id.clone(), None);
            }
            EventKind::PaymentRefunded { .. } => self.state = PaymentStatus::Refunded,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fold::testing;
    use crate::domain::CancelReason;

    const BACKOFF: Backoff = Backoff { min_ms: 100, max_ms: 1_000 };

    fn order() -> OrderId {
        OrderId::from_number(1)
    }

    fn money(minor: i64) -> Money {
        Money::new(minor).unwrap()
    }

    fn paid(payment_id: &str) -> EventKind {
        EventKind::OrderPaid {
            method: PaymentMethod::Card,
            amount: money(300),
            payment_id: payment_id.into(),
        }
    }

    fn canceled(reason: CancelReason) -> EventKind {
        EventKind::OrderCanceled { reason }
    }

    /// Given these facts: the record and every event they led to.
    fn given_facts(
        record: Option<PaymentRecord>,
        facts: &[EventKind],
    ) -> (Option<PaymentRecord>, Vec<EventKind>) {
        testing::given_facts(record, facts, |r, fact| PaymentRecord::on_fact(r, &order(), fact))
    }

    #[test]
    fn an_authorised_card_is_captured_when_the_order_is_paid() {
        let authorized = PaymentRecord::authorized("pay-ord-1", money(300), "1111");
        let (r, events) = given_facts(Some(authorized), &[paid("pay-ord-1")]);
        let r = r.unwrap();
        assert_eq!(
            (r.state, r.card_last4.as_deref(), events.len()),
            (PaymentStatus::Captured, Some("1111"), 0)
        );
    }

    #[test]
    fn a_captured_payment_is_refunded_exactly_once() {
        let cancel = canceled(CancelReason::OutOfStock);
        let (r, events) = given_facts(None, &[paid("pay-1"), cancel.clone(), cancel]);
        assert_eq!(r.unwrap().state, PaymentStatus::Refunded);
        assert_eq!(events, [EventKind::PaymentRefunded { amount: money(300) }]);
    }

    #[test]
    fn forfeited_goods_are_not_refunded() {
        let (r, events) = given_facts(None, &[paid("pay-1"), canceled(CancelReason::Forfeited)]);
        assert_eq!((r.unwrap().state, events.len()), (PaymentStatus::Captured, 0));
    }

    #[test]
    fn a_pending_transfer_is_voided_not_refunded() {
        let pending = EventKind::PaymentPending { amount: money(300) };
        let (r, events) = given_facts(None, &[pending, canceled(CancelReason::CustomerRequest)]);
        let r = r.unwrap();
        assert_eq!((r.state, r.payment_id.as_str(), events.len()), (PaymentStatus::Voided, "dep-ord-1", 0));
    }

    #[test]
    fn a_deferred_payment_backs_off_on_failures_then_is_captured_and_forgets_the_card() {
        let deferred = PaymentRecord::deferred(&order(), money(300), "4111111111111111", "1111", 100);
        assert!(deferred.is_due(100) && !deferred.is_due(99));
        let (r, events) = deferred.settle(&Attempt::Failed, 1_000, BACKOFF).unwrap();
        assert_eq!((r.attempts, r.next_attempt_ms, events.len()), (1, 1_200, 0));
        let (r, _) = r.settle(&Attempt::Failed, 2_000, BACKOFF).unwrap();
        let (r, _) = r.settle(&Attempt::Failed, 3_000, BACKOFF).unwrap();
        let (r, _) = r.settle(&Attempt::Failed, 4_000, BACKOFF).unwrap();
        assert_eq!(r.next_attempt_ms, 5_000, "the backoff stops at its maximum");
        let (r, events) = r.settle(&Attempt::Approved("pay-9".into()), 5_000, BACKOFF).unwrap();
        assert_eq!((r.state, r.card_token.as_deref()), (PaymentStatus::Authorized, None));
        assert_eq!(events, [EventKind::PaymentCaptured { payment_id: "pay-9".into(), amount: money(300) }]);
        assert!(r.settle(&Attempt::Failed, 6_000, BACKOFF).is_none(), "settled once");
    }

    #[test]
    fn a_declined_deferred_payment_fails_the_order_and_a_canceled_one_is_not_taken() {
        let deferred = PaymentRecord::deferred(&order(), money(300), "4000000000000002", "0002", 0);
        let (r, events) = deferred.settle(&Attempt::Declined("no".into()), 0, BACKOFF).unwrap();
        assert_eq!((r.state, r.card_token), (PaymentStatus::Declined, None));
        assert_eq!(events, [EventKind::PaymentFailed { reason: "no".into() }]);

        let (voided, _) = given_facts(Some(deferred), &[canceled(CancelReason::CustomerRequest)]);
        let voided = voided.unwrap();
        assert_eq!((voided.state, voided.card_token.as_deref()), (PaymentStatus::Voided, None));
        assert!(voided.settle(&Attempt::Approved("pay-1".into()), 0, BACKOFF).is_none(), "nothing is taken");
    }
}
