//! The services' state rebuilt from events alone: what a node that takes
//! a partition over will start from, and what a node's own store must
//! always agree with.
//!
//! Rebuilt so far: each order's record, its delivery and its reservation
//! (the folds `Order::replay`, `Delivery::replay`, `Reservation::replay`),
//! and its status view (`StatusView::replay`).
//! Not yet: payments, whose authorisation and deferred retries happen
//! before any event records them, and the products' stock, which is
//! added and restocked without events.

use crate::domain::delivery::Delivery;
use crate::domain::inventory::Reservation;
use crate::domain::{Event, Order, OrderId, StatusView};
use std::collections::BTreeMap;

/// What the events of some orders make of them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Rebuilt {
    pub orders: BTreeMap<OrderId, Order>,
    pub deliveries: BTreeMap<OrderId, Delivery>,
    pub reservations: BTreeMap<OrderId, Reservation>,
    pub views: BTreeMap<OrderId, StatusView>,
}

impl Rebuilt {
    /// Folds `events` (in the log's order; any orders, any partitions).
    pub fn from_events(events: impl IntoIterator<Item = Event>) -> Rebuilt {
        let mut by_order: BTreeMap<OrderId, Vec<Event>> = BTreeMap::new();
        for e in events {
            by_order.entry(e.order_id.clone()).or_default().push(e);
        }
        let mut rebuilt = Rebuilt::default();
        for (id, events) in by_order {
            let kinds = || events.iter().map(|e| &e.kind);
            if let Some(order) = Order::replay(&id, kinds()) {
                rebuilt.orders.insert(id.clone(), order);
            }
            if let Some(delivery) = Delivery::replay(&id, kinds()) {
                rebuilt.deliveries.insert(id.clone(), delivery);
            }
            if let Some(reservation) = Reservation::replay(kinds()) {
                rebuilt.reservations.insert(id.clone(), reservation);
            }
            if let Some(view) = StatusView::replay(&events) {
                rebuilt.views.insert(id, view);
            }
        }
        rebuilt
    }
}
