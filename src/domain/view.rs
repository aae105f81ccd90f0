//! The read side: the status view of an order and the notifications sent to
//! its customer, both folded purely from events.
//!
//! The projection actor stores what these functions compute; keeping the
//! fold here means it is tested as given-events/then-view, and a rebuild from
//! the log gives exactly the same view.

use super::{
    rfc3339, CustomerId, Event, EventKind, Money, OrderId, OrderLine, OrderStatus, PaymentMethod, Seq,
};
use serde::{Deserialize, Serialize};

/// An order's status as the customer sees it (`GET /status/{order_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub customer: CustomerId,
    pub workflow: String,
    pub items: Vec<OrderLine>,
    pub total: Money,
    pub payment: PaymentView,
    pub delivery: Option<DeliveryView>,
    pub history: Vec<HistoryEntry>,
    pub reason: Option<String>,
    /// The last event folded in; older or equal events are ignored, so
    /// applying an event twice changes nothing.
    pub last_event: Seq,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentView {
    pub method: PaymentMethod,
    pub state: PaymentState,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// Waiting for the deposit.
    Pending,
    Captured,
    Refunded,
    /// Canceled before anything was paid.
    Voided,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    pub id: String,
    pub state: DeliveryState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    InTransit,
    Delivered,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub status: OrderStatus,
    /// RFC 3339 time of the change.
    pub at: String,
}

impl StatusView {
    /// The view an `OrderPlaced` event starts; `None` for any other event.
    pub fn start(event: &Event) -> Option<StatusView> {
        let EventKind::OrderPlaced { customer, items, payment, total, workflow, .. } = &event.kind else {
            return None;
        };
        Some(StatusView {
            order_id: event.order_id.clone(),
            status: OrderStatus::Placed,
            customer: customer.clone(),
            workflow: workflow.clone(),
            items: items.clone(),
            total: *total,
            payment: PaymentView { method: *payment, state: PaymentState::Pending, amount: *total },
            delivery: None,
            history: vec![HistoryEntry { status: OrderStatus::Placed, at: rfc3339(event.at_ms) }],
            reason: None,
            last_event: event.seq,
        })
    }

    /// Folds one later event of the same order into the view.
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.last_event {
            return;
        }
        self.last_event = event.seq;
        if let Some(status) = event.kind.status() {
            self.status = status;
            self.history.push(HistoryEntry { status, at: rfc3339(event.at_ms) });
        }
        match &event.kind {
            EventKind::OrderPaid { .. } => self.payment.state = PaymentState::Captured,
            EventKind::PaymentRefunded { .. } => self.payment.state = PaymentState::Refunded,
            EventKind::OrderCanceled { reason } => {
                self.reason = Some(reason.as_str().to_owned());
                if self.payment.state == PaymentState::Pending {
                    self.payment.state = PaymentState::Voided;
                }
            }
            EventKind::DeliveryStarted { delivery_id } => {
                self.delivery =
                    Some(DeliveryView { id: delivery_id.clone(), state: DeliveryState::InTransit });
            }
            EventKind::DeliveryCompleted { .. } => {
                if let Some(d) = &mut self.delivery {
                    d.state = DeliveryState::Delivered;
                }
            }
            _ => {}
        }
    }
}

/// A message sent to a customer about one status change of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The status event this notification is about; one notification per event.
    pub event: Seq,
    pub order_id: OrderId,
    pub customer: CustomerId,
    pub status: OrderStatus,
    pub message: String,
    pub at: String,
}

impl Notification {
    /// The notification for a status-changing event, if `event` is one.
    pub fn for_event(event: &Event, customer: &CustomerId) -> Option<Notification> {
        let status = event.kind.status()?;
        Some(Notification {
            event: event.seq,
            order_id: event.order_id.clone(),
            customer: customer.clone(),
            status,
            message: message(&event.order_id, &event.kind),
            at: rfc3339(event.at_ms),
        })
    }
}

