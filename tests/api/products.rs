use crate::helpers::{assert_problem, spawn_app};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn a_new_product_is_created_with_its_location_and_stock() {
    let app = spawn_app().await;
    let r =
        app.post_json("/products", &json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 7})).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"], "/products/MUG");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 7, "units": [], "out_of_service": []})
    );
    assert_eq!(app.stock("MUG").await, 7);
}

#[tokio::test]
async fn restock_adds_to_the_stock() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 2).await;
    let r = app.post_json("/products/MUG/restock", &json!({"qty": 5})).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["stock"], 7);
    assert_eq!(app.stock("MUG").await, 7);
}

#[tokio::test]
async fn a_duplicate_sku_is_a_conflict_and_keeps_the_first_product() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 2).await;
    let r =
        app.post_json("/products", &json!({"sku": "MUG", "name": "Other", "price": 1, "stock": 99})).await;
    assert_problem(r, StatusCode::CONFLICT).await;
    assert_eq!(app.stock("MUG").await, 2);
}

#[tokio::test]
async fn unknown_products_are_404() {
    let app = spawn_app().await;
    assert_problem(app.get("/products/NOPE").await, StatusCode::NOT_FOUND).await;
    let r = app.post_json("/products/NOPE/restock", &json!({"qty": 1})).await;
    assert_problem(r, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_restock_of_zero_or_less_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 2).await;
    for qty in [0, -3] {
        let r = app.post_json("/products/MUG/restock", &json!({"qty": qty})).await;
        let body = assert_problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(body["detail"].as_str().unwrap().contains("qty"), "{body}");
    }
    assert_eq!(app.stock("MUG").await, 2);
}
