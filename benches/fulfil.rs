//! `cargo bench`: fulfil's throughput and latency against this machine's own
//! ceilings, measured in the same run. Loopback only; bounded in time.
//!
//! Prints one table and writes `target/bench-report.json`. Every figure is
//! also given as a ratio of the ceiling that bounds it, since the machines
//! are shared and noisy: ratios travel between runs better than raw rates.
//!
//! `FULFIL_BENCH_SCALE` (default 1.0) scales the amount of work; the default
//! takes a few minutes on 2 cores.

use actix::prelude::*;
use fulfil::load::{LoadReport, LoadSpec};
use fulfil::{ItemRequest, NewProduct, Node, OrderRequest, Settings};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary's allocator, so the benchmark measures what `fulfil` runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bytes of a stored order event in the ceilings (the size of a real one).
const VALUE_BYTES: usize = 300;

// The benchmark starts one server; the tests also start clusters.
#[allow(dead_code)]
#[path = "../tests/tools/nats.rs"]
mod nats;
#[path = "../tests/tools/served.rs"]
mod served;
use served::Served;

/// `FULFIL_BENCH_ONLY=ceilings|embedded|http|stream|failover|shards` runs one phase.
fn phase(name: &str) -> bool {
    std::env::var("FULFIL_BENCH_ONLY").map_or(true, |only| only == name)
}

/// Concurrent callers of the embedded API (`FULFIL_BENCH_CALLERS`, default 256).
fn callers() -> u64 {
    std::env::var("FULFIL_BENCH_CALLERS").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
}

