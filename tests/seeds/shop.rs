//! Seed 000, the shopping mall, as the `shop` workflow (the default), step
//! by step: order → bank transfer awaited → deposit confirmed → stock taken →
//! delivery → receipt confirmed → closed; cancel only before the deposit.

use crate::helpers::{assert_problem, history, order_body, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn shop() -> TestApp {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    app
}

#[tokio::test]
async fn a_bank_transfer_order_waits_as_payment_pending() {
    let app = shop().await;
    let mut body = order_body("kim", "MUG", 2, "bank_transfer");
    body["workflow"] = json!("shop");
    let r = app.post_json("/orders", &body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "payment_pending");
    assert_eq!(body["total"], 3000);
    let id = body["id"].as_str().unwrap();
    assert_eq!(location, format!("/orders/{id}"));
    let order: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(order["status"], "payment_pending");
    let view = app.wait_for_status(id, "payment_pending").await;
    assert_eq!(history(&view), ["placed", "payment_pending"]);
    assert_eq!(app.stock("MUG").await, 5, "nothing is reserved before the deposit");
}

#[tokio::test]
async fn confirming_the_deposit_pays_reserves_and_starts_delivery() {
    let app = shop().await;
    let id = app.place(&order_body("kim", "MUG", 2, "bank_transfer")).await;
    let r = app.post(&format!("/payments/{id}/confirm")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "paid");
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(history(&view), ["placed", "payment_pending", "paid", "reserved", "in_delivery"]);
    assert_eq!(view["payment"]["state"], "captured");
    assert_eq!(view["delivery"]["state"], "in_transit");
    assert_eq!(app.stock("MUG").await, 3);
}

#[tokio::test]
async fn delivery_then_receipt_closes_the_order() {
    let app = shop().await;
    let id = app.order_in_delivery("kim", 1).await;
    assert_eq!(app.post(&format!("/deliveries/{id}/complete")).await.status(), StatusCode::OK);
    app.wait_for_status(&id, "delivered").await;
    let r = app.post(&format!("/orders/{id}/receipt")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "closed").await;
    assert_eq!(
        history(&view),
        ["placed", "payment_pending", "paid", "reserved", "in_delivery", "delivered", "closed"]
    );
    assert_eq!(view["delivery"]["state"], "delivered");
    assert_eq!(view["customer"], "kim");
    assert_eq!(view["items"], json!([{"sku": "MUG", "qty": 1, "unit_price": 1500}]));
    assert_eq!(view["total"], 1500);
    assert_eq!(view["reason"], Value::Null);
    for entry in view["history"].as_array().unwrap() {
        assert!(entry["at"].as_str().unwrap().ends_with('Z'), "RFC 3339 times: {entry}");
    }
}

#[tokio::test]
async fn short_stock_refunds_and_cancels_without_touching_stock() {
    let app = shop().await;
    let id = app.place(&order_body("kim", "MUG", 6, "bank_transfer")).await;
    app.post(&format!("/payments/{id}/confirm")).await;
    let view = app.wait_for_status(&id, "canceled").await;
    assert_eq!(view["reason"], "out_of_stock");
    app.settle().await;
    let view: Value = app.get(&format!("/status/{id}")).await.json().await.unwrap();
    assert_eq!(view["payment"]["state"], "refunded");
    assert_eq!(app.stock("MUG").await, 5);
    let payment = app.node.payment(&id).await.unwrap().unwrap();
    assert_eq!(payment.state, fulfil::actors::payment::PaymentStatus::Refunded);
}

#[tokio::test]
async fn only_one_of_two_orders_gets_the_last_units() {
    let app = shop().await;
    let first = app.place(&order_body("kim", "MUG", 3, "card")).await;
    let second = app.place(&order_body("lee", "MUG", 3, "card")).await;
    app.wait_for_status(&first, "in_delivery").await;
    let view = app.wait_for_status(&second, "canceled").await;
    assert_eq!(view["reason"], "out_of_stock");
    assert_eq!(app.stock("MUG").await, 2, "stock never goes negative");
}

#[tokio::test]
async fn cancel_before_the_deposit_cancels_the_order() {
    let app = shop().await;
    let id = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    let r = app.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "canceled").await;
    assert_eq!(view["reason"], "customer_request");
    assert_eq!(view["payment"]["state"], "voided");
    // Nothing to confirm any more.
    assert_problem(app.post(&format!("/payments/{id}/confirm")).await, StatusCode::CONFLICT).await;
    app.settle().await;
    assert_eq!(app.stock("MUG").await, 5);
}

#[tokio::test]
async fn cancel_after_the_deposit_is_409_and_changes_nothing() {
    let app = shop().await;
    let id = app.place(&order_body("kim", "MUG", 2, "bank_transfer")).await;
    app.post(&format!("/payments/{id}/confirm")).await;
    let problem = assert_problem(app.post(&format!("/orders/{id}/cancel")).await, StatusCode::CONFLICT).await;
    assert!(problem["detail"].as_str().unwrap().contains("only until payment_pending"), "{problem}");
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert!(!history(&view).contains(&"canceled".to_owned()));
    assert_eq!(app.stock("MUG").await, 3);
}

#[tokio::test]
async fn card_payment_is_paid_at_once_and_needs_no_confirmation() {
    let app = shop().await;
    let r = app.post_json("/orders", &order_body("kim", "MUG", 2, "card")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "paid");
    let id = body["id"].as_str().unwrap();
    let view = app.wait_for_status(id, "in_delivery").await;
    assert_eq!(history(&view), ["placed", "paid", "reserved", "in_delivery"]);
    let payment = app.node.payment(id).await.unwrap().unwrap();
    assert_eq!(payment.card_last4.as_deref(), Some("1111"), "only the last four digits are kept");
}

