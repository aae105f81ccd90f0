//! Messages: what people are told about an order, in their language.
//!
//! Each status change, and each refund, makes one [`Notification`] for the
//! order's customer; a workflow's templates (by language, and by party for
//! the hotel or the drivers) or the built-in English give its words. Pure:
//! the notification service stores what these functions make, keyed by the
//! event, so a replay of the log makes the same message again.

use super::{rfc3339, CancelReason, CustomerId, Event, EventKind, OrderId, OrderStatus, PaymentMethod, Seq};
use serde::{Deserialize, Serialize};

/// A message sent to a customer about one change of one order: a status
/// change, or a refund (its `event` is the refund; its `status`, the one
/// the order ended at).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notification {
    /// The event this notification is about; one notification per event.
    pub event: Seq,
    pub order_id: OrderId,
    pub customer: CustomerId,
    pub status: OrderStatus,
    pub message: String,
    pub at: String,
}

/// The template key of a refund's message (beside the status names).
pub const REFUNDED: &str = "refunded";

/// What a message is made from besides its event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Telling<'a> {
    /// How the order is paid, as placed (`None`: not known).
    pub payment: Option<PaymentMethod>,
    /// A checkpoint's words, for the message that its rejection cancels
    /// the order.
    pub rejection: Option<&'a str>,
    /// The event that caused this one: a refund's cancel or rejection.
    pub cause: Option<&'a EventKind>,
    /// The language reasons are told in (`""`: English).
    pub lang: &'a str,
}

/// What a message about `kind` is about: the status it tells of and its
/// template key; none for an event nobody is told of.
pub fn subject(kind: &EventKind, cause: Option<&EventKind>) -> Option<(OrderStatus, &'static str)> {
    match kind {
        EventKind::PaymentRefunded { .. } => {
            let ended = cause.and_then(EventKind::status).unwrap_or(OrderStatus::Canceled);
            Some((ended, REFUNDED))
        }
        other => other.status().map(|s| (s, s.as_str())),
    }
}

impl Notification {
    /// The notification for `event`, if it is one people are told of.
    /// `wording` is the workflow's template for it in the customer's
    /// language and the workflow's name for the status, if it has one.
    pub fn for_event(
        event: &Event,
        customer: &CustomerId,
        telling: &Telling<'_>,
        wording: Option<(&str, &str)>,
    ) -> Option<Notification> {
        let (status, _) = subject(&event.kind, telling.cause)?;
        let message = match wording {
            Some((template, label)) => render_for(template, event, telling, label),
            None => message(&event.order_id, &event.kind, telling),
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

/// What a template may say: `{order}`, `{label}` (the workflow's name for
/// the status), `{amount}`, `{by}`, `{reason}` (why it was canceled,
/// declined or refunded, in the message's language), `{why}` (the words of
/// whoever turned it down), `{units}`, `{leg}`.
pub const PLACEHOLDERS: [&str; 8] = ["order", "label", "amount", "by", "reason", "why", "units", "leg"];

/// Refuses a template that names a placeholder that does not exist, or
/// one that `subject` (a status name, or `refunded`) leaves empty: the
/// hotel told "room {units} is free" on a cancel would read "room  is free".
pub fn check_template(subject: &str, template: &str) -> Result<(), String> {
    let filled = fills(subject);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let close = rest[open..].find('}').ok_or("a { is not closed")? + open;
        let name = &rest[open + 1..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("{{{name}}} is not one of {{{}}}", PLACEHOLDERS.join("}, {")));
        }
        if !filled.contains(&name) {
            return Err(format!("{{{name}}} is empty at {subject} (it has {{{}}})", filled.join("}, {")));
        }
        rest = &rest[close + 1..];
    }
    Ok(())
}

/// The placeholders a message about `subject` fills in (see [`vars`]).
fn fills(subject: &str) -> &'static [&'static str] {
    match subject {
        "placed" | "payment_pending" | "paid" => &["order", "label", "amount"],
        "reserved" => &["order", "label", "units"],
        "accepted" => &["order", "label", "by"],
        "rejected" => &["order", "label", "by", "reason"],
        "in_delivery" => &["order", "label", "leg"],
        "canceled" => &["order", "label", "reason", "why"],
        REFUNDED => &["order", "label", "amount", "reason"],
        _ => &["order", "label"],
    }
}

/// `template` filled in for `event` (see [`PLACEHOLDERS`]).
pub fn render_for(template: &str, event: &Event, telling: &Telling<'_>, label: &str) -> String {
    vars(&event.order_id, &event.kind, telling, label)
        .iter()
        .fold(template.to_owned(), |text, (name, value)| text.replace(&format!("{{{name}}}"), value))
}

