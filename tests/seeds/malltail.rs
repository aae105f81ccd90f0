//! Seed 003, overseas purchase with customs (Malltail), as the `malltail`
//! workflow.

use super::{card, list, place};
use crate::helpers::{assert_problem, history, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn malltail() -> TestApp {
    let app = spawn_app().await;
    app.add_product("BOOTS", 89000, 10).await;
    app
}

fn purchase(customer: &str) -> Value {
    json!({"workflow": "malltail", "customer": customer, "items": [{"sku": "BOOTS", "qty": 1}],
           "address": "Malltail forwarding, Delaware", "payment": "card", "card": card()})
}

/// A paid order the shop owner has accepted.
async fn accepted(app: &TestApp, customer: &str) -> String {
    let id = place(app, purchase(customer)).await;
    let r = app.post_json(&format!("/orders/{id}/accept"), &json!({"by": "shop owner"})).await;
    assert_eq!(r.status(), StatusCode::OK);
    app.wait_for_status(&id, "accepted").await;
    id
}

async fn leg(app: &TestApp, id: &str, leg: &str, act: &str) -> reqwest::Response {
    app.post_json(&format!("/deliveries/{id}/legs/{leg}/{act}"), &json!({"reason": "prohibited item"})).await
}

async fn view(app: &TestApp, id: &str) -> Value {
    app.settle().await;
    app.get(&format!("/status/{id}")).await.json().await.unwrap()
}

#[tokio::test]
async fn a_paid_order_reaches_the_shop_owner() {
    let app = malltail().await;
    let id = place(&app, purchase("jang")).await;
    let view = app.wait_for_status(&id, "paid").await;
    assert_eq!(view["label"], "awaiting the shop");
    assert_eq!(list(&app, "malltail", "paid").await, [id]);
}

#[tokio::test]
async fn an_unpaid_order_never_becomes_a_deal() {
    let app = malltail().await;
    let mut declined = purchase("jang");
    declined["card"] = json!("4000 0000 0000 0002");
    assert_problem(app.post_json("/orders", &declined).await, StatusCode::PAYMENT_REQUIRED).await;
    app.settle().await;
    assert!(list(&app, "malltail", "paid").await.is_empty());
}

#[tokio::test]
async fn the_shop_owner_accepts_or_rejects_an_order_and_a_rejected_one_is_refunded() {
    let app = malltail().await;
    let yes = accepted(&app, "jang").await;
    assert_eq!(view(&app, &yes).await["accepted_by"], "shop owner");
    let no = place(&app, purchase("jang")).await;
    let r = app
        .post_json(&format!("/orders/{no}/reject"), &json!({"by": "shop owner", "reason": "cannot ship"}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    app.wait_for_status(&no, "rejected").await;
    assert_eq!(view(&app, &no).await["payment"]["state"], "refunded");
}

#[tokio::test]
async fn accepted_goods_ship_overseas_then_to_korea_then_through_customs_then_domestic() {
    let app = malltail().await;
    let id = accepted(&app, "jang").await;
    assert_eq!(leg(&app, &id, "overseas", "start").await.status(), StatusCode::OK);
    for l in ["overseas", "to_korea", "customs", "domestic"] {
        assert_eq!(leg(&app, &id, l, "complete").await.status(), StatusCode::OK, "{l}");
    }
    let view = app.wait_for_status(&id, "closed").await;
    let legs: Vec<&str> =
        view["history"].as_array().unwrap().iter().filter_map(|h| h["leg"].as_str()).collect();
    assert_eq!(legs, ["overseas", "to_korea", "customs", "domestic"]);
    assert_eq!(
        history(&view),
        [
            "placed",
            "paid",
            "accepted",
            "in_delivery",
            "in_delivery",
            "in_delivery",
            "in_delivery",
            "delivered",
            "closed"
        ]
    );
}

#[tokio::test]
async fn the_customer_may_cancel_before_shipping_with_a_refund_and_the_shop_sees_it() {
    let app = malltail().await;
    let id = accepted(&app, "jang").await;
    assert_eq!(app.post(&format!("/orders/{id}/cancel")).await.status(), StatusCode::OK);
    app.wait_for_status(&id, "canceled").await;
    assert_eq!(view(&app, &id).await["payment"]["state"], "refunded");
    assert_eq!(list(&app, "malltail", "canceled").await, [id], "the shop owner sees the cancellation");
}

#[tokio::test]
async fn the_customer_may_not_cancel_once_overseas_shipping_has_started() {
    let app = malltail().await;
    let id = accepted(&app, "jang").await;
    leg(&app, &id, "overseas", "start").await;
    app.wait_for_status(&id, "in_delivery").await;
    let problem = assert_problem(app.post(&format!("/orders/{id}/cancel")).await, StatusCode::CONFLICT).await;
    assert!(problem["detail"].as_str().unwrap().contains("only until accepted"));
    assert_eq!(view(&app, &id).await["payment"]["state"], "captured");
}

#[tokio::test]
async fn goods_customs_rejects_are_discarded_and_the_order_cancelled_without_refund() {
    let app = malltail().await;
    let id = accepted(&app, "jang").await;
    leg(&app, &id, "overseas", "start").await;
    leg(&app, &id, "overseas", "complete").await;
    leg(&app, &id, "to_korea", "complete").await;
    app.wait_until_leg(&id, "customs").await;
    // The order's status follows the legs through the log: the delivery
    // service can be at customs before the order actor has recorded
    // `in_delivery`, which the customs queue lists by.
    app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(list_at_customs(&app).await, std::slice::from_ref(&id), "the customs officer's queue");
    assert_eq!(leg(&app, &id, "customs", "reject").await.status(), StatusCode::OK);
    let canceled = app.wait_for_status(&id, "canceled").await;
    assert_eq!(canceled["reason"], "forfeited");
    assert_eq!(canceled["delivery"]["state"], "rejected");
    assert_eq!(
        self::view(&app, &id).await["payment"]["state"],
        "captured",
        "no refund: the customer's fault"
    );
    assert_eq!(list(&app, "malltail", "canceled").await, [id], "the shop sees it");
}

#[tokio::test]
async fn acting_on_a_leg_that_is_not_current_is_a_conflict() {
    let app = malltail().await;
    let id = accepted(&app, "jang").await;
    assert_problem(leg(&app, &id, "customs", "complete").await, StatusCode::CONFLICT).await;
    leg(&app, &id, "overseas", "start").await;
    assert_problem(leg(&app, &id, "overseas", "start").await, StatusCode::CONFLICT).await;
    assert_problem(leg(&app, &id, "overseas", "reject").await, StatusCode::CONFLICT).await;
    assert_problem(leg(&app, &id, "moon", "complete").await, StatusCode::NOT_FOUND).await;
}

async fn list_at_customs(app: &TestApp) -> Vec<String> {
    let page: Value =
        app.get("/status?workflow=malltail&status=in_delivery&leg=customs").await.json().await.unwrap();
    page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_customs_officers_reason_is_kept_and_told_to_the_customer() {
    let app = malltail().await;
    let id = accepted(&app, "jang").await;
    for (step, act) in [("overseas", "start"), ("overseas", "complete"), ("to_korea", "complete")] {
        leg(&app, &id, step, act).await;
    }
    app.wait_until_leg(&id, "customs").await;
    assert_eq!(leg(&app, &id, "customs", "reject").await.status(), StatusCode::OK);
    let canceled = app.wait_for_status(&id, "canceled").await;
    assert_eq!(
        (canceled["reason"].clone(), canceled["rejection"].clone()),
        (json!("forfeited"), json!("prohibited item"))
    );
    let order: Value = app.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(order["rejection"], "prohibited item", "the order keeps it too");
    app.settle().await;
    let notes: Value = app.get("/notifications?customer=jang").await.json().await.unwrap();
    let last = notes["notifications"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "canceled");
    assert!(last["message"].as_str().unwrap().contains("prohibited item"), "{last}");
}
