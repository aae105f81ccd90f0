use crate::helpers::{assert_problem, order_body, spawn_app};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_retry_with_the_same_key_returns_the_first_order_and_creates_nothing() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let body = order_body("kim", "MUG", 2, "card");
    let send = || app.client.post(app.url("/orders")).header("Idempotency-Key", "k-1").json(&body).send();
    let first = send().await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send().await.unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["status"], first["status"]);
    app.wait_for_status(first["id"].as_str().unwrap(), "in_delivery").await;
    app.settle().await;
    let listing: Value = app.get("/status?customer=kim").await.json().await.unwrap();
    assert_eq!(listing["orders"].as_array().unwrap().len(), 1);
    assert_eq!(app.stock("MUG").await, 3, "stock was taken once");
}

#[tokio::test]
async fn the_same_key_with_a_different_body_is_422_and_creates_nothing() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let post =
        |body: Value| app.client.post(app.url("/orders")).header("Idempotency-Key", "k-2").json(&body).send();
    assert_eq!(post(order_body("kim", "MUG", 1, "card")).await.unwrap().status(), StatusCode::CREATED);
    let r = post(order_body("kim", "MUG", 2, "card")).await.unwrap();
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    app.settle().await;
    let listing: Value = app.get("/status?customer=kim").await.json().await.unwrap();
    assert_eq!(listing["orders"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failed_request_does_not_burn_its_key() {
    let app = spawn_app().await;
    let body = order_body("kim", "MUG", 1, "card");
    let post = || app.client.post(app.url("/orders")).header("Idempotency-Key", "k-3").json(&body).send();
    assert_problem(post().await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    app.post_json("/products", &json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 1})).await;
    assert_eq!(post().await.unwrap().status(), StatusCode::CREATED);
}

/// A key is remembered for a day (`timers.idempotency_key_ttl_ms`), then
/// forgotten and its record dropped: the store does not keep every key for
/// ever, and a key reused later places a new order.
#[tokio::test]
async fn a_key_is_forgotten_after_a_day_and_its_record_dropped() {
    use crate::helpers::{a_few_ticks, spawn_on_clock};
    use fulfil::clock::ManualClock;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let app = spawn_on_clock(dir.path(), &clock).await;
    app.add_product("MUG", 1500, 10).await;
    let body = order_body("kim", "MUG", 1, "card");
    let place =
        || app.client.post(app.url("/orders")).header("Idempotency-Key", "daily-1").json(&body).send();
    let first: Value = place().await.unwrap().json().await.unwrap();
    let again = place().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    clock.advance(std::time::Duration::from_secs(23 * 3600));
    a_few_ticks().await;
    assert_eq!(place().await.unwrap().headers()["idempotent-replayed"], "true", "still within the day");
    clock.advance(std::time::Duration::from_secs(2 * 3600));
    a_few_ticks().await;
    let later = place().await.unwrap();
    assert!(!later.headers().contains_key("idempotent-replayed"));
    let later: Value = later.json().await.unwrap();
    assert_ne!(later["id"], first["id"], "a new order");
    app.stop().await;
    let store = fulfil::store::Store::open(dir.path(), 1 << 20).unwrap();
    let kept = store.raw_entries("idempotency").unwrap().len();
    assert_eq!(kept, 1, "the old record was dropped; the new one is kept");
}
