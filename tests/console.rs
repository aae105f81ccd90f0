//! The operator console in a real browser: Debian's Chromium driven by
//! playwright-core (`tests/console/*.mjs`), both installed by
//! `scripts/browser-tools.sh` when missing. The console is opened on a
//! node on port 0; a booking placed through the API appears on its board
//! without a reload, its card stays the same element while another
//! booking arrives in its column (a redraw would swallow a click on it),
//! is accepted by a click and moves on; the event a
//! service failed on is retried from the order's page with the admin token
//! the console asks for; then the guest is checked in and out by clicks,
//! and the API agrees. On a node with keys, it asks for one, and a party
//! works its own list with it.
//!
//! `FULFIL_CONSOLE_SCREENSHOT=docs/console.png cargo test --test console`
//! writes the README's screenshot.

#[allow(dead_code)]
#[path = "tools/nats.rs"]
mod nats;
#[path = "tools/served.rs"]
mod served;
#[allow(dead_code)]
mod tools;

use fulfil::auth::digest_hex;
use fulfil::config::KeySetting;
use fulfil::{Application, Settings};
use serde_json::{json, Value};
use served::Served;
use std::path::Path;
use std::process::Command;

const TOKEN: &str = "console-admin-token";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A node on port 0 with a pool of two rooms, as `adjust` sets it up.
struct Node {
    base: String,
    client: reqwest::Client,
    server: actix_web::dev::ServerHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(adjust: impl FnOnce(&mut Settings), as_operator: Option<&str>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::default();
        settings.http.bind = "127.0.0.1:0".into();
        settings.store.path = dir.path().join("data");
        adjust(&mut settings);
        let app = Application::build(settings).await.expect("the node starts");
        let base = format!("http://{}", app.address());
        let server = app.server_handle();
        let running = tokio::spawn(app.run_until_stopped());
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = as_operator {
            headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {key}").parse().unwrap());
        }
        let client = reqwest::Client::builder().default_headers(headers).build().unwrap();
        add_rooms(&client, &base).await;
        Node { base, client, server, running, _dir: dir }
    }

    async fn stop(self) {
        self.server.stop(true).await;
        self.running.await.unwrap().unwrap();
    }
}

/// The hotel's pool of two rooms.
async fn add_rooms(client: &reqwest::Client, base: &str) {
    let rooms =
        json!({"sku": "deluxe", "name": "Deluxe double", "price": 180000, "units": ["room-701", "room-702"]});
    let r = client.post(format!("{base}/products")).json(&rooms).send().await.unwrap();
    assert_eq!(r.status(), 201);
}

/// Runs `tests/console/<script>` in node with `args`; what it printed,
/// asserting it succeeded and printed each of `steps`.
async fn browse(script: &str, args: Vec<String>, steps: &[&str]) -> String {
    let installed = Command::new("sh").arg(root().join("scripts/browser-tools.sh")).status().unwrap();
    assert!(installed.success(), "scripts/browser-tools.sh failed");
    let script = script.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        // Run from the tools' directory, where node finds playwright-core.
        let tools = root().join("target/browser-tools");
        for file in ["browser.mjs", script.as_str()] {
            std::fs::copy(root().join("tests/console").join(file), tools.join(file)).unwrap();
        }
        Command::new("node").arg(&script).args(&args).current_dir(&tools).output().unwrap()
    })
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the browser run failed:\n{said}");
    for step in steps {
        assert!(said.contains(step), "{step:?} not seen:\n{said}");
    }
    said
}

async fn view(node: &Node, id: &str) -> Value {
    view_at(&node.client, &node.base, id).await
}

async fn view_at(client: &reqwest::Client, base: &str, id: &str) -> Value {
    client.get(format!("{base}/status/{id}")).send().await.unwrap().json().await.unwrap()
}

/// What the operator's walk through the console shows, step by step.
const WALK: [&str; 7] = [
    "appeared awaiting hotel confirmation",
    "the card stayed put while another arrived",
    "moved to confirmed",
    "order page shows its history",
    "retried the dead letter with the admin token",
    "checked out",
    "the API page renders the document",
];

