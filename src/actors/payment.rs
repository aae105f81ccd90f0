//! The payment service: card authorisation on request, and the payment
//! record of every order, which it captures when the order is paid and
//! refunds (once) when a paid order is canceled.

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::gateway::{last4, CardGateway};
use super::supervision::guarded;
use super::{NodeError, ServiceEnv};
use crate::domain::{Event, EventKind, Money, OrderId, PaymentMethod};
use crate::store::{read, Tx, TxResult};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use sled::Tree;

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

/// The payment record of an order.
#[derive(Message)]
#[rtype(result = "Result<Option<PaymentRecord>, NodeError>")]
pub struct GetPayment(pub OrderId);

// ---- state ----

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub payment_id: String,
    pub method: PaymentMethod,
    pub amount: Money,
    pub state: PaymentStatus,
    /// Last four digits of the card, for card payments.
    pub card_last4: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// The card is authorised; the order is not recorded yet.
    Authorized,
    /// Waiting for the bank-transfer deposit.
    Pending,
    Captured,
    Refunded,
    /// Canceled before anything was paid.
    Voided,
}

pub struct PaymentActor {
    cursor: Cursor,
    payments: Tree,
    gateway: CardGateway,
}

const PAYMENTS: usize = 0;
pub const NAME: &str = "payment";

impl PaymentActor {
    pub fn new(env: &ServiceEnv, gateway: CardGateway) -> Result<Self, NodeError> {
        Ok(PaymentActor { payments: env.store.tree("payments")?, cursor: Cursor::load(env, NAME)?, gateway })
    }

    fn authorize(&self, msg: &Authorize) -> Result<Authorization, NodeError> {
        let payment_id = self
            .gateway
            .authorize(&msg.order_id, &msg.card, msg.amount)
            .map_err(NodeError::PaymentDeclined)?;
        let record = PaymentRecord {
            payment_id: payment_id.clone(),
            method: PaymentMethod::Card,
            amount: msg.amount,
            state: PaymentStatus::Authorized,
            card_last4: Some(last4(&msg.card).to_owned()),
        };
        // No need to wait for a flush: the order is acknowledged only after
        // its own write is flushed, which covers this one.
        self.cursor.store.write(&[&self.payments], |tx| tx.put(PAYMENTS, msg.order_id.as_str(), &record))?;
        Ok(Authorization { payment_id })
    }
}

crate::log_consumer!(PaymentActor);

impl LogConsumer for PaymentActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        self.cursor.apply(&[&self.payments], batch, delivery, on_event)?;
        Ok(())
    }
}

fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let key = event.order_id.as_str();
    let record: Option<PaymentRecord> = tx.get(PAYMENTS, key)?;
    match (&event.kind, record) {
        (EventKind::PaymentPending { amount }, None) => {
            let record = PaymentRecord {
                payment_id: format!("dep-{}", event.order_id),
                method: PaymentMethod::BankTransfer,
                amount: *amount,
                state: PaymentStatus::Pending,
                card_last4: None,
            };
            tx.put(PAYMENTS, key, &record)
        }
        (EventKind::OrderPaid { method, amount, payment_id }, record) => {
            let mut record = record.unwrap_or(PaymentRecord {
                payment_id: payment_id.clone(),
                method: *method,
                amount: *amount,
                state: PaymentStatus::Pending,
                card_last4: None,
            });
            if matches!(record.state, PaymentStatus::Pending | PaymentStatus::Authorized) {
                record.state = PaymentStatus::Captured;
                record.payment_id = payment_id.clone();
            }
            tx.put(PAYMENTS, key, &record)
        }
        (EventKind::OrderCanceled { .. }, Some(mut record)) => match record.state {
            PaymentStatus::Captured => {
                record.state = PaymentStatus::Refunded;
                tx.put(PAYMENTS, key, &record)?;
                let refund = EventKind::PaymentRefunded { amount: record.amount };
                tx.append(&event.order_id, Some(event.seq), refund)?;
                Ok(())
            }
            PaymentStatus::Pending | PaymentStatus::Authorized => {
                record.state = PaymentStatus::Voided;
                tx.put(PAYMENTS, key, &record)
            }
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

impl Handler<Authorize> for PaymentActor {
    type Result = Result<Authorization, NodeError>;

    fn handle(&mut self, msg: Authorize, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.order_id), |act| act.authorize(&msg))
    }
}

impl Handler<GetPayment> for PaymentActor {
    type Result = Result<Option<PaymentRecord>, NodeError>;

    fn handle(&mut self, msg: GetPayment, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| Ok(read(&act.payments, msg.0.as_str())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{money, order, paid, placed, temp_store, TestStore};
    use crate::domain::CancelReason;

    fn payment(t: &TestStore) -> Addr<PaymentActor> {
        PaymentActor::new(&t.env(), CardGateway::new("0002")).unwrap().start()
    }

    fn refunds(t: &TestStore, n: u64) -> usize {
        t.events_of(&order(n)).iter().filter(|e| matches!(e, EventKind::PaymentRefunded { .. })).count()
    }

    #[actix::test]
    async fn the_test_card_is_declined_and_others_are_authorised() {
        let t = temp_store();
        let p = payment(&t);
        let declined = Authorize { order_id: order(1), amount: money(100), card: "4000000000000002".into() };
        assert!(matches!(p.send(declined).await.unwrap(), Err(NodeError::PaymentDeclined(_))));
        assert_eq!(p.send(GetPayment(order(1))).await.unwrap().unwrap(), None, "a decline records nothing");
        let ok = Authorize { order_id: order(2), amount: money(100), card: "4111111111111111".into() };
        assert_eq!(p.send(ok).await.unwrap().unwrap().payment_id, "pay-ord-2");
        let record = p.send(GetPayment(order(2))).await.unwrap().unwrap().unwrap();
        assert_eq!((record.state, record.card_last4.as_deref()), (PaymentStatus::Authorized, Some("1111")));
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
        let record = p.send(GetPayment(order(1))).await.unwrap().unwrap().unwrap();
        assert_eq!(record.state, PaymentStatus::Refunded);
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
        let record = p.send(GetPayment(order(1))).await.unwrap().unwrap().unwrap();
        assert_eq!(record.state, PaymentStatus::Voided);
        assert_eq!(refunds(&t, 1), 0);
    }
}
