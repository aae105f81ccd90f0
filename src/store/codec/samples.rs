//! One sample of every stored type that has grown since format version 1,
//! built from the domain alone: the golden tests check that the older bytes
//! they record still decode to the same values (new fields at their
//! defaults).

use crate::domain::inventory::{Reservation, ReservationState};
use crate::domain::view::{DeliveryState, DeliveryView, HistoryEntry, PaymentState, PaymentView};
use crate::domain::{
    CustomerId, Event, EventKind, Money, Order, OrderId, OrderLine, OrderStatus, PaymentMethod, Product,
    ReservationMode, Sku, StatusView,
};

fn line() -> OrderLine {
    OrderLine { sku: Sku::parse("ROOM-DBL").unwrap(), qty: 1, unit_price: Money::new(12000).unwrap() }
}

fn kim() -> CustomerId {
    CustomerId::parse("kim").unwrap()
}

pub fn placed_event() -> Event {
    Event {
        seq: 9,
        order_id: OrderId::from_number(3),
        caused_by: None,
        at_ms: 1_780_000_000_000,
        kind: EventKind::OrderPlaced {
            customer: kim(),
            items: vec![line()],
            address: "Seoul".into(),
            payment: PaymentMethod::Card,
            total: Money::new(12000).unwrap(),
            workflow: "hotel".into(),
            reservation: ReservationMode::AtPlacement,
            details: None,
            stay: None,
            lang: None,
        },
    }
}

pub fn order() -> Order {
    Order {
        id: OrderId::from_number(3),
        customer: kim(),
        items: vec![line()],
        address: "Seoul".into(),
        payment: PaymentMethod::Card,
        total: Money::new(12000).unwrap(),
        workflow: "hotel".into(),
        status: OrderStatus::Accepted,
        payment_id: Some("pay-1".into()),
        refunded: false,
        units: vec!["r101".into()],
        accepted_by: Some("grand".into()),
        delivery_requested: true,
        delivery_id: None,
        leg: None,
        reason: None,
        rejection: None,
        details: None,
        stay: None,
        declined: vec![],
    }
}

pub fn view() -> StatusView {
    StatusView {
        order_id: OrderId::from_number(3),
        status: OrderStatus::InDelivery,
        customer: kim(),
        workflow: "hotel".into(),
        items: vec![line()],
        total: Money::new(12000).unwrap(),
        payment: PaymentView {
            method: PaymentMethod::Card,
            state: PaymentState::Captured,
            amount: Money::new(12000).unwrap(),
        },
        delivery: Some(DeliveryView {
            id: Some("dlv-3".into()),
            state: DeliveryState::InTransit,
            leg: Some("stay".into()),
        }),
        history: vec![HistoryEntry {
            status: OrderStatus::Placed,
            at: "2026-05-28T20:26:40Z".into(),
            leg: None,
        }],
        reason: None,
        units: vec!["r101".into()],
        accepted_by: Some("grand".into()),
        placed_seq: 9,
        last_event: 14,
        details: None,
        stay: None,
        declined: vec![],
        actions: vec![],
    }
}

pub fn product() -> Product {
    Product {
        sku: Sku::parse("ROOM-DBL").unwrap(),
        name: "Double room".into(),
        price: Money::new(12000).unwrap(),
        stock: 2,
        units: vec!["r101".into(), "r102".into()],
        out_of_service: vec![],
        pool: false,
    }
}

pub fn reservation() -> Reservation {
    Reservation {
        lines: vec![(Sku::parse("ROOM-DBL").unwrap(), 1)],
        units: vec!["r101".into()],
        state: ReservationState::Reserved,
        stay: None,
    }
}

/// A subscription (format 2; `lang` came with format 3).
pub fn subscription() -> crate::domain::subscription::Subscription {
    crate::domain::subscription::Subscription {
        id: 7,
        url: "http://127.0.0.1:9000/hook".into(),
        workflow: Some("hotel".into()),
        party: Some("hotel".into()),
        customer: None,
        events: vec![crate::domain::OrderStatus::Paid],
        secret: Some("a-secret-of-16-bytes".into()),
        owner: "operator".into(),
        lang: None,
    }
}
