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
    t.append(&order(1), vec![placed("kim", &[("A", 2, 100), ("B", 1, 100)], PaymentMethod::Card), paid(300)]);
    t.caught_up(NAME).await;
    assert_eq!((stock(&inv, "A").await, stock(&inv, "B").await), (3, 4));
    let reservation = inv.send(GetReservation(order(1))).await.unwrap().unwrap().unwrap();
    assert_eq!(reservation.state, ReservationState::Reserved);
    assert!(t
        .events_of(&order(1))
        .contains(&EventKind::StockReserved { lines: vec![(sku("A"), 2), (sku("B"), 1)], units: vec![] }));
}

#[actix::test]
async fn one_short_line_takes_nothing_at_all() {
    let t = temp_store();
    let inv = inventory_with(&t, &[("A", 5), ("B", 1)]).await;
    t.append(&order(1), vec![placed("kim", &[("A", 2, 100), ("B", 3, 100)], PaymentMethod::Card), paid(500)]);
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

/// The stock and reservations are written behind; an instance started
/// again before they were committed (as after a crash) folds the same
/// facts again from the committed offset, and appends nothing twice.
#[actix::test]
async fn an_instance_started_again_after_a_crash_applies_nothing_twice() {
    let t = temp_store();
    let an_hour = std::time::Duration::from_secs(3600);
    let first = InventoryActor::new(&t.env()).unwrap().committing_every(an_hour).start();
    let a = NewProduct { sku: "A".into(), name: "A".into(), price: 100, stock: Some(5), units: vec![] };
    first.send(AddProduct(a)).await.unwrap().unwrap();
    t.append(&order(1), vec![placed("kim", &[("A", 2, 100)], PaymentMethod::Card), paid(200)]);
    t.caught_up(NAME).await;
    assert_eq!(stock(&first, "A").await, 3, "read at once");
    assert_eq!(t.store.get(PRODUCTS, "A").unwrap().map(|p| p.stock), Some(5), "held back");
    // The first instance is gone as far as the log goes.
    first.send(crate::actors::consumer::Pause).await.unwrap();
    let second = InventoryActor::new(&t.env()).unwrap().committing_every(an_hour).start();
    t.append(&order(2), vec![placed("lee", &[("A", 1, 100)], PaymentMethod::Card), paid(100)]);
    t.caught_up(NAME).await;
    assert_eq!(stock(&second, "A").await, 2, "5 - 2 - 1: each fact applied once");
    for n in [1, 2] {
        let reserved = t.events_of(&order(n)).iter().filter(|e| e.name() == "stock_reserved").count();
        assert_eq!(reserved, 1, "order {n}: one reservation");
    }
    second.send(crate::actors::consumer::CommitHeldBack).await.unwrap().unwrap();
    assert_eq!(t.store.get(PRODUCTS, "A").unwrap().map(|p| p.stock), Some(2));
}

/// What a failover follower answers from its copy of the store
/// ([`product_in`], [`availability_in`]: the stored state with the
/// events after the offset folded on) is what the service answers:
/// while facts are held back, after a restock written with them, and
/// after a commit; a room booked for dates is free again once the
/// booking is canceled.
#[actix::test]
async fn products_and_their_availability_read_from_the_store_alone_are_the_services() {
    let t = temp_store();
    let an_hour = std::time::Duration::from_secs(3600);
    let inv = InventoryActor::new(&t.env()).unwrap().committing_every(an_hour).start();
    let a = NewProduct { sku: "A".into(), name: "A".into(), price: 100, stock: Some(5), units: vec![] };
    let rooms = vec!["r1".to_owned(), "r2".to_owned()];
    let hotel = NewProduct { sku: "ROOM".into(), name: "Room".into(), price: 100, stock: None, units: rooms };
    for p in [a, hotel] {
        inv.send(AddProduct(p)).await.unwrap().unwrap();
    }
    let stay = Stay::parse("2026-12-24", "2026-12-26").unwrap();
    let read = |s: &str| product_in(&t.store.reader(), &sku(s)).unwrap().expect("readable");
    let free = || availability_in(&t.store.reader(), &sku("ROOM"), &stay).unwrap().expect("readable");
    let services_free = || inv.send(Availability { sku: sku("ROOM"), stay });
    let same = || async {
        assert_eq!(read("A"), inv.send(GetProduct(sku("A"))).await.unwrap().unwrap());
        assert_eq!(read("ROOM"), inv.send(GetProduct(sku("ROOM"))).await.unwrap().unwrap());
        assert_eq!(free(), services_free().await.unwrap().unwrap());
    };

    // Given orders paid and a room booked for the dates, held back.
    t.append(&order(1), vec![placed("kim", &[("A", 2, 100)], PaymentMethod::Card), paid(200)]);
    let booked = ReserveNow { order_id: order(3), lines: vec![(sku("ROOM"), 1)], stay: Some(stay) };
    inv.send(booked).await.unwrap().unwrap();
    let mut at_placement = placed("lee", &[("ROOM", 1, 100)], PaymentMethod::Card);
    if let EventKind::OrderPlaced { reservation, .. } = &mut at_placement {
        *reservation = ReservationMode::AtPlacement;
    }
    t.append(&order(3), vec![at_placement]);
    t.caught_up(NAME).await;
    assert_eq!(t.store.get(PRODUCTS, "A").unwrap().map(|p| p.stock), Some(5), "held back");
    assert_eq!(read("A").stock, 3, "folded from the log");
    assert_eq!(free().len(), 1, "one room taken for the dates");
    same().await;
    // When a restock is written with what is held back, and the
    // booking is canceled.
    inv.send(Restock { sku: sku("A"), qty: Some(4), units: vec![] }).await.unwrap().unwrap();
    same().await;
    let cancel = EventKind::OrderCanceled { reason: CancelReason::CustomerRequest };
    t.append(&order(3), vec![cancel]);
    t.caught_up(NAME).await;
    assert_eq!(free().len(), 2, "the room is free again");
    same().await;
    // And after a commit.
    inv.send(crate::actors::consumer::CommitHeldBack).await.unwrap().unwrap();
    same().await;
    let unknown = product_in(&t.store.reader(), &sku("Z"));
    assert!(matches!(unknown, Err(NodeError::Refused(Refused::NotFound { .. }))), "{unknown:?}");
}

#[actix::test]
async fn quoting_an_unknown_sku_names_it() {
    let t = temp_store();
    let inv = inventory_with(&t, &[("A", 5)]).await;
    let prices = inv.send(Quote(vec![sku("A")])).await.unwrap().unwrap();
    assert_eq!(prices, vec![Money::new(100).unwrap()]);
    let err = inv.send(Quote(vec![sku("A"), sku("Z")])).await.unwrap().unwrap_err();
    assert!(matches!(err, NodeError::Refused(Refused::UnknownSku(s)) if s == "Z"));
}

/// The node died between reserving a driver for a call and placing the
/// call: at the next start the driver is released, once; a call that
/// was placed keeps its driver.
#[actix::test]
async fn a_reservation_whose_order_was_never_placed_is_released_at_start() {
    let t = temp_store();
    let inv = InventoryActor::new(&t.env()).unwrap().start();
    let pool = NewProduct {
        sku: "DRV".into(),
        name: "Drivers".into(),
        price: 0,
        stock: None,
        units: vec!["kim".into(), "lee".into()],
    };
    inv.send(AddProduct(pool)).await.unwrap().unwrap();
    for n in [1, 2] {
        let reserve = ReserveNow { order_id: order(n), lines: vec![(sku("DRV"), 1)], stay: None };
        inv.send(reserve).await.unwrap().unwrap();
    }
    let placed = |id: &OrderId| Ok(*id == order(2));
    assert_eq!(release_orphans(&t.store, placed).unwrap(), 1);
    assert_eq!(release_orphans(&t.store, placed).unwrap(), 0, "once");
    let drivers = inv.send(GetProduct(sku("DRV"))).await.unwrap().unwrap();
    assert_eq!((drivers.stock, drivers.units), (1, vec!["kim".to_owned()]));
    let kept = inv.send(GetReservation(order(2))).await.unwrap().unwrap().unwrap();
    assert_eq!(kept.units, ["lee"]);
}
