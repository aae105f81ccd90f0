use crate::helpers::spawn_app;
use reqwest::StatusCode;
use serde_json::Value;

const SERVICES: [&str; 6] = ["delivery", "inventory", "notification", "order", "payment", "projection"];

#[tokio::test]
async fn live_and_ready_name_every_service_once_the_node_is_up() {
    let app = spawn_app().await;
    for (path, status) in [("/health/live", "live"), ("/health/ready", "ready")] {
        let r = app.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], status);
        for service in SERVICES {
            assert_eq!(body["services"][service]["state"], "running", "{path} {service}");
        }
    }
}

#[tokio::test]
async fn a_paused_service_makes_the_node_not_ready_and_shows_its_lag() {
    let app = spawn_app().await;
    app.node.pause(fulfil::Service::Delivery).await.unwrap();
    app.add_product("MUG", 1, 1).await;
    let r = app.get("/health/ready").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["services"]["delivery"]["state"], "paused");
    app.node.resume(fulfil::Service::Delivery).await.unwrap();
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
}
