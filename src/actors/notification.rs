//! The notification service: one message to the customer for every status
//! change of their orders, logged and stored.
//!
//! A notification is keyed by the event it reports, so replaying the log
//! after a crash rewrites the same key instead of sending it twice.

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::supervision::guarded;
use super::ServiceEnv;
use crate::domain::{CustomerId, Event, EventKind, Notification, PaymentMethod};
use crate::error::NodeError;
use crate::store::{key_prefix, Table, Tx, TxResult};
use actix::prelude::*;

// ---- messages ----

/// A customer's notifications, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Notification>, NodeError>")]
pub struct ListNotifications(pub CustomerId);

pub struct NotificationActor {
    cursor: Cursor,
}

const NOTIFICATIONS: Table<Notification> = Table::new("notifications");
const RECIPIENTS: Table<CustomerId> = Table::new("recipients");
/// The recipients of card orders: a card order's pending payment was
/// deferred, and its message says so. A table of its own rather than one
/// more key per order (every key is time under the store's writer lock).
const CARD_RECIPIENTS: Table<CustomerId> = Table::new("recipients_card");
/// A checkpoint's words, for the message that its rejection cancels the
/// order (a key only for orders stopped at one).
const REJECTIONS: Table<String> = Table::new("recipient_rejections");
pub const NAME: &str = crate::service::Service::Notification.name();

impl NotificationActor {
    pub fn new(env: &ServiceEnv) -> Result<Self, NodeError> {
        Ok(NotificationActor { cursor: Cursor::load(env, NAME)? })
    }
}

/// `customer \0 seq`: a customer's notifications sorted oldest first.
fn notification_key(n: &Notification) -> Vec<u8> {
    let mut key = key_prefix(n.customer.as_str());
    key.extend_from_slice(&n.event.to_be_bytes());
    key
}

crate::log_consumer!(NotificationActor);

impl LogConsumer for NotificationActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        self.cursor.apply(batch, delivery, on_event)?;
        // Sent (logged) only after the batch is committed, so a batch that is
        // retried does not log twice.
        for event in batch {
            if let Some(status) = event.kind.status() {
                tracing::info!(
                    target: "fulfil::notification",
                    order = %event.order_id,
                    status = status.as_str(),
                    "notified the customer"
                );
            }
        }
        Ok(())
    }
}

fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let key = event.order_id.as_str();
    if let EventKind::OrderPlaced { customer, payment, .. } = &event.kind {
        let table = if *payment == PaymentMethod::Card { CARD_RECIPIENTS } else { RECIPIENTS };
        tx.put(table, key, customer)?;
    }
    let (customer, payment) = match tx.get(RECIPIENTS, key)? {
        Some(customer) => (customer, None),
        None => match tx.get(CARD_RECIPIENTS, key)? {
            Some(customer) => (customer, Some(PaymentMethod::Card)),
            None => return Ok(()),
        },
    };
    if let EventKind::LegRejected { reason, .. } = &event.kind {
        tx.put(REJECTIONS, key, reason)?;
    }
    let rejection: Option<String> = match &event.kind {
        EventKind::OrderCanceled { .. } => tx.get(REJECTIONS, key)?,
        _ => None,
    };
    if let Some(n) = Notification::for_event(event, &customer, payment, rejection.as_deref()) {
        tx.put(NOTIFICATIONS, notification_key(&n), &n)?;
    }
    Ok(())
}

impl Handler<ListNotifications> for NotificationActor {
    type Result = Result<Vec<Notification>, NodeError>;

    fn handle(&mut self, msg: ListNotifications, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| {
            Ok(act.cursor.store.scan_prefix(NOTIFICATIONS, key_prefix(msg.0.as_str()))?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{money, order, paid, placed, temp_store};
    use crate::domain::{OrderStatus, PaymentMethod};

    #[actix::test]
    async fn one_notification_per_status_change_and_none_twice_after_a_restart() {
        let t = temp_store();
        let n = NotificationActor::new(&t.env()).unwrap().start();
        t.append(
            &order(1),
            vec![
                placed("kim", &[("A", 1, 100)], PaymentMethod::Card),
                paid(100),
                EventKind::StockReserved { lines: vec![], units: vec![] },
                EventKind::PaymentRefunded { amount: money(100) },
            ],
        );
        t.caught_up(NAME).await;
        let kim = CustomerId::parse("kim").unwrap();
        let sent = n.send(ListNotifications(kim.clone())).await.unwrap().unwrap();
        let statuses: Vec<OrderStatus> = sent.iter().map(|n| n.status).collect();
        assert_eq!(statuses, [OrderStatus::Placed, OrderStatus::Paid]);

        // A second instance with the offset reset replays the log: same keys.
        t.store.write::<_, NodeError>(|tx| tx.commit_offset(NAME, 0)).unwrap();
        let again = NotificationActor::new(&t.env()).unwrap().start();
        t.caught_up(NAME).await;
        assert_eq!(again.send(ListNotifications(kim)).await.unwrap().unwrap(), sent);
    }
}
