//! The real `fulfil` binary: configuration from the environment, where it
//! says it listens, readiness during a drain, and a clean exit on SIGTERM.

use crate::helpers::{add_products, client, Proc};
use reqwest::StatusCode;
use std::time::Duration;

#[tokio::test]
async fn the_binary_takes_env_overrides_drains_on_sigterm_and_exits_0() {
    let data = tempfile::tempdir().unwrap();
    // A drain long enough to watch; signal delivery itself is asynchronous.
    let node = Proc::start_with(data.path(), &[("FULFIL_SHUTDOWN__DRAIN_MS", "1500")]);
    let ready = client().get(format!("{}/health/ready", node.address)).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    add_products(&node.address, &[("MUG", 3)]).await;

    node.signal("TERM");
    // Readiness turns 503 as soon as the signal is handled, well within the drain.
    let deadline = std::time::Instant::now() + Duration::from_millis(1000);
    loop {
        let ready = client().get(format!("{}/health/ready", node.address)).send().await.unwrap();
        if ready.status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "readiness never turned 503");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let refused = client().get(format!("{}/products/MUG", node.address)).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    let status = node.wait(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");

    // The acknowledged product is there when the node comes back.
    let node = Proc::start(data.path());
    let product: serde_json::Value =
        client().get(format!("{}/products/MUG", node.address)).send().await.unwrap().json().await.unwrap();
    assert_eq!(product["stock"], 3);

    // SIGINT (Ctrl-C) shuts down just as cleanly.
    node.signal("INT");
    assert!(node.wait(Duration::from_secs(10)).await.success());
}

#[tokio::test]
async fn a_mistyped_setting_stops_the_start_with_a_message_that_names_it() {
    let data = tempfile::tempdir().unwrap();
    let (status, stderr) = Proc::refused(data.path(), &[("FULFIL_ADMIN_TOKEN", "secret")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("FULFIL_ADMIN_TOKEN") && stderr.contains("FULFIL_ADMIN__TOKEN"), "{stderr}");
    assert!(!stderr.contains("secret"), "a value is never logged: {stderr}");
    let (status, stderr) = Proc::refused(data.path(), &[("FULFIL_HTTP__BIND", "127.0.0.1:99999")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("http.bind") && stderr.contains("not a port"), "{stderr}");
}

/// `[log] format = "json"`: every line is one JSON object, and every line
/// the services write about an order carries its id, in its fields or in
/// a span's, so that a log collector can follow one order.
#[tokio::test]
async fn json_logs_are_one_object_a_line_and_each_names_its_order() {
    let data = tempfile::tempdir().unwrap();
    let mut node = Proc::start_with(data.path(), &[("FULFIL_LOG__FORMAT", "json")]);
    let log = node.log();
    add_products(&node.address, &[("MUG", 3)]).await;
    let body = serde_json::json!({"customer": "kim", "items": [{"sku": "MUG", "qty": 1}],
        "address": "Seoul", "payment": "bank_transfer"});
    let placed: serde_json::Value = client()
        .post(format!("{}/orders", node.address))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = placed["id"].as_str().unwrap().to_owned();
    let confirm = client().post(format!("{}/payments/{id}/confirm", node.address)).send().await.unwrap();
    assert_eq!(confirm.status(), StatusCode::OK);
    crate::helpers::settle(&node.address).await;
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());

    let lines: Vec<serde_json::Value> = log
        .map(|l| serde_json::from_str(&l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["timestamp"].is_string() && l["fields"]["message"].is_string()));
    let services: Vec<&serde_json::Value> = (lines.iter())
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("fulfil::actors") || t == "fulfil::notification")
        })
        .collect();
    assert!(services.len() >= 4, "the placement and the notifications: {services:?}");
    for line in services {
        assert!(line.to_string().contains(&id), "a service's line without its order: {line}");
    }
}

/// `fulfil probe`, the container's health check: 0 while the node is
/// ready, 1 while it drains and once it is gone.
#[tokio::test]
async fn the_probe_says_whether_the_node_is_ready() {
    let probe = |url: String| {
        let out =
            std::process::Command::new(env!("CARGO_BIN_EXE_fulfil")).args(["probe", "--url", &url]).output();
        out.unwrap()
    };
    let data = tempfile::tempdir().unwrap();
    let node = Proc::start_with(data.path(), &[("FULFIL_SHUTDOWN__DRAIN_MS", "1500")]);
    let address = node.address.clone();
    let ready = tokio::task::spawn_blocking({
        let address = address.clone();
        move || probe(address)
    });
    assert!(ready.await.unwrap().status.success());
    node.signal("TERM");
    // Readiness turns 503 as soon as the signal is handled, within the drain.
    let deadline = std::time::Instant::now() + Duration::from_millis(1000);
    loop {
        let draining = tokio::task::spawn_blocking({
            let address = address.clone();
            move || probe(address)
        });
        let out = draining.await.unwrap();
        if out.status.code() == Some(1) {
            assert!(String::from_utf8_lossy(&out.stderr).contains("503"), "{out:?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the probe never saw the drain");
    }
    assert!(node.wait(Duration::from_secs(10)).await.success());
    let gone = tokio::task::spawn_blocking(move || probe(address)).await.unwrap();
    assert_eq!(gone.status.code(), Some(1), "nobody answers");
}
