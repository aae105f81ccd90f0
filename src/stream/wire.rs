//! The events' format on the stream: JSON, versioned, documented in
//! `docs/events.md` for consumers in any language. The log's own encoding
//! (bincode) is the node's business and may change between releases; this
//! one changes only with `v`.

use crate::domain::{rfc3339, Event, OrderId, Seq};
use serde::{Deserialize, Serialize};

/// The format's version; a consumer reads only the versions it knows.
pub const VERSION: u32 = 1;

/// One event as it is published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEvent {
    /// The format's version: [`VERSION`].
    pub v: u32,
    /// The event's number in the node's log: its id, one more than the
    /// event published before it.
    pub seq: Seq,
    /// The order the event belongs to: the correlation id every event of
    /// one order shares.
    pub correlation_id: String,
    /// The event this one reacts to, if any.
    pub caused_by: Option<Seq>,
    /// When it was written, RFC 3339 in UTC, and the same in milliseconds
    /// since the Unix epoch.
    pub at: String,
    pub at_ms: u64,
    /// What happened, in snake_case ("order_placed", "stock_reserved").
    #[serde(rename = "type")]
    pub kind: String,
    /// The order's status after this event, for the events that set one
    /// ("placed", "paid", …); absent for the services' own facts.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    /// The event's fields, by name; `{}` when it has none.
    pub data: serde_json::Value,
}

impl WireEvent {
    /// `event` in the stream's format.
    pub fn of(event: &Event) -> WireEvent {
        WireEvent {
            v: VERSION,
            seq: event.seq,
            correlation_id: event.order_id.as_str().to_owned(),
            caused_by: event.caused_by,
            at: rfc3339(event.at_ms),
            at_ms: event.at_ms,
            kind: event.kind.name().to_owned(),
            status: event.kind.status().map(|s| s.as_str().to_owned()),
            data: fields(&event.kind),
        }
    }

