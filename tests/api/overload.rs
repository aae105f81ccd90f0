//! Overload and fault isolation: bounded mailboxes, rate limits, the
//! payment breaker and its fallbacks, a stopped or slow asynchronous side.

use crate::helpers::{assert_problem, history, order_body, spawn_app, spawn_app_with, TestApp};
use fulfil::domain::PaymentFallback;
use fulfil::faults::FaultSpec;
use fulfil::{Service, Settings};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

/// The card gateway fails every call.
pub(crate) fn gateway_down(app: &TestApp) {
    app.node.inject_fault_named("gateway", FaultSpec { fail_rate: 1.0, ..FaultSpec::default() }).unwrap();
}

pub(crate) fn quick_payments(s: &mut Settings) {
    s.payment.retry_min_ms = 20;
    s.payment.retry_max_ms = 100;
    s.payment.breaker.open_ms = 200;
}

/// [`quick_payments`], with the shop refusing card orders it cannot charge.
pub(crate) fn quick_refusing_payments(s: &mut Settings) {
    quick_payments(s);
    s.workflows.get_mut("shop").unwrap().payment_fallback = PaymentFallback::Refuse;
}

#[tokio::test]
async fn a_service_that_stays_full_answers_503_with_retry_after_and_nothing_hangs() {
    let app = spawn_app_with(|s| {
        s.mailbox.inventory = 1;
        s.mailbox.wait_ms = 20;
    })
    .await;
    app.add_product("MUG", 1500, 5).await;
    app.node.inject_fault(Service::Inventory, FaultSpec { latency_ms: 300, ..FaultSpec::default() }).unwrap();
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..6).map(|_| app.get("/products/MUG"))).await;
    assert!(started.elapsed() < Duration::from_secs(3), "nothing waits past its bound");
    let mut busy = 0;
    for r in answers {
        match r.status() {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(r.headers()["retry-after"], "1");
                assert_eq!(
                    assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await["type"],
                    "/problems/busy"
                );
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy >= 1, "a full service pushes back");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("fulfil_mailbox_rejections_total{service=\"inventory\"}"), "{metrics}");
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    // Behind a trusted proxy (here: the test itself), X-Client-Id names the client.
    let app = spawn_app_with(|s| {
        s.http.rate_per_client = 1;
        s.http.burst_per_client = 2;
        s.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let get =
        |client: &'static str| app.client.get(app.url("/products/NOPE")).header("X-Client-Id", client).send();
    assert_eq!(get("a").await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(get("a").await.unwrap().status(), StatusCode::NOT_FOUND);
    let limited = get("a").await.unwrap();
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(
        assert_problem(limited, StatusCode::TOO_MANY_REQUESTS).await["type"],
        "/problems/rate-limited"
    );
    assert_eq!(get("b").await.unwrap().status(), StatusCode::NOT_FOUND, "another client has its own budget");
    assert_eq!(app.get("/health/ready").await.status(), StatusCode::OK, "health is never limited");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("fulfil_rate_limited_total{limit=\"http\"} 1"), "{metrics}");
}

/// OWASP API4: a client that names itself anew on every request is still
/// one client, unless a trusted proxy says otherwise.
#[tokio::test]
async fn a_client_cannot_escape_its_limit_by_renaming_itself() {
    let app = spawn_app_with(|s| {
        s.http.rate_per_client = 1;
        s.http.burst_per_client = 5;
    })
    .await;
    let mut limited = 0;
    for n in 0..20 {
        let r = app.client.get(app.url("/products/NOPE")).header("X-Client-Id", format!("fresh-{n}")).send();
        let r = r.await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited >= 14, "only the burst got through: {limited} of 20 limited");
}

#[tokio::test]
async fn with_the_gateway_down_and_defer_orders_are_taken_and_paid_when_it_recovers() {
    let app = spawn_app_with(quick_payments).await;
    app.add_product("MUG", 1500, 10).await;
    gateway_down(&app);
    let r = app.post_json("/orders", &order_body("kim", "MUG", 2, "card")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "payment_pending", "accepted around the clock");
    let id = body["id"].as_str().unwrap().to_owned();
    let declined = app
        .place(&{
            let mut b = order_body("lee", "MUG", 1, "card");
            b["card"] = "4000 0000 0000 0002".into();
            b
        })
        .await;
    assert_eq!(app.stock("MUG").await, 10, "no stock before payment");

    app.node.clear_faults(None);
    let view = app.wait_for_status(&id, "in_delivery").await;
    assert_eq!(history(&view), ["placed", "payment_pending", "paid", "reserved", "in_delivery"]);
    assert_eq!(view["payment"]["state"], "captured");
    let view = app.wait_for_status(&declined, "canceled").await;
    assert_eq!(view["reason"], "payment_declined", "a deferred card the issuer declines cancels the order");
    app.settle().await;
    assert_eq!(app.stock("MUG").await, 8);
    let payment = app.node.payment(&id).await.unwrap().unwrap();
    assert!(!payment.card_on_file, "the card is not kept once the payment is taken");
}

#[tokio::test]
async fn with_refuse_an_unavailable_payment_is_a_503_pay_a_little_later() {
    let app = spawn_app_with(quick_refusing_payments).await;
    app.add_product("MUG", 1500, 10).await;
    gateway_down(&app);
    let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
    assert!(r.headers().contains_key("retry-after"));
    let problem = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/payment-unavailable");
    app.settle().await;
    let listing: Value = app.get("/status?customer=kim").await.json().await.unwrap();
    assert_eq!(listing["orders"].as_array().unwrap().len(), 0, "a refused order leaves nothing behind");
}

#[tokio::test]
async fn the_breaker_opens_on_gateway_failures_shows_in_health_and_closes_after_recovery() {
    let app = spawn_app_with(quick_refusing_payments).await;
    app.add_product("MUG", 1500, 100).await;
    gateway_down(&app);
    for _ in 0..5 {
        let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["breakers"]["card_gateway"], "open");
    let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
    let problem = assert_problem(r, StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(problem["detail"].as_str().unwrap().contains("breaker"), "refused at once: {problem}");

    app.node.clear_faults(None);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = app.post_json("/orders", &order_body("kim", "MUG", 1, "card")).await;
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert!(Instant::now() < deadline, "the breaker never let a probe through");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..3 {
        app.place(&order_body("kim", "MUG", 1, "card")).await;
    }
    let ready: Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["breakers"]["card_gateway"], "closed");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for to in ["open", "half_open", "closed"] {
        let line = format!("fulfil_breaker_transitions_total{{breaker=\"card_gateway\",to=\"{to}\"}}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

#[tokio::test]
async fn with_delivery_stopped_orders_are_accepted_and_paid_then_caught_up_once_in_order() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 100).await;
    app.node.pause(Service::Delivery).await.unwrap();
    app.node
        .inject_fault(Service::Notification, FaultSpec { latency_ms: 50, ..FaultSpec::default() })
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.place(&order_body(&format!("c{i}"), "MUG", 1, "card")).await);
    }
    for id in &ids {
        app.wait_for_status(id, "reserved").await;
    }
    let lagging: Value = app.get("/health/ready").await.json().await.unwrap();
    assert!(lagging["services"]["delivery"]["lag"].as_u64().unwrap() > 0, "{lagging}");

    app.node.resume(Service::Delivery).await.unwrap();
    app.node.clear_faults(None);
    for id in &ids {
        let view = app.wait_for_status(id, "in_delivery").await;
        assert_eq!(history(&view), ["placed", "paid", "reserved", "in_delivery"], "{id}: once each");
    }
    app.settle().await;
    let started: Vec<String> = futures_util::future::join_all(ids.iter().map(|id| app.node.delivery(id)))
        .await
        .into_iter()
        .map(|d| d.unwrap().id)
        .collect();
    assert_eq!(started, ids.iter().map(|id| format!("dlv-{id}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format() {
    let app = spawn_app().await;
    app.add_product("MUG", 1500, 5).await;
    let id = app.place(&order_body("kim", "MUG", 1, "card")).await;
    app.wait_for_status(&id, "in_delivery").await;
    app.settle().await;
    let r = app.get("/metrics").await;
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for expected in [
        "fulfil_http_requests_total{method=\"POST\",route=\"/orders\",status=\"201\"} 1",
        "fulfil_http_request_duration_seconds_bucket{method=\"POST\",route=\"/orders\"",
        "fulfil_orders_total{status=\"in_delivery\"} 1",
        "fulfil_events_appended_total",
        "fulfil_events_consumed_total{service=\"projection\"}",
        "fulfil_consumer_lag_events{service=\"delivery\"} 0",
        "fulfil_mailbox_wait_seconds_bucket{service=\"order\"",
        "fulfil_breaker_state{breaker=\"card_gateway\",state=\"closed\"} 1",
        "fulfil_service_state{service=\"order\",state=\"running\"} 1",
        "fulfil_payments_total{outcome=\"approved\"} 1",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    // The store's writer counters: the product, the placement and the
    // consumers' batches were committed, each with at least one key.
    let value = |name: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let commits = value("fulfil_store_commits_total");
    assert!(commits >= 3.0, "{commits} commits");
    let keys = value("fulfil_store_keys_written_total");
    assert!(keys >= commits);
    assert!(value("fulfil_store_writer_busy_seconds_total") > 0.0);
    // Where the keys went, by table: the whole, and the order's record.
    let by_table: f64 = (text.lines().filter(|l| l.starts_with("fulfil_store_keys_by_table_total{")))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(by_table, keys, "every key is counted under its table");
    assert!(value("fulfil_store_keys_by_table_total{table=\"orders\"}") >= 1.0);
    assert!(value("fulfil_store_keys_by_table_total{table=\"(log)\"}") >= 1.0);
    // How long the writes held the lock: every one of them, in buckets that
    // grow to the whole count.
    assert_eq!(value("fulfil_store_write_hold_seconds_count"), commits);
    assert!(value("fulfil_store_write_hold_seconds_sum") > 0.0);
    let under_10s = value("fulfil_store_write_hold_seconds_bucket{le=\"10\"}");
    assert_eq!(under_10s, commits, "no write here held the lock 10 s");
    assert!(value("fulfil_store_write_hold_seconds_bucket{le=\"0.0005\"}") <= under_10s);
}
