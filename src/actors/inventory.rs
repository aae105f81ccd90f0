//! The inventory service: products, their stock, and each order's
//! reservation. Stock is taken all-or-nothing when an order is paid, given
//! back when a reserved order is canceled, and never goes negative.

use super::consumer::{Cursor, Delivery, LogConsumer};
use super::supervision::guarded;
use super::{durably, NodeError, ServiceEnv};
use crate::domain::product::{restock_qty, validate_units};
use crate::domain::{Event, EventKind, Money, NewProduct, OrderId, Product, ReservationMode, Sku};
use crate::store::{abort, read, Tx, TxResult};
use actix::prelude::*;
use serde::{Deserialize, Serialize};
use sled::Tree;

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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub lines: Vec<(Sku, u32)>,
    /// Named units taken, if the products have them.
    pub units: Vec<String>,
    pub state: ReservationState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

pub struct InventoryActor {
    cursor: Cursor,
    products: Tree,
    reservations: Tree,
}

const PRODUCTS: usize = 0;
const RESERVATIONS: usize = 1;
pub const NAME: &str = crate::service::Service::Inventory.name();

impl InventoryActor {
    pub fn new(env: &ServiceEnv) -> Result<Self, NodeError> {
        Ok(InventoryActor {
            products: env.store.tree("products")?,
            reservations: env.store.tree("reservations")?,
            cursor: Cursor::load(env, NAME)?,
        })
    }

    fn write_product(
        &self,
        f: impl Fn(&mut Tx<'_>) -> TxResult<Product, NodeError>,
    ) -> Result<Product, NodeError> {
        let (product, _) = self.cursor.store.write(&[&self.products], |tx| f(tx))?;
        Ok(product)
    }

    fn product(&self, sku: &Sku) -> Result<Product, NodeError> {
        read(&self.products, sku.as_str())?.ok_or_else(|| NodeError::not_found("product", sku))
    }

    fn restock(&self, msg: &Restock) -> Result<Product, NodeError> {
        let units = validate_units(&msg.units)?;
        let qty = match (msg.qty, units.len()) {
            (Some(q), _) => restock_qty(q)?,
            (None, 0) => return Err(NodeError::Invalid("give qty, or units".into())),
            (None, n) => n as u64,
        };
        self.write_product(|tx| {
            let Some(mut p) = tx.get::<Product, _>(PRODUCTS, msg.sku.as_str())? else {
                return abort(NodeError::not_found("product", &msg.sku));
            };
            if units.iter().any(|u| p.units.contains(u)) {
                return abort(NodeError::Conflict(format!("a unit of {} is already free", msg.sku)));
            }
            p.stock = p.stock.saturating_add(qty);
            p.units.extend(units.iter().cloned());
            tx.put(PRODUCTS, msg.sku.as_str(), &p)?;
            Ok(p)
        })
    }

    fn reserve_now(&self, msg: &ReserveNow) -> Result<Vec<String>, NodeError> {
        let (units, _) =
            self.cursor.store.write(&[&self.products, &self.reservations], |tx| {
                match take(tx, &msg.lines)? {
                    Ok(units) => {
                        let r = Reservation {
                            lines: msg.lines.clone(),
                            units: units.clone(),
                            state: ReservationState::Reserved,
                        };
                        tx.put(RESERVATIONS, msg.order_id.as_str(), &r)?;
                        let fact =
                            EventKind::StockReserved { lines: msg.lines.clone(), units: units.clone() };
                        tx.append(&msg.order_id, None, fact)?;
                        Ok(units)
                    }
                    Err(short) => abort(NodeError::NothingAvailable { sku: short.sku.to_string() }),
                }
            })?;
        Ok(units)
    }

    fn release_now(&self, order: &OrderId) -> Result<(), NodeError> {
        self.cursor.store.write(&[&self.products, &self.reservations], |tx| {
            match tx.get::<Reservation, _>(RESERVATIONS, order.as_str())? {
                Some(r) => release(tx, order, None, r),
                None => Ok(()),
            }
        })?;
        Ok(())
    }
}

crate::log_consumer!(InventoryActor);

impl LogConsumer for InventoryActor {
    fn cursor(&mut self) -> &mut Cursor {
        &mut self.cursor
    }

