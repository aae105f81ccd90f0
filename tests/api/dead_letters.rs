//! Dead letters lead somewhere: when one order's event fails in a service
//! again and again, it is set aside, the order's later events wait behind
//! it in that service (never applied without it), and retrying it once the
//! cause is fixed carries the order on to the same end as if it had never
//! failed. One test per service.

use crate::faults::{admin, quick};
use crate::helpers::{history, order_body, spawn_app_with, TestApp};
use fulfil::faults::FaultSpec;
use fulfil::Service;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn letters_of(app: &TestApp, order: &str) -> Vec<Value> {
    let listed: Value = admin(app, Method::GET, "/admin/dead-letters", None).await.json().await.unwrap();
    let all = listed["dead_letters"].as_array().unwrap().clone();
    all.into_iter().filter(|l| l["order_id"] == order).collect()
}

/// POSTs `path` as an operator or client does: again, after a pause, while
/// the answer is 503 (a service backing off after its panics).
async fn post_past_503(app: &TestApp, path: &str, admin_api: bool) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = match admin_api {
            true => admin(app, Method::POST, path, None).await,
            false => app.post(path).await,
        };
        if r.status() != StatusCode::SERVICE_UNAVAILABLE || Instant::now() > deadline {
            return r;
        }
        assert!(r.headers().contains_key("retry-after"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Places an order that `service` will fail on: ids cannot be guessed, so
/// the service is paused while the order is placed, the fault aimed at its
/// id, and the service resumed to meet the order's events.
pub async fn place_poisoned(app: &TestApp, service: Service, body: &Value) -> String {
    app.node.pause(service).await.unwrap();
    let id = app.place_retrying(body, "poisoned").await;
    let poison = fulfil::domain::OrderId::parse(&id).unwrap();
    app.node
        .inject_fault(service, FaultSpec { panic_on_order: Some(poison), ..FaultSpec::default() })
        .unwrap();
    app.node.resume(service).await.unwrap();
    id
}

async fn poison_fix_retry_completes(service: Service) {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 10).await;
    let id = place_poisoned(&app, service, &order_body("kim", "MUG", 1, "bank_transfer")).await;

    // Set aside at once for this order, then retried by itself until its
    // attempts (poison_after = 3) are used up: a dead letter for an operator.
    let deadline = Instant::now() + Duration::from_secs(10);
    let letters = loop {
        let letters = letters_of(&app, &id).await;
        if !letters.is_empty() && letters.iter().all(|l| l["attempts"] == 3) {
            break letters;
        }
        assert!(Instant::now() < deadline, "{service}: no dead letter for {id}: {letters:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(letters.iter().all(|l| l["service"] == service.name()), "{letters:?}");
    let health: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(health["services"][service.name()]["restarts"], 0, "{service}: one order, no restart");

    // The seller confirms the deposit while the order waits: its later
    // events park behind the dead letter in the failing service. The order
    // service itself refuses commands on an order it could not follow (once
    // the fault, which makes every command on the order panic, is gone).
    if service == Service::Order {
        app.node.clear_faults(None);
    }
    let confirmed = post_past_503(&app, &format!("/payments/{id}/confirm"), false).await;
    match service {
        Service::Order => {
            assert_eq!(confirmed.status(), StatusCode::CONFLICT);
            let problem: Value = confirmed.json().await.unwrap();
            assert_eq!(problem["type"], "/problems/needs-attention");
        }
        _ => assert_eq!(confirmed.status(), StatusCode::OK, "{service}"),
    }
    if service != Service::Projection {
        let view: Value = app.get(&format!("/status/{id}")).await.json().await.unwrap();
        assert_eq!(view["needs_attention"].as_array().unwrap().len(), letters.len(), "{service}: {view}");
    }

    app.node.clear_faults(None);
    for l in &letters {
        let r = post_past_503(&app, &format!("/admin/dead-letters/{}/retry", l["id"]), true).await;
        assert_eq!(r.status(), StatusCode::OK, "{service}: {}", r.text().await.unwrap());
    }
    if service == Service::Order {
        let confirmed = post_past_503(&app, &format!("/payments/{id}/confirm"), false).await;
        assert_eq!(confirmed.status(), StatusCode::OK);
    }
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(history(&view), ["placed", "payment_pending", "paid", "reserved", "in_delivery"], "{service}");
    assert_eq!(view["needs_attention"], json!([]));
    assert!(letters_of(&app, &id).await.is_empty());
    app.settle().await;
    assert_eq!(app.stock("MUG").await, 9, "{service}: taken exactly once");
    let notes: Value = app.get("/notifications?customer=kim").await.json().await.unwrap();
    let sent = notes["notifications"].as_array().unwrap().iter().filter(|n| n["order_id"] == id).count();
    assert_eq!(sent, 5, "{service}: one notification per status, none twice");
}

#[tokio::test]
async fn a_poison_order_in_the_order_service_completes_after_retry() {
    poison_fix_retry_completes(Service::Order).await;
}

#[tokio::test]
async fn a_poison_order_in_payment_completes_after_retry() {
    poison_fix_retry_completes(Service::Payment).await;
}

#[tokio::test]
async fn a_poison_order_in_inventory_completes_after_retry() {
    poison_fix_retry_completes(Service::Inventory).await;
}

#[tokio::test]
async fn a_poison_order_in_delivery_completes_after_retry() {
    poison_fix_retry_completes(Service::Delivery).await;
}

#[tokio::test]
async fn a_poison_order_in_notification_completes_after_retry() {
    poison_fix_retry_completes(Service::Notification).await;
}

#[tokio::test]
async fn a_poison_order_in_the_projection_completes_after_retry() {
    poison_fix_retry_completes(Service::Projection).await;
}