/// The clicks were real steps: the API tells the same story.
async fn walked(client: &reqwest::Client, base: &str, said: &str) {
    let id = said.lines().find_map(|l| l.strip_prefix("placed ")).expect("the order's id").trim().to_owned();
    let view = view_at(client, base, &id).await;
    assert_eq!(view["status"], "closed", "{view}");
    assert_eq!(view["accepted_by"], "hotel", "{view}");
    let history: Vec<&str> =
        view["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["placed", "paid", "reserved", "accepted", "in_delivery", "delivered", "closed"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_accepts_a_booking_in_the_console_and_sees_it_move_on() {
    let node = Node::start(|s| s.admin.token = TOKEN.into(), None).await;
    let shots = tempfile::tempdir().unwrap();
    let screenshot = std::env::var("FULFIL_CONSOLE_SCREENSHOT")
        .map(|p| root().join(p))
        .unwrap_or_else(|_| shots.path().join("console.png"));
    let args = vec![node.base.clone(), screenshot.display().to_string(), TOKEN.to_owned()];
    let said = browse("console.mjs", args, &WALK).await;
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000, "a screenshot was taken");
    walked(&node.client, &node.base, &said).await;
    node.stop().await;
}

/// A `fulfil serve` process in failover mode on `nats`, as `name`.
struct Member(Served);

impl Member {
    fn start(nats: &str, name: &str) -> Member {
        Member(Served::start(&[
            ("FULFIL_ADMIN__TOKEN", TOKEN),
            ("FULFIL_STREAM__URL", nats),
            ("FULFIL_STREAM__MODE", "failover"),
            ("FULFIL_STREAM__NODE", name),
            ("FULFIL_STREAM__LEASE_MS", "1000"),
        ]))
    }

    /// Once it answers ready in `role` (a leader's report names none).
    async fn ready_as(&self, role: Option<&str>) {
        for _ in 0..300 {
            let r = reqwest::get(format!("{}/health/ready", self.0.url)).await.ok();
            if let Some(r) = r.filter(|r| r.status().is_success()) {
                let body: Value = r.json().await.unwrap();
                if body["role"].as_str() == role && (role.is_none() || body["leader"].is_string()) {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("{} was not ready as {role:?} within 30 s", self.0.url);
    }
}

/// In failover mode, behind a Service that sends each request to any
/// node, the console opened on a follower works as on the leader: the
/// board is read from the follower's store, the steps and the live stream
/// go through to the leader, and the node's panel shows the leader's
/// services (`GET /health`, which a follower forwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_on_a_failover_follower_the_console_works_as_on_the_leader() {
    let nats = nats::Nats::start(&tools::tool("nats-server"));
    let leader = Member::start(&nats.url, "n0");
    leader.ready_as(None).await;
    let follower = Member::start(&nats.url, "n1");
    follower.ready_as(Some("follower")).await;
    let client = reqwest::Client::new();
    add_rooms(&client, &follower.0.url).await;
    let shots = tempfile::tempdir().unwrap();
    let screenshot = shots.path().join("console.png").display().to_string();
    let said = browse("console.mjs", vec![follower.0.url.clone(), screenshot, TOKEN.to_owned()], &WALK).await;
    walked(&client, &follower.0.url, &said).await;
    let health: Value =
        client.get(format!("{}/health", follower.0.url)).send().await.unwrap().json().await.unwrap();
    assert!(health["services"]["projection"].is_object(), "the leader's services: {health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_node_with_keys_the_console_asks_for_one_and_a_party_works_its_own_list() {
    let keys = [("hotel-key", "hotel"), ("lee-key", "customer:lee"), ("op-key", "operator")];
    let node = Node::start(
        |s| {
            s.auth.keys = keys
                .iter()
                .map(|(k, p)| KeySetting { sha256: digest_hex(k), principal: p.to_string() })
                .collect()
        },
        Some("op-key"),
    )
    .await;
    let args = vec![node.base.clone(), "hotel-key".to_owned(), "lee-key".to_owned()];
    let steps = ["asked for a key", "the hotel sees the booking live", "as the hotel"];
    let said = browse("keys.mjs", args, &steps).await;
    let id =
        said.lines().find_map(|l| l.strip_prefix("accepted ")).unwrap().split(' ').next().unwrap().to_owned();
    let view = view(&node, &id).await;
    assert_eq!(
        (view["status"].as_str(), view["accepted_by"].as_str()),
        (Some("accepted"), Some("hotel")),
        "{view}"
    );
    node.stop().await;
}
