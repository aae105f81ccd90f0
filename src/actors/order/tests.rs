use super::*;
use crate::actors::inventory::AddProduct;
use crate::actors::testing::{order, temp_store, TestStore};
use crate::domain::order::ItemRequest;
use crate::domain::{EventKind, NewProduct};

async fn order_actor(t: &TestStore) -> Addr<OrderActor> {
    build(t, stocked(t, 5).await).start()
}

/// An inventory holding `stock` mugs.
async fn stocked(t: &TestStore, stock: i64) -> Addr<InventoryActor> {
    let inventory = InventoryActor::new(&t.env()).unwrap().start();
    let p =
        NewProduct { sku: "MUG".into(), name: "Mug".into(), price: 1500, stock: Some(stock), units: vec![] };
    inventory.send(AddProduct(p)).await.unwrap().unwrap();
    inventory
}

fn build(t: &TestStore, inventory: Addr<InventoryActor>) -> OrderActor {
    let payment = PaymentActor::new(&t.env(), &crate::config::Settings::default().payment).unwrap().start();
    let timeouts = TimeoutSettings { request_ms: 2000, payment_ms: 2000 };
    let delivery = DeliveryActor::new(&t.env()).unwrap().start();
    OrderActor::new(&t.env(), inventory, payment, delivery, Arc::new(workflows()), timeouts).unwrap()
}

fn workflows() -> Workflows {
    Workflows::new([("shop".to_owned(), crate::domain::Workflow::shop())].into(), "shop")
}

fn request(payment: &str, card: &str) -> OrderRequest {
    OrderRequest {
        customer: "kim".into(),
        items: vec![ItemRequest { sku: "MUG".into(), qty: 2 }],
        address: "Seoul".into(),
        payment: payment.into(),
        card: Some(card.into()),
        ..OrderRequest::default()
    }
}

fn place(payment: &str, card: &str) -> PlaceOrder {
    PlaceOrder { request: request(payment, card), idempotency_key: None }
}

#[actix::test]
async fn placing_records_the_order_and_its_first_events() {
    let t = temp_store();
    let o = order_actor(&t).await;
    let receipt = o.send(place("bank_transfer", "")).await.unwrap().unwrap();
    assert_eq!((receipt.status, receipt.total.minor()), (OrderStatus::PaymentPending, 3000));
    let names: Vec<&str> = t.events_of(&receipt.id).iter().map(EventKind::name).collect();
    assert_eq!(names, ["order_placed", "payment_pending"]);
}

#[actix::test]
async fn a_declined_card_records_nothing() {
    let t = temp_store();
    let o = order_actor(&t).await;
    let result = o.send(place("card", "4000000000000002")).await.unwrap();
    assert!(matches!(result, Err(NodeError::Refused(Refused::PaymentDeclined(_)))), "{result:?}");
    assert_eq!(t.store.head(), 0);
}

#[actix::test]
async fn the_order_reacts_to_facts_and_refuses_commands_out_of_turn() {
    let t = temp_store();
    let o = order_actor(&t).await;
    let id = o.send(place("card", "4111111111111111")).await.unwrap().unwrap().id;
    t.append(&id, vec![EventKind::StockReserved { lines: vec![], units: vec![] }]);
    let current = o.send(GetOrder(id.clone())).await.unwrap().unwrap();
    assert_eq!(current.status, OrderStatus::Reserved, "commands and reads catch up with the log first");
    let cancel = OrderCommand { order_id: id.clone(), command: Command::Cancel, by: None };
    assert!(matches!(o.send(cancel).await.unwrap(), Err(NodeError::Refused(Refused::Conflict(_)))));
    let missing = OrderCommand { order_id: order(99), command: Command::Cancel, by: None };
    assert!(matches!(o.send(missing).await.unwrap(), Err(NodeError::Refused(Refused::NotFound { .. }))));
}

