//! The inventory service: products, their stock, and each order's
//! reservation. The rules are the pure fold in [`crate::domain::inventory`];
//! this actor loads the reservation and the products it names, runs the
//! fold, and writes back what it changed. Its state is written behind
//! ([`super::write_behind`]): a fact's change is folded in memory and
//! committed with others, its reactions appended at once and, after a
//! crash, not twice ([`super::recorded`]). Commands (products, restocks,
//! reservations at placement) are written at once, and every read (stock,
//! prices) sees what is held back, so nothing is ever oversold.

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::recorded::Recorded;
use super::supervision::guarded;
use super::write_behind::WriteBehind;
use super::{durably, ServiceEnv};
use crate::domain::calendar::Calendar;
use crate::domain::inventory::{self, Dates, Shelf};
use crate::domain::product::{restock_qty, validate_units};
use crate::domain::stay::Stay;
use crate::domain::{Event, EventKind, Money, NewProduct, OrderId, Product, ReservationMode, Sku};
use crate::error::{NodeError, Refused};
use crate::store::{abort, key_prefix, Store, StoreError, Table, Tx, TxResult};
use actix::prelude::*;

mod from_store;

pub use from_store::{availability_in, product_in};

// ---- messages ----

/// Adds a product to the catalog; 409 if the sku exists.
#[derive(Message)]
#[rtype(result = "Result<Product, NodeError>")]
pub struct AddProduct(pub NewProduct);

#[derive(Message)]
#[rtype(result = "Result<Product, NodeError>")]
pub struct GetProduct(pub Sku);

/// Adds `qty` units to a product's stock, or named `units`.
#[derive(Message)]
#[rtype(result = "Result<Product, NodeError>")]
pub struct Restock {
    pub sku: Sku,
    pub qty: Option<i64>,
    pub units: Vec<String>,
}

/// The current unit price of each sku, in order; fails on an unknown sku.
#[derive(Message)]
#[rtype(result = "Result<Vec<Money>, NodeError>")]
pub struct Quote(pub Vec<Sku>);

/// Reserves every line for an order now, all or nothing, and names the
/// units taken (the assigned driver); `NothingAvailable` when short.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, NodeError>")]
pub struct ReserveNow {
    pub order_id: OrderId,
    pub lines: Vec<(Sku, u32)>,
    /// The dates to book the units for (a hotel stay), if the order has them.
    pub stay: Option<Stay>,
}

/// The units of a pool free for a whole range of dates.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, NodeError>")]
pub struct Availability {
    pub sku: Sku,
    pub stay: Stay,
}

/// Takes a named unit out of service, or puts it back.
#[derive(Message)]
#[rtype(result = "Result<Product, NodeError>")]
pub struct SetInService {
    pub sku: Sku,
    pub unit: String,
    pub in_service: bool,
}

/// Gives back what [`ReserveNow`] took, for an order that was not placed.
#[derive(Message)]
#[rtype(result = "Result<(), NodeError>")]
pub struct ReleaseNow(pub OrderId);

/// An order's reservation, as the inventory service keeps it.
#[derive(Message)]
#[rtype(result = "Result<Option<Reservation>, NodeError>")]
pub struct GetReservation(pub OrderId);

// ---- state ----

pub use crate::domain::inventory::{Reservation, ReservationState};

pub struct InventoryActor {
    cursor: Cursor,
    /// Products, reservations, calendars and held units, written behind.
    behind: WriteBehind,
}

pub(crate) const PRODUCTS: Table<Product> = Table::new("products");
pub(crate) const RESERVATIONS: Table<Reservation> = Table::new("reservations");
/// `order` → (): a reservation made while its order was being placed, until
/// the order's placing is seen in the log. One left at start belongs to an
/// order that was never placed (the node died in between): it is released
/// ([`release_orphans`]).
const AT_PLACEMENT: Table<()> = Table::new("reservations_at_placement");
/// `sku` → the bookings of a dated pool (hotel rooms by date).
const CALENDARS: Table<Calendar> = Table::new("calendars");
/// `sku \0 unit` → the order holding it: a named unit out of its pool. A
/// unit that is held cannot be added to the pool again.
const HELD: Table<OrderId> = Table::new("units_held");

fn held_key(sku: &Sku, unit: &str) -> Vec<u8> {
    let mut key = key_prefix(sku.as_str());
    key.extend_from_slice(unit.as_bytes());
    key
}
pub const NAME: &str = crate::service::Service::Inventory.name();

