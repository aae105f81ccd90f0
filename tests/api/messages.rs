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

/// A booking of the one deluxe room (180,000), by card.
fn booking(customer: &str, lang: Option<&str>, from: &str, to: &str) -> Value {
    let mut body = serde_json::json!({"workflow": "hotel", "customer": customer,
        "items": [{"sku": "deluxe", "qty": 1}], "address": "Seoul", "payment": "card",
        "card": "4111 1111 1111 1111", "from": from, "to": to});
    if let Some(lang) = lang {
        body["lang"] = lang.into();
    }
    body
}

/// A refund is a message of its own, with what was given back and why, in
/// the customer's language; the cancel before it gives its reason in words.
#[tokio::test]
async fn a_refund_is_told_with_its_amount_and_reason_in_the_customers_language() {
    let app = spawn_app_with(|_| {}).await;
    let rooms =
        serde_json::json!({"sku": "deluxe", "name": "Deluxe", "price": 180000, "units": ["room-701"]});
    assert_eq!(app.post_json("/products", &rooms).await.status(), StatusCode::CREATED);
    for (customer, lang, from, to) in
        [("park", None, "2027-03-01", "2027-03-03"), ("kang", Some("ko"), "2027-04-01", "2027-04-03")]
    {
        let id = app.place(&booking(customer, lang, from, to)).await;
        app.wait_for_status(&id, "reserved").await;
        assert_eq!(app.post(&format!("/orders/{id}/cancel")).await.status(), StatusCode::OK);
        app.settle().await;
    }
    let park = told(&app, "park").await;
    let (status, refund) = park.last().unwrap();
    assert_eq!(status, "canceled", "a refund carries the status the order ended at");
    assert!(
        refund.starts_with("Your payment of 180000 for order")
            && refund.ends_with("was refunded (at the customer's request)."),
        "{park:?}"
    );
    assert!(
        park.iter().any(|(s, m)| s == "canceled" && m.ends_with("was canceled (at the customer's request).")),
        "{park:?}"
    );
    let kang = told(&app, "kang").await;
    let (_, refund) = kang.last().unwrap();
    assert!(refund.ends_with("180000원이 환불되었습니다 (고객 요청)."), "{kang:?}");
}

/// What `customer` was told: (status, message), oldest first.
async fn told(app: &crate::helpers::TestApp, customer: &str) -> Vec<(String, String)> {
    let listing: Value = app.get(&format!("/notifications?customer={customer}")).await.json().await.unwrap();
    let text = |n: &Value, field: &str| n[field].as_str().unwrap().to_owned();
    listing["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (text(n, "status"), text(n, "message")))
        .collect()
}
