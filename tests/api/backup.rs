//! A consistent backup of a running node, under load; a check of it; a
//! node started from it that has every order acknowledged before it.

use crate::helpers::{order_body, spawn_app_at, spawn_app_with, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "backup-test-token";

async fn admin_post(app: &TestApp, path: &str, body: &Value) -> reqwest::Response {
    let r = app.client.post(app.url(path)).bearer_auth(TOKEN).json(body).send().await;
    r.expect("request sent")
}

/// Clients placing orders until `stop`; the ids acknowledged, in order.
fn drive(
    app: &TestApp,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<String>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let tasks = (0..8)
        .map(|c| {
            let (client, url, acked, stop) =
                (app.client.clone(), app.url("/orders"), acked.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let body = order_body(&format!("c{c}"), "MUG", 1, "bank_transfer");
                    let r = client.post(&url).json(&body).send().await.unwrap();
                    if r.status() == StatusCode::CREATED {
                        let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    (acked, tasks)
}

#[tokio::test]
async fn a_backup_under_load_restores_every_order_acknowledged_before_it() {
    let app = spawn_app_with(|s| {
        s.admin.token = TOKEN.into();
        s.http.rate_per_client = 0;
    })
    .await;
    app.add_product("MUG", 1500, 1_000_000).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, tasks) = drive(&app, stop.clone());
    while acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let before: Vec<String> = acked.lock().unwrap().clone();
    let backups = tempfile::tempdir().unwrap();
    let copy = backups.path().join("copy");
    let r = admin_post(&app, "/admin/backup", &json!({ "to": copy })).await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert!(report["head"].as_u64().unwrap() >= before.len() as u64, "{report}");
    while acked.lock().unwrap().len() < before.len() + 50 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    futures_util::future::join_all(tasks).await;

    let again = admin_post(&app, "/admin/backup", &json!({ "to": copy })).await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY, "a backup never overwrites");

    let checked = fulfil::node::check::check(&copy).unwrap();
    assert!(checked.is_ok(), "{:?}", checked.problems);

    let data = backups.path().join("restored");
    let restored = fulfil::store::restore(&copy, &data).unwrap();
    assert_eq!(restored.head, report["head"].as_u64().unwrap());
    let node = spawn_app_at(&data).await;
    for id in &before {
        let order = node.node.order(id).await;
        assert!(order.is_ok(), "{id}, acknowledged before the backup, is missing: {order:?}");
    }
    // The restored node goes on numbering after every order it holds.
    let next = node.place(&order_body("new", "MUG", 1, "bank_transfer")).await;
    assert!(!acked.lock().unwrap().contains(&next), "{next} was handed out before");
}

#[tokio::test]
async fn restore_refuses_a_directory_in_use_and_a_backup_needs_the_admin_token() {
    let app = spawn_app_with(|s| s.admin.token = TOKEN.into()).await;
    let dir = tempfile::tempdir().unwrap();
    let denied = app.post_json("/admin/backup", &json!({ "to": dir.path().join("x") })).await;
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    let lower = app
        .client
        .post(app.url("/admin/backup"))
        .header("authorization", format!("bearer {TOKEN}"))
        .json(&json!({ "to": dir.path().join("x") }))
        .send()
        .await
        .unwrap();
    assert_eq!(lower.status(), StatusCode::OK, "the scheme is case-insensitive");
    std::fs::write(dir.path().join("y"), b"something").unwrap();
    let refused = fulfil::store::restore(&dir.path().join("x"), dir.path());
    assert!(refused.unwrap_err().to_string().contains("not empty"));
}
