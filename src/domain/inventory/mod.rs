//! Stock and named units, and each order's reservation of them.
//!
//! Stock is taken all-or-nothing (every line, or none), given back when a
//! reserved order ends before it ships, and never goes negative. A product
//! made of named units (drivers, rooms) hands out its free units from the
//! front and takes them back when released: when the order ends early, and
//! when its work is done (the ride is over: the order is delivered). Goods
//! that are counted, not named, leave with the delivery for good.
//!
//! One decision can touch several products, so the fold works on a
//! [`Shelf`]: the products that decision reads, loaded by the inventory
//! actor, which writes back the ones the fold changed.

use super::calendar::Calendar;
use super::fold::{Fold, Refusal};
use super::product::Product;
use super::stay::Stay;
use super::{EventKind, OrderId, ReservationMode, Sku};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub lines: Vec<(Sku, u32)>,
    /// Named units taken, if the products have them.
    pub units: Vec<String>,
    pub state: ReservationState,
    // Grown since format 1: new fields go at the end (see store::codec).
    /// The dates its units are booked for (a hotel stay): the units stay
    /// in their pool, booked in its calendar.
    pub stay: Option<Stay>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    /// The order is known but not paid; nothing is taken yet.
    Requested,
    /// Stock is taken from the products.
    Reserved,
    /// Stock was short; nothing was taken.
    Short,
    /// Stock was given back after a cancellation.
    Released,
    /// The goods left with the delivery.
    Shipped,
    /// Canceled before anything was taken.
    Dropped,
}

/// A line that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Short {
    pub sku: Sku,
    pub requested: u32,
    pub available: u64,
}

/// Named units a decision moved, each with its product.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MovedUnits {
    /// Out of their pools: now held by the order.
    pub taken: Vec<(Sku, String)>,
    /// Back in their pools.
    pub returned: Vec<(Sku, String)>,
}

/// The products one decision works on, and which of them it changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shelf {
    products: BTreeMap<Sku, Product>,
    changed: BTreeSet<Sku>,
    /// The products as loaded: what a decision took or gave back is the
    /// difference.
    loaded: BTreeMap<Sku, Product>,
    /// The calendars of dated pools, for a decision about a dated order.
    calendars: BTreeMap<Sku, Calendar>,
    calendars_changed: BTreeSet<Sku>,
}

/// An order's booking of dated units: for whom, and when.
#[derive(Debug, Clone, Copy)]
pub struct Dates<'a> {
    pub order: &'a OrderId,
    pub stay: &'a Stay,
}

impl Shelf {
    pub fn new(products: impl IntoIterator<Item = Product>) -> Shelf {
        let products: BTreeMap<Sku, Product> = products.into_iter().map(|p| (p.sku.clone(), p)).collect();
        Shelf { loaded: products.clone(), products, ..Shelf::default() }
    }

    /// The shelf with the calendars of its dated pools (by sku; a pool with
    /// no bookings yet has an empty one).
    pub fn with_calendars(mut self, calendars: impl IntoIterator<Item = (Sku, Calendar)>) -> Shelf {
        self.calendars = calendars.into_iter().collect();
        self
    }

    /// The calendars this decision changed: what must be written back.
    pub fn changed_calendars(&self) -> impl Iterator<Item = (&Sku, &Calendar)> {
        self.calendars_changed.iter().filter_map(|sku| Some((sku, self.calendars.get(sku)?)))
    }

    pub fn get(&self, sku: &Sku) -> Option<&Product> {
        self.products.get(sku)
    }

    /// The products this decision changed: what must be written back.
    pub fn changed(&self) -> impl Iterator<Item = &Product> {
        self.changed.iter().filter_map(|sku| self.products.get(sku))
    }

    /// The named units this decision took from their pools (now held by an
    /// order), and those it gave back.
    pub fn moved_units(&self) -> MovedUnits {
        let mut moved = MovedUnits::default();
        for p in self.changed() {
            let before = self.loaded.get(&p.sku).map(|l| l.units.as_slice()).unwrap_or(&[]);
            let unit = |u: &String| (p.sku.clone(), u.clone());
            moved.taken.extend(before.iter().filter(|u| !p.units.contains(u)).map(unit));
            moved.returned.extend(p.units.iter().filter(|u| !before.contains(u)).map(unit));
        }
        moved
    }

