//! `fulfil check`: verifies a stopped node's store offline.
//!
//! It opens the store as the node would (so a damaged one is refused with
//! the same message), then reads it whole: the log is contiguous and every
//! event decodes, no service's offset and no status view is ahead of the
//! log, and every named unit is held at most once (free in its pool, or
//! reserved by one order).

use crate::actors::inventory::{ReservationState, PRODUCTS, RESERVATIONS};
use crate::actors::projection::VIEWS;
use crate::service::Service;
use crate::store::{Store, StoreError};
use std::collections::BTreeMap;
use std::path::Path;

/// Events read at once.
const CHUNK: usize = 10_000;

/// What the check found: a summary, and every problem.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub summary: Vec<String>,
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the store in `dir`; `Err` when it cannot be opened at all.
pub fn check(dir: &Path) -> Result<CheckReport, StoreError> {
    let store = Store::open(dir, 16 << 20)?;
    let mut report = CheckReport::default();
    let head = check_log(&store, &mut report)?;
    check_offsets(&store, head, &mut report)?;
    check_views(&store, head, &mut report)?;
    check_units(&store, &mut report)?;
    let letters = store.dead_letters()?.len();
    report.summary.push(format!("dead letters: {letters}"));
    Ok(report)
}

fn check_log(store: &Store, report: &mut CheckReport) -> Result<u64, StoreError> {
    let head = store.head();
    let mut expected = 1;
    loop {
        let events = match store.read_log(expected - 1, CHUNK) {
            Ok(events) => events,
            Err(e) => {
                report.problems.push(format!("the log cannot be read after event {}: {e}", expected - 1));
                break;
            }
        };
        if events.is_empty() {
            break;
        }
        for event in events {
            if event.seq != expected {
                report.problems.push(format!("the log skips from event {} to {}", expected - 1, event.seq));
            }
            expected = event.seq + 1;
        }
    }
    if expected - 1 != head {
        report
            .problems
            .push(format!("the log was read up to event {}, but its head is {head}", expected - 1));
    }
    report.summary.push(format!("log: {head} events"));
    Ok(head)
}

fn check_offsets(store: &Store, head: u64, report: &mut CheckReport) -> Result<(), StoreError> {
    let mut line = Vec::new();
    for service in Service::ALL {
        let offset = store.offset(service.name())?;
        if offset > head {
            report
                .problems
                .push(format!("{service} has processed event {offset}, past the log's head {head}"));
        }
        line.push(format!("{service} {offset} (lag {})", head.saturating_sub(offset)));
    }
    report.summary.push(format!("offsets: {}", line.join(", ")));
    Ok(())
}

fn check_views(store: &Store, head: u64, report: &mut CheckReport) -> Result<(), StoreError> {
    let mut views = 0;
    for entry in store.entries_from(VIEWS, [])? {
        let (_, view) = entry?;
        views += 1;
        if view.last_event > head || view.placed_seq > head {
            report.problems.push(format!(
                "the status view of {} has seen event {}, past the log's head {head}",
                view.order_id, view.last_event
            ));
        }
    }
    report.summary.push(format!("orders: {views} status views"));
    Ok(())
}

fn check_units(store: &Store, report: &mut CheckReport) -> Result<(), StoreError> {
    // unit → where it is: "free in SKU" or "held by ORDER".
    let mut places: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in store.entries_from(PRODUCTS, [])? {
        let (_, product) = entry?;
        for unit in &product.units {
            places.entry(unit.clone()).or_default().push(format!("free in {}", product.sku));
        }
    }
    for entry in store.entries_from(RESERVATIONS, [])? {
        let (order, reservation) = entry?;
        if reservation.state == ReservationState::Reserved {
            for unit in &reservation.units {
                places
                    .entry(unit.clone())
                    .or_default()
                    .push(format!("held by {}", String::from_utf8_lossy(&order)));
            }
        }
    }
    for (unit, at) in places.iter().filter(|(_, at)| at.len() > 1) {
        report.problems.push(format!("unit {unit} is in {} places: {}", at.len(), at.join(", ")));
    }
    report.summary.push(format!("units: {} named, each in one place unless listed below", places.len()));
    Ok(())
}
