//! Stopping a node and starting it again on the same data directory.

use crate::helpers::{history, order_body, spawn_app, spawn_app_at};
use fulfil::Service;
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

#[tokio::test]
async fn a_saga_in_flight_at_shutdown_finishes_after_restart() {
    let dir = TempDir::new().unwrap();
    let app = spawn_app_at(dir.path()).await;
    app.add_product("MUG", 1500, 5).await;
    // With inventory paused the saga stops after `paid`, deterministically.
    app.node.pause(Service::Inventory).await.unwrap();
    let id = app.place(&order_body("kim", "MUG", 2, "bank_transfer")).await;
    assert_eq!(app.post(&format!("/payments/{id}/confirm")).await.status(), StatusCode::OK);
    let view = app.wait_for_status(&id, "paid").await;
    assert_eq!(app.stock("MUG").await, 5);
    assert!(!history(&view).contains(&"reserved".to_owned()));
    app.stop().await;

    let app = spawn_app_at(dir.path()).await;
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(history(&view), ["placed", "payment_pending", "paid", "reserved", "in_delivery"]);
    assert_eq!(app.stock("MUG").await, 3);
    app.settle().await;
    let notes: Value = app.get("/notifications?customer=kim").await.json().await.unwrap();
    assert_eq!(notes["notifications"].as_array().unwrap().len(), 5, "no notification twice");
    app.stop().await;
}

#[tokio::test]
async fn acknowledged_orders_and_idempotency_keys_survive_a_restart() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let body = order_body("kim", "MUG", 1, "card");
    let post = |app: &crate::helpers::TestApp| {
        app.client.post(app.url("/orders")).header("Idempotency-Key", "restart-key").json(&body).send()
    };
    let first: Value = post(&app).await.unwrap().json().await.unwrap();
    let dir = app.stop().await.expect("spawn_app owns its directory");

    let app = spawn_app_at(dir.path()).await;
    let order: Value =
        app.get(&format!("/orders/{}", first["id"].as_str().unwrap())).await.json().await.unwrap();
    assert_eq!(order["customer"], "kim");
    let again = post(&app).await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.json::<Value>().await.unwrap()["id"], first["id"]);
    app.wait_for_status(first["id"].as_str().unwrap(), "in_delivery").await;
    assert_eq!(app.stock("MUG").await, 4, "one order, one reservation");
    let second = app.place(&order_body("kim", "MUG", 1, "card")).await;
    assert_ne!(second, first["id"].as_str().unwrap(), "ids are never reused after a restart");
    app.stop().await;
}
