use super::*;
use crate::actors::inventory::AddProduct;
use crate::actors::testing::{order, temp_store, TestStore};
use crate::domain::order::ItemRequest;
use crate::domain::{EventKind, NewProduct};

async fn order_actor(t: &TestStore) -> Addr<OrderActor> {
    let inventory = InventoryActor::new(&t.env()).unwrap().start();
    let p = NewProduct { sku: "MUG".into(), name: "Mug".into(), price: 1500, stock: Some(5), units: vec![] };
    inventory.send(AddProduct(p)).await.unwrap().unwrap();
    let payment = PaymentActor::new(&t.env(), &crate::config::Settings::default().payment).unwrap().start();
    let workflows = Workflows::new([("shop".to_owned(), crate::domain::Workflow::shop())].into(), "shop");
    let timeouts = TimeoutSettings { request_ms: 2000, payment_ms: 2000 };
    let delivery = DeliveryActor::new(&t.env()).unwrap().start();
    OrderActor::new(&t.env(), inventory, payment, delivery, Arc::new(workflows), timeouts).unwrap().start()
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