/// An order's record is written behind: a fact's change is read at once
/// and the reaction it decides is in the log at once. An instance started
/// again before the commit (as after a crash) folds the fact again into
/// the same record and appends nothing twice.
#[actix::test]
async fn a_fact_is_folded_behind_and_folded_again_after_a_crash_without_appending_twice() {
    let t = temp_store();
    let an_hour = Duration::from_secs(3600);
    let inventory = stocked(&t, 5).await;
    let o = build(&t, inventory.clone()).committing_every(an_hour).start();
    let id = o.send(place("card", "4111111111111111")).await.unwrap().unwrap().id;
    let placed = t.store.get(ORDERS, id.as_str()).unwrap().expect("a placement is written at once");
    t.append(&id, vec![EventKind::StockReserved { lines: vec![], units: vec![] }]);
    // The saga goes on by itself (the delivery starts) and rests in delivery.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let moved = loop {
        let seen = o.send(GetOrder(id.clone())).await.unwrap().unwrap();
        if seen.status == OrderStatus::InDelivery {
            break seen;
        }
        assert!(std::time::Instant::now() < deadline, "the order stopped at {}", seen.status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let names =
        |t: &TestStore| -> Vec<&'static str> { t.events_of(&id).iter().map(EventKind::name).collect() };
    let logged = names(&t);
    assert!(logged.contains(&"order_in_delivery"), "reactions are in the log at once: {logged:?}");
    assert_eq!(t.store.get(ORDERS, id.as_str()).unwrap(), Some(placed), "the changes are held back");

    let again = build(&t, inventory).committing_every(an_hour).start();
    assert_eq!(again.send(GetOrder(id.clone())).await.unwrap().unwrap(), moved, "folded again");
    let again_logged = names(&t);
    assert_eq!(again_logged, logged, "nothing appended twice");
    again.send(crate::actors::consumer::CommitHeldBack).await.unwrap().unwrap();
    assert_eq!(t.store.get(ORDERS, id.as_str()).unwrap(), Some(moved));
    assert_eq!(t.store.offset(NAME).unwrap(), t.store.head());
}

/// A command on an order whose record is held back is written together
/// with what is held back: nothing it wrote depends on a change a crash
/// could take back.
#[actix::test]
async fn a_command_on_a_held_back_order_is_written_with_what_is_held_back() {
    let t = temp_store();
    let inventory = stocked(&t, 5).await;
    let o = build(&t, inventory).committing_every(Duration::from_secs(3600)).start();
    let id = o.send(place("bank_transfer", "")).await.unwrap().unwrap().id;
    t.append(&id, vec![EventKind::Acted { step: "note".into(), by: "kim".into() }]);
    let facts = t.store.head();
    let cancel = OrderCommand { order_id: id.clone(), command: Command::Cancel, by: None };
    let canceled = o.send(cancel).await.unwrap().unwrap();
    assert_eq!(canceled.status, OrderStatus::Canceled);
    assert_eq!(t.store.get(ORDERS, id.as_str()).unwrap(), Some(canceled), "written at once");
    assert!(t.store.offset(NAME).unwrap() >= facts, "with what was held back, and its offset");
}

/// What a failover follower answers for `GET /orders/{id}` from its copy
/// of the store ([`order_in`]: the stored record with the facts after the
/// service's offset folded on) is what the service answers: while the
/// facts are held back, once a command wrote them with the offset, and
/// after a commit.
#[actix::test]
async fn an_order_read_from_the_store_alone_is_the_services() {
    let t = temp_store();
    let inventory = stocked(&t, 9).await;
    let o = build(&t, inventory).committing_every(Duration::from_secs(3600)).start();
    let read = |id: &OrderId| order_in(&t.store.reader(), &workflows(), id).unwrap().expect("readable");
    let services = |id: &OrderId| o.send(GetOrder(id.clone()));

    // Given a card order whose stock is reserved, and a bank transfer one.
    let card = o.send(place("card", "4111111111111111")).await.unwrap().unwrap().id;
    let bank = o.send(place("bank_transfer", "")).await.unwrap().unwrap().id;
    assert_eq!(read(&card), services(&card).await.unwrap().unwrap(), "as placed");
    t.append(&card, vec![EventKind::StockReserved { lines: vec![], units: vec![] }]);
    t.append(&bank, vec![EventKind::StockReserved { lines: vec![], units: vec![] }]);
    // Then each stage the saga moves the card order through, held back.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let seen = services(&card).await.unwrap().unwrap();
        assert_eq!(read(&card), seen, "at {}", seen.status);
        if seen.status == OrderStatus::InDelivery {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the order stopped at {}", seen.status);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(t.store.offset(NAME).unwrap(), 0, "the facts are held back");
    // When a command writes the bank order with what is held back.
    let cancel = OrderCommand { order_id: bank.clone(), command: Command::Cancel, by: None };
    let canceled = o.send(cancel).await.unwrap().unwrap();
    assert_eq!(read(&bank), canceled, "a command's write");
    assert_eq!(read(&card), services(&card).await.unwrap().unwrap());
    // And after a commit.
    o.send(crate::actors::consumer::CommitHeldBack).await.unwrap().unwrap();
    assert_eq!(read(&card), services(&card).await.unwrap().unwrap(), "committed");
    assert_eq!(read(&bank), services(&bank).await.unwrap().unwrap(), "committed");
    let missing = order_in(&t.store.reader(), &workflows(), &order(99));
    assert!(matches!(missing, Err(NodeError::Refused(Refused::NotFound { .. }))), "{missing:?}");
}
