use super::*;
use crate::domain::fold::testing::given_facts;
use crate::domain::order::OrderLine;
use crate::domain::{CancelReason, CustomerId, Money, PaymentMethod};

fn sku(s: &str) -> Sku {
    Sku::parse(s).unwrap()
}

fn product(s: &str, stock: u64, units: &[&str]) -> Product {
    Product {
        sku: sku(s),
        name: s.into(),
        price: Money::new(100).unwrap(),
        stock,
        units: units.iter().map(|u| u.to_string()).collect(),
        out_of_service: vec![],
        pool: !units.is_empty(),
    }
}

fn placed(lines: &[(&str, u32)]) -> EventKind {
    placed_as(lines, ReservationMode::AfterPayment, None)
}

/// An order for `lines` placed in a workflow that reserves as `reservation`.
fn placed_as(lines: &[(&str, u32)], reservation: ReservationMode, stay: Option<Stay>) -> EventKind {
    let items = lines
        .iter()
        .map(|(s, qty)| OrderLine { sku: sku(s), qty: *qty, unit_price: Money::new(100).unwrap() })
        .collect();
    EventKind::OrderPlaced {
        customer: CustomerId::parse("kim").unwrap(),
        items,
        address: "Seoul".into(),
        payment: PaymentMethod::Card,
        total: Money::ZERO,
        workflow: "shop".into(),
        reservation,
        details: None,
        stay,
        lang: None,
    }
}

fn paid() -> EventKind {
    EventKind::OrderPaid { method: PaymentMethod::Card, amount: Money::ZERO, payment_id: "p".into() }
}

/// Given the products on the shelf and the facts so far: the
/// reservation, the shelf and every event the facts led to.
fn given(shelf: Vec<Product>, facts: &[EventKind]) -> (Option<Reservation>, Shelf, Vec<EventKind>) {
    let mut shelf = Shelf::new(shelf);
    let (r, events) = given_facts(None, facts, |r, fact| {
        Reservation::on_fact(r.as_ref(), &OrderId::from_number(1), fact, &mut shelf)
    });
    (r, shelf, events)
}

#[test]
fn a_paid_order_takes_every_line() {
    let (r, shelf, events) =
        given(vec![product("A", 5, &[]), product("B", 5, &[])], &[placed(&[("A", 2), ("B", 1)]), paid()]);
    assert_eq!(r.unwrap().state, ReservationState::Reserved);
    assert_eq!((shelf.get(&sku("A")).unwrap().stock, shelf.get(&sku("B")).unwrap().stock), (3, 4));
    assert_eq!(
        events,
        [EventKind::StockReserved { lines: vec![(sku("A"), 2), (sku("B"), 1)], units: vec![] }]
    );
    assert_eq!(shelf.changed().count(), 2);
}

#[test]
fn one_short_line_takes_nothing_at_all() {
    let (r, shelf, events) =
        given(vec![product("A", 5, &[]), product("B", 1, &[])], &[placed(&[("A", 2), ("B", 3)]), paid()]);
    assert_eq!(r.unwrap().state, ReservationState::Short);
    assert_eq!(shelf.get(&sku("A")).unwrap().stock, 5);
    assert_eq!(shelf.changed().count(), 0, "nothing to write back");
    assert_eq!(events, [EventKind::StockShort { sku: sku("B"), requested: 3, available: 1 }]);
}

#[test]
fn a_product_missing_from_the_shelf_is_short_of_everything() {
    let (_, _, events) = given(vec![], &[placed(&[("Z", 1)]), paid()]);
    assert_eq!(events, [EventKind::StockShort { sku: sku("Z"), requested: 1, available: 0 }]);
}

#[test]
fn named_units_are_taken_from_the_front_and_come_back_once() {
    let cancel = EventKind::OrderCanceled { reason: CancelReason::CustomerRequest };
    let facts = [placed(&[("DRV", 1)]), paid(), cancel.clone(), cancel];
    let (r, shelf, events) = given(vec![product("DRV", 2, &["kim", "lee"])], &facts);
    assert_eq!(r.unwrap().state, ReservationState::Released);
    let names: Vec<_> = events.iter().map(EventKind::name).collect();
    assert_eq!(names, ["stock_reserved", "stock_released"]);
    assert!(matches!(&events[0], EventKind::StockReserved { units, .. } if units == &["kim"]));
    let drivers = shelf.get(&sku("DRV")).unwrap();
    assert_eq!((drivers.stock, drivers.units.clone()), (2, vec!["lee".to_string(), "kim".to_string()]));
}

#[test]
fn shipped_goods_are_not_given_back_and_an_unpaid_order_just_drops() {
    let shipped = EventKind::OrderInDelivery { delivery_id: "d".into(), leg: 0, name: "ship".into() };
    let cancel = EventKind::OrderCanceled { reason: CancelReason::CustomerRequest };
    let (r, shelf, _) =
        given(vec![product("A", 5, &[])], &[placed(&[("A", 2)]), paid(), shipped, cancel.clone()]);
    assert_eq!((r.unwrap().state, shelf.get(&sku("A")).unwrap().stock), (ReservationState::Shipped, 3));
    let (r, _, events) = given(vec![product("A", 5, &[])], &[placed(&[("A", 2)]), cancel]);
    assert_eq!((r.unwrap().state, events.len()), (ReservationState::Dropped, 0));
}