    /// Books every line's units for `dates`, or nothing if any line is
    /// short of units free for the whole range. Returns the units booked.
    fn book(&mut self, lines: &[(Sku, u32)], dates: Dates<'_>) -> Result<Vec<String>, Short> {
        let mut trial = self.calendars.clone();
        let mut units = Vec::new();
        for (sku, qty) in lines {
            let pool = self.products.get(sku).map(|p| p.units.as_slice()).unwrap_or(&[]);
            let calendar = trial.entry(sku.clone()).or_default();
            match calendar.book(pool, *qty, dates.stay, dates.order) {
                Ok(booked) => units.extend(booked),
                Err(available) => return Err(Short { sku: sku.clone(), requested: *qty, available }),
            }
        }
        self.calendars = trial;
        self.calendars_changed.extend(lines.iter().map(|(sku, _)| sku.clone()));
        Ok(units)
    }

    /// Removes `order`'s bookings from the calendars of `lines`.
    fn unbook(&mut self, lines: &[(Sku, u32)], order: &OrderId) {
        for (sku, _) in lines {
            if self.calendars.get_mut(sku).is_some_and(|c| c.cancel(order)) {
                self.calendars_changed.insert(sku.clone());
            }
        }
    }

    /// Takes every line's stock (and its first free units), or nothing if
    /// any line is short. Returns the units taken.
    pub fn take(&mut self, lines: &[(Sku, u32)]) -> Result<Vec<String>, Short> {
        let mut trial = self.products.clone();
        let mut units = Vec::new();
        for (sku, qty) in lines {
            match trial.get_mut(sku) {
                Some(p) if p.stock >= u64::from(*qty) => {
                    p.stock -= u64::from(*qty);
                    let named = (*qty as usize).min(p.units.len());
                    units.extend(p.units.drain(..named));
                }
                other => {
                    let available = other.map(|p| p.stock).unwrap_or(0);
                    return Err(Short { sku: sku.clone(), requested: *qty, available });
                }
            }
        }
        self.products = trial;
        self.changed.extend(lines.iter().map(|(sku, _)| sku.clone()));
        Ok(units)
    }

    /// Gives `lines` and their `units` back to the products still on the
    /// shelf (a product removed since is skipped).
    pub fn give_back(&mut self, lines: &[(Sku, u32)], units: &[String]) {
        let mut units = units.iter();
        for (sku, qty) in lines {
            if let Some(p) = self.products.get_mut(sku) {
                p.stock += u64::from(*qty);
                p.units.extend(units.by_ref().take(*qty as usize).cloned());
                self.changed.insert(sku.clone());
            }
        }
    }
}

/// What a restock adds: a quantity of a plain-stock product, or named units
/// of a pool. Never both: they would disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restock {
    Qty(u64),
    Units(Vec<String>),
}

/// Adds stock to a product. A quantity fits a product without named units,
/// units fit a pool of them; a unit already free cannot be added again; a
/// total that does not fit is refused, never capped.
pub fn restock(product: &mut Product, restock: &Restock) -> Result<(), Refusal> {
    let invalid = |field, why: String| Err(Refusal::Invalid { field, why });
    let pool = product.is_pool();
    let qty = match restock {
        Restock::Qty(_) if pool => {
            return invalid("qty", format!("{} is a pool of named units: restock it with units", product.sku))
        }
        Restock::Units(_) if !pool && product.stock > 0 => {
            return invalid("units", format!("{} is counted, not named: restock it with qty", product.sku))
        }
        Restock::Qty(qty) => *qty,
        Restock::Units(units) => {
            if let Some(u) = units.iter().find(|u| product.units.contains(u)) {
                return Err(Refusal::UnitInUse(format!(
                    "unit {u} of {} is already in the pool",
                    product.sku
                )));
            }
            if let Some(u) = units.iter().find(|u| product.out_of_service.contains(u)) {
                let why = format!("unit {u} of {} is out of service: put it back in service", product.sku);
                return Err(Refusal::UnitInUse(why));
            }
            units.len() as u64
        }
    };
    let Some(stock) = product.stock.checked_add(qty) else {
        return invalid("qty", format!("{} would hold more than {}", product.sku, u64::MAX));
    };
    product.stock = stock;
    if let Restock::Units(units) = restock {
        product.units.extend(units.iter().cloned());
        product.pool = true;
    }
    Ok(())
}

