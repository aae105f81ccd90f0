//! Webhook deliveries through `kill -9`: the outbox is written with each
//! notification, so after a crash every notification of every acknowledged
//! order reaches the receiver, and what the receiver had acknowledged
//! before the kill comes again at most within the at-least-once window
//! (the one delivery in flight).

use crate::helpers::{add_products, client, settle, Proc};
use actix_web::{web, App, HttpResponse, HttpServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Delivery ids as they arrived (each acknowledged with 200).
pub type Received = Arc<Mutex<Vec<String>>>;

/// A webhook receiver on a port of its own: its URL, and the delivery ids
/// it got.
pub async fn receiver() -> (String, Received) {
    receiver_keeping(|body| body["id"].as_str().unwrap().to_owned()).await
}

/// A webhook receiver on a port of its own: its URL, and what `keep` took
/// of each delivery it got.
pub async fn receiver_keeping(keep: fn(&Value) -> String) -> (String, Received) {
    let got: Received = Arc::default();
    let state = got.clone();
    let server = HttpServer::new(move || {
        let got = state.clone();
        App::new().route(
            "/hook",
            web::post().to(move |body: web::Json<Value>| {
                let got = got.clone();
                async move {
                    got.lock().unwrap().push(keep(&body));
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}/hook", server.addrs()[0]);
    tokio::spawn(server.run());
    (url, got)
}

/// Waits until the receiver got `expected` distinct deliveries (20 s at
/// most).
pub async fn until_delivered(got: &Received, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let distinct: std::collections::HashSet<String> = got.lock().unwrap().iter().cloned().collect();
        if distinct.len() >= expected {
            return;
        }
        assert!(Instant::now() < deadline, "{} of {expected} notifications delivered", distinct.len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_kill_mid_delivery_loses_no_delivery_and_repeats_only_the_one_in_flight() {
    let data = tempfile::tempdir().unwrap();
    let env = [("FULFIL_WEBHOOKS__TICK_MS", "5")];
    let (url, got) = receiver().await;
    let node = Proc::start_with(data.path(), &env);
    add_products(&node.address, &[("MUG", 100_000)]).await;
    let r = client().post(format!("{}/subscriptions", node.address)).json(&json!({"url": url})).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::CREATED);

    // Place orders, and kill the node while their deliveries are under way.
    let http = client();
    let mut acked = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(400) {
        let body = json!({"customer": "kim", "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul", "payment": "bank_transfer"});
        let r = http.post(format!("{}/orders", node.address)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        acked.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    node.signal("KILL");
    let _ = node.wait(Duration::from_secs(5)).await;
    let before_restart = got.lock().unwrap().len();

    let node = Proc::start_with(data.path(), &env);
    settle(&node.address).await;
    // Each acknowledged bank-transfer order: placed, then payment_pending.
    let expected = acked.len() * 2;
    until_delivered(&got, expected).await;
    let got = got.lock().unwrap();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in got.iter() {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let repeated = counts.values().filter(|n| **n > 1).count();
    assert!(repeated <= 1, "only the delivery in flight at the kill may come twice: {repeated} repeated");
    println!(
        "{} orders, {expected} notifications: {before_restart} delivered before the kill, {} deliveries in all, {repeated} repeated",
        acked.len(),
        got.len()
    );
}
