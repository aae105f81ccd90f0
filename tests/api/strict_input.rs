//! Input is read strictly: only JSON objects, no control characters in
//! text, no names that show as nothing, no `.`/`..` ids, restocks that fit
//! the product. Each refusal is a 422 that names the field, and changes
//! nothing. And every 409 says what it is about.

use crate::helpers::{assert_problem, order_body, spawn_app, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn app_with_mug() -> TestApp {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    app
}

/// A 422 whose detail names `field`.
async fn refused(app: &TestApp, path: &str, body: &Value, field: &str) -> Value {
    let problem = assert_problem(app.post_json(path, body).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(problem["detail"].as_str().unwrap().contains(field), "{body} → {problem}");
    problem
}

async fn nothing_was_ordered(app: &TestApp) {
    app.settle().await;
    assert_eq!(app.node.health().log_head, 0, "no event was written");
    assert_eq!(app.stock("MUG").await, 5);
}

#[tokio::test]
async fn an_order_must_be_a_json_object() {
    let app = app_with_mug().await;
    let as_array = json!(["kim", [{"sku": "MUG", "qty": 1}], "Seoul", "bank_transfer"]);
    let problem = refused(&app, "/orders", &as_array, "JSON object").await;
    assert_eq!(problem["type"], "/problems/invalid-body");
    refused(&app, "/orders", &json!("kim"), "not a string").await;
    nothing_was_ordered(&app).await;
}

#[tokio::test]
async fn control_characters_in_free_text_are_refused_by_field() {
    let app = app_with_mug().await;
    for bad in ["1 Main St\u{0}", "\u{1b}[31mred", "line\r\nInjected: yes"] {
        let mut body = order_body("kim", "MUG", 1, "bank_transfer");
        body["address"] = json!(bad);
        refused(&app, "/orders", &body, "address").await;
    }
    let mut tabs_and_newlines = order_body("kim", "MUG", 1, "bank_transfer");
    tabs_and_newlines["address"] = json!("1 Main St\n\tSeoul");
    assert_eq!(app.post_json("/orders", &tabs_and_newlines).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn names_that_show_as_nothing_and_dot_ids_are_refused() {
    let app = app_with_mug().await;
    for invisible in ["\u{200B}", "\u{202E}", " \u{200B} "] {
        refused(&app, "/orders", &order_body(invisible, "MUG", 1, "bank_transfer"), "customer").await;
        let product = json!({"sku": "TEA", "name": invisible, "price": 100, "stock": 1});
        refused(&app, "/products", &product, "name").await;
    }
    for dots in [".", ".."] {
        let product = json!({"sku": dots, "name": "Dots", "price": 100, "stock": 1});
        refused(&app, "/products", &product, "sku").await;
    }
    nothing_was_ordered(&app).await;
    assert_eq!(app.get("/products/TEA").await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_restock_is_a_quantity_or_units_that_fit_the_product_and_never_overflows() {
    let app = app_with_mug().await;
    let drivers = json!({"sku": "DRV", "name": "Drivers", "price": 0, "units": ["kim"]});
    assert_eq!(app.post_json("/products", &drivers).await.status(), StatusCode::CREATED);

    refused(&app, "/products/MUG/restock", &json!({"qty": 1, "units": ["x"]}), "not both").await;
    refused(&app, "/products/DRV/restock", &json!({"qty": 2}), "qty").await;
    refused(&app, "/products/MUG/restock", &json!({"units": ["x"]}), "units").await;
    let max = json!({"qty": i64::MAX});
    assert_eq!(app.post_json("/products/MUG/restock", &max).await.status(), StatusCode::OK);
    let stock = mug_stock(&app).await;
    assert_eq!(stock, 5 + i64::MAX as u64);
    refused(&app, "/products/MUG/restock", &max, "qty").await;
    assert_eq!(mug_stock(&app).await, stock, "refused, not capped");
    let drv: Value = app.get("/products/DRV").await.json().await.unwrap();
    assert_eq!((drv["stock"].clone(), drv["units"].clone()), (json!(1), json!(["kim"])));
}

/// MUG's stock, which may be past what `i64` holds.
async fn mug_stock(app: &TestApp) -> u64 {
    let mug: Value = app.get("/products/MUG").await.json().await.unwrap();
    mug["stock"].as_u64().unwrap()
}

#[tokio::test]
async fn every_409_names_its_cause() {
    let app = app_with_mug().await;
    let again = json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 1});
    let problem = assert_problem(app.post_json("/products", &again).await, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/problems/product-exists");

    let drivers = json!({"sku": "DRV", "name": "Drivers", "price": 0, "units": ["kim"]});
    app.post_json("/products", &drivers).await;
    let twice = app.post_json("/products/DRV/restock", &json!({"units": ["kim"]})).await;
    assert_eq!(assert_problem(twice, StatusCode::CONFLICT).await["type"], "/problems/unit-in-use");

    let id = app.order_in_delivery("kim", 1).await;
    let late = app.post(&format!("/orders/{id}/cancel")).await;
    let problem = assert_problem(late, StatusCode::CONFLICT).await;
    assert_eq!(problem["type"], "/problems/order-status");
    assert_eq!(problem["title"], "The order's status does not allow this");
}

#[tokio::test]
async fn a_field_the_engine_does_not_know_is_refused_by_name_not_dropped() {
    let app = app_with_mug().await;
    for field in ["guests", "check_in", "destination"] {
        let mut body = order_body("kim", "MUG", 1, "bank_transfer");
        body[field] = json!("x");
        let problem = refused(&app, "/orders", &body, field).await;
        assert_eq!(problem["type"], "/problems/invalid-body");
    }
    let typo = json!({"sku": "TEA", "name": "Tea", "price": 100, "stok": 3});
    refused(&app, "/products", &typo, "stok").await;
    nothing_was_ordered(&app).await;
}
