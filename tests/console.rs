//! The operator console in a real browser: Debian's Chromium driven by
//! playwright-core (`tests/console/console.mjs`), both installed by
//! `scripts/browser-tools.sh` when missing. The console is opened on a
//! node on port 0; a booking placed through the API appears on its board
//! without a reload, is accepted by a click and moves on; the event a
//! service failed on is retried from the order's page with the admin token
//! the console asks for; then the guest is checked in and out by clicks,
//! and the API agrees.
//!
//! `FULFIL_CONSOLE_SCREENSHOT=docs/console.png cargo test --test console`
//! writes the README's screenshot.

use fulfil::{Application, Settings};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "console-admin-token";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_accepts_a_booking_in_the_console_and_sees_it_move_on() {
    let installed = Command::new("sh").arg(root().join("scripts/browser-tools.sh")).status().unwrap();
    assert!(installed.success(), "scripts/browser-tools.sh failed");

    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::default();
    settings.http.bind = "127.0.0.1:0".into();
    settings.store.path = dir.path().join("data");
    settings.admin.token = TOKEN.into();
    let app = Application::build(settings).await.expect("the node starts");
    let base = format!("http://{}", app.address());
    let server = app.server_handle();
    let running = tokio::spawn(app.run_until_stopped());

    let client = reqwest::Client::new();
    let rooms =
        json!({"sku": "deluxe", "name": "Deluxe double", "price": 180000, "units": ["room-701", "room-702"]});
    let r = client.post(format!("{base}/products")).json(&rooms).send().await.unwrap();
    assert_eq!(r.status(), 201);

    let screenshot = std::env::var("FULFIL_CONSOLE_SCREENSHOT")
        .map(|p| root().join(p))
        .unwrap_or_else(|_| dir.path().join("console.png"));
    let tools = root().join("target/browser-tools");
    let script = root().join("tests/console/console.mjs");
    let (base_arg, shot_arg) = (base.clone(), screenshot.clone());
    let out = tokio::task::spawn_blocking(move || {
        // Run from the tools' directory, where node finds playwright-core.
        std::fs::copy(&script, tools.join("console.mjs")).unwrap();
        Command::new("node")
            .arg("console.mjs")
            .arg(&base_arg)
            .arg(&shot_arg)
            .arg(TOKEN)
            .current_dir(&tools)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{said}");
    let steps = [
        "appeared awaiting hotel confirmation",
        "moved to confirmed",
        "order page shows its history",
        "retried the dead letter with the admin token",
        "checked out",
        "the API page renders the document",
    ];
    for step in steps {
        assert!(said.contains(step), "{step:?} not seen:\n{said}");
    }
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a screenshot was taken");

    // The clicks were real steps: the API tells the same story.
    let id = said.lines().find_map(|l| l.strip_prefix("placed ")).expect("the order's id").trim().to_owned();
    let view: Value = client.get(format!("{base}/status/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(view["status"], "closed", "{view}");
    assert_eq!(view["accepted_by"], "hotel", "{view}");
    let history: Vec<&str> =
        view["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["placed", "paid", "reserved", "accepted", "in_delivery", "delivered", "closed"]);

    server.stop(true).await;
    running.await.unwrap().unwrap();
}