impl InventoryActor {
    pub fn new(env: &ServiceEnv) -> Result<Self, NodeError> {
        Ok(InventoryActor {
            cursor: Cursor::load(env, NAME)?,
            behind: WriteBehind::new(env, NAME).reacting(is_inventory_event),
        })
    }

    /// Holds the state back for `every` instead (tests that look before
    /// the commit).
    pub fn committing_every(self, every: std::time::Duration) -> Self {
        InventoryActor { behind: self.behind.every(every), ..self }
    }

    fn write_product(
        &mut self,
        f: impl Fn(&mut Tx<'_>) -> TxResult<Product, NodeError>,
    ) -> Result<Product, NodeError> {
        let (product, _) = self.behind.write_now(f)?;
        Ok(product)
    }

    fn product(&self, sku: &Sku) -> Result<Product, NodeError> {
        self.behind.get(PRODUCTS, sku.as_str())?.ok_or_else(|| NodeError::not_found("product", sku))
    }

    fn restock(&mut self, msg: &Restock) -> Result<Product, NodeError> {
        let units = validate_units(&msg.units)?;
        let restock = match (msg.qty, units.is_empty()) {
            (Some(_), false) => {
                let why = "give qty (a counted product) or units (a pool of named units), not both";
                return Err(NodeError::Refused(Refused::Invalid(why.into())));
            }
            (Some(q), true) => inventory::Restock::Qty(restock_qty(q)?),
            (None, true) => return Err(NodeError::Refused(Refused::Invalid("give qty, or units".into()))),
            (None, false) => inventory::Restock::Units(units),
        };
        self.write_product(|tx| {
            let Some(mut p) = tx.get::<Product, _>(PRODUCTS, msg.sku.as_str())? else {
                return abort(NodeError::not_found("product", &msg.sku));
            };
            if let inventory::Restock::Units(units) = &restock {
                for unit in units {
                    if let Some(order) = tx.get(HELD, held_key(&msg.sku, unit))? {
                        let why = format!("unit {unit} of {} is held by order {order}", msg.sku);
                        return abort(Refused::UnitInUse(why).into());
                    }
                }
            }
            if let Err(refusal) = inventory::restock(&mut p, &restock) {
                return abort(refusal.into());
            }
            tx.put(PRODUCTS, msg.sku.as_str(), &p)?;
            Ok(p)
        })
    }

    fn reserve_now(&mut self, msg: &ReserveNow) -> Result<Vec<String>, NodeError> {
        let (units, _) = self.behind.write_now(|tx| {
            let mut shelf = shelf(tx, msg.lines.iter().map(|(sku, _)| sku), msg.stay.is_some())?;
            let dates = msg.stay.as_ref().map(|stay| Dates { order: &msg.order_id, stay });
            match Reservation::reserve_now(&msg.lines, dates, &mut shelf) {
                Ok((r, fact)) => {
                    put_shelf(tx, &msg.order_id, &shelf)?;
                    tx.put(RESERVATIONS, msg.order_id.as_str(), &r)?;
                    tx.put(AT_PLACEMENT, msg.order_id.as_str(), &())?;
                    tx.append(&msg.order_id, None, fact)?;
                    Ok(r.units)
                }
                Err(short) => abort(NodeError::Refused(Refused::NothingAvailable {
                    sku: short.sku.to_string(),
                    dated: msg.stay.is_some(),
                })),
            }
        })?;
        Ok(units)
    }

    fn release_now(&mut self, order: &OrderId) -> Result<(), NodeError> {
        self.behind.write_now(|tx| release_unplaced(tx, order))?;
        Ok(())
    }

    fn availability(&self, msg: &Availability) -> Result<Vec<String>, NodeError> {
        let product = self.product(&msg.sku)?;
        let calendar = self.behind.get(CALENDARS, msg.sku.as_str())?.unwrap_or_default();
        Ok(calendar.free(&product.units, &msg.stay).into_iter().cloned().collect())
    }

    fn set_in_service(&mut self, msg: &SetInService) -> Result<Product, NodeError> {
        self.write_product(|tx| {
            let Some(mut p) = tx.get::<Product, _>(PRODUCTS, msg.sku.as_str())? else {
                return abort(NodeError::not_found("product", &msg.sku));
            };
            let changed = match msg.in_service {
                true => inventory::put_back_in_service(&mut p, &msg.unit),
                false => match tx.get(HELD, held_key(&msg.sku, &msg.unit))? {
                    Some(order) => {
                        let why = format!(
                            "unit {} of {} is held by order {order}: take it out once it is back",
                            msg.unit, msg.sku
                        );
                        return abort(Refused::UnitInUse(why).into());
                    }
                    None => inventory::take_out_of_service(&mut p, &msg.unit),
                },
            };
            if let Err(refusal) = changed {
                return abort(refusal.into());
            }
            tx.put(PRODUCTS, msg.sku.as_str(), &p)?;
            Ok(p)
        })
    }
}

crate::log_consumer!(InventoryActor);

impl LogConsumer for InventoryActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        self.behind.apply(&self.cursor, batch, delivery, on_event)
    }

    fn behind(&mut self) -> Option<&mut WriteBehind> {
        Some(&mut self.behind)
    }
}