/// The values of the placeholders for `kind`.
fn vars(id: &OrderId, kind: &EventKind, telling: &Telling<'_>, label: &str) -> Vec<(&'static str, String)> {
    let (mut amount, mut by, mut units, mut leg) = Default::default();
    match kind {
        EventKind::OrderPlaced { total, .. } => amount = total.minor().to_string(),
        EventKind::PaymentPending { amount: a }
        | EventKind::OrderPaid { amount: a, .. }
        | EventKind::PaymentRefunded { amount: a } => amount = a.minor().to_string(),
        EventKind::OrderReserved { units: u } => units = u.join(", "),
        EventKind::OrderAccepted { by: b } | EventKind::OrderRejected { by: b, .. } => by = b.clone(),
        EventKind::OrderInDelivery { name, .. } => leg = name.clone(),
        _ => {}
    }
    vec![
        ("order", id.to_string()),
        ("label", label.to_owned()),
        ("amount", amount),
        ("by", by),
        ("reason", reason(kind, telling)),
        ("why", telling.rejection.unwrap_or_default().to_owned()),
        ("units", units),
        ("leg", leg),
    ]
}

/// Why `kind` happened, in words: a cancel's reason in the message's
/// language, a party's own words for its rejection, and for a refund, the
/// reason of what caused it.
fn reason(kind: &EventKind, telling: &Telling<'_>) -> String {
    match (kind, telling.cause) {
        (EventKind::OrderCanceled { reason }, _) => reason_words(*reason, telling.lang).to_owned(),
        (EventKind::OrderRejected { reason, .. }, _) => reason.clone(),
        (EventKind::PaymentRefunded { .. }, Some(cause)) => reason(cause, telling),
        _ => String::new(),
    }
}

/// A cancel's reason as people say it. English and Korean are built in (the
/// seed businesses are Korean); any other language gets the English.
pub fn reason_words(reason: CancelReason, lang: &str) -> &'static str {
    let korean = lang == "ko";
    match reason {
        CancelReason::CustomerRequest if korean => "고객 요청",
        CancelReason::CustomerRequest => "at the customer's request",
        CancelReason::OutOfStock if korean => "재고 부족",
        CancelReason::OutOfStock => "out of stock",
        CancelReason::PaymentDeclined if korean => "결제 거절",
        CancelReason::PaymentDeclined => "the payment was declined",
        CancelReason::CheckpointRejected if korean => "통관 거절",
        CancelReason::CheckpointRejected => "rejected at a checkpoint",
        CancelReason::Forfeited if korean => "통관 거절, 물품 폐기",
        CancelReason::Forfeited => "rejected at a checkpoint, goods forfeited",
        CancelReason::SellerRequest if korean => "판매자 취소",
        CancelReason::SellerRequest => "canceled by the seller",
        CancelReason::Expired if korean => "기한 내 미결제",
        CancelReason::Expired => "not paid in time",
    }
}

/// The built-in English message for `event`.
pub fn built_in(event: &Event, telling: &Telling<'_>) -> String {
    message(&event.order_id, &event.kind, telling)
}

/// The built-in English message.
fn message(id: &OrderId, kind: &EventKind, telling: &Telling<'_>) -> String {
    let why = reason(kind, telling);
    match kind {
        EventKind::OrderPlaced { total, .. } => {
            format!("Order {id} received, total {}.", total.minor())
        }
        // A card payment is pending only when it was deferred: the gateway
        // was unavailable, and the card will be charged when it is back.
        EventKind::PaymentPending { amount } if telling.payment == Some(PaymentMethod::Card) => {
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
        EventKind::OrderRejected { by, .. } => format!("Order {id} was declined by {by}: {why}."),
        EventKind::OrderInDelivery { name, .. } => format!("Order {id} is on its way ({name})."),
        EventKind::OrderDelivered => format!("Order {id} was delivered."),
        EventKind::OrderClosed => format!("Order {id} is complete. Thank you."),
        // A checkpoint's words say why the goods were stopped.
        EventKind::OrderCanceled { .. } => match telling.rejection {
            Some(words) => format!("Order {id} was canceled ({why}): {words}."),
            None => format!("Order {id} was canceled ({why})."),
        },
        EventKind::PaymentRefunded { amount } if why.is_empty() => {
            format!("Your payment of {} for order {id} was refunded.", amount.minor())
        }
        EventKind::PaymentRefunded { amount } => {
            format!("Your payment of {} for order {id} was refunded ({why}).", amount.minor())
        }
        other => format!("Order {id}: {}.", other.name()),
    }
}

#[cfg(test)]
mod tests;
