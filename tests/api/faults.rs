//! Self-healing under injected faults: panics, crash loops, poison events,
//! stuck actors. Each test asserts that nothing was lost or done twice.

use crate::helpers::{assert_problem, history, order_body, spawn_app, spawn_app_with, TestApp};
use fulfil::faults::FaultSpec;
use fulfil::{Service, Settings};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "test-admin-token";

/// Quick restarts, so the tests heal in milliseconds.
pub(crate) fn quick(s: &mut Settings) {
    s.admin.token = TOKEN.into();
    s.supervision.backoff_min_ms = 5;
    s.supervision.backoff_max_ms = 100;
    s.supervision.window_ms = 2_000;
    s.supervision.max_restarts = 4;
    s.supervision.poison_after = 3;
}

pub(crate) async fn admin(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

async fn health_of(app: &TestApp, service: &str) -> Value {
    let body: Value = app.get("/health/ready").await.json().await.unwrap();
    body["services"][service].clone()
}

async fn wait_for_state(app: &TestApp, service: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health_of(app, service).await;
        if h["state"] == state {
            return h;
        }
        assert!(Instant::now() < deadline, "{service} never became {state}: {h}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Places `n` card orders of one MUG each through restarts, and checks
/// every one ends in delivery exactly once.
async fn orders_flow_through(app: &TestApp, n: usize) {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            app.place_retrying(&order_body(&format!("c{i}"), "MUG", 1, "card"), &format!("key-{i}")).await,
        );
    }
    for (i, id) in ids.iter().enumerate() {
        let view = app.wait_for_status(id, "in_delivery").await;
        assert_eq!(history(&view), ["placed", "paid", "reserved", "in_delivery"], "{id}: each step once");
        app.settle().await;
        let notes: Value = app.get(&format!("/notifications?customer=c{i}")).await.json().await.unwrap();
        assert_eq!(notes["notifications"].as_array().unwrap().len(), 4, "{id}: one notification per change");
    }
    assert_eq!(app.stock("MUG").await, 100 - n as i64, "stock taken once per order");
}

#[tokio::test]
async fn a_panic_in_any_service_is_healed_without_losing_or_repeating_anything() {
    for service in Service::ALL {
        let app = spawn_app_with(quick).await;
        app.add_product("MUG", 1500, 100).await;
        let r = admin(
            &app,
            reqwest::Method::POST,
            &format!("/admin/faults/{}", service.name()),
            Some(json!({"panic_next": 2})),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        orders_flow_through(&app, 6).await;
        let h = health_of(&app, service.name()).await;
        assert!(h["restarts"].as_u64().unwrap() >= 1, "{}: the panic restarted it: {h}", service.name());
        let ready = app.wait_until_ready().await;
        assert_eq!(ready["services"][service.name()]["state"], "running");
        assert!(ready["services"][service.name()]["last_error"].as_str().unwrap().contains("injected panic"));
    }
}

#[tokio::test]
async fn a_request_in_flight_when_its_service_panics_gets_503_not_a_hang() {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 5).await;
    app.node.inject_fault(Service::Order, FaultSpec { panic_next: 1, ..FaultSpec::default() }).unwrap();
    let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
    let problem = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/restarting");
    app.wait_until_ready().await;
    app.settle().await;
    assert_eq!(app.stock("MUG").await, 5, "the failed request changed nothing");
}

#[tokio::test]
async fn a_crash_looping_service_is_marked_failed_with_growing_backoff_and_recovers() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.supervision.backoff_min_ms = 20;
        s.supervision.backoff_max_ms = 160;
        s.supervision.poison_after = 1_000;
    })
    .await;
    app.add_product("MUG", 1500, 5).await;
    app.node
        .inject_fault(Service::Delivery, FaultSpec { panic_next: u32::MAX, ..FaultSpec::default() })
        .unwrap();
    let id = app.place(&order_body("kim", "MUG", 1, "card")).await;
    let failed = wait_for_state(&app, "delivery", "failed").await;
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK, "healing is not stuck");
    let at: Vec<u64> =
        failed["restarted_at"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
    assert!(at.len() >= 5, "{failed}");
    let gaps: Vec<u64> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.last() > gaps.first() && *gaps.last().unwrap() >= 80, "backoff grows: {gaps:?}");
    assert_eq!(failed["backoff_ms"], 160, "past the limit it retries at the maximum backoff");

    app.node.clear_faults(None);
    app.wait_until_ready().await;
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(history(&view), ["placed", "paid", "reserved", "in_delivery"]);
}