fn message(id: &OrderId, kind: &EventKind) -> String {
    match kind {
        EventKind::OrderPlaced { total, .. } => {
            format!("Order {id} received, total {}.", total.minor())
        }
        EventKind::PaymentPending { amount } => {
            format!("Order {id} is waiting for your bank transfer of {}.", amount.minor())
        }
        EventKind::OrderPaid { amount, .. } => {
            format!("Payment of {} for order {id} is confirmed.", amount.minor())
        }
        EventKind::OrderReserved => format!("The goods for order {id} are ready."),
        EventKind::OrderInDelivery { delivery_id } => {
            format!("Order {id} is on its way (delivery {delivery_id}).")
        }
        EventKind::OrderDelivered => format!("Order {id} was delivered."),
        EventKind::OrderClosed => format!("Order {id} is complete. Thank you."),
        EventKind::OrderCanceled { reason } => {
            format!("Order {id} was canceled ({}).", reason.as_str())
        }
        other => format!("Order {id}: {}.", other.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CancelReason, Sku};

    fn event(seq: Seq, kind: EventKind) -> Event {
        Event {
            seq,
            order_id: OrderId::from_number(1),
            caused_by: None,
            at_ms: 1_700_000_000_000 + seq,
            kind,
        }
    }

    fn placed(seq: Seq) -> Event {
        event(
            seq,
            EventKind::OrderPlaced {
                customer: CustomerId::parse("kim").unwrap(),
                items: vec![OrderLine {
                    sku: Sku::parse("MUG").unwrap(),
                    qty: 2,
                    unit_price: Money::new(1500).unwrap(),
                }],
                address: "Seoul".into(),
                payment: PaymentMethod::BankTransfer,
                total: Money::new(3000).unwrap(),
                workflow: "shop".into(),
            },
        )
    }

    /// Given `events`, the view they fold into.
    fn given(events: &[Event]) -> StatusView {
        let mut view = StatusView::start(&events[0]).expect("first event places the order");
        for e in &events[1..] {
            view.apply(e);
        }
        view
    }

    fn statuses(view: &StatusView) -> Vec<OrderStatus> {
        view.history.iter().map(|h| h.status).collect()
    }

    #[test]
    fn given_a_placed_order_then_the_view_shows_it_placed() {
        let view = given(&[placed(1)]);
        assert_eq!(view.status, OrderStatus::Placed);
        assert_eq!(view.total.minor(), 3000);
        assert_eq!(view.payment.state, PaymentState::Pending);
        assert_eq!(view.history.len(), 1);
        assert_eq!(view.history[0].at, "2023-11-14T22:13:20.001Z");
    }

    #[test]
    fn given_the_whole_shop_saga_then_history_lists_every_status_in_order() {
        let view = given(&[
            placed(1),
            event(2, EventKind::PaymentPending { amount: Money::new(3000).unwrap() }),
            event(
                3,
                EventKind::OrderPaid {
                    method: PaymentMethod::BankTransfer,
                    amount: Money::new(3000).unwrap(),
                    payment_id: "p".into(),
                },
            ),
            event(4, EventKind::StockReserved { lines: vec![] }),
            event(5, EventKind::OrderReserved),
            event(6, EventKind::DeliveryStarted { delivery_id: "d1".into() }),
            event(7, EventKind::OrderInDelivery { delivery_id: "d1".into() }),
            event(8, EventKind::DeliveryCompleted { delivery_id: "d1".into() }),
            event(9, EventKind::OrderDelivered),
            event(10, EventKind::OrderClosed),
        ]);
        use OrderStatus::*;
        assert_eq!(
            statuses(&view),
            vec![Placed, PaymentPending, Paid, Reserved, InDelivery, Delivered, Closed]
        );
        assert_eq!(view.payment.state, PaymentState::Captured);
        assert_eq!(view.delivery, Some(DeliveryView { id: "d1".into(), state: DeliveryState::Delivered }));
        assert_eq!(view.last_event, 10);
    }

    #[test]
    fn given_out_of_stock_then_the_view_is_canceled_refunded_with_a_reason() {
        let view = given(&[
            placed(1),
            event(
                2,
                EventKind::OrderPaid {
                    method: PaymentMethod::Card,
                    amount: Money::new(3000).unwrap(),
                    payment_id: "p".into(),
                },
            ),
            event(3, EventKind::StockShort { sku: Sku::parse("MUG").unwrap(), requested: 2, available: 1 }),
            event(4, EventKind::OrderCanceled { reason: CancelReason::OutOfStock }),
            event(5, EventKind::PaymentRefunded { amount: Money::new(3000).unwrap() }),
        ]);
        assert_eq!(view.status, OrderStatus::Canceled);
        assert_eq!(view.reason.as_deref(), Some("out_of_stock"));
        assert_eq!(view.payment.state, PaymentState::Refunded);
    }

    #[test]
    fn given_a_cancel_before_payment_then_the_payment_is_voided() {
        let view =
            given(&[placed(1), event(2, EventKind::OrderCanceled { reason: CancelReason::CustomerRequest })]);
        assert_eq!(view.payment.state, PaymentState::Voided);
        assert_eq!(view.reason.as_deref(), Some("customer_request"));
    }

    #[test]
    fn when_an_event_is_applied_twice_then_nothing_changes_twice() {
        let paid = event(
            2,
            EventKind::OrderPaid {
                method: PaymentMethod::Card,
                amount: Money::new(3000).unwrap(),
                payment_id: "p".into(),
            },
        );
        let once = given(&[placed(1), paid.clone()]);
        let twice = given(&[placed(1), paid.clone(), paid]);
        assert_eq!(once, twice);
    }

    #[test]
    fn notifications_are_made_only_for_status_changes() {
        let kim = CustomerId::parse("kim").unwrap();
        let n = Notification::for_event(&placed(1), &kim).unwrap();
        assert_eq!(n.status, OrderStatus::Placed);
        assert!(n.message.contains("ord-1"));
        assert!(
            Notification::for_event(&event(2, EventKind::StockReserved { lines: vec![] }), &kim).is_none()
        );
    }
}
