use crate::helpers::{history, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn every_status_change_sends_one_notification_newest_last() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let id = app.order_in_delivery("kim", 1).await;
    app.post(&format!("/deliveries/{id}/complete")).await;
    app.wait_for_status(&id, "delivered").await;
    app.post(&format!("/orders/{id}/receipt")).await;
    let view = app.wait_for_status(&id, "closed").await;
    app.settle().await;

    let body: Value = app.get("/notifications?customer=kim").await.json().await.unwrap();
    let sent: Vec<&str> =
        body["notifications"].as_array().unwrap().iter().map(|n| n["status"].as_str().unwrap()).collect();
    assert_eq!(sent, history(&view), "one notification per status change, in order");
    for n in body["notifications"].as_array().unwrap() {
        assert_eq!(n["order_id"], id.as_str());
        assert!(n["message"].as_str().unwrap().contains(&id));
    }
    let other: Value = app.get("/notifications?customer=lee").await.json().await.unwrap();
    assert_eq!(other["notifications"].as_array().unwrap().len(), 0);
}