    fn apply_batch(&mut self, batch: &[Event], delivery: Delivery) -> Result<(), NodeError> {
        self.cursor.apply(&[&self.products, &self.reservations], batch, delivery, on_event)?;
        Ok(())
    }
}

fn on_event(tx: &mut Tx<'_>, event: &Event) -> TxResult<(), NodeError> {
    let key = event.order_id.as_str();
    let reservation: Option<Reservation> = tx.get(RESERVATIONS, key)?;
    match (&event.kind, reservation) {
        (EventKind::OrderPlaced { items, reservation: ReservationMode::AfterPayment, .. }, None)
            if !items.is_empty() =>
        {
            let lines = items.iter().map(|l| (l.sku.clone(), l.qty)).collect();
            tx.put(
                RESERVATIONS,
                key,
                &Reservation { lines, units: vec![], state: ReservationState::Requested },
            )
        }
        (EventKind::OrderPaid { .. }, Some(r)) if r.state == ReservationState::Requested => {
            reserve(tx, event, r)
        }
        (kind, Some(r)) if kind.ends_order().is_some() => release(tx, &event.order_id, Some(event.seq), r),
        (EventKind::OrderInDelivery { .. }, Some(mut r)) if r.state == ReservationState::Reserved => {
            r.state = ReservationState::Shipped;
            tx.put(RESERVATIONS, key, &r)
        }
        _ => Ok(()),
    }
}

/// A line that could not be reserved.
struct Short {
    sku: Sku,
    requested: u32,
    available: u64,
}

/// Takes every line's stock (and its first free units), or nothing if any
/// line is short. Returns the units taken.
fn take(tx: &mut Tx<'_>, lines: &[(Sku, u32)]) -> TxResult<Result<Vec<String>, Short>, NodeError> {
    let mut taken = Vec::with_capacity(lines.len());
    let mut units = Vec::new();
    for (sku, qty) in lines {
        let product: Option<Product> = tx.get(PRODUCTS, sku.as_str())?;
        match product {
            Some(mut p) if p.stock >= u64::from(*qty) => {
                p.stock -= u64::from(*qty);
                let named = (*qty as usize).min(p.units.len());
                units.extend(p.units.drain(..named));
                taken.push(p);
            }
            other => {
                let available = other.map(|p| p.stock).unwrap_or(0);
                return Ok(Err(Short { sku: sku.clone(), requested: *qty, available }));
            }
        }
    }
    for p in &taken {
        tx.put(PRODUCTS, p.sku.as_str(), p)?;
    }
    Ok(Ok(units))
}

/// Reserves a paid order's lines, or records that stock is short.
fn reserve(tx: &mut Tx<'_>, event: &Event, mut r: Reservation) -> TxResult<(), NodeError> {
    let fact = match take(tx, &r.lines)? {
        Ok(units) => {
            (r.state, r.units) = (ReservationState::Reserved, units.clone());
            EventKind::StockReserved { lines: r.lines.clone(), units }
        }
        Err(short) => {
            r.state = ReservationState::Short;
            EventKind::StockShort { sku: short.sku, requested: short.requested, available: short.available }
        }
    };
    tx.put(RESERVATIONS, event.order_id.as_str(), &r)?;
    tx.append(&event.order_id, Some(event.seq), fact)?;
    Ok(())
}

/// Gives reserved stock and units back; an order that ended before
/// reserving just drops. Goods that shipped are not given back.
fn release(
    tx: &mut Tx<'_>,
    order: &OrderId,
    cause: Option<u64>,
    mut r: Reservation,
) -> TxResult<(), NodeError> {
    match r.state {
        ReservationState::Reserved => {
            let mut units = r.units.iter();
            for (sku, qty) in &r.lines {
                if let Some(mut p) = tx.get::<Product, _>(PRODUCTS, sku.as_str())? {
                    p.stock += u64::from(*qty);
                    p.units.extend(units.by_ref().take(*qty as usize).cloned());
                    tx.put(PRODUCTS, sku.as_str(), &p)?;
                }
            }
            r.state = ReservationState::Released;
            tx.put(RESERVATIONS, order.as_str(), &r)?;
            tx.append(order, cause, EventKind::StockReleased { lines: r.lines })?;
            Ok(())
        }
        ReservationState::Requested => {
            r.state = ReservationState::Dropped;
            tx.put(RESERVATIONS, order.as_str(), &r)
        }
        _ => Ok(()),
    }
}
impl Handler<AddProduct> for InventoryActor {
    type Result = ResponseFuture<Result<Product, NodeError>>;

