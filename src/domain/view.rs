//! The read side: the status view of an order and the notifications sent to
//! its customer, both folded purely from events.
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    pub step: String,
    pub by: String,
    /// RFC 3339 time it was taken.
    pub at: String,
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
    pub id: Option<String>,
    pub state: DeliveryState,
    /// The leg under way, or the last one done.
    pub leg: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// `payment` is how the order is paid, as placed (`None`: not known);
    /// `rejection`, why it was turned down, if it was; `wording`, the
    /// workflow's template for the status in the customer's language and
    /// the workflow's name for the status, if it has one.
    pub fn for_event(
        event: &Event,
        customer: &CustomerId,
        payment: Option<PaymentMethod>,
        rejection: Option<&str>,
        wording: Option<(&str, &str)>,
    ) -> Option<Notification> {
        let status = event.kind.status()?;
        let message = match wording {
            Some((template, label)) => {
                render(template, &vars(&event.order_id, &event.kind, rejection, label))
            }
            None => message(&event.order_id, &event.kind, payment, rejection),
        };
        Some(Notification {
            event: event.seq,
            order_id: event.order_id.clone(),
            customer: customer.clone(),
            status,
            message,
            at: rfc3339(event.at_ms),
        })
    }
}

/// What a message template may say: `{order}`, `{label}` (the workflow's
/// name for the status), `{amount}`, `{by}`, `{reason}`, `{why}` (the words
/// of whoever turned it down), `{units}`, `{leg}`.
pub const PLACEHOLDERS: [&str; 8] = ["order", "label", "amount", "by", "reason", "why", "units", "leg"];

/// Refuses a template that names a placeholder that does not exist.
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("a { is not closed")? + open;
        let name = &rest[open + 1..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("{{{name}}} is not one of {{{}}}", PLACEHOLDERS.join("}, {")));
        }
        rest = &rest[close + 1..];
    }
    Ok(())
}

/// `template` filled in for `event` (see [`PLACEHOLDERS`]).
pub fn render_for(template: &str, event: &Event, rejection: Option<&str>, label: &str) -> String {
    render(template, &vars(&event.order_id, &event.kind, rejection, label))
}

