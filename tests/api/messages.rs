//! What a customer or a client is told is true, and said once.

use crate::helpers::{assert_problem, order_body, spawn_app_with};
use crate::overload::{gateway_down, quick_payments, quick_refusing_payments};
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn a_deferred_card_order_is_told_its_card_will_be_charged_not_to_pay_by_transfer() {
    let app = spawn_app_with(quick_payments).await;
    app.add_product("MUG", 1500, 10).await;
    gateway_down(&app);
    let card = app.place(&order_body("kim", "MUG", 1, "card")).await;
    let transfer = app.place(&order_body("kim", "MUG", 1, "bank_transfer")).await;
    app.settle().await;
    let listing: Value = app.get("/notifications?customer=kim").await.json().await.unwrap();
    let pending = |order: &str| -> String {
        let all = listing["notifications"].as_array().unwrap();
        let n = all.iter().find(|n| n["order_id"] == order && n["status"] == "payment_pending").unwrap();
        n["message"].as_str().unwrap().to_owned()
    };
    let card = pending(&card);
    assert!(card.contains("card payment") && !card.contains("transfer"), "{card}");
    assert!(pending(&transfer).contains("bank transfer"));
}

#[tokio::test]
async fn an_open_breaker_says_payment_is_unavailable_once() {
    let app = spawn_app_with(quick_refusing_payments).await;
    app.add_product("MUG", 1500, 100).await;
    gateway_down(&app);
    let mut details = Vec::new();
    for _ in 0..6 {
        let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
        let problem = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
        details.push(problem["detail"].as_str().unwrap().to_owned());
    }
    assert!(details.last().unwrap().contains("breaker"), "the breaker opened: {details:?}");
    for detail in &details {
        assert_eq!(detail.matches("card payment is unavailable").count(), 1, "{detail}");
        assert_eq!(detail.matches("please pay a little later").count(), 1, "{detail}");
    }
}