/// Takes a free unit out of its pool until it is put back (a driver off
/// duty, a room under repair). Taking out a unit that is out already
/// changes nothing. A unit that an order holds is refused by the caller,
/// which knows the order.
pub fn take_out_of_service(product: &mut Product, unit: &str) -> Result<(), Refusal> {
    if product.out_of_service.iter().any(|u| u == unit) {
        return Ok(());
    }
    let Some(at) = product.units.iter().position(|u| u == unit) else {
        return Err(Refusal::Unknown { what: "unit", id: format!("{unit} of {}", product.sku) });
    };
    product.units.remove(at);
    product.stock = product.stock.saturating_sub(1);
    product.out_of_service.push(unit.to_owned());
    Ok(())
}

/// Puts a unit taken out of service back in its pool; a unit in the pool
/// already changes nothing.
pub fn put_back_in_service(product: &mut Product, unit: &str) -> Result<(), Refusal> {
    if product.units.iter().any(|u| u == unit) {
        return Ok(());
    }
    let Some(at) = product.out_of_service.iter().position(|u| u == unit) else {
        return Err(Refusal::Unknown {
            what: "unit out of service",
            id: format!("{unit} of {}", product.sku),
        });
    };
    product.out_of_service.remove(at);
    product.stock += 1;
    product.units.push(unit.to_owned());
    Ok(())
}

/// A new product for the catalog, unless its sku is taken.
pub fn add_product(existing: Option<&Product>, new: Product) -> Result<Product, Refusal> {
    match existing {
        Some(_) => Err(Refusal::ProductExists(format!("product {} already exists", new.sku))),
        None => Ok(new),
    }
}

impl Reservation {
    /// Reserves `lines` at once, while the order is being placed: for its
    /// dates, when it has them (a hotel stay).
    pub fn reserve_now(
        lines: &[(Sku, u32)],
        dates: Option<Dates<'_>>,
        shelf: &mut Shelf,
    ) -> Result<(Reservation, EventKind), Short> {
        let units = match dates {
            Some(dates) => shelf.book(lines, dates)?,
            None => shelf.take(lines)?,
        };
        let reservation = Reservation {
            lines: lines.to_vec(),
            units: units.clone(),
            state: ReservationState::Reserved,
            stay: dates.map(|d| *d.stay),
        };
        Ok((reservation, EventKind::StockReserved { lines: lines.to_vec(), units }))
    }

    /// The reservation of an order placed with `items`, to be taken once
    /// it is paid.
    fn requested(items: &[crate::domain::OrderLine]) -> Reservation {
        let lines = items.iter().map(|l| (l.sku.clone(), l.qty)).collect();
        Reservation { lines, units: vec![], state: ReservationState::Requested, stay: None }
    }

