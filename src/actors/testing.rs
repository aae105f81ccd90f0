//! Helpers for actor tests: an in-memory store (the same contract as the
//! embedded one, `store::contract`), events appended as another service
//! would append them, and waiting for a consumer to catch up.

use super::ServiceEnv;
use crate::domain::{CustomerId, Event, EventKind, Money, OrderId, OrderLine, PaymentMethod, Sku};
use crate::faults::Faults;
use crate::health::Health;
use crate::store::Store;
use std::time::{Duration, Instant};

pub struct TestStore {
    pub store: Store,
    pub health: Health,
}

pub fn temp_store() -> TestStore {
    TestStore { store: Store::in_memory(), health: Health::default() }
}

impl TestStore {
    /// What a service is built with, on this store, with quick restarts.
    pub fn env(&self) -> ServiceEnv {
        let mut policy = crate::config::Settings::default().supervision;
        policy.backoff_min_ms = 1;
        policy.backoff_max_ms = 20;
        ServiceEnv {
            store: self.store.clone(),
            health: self.health.clone(),
            faults: Faults::default(),
            policy,
            metrics: Default::default(),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
            timer_tick: std::time::Duration::from_millis(50),
            key_ttl_ms: 86_400_000,
            hold_back: std::time::Duration::from_millis(200),
        }
    }
    /// Appends events for `order` as if another service had written them.
    pub fn append(&self, order: &OrderId, kinds: Vec<EventKind>) {
        self.store
            .write::<_, ()>(|tx| {
                for kind in &kinds {
                    tx.append(order, None, kind.clone())?;
                }
                Ok(())
            })
            .map_err(|_| "append failed")
            .unwrap();
    }

    /// Every event of `order` in the log, oldest first.
    pub fn events_of(&self, order: &OrderId) -> Vec<EventKind> {
        let all = self.store.read_log(0, usize::MAX).unwrap();
        all.into_iter().filter(|e: &Event| &e.order_id == order).map(|e| e.kind).collect()
    }

    /// Waits until consumer `name` has processed the whole log.
    pub async fn caught_up(&self, name: &'static str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let head = self.store.head();
            if self.health.snapshot(head).get(name).is_some_and(|h| h.offset == head) {
                return;
            }
            assert!(Instant::now() < deadline, "{name} did not catch up with the log");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

pub fn order(n: u64) -> OrderId {
    OrderId::from_number(n)
}

pub fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

pub fn money(m: i64) -> Money {
    Money::new(m).unwrap()
}

/// An `OrderPlaced` for `customer` with `(sku, qty, unit price)` lines.
pub fn placed(customer: &str, lines: &[(&str, u32, i64)], payment: PaymentMethod) -> EventKind {
    placed_in("shop", customer, lines, payment)
}

/// Like [`placed`], in `workflow`.
pub fn placed_in(
    workflow: &str,
    customer: &str,
    lines: &[(&str, u32, i64)],
    payment: PaymentMethod,
) -> EventKind {
    let items: Vec<OrderLine> = lines
        .iter()
        .map(|(s, qty, price)| OrderLine { sku: sku(s), qty: *qty, unit_price: money(*price) })
        .collect();
    let total = items.iter().map(|l| l.unit_price.minor() * i64::from(l.qty)).sum();
    EventKind::OrderPlaced {
        customer: CustomerId::parse(customer).unwrap(),
        items,
        address: "Seoul".into(),
        payment,
        total: money(total),
        workflow: workflow.into(),
        reservation: crate::domain::ReservationMode::AfterPayment,
        details: None,
        stay: None,
        lang: None,
    }
}

pub fn paid(amount: i64) -> EventKind {
    EventKind::OrderPaid { method: PaymentMethod::Card, amount: money(amount), payment_id: "pay-test".into() }
}
