//! Seed 002, the designated-driver call, as the `driver` workflow.

use super::{place, told};
use crate::helpers::{assert_problem, history, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Two pools of drivers, by transmission type.
async fn dispatcher() -> TestApp {
    let app = spawn_app().await;
    for (sku, drivers) in
        [("automatic", json!(["driver-kim", "driver-choi"])), ("manual", json!(["driver-lee"]))]
    {
        let pool =
            json!({"sku": sku, "name": format!("{sku} transmission drivers"), "price": 0, "units": drivers});
        assert_eq!(app.post_json("/products", &pool).await.status(), StatusCode::CREATED);
    }
    app
}

fn call(customer: &str, transmission: &str) -> Value {
    json!({"workflow": "driver", "customer": customer, "items": [{"sku": transmission, "qty": 1}],
           "address": "Gangnam station exit 5", "payment": "none"})
}

async fn free(app: &TestApp, transmission: &str) -> Value {
    app.get(&format!("/products/{transmission}")).await.json::<Value>().await.unwrap()["units"].clone()
}

#[tokio::test]
async fn a_call_is_assigned_an_available_driver_of_the_chosen_transmission_at_once() {
    let app = dispatcher().await;
    let r = app.post_json("/orders", &call("han", "manual")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(receipt["status"], "reserved", "assigned before the answer");
    let id = receipt["id"].as_str().unwrap();
    let view = app.wait_for_status(id, "reserved").await;
    assert_eq!(view["units"], json!(["driver-lee"]), "the call names its driver");
    assert_eq!(view["label"], "driver assigned");
    assert_eq!(history(&view), ["placed", "reserved"]);
    assert_eq!(free(&app, "manual").await, json!([]));
    assert_eq!(
        free(&app, "automatic").await,
        json!(["driver-kim", "driver-choi"]),
        "the other pool is untouched"
    );
}

#[tokio::test]
async fn with_no_driver_available_the_call_is_refused_immediately() {
    let app = dispatcher().await;
    place(&app, call("han", "manual")).await;
    let problem =
        assert_problem(app.post_json("/orders", &call("seo", "manual")).await, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/problems/nothing-available");
    assert!(problem["detail"].as_str().unwrap().contains("manual"));
    app.settle().await;
    let page: Value = app.get("/status?customer=seo").await.json().await.unwrap();
    assert_eq!(page["orders"], json!([]), "a refused call leaves nothing behind");
}

#[tokio::test]
async fn the_customer_is_told_as_soon_as_a_driver_is_assigned_and_when_cancelled() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "automatic")).await;
    app.wait_for_status(&id, "reserved").await;
    app.settle().await;
    let notes: Value = app.get("/notifications?customer=han").await.json().await.unwrap();
    let assigned = &notes["notifications"][1];
    assert_eq!(assigned["status"], "reserved");
    assert!(assigned["message"].as_str().unwrap().contains("driver-kim"), "{assigned}");
    app.post(&format!("/orders/{id}/cancel")).await;
    app.wait_for_status(&id, "canceled").await;
    assert_eq!(told(&app, "han").await, ["placed", "reserved", "canceled"]);
}

#[tokio::test]
async fn a_cancelled_call_releases_its_driver_for_the_next_call() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "manual")).await;
    assert_eq!(app.post(&format!("/orders/{id}/cancel")).await.status(), StatusCode::OK);
    app.wait_for_status(&id, "canceled").await;
    app.settle().await;
    assert_eq!(free(&app, "manual").await, json!(["driver-lee"]));
    let next = place(&app, call("seo", "manual")).await;
    assert_eq!(app.wait_for_status(&next, "reserved").await["units"], json!(["driver-lee"]));
}

#[tokio::test]
async fn the_driver_starts_the_ride_after_which_the_call_cannot_be_cancelled() {
    let app = dispatcher().await;
    let id = place(&app, call("han", "automatic")).await;
    let r = app.post(&format!("/deliveries/{id}/legs/ride/start")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(view["delivery"]["leg"], "ride");
    assert_problem(app.post(&format!("/orders/{id}/cancel")).await, StatusCode::CONFLICT).await;
    assert_eq!(app.post(&format!("/deliveries/{id}/complete")).await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "closed").await;
    assert_eq!(history(&view), ["placed", "reserved", "in_delivery", "delivered", "closed"]);
}