fn scale() -> f64 {
    std::env::var("FULFIL_BENCH_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0)
}

fn scaled(n: u64) -> u64 {
    ((n as f64 * scale()) as u64).max(1)
}

/// One row of the report.
struct Row {
    what: String,
    value: f64,
    unit: &'static str,
    /// The ceiling it is compared with, and the ratio.
    ceiling: Option<(&'static str, f64)>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    json: BTreeMap<String, Value>,
}

impl Report {
    fn add(
        &mut self,
        key: &str,
        what: impl Into<String>,
        value: f64,
        unit: &'static str,
        ceiling: Option<(&'static str, f64)>,
    ) {
        let what = what.into();
        println!("  {what:<58} {value:>12.2} {unit}");
        self.json.insert(
            key.to_owned(),
            json!({"value": value, "unit": unit, "ratio": ceiling.map(|c| c.1), "of": ceiling.map(|c| c.0)}),
        );
        self.rows.push(Row { what, value, unit, ceiling });
    }

    fn print(&self) {
        println!("\n{:<58} {:>12} {:<8} {:>8}  of", "measure", "value", "unit", "ratio");
        for r in &self.rows {
            let (ratio, of) = match r.ceiling {
                Some((of, ratio)) => (format!("{ratio:.3}"), of),
                None => (String::new(), ""),
            };
            println!("{:<58} {:>12.2} {:<8} {:>8}  {of}", r.what, r.value, r.unit, ratio);
        }
    }
}

// ---------------------------------------------------------------- ceilings

/// Inserts of order-sized values into a fresh sled tree, per second; with
/// `flush`, each insert is flushed before the next (durable one at a time).
fn sled_rate(n: u64, flush: bool) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().path(dir.path()).cache_capacity(64 << 20).open().unwrap();
    let value = vec![7u8; VALUE_BYTES];
    let started = Instant::now();
    for i in 0..n {
        db.insert(i.to_be_bytes(), value.as_slice()).unwrap();
        if flush {
            db.flush().unwrap();
        }
    }
    n as f64 / started.elapsed().as_secs_f64()
}

struct Echo;
impl Actor for Echo {
    type Context = Context<Self>;
}
#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);
impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> u64 {
        msg.0
    }
}

/// Request/response round trips to an actor on another arbiter (thread),
/// from `callers` concurrent callers: how fulfil's services talk.
fn actix_round_trip_rate(n: u64, callers: u64) -> f64 {
    let sys = actix::System::new();
    sys.block_on(async move {
        let arbiter = Arbiter::new();
        let echo = Echo::start_in_arbiter(&arbiter.handle(), |_| Echo);
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let echo = echo.clone();
                actix::spawn(async move {
                    for i in 0..n / callers {
                        echo.send(Ping(i)).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        arbiter.stop();
        rate
    })
}

/// An actix-web handler that does nothing, on the same worker count, under
/// the same load tool: the ceiling of any HTTP route.
async fn noop_http(seconds: u64, clients: usize) -> LoadReport {
    let (address, handle) = noop_server().await;
    let report =
        fulfil::load::run(load_spec(&format!("http://{address}"), clients, seconds, None)).await.unwrap();
    handle.stop(true).await;
    report
}

/// A no-op server on the bench's worker count: its address and its handle.
async fn noop_server() -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new()
            .route(
                "/orders",
                actix_web::web::post()
                    .to(|| async { actix_web::HttpResponse::Created().body("{\"id\":\"x\"}") }),
            )
            // The load tool adds its product first.
            .route(
                "/products",
                actix_web::web::post().to(|| async { actix_web::HttpResponse::Created().finish() }),
            )
    })
    .workers(2)
    .bind("127.0.0.1:0")
    .unwrap();
    let address = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (address, handle)
}

/// Requests per second `wrk` (one thread, 64 connections) gets from `url`
/// posting an order's body, if wrk is installed (`scripts/bench-tools.sh`).
fn wrk_rate(url: &str, seconds: u64) -> Option<f64> {
    let script = std::env::temp_dir().join(format!("fulfil-bench-{}.lua", std::process::id()));
    let body = serde_json::to_string(&json!({"customer": "wrk", "items": [{"sku": "LOAD", "qty": 1}],
        "address": "1 Bench Road, Seoul", "payment": "card", "card": "4111111111111111"}))
    .unwrap();
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.body = {body:?}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
    );
    std::fs::write(&script, lua).ok()?;
    let out = std::process::Command::new("wrk")
        .args(["-t1", "-c64", &format!("-d{seconds}s"), "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&out.stdout);
    if std::env::var_os("FULFIL_BENCH_WRK_OUTPUT").is_some() {
        println!("{text}");
    }
    let line = text.lines().find(|l| l.starts_with("Requests/sec:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn load_spec(url: &str, clients: usize, seconds: u64, rate: Option<f64>) -> LoadSpec {
    LoadSpec { skus: 1, ..spread_load(url, clients, seconds, rate) }
}

/// [`load_spec`], its orders spread over [`SHARDED_SKUS`] products.
fn spread_load(url: &str, clients: usize, seconds: u64, rate: Option<f64>) -> LoadSpec {
    LoadSpec {
        url: url.to_owned(),
        clients,
        duration: Duration::from_secs(seconds),
        rate,
        max_requests: u64::MAX,
        timeout: Duration::from_secs(10),
        ids_out: None,
        watch_pid: None,
        key: None,
        skus: SHARDED_SKUS,
    }
}

// ---------------------------------------------------------------- fulfil

/// The defaults with `FULFIL_*` overrides from the environment, so a run can
/// try other settings (`FULFIL_ACTORS__THREADS=6 cargo bench`).
fn bench_settings(dir: &std::path::Path) -> Settings {
    let mut s = Settings::load(None).expect("valid settings");
    s.store.path = dir.to_path_buf();
    s.http.bind = "127.0.0.1:0".into();
    s.http.workers = 2;
    s.http.rate_per_client = 0;
    s.mailbox.wait_ms = 1000;
    // The engine is measured, not the simulated gateway or its protection:
    // zero latency, and no rate limit that would defer payments.
    s.payment.gateway_rate = 100_000_000;
    s.payment.gateway_burst = 100_000_000;
    s
}

fn card_order(i: u64) -> OrderRequest {
    OrderRequest {
        customer: format!("bench-{}", i % 1000),
        items: vec![ItemRequest { sku: "LOAD".into(), qty: 1 }],
        address: "1 Bench Road, Seoul".into(),
        payment: "card".into(),
        card: Some("4111111111111111".into()),
        ..OrderRequest::default()
    }
}

async fn add_stock(node: &Node) {
    let p = NewProduct {
        sku: "LOAD".into(),
        name: "Load".into(),
        price: 1000,
        stock: Some(1_000_000_000_000),
        units: vec![],
    };
    node.add_product(p).await.unwrap();
}

/// Waits until `orders` orders in all have reached `in_delivery` and every
/// service has processed the whole log.
async fn settled(node: &Node, orders: u64) {
    let delivered = || node.metrics().orders.with_label_values(&["in_delivery"]).get();
    loop {
        let h = node.health();
        if delivered() >= orders && h.services.values().all(|s| s.lag == 0 && s.offset == h.log_head) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Places `n` card orders from `callers` concurrent callers through the
/// embedded API; returns (orders/s to in_delivery, placement latencies).
/// `before` orders reached in_delivery earlier.
async fn embedded_saga(node: &Node, n: u64, before: u64, callers: u64) -> (f64, Vec<Duration>) {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (node, next) = (node.clone(), next.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return latencies;
                    }
                    let t = Instant::now();
                    node.place_order(card_order(i), None).await.unwrap();
                    latencies.push(t.elapsed());
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    settled(node, before + n).await;
    (n as f64 / started.elapsed().as_secs_f64(), latencies)
}

/// The export to JetStream against the server's own ceiling, on one
/// JetStream server on loopback: what the export costs the orders (the
/// same saga with it off, then on), how far behind it is when they are
/// done, and how fast it publishes a log's backlog against raw publishes
/// of the same size and batching.
async fn stream_phase(r: &mut Report, url: &str) {
    let n = scaled(20_000);
    let saga = |stream: Option<(&'static str, &'static str)>| {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = bench_settings(dir.path());
        if let Some((name, subject)) = stream {
            (settings.stream.url, settings.stream.name, settings.stream.subject) =
                (url.into(), name.into(), subject.into());
        }
        async move {
            let node = Node::start(settings).await.unwrap();
            add_stock(&node).await;
            let (rate, placed) = embedded_saga(&node, n, 0, callers()).await;
            let behind = node.health().log_head - node.metrics().stream_exported_event();
            let waited = Instant::now();
            while stream.is_some() && node.metrics().stream_exported_event() < node.health().log_head {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let drained = waited.elapsed();
            node.shutdown().await;
            (rate, placed, behind, drained, dir)
        }
    };
    let (off, mut off_placed, _, _, backlog) = saga(None).await;
    let (on, mut on_placed, behind, drained, _) = saga(Some(("LIVE", "live.events"))).await;
    r.add("stream_off_orders_per_s", "embedded orders/s, export off", off, "/s", None);
    r.add("stream_on_orders_per_s", "embedded orders/s, export on", on, "/s", Some(("export off", on / off)));
    let (p99_off, p99_on) = (pct(&mut off_placed, 0.99), pct(&mut on_placed, 0.99));
    r.add(
        "stream_on_place_p99_ms",
        "  place_order p99",
        p99_on,
        "ms",
        Some(("export off", p99_on / p99_off)),
    );
    r.add(
        "stream_behind_events",
        "  events not yet published when the orders were done",
        behind as f64,
        "",
        None,
    );
    r.add("stream_drain_ms", "  … published within", ms(drained), "ms", None);

    // The first saga's log, exported from its start by a node that opens it.
    let mut settings = bench_settings(backlog.path());
    (settings.stream.url, settings.stream.name, settings.stream.subject) =
        (url.into(), "BACKLOG".into(), "backlog.events".into());
    let node = Node::start(settings).await.unwrap();
    let head = node.health().log_head;
    while node.metrics().stream_exported_event() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let (first, started) = (node.metrics().stream_exported_event(), Instant::now());
    while node.metrics().stream_exported_event() < head {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let export = (head - first) as f64 / started.elapsed().as_secs_f64();
    node.shutdown().await;
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let info = js.get_stream("BACKLOG").await.unwrap().info().await.unwrap().state.clone();
    let size = (info.bytes / info.messages.max(1)) as usize;
    let ceiling = publish_rate(&js, head, size).await;
    r.add(
        "jetstream_publish_per_s",
        "JetStream publish with acks, batches of 512 (raw)",
        ceiling,
        "/s",
        None,
    );
    r.add(
        "stream_export_events_per_s",
        "export of a log's backlog, events/s",
        export,
        "/s",
        Some(("raw publish", export / ceiling)),
    );
    let fenced = fenced_rate(url, head, size).await;
    r.add(
        "partition_append_events_per_s",
        "fenced atomic batches of 512 to 16 partitions, events/s",
        fenced,
        "/s",
        Some(("raw publish", fenced / ceiling)),
    );
}

/// What the multi-node mode's writes will cost: `n` messages of `size`
/// bytes through `cluster::PartitionWriter` (atomic batches of 512, each
/// fenced on its partition's last message), one writer per partition, the
/// 16 partitions in turn.
async fn fenced_rate(url: &str, n: u64, size: usize) -> f64 {
    use fulfil::cluster::PartitionWriter;
    let client = async_nats::connect(url).await.unwrap();
    let config = async_nats::jetstream::stream::Config {
        name: "FENCED".into(),
        subjects: vec!["fenced.*".into()],
        allow_atomic_publish: true,
        ..Default::default()
    };
    async_nats::jetstream::new(client.clone()).create_stream(config).await.unwrap();
    let mut writers = Vec::new();
    for p in 0..16 {
        writers.push(PartitionWriter::take_over(&client, "FENCED", &format!("fenced.{p}")).await.unwrap());
    }
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(512);
        let writer = &mut writers[(sent / 512 % 16) as usize];
        writer.append((0..batch).map(|_| vec![b'x'; size]).collect()).await.unwrap();
        sent += batch;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// JetStream's own rate on this machine: `n` messages of `size` bytes
/// published to a stream of the export's shape (16 subjects, file storage)
/// in batches of 512 whose acknowledgements are awaited together, as the
/// export does, without its headers or checks.
async fn publish_rate(js: &async_nats::jetstream::Context, n: u64, size: usize) -> f64 {
    let config = async_nats::jetstream::stream::Config {
        name: "CEILING".into(),
        subjects: vec!["ceiling.*".into()],
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
    let payload = actix_web::web::Bytes::from(vec![b'x'; size]);
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let batch = (n - sent).min(512);
        let mut acks = Vec::with_capacity(batch as usize);
        for i in sent..sent + batch {
            acks.push(js.publish(format!("ceiling.{}", i % 16), payload.clone()).await.unwrap());
        }
        for ack in acks {
            ack.await.unwrap();
        }
        sent += batch;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------- failover

/// A `fulfil serve` process of this build on the bench's settings (as
/// `bench_settings`), with `env` on top.
fn serve(env: &[(&str, String)]) -> Served {
    let mut all: Vec<(&str, String)> = [
        ("FULFIL_HTTP__WORKERS", "2"),
        ("FULFIL_HTTP__RATE_PER_CLIENT", "0"),
        ("FULFIL_MAILBOX__WAIT_MS", "1000"),
        ("FULFIL_PAYMENT__GATEWAY_RATE", "100000000"),
        ("FULFIL_PAYMENT__GATEWAY_BURST", "100000000"),
        ("RUST_LOG", "warn,fulfil::startup=info"),
    ]
    .map(|(k, v)| (k, v.to_owned()))
    .into();
    all.extend_from_slice(env);
    Served::start(&all)
}

/// Waits until every node answers ready, and every follower names a
/// leader.
async fn all_ready(nodes: &[Served]) {
    let http = reqwest::Client::new();
    for node in nodes {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("{}/health/ready", node.url)).send().await;
            let ready = match ready {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok(),
                _ => None,
            };
            if ready.is_some_and(|body| body["role"] != "follower" || body["leader"].is_string()) {
                break;
            }
            assert!(Instant::now() < deadline, "{} did not become ready", node.url);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// HTTP POST /orders at full speed for `secs`, 64 clients spread over
/// `nodes`: (acknowledged orders/s, the worst node's p99 in ms).
async fn orders_on(nodes: &[Served], secs: u64) -> (f64, f64) {
    orders_with(nodes, secs, load_spec).await
}

/// [`orders_on`], each node's load made by `load`.
async fn orders_with(
    nodes: &[Served],
    secs: u64,
    load: fn(&str, usize, u64, Option<f64>) -> LoadSpec,
) -> (f64, f64) {
    let clients = 64 / nodes.len();
    let runs: Vec<_> =
        nodes.iter().map(|n| tokio::spawn(fulfil::load::run(load(&n.url, clients, secs, None)))).collect();
    let (mut rate, mut p99) = (0.0, 0.0f64);
    for run in runs {
        let report = run.await.unwrap().unwrap();
        rate += report.acknowledged_rps;
        p99 = p99.max(report.p99_ms);
    }
    (rate, p99)
}

/// Failover mode against one node without it, and against the JetStream
/// server's own publish rate, all in this run: 1 and 3 `fulfil serve`
/// processes sharing one store through one JetStream server on loopback,
/// the load spread over every node (a follower forwards to the leader).
async fn failover_phase(r: &mut Report, url: &str) {
    let secs = scaled(10).max(3);
    let alone = [serve(&[])];
    all_ready(&alone).await;
    let (base, base_p99) = orders_on(&alone, secs).await;
    drop(alone);
    r.add("failover_base_orders_per_s", "HTTP POST /orders, one node, export mode", base, "/s", None);
    r.add("failover_base_p99_ms", "  p99", base_p99, "ms", None);
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let ceiling = publish_rate(&js, scaled(100_000), VALUE_BYTES).await;
    r.add("failover_publish_per_s", "JetStream publish with acks, batches of 512 (raw)", ceiling, "/s", None);
    let mut one_node = 0.0;
    for (n, key) in [(1, "failover_1"), (3, "failover_3")] {
        let nodes: Vec<Served> = (0..n).map(|i| serve(&failover_env(url, &format!("F{n}"), i))).collect();
        all_ready(&nodes).await;
        let (rate, p99) = orders_on(&nodes, secs).await;
        if n == 1 {
            one_node = rate;
        }
        r.add(
            &format!("{key}_orders_per_s"),
            format!("HTTP POST /orders, failover, {n} node(s)"),
            rate,
            "/s",
            Some(("one node, export mode", rate / base)),
        );
        r.add(&format!("{key}_p99_ms"), "  p99", p99, "ms", Some(("one node, export mode", p99 / base_p99)));
        // What each order costs the server: the store's copies (group
        // commits, so fewer than one per order) and the event stream.
        let orders = rate * secs as f64;
        // Counted by sequence: a snapshot trims the store's copies.
        let store = js.get_stream(format!("F{n}_STORE")).await.unwrap().info().await.unwrap().state.clone();
        let events = js.get_stream(format!("F{n}")).await.unwrap().info().await.unwrap().state.last_sequence;
        let published = (store.last_sequence + events) as f64 / orders;
        let copy_bytes = store.bytes as f64 / store.messages.max(1) as f64 * store.last_sequence as f64;
        r.add(&format!("{key}_messages_per_order"), "  messages published per order", published, "", None);
        r.add(
            &format!("{key}_copy_bytes_per_order"),
            "  bytes of store copies per order",
            copy_bytes / orders,
            "B",
            None,
        );
        r.add(
            &format!("{key}_of_publish"),
            "  messages/s as a share of raw publishes/s",
            published * rate / ceiling,
            "",
            Some(("raw publish", published * rate / ceiling)),
        );
        if n > 1 {
            status_reads_phase(r, &nodes, secs).await;
        }
    }
    own_snapshots_phase(r, &js, url, secs, one_node).await;
}

/// Shards of a cluster split into shards, and the products the load's
/// orders spread over (so over the shards).
const SHARDS: usize = 4;
const SHARDED_SKUS: usize = 8;

/// A cluster split into [`SHARDS`] shards, on this machine: one node that
/// leads all of them, then two that lead two each, the load's orders
/// spread over [`SHARDED_SKUS`] products and over the nodes; against one
/// failover node (one group) on the same load, in this run.
async fn shards_phase(r: &mut Report, url: &str) {
    let secs = scaled(10).max(3);
    let one = [serve(&failover_env(url, "SB", 0))];
    all_ready(&one).await;
    let (base, base_p99) = orders_with(&one, secs, spread_load).await;
    drop(one);
    r.add(
        "shards_base_orders_per_s",
        "HTTP POST /orders over 8 products, failover, 1 node",
        base,
        "/s",
        None,
    );
    r.add("shards_base_p99_ms", "  p99", base_p99, "ms", None);
    for (n, key) in [(1, "shards_1"), (2, "shards_2")] {
        let nodes: Vec<Served> = (0..n)
            .map(|i| {
                let mut env = failover_env(url, &format!("S{n}"), i);
                env.push(("FULFIL_STREAM__SHARDS", SHARDS.to_string()));
                serve(&env)
            })
            .collect();
        each_leads(&nodes, SHARDS / n).await;
        let (rate, p99) = orders_with(&nodes, secs, spread_load).await;
        let vs = "failover, 1 node";
        r.add(
            &format!("{key}_orders_per_s"),
            format!("HTTP POST /orders over 8 products, {SHARDS} shards, {n} node(s)"),
            rate,
            "/s",
            Some((vs, rate / base)),
        );
        r.add(&format!("{key}_p99_ms"), "  p99", p99, "ms", Some((vs, p99 / base_p99)));
    }
}

/// Waits until each of `nodes` leads `share` shards and knows who leads
/// the others.
async fn each_leads(nodes: &[Served], share: usize) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    'wait: loop {
        assert!(Instant::now() < deadline, "the shards were not shared out");
        tokio::time::sleep(Duration::from_millis(50)).await;
        for node in nodes {
            let live = http.get(format!("{}/health/live", node.url)).send().await;
            let Ok(live) = live else { continue 'wait };
            let live: Value = live.json().await.unwrap_or_default();
            let Some(shards) = live["shards"].as_array() else { continue 'wait };
            let led = shards.iter().filter(|s| s["here"] == true).count();
            let known = shards.iter().all(|s| s["here"] == true || s["leader"].is_string());
            if led != share || !known {
                continue 'wait;
            }
        }
        return;
    }
}

/// A JetStream server on loopback, if the project's scripts installed one.
fn nats_server() -> Option<nats::Nats> {
    let program = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-tools/bin/nats-server");
    program.exists().then(|| nats::Nats::start(&program))
}

/// A failover node's settings: the stream named `name`, node `i`.
fn failover_env(url: &str, name: &str, i: usize) -> Vec<(&'static str, String)> {
    vec![
        ("FULFIL_STREAM__URL", url.to_owned()),
        ("FULFIL_STREAM__MODE", "failover".to_owned()),
        ("FULFIL_STREAM__NAME", name.to_owned()),
        ("FULFIL_STREAM__SUBJECT", format!("{}.events", name.to_lowercase())),
        ("FULFIL_STREAM__NODE", format!("n{i}")),
    ]
}

/// A leader alone writes its own snapshots (once two rounds passed
/// without one, looked at every 5 s) while it works on: orders/s against
/// the same node writing none (`one_node`), and where the newest stands.
async fn own_snapshots_phase(
    r: &mut Report,
    js: &async_nats::jetstream::Context,
    url: &str,
    secs: u64,
    one_node: f64,
) {
    let mut env = failover_env(url, "FS", 0);
    env.push(("FULFIL_STREAM__SNAPSHOT_EVERY", "500".to_owned()));
    let node = [serve(&env)];
    all_ready(&node).await;
    let (rate, p99) = orders_on(&node, secs).await;
    let info = js.get_object_store("FS_SNAPSHOTS").await.unwrap().info("store").await;
    let newest = info.ok().and_then(|i| i.metadata.get("seq").and_then(|s| s.parse().ok())).unwrap_or(0.0);
    let vs = Some(("failover, 1 node", rate / one_node));
    r.add(
        "failover_1_own_snapshots_orders_per_s",
        "HTTP POST /orders, failover, 1 node writing its own snapshots",
        rate,
        "/s",
        vs,
    );
    r.add("failover_1_own_snapshots_p99_ms", "  p99", p99, "ms", None);
    r.add("failover_1_own_snapshots_newest", "  newest snapshot at copy (0: none written)", newest, "", None);
}

/// `GET /status/{id}` through the leader alone, then spread over every
/// node (followers answer from their own store): reads/s and p99.
async fn status_reads_phase(r: &mut Report, nodes: &[Served], secs: u64) {
    let http = reqwest::Client::new();
    let mut leader = &nodes[0];
    for node in nodes {
        let live: Value =
            http.get(format!("{}/health/live", node.url)).send().await.unwrap().json().await.unwrap();
        if live["role"] != "follower" {
            leader = node;
        }
    }
    let mut ids = Vec::new();
    for i in 0..200 {
        let placed = http.post(format!("{}/orders", leader.url)).json(&card_order(i)).send().await.unwrap();
        ids.push(placed.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let (base, base_p99) = reads_on(&[&leader.url], &ids, secs).await;
    r.add("failover_3_reads_leader_per_s", "HTTP GET /status/{id}, the leader alone", base, "/s", None);
    r.add("failover_3_reads_leader_p99_ms", "  p99", base_p99, "ms", None);
    let follower = nodes.iter().find(|n| n.url != leader.url).unwrap();
    let (one, one_p99) = reads_on(&[&follower.url], &ids, secs).await;
    let vs = Some(("the leader alone", one / base));
    r.add("failover_3_reads_follower_per_s", "HTTP GET /status/{id}, one follower alone", one, "/s", vs);
    r.add(
        "failover_3_reads_follower_p99_ms",
        "  p99",
        one_p99,
        "ms",
        Some(("the leader alone", one_p99 / base_p99)),
    );
    let all: Vec<&str> = nodes.iter().map(|n| n.url.as_str()).collect();
    let (rate, p99) = reads_on(&all, &ids, secs).await;
    r.add(
        "failover_3_reads_all_per_s",
        "HTTP GET /status/{id}, over all 3 nodes",
        rate,
        "/s",
        Some(("the leader alone", rate / base)),
    );
    r.add("failover_3_reads_all_p99_ms", "  p99", p99, "ms", Some(("the leader alone", p99 / base_p99)));
    // A product: a follower folds the inventory's rule over the events
    // after its offset, where the leader reads its service's memory.
    let product = ["/products/LOAD".to_owned()];
    let (base, base_p99) = gets_on(&[&leader.url], &product, secs).await;
    r.add("failover_3_products_leader_per_s", "HTTP GET /products/{sku}, the leader alone", base, "/s", None);
    let (one, one_p99) = gets_on(&[&follower.url], &product, secs).await;
    let vs = Some(("the leader alone", one / base));
    r.add(
        "failover_3_products_follower_per_s",
        "HTTP GET /products/{sku}, one follower alone",
        one,
        "/s",
        vs,
    );
    r.add(
        "failover_3_products_follower_p99_ms",
        "  p99",
        one_p99,
        "ms",
        Some(("the leader alone", one_p99 / base_p99)),
    );
}

/// 64 clients reading statuses of `ids` as fast as answers come for
/// `secs`, spread over `urls`: (reads/s, p99 in ms).
async fn reads_on(urls: &[&str], ids: &[String], secs: u64) -> (f64, f64) {
    let paths: Vec<String> = ids.iter().map(|id| format!("/status/{id}")).collect();
    gets_on(urls, &paths, secs).await
}

/// 64 clients getting `paths` in turn as fast as answers come for `secs`,
/// spread over `urls`: (reads/s, p99 in ms).
async fn gets_on(urls: &[&str], paths: &[String], secs: u64) -> (f64, f64) {
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..64)
        .map(|c| {
            let (url, paths) = (urls[c % urls.len()].to_owned(), paths.to_vec());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let t = Instant::now();
                    let path = &paths[(c + latencies.len()) % paths.len()];
                    let r = http.get(format!("{url}{path}")).send().await.unwrap();
                    assert!(r.status().is_success(), "GET {path}: {}", r.status());
                    r.bytes().await.unwrap();
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    (all.len() as f64 / started.elapsed().as_secs_f64(), pct(&mut all, 0.99))
}

/// Time from an order's acknowledgement until the status view shows it.
async fn view_delay(node: &Node, n: u64) -> Vec<Duration> {
    let mut delays = Vec::new();
    for i in 0..n {
        let receipt = node.place_order(card_order(i), None).await.unwrap();
        let acked = Instant::now();
        while node.status(receipt.id.as_str()).await.is_err() {
            tokio::task::yield_now().await;
        }
        delays.push(acked.elapsed());
    }
    delays
}

/// CPU time this process has used, user and system, in seconds (Linux;
/// `NaN` elsewhere). `/proc` counts it in ticks of 1/100 s, the kernel's
/// USER_HZ on every Linux platform fulfil builds for.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|t| t.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (ticks(11) + ticks(12)) / 100.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort_unstable();
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
    v[i].as_secs_f64() * 1000.0
}

fn rss_mib() -> f64 {
    fulfil::load::rss_mib(std::process::id()).unwrap_or(0.0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Keys, and bytes of keys and values, in every tree of the database at
/// `dir`: the live data, which the bytes on disk are compared with.
fn live_data(dir: &std::path::Path) -> (u64, u64) {
    let db = sled::Config::new().path(dir).cache_capacity(16 << 20).open().unwrap();
    let (mut keys, mut bytes) = (0, 0);
    for name in db.tree_names() {
        for kv in db.open_tree(&name).unwrap().iter() {
            let (k, v) = kv.unwrap();
            keys += 1;
            bytes += (k.len() + v.len()) as u64;
        }
    }
    (keys, bytes)
}

/// How late a sleeping thread wakes, sampled until `stop`: the time a
/// runnable thread waits for a core. With more busy threads than cores, a
/// request that crosses several threads pays it at each, whatever the code.
fn wake_delays(stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<Vec<Duration>> {
    std::thread::spawn(move || {
        let nap = Duration::from_micros(500);
        let mut delays = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let asleep = Instant::now();
            std::thread::sleep(nap);
            delays.push(asleep.elapsed().saturating_sub(nap));
        }
        delays
    })
}

/// GETs of `/status/{id}` at a fixed rate while something else runs.
async fn status_reader(
    url: String,
    ids: Vec<String>,
    per_second: u64,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Duration> {
    let http = reqwest::Client::new();
    let every = Duration::from_secs_f64(1.0 / per_second as f64);
    let mut next = Instant::now();
    let mut latencies = Vec::new();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep_until(next.into()).await;
        let t = Instant::now();
        let r = http.get(format!("{url}/status/{}", ids[i % ids.len()])).send().await;
        if r.is_ok_and(|r| r.status().is_success()) {
            latencies.push(t.elapsed());
        }
        i += 1;
        next += every;
    }
    latencies
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let mut r = Report::default();
    println!(
        "fulfil benchmark (scale {}), {} cores",
        scale(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );

    let (mut sled_raw, mut noop_rps) = (f64::NAN, f64::NAN);
    if phase("ceilings") {
        println!("ceilings:");
        sled_raw = tokio::task::spawn_blocking(move || sled_rate(scaled(200_000), false)).await.unwrap();
        r.add("sled_insert_per_s", "sled insert, 300-byte value", sled_raw, "/s", None);
        let sled_flush = tokio::task::spawn_blocking(move || sled_rate(scaled(2_000), true)).await.unwrap();
        r.add("sled_insert_flush_per_s", "sled insert + flush, one at a time", sled_flush, "/s", None);
        let actix =
            tokio::task::spawn_blocking(move || actix_round_trip_rate(scaled(200_000), 64)).await.unwrap();
        r.add(
            "actix_round_trip_per_s",
            "actix request/response across threads, 64 callers",
            actix,
            "/s",
            None,
        );
        let noop = noop_http(scaled(8).max(3), 64).await;
        r.add(
            "http_noop_per_s",
            "actix-web no-op POST, 2 workers, 64 clients (fulfil load)",
            noop.throughput_rps,
            "/s",
            None,
        );
        r.add("http_noop_p99_ms", "actix-web no-op POST p99", noop.p99_ms, "ms", None);
        noop_rps = noop.throughput_rps;
        // The same no-op under wrk: the load tool must not be the bound, so
        // every HTTP ratio below uses the higher of the two.
        let (address, handle) = noop_server().await;
        let secs = scaled(8).max(3);
        let url = format!("http://{address}/orders");
        let wrk = tokio::task::spawn_blocking(move || wrk_rate(&url, secs)).await.unwrap();
        handle.stop(true).await;
        match wrk {
            Some(wrk) => {
                r.add("http_noop_wrk_per_s", "the same no-op under wrk -t1 -c64", wrk, "/s", None);
                r.add(
                    "load_tool_share_of_wrk",
                    "fulfil load's no-op rate as a share of wrk's",
                    noop.throughput_rps / wrk,
                    "",
                    None,
                );
                noop_rps = noop_rps.max(wrk);
            }
            None => {
                println!("  (wrk is not installed: scripts/bench-tools.sh; ceilings are fulfil load's own)")
            }
        }
    }

    // ---- embedded end to end
    if phase("embedded") {
        println!("embedded:");
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(bench_settings(dir.path())).await.unwrap();
        add_stock(&node).await;
        let warm = scaled(2_000);
        embedded_saga(&node, warm, 0, callers()).await;
        let n = scaled(100_000);
        let writer_before = node.store_writer();
        let timed = Instant::now();
        let (e2e, mut placed) = embedded_saga(&node, n, warm, callers()).await;
        let (wall, writer) = (timed.elapsed(), node.store_writer());
        let events = node.health().log_head as f64 / (n + warm) as f64;
        let keys = (writer.keys - writer_before.keys) as f64 / n as f64;
        let busy = (writer.busy - writer_before.busy).as_secs_f64() / wall.as_secs_f64();
        r.add(
            "e2e_orders_per_s",
            "embedded: orders/s placed → in_delivery",
            e2e,
            "/s",
            Some(("sled inserts/s (orders/s × keys written/order)", e2e * keys / sled_raw)),
        );
        r.add("events_per_order", "events per order to in_delivery", events, "", None);
        r.add("keys_written_per_order", "keys written per order (events included)", keys, "", None);
        // Where the keys go: the profile of the work under the writer lock.
        let mut by_table: Vec<(&str, u64)> = (writer.by_table.iter())
            .map(|(table, n)| (*table, n - writer_before.by_table.get(table).copied().unwrap_or(0)))
            .collect();
        by_table.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        for (table, keys) in by_table.into_iter().filter(|(_, keys)| *keys > 0) {
            let per_order = keys as f64 / n as f64;
            r.add(&format!("keys_{table}"), format!("  keys per order: {table}"), per_order, "", None);
        }
        r.add(
            "commits_per_order",
            "store writes (one lock hold each) per order",
            (writer.commits - writer_before.commits) as f64 / n as f64,
            "",
            None,
        );
        r.add("writer_busy_share", "store writer lock held, share of wall time", busy, "", None);
        r.add(
            "writer_hold_p99_ms",
            "  one write's hold of it, p99",
            ms(writer.hold_quantile(&writer_before, 0.99)),
            "ms",
            None,
        );
        r.add(
            "writer_hold_by_time_p99_ms",
            "  (a read waits behind a write this long, p99)",
            ms(writer.hold_quantile_by_time(&writer_before, 0.99)),
            "ms",
            None,
        );
        r.add(
            "embedded_place_p50_ms",
            "embedded: place_order (durable ack) p50",
            pct(&mut placed, 0.50),
            "ms",
            None,
        );
        r.add(
            "embedded_place_p99_ms",
            "embedded: place_order (durable ack) p99",
            pct(&mut placed, 0.99),
            "ms",
            None,
        );
        r.add("rss_mib_after_orders", "resident memory after the embedded orders", rss_mib(), "MiB", None);
        let mut delay = view_delay(&node, scaled(500)).await;
        r.add(
            "view_delay_p50_ms",
            "ack → status view shows the order, p50",
            pct(&mut delay, 0.50),
            "ms",
            None,
        );
        r.add(
            "view_delay_p99_ms",
            "ack → status view shows the order, p99",
            pct(&mut delay, 0.99),
            "ms",
            None,
        );
        let total_orders = n + warm + scaled(500);
        settled(&node, total_orders).await;
        node.shutdown().await;
        drop(node);
        let per_order = |n: u64| n as f64 / total_orders as f64;
        let (keys, live) = live_data(dir.path());
        let disk = per_order(dir_bytes(dir.path()));
        r.add("keys_per_order", "keys stored per order (all trees)", per_order(keys), "", None);
        r.add("live_bytes_per_order", "bytes of keys and values per order", per_order(live), "B", None);
        r.add(
            "disk_bytes_per_order",
            "bytes on disk per order after shutdown",
            disk,
            "B",
            Some(("live bytes", disk / per_order(live))),
        );
    }

    // ---- over HTTP
    if phase("http") {
        println!("http:");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let waking = wake_delays(stop.clone());
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::Relaxed);
        let mut idle = waking.join().unwrap();
        let idle_wake_p99 = pct(&mut idle, 0.99);
        r.add("idle_wake_p99_ms", "a sleeping thread wakes late by, p99, idle", idle_wake_p99, "ms", None);
        let dir = tempfile::tempdir().unwrap();
        let app = fulfil::Application::build(bench_settings(dir.path())).await.unwrap();
        let url = format!("http://{}", app.address());
        let handle = app.server_handle();
        let node = app.node();
        let served = tokio::spawn(app.run_until_stopped());
        add_stock(&node).await;
        let secs = scaled(10).max(3);
        // Orders that exist, for the readers of GET /status/{id}.
        let mut ids = Vec::new();
        for i in 0..200 {
            ids.push(node.place_order(card_order(i), None).await.unwrap().id.to_string());
        }
        let cpu_before = cpu_seconds();
        let full = fulfil::load::run(load_spec(&url, 64, secs, None)).await.unwrap();
        let cpu = cpu_seconds() - cpu_before;
        r.add(
            "http_orders_per_s",
            "HTTP POST /orders, full speed, 64 clients",
            full.acknowledged_rps,
            "/s",
            Some(("no-op HTTP", full.acknowledged_rps / noop_rps)),
        );
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        r.add(
            "http_full_cores_busy",
            "  cores busy (whole process, load tool included)",
            cpu / full.elapsed_s,
            "",
            Some(("cores", cpu / full.elapsed_s / cores)),
        );
        r.add(
            "http_full_cpu_ms_per_order",
            "  CPU time per order (the same)",
            cpu * 1000.0 / full.acknowledged as f64,
            "ms",
            None,
        );
        r.add("http_full_p50_ms", "  p50 at full speed", full.p50_ms, "ms", None);
        r.add("http_full_p99_ms", "  p99 at full speed", full.p99_ms, "ms", None);
        for (key, label, share) in [
            ("http_50", "HTTP POST /orders at 50% of max", 0.5),
            ("http_80", "HTTP POST /orders at 80% of max", 0.8),
        ] {
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let reader = tokio::spawn(status_reader(url.clone(), ids.clone(), 200, stop.clone()));
            let waking = wake_delays(stop.clone());
            let writer_before = node.store_writer();
            let fixed = fulfil::load::run(load_spec(&url, 64, secs, Some(full.acknowledged_rps * share)))
                .await
                .unwrap();
            stop.store(true, Ordering::Relaxed);
            let mut reads = reader.await.unwrap();
            let mut woke = waking.join().unwrap();
            r.add(&format!("{key}_rate"), label, fixed.acknowledged_rps, "/s", None);
            r.add(&format!("{key}_p50_ms"), "  p50", fixed.p50_ms, "ms", None);
            r.add(&format!("{key}_p99_ms"), "  p99", fixed.p99_ms, "ms", None);
            r.add(&format!("{key}_p999_ms"), "  p99.9", fixed.p999_ms, "ms", None);
            r.add(
                &format!("{key}_status_p50_ms"),
                "  GET /status/{id} p50 meanwhile (200/s)",
                pct(&mut reads, 0.50),
                "ms",
                None,
            );
            r.add(
                &format!("{key}_status_p99_ms"),
                "  GET /status/{id} p99 meanwhile",
                pct(&mut reads, 0.99),
                "ms",
                None,
            );
            r.add(
                &format!("{key}_writer_hold_p99_ms"),
                "  a read waits behind a store write this long, p99",
                ms(node.store_writer().hold_quantile_by_time(&writer_before, 0.99)),
                "ms",
                None,
            );
            r.add(
                &format!("{key}_wake_p99_ms"),
                "  a sleeping thread wakes late by, p99 meanwhile",
                pct(&mut woke, 0.99),
                "ms",
                Some(("idle machine", pct(&mut woke, 0.99) / idle_wake_p99)),
            );
        }
        let orders_url = format!("{url}/orders");
        if let Some(wrk) = tokio::task::spawn_blocking(move || wrk_rate(&orders_url, secs)).await.unwrap() {
            r.add(
                "http_orders_wrk_per_s",
                "HTTP POST /orders under wrk -t1 -c64",
                wrk,
                "/s",
                Some(("no-op HTTP", wrk / noop_rps)),
            );
        }
        handle.stop(true).await;
        let _ = served.await;
        let _ = node;
    }

    // ---- the log published to NATS JetStream
    if phase("stream") {
        println!("stream (NATS JetStream):");
        match nats_server() {
            Some(nats) => stream_phase(&mut r, &nats.url).await,
            None => println!("  (nats-server is not installed: scripts/bench-tools.sh)"),
        }
    }

    // ---- several nodes sharing one store through JetStream
    if phase("failover") {
        println!("failover (NATS JetStream):");
        match nats_server() {
            Some(nats) => failover_phase(&mut r, &nats.url).await,
            None => println!("  (nats-server is not installed: scripts/bench-tools.sh)"),
        }
    }

    // ---- a cluster split into shards
    if phase("shards") {
        println!("shards (NATS JetStream):");
        match nats_server() {
            Some(nats) => shards_phase(&mut r, &nats.url).await,
            None => println!("  (nats-server is not installed: scripts/bench-tools.sh)"),
        }
    }

    r.print();
    r.json.insert("seconds".into(), json!(started.elapsed().as_secs_f64()));
    r.json.insert("scale".into(), json!(scale()));
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-report.json");
    std::fs::write(&out, serde_json::to_string_pretty(&r.json).unwrap()).unwrap();
    println!("\nreport: {} ({:.0} s)", out.display(), started.elapsed().as_secs_f64());
}