    /// The published bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an event always encodes as JSON")
    }

    /// The event it was made from, exactly: what a node reads back from
    /// the stream to rebuild the services' state (`cluster::rebuild`).
    pub fn to_event(&self) -> Result<Event, String> {
        if self.v != VERSION {
            return Err(format!("event {}: format version {}, this node reads {VERSION}", self.seq, self.v));
        }
        let order_id =
            OrderId::parse(&self.correlation_id).map_err(|e| format!("event {}: {e}", self.seq))?;
        // Back to serde's shape (see `fields`): the variant's name in
        // CamelCase, alone for a variant without fields.
        let variant: String = self.kind.split('_').map(capitalized).collect();
        let tagged = match &self.data {
            serde_json::Value::Object(fields) if fields.is_empty() => serde_json::Value::String(variant),
            fields => serde_json::json!({ variant: fields }),
        };
        let kind =
            serde_json::from_value(tagged).map_err(|e| format!("event {} ({}): {e}", self.seq, self.kind))?;
        Ok(Event { seq: self.seq, order_id, caused_by: self.caused_by, at_ms: self.at_ms, kind })
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// The variant's fields: serde writes a unit variant as its name and a
/// struct variant as `{ "Name": { fields } }`; the name is already `type`.
fn fields(kind: &crate::domain::EventKind) -> serde_json::Value {
    match serde_json::to_value(kind) {
        Ok(serde_json::Value::Object(outer)) => outer.into_iter().next().map(|(_, inner)| inner),
        _ => None,
    }
    .unwrap_or_else(|| serde_json::Value::Object(Default::default()))
}

/// The partition of an order ([`crate::domain::partition`]), which a
/// consumer in another language computes the same way (docs/events.md).
pub use crate::domain::partition::partition;

/// The subject an order's events are published on: `<prefix>.<partition>`.
pub fn subject(prefix: &str, order_id: &str, partitions: u32) -> String {
    format!("{prefix}.{}", partition(order_id, partitions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CancelReason, EventKind, OrderId};

    fn event(kind: EventKind) -> Event {
        Event { seq: 7, order_id: OrderId::from_number(1), caused_by: Some(6), at_ms: 1_000, kind }
    }

    #[test]
    fn a_status_change_carries_its_status_its_fields_and_its_order() {
        let wire = WireEvent::of(&event(EventKind::OrderCanceled { reason: CancelReason::Expired }));
        let json: serde_json::Value = serde_json::from_slice(&wire.to_bytes()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "v": 1, "seq": 7, "correlation_id": "ord-1", "caused_by": 6,
                "at": "1970-01-01T00:00:01.000Z", "at_ms": 1000,
                "type": "order_canceled", "status": "canceled", "data": { "reason": "expired" }
            })
        );
    }

    #[test]
    fn a_payment_reads_as_docs_events_md_shows_it() {
        let paid = EventKind::OrderPaid {
            method: crate::domain::PaymentMethod::Card,
            amount: crate::domain::Money::new(1200).unwrap(),
            payment_id: "pay-ord-1".into(),
        };
        let wire = WireEvent::of(&event(paid));
        assert_eq!((wire.kind.as_str(), wire.status.as_deref()), ("order_paid", Some("paid")));
        assert_eq!(
            wire.data,
            serde_json::json!({ "method": "card", "amount": 1200, "payment_id": "pay-ord-1" })
        );
    }

    #[test]
    fn a_fact_has_no_status_and_an_event_without_fields_has_empty_data() {
        let fact = WireEvent::of(&event(EventKind::Acted { step: "accept".into(), by: "hotel".into() }));
        assert_eq!((fact.status, fact.data), (None, serde_json::json!({ "step": "accept", "by": "hotel" })));
        let bare = WireEvent::of(&event(EventKind::OrderDelivered));
        assert_eq!((bare.kind.as_str(), bare.status.as_deref()), ("order_delivered", Some("delivered")));
        assert_eq!(bare.data, serde_json::json!({}));
        let back: WireEvent = serde_json::from_slice(&bare.to_bytes()).unwrap();
        assert_eq!(back, bare, "what is published reads back the same");
    }

    /// Every kind of event reads back from its published form as it was,
    /// so the stream alone can rebuild what the log built.
    #[test]
    fn every_kind_of_event_reads_back_from_the_stream_as_it_was() {
        use crate::domain::workflow::{LegSpec, ReservationMode};
        use crate::domain::{CustomerId, Money, OrderLine, PaymentMethod, Sku};
        let sku = Sku::parse("MUG").unwrap();
        let money = Money::new(1200).unwrap();
        let leg =
            |name: &str| LegSpec { name: name.into(), checkpoint: name == "customs", explicit_start: false };
        let (delivery_id, name) = (String::from("dlv-ord-1"), String::from("ride"));
        let details: crate::domain::details::Details =
            serde_json::from_value(serde_json::json!({"guests": 2, "note": "late"})).unwrap();
        let kinds = [
            EventKind::OrderPlaced {
                customer: CustomerId::parse("kim").unwrap(),
                items: vec![OrderLine { sku: sku.clone(), qty: 2, unit_price: money }],
                address: "Seoul".into(),
                payment: PaymentMethod::Card,
                total: money,
                workflow: "hotel".into(),
                reservation: ReservationMode::AtPlacement,
                details: Some(details),
                stay: Some(crate::domain::stay::Stay::parse("2027-03-01", "2027-03-03").unwrap()),
                lang: Some("ko".into()),
            },
            EventKind::PaymentPending { amount: money },
            EventKind::OrderPaid {
                method: PaymentMethod::BankTransfer,
                amount: money,
                payment_id: "dep-1".into(),
            },
            EventKind::OrderReserved { units: vec!["kim".into()] },
            EventKind::OrderAccepted { by: "hotel".into() },
            EventKind::OrderRejected { by: "hotel".into(), reason: "full".into() },
            EventKind::OrderInDelivery { delivery_id: delivery_id.clone(), leg: 1, name: name.clone() },
            EventKind::OrderDelivered,
            EventKind::OrderClosed,
            EventKind::OrderCanceled { reason: CancelReason::Forfeited },
            EventKind::StockReserved { lines: vec![(sku.clone(), 2)], units: vec![] },
            EventKind::StockShort { sku: sku.clone(), requested: 2, available: 1 },
            EventKind::StockReleased { lines: vec![(sku, 2)] },
            EventKind::PaymentRefunded { amount: money },
            EventKind::DeliveryRequested { legs: vec![leg("overseas"), leg("customs")] },
            EventKind::LegStarted { delivery_id: delivery_id.clone(), leg: 0, name: name.clone() },
            EventKind::LegCompleted { delivery_id: delivery_id.clone(), leg: 0, name: name.clone() },
            EventKind::LegRejected {
                delivery_id: delivery_id.clone(),
                leg: 1,
                name,
                reason: "banned".into(),
            },
            EventKind::DeliveryCompleted { delivery_id },
            EventKind::PaymentCaptured { payment_id: "pay-1".into(), amount: money },
            EventKind::PaymentFailed { reason: "declined".into() },
            EventKind::OrderDeclined { by: "driver-kim".into(), reason: "too far".into() },
            EventKind::Acted { step: "accept".into(), by: "hotel".into() },
        ];
        let names: std::collections::BTreeSet<&str> = kinds.iter().map(EventKind::name).collect();
        assert_eq!(names.len(), 23, "every kind once");
        for kind in kinds {
            let published = event(kind);
            let read: WireEvent = serde_json::from_slice(&WireEvent::of(&published).to_bytes()).unwrap();
            assert_eq!(read.to_event(), Ok(published));
        }
        let mut later = WireEvent::of(&event(EventKind::OrderClosed));
        later.v = 2;
        assert!(later.to_event().unwrap_err().contains("version 2"));
        later.v = 1;
        later.kind = "order_teleported".into();
        assert!(later.to_event().unwrap_err().contains("order_teleported"));
    }

    #[test]
    fn partitions_are_fnv1a_of_the_id_and_spread_orders() {
        // FNV-1a 32 of "a" is 0xe40c292c (the published test vector).
        assert_eq!(partition("a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition("ord-1", 1), 0);
        let used: std::collections::BTreeSet<u32> =
            (0..1000).map(|i| partition(&format!("ord-{i:032x}"), 16)).collect();
        assert_eq!(used.len(), 16, "a thousand orders reach every partition");
        assert_eq!(subject("fulfil.events", "a", 16), format!("fulfil.events.{}", 0xe40c_292cu32 % 16));
    }
}
