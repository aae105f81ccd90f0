//! The read side: the status view of an order, folded purely from events
//! (what its customer is told is [`super::message`]).
//!
//! The projection actor stores what these functions compute; keeping the
//! fold here means it is tested as given-events/then-view, and a rebuild from
//! the log gives exactly the same view.

use super::details::Details;
use super::stay::Stay;
use super::{
    rfc3339, CustomerId, Event, EventKind, Money, OrderId, OrderLine, OrderStatus, PaymentMethod, Seq,
};
use serde::{Deserialize, Serialize};

/// An order's status as the customer sees it (`GET /status/{order_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Units reserved by name (the assigned driver).
    pub units: Vec<String>,
    /// Who accepted it (the hotel, the driver).
    pub accepted_by: Option<String>,
    /// The event that placed it: lists are kept in this order.
    pub placed_seq: Seq,
    /// The last event folded in; older or equal events are ignored, so
    /// applying an event twice changes nothing.
    pub last_event: Seq,
    // Grown since format 1: new fields go at the end (see store::codec).
    /// The business's own details, as sent.
    pub details: Option<Details>,
    /// The dates it books its unit for.
    pub stay: Option<Stay>,
    /// The parties that declined it while it stayed open.
    pub declined: Vec<String>,
    /// Who did what: each step a known party took (accepted, confirmed the
    /// deposit, started a leg), oldest first.
    pub actions: Vec<Action>,
}

/// A step a party took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Action {
    pub step: String,
    pub by: String,
    /// RFC 3339 time it was taken.
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub method: PaymentMethod,
    pub state: PaymentState,
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// Waiting for the deposit.
    Pending,
    Captured,
    Refunded,
    /// Canceled before anything was paid.
    Voided,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeliveryView {
    pub id: Option<String>,
    pub state: DeliveryState,
    /// The leg under way, or the last one done.
    pub leg: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Requested; the first leg has not started.
    Requested,
    InTransit,
    /// A leg is done; the next waits to start.
    BetweenLegs,
    Delivered,
    /// A checkpoint rejected the goods.
    Rejected,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub status: OrderStatus,
    /// RFC 3339 time of the change.
    pub at: String,
    /// For `in_delivery`: the leg that started.
    pub leg: Option<String>,
}