/// The kinds of event only this service writes.
fn is_inventory_event(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::StockReserved { .. } | EventKind::StockShort { .. } | EventKind::StockReleased { .. }
    )
}

/// Gives back what was reserved for `order` while it was being placed, for
/// an order that was not placed after all.
fn release_unplaced(tx: &mut Tx<'_>, order: &OrderId) -> TxResult<(), NodeError> {
    tx.remove(AT_PLACEMENT, order.as_str())?;
    let Some(r) = tx.get::<Reservation, _>(RESERVATIONS, order.as_str())? else { return Ok(()) };
    let mut shelf = shelf(tx, r.skus(), r.is_dated())?;
    match r.release(order, &mut shelf) {
        Some((r, events)) => record(tx, order, None, &r, &shelf, events),
        None => Ok(()),
    }
}

/// Releases, at start, what was reserved for orders that were being placed
/// when the node stopped and were never placed (`placed` says which were):
/// their units would otherwise be held by nobody, for ever. Run before the
/// services start, so no placement is in flight. Returns how many.
pub fn release_orphans(
    store: &Store,
    placed: impl Fn(&OrderId) -> Result<bool, StoreError>,
) -> Result<usize, NodeError> {
    let mut released = 0;
    let pending: Vec<Vec<u8>> =
        store.entries_from(AT_PLACEMENT, [])?.map(|e| e.map(|(k, _)| k)).collect::<Result<_, _>>()?;
    for key in pending {
        let id = OrderId::parse(&String::from_utf8_lossy(&key))?;
        if placed(&id)? {
            store.write(|tx| tx.remove(AT_PLACEMENT, id.as_str()))?;
            continue;
        }
        store.write(|tx| release_unplaced(tx, &id))?;
        tracing::warn!(order = %id, "released what was reserved for an order the node stopped before placing");
        released += 1;
    }
    Ok(released)
}

/// Folds another service's fact into the order's reservation; what it
/// decides is appended, naming the fact, unless the log holds it already.
fn on_event(tx: &mut Tx<'_>, event: &Event, recorded: &Recorded) -> TxResult<(), NodeError> {
    if let EventKind::OrderPlaced { reservation: ReservationMode::AtPlacement, .. } = &event.kind {
        // Placed: what was reserved for it is its own now.
        tx.remove(AT_PLACEMENT, event.order_id.as_str())?;
    }
    let reservation: Option<Reservation> = tx.get(RESERVATIONS, event.order_id.as_str())?;
    let mut shelf = match &reservation {
        Some(r) if r.needs_shelf(&event.kind) => shelf(tx, r.skus(), r.is_dated())?,
        _ => Shelf::default(),
    };
    match Reservation::on_fact(reservation.as_ref(), &event.order_id, &event.kind, &mut shelf) {
        Some((r, _)) if recorded.holds(event.seq) => {
            record(tx, &event.order_id, None, &r, &shelf, Vec::new())
        }
        Some((r, events)) => record(tx, &event.order_id, Some(event.seq), &r, &shelf, events),
        None => Ok(()),
    }
}

/// The products named by `skus`, as this write sees them, with their
/// calendars when the decision is about dates.
fn shelf<'a>(tx: &Tx<'_>, skus: impl Iterator<Item = &'a Sku>, dated: bool) -> TxResult<Shelf, NodeError> {
    let mut products = Vec::new();
    let mut calendars = Vec::new();
    for sku in skus {
        if let Some(p) = tx.get::<Product, _>(PRODUCTS, sku.as_str())? {
            products.push(p);
        }
        if dated {
            calendars.push((sku.clone(), tx.get(CALENDARS, sku.as_str())?.unwrap_or_default()));
        }
    }
    Ok(Shelf::new(products).with_calendars(calendars))
}

