//! Every kind of bad input gets a clear problem+json 4xx and changes nothing.

use crate::helpers::{assert_problem, order_body, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Nothing was created: no order for the customer, stock untouched.
async fn assert_nothing_changed(app: &TestApp, stock: i64) {
    app.settle().await;
    assert_eq!(app.stock("MUG").await, stock);
    let r = app.get("/status?customer=kim").await;
    assert_eq!(r.json::<Value>().await.unwrap()["orders"], json!([]));
    assert_eq!(app.node.health().log_head, 0, "no event was written");
}

async fn app_with_mug() -> TestApp {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    app
}

#[tokio::test]
async fn malformed_json_is_400() {
    let app = app_with_mug().await;
    let body =
        assert_problem(app.post_raw("/orders", "{\"customer\": ").await, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["type"], "/problems/malformed-body");
    assert_nothing_changed(&app, 5).await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = app_with_mug().await;
    let r = app
        .client
        .post(app.url("/orders"))
        .header("content-type", "text/plain")
        .body("hi")
        .send()
        .await
        .unwrap();
    assert_problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_nothing_changed(&app, 5).await;
}

#[tokio::test]
async fn missing_fields_are_422_and_named() {
    let app = app_with_mug().await;
    for field in ["customer", "items", "address", "payment"] {
        let mut body = order_body("kim", "MUG", 1, "card");
        body.as_object_mut().unwrap().remove(field);
        let problem =
            assert_problem(app.post_json("/orders", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(problem["detail"].as_str().unwrap().contains(field), "{problem}");
    }
    assert_nothing_changed(&app, 5).await;
}

#[tokio::test]
async fn a_quantity_of_zero_or_less_is_422() {
    let app = app_with_mug().await;
    for qty in [0, -1] {
        let r = app.post_json("/orders", &order_body("kim", "MUG", qty, "card")).await;
        let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(problem["detail"].as_str().unwrap().contains("qty must be at least 1"), "{problem}");
    }
    assert_nothing_changed(&app, 5).await;
}

#[tokio::test]
async fn an_unknown_sku_is_422_naming_it() {
    let app = app_with_mug().await;
    let r = app.post_json("/orders", &order_body("kim", "NOPE", 1, "bank_transfer")).await;
    let problem = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(problem["type"], "/problems/unknown-sku");
    assert!(problem["detail"].as_str().unwrap().contains("NOPE"));
    assert_nothing_changed(&app, 5).await;
}

#[tokio::test]
async fn an_unknown_payment_method_or_workflow_is_422() {
    let app = app_with_mug().await;
    let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "cash")).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let mut body = order_body("kim", "MUG", 1, "card");
    body["workflow"] = json!("moonbase");
    let problem =
        assert_problem(app.post_json("/orders", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains("moonbase"));
    assert_nothing_changed(&app, 5).await;
}

#[tokio::test]
async fn a_negative_price_or_stock_is_422_and_creates_no_product() {
    let app = spawn_app().await;
    let r = app.post_json("/products", &json!({"sku": "BAD", "name": "Bad", "price": -1, "stock": 1})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = app.post_json("/products", &json!({"sku": "BAD", "name": "Bad", "price": 1, "stock": -1})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r =
        app.post_json("/products", &json!({"sku": "BAD", "name": "Bad", "price": "lots", "stock": 1})).await;
    assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_problem(app.get("/products/BAD").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn an_unknown_order_id_is_404_everywhere() {
    let app = app_with_mug().await;
    for path in ["/orders/ord-999", "/status/ord-999", "/deliveries/ord-999", "/orders/has%20space"] {
        assert_problem(app.get(path).await, StatusCode::NOT_FOUND).await;
    }
    for path in [
        "/orders/ord-999/cancel",
        "/orders/ord-999/receipt",
        "/payments/ord-999/confirm",
        "/deliveries/ord-999/complete",
    ] {
        assert_problem(app.post(path).await, StatusCode::NOT_FOUND).await;
    }
    assert_nothing_changed(&app, 5).await;
}

#[tokio::test]
async fn a_missing_query_parameter_is_400_and_an_unknown_route_404() {
    let app = spawn_app().await;
    assert_problem(app.get("/status").await, StatusCode::BAD_REQUEST).await;
    assert_problem(app.get("/notifications").await, StatusCode::BAD_REQUEST).await;
    assert_problem(app.get("/no/such/route").await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_card_order_without_a_valid_card_number_is_422() {
    let app = app_with_mug().await;
    let mut body = order_body("kim", "MUG", 1, "card");
    body["card"] = json!("12ab");
    assert_problem(app.post_json("/orders", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    body.as_object_mut().unwrap().remove("card");
    assert_problem(app.post_json("/orders", &body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_nothing_changed(&app, 5).await;
}
