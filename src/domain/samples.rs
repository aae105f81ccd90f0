//! Events of one sample order (`ord-1`, kim's two mugs by bank transfer),
//! for the read side's given/when/then tests.

use super::{CustomerId, Event, EventKind, Money, OrderId, OrderLine, PaymentMethod, Seq, Sku};

/// Event `seq` of the sample order.
pub fn event(seq: Seq, kind: EventKind) -> Event {
    Event { seq, order_id: OrderId::from_number(1), caused_by: None, at_ms: 1_700_000_000_000 + seq, kind }
}

/// The sample order placed, as event `seq`: 2 × 1,500 for kim.
pub fn placed(seq: Seq) -> Event {
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
            reservation: super::ReservationMode::AfterPayment,
        },
    )
}