    /// The reservation as the order's events in the log make it; `None`
    /// if the order reserves nothing. The stored reservation of a placed
    /// order must always equal this (the crash tests check it). Stock
    /// taken while the order was being placed comes before its placing,
    /// which brings the dates; a booking released before its order was
    /// ever placed replays without them (they are in no event, and hold
    /// nothing any more).
    pub fn replay<'a>(events: impl IntoIterator<Item = &'a EventKind>) -> Option<Reservation> {
        let mut replayed: Option<Reservation> = None;
        for event in events {
            match (&mut replayed, event) {
                (None, EventKind::StockReserved { lines, units }) => {
                    let state = ReservationState::Reserved;
                    replayed =
                        Some(Reservation { lines: lines.clone(), units: units.clone(), state, stay: None });
                }
                (Some(r), EventKind::OrderPlaced { reservation: ReservationMode::AtPlacement, stay, .. }) => {
                    r.stay = *stay
                }
                (None, EventKind::OrderPlaced { items, reservation: ReservationMode::AfterPayment, .. })
                    if !items.is_empty() =>
                {
                    replayed = Some(Reservation::requested(items))
                }
                (Some(r), event) => r.apply(event),
                (None, _) => {}
            }
        }
        replayed
    }

    /// Whether its units are booked by date: its decisions need the
    /// calendars of its products.
    pub fn is_dated(&self) -> bool {
        self.stay.is_some()
    }

    /// The products a fact about this reservation may touch.
    pub fn skus(&self) -> impl Iterator<Item = &Sku> {
        self.lines.iter().map(|(sku, _)| sku)
    }

    /// Whether `fact` can take or give back stock: only then does the fold
    /// need the products on its shelf (loading them costs reads).
    pub fn needs_shelf(&self, fact: &EventKind) -> bool {
        match fact {
            EventKind::OrderPaid { .. } => self.state == ReservationState::Requested,
            EventKind::OrderDelivered => self.holds_units(),
            kind => kind.ends_order().is_some() && self.state == ReservationState::Reserved,
        }
    }

    /// Whether it holds named units that come back when the work is done.
    fn holds_units(&self) -> bool {
        self.state == ReservationState::Reserved && !self.units.is_empty()
    }

    /// Gives reserved stock and units back (or, for a dated one, its
    /// bookings); a reservation that took nothing yet just drops. Goods that
    /// shipped are not given back. `None`: there is nothing to release.
    pub fn release(&self, order: &OrderId, shelf: &mut Shelf) -> Option<(Reservation, Vec<EventKind>)> {
        let mut r = self.clone();
        match r.state {
            ReservationState::Reserved => {
                match r.stay {
                    Some(_) => shelf.unbook(&r.lines, order),
                    None => shelf.give_back(&r.lines, &r.units),
                }
                let released = EventKind::StockReleased { lines: r.lines.clone() };
                r.apply(&released);
                Some((r, vec![released]))
            }
            // What ends the order drops it (see `apply`).
            ReservationState::Requested => {
                r.state = ReservationState::Dropped;
                Some((r, vec![]))
            }
            _ => None,
        }
    }

    /// Folds another service's fact about the order into its reservation:
    /// the new reservation and the events that follow, or `None` when the
    /// fact changes nothing here. `shelf` holds the products of
    /// [`Reservation::skus`] when [`Reservation::needs_shelf`] says so.
    pub fn on_fact(
        reservation: Option<&Reservation>,
        order: &OrderId,
        fact: &EventKind,
        shelf: &mut Shelf,
    ) -> Option<(Reservation, Vec<EventKind>)> {
        match (fact, reservation) {
            (EventKind::OrderPlaced { items, reservation: ReservationMode::AfterPayment, .. }, None)
                if !items.is_empty() =>
            {
                Some((Reservation::requested(items), vec![]))
            }
            (EventKind::OrderPaid { .. }, Some(r)) if r.state == ReservationState::Requested => {
                let fact = match shelf.take(&r.lines) {
                    Ok(units) => EventKind::StockReserved { lines: r.lines.clone(), units },
                    Err(s) => {
                        EventKind::StockShort { sku: s.sku, requested: s.requested, available: s.available }
                    }
                };
                let mut r = r.clone();
                r.apply(&fact);
                Some((r, vec![fact]))
            }
            (kind, Some(r)) if kind.ends_order().is_some() => r.release(order, shelf),
            // The work is done (the ride is over, the guest checked out):
            // the units are free again.
            (EventKind::OrderDelivered, Some(r)) if r.holds_units() => r.release(order, shelf),
            (EventKind::OrderInDelivery { .. }, Some(r))
                if r.state == ReservationState::Reserved && r.units.is_empty() =>
            {
                let mut r = r.clone();
                r.apply(fact);
                Some((r, vec![]))
            }
            _ => None,
        }
    }
}

impl Fold for Reservation {
    fn apply(&mut self, event: &EventKind) {
        match event {
            EventKind::StockReserved { units, .. } => {
                (self.state, self.units) = (ReservationState::Reserved, units.clone());
            }
            EventKind::StockShort { .. } => self.state = ReservationState::Short,
            EventKind::StockReleased { .. } => self.state = ReservationState::Released,
            // An order that ends before it is paid took nothing to give back.
            kind if kind.ends_order().is_some() && self.state == ReservationState::Requested => {
                self.state = ReservationState::Dropped;
            }
            // Named units stay held while they work; counted goods are gone.
            EventKind::OrderInDelivery { .. }
                if self.state == ReservationState::Reserved && self.units.is_empty() =>
            {
                self.state = ReservationState::Shipped;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
