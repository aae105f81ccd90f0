//! No card number at rest: orders paid by card at once, deferred while the
//! gateway is down and settled later, and replayed under their idempotency
//! keys, leave no card number in any file of the data directory.

use crate::helpers::{spawn_with, test_settings};
use crate::overload::{gateway_down, quick_payments};
use reqwest::StatusCode;
use serde_json::{json, Value};

const CARDS: [&str; 4] = ["4111111111111111", "5500005555555559", "4012888888881881", "4222222222222220"];

fn card_order(card: &str) -> Value {
    json!({"customer": "kim", "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul", "payment": "card", "card": card})
}

/// Every byte of every file under `dir`.
fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            bytes.extend(all_bytes(&path));
        } else {
            bytes.extend(std::fs::read(&path).unwrap());
        }
    }
    bytes
}

#[tokio::test]
async fn no_card_number_reaches_any_file_of_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_settings(dir.path());
    quick_payments(&mut settings);
    let app = spawn_with(settings).await;
    app.add_product("MUG", 1500, 20).await;
    let place = |card: &'static str, key: &'static str| {
        let r =
            app.client.post(app.url("/orders")).header("Idempotency-Key", key).json(&card_order(card)).send();
        async move { r.await.unwrap() }
    };
    let paid = place(CARDS[0], "k0").await;
    assert_eq!(paid.status(), StatusCode::CREATED);
    gateway_down(&app);
    let deferred: Value = place(CARDS[1], "k1").await.json().await.unwrap();
    assert_eq!(deferred["status"], "payment_pending");
    app.node.clear_faults(None);
    let settled = deferred["id"].as_str().unwrap().to_owned();
    app.wait_for_status(&settled, "in_delivery").await;
    let replayed = place(CARDS[0], "k0").await;
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    place(CARDS[2], "k2").await;
    gateway_down(&app);
    let waiting: Value = place(CARDS[3], "k3").await.json().await.unwrap();
    assert_eq!(waiting["status"], "payment_pending", "a deferred payment still waits at the end");
    app.settle().await;
    app.stop().await;

    let bytes = all_bytes(dir.path());
    assert!(bytes.len() > 10_000, "the store is there: {} bytes", bytes.len());
    let text = String::from_utf8_lossy(&bytes);
    for card in CARDS {
        assert!(!text.contains(card), "card {card} is in the data directory");
    }
}
