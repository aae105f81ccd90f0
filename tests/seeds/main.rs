//! The five systems of the seed documents (`SCENARIOS.md`), one file each,
//! each running as a workflow of the same engine. Every test is named after
//! the requirement it proves.

#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod driver;
mod hotel;
mod malltail;
mod shop;
mod taxi;

use helpers::TestApp;
use serde_json::{json, Value};

/// Places an order of `workflow` and returns its id, asserting a 201.
async fn place(app: &TestApp, body: Value) -> String {
    let r = app.post_json("/orders", &body).await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED, "placing {body}");
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
}

/// A party's work list: the ids of `workflow`'s orders at `status`.
async fn list(app: &TestApp, workflow: &str, status: &str) -> Vec<String> {
    let r = app.get(&format!("/status?workflow={workflow}&status={status}")).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let page: Value = r.json().await.unwrap();
    page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap().to_owned()).collect()
}

/// The statuses a customer was told about, in order.
async fn told(app: &TestApp, customer: &str) -> Vec<String> {
    app.settle().await;
    let body: Value = app.get(&format!("/notifications?customer={customer}")).await.json().await.unwrap();
    body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap().to_owned())
        .collect()
}

fn card() -> Value {
    json!("4111 1111 1111 1111")
}
