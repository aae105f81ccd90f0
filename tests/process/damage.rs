//! A damaged store is refused: the node exits non-zero with a message that
//! names the data directory, what is wrong and what to do, and no panic
//! text; it never serves a store with acknowledged orders missing.

use crate::helpers::{add_products, client, Proc};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// A stopped node's data directory holding 40 acknowledged orders, and
/// their ids.
async fn store_with_orders() -> (tempfile::TempDir, Vec<String>) {
    let data = tempfile::tempdir().unwrap();
    let node = Proc::start(data.path());
    add_products(&node.address, &[("MUG", 1000)]).await;
    let mut ids = Vec::new();
    for n in 0..40 {
        let body = json!({"customer": format!("c{n}"), "items": [{"sku": "MUG", "qty": 1}],
                          "address": "Seoul", "payment": "bank_transfer"});
        let r = client().post(format!("{}/orders", node.address)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        ids.push(r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());
    (data, ids)
}

fn truncate(file: &Path, keep: impl Fn(u64) -> u64) {
    let len = std::fs::metadata(file).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(file).unwrap().set_len(keep(len)).unwrap();
}

fn assert_refused(data: &Path, case: &str) {
    let (status, stderr) = Proc::refused(data, &[]);
    assert!(!status.success(), "{case}: the node started on a damaged store: {stderr}");
    let dir = std::path::absolute(data).unwrap().display().to_string();
    assert!(stderr.contains(&dir), "{case}: the message names the data directory: {stderr}");
    assert!(stderr.contains("cannot be trusted") && stderr.contains("fulfil restore"), "{case}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: no panic text: {stderr}");
}

#[tokio::test]
async fn a_store_whose_files_are_cut_replaced_or_gone_is_refused() {
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 3] = [
        ("db truncated to zero", |d| truncate(&d.join("db"), |_| 0)),
        ("db replaced by text", |d| std::fs::write(d.join("db"), b"abc").unwrap()),
        ("db deleted", |d| std::fs::remove_file(d.join("db")).unwrap()),
    ];
    for (case, damage) in cases {
        let (data, _) = store_with_orders().await;
        damage(data.path());
        assert_refused(data.path(), case);
    }
}

/// A db file cut in half: sled recovers the writes before the cut. When
/// the log lost events the marker knew of, the node refuses. When the log
/// is whole and only later writes are gone (what the services wrote behind
/// and committed at shutdown, whose offsets went with them), the node
/// folds the log again from the older offsets: it starts, and every
/// acknowledged order is there at its status. Which of the two a cut gives
/// depends on where sled put what; both are right, serving a store with
/// acknowledged orders missing is not.
#[tokio::test]
async fn a_store_cut_in_half_is_refused_or_folded_again_with_every_order() {
    let (data, ids) = store_with_orders().await;
    truncate(&data.path().join("db"), |len| len / 2);
    let opened = fulfil::store::Store::open(data.path(), 16 << 20);
    let Ok(store) = opened else {
        println!("cut in half: the log lost events; refused");
        return assert_refused(data.path(), "db truncated to half");
    };
    println!("cut in half: the log is whole at {}; folded again", store.head());
    drop(store);
    let node = Proc::start(data.path());
    for id in ids {
        let view = client().get(format!("{}/status/{id}", node.address)).send().await.unwrap();
        assert_eq!(view.status(), 200, "{id} was acknowledged and is gone");
        let view: serde_json::Value = view.json().await.unwrap();
        assert_eq!(view["status"], "payment_pending", "{id}: {view}");
    }
}

/// sled's `conf` holds only its own settings, which it writes again when
/// they are unreadable: the data is whole, the marker agrees, and serving
/// it is right.
#[tokio::test]
async fn a_garbled_sled_conf_is_rewritten_and_every_order_is_there() {
    let (data, ids) = store_with_orders().await;
    std::fs::write(data.path().join("conf"), b"abc").unwrap();
    let node = Proc::start(data.path());
    for id in ids {
        let view = client().get(format!("{}/status/{id}", node.address)).send().await.unwrap();
        assert_eq!(view.status(), 200, "{id}");
    }
}

#[tokio::test]
async fn a_garbled_marker_is_refused_and_a_healthy_store_starts_again() {
    let (data, ids) = store_with_orders().await;
    let node = Proc::start(data.path());
    let view = client().get(format!("{}/status/{}", node.address, ids[39])).send().await.unwrap();
    assert_eq!(view.status(), 200, "a healthy store starts, with its orders");
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());
    std::fs::write(data.path().join("fulfil.marker"), b"{\"store_id\":").unwrap();
    assert_refused(data.path(), "garbled marker");
}

/// `fulfil check --data DIR` on a stopped node's store.
fn check(data: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["check", "--data"])
        .arg(data)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test]
async fn fulfil_check_passes_a_sound_store_and_refuses_a_damaged_one() {
    let (data, _) = store_with_orders().await;
    let (code, text) = check(data.path());
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("log: ") && text.contains("orders: 40 status views") && text.contains("sound"),
        "{text}"
    );
    truncate(&data.path().join("db"), |_| 0);
    let (code, text) = check(data.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("cannot be trusted") && !text.contains("panicked"), "{text}");
}