/// The template with its placeholders filled in.
fn render(template: &str, vars: &[(&str, String)]) -> String {
    vars.iter().fold(template.to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
}

/// The values of the placeholders for `kind`.
fn vars(id: &OrderId, kind: &EventKind, rejection: Option<&str>, label: &str) -> Vec<(&'static str, String)> {
    let (mut amount, mut by, mut reason, mut units, mut leg) = Default::default();
    match kind {
        EventKind::OrderPlaced { total, .. } => amount = total.minor().to_string(),
        EventKind::PaymentPending { amount: a } | EventKind::OrderPaid { amount: a, .. } => {
            amount = a.minor().to_string()
        }
        EventKind::OrderReserved { units: u } => units = u.join(", "),
        EventKind::OrderAccepted { by: b } => by = b.clone(),
        EventKind::OrderRejected { by: b, reason: r } => (by, reason) = (b.clone(), r.clone()),
        EventKind::OrderInDelivery { name, .. } => leg = name.clone(),
        EventKind::OrderCanceled { reason: r } => reason = r.as_str().to_owned(),
        _ => {}
    }
    vec![
        ("order", id.to_string()),
        ("label", label.to_owned()),
        ("amount", amount),
        ("by", by),
        ("reason", reason),
        ("why", rejection.unwrap_or_default().to_owned()),
        ("units", units),
        ("leg", leg),
    ]
}

fn message(
    id: &OrderId,
    kind: &EventKind,
    payment: Option<PaymentMethod>,
    rejection: Option<&str>,
) -> String {
    match kind {
        EventKind::OrderPlaced { total, .. } => {
            format!("Order {id} received, total {}.", total.minor())
        }
        // A card payment is pending only when it was deferred: the gateway
        // was unavailable, and the card will be charged when it is back.
        EventKind::PaymentPending { amount } if payment == Some(PaymentMethod::Card) => {
            format!("Order {id} is accepted; your card payment of {} will be taken shortly.", amount.minor())
        }
        EventKind::PaymentPending { amount } => {
            format!("Order {id} is waiting for your bank transfer of {}.", amount.minor())
        }
        EventKind::OrderPaid { amount, .. } => {
            format!("Payment of {} for order {id} is confirmed.", amount.minor())
        }
        EventKind::OrderReserved { units } if units.is_empty() => format!("Order {id} is reserved."),
        EventKind::OrderReserved { units } => format!("Order {id}: {} is assigned to you.", units.join(", ")),
        EventKind::OrderAccepted { by } => format!("Order {id} was accepted by {by}."),
        EventKind::OrderRejected { by, reason } => format!("Order {id} was declined by {by}: {reason}."),
        EventKind::OrderInDelivery { name, .. } => format!("Order {id} is on its way ({name})."),
        EventKind::OrderDelivered => format!("Order {id} was delivered."),
        EventKind::OrderClosed => format!("Order {id} is complete. Thank you."),
        // A checkpoint's words say why the goods were stopped.
        EventKind::OrderCanceled { reason } => match rejection {
            Some(why) => format!("Order {id} was canceled ({}): {why}.", reason.as_str()),
            None => format!("Order {id} was canceled ({}).", reason.as_str()),
        },
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
                details: None,
                stay: None,
                lang: None,
                reservation: crate::domain::ReservationMode::AfterPayment,
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
    fn notifications_are_made_only_for_status_changes() {
        let kim = CustomerId::parse("kim").unwrap();
        let n = Notification::for_event(&placed(1), &kim, None, None, None).unwrap();
        assert_eq!(n.status, OrderStatus::Placed);
        assert!(n.message.contains("ord-1"));
        assert!(Notification::for_event(
            &event(2, EventKind::StockReserved { lines: vec![], units: vec![] }),
            &kim,
            None,
            None,
            None
        )
        .is_none());
    }

    #[test]
    fn a_deferred_card_payment_is_told_it_will_be_taken_not_asked_for_a_transfer() {
        let kim = CustomerId::parse("kim").unwrap();
        let pending = event(2, EventKind::PaymentPending { amount: Money::new(300).unwrap() });
        let card = Notification::for_event(&pending, &kim, Some(PaymentMethod::Card), None, None).unwrap();
        assert!(
            card.message.contains("card payment") && !card.message.contains("transfer"),
            "{}",
            card.message
        );
        let transfer =
            Notification::for_event(&pending, &kim, Some(PaymentMethod::BankTransfer), None, None).unwrap();
        assert!(transfer.message.contains("bank transfer"), "{}", transfer.message);
    }

    #[test]
    fn a_template_is_filled_in_and_one_with_an_unknown_placeholder_is_refused() {
        let kim = CustomerId::parse("kim").unwrap();
        let accepted = event(2, EventKind::OrderAccepted { by: "Hotel Seoul".into() });
        let n = Notification::for_event(
            &accepted,
            &kim,
            None,
            None,
            Some(("{order}: {label} by {by}", "confirmed")),
        )
        .unwrap();
        assert_eq!(n.message, format!("{}: confirmed by Hotel Seoul", OrderId::from_number(1)));
        assert!(check_template("{order} {amount}").is_ok());
        assert!(check_template("{ordr}").unwrap_err().contains("{ordr} is not one of"));
        assert!(check_template("{order").unwrap_err().contains("not closed"));
        let mut wf = crate::domain::Workflow::shop();
        wf.messages.insert("ko".into(), [("shipped".to_owned(), "x".to_owned())].into());
        assert!(wf.check().unwrap_err().contains("not a status"));
        wf.messages.clear();
        wf.lang = "ko".into();
        assert!(wf.check().unwrap_err().contains("has no messages"));
    }
}