    fn handle(&mut self, msg: AddProduct, ctx: &mut Context<Self>) -> Self::Result {
        let result = guarded(self, ctx, None, |act| {
            let product = msg.0.validate()?;
            act.write_product(|tx| {
                if tx.get::<Product, _>(PRODUCTS, product.sku.as_str())?.is_some() {
                    return abort(NodeError::Conflict(format!("product {} already exists", product.sku)));
                }
                tx.put(PRODUCTS, product.sku.as_str(), &product)?;
                Ok(product.clone())
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
                .map(|sku| match read::<Product>(&act.products, sku.as_str())? {
                    Some(p) => Ok(p.price),
                    None => Err(NodeError::UnknownSku(sku.to_string())),
                })
                .collect()
        })
    }
}

impl Handler<GetReservation> for InventoryActor {
    type Result = Result<Option<Reservation>, NodeError>;

    fn handle(&mut self, msg: GetReservation, ctx: &mut Context<Self>) -> Self::Result {
        guarded(self, ctx, Some(&msg.0), |act| Ok(read(&act.reservations, msg.0.as_str())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{order, paid, placed, sku, temp_store, TestStore};
    use crate::domain::{CancelReason, PaymentMethod};

    async fn inventory_with(t: &TestStore, products: &[(&str, i64)]) -> Addr<InventoryActor> {
        let addr = InventoryActor::new(&t.env()).unwrap().start();
        for (s, stock) in products {
            let p = NewProduct {
                sku: s.to_string(),
                name: s.to_string(),
                price: 100,
                stock: Some(*stock),
                units: vec![],
            };
            addr.send(AddProduct(p)).await.unwrap().unwrap();
        }
        addr
    }

    async fn stock(addr: &Addr<InventoryActor>, s: &str) -> u64 {
        addr.send(GetProduct(sku(s))).await.unwrap().unwrap().stock
    }

    #[actix::test]
    async fn a_paid_order_takes_every_line_and_records_the_reservation() {
        let t = temp_store();
        let inv = inventory_with(&t, &[("A", 5), ("B", 5)]).await;
        t.append(
            &order(1),
            vec![placed("kim", &[("A", 2, 100), ("B", 1, 100)], PaymentMethod::Card), paid(300)],
        );
        t.caught_up(NAME).await;
        assert_eq!((stock(&inv, "A").await, stock(&inv, "B").await), (3, 4));
        let reservation = inv.send(GetReservation(order(1))).await.unwrap().unwrap().unwrap();
        assert_eq!(reservation.state, ReservationState::Reserved);
        assert!(t.events_of(&order(1)).contains(&EventKind::StockReserved {
            lines: vec![(sku("A"), 2), (sku("B"), 1)],
            units: vec![]
        }));
    }

    #[actix::test]
    async fn one_short_line_takes_nothing_at_all() {
        let t = temp_store();
        let inv = inventory_with(&t, &[("A", 5), ("B", 1)]).await;
        t.append(
            &order(1),
            vec![placed("kim", &[("A", 2, 100), ("B", 3, 100)], PaymentMethod::Card), paid(500)],
        );
        t.caught_up(NAME).await;
        assert_eq!((stock(&inv, "A").await, stock(&inv, "B").await), (5, 1));
        let short = EventKind::StockShort { sku: sku("B"), requested: 3, available: 1 };
        assert!(t.events_of(&order(1)).contains(&short));
    }

    #[actix::test]
    async fn a_cancel_gives_reserved_stock_back_exactly_once() {
        let t = temp_store();
        let inv = inventory_with(&t, &[("A", 5)]).await;
        let cancel = EventKind::OrderCanceled { reason: CancelReason::CustomerRequest };
        t.append(
            &order(1),
            vec![placed("kim", &[("A", 2, 100)], PaymentMethod::Card), paid(200), cancel.clone(), cancel],
        );
        t.caught_up(NAME).await;
        assert_eq!(stock(&inv, "A").await, 5);
        let released =
            t.events_of(&order(1)).iter().filter(|e| matches!(e, EventKind::StockReleased { .. })).count();
        assert_eq!(released, 1);
    }

    #[actix::test]
    async fn a_restarted_instance_resumes_from_its_offset_and_applies_nothing_twice() {
        let t = temp_store();
        let first = inventory_with(&t, &[("A", 5)]).await;
        t.append(&order(1), vec![placed("kim", &[("A", 2, 100)], PaymentMethod::Card), paid(200)]);
        t.caught_up(NAME).await;
        let events = t.store.head();
        let second = InventoryActor::new(&t.env()).unwrap().start();
        t.append(&order(2), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::Card), paid(100)]);
        t.caught_up(NAME).await;
        // Both instances consume, yet each event is applied once: stock 5-2-1.
        assert_eq!(stock(&second, "A").await, 2);
        assert_eq!(stock(&first, "A").await, 2);
        assert_eq!(t.store.head(), events + 3, "two new events and one reservation");
    }

    #[actix::test]
    async fn quoting_an_unknown_sku_names_it() {
        let t = temp_store();
        let inv = inventory_with(&t, &[("A", 5)]).await;
        let prices = inv.send(Quote(vec![sku("A")])).await.unwrap().unwrap();
        assert_eq!(prices, vec![Money::new(100).unwrap()]);
        let err = inv.send(Quote(vec![sku("A"), sku("Z")])).await.unwrap().unwrap_err();
        assert!(matches!(err, NodeError::UnknownSku(s) if s == "Z"));
    }
}