/// Writes back the products a decision changed, and which named units
/// `order` now holds or gave back.
fn put_shelf(tx: &mut Tx<'_>, order: &OrderId, shelf: &Shelf) -> TxResult<(), NodeError> {
    for p in shelf.changed() {
        tx.put(PRODUCTS, p.sku.as_str(), p)?;
    }
    for (sku, calendar) in shelf.changed_calendars() {
        tx.put(CALENDARS, sku.as_str(), calendar)?;
    }
    let moved = shelf.moved_units();
    for (sku, unit) in &moved.taken {
        tx.put(HELD, held_key(sku, unit), order)?;
    }
    for (sku, unit) in &moved.returned {
        tx.remove(HELD, held_key(sku, unit))?;
    }
    Ok(())
}

/// Records what the fold decided: the reservation, the products it changed
/// and its events (caused by `cause`).
fn record(
    tx: &mut Tx<'_>,
    order: &OrderId,
    cause: Option<u64>,
    r: &Reservation,
    shelf: &Shelf,
    events: Vec<EventKind>,
) -> TxResult<(), NodeError> {
    put_shelf(tx, order, shelf)?;
    tx.put(RESERVATIONS, order.as_str(), r)?;
    for kind in events {
        tx.append(order, cause, kind)?;
    }
    Ok(())
}

impl Handler<AddProduct> for InventoryActor {
    type Result = ResponseFuture<Result<Product, NodeError>>;

    fn handle(&mut self, msg: AddProduct, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, None, |act| {
            let product = msg.0.validate()?;
            act.write_product(|tx| {
                let existing = tx.get::<Product, _>(PRODUCTS, product.sku.as_str())?;
                match inventory::add_product(existing.as_ref(), product.clone()) {
                    Ok(p) => {
                        tx.put(PRODUCTS, p.sku.as_str(), &p)?;
                        Ok(p)
                    }
                    Err(refusal) => abort(refusal.into()),
                }
            })
        });
        durably(&self.cursor.store, result)
    }
}

impl Handler<Restock> for InventoryActor {
    type Result = ResponseFuture<Result<Product, NodeError>>;

    fn handle(&mut self, msg: Restock, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, None, |act| act.restock(&msg));
        durably(&self.cursor.store, result)
    }
}

impl Handler<ReserveNow> for InventoryActor {
    type Result = Result<Vec<String>, NodeError>;

    fn handle(&mut self, msg: ReserveNow, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.order_id), |act| act.reserve_now(&msg))
    }
}

impl Handler<ReleaseNow> for InventoryActor {
    type Result = Result<(), NodeError>;

    fn handle(&mut self, msg: ReleaseNow, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| act.release_now(&msg.0))
    }
}

impl Handler<SetInService> for InventoryActor {
    type Result = ResponseFuture<Result<Product, NodeError>>;

    fn handle(&mut self, msg: SetInService, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, None, |act| act.set_in_service(&msg));
        durably(&self.cursor.store, result)
    }
}

impl Handler<Availability> for InventoryActor {
    type Result = Result<Vec<String>, NodeError>;

    fn handle(&mut self, msg: Availability, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.availability(&msg))
    }
}

impl Handler<GetProduct> for InventoryActor {
    type Result = Result<Product, NodeError>;

    fn handle(&mut self, msg: GetProduct, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| act.product(&msg.0))
    }
}

impl Handler<Quote> for InventoryActor {
    type Result = Result<Vec<Money>, NodeError>;

    fn handle(&mut self, msg: Quote, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, None, |act| {
            msg.0
                .iter()
                .map(|sku| match act.behind.get(PRODUCTS, sku.as_str())? {
                    Some(p) => Ok(p.price),
                    None => Err(NodeError::Refused(Refused::UnknownSku(sku.to_string()))),
                })
                .collect()
        })
    }
}

impl Handler<GetReservation> for InventoryActor {
    type Result = Result<Option<Reservation>, NodeError>;

    fn handle(&mut self, msg: GetReservation, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| act.behind.get(RESERVATIONS, msg.0.as_str()))
    }
}

#[cfg(test)]
mod tests;