#[test]
fn a_named_unit_works_through_the_delivery_and_comes_back_when_it_is_done() {
    let mut shelf = Shelf::new([product("DRV", 1, &["kim"])]);
    let (r, _) = Reservation::reserve_now(&[(sku("DRV"), 1)], None, &mut shelf).unwrap();
    let riding = EventKind::OrderInDelivery { delivery_id: "d".into(), leg: 0, name: "ride".into() };
    let facts = [riding, EventKind::OrderDelivered, EventKind::OrderClosed];
    let (r, events) = given_facts(Some(r), &facts, |r, fact| {
        Reservation::on_fact(r.as_ref(), &OrderId::from_number(1), fact, &mut shelf)
    });
    assert_eq!(r.unwrap().state, ReservationState::Released);
    assert_eq!(events, [EventKind::StockReleased { lines: vec![(sku("DRV"), 1)] }], "given back once");
    let drivers = shelf.get(&sku("DRV")).unwrap();
    assert_eq!((drivers.stock, drivers.units.clone()), (1, vec!["kim".to_string()]));
}

#[test]
fn the_shelf_says_which_units_a_decision_took_and_gave_back() {
    let mut shelf = Shelf::new([product("DRV", 2, &["kim", "lee"])]);
    shelf.take(&[(sku("DRV"), 1)]).unwrap();
    let taken = MovedUnits { taken: vec![(sku("DRV"), "kim".to_string())], returned: vec![] };
    assert_eq!(shelf.moved_units(), taken);
    let mut back = Shelf::new([product("DRV", 1, &["lee"])]);
    back.give_back(&[(sku("DRV"), 1)], &["kim".to_string()]);
    let returned = MovedUnits { taken: vec![], returned: vec![(sku("DRV"), "kim".to_string())] };
    assert_eq!(back.moved_units(), returned);
}

#[test]
fn reserving_now_is_all_or_nothing_too() {
    let mut shelf = Shelf::new([product("A", 1, &[])]);
    let short = Reservation::reserve_now(&[(sku("A"), 2)], None, &mut shelf).unwrap_err();
    assert_eq!(short, Short { sku: sku("A"), requested: 2, available: 1 });
    let (r, fact) = Reservation::reserve_now(&[(sku("A"), 1)], None, &mut shelf).unwrap();
    assert_eq!((r.state, fact.name()), (ReservationState::Reserved, "stock_reserved"));
}

#[test]
fn a_unit_cannot_be_free_twice_and_a_sku_is_added_once() {
    let mut p = product("DRV", 1, &["kim"]);
    let again = restock(&mut p, &Restock::Units(vec!["kim".into()]));
    assert!(matches!(again, Err(Refusal::UnitInUse(_))));
    restock(&mut p, &Restock::Units(vec!["lee".into()])).unwrap();
    assert_eq!((p.stock, p.units.len()), (2, 2));
    let twice = add_product(Some(&p), p.clone()).unwrap_err();
    assert!(matches!(twice, Refusal::ProductExists(_)));
}

#[test]
fn a_pool_takes_units_a_counted_product_takes_qty_and_neither_overflows() {
    let mut pool = product("DRV", 1, &["kim"]);
    let qty = restock(&mut pool, &Restock::Qty(2)).unwrap_err();
    assert!(qty.to_string().starts_with("qty:") && qty.to_string().contains("pool"), "{qty}");
    let mut mugs = product("MUG", 5, &[]);
    let units = restock(&mut mugs, &Restock::Units(vec!["x".into()])).unwrap_err();
    assert!(units.to_string().starts_with("units:"), "{units}");
    restock(&mut mugs, &Restock::Qty(u64::MAX - 5)).unwrap();
    let over = restock(&mut mugs, &Restock::Qty(1)).unwrap_err();
    assert!(over.to_string().contains("more than"), "{over}");
    assert_eq!(mugs.stock, u64::MAX, "refused, not capped: the earlier total stands");
    assert_eq!((pool.stock, mugs.units.len()), (1, 0), "a refusal changes nothing");
}

fn stay(from: &str, to: &str) -> Stay {
    Stay::parse(from, to).unwrap()
}