#[tokio::test]
async fn a_declined_card_is_402_and_reserves_nothing() {
    let app = shop().await;
    let mut body = order_body("kim", "MUG", 2, "card");
    body["card"] = json!("4000 0000 0000 0002");
    let problem = assert_problem(app.post_json("/orders", &body).await, StatusCode::PAYMENT_REQUIRED).await;
    assert_eq!(problem["type"], "/problems/payment-declined");
    assert!(problem["detail"].as_str().unwrap().contains("0002"));
    app.settle().await;
    assert_eq!(app.stock("MUG").await, 5);
    let listing: Value = app.get("/status?customer=kim").await.json().await.unwrap();
    assert_eq!(listing["orders"], json!([]));
}

#[tokio::test]
async fn receipt_before_delivery_and_delivery_before_it_starts_are_409() {
    let app = shop().await;
    let id = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    assert_problem(app.post(&format!("/orders/{id}/receipt")).await, StatusCode::CONFLICT).await;
    assert_problem(app.post(&format!("/deliveries/{id}/complete")).await, StatusCode::CONFLICT).await;
    let order: Value = app.get(&format!("/orders/{id}")).await.json().await.unwrap();
    assert_eq!(order["status"], "payment_pending");
}

#[tokio::test]
async fn a_customer_lists_their_orders_in_the_status_view() {
    let app = shop().await;
    let first = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    let second = app.place(&order_body("kim", "MUG", 1, "card")).await;
    app.place(&order_body("lee", "MUG", 1, "card")).await;
    app.wait_for_status(&second, "in_delivery").await;
    app.settle().await;
    let listing: Value = app.get("/status?customer=kim").await.json().await.unwrap();
    let ids: Vec<&str> =
        listing["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [first.as_str(), second.as_str()]);
}

#[tokio::test]
async fn the_seller_can_cancel_until_delivered_and_the_customer_is_refunded() {
    let app = shop().await;
    let id = app.place(&order_body("kim", "MUG", 1, "card")).await;
    app.wait_for_status(&id, "in_delivery").await;
    let late = app.post(&format!("/orders/{id}/cancel")).await;
    assert_eq!(late.status(), StatusCode::CONFLICT, "the customer may not, by now");
    assert_eq!(app.post(&format!("/orders/{id}/seller-cancel")).await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "canceled").await;
    assert_eq!(view["reason"], "seller_request");
    app.settle().await;
    let view: Value = app.get(&format!("/status/{id}")).await.json().await.unwrap();
    assert_eq!(view["payment"]["state"], "refunded", "{view}");
    let delivery: Value = app.get(&format!("/deliveries/{id}")).await.json().await.unwrap();
    assert_eq!(delivery["state"], "stopped");
    let again = app.post(&format!("/orders/{id}/seller-cancel")).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "once over, it stays over");
}

mod expiry {
    use crate::helpers::{a_few_ticks, order_body, spawn_on_clock as shop_at};
    use fulfil::clock::ManualClock;
    use std::sync::Arc;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn an_unpaid_bank_transfer_expires_after_a_day_and_a_paid_one_never_does() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let app = shop_at(dir.path(), &clock).await;
        app.add_product("MUG", 1500, 5).await;
        let unpaid = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
        let paid = app.place(&order_body("lee", "MUG", 1, "bank_transfer")).await;
        assert_eq!(app.post(&format!("/payments/{paid}/confirm")).await.status(), 200);
        app.wait_for_status(&paid, "in_delivery").await;

        clock.advance(23 * HOUR);
        a_few_ticks().await;
        app.wait_for_status(&unpaid, "payment_pending").await;
        clock.advance(2 * HOUR);
        let view = app.wait_for_status(&unpaid, "canceled").await;
        assert_eq!(
            (view["reason"].clone(), view["payment"]["state"].clone()),
            ("expired".into(), "voided".into())
        );
        clock.advance(48 * HOUR);
        a_few_ticks().await;
        app.settle().await;
        assert_eq!(
            app.get(&format!("/status/{paid}")).await.json::<serde_json::Value>().await.unwrap()["status"],
            "in_delivery"
        );
        assert_eq!(app.stock("MUG").await, 4, "only the paid order took stock");
        let notes: serde_json::Value = app.get("/notifications?customer=kim").await.json().await.unwrap();
        let last = notes["notifications"].as_array().unwrap().last().unwrap().clone();
        assert!(
            last["message"].as_str().unwrap().contains("not paid in time"),
            "the customer is told: {last}"
        );
    }

    #[tokio::test]
    async fn a_timer_due_while_the_node_was_down_fires_once_after_start() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::starting_now());
        let app = shop_at(dir.path(), &clock).await;
        app.add_product("MUG", 1500, 5).await;
        let id = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
        app.settle().await;
        app.stop().await;

        clock.advance(25 * HOUR);
        let app = shop_at(dir.path(), &clock).await;
        let view = app.wait_for_status(&id, "canceled").await;
        assert_eq!(view["reason"], "expired");
        a_few_ticks().await;
        app.settle().await;
        let view: serde_json::Value = app.get(&format!("/status/{id}")).await.json().await.unwrap();
        let canceled =
            view["history"].as_array().unwrap().iter().filter(|h| h["status"] == "canceled").count();
        assert_eq!(canceled, 1, "fired once: {view}");
    }
}