impl StatusView {
    /// The view an `OrderPlaced` event starts; `None` for any other event.
    pub fn start(event: &Event) -> Option<StatusView> {
        let EventKind::OrderPlaced { customer, items, payment, total, workflow, details, stay, .. } =
            &event.kind
        else {
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
            history: vec![HistoryEntry { status: OrderStatus::Placed, at: rfc3339(event.at_ms), leg: None }],
            reason: None,
            units: Vec::new(),
            accepted_by: None,
            placed_seq: event.seq,
            last_event: event.seq,
            details: details.clone(),
            stay: *stay,
            declined: Vec::new(),
            actions: Vec::new(),
        })
    }

    /// The view an order's events make, in the log's order: started at its
    /// placing, each later event folded in; `None` if it was never placed.
    /// What the projection stores must always equal this (the crash tests
    /// check it).
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a Event>) -> Option<StatusView> {
        events.into_iter().fold(None, StatusView::fold)
    }

    /// One event folded into what is known of its order's view: the
    /// placing event starts it, a later one moves it on, one before the
    /// placing event changes nothing.
    pub fn fold(view: Option<StatusView>, event: &Event) -> Option<StatusView> {
        match (view, StatusView::start(event)) {
            (_, Some(started)) => Some(started),
            (Some(mut view), None) => {
                view.apply(event);
                Some(view)
            }
            (None, None) => None,
        }
    }

    /// Folds one later event of the same order into the view.
    pub fn apply(&mut self, event: &Event) {
        if event.seq <= self.last_event {
            return;
        }
        self.last_event = event.seq;
        if let Some(status) = event.kind.status() {
            self.status = status;
            let leg = match &event.kind {
                EventKind::OrderInDelivery { name, .. } => Some(name.clone()),
                _ => None,
            };
            self.history.push(HistoryEntry { status, at: rfc3339(event.at_ms), leg });
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
            EventKind::OrderReserved { units } => self.units = units.clone(),
            EventKind::OrderAccepted { by } => {
                self.accepted_by = Some(by.clone());
                self.acted("accept", by, event.at_ms);
            }
            EventKind::OrderDeclined { by, .. } => self.declined.push(by.clone()),
            EventKind::Acted { step, by } => self.acted(step, by, event.at_ms),
            EventKind::OrderRejected { reason, .. } => {
                self.reason = Some(reason.clone());
                if self.payment.state == PaymentState::Pending {
                    self.payment.state = PaymentState::Voided;
                }
            }
            EventKind::DeliveryRequested { .. } => {
                self.delivery = Some(DeliveryView { id: None, state: DeliveryState::Requested, leg: None });
            }
            EventKind::LegStarted { delivery_id, name, .. } => {
                self.delivery_moved(delivery_id, name, DeliveryState::InTransit)
            }
            EventKind::LegCompleted { delivery_id, name, .. } => {
                self.delivery_moved(delivery_id, name, DeliveryState::BetweenLegs)
            }
            EventKind::LegRejected { delivery_id, name, .. } => {
                self.delivery_moved(delivery_id, name, DeliveryState::Rejected)
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

impl StatusView {
    fn acted(&mut self, step: &str, by: &str, at_ms: u64) {
        self.actions.push(Action { step: step.to_owned(), by: by.to_owned(), at: rfc3339(at_ms) });
    }

    fn delivery_moved(&mut self, id: &str, leg: &str, state: DeliveryState) {
        self.delivery = Some(DeliveryView { id: Some(id.to_owned()), state, leg: Some(leg.to_owned()) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::samples::{event, placed};
    use crate::domain::{CancelReason, Sku};

    /// Given `events`, the view they fold into.
    fn given(events: &[Event]) -> StatusView {
        StatusView::replay(events).expect("the events place the order")
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
            event(4, EventKind::StockReserved { lines: vec![], units: vec![] }),
            event(5, EventKind::OrderReserved { units: vec![] }),
            event(6, EventKind::LegStarted { delivery_id: "d1".into(), leg: 0, name: "shipping".into() }),
            event(
                7,
                EventKind::OrderInDelivery { delivery_id: "d1".into(), leg: 0, name: "shipping".into() },
            ),
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
        let delivered = DeliveryView {
            id: Some("d1".into()),
            state: DeliveryState::Delivered,
            leg: Some("shipping".into()),
        };
        assert_eq!(view.delivery, Some(delivered));
        assert_eq!(view.history[4].leg.as_deref(), Some("shipping"));
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
    fn given_an_assigned_driver_and_an_acceptance_then_the_view_names_both() {
        let view = given(&[
            placed(1),
            event(2, EventKind::OrderReserved { units: vec!["driver-lee".into()] }),
            event(3, EventKind::OrderAccepted { by: "driver-lee".into() }),
        ]);
        assert_eq!(view.units, ["driver-lee"]);
        assert_eq!(view.accepted_by.as_deref(), Some("driver-lee"));
        assert_eq!(view.status, OrderStatus::Accepted);
    }

    #[test]
    fn given_a_rejection_then_the_view_gives_its_reason() {
        let rejected = EventKind::OrderRejected { by: "hotel".into(), reason: "fully booked".into() };
        let view = given(&[placed(1), event(2, rejected)]);
        assert_eq!((view.status, view.reason.as_deref()), (OrderStatus::Rejected, Some("fully booked")));
    }

    #[test]
    fn a_view_replays_from_its_placing_and_an_order_never_placed_has_none() {
        let reserved = event(
            1,
            EventKind::StockReserved { lines: vec![(Sku::parse("MUG").unwrap(), 2)], units: vec![] },
        );
        assert_eq!(StatusView::replay(std::slice::from_ref(&reserved)), None);
        let view = StatusView::replay(&[reserved, placed(2), event(3, EventKind::OrderClosed)]).unwrap();
        assert_eq!(
            (view.placed_seq, view.last_event, statuses(&view)),
            (2, 3, vec![OrderStatus::Placed, OrderStatus::Closed])
        );
    }
}