#[tokio::test]
async fn a_poison_event_is_set_aside_others_flow_and_a_retry_completes_it() {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 10).await;
    let first = app.place(&order_body("a", "MUG", 1, "card")).await;
    app.wait_for_status(&first, "in_delivery").await;
    let bad =
        crate::dead_letters::place_poisoned(&app, Service::Inventory, &order_body("x", "MUG", 1, "card"))
            .await;
    // The poison order's failures are its own: the next order goes through
    // at once, no 503.
    let after = app.place(&order_body("b", "MUG", 1, "card")).await;
    app.wait_for_status(&after, "in_delivery").await;

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let letters = loop {
        let listed: Value =
            admin(&app, reqwest::Method::GET, "/admin/dead-letters", None).await.json().await.unwrap();
        let letters = listed["dead_letters"].as_array().unwrap().clone();
        if !letters.is_empty() && letters.iter().all(|l| l["attempts"] == 3) {
            break letters;
        }
        assert!(std::time::Instant::now() < deadline, "{listed}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    for l in &letters {
        assert_eq!(l["order_id"], bad.as_str());
        assert_eq!(l["service"], "inventory");
        assert!(l["error"].as_str().unwrap().contains("injected panic"));
    }
    let view: Value = app.get(&format!("/status/{bad}")).await.json().await.unwrap();
    assert_eq!(view["status"], "paid", "stuck where inventory failed");
    assert_eq!(view["needs_attention"].as_array().unwrap().len(), letters.len());
    assert_eq!(app.stock("MUG").await, 8);

    app.node.clear_faults(None);
    for l in &letters {
        let r =
            admin(&app, reqwest::Method::POST, &format!("/admin/dead-letters/{}/retry", l["id"]), None).await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    let view = app.wait_for_status(&bad, "in_delivery").await;
    assert_eq!(view["needs_attention"], json!([]));
    assert_eq!(app.stock("MUG").await, 7);
    let listed: Value =
        admin(&app, reqwest::Method::GET, "/admin/dead-letters", None).await.json().await.unwrap();
    assert_eq!(listed["dead_letters"], json!([]));
}

#[tokio::test]
async fn a_stuck_service_fails_liveness_until_it_answers_again() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.supervision.ping_timeout_ms = 100;
    })
    .await;
    app.add_product("MUG", 1500, 10).await;
    app.node
        .inject_fault(Service::Notification, FaultSpec { latency_ms: 400, ..FaultSpec::default() })
        .unwrap();
    let id = app.place(&order_body("kim", "MUG", 1, "card")).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let stuck = loop {
        let r = app.get("/health/live").await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            break r.json::<Value>().await.unwrap();
        }
        assert!(Instant::now() < deadline, "liveness never noticed the stuck service");
    };
    assert_eq!(stuck["unresponsive"], json!(["notification"]));
    app.node.clear_faults(None);
    app.wait_for_status(&id, "in_delivery").await;
    app.settle().await;
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn injected_failures_refuse_cleanly_and_latency_slows_down() {
    let app = spawn_app_with(quick).await;
    app.add_product("MUG", 1500, 10).await;
    app.node.inject_fault(Service::Payment, FaultSpec { fail_rate: 1.0, ..FaultSpec::default() }).unwrap();
    let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
    let problem = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/service-failed");
    app.node.clear_faults(None);
    app.node
        .inject_fault(Service::Projection, FaultSpec { latency_ms: 150, ..FaultSpec::default() })
        .unwrap();
    let id = app.place(&order_body("kim", "MUG", 1, "card")).await;
    app.wait_for_status(&id, "in_delivery").await;
    let started = Instant::now();
    assert_eq!(app.get(&format!("/status/{id}")).await.status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
    app.settle().await;
    let listing: Value = app.get("/status?customer=kim").await.json().await.unwrap();
    assert_eq!(listing["orders"].as_array().unwrap().len(), 1, "the refused order left nothing behind");
}

#[tokio::test]
async fn the_admin_api_needs_its_token() {
    let disabled = spawn_app().await;
    assert_problem(disabled.get("/admin/dead-letters").await, StatusCode::FORBIDDEN).await;
    let app = spawn_app_with(quick).await;
    let r = app.get("/admin/faults").await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_problem(r, StatusCode::UNAUTHORIZED).await;
    let wrong = app.client.get(app.url("/admin/faults")).bearer_auth("nope").send().await.unwrap();
    assert_problem(wrong, StatusCode::UNAUTHORIZED).await;
    let bad =
        admin(&app, reqwest::Method::POST, "/admin/faults/payment", Some(json!({"fail_rate": 2.0}))).await;
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let unknown =
        admin(&app, reqwest::Method::POST, "/admin/faults/moon", Some(json!({"panic_next": 1}))).await;
    assert_problem(unknown, StatusCode::NOT_FOUND).await;
    let ok =
        admin(&app, reqwest::Method::POST, "/admin/faults/payment", Some(json!({"latency_ms": 5}))).await;
    assert_eq!(ok.json::<Value>().await.unwrap()["payment"]["latency_ms"], 5);
    let cleared = admin(&app, reqwest::Method::DELETE, "/admin/faults", None).await;
    assert_eq!(cleared.json::<Value>().await.unwrap(), json!({}));
}

#[tokio::test]
async fn while_draining_readiness_and_new_requests_answer_503() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    app.node.drain();
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "draining");
    let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
    assert!(r.headers().contains_key("retry-after"));
    let problem = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/shutting-down");
    assert_eq!(app.node.health().log_head, 0, "nothing was written");
}

/// A failover leader's lease that ran out before it renewed it: another
/// node may lead and have taken writes this one never saw, so it answers
/// nothing from its store (a read would be stale) until a renewal moves
/// the time on.
#[tokio::test]
async fn once_the_lease_to_lead_runs_out_reads_and_readiness_answer_503_until_it_is_renewed() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let placed = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
    let id = placed.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    // Done with the order, so that nothing writes while the lease lapses.
    app.settle().await;
    let now = std::time::Instant::now();
    app.node.lead_until(now + std::time::Duration::from_secs(60));
    assert_eq!(app.get(&format!("/status/{id}")).await.status(), StatusCode::OK);

    app.node.lead_until(now);
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "lease_lapsed");
    assert_eq!(app.get("/health/live").await.status(), StatusCode::OK, "it is not stuck");
    let read = app.get(&format!("/status/{id}")).await;
    assert!(read.headers().contains_key("retry-after"));
    assert_eq!(assert_problem(read, StatusCode::SERVICE_UNAVAILABLE).await["type"], "/problems/no-leader");
    let head = app.node.health().log_head;
    let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(app.node.health().log_head, head, "nothing was written");

    app.node.lead_until(std::time::Instant::now() + std::time::Duration::from_secs(60));
    assert_eq!(app.get(&format!("/status/{id}")).await.status(), StatusCode::OK);
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK);
}