#[test]
fn given_a_dated_pool_a_booking_holds_its_room_for_its_dates_only_and_gives_it_back_once() {
    let rooms = || product("ROOM", 1, &["r1"]);
    let (march, order) = (stay("2027-03-01", "2027-03-03"), OrderId::from_number(1));
    let mut shelf = Shelf::new([rooms()]).with_calendars([(sku("ROOM"), Calendar::default())]);
    let dates = Dates { order: &order, stay: &march };
    let (r, fact) = Reservation::reserve_now(&[(sku("ROOM"), 1)], Some(dates), &mut shelf).unwrap();
    assert_eq!(fact, EventKind::StockReserved { lines: vec![(sku("ROOM"), 1)], units: vec!["r1".into()] });
    assert_eq!(shelf.get(&sku("ROOM")).unwrap().units, ["r1"], "a dated room stays in its pool");
    assert!(shelf.moved_units().taken.is_empty(), "and is not held outright");
    let (_, calendar) = shelf.changed_calendars().next().unwrap();
    let calendar = calendar.clone();
    assert!(!calendar.is_free("r1", &march) && calendar.is_free("r1", &stay("2027-03-03", "2027-03-05")));

    let mut shelf = Shelf::new([rooms()]).with_calendars([(sku("ROOM"), calendar.clone())]);
    let other = OrderId::from_number(2);
    let overlapping = Dates { order: &other, stay: &stay("2027-03-02", "2027-03-04") };
    let short = Reservation::reserve_now(&[(sku("ROOM"), 1)], Some(overlapping), &mut shelf).unwrap_err();
    assert_eq!(short.available, 0);

    let checked_out = [EventKind::OrderDelivered, EventKind::OrderClosed];
    let (r, events) = given_facts(Some(r), &checked_out, |r, fact| {
        Reservation::on_fact(r.as_ref(), &order, fact, &mut shelf)
    });
    assert_eq!(r.unwrap().state, ReservationState::Released);
    assert_eq!(events, [EventKind::StockReleased { lines: vec![(sku("ROOM"), 1)] }], "once");
    let (_, calendar) = shelf.changed_calendars().next().unwrap();
    assert!(calendar.bookings.is_empty(), "free for every date again");
}

#[test]
fn a_unit_goes_out_of_service_and_back_and_a_pool_stays_a_pool_when_empty() {
    let mut p = product("DRV", 2, &["kim", "lee"]);
    take_out_of_service(&mut p, "kim").unwrap();
    take_out_of_service(&mut p, "kim").unwrap();
    assert_eq!(
        (p.stock, p.units.clone(), p.out_of_service.clone()),
        (1, vec!["lee".into()], vec!["kim".into()])
    );
    let back_by_restock = restock(&mut p, &Restock::Units(vec!["kim".into()])).unwrap_err();
    assert!(back_by_restock.to_string().contains("out of service"), "{back_by_restock}");
    assert!(matches!(take_out_of_service(&mut p, "park"), Err(Refusal::Unknown { .. })));
    put_back_in_service(&mut p, "kim").unwrap();
    assert_eq!((p.stock, p.units.clone()), (2, vec!["lee".into(), "kim".into()]));

    let mut all_out = product("DRV", 0, &[]);
    all_out.pool = true;
    let qty = restock(&mut all_out, &Restock::Qty(2)).unwrap_err();
    assert!(qty.to_string().contains("pool"), "{qty}");
}

/// The inventory's reservations are a fold of the log: whatever the facts
/// did to a reservation (taken, short, shipped, dropped unpaid, given back,
/// booked for dates at placement), its order's events, the service's own
/// among them, replay to the same reservation.
#[test]
fn a_reservation_is_what_its_order_events_replay_to() {
    let shipped = EventKind::OrderInDelivery { delivery_id: "d".into(), leg: 0, name: "ship".into() };
    let cancel = EventKind::OrderCanceled { reason: CancelReason::CustomerRequest };
    for (stock, facts) in [
        (5, vec![placed(&[("A", 2)]), paid(), shipped]),
        (1, vec![placed(&[("A", 2)]), paid()]),
        (5, vec![placed(&[("A", 2)]), cancel.clone()]),
        (5, vec![placed(&[("A", 2)]), paid(), cancel.clone()]),
    ] {
        // The log: each fact, then what the service appended on it.
        let (mut log, mut state) = (vec![], None);
        let mut shelf = Shelf::new([product("A", stock, &[])]);
        for fact in &facts {
            log.push(fact.clone());
            let order = OrderId::from_number(1);
            if let Some((next, appended)) = Reservation::on_fact(state.as_ref(), &order, fact, &mut shelf) {
                state = Some(next);
                log.extend(appended);
            }
        }
        let kinds: Vec<&str> = log.iter().map(EventKind::name).collect();
        assert!(state.is_some());
        assert_eq!(Reservation::replay(&log), state, "after {kinds:?}");
    }
    assert_eq!(Reservation::replay(&[placed(&[])]), None, "nothing to reserve");

    // A room booked while the order is placed: the stock event comes first,
    // the dates with the placing.
    let (march, order) = (stay("2027-03-01", "2027-03-03"), OrderId::from_number(1));
    let mut shelf =
        Shelf::new([product("ROOM", 1, &["r1"])]).with_calendars([(sku("ROOM"), Calendar::default())]);
    let dates = Dates { order: &order, stay: &march };
    let (r, taken) = Reservation::reserve_now(&[(sku("ROOM"), 1)], Some(dates), &mut shelf).unwrap();
    let placing = placed_as(&[("ROOM", 1)], ReservationMode::AtPlacement, Some(march));
    assert_eq!(Reservation::replay(&[taken, placing]), Some(r));
}
