//! A bad order hurts only itself, on the real binary: a poison order is
//! injected into each service in turn while 8 clients place and read
//! orders. The others get no 503 and no error, their orders reach
//! `in_delivery`, and the poison order ends with dead letters and
//! `needs_attention`, then completes once the fault is cleared and its
//! letters retried. Each phase's p99 latency is printed as a ratio to a
//! run without a poison order in the same test (figures, not a timed
//! assertion: the machines are shared).

use crate::helpers::{add_products, client, settle, Proc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TOKEN: &str = "isolation-admin";
const CLIENTS: usize = 8;
const ORDERS_PER_CLIENT: usize = 15;
const SERVICES: [&str; 6] = ["order", "payment", "inventory", "delivery", "notification", "projection"];

fn card_order(customer: &str) -> Value {
    json!({"customer": customer, "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul",
           "payment": "card", "card": "4111111111111111"})
}

async fn admin(address: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut r = client().request(method, format!("{address}{path}")).bearer_auth(TOKEN);
    if let Some(body) = body {
        r = r.json(&body);
    }
    r.send().await.unwrap()
}

/// 8 clients placing card orders and reading each back; their orders'
/// ids, every answer that was not a success, and the placing latencies.
async fn clients(address: &str, phase: &str) -> (Vec<String>, Vec<String>, Vec<Duration>) {
    let runs = (0..CLIENTS).map(|c| {
        let address = address.to_owned();
        let customer = format!("{phase}-c{c}");
        async move {
            let http = client();
            let (mut ids, mut errors, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..ORDERS_PER_CLIENT {
                let started = Instant::now();
                let r =
                    http.post(format!("{address}/orders")).json(&card_order(&customer)).send().await.unwrap();
                latencies.push(started.elapsed());
                if r.status() != StatusCode::CREATED {
                    errors.push(format!("placing: {} {}", r.status(), r.text().await.unwrap_or_default()));
                    continue;
                }
                let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                let read = http.get(format!("{address}/orders/{id}")).send().await.unwrap();
                if read.status() != StatusCode::OK {
                    errors.push(format!("reading {id}: {}", read.status()));
                }
                let list = http.get(format!("{address}/status?customer={customer}")).send().await.unwrap();
                if list.status() != StatusCode::OK {
                    errors.push(format!("listing: {}", list.status()));
                }
                ids.push(id);
            }
            (ids, errors, latencies)
        }
    });
    let mut all = (Vec::new(), Vec::new(), Vec::new());
    for (ids, errors, latencies) in futures_util::future::join_all(runs).await {
        all.0.extend(ids);
        all.1.extend(errors);
        all.2.extend(latencies);
    }
    all
}

fn p99(latencies: &mut [Duration]) -> Duration {
    latencies.sort();
    latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
}

async fn status_of(address: &str, id: &str) -> Value {
    client().get(format!("{address}/status/{id}")).send().await.unwrap().json().await.unwrap_or(Value::Null)
}

async fn until_in_delivery(address: &str, ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for id in ids {
        loop {
            let view = status_of(address, id).await;
            if view["status"] == "in_delivery" {
                break;
            }
            assert!(Instant::now() < deadline, "{id} did not reach in_delivery: {view}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Places an order that `service` fails on: paused while it is placed, the
/// fault aimed at its id, resumed.
async fn poison(address: &str, service: &str) -> String {
    let pause =
        admin(address, reqwest::Method::POST, &format!("/admin/services/{service}/pause"), None).await;
    assert_eq!(pause.status(), StatusCode::OK);
    let r = client().post(format!("{address}/orders")).json(&card_order("poisoned")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let fault = json!({"panic_on_order": id});
    let r = admin(address, reqwest::Method::POST, &format!("/admin/faults/{service}"), Some(fault)).await;
    assert_eq!(r.status(), StatusCode::OK);
    admin(address, reqwest::Method::POST, &format!("/admin/services/{service}/resume"), None).await;
    id
}

/// The poison order's dead letters, once its retries are used up.
async fn dead_letters_of(address: &str, id: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed: Value =
            admin(address, reqwest::Method::GET, "/admin/dead-letters", None).await.json().await.unwrap();
        let mine: Vec<Value> = listed["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["order_id"] == id)
            .cloned()
            .collect();
        if !mine.is_empty() && mine.iter().all(|l| l["attempts"] == 3) {
            return mine;
        }
        assert!(Instant::now() < deadline, "no dead letter for {id}: {listed}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_poison_order_in_any_service_costs_the_other_customers_nothing() {
    let data = tempfile::tempdir().unwrap();
    let env = [("FULFIL_ADMIN__TOKEN", TOKEN), ("FULFIL_SUPERVISION__BACKOFF_MIN_MS", "20")];
    let node = Proc::start_with(data.path(), &env);
    let address = node.address.clone();
    add_products(&address, &[("MUG", 1_000_000)]).await;

    let (ids, errors, mut baseline) = clients(&address, "baseline").await;
    assert!(errors.is_empty(), "baseline: {errors:?}");
    until_in_delivery(&address, &ids).await;
    let baseline = p99(&mut baseline);
    let mut report = vec![format!("{:12} p99 {:>7.1?}", "no poison", baseline)];

    for service in SERVICES {
        let poisoned = poison(&address, service).await;
        let (ids, errors, mut latencies) = clients(&address, service).await;
        assert!(errors.is_empty(), "{service}: the others got errors: {errors:?}");
        until_in_delivery(&address, &ids).await;
        let p99 = p99(&mut latencies);
        report.push(format!(
            "{service:12} p99 {p99:>7.1?}  {:.2}x",
            p99.as_secs_f64() / baseline.as_secs_f64()
        ));

        let letters = dead_letters_of(&address, &poisoned).await;
        assert!(letters.iter().all(|l| l["service"] == service), "{letters:?}");
        if service != "projection" {
            let view = status_of(&address, &poisoned).await;
            assert_eq!(
                view["needs_attention"].as_array().map(Vec::len),
                Some(letters.len()),
                "{service}: {view}"
            );
        }
        let health: Value =
            client().get(format!("{address}/health/ready")).send().await.unwrap().json().await.unwrap();
        assert_eq!(health["services"][service]["restarts"], 0, "{service}: no restart for one order");
        admin(&address, reqwest::Method::DELETE, "/admin/faults", None).await;
        for letter in &letters {
            let path = format!("/admin/dead-letters/{}/retry", letter["id"]);
            assert_eq!(admin(&address, reqwest::Method::POST, &path, None).await.status(), StatusCode::OK);
        }
        until_in_delivery(&address, &[poisoned]).await;
    }
    settle(&address).await;
    println!("{}", report.join("\n"));
}
