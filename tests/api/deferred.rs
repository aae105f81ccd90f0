//! Deferred card payments drain as fast as the gateway allows, their
//! backlog is visible, and a bounded queue pushes back.

use crate::helpers::{assert_problem, order_body, spawn_app_with};
use crate::overload::{gateway_down, quick_payments};
use fulfil::domain::order::ItemRequest;
use fulfil::domain::OrderRequest;
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

fn card_order(n: usize) -> OrderRequest {
    OrderRequest {
        customer: format!("c{}", n % 100),
        items: vec![ItemRequest { sku: "MUG".into(), qty: 1 }],
        address: "Seoul".into(),
        payment: "card".into(),
        card: Some("4111111111111111".into()),
        ..OrderRequest::default()
    }
}

async fn backlog(app: &crate::helpers::TestApp) -> u64 {
    let health: Value = app.get("/health/ready").await.json().await.unwrap();
    health["services"]["payment"]["backlog"].as_u64().expect("the payment service reports its backlog")
}

/// 5,000 payments deferred through an outage settle within 15 s of the
/// gateway's recovery at 500 calls a second: the backlog drains at about
/// backlog ÷ rate, not at a fixed trickle.
#[tokio::test]
async fn five_thousand_deferred_payments_settle_at_the_gateways_rate_after_it_recovers() {
    const N: usize = 5_000;
    let app = spawn_app_with(|s| {
        quick_payments(s);
        s.http.rate_per_client = 0;
        s.payment.gateway_rate = 500;
        s.payment.gateway_burst = 100;
    })
    .await;
    app.add_product("MUG", 1500, 1_000_000).await;
    gateway_down(&app);
    for chunk in (0..N).collect::<Vec<_>>().chunks(100) {
        let placed = chunk.iter().map(|n| app.node.place_order(card_order(*n), None));
        for receipt in futures_util::future::join_all(placed).await {
            assert_eq!(receipt.unwrap().status.as_str(), "payment_pending");
        }
    }
    assert_eq!(backlog(&app).await, N as u64, "every payment waits, and readiness says how many");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(&format!("fulfil_payments_deferred {N}")), "the gauge shows it too");

    app.node.clear_faults(None);
    let recovered = Instant::now();
    while backlog(&app).await > 0 {
        assert!(recovered.elapsed() < Duration::from_secs(15), "{} left after 15 s", backlog(&app).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained = recovered.elapsed();
    println!("{N} deferred payments settled in {drained:?} at a gateway rate of 500/s");
    app.settle().await;
    let page: Value =
        app.get("/status?workflow=shop&status=payment_pending&limit=1").await.json().await.unwrap();
    assert_eq!(page["orders"], serde_json::json!([]), "none is left pending");
}

/// Past `payment.max_deferred`, a new card order is told to pay a little
/// later (503, Retry-After) instead of growing the queue; bank transfers go on.
#[tokio::test]
async fn a_full_deferred_queue_pushes_back_on_new_card_orders() {
    let app = spawn_app_with(|s| {
        quick_payments(s);
        s.payment.max_deferred = 3;
    })
    .await;
    app.add_product("MUG", 1500, 100).await;
    gateway_down(&app);
    for n in 0..3 {
        let r = app.post_json("/orders", &order_body(&format!("c{n}"), "MUG", 1, "card")).await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    assert_eq!(backlog(&app).await, 3);
    let full = app.post_json("/orders", &order_body("c9", "MUG", 1, "card")).await;
    assert!(full.headers().contains_key("retry-after"));
    let problem = assert_problem(full, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(problem["type"], "/problems/payment-unavailable");
    assert!(problem["detail"].as_str().unwrap().contains("max_deferred"), "{problem}");
    let bank = app.post_json("/orders", &order_body("c9", "MUG", 1, "bank_transfer")).await;
    assert_eq!(bank.status(), StatusCode::CREATED);
    assert_eq!(backlog(&app).await, 3, "the refused order left nothing behind");
}
