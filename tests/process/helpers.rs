//! Running the binary, driving load at it, and checking every invariant of
//! its data afterwards.

use fulfil::cluster::Rebuilt;
use fulfil::domain::delivery::Delivery;
use fulfil::domain::inventory::Reservation;
use fulfil::domain::{Event, EventKind, Notification, Order, OrderId, OrderStatus, Product, StatusView};
use fulfil::store::{decode, Store};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The running binary; killed and reaped on drop, so a failing test leaves
/// no process behind.
pub struct Proc {
    child: Option<Child>,
    pub address: String,
    /// What it wrote to stderr before its address, and the rest to come.
    log: Option<(Vec<String>, mpsc::Receiver<String>)>,
}

impl Proc {
    /// Starts the binary on a free port with its data in `data`.
    pub fn start(data: &Path) -> Proc {
        Proc::start_with(data, &[])
    }

    /// Like [`Proc::start`], with more environment variables.
    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
            .arg("serve")
            .env("FULFIL_HTTP__BIND", "127.0.0.1:0")
            .env("FULFIL_STORE__PATH", data)
            .env("FULFIL_SHUTDOWN__DRAIN_MS", "200")
            // These tests are about crashes; the checker queries hundreds of
            // orders from one address.
            .env("FULFIL_HTTP__RATE_PER_CLIENT", "0")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            // Last, so that they override the defaults above.
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let mut proc = Proc { child: Some(child), address: String::new(), log: None };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        while proc.address.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no address logged: {seen:?}"));
            if let Some(rest) = line.split("listening on http://").nth(1) {
                assert!(line.contains(&data.display().to_string()), "it logs where its data is: {line}");
                // Text or JSON: the address ends at a space or a quote.
                let address = rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap();
                proc.address = format!("http://{address}");
            }
            seen.push(line);
        }
        proc.log = Some((seen, rx));
        proc
    }

    /// Every line the process writes to stderr, from its start to its exit
    /// (read until it exits: call after [`Proc::wait`] began, or kill it).
    pub fn log(&mut self) -> impl Iterator<Item = String> {
        let (seen, rest) = self.log.take().expect("the log is taken once");
        seen.into_iter().chain(rest)
    }

    /// Runs the binary with `env` expecting it to refuse to start: its exit
    /// status and what it wrote to stderr.
    /// A node that starts anyway is killed after 20 s and the test fails
    /// on its (successful-looking) output rather than hanging.
    pub fn refused(data: &Path, env: &[(&str, &str)]) -> (ExitStatus, String) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
            .arg("serve")
            .env("FULFIL_HTTP__BIND", "127.0.0.1:0")
            .env("FULFIL_STORE__PATH", data)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().expect("waiting for the binary").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().expect("the binary's output");
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill").arg(format!("-{name}")).arg(self.pid().to_string()).status().unwrap();
        assert!(sent.success());
    }

    /// [`Proc::wait`], and every line the process wrote.
    pub async fn wait_logged(mut self, limit: Duration) -> (ExitStatus, String) {
        let (seen, rest) = self.log.take().expect("the log is taken once");
        let status = self.wait(limit).await;
        (status, seen.into_iter().chain(rest).collect::<Vec<_>>().join("\n"))
    }

    /// Waits for the process to exit on its own, at most `limit`.
    pub async fn wait(mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let waited = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + limit;
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    return Some(status);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        waited.await.unwrap().unwrap_or_else(|| panic!("the process did not exit within {limit:?}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap()
}

pub async fn add_products(address: &str, products: &[(&str, i64)]) {
    for (sku, stock) in products {
        let body = json!({"sku": sku, "name": sku, "price": 1000, "stock": stock});
        let r = client().post(format!("{address}/products")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
    }
}

/// An order the node acknowledged with 201.
#[derive(Debug, Clone)]
pub struct Acked {
    pub id: String,
}

/// Concurrent clients placing orders until stopped or the node goes away.
pub struct Load {
    pub acked: Arc<Mutex<Vec<Acked>>>,
    /// Answers other than 201, 429 or 503 with Retry-After, or a dropped
    /// connection.
    pub unexpected: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// `clients` tasks, each placing orders: mostly card, some bank transfer
    /// confirmed right away, some for the scarce `RARE` product.
    pub fn drive(address: &str, clients: usize, round: usize) -> Load {
        Load::drive_mixed(address, clients, 0, round)
    }

    /// As [`Load::drive`], and `drivers` more tasks calling drivers of the
    /// pool in [`crate::lifecycle`] for rides.
    pub fn drive_mixed(address: &str, clients: usize, drivers: usize, round: usize) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let unexpected = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients + drivers)
            .map(|c| {
                let (address, acked, unexpected, stop) =
                    (address.to_owned(), acked.clone(), unexpected.clone(), stop.clone());
                match c < clients {
                    true => tokio::spawn(client_loop(address, c, round, acked, unexpected, stop)),
                    false => tokio::spawn(crate::lifecycle::driver_loop(
                        address, c, round, acked, unexpected, stop,
                    )),
                }
            })
            .collect();
        Load { acked, unexpected, stop, tasks }
    }

    /// Stops the clients and returns what was acknowledged.
    pub async fn finish(self) -> (Vec<Acked>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().clone();
        let unexpected = self.unexpected.lock().unwrap().clone();
        (acked, unexpected)
    }
}

async fn client_loop(
    address: String,
    c: usize,
    round: usize,
    acked: Arc<Mutex<Vec<Acked>>>,
    unexpected: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
) {
    let http = client();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let bank = n % 4 == 0;
        // Some bank transfers are never paid: they expire, if the shop's
        // expiry is short enough (see the crash test).
        let unpaid = n % 8 == 4;
        let sku = if n % 5 == 0 { "RARE" } else { "MUG" };
        let body = json!({
            "customer": format!("c{c}"),
            "items": [{"sku": sku, "qty": 1 + n % 2}],
            "address": "Seoul",
            "payment": if bank { "bank_transfer" } else { "card" },
            "card": "4111111111111111",
        });
        let key = format!("r{round}-c{c}-n{n}");
        let sent = http
            .post(format!("{address}/orders"))
            .header("Idempotency-Key", key)
            .header("X-Client-Id", format!("c{c}"))
            .json(&body)
            .send()
            .await;
        let Ok(r) = sent else { return }; // the node is gone
        match r.status() {
            StatusCode::CREATED => {
                let id = r.json::<Value>().await.map(|v| v["id"].as_str().unwrap_or_default().to_owned());
                let Ok(id) = id else { return };
                if bank
                    && !unpaid
                    && http.post(format!("{address}/payments/{id}/confirm")).send().await.is_err()
                {
                    acked.lock().unwrap().push(Acked { id });
                    return;
                }
                acked.lock().unwrap().push(Acked { id });
            }
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                if r.headers().contains_key("retry-after") =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => {
                let text = r.text().await.unwrap_or_default();
                unexpected.lock().unwrap().push(format!("{other}: {text}"));
            }
        }
    }
}

/// Waits until the node is ready and every service has processed the whole
/// log.
pub async fn settle(address: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client().get(format!("{address}/health/ready")).send().await {
            let ok = r.status() == StatusCode::OK;
            let body: Value = r.json().await.unwrap();
            let caught_up = body["services"].as_object().is_some_and(|s| s.values().all(|h| h["lag"] == 0));
            if ok && caught_up {
                return body;
            }
            assert!(Instant::now() < deadline, "the node did not settle: {body}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The statuses an order of the load may end in: nothing stops half-way
/// (a driver call rests at `reserved` or `in_delivery` until its ride goes on).
const FINAL: [OrderStatus; 5] = [
    OrderStatus::InDelivery,
    OrderStatus::PaymentPending,
    OrderStatus::Canceled,
    OrderStatus::Closed,
    OrderStatus::Reserved,
];

/// Over HTTP: every acknowledged order exists, is in a final status, and
/// the status view agrees with the command side.
pub async fn check_acknowledged(address: &str, acked: &[Acked]) {
    let http = client();
    for a in acked {
        let r = http.get(format!("{address}/orders/{}", a.id)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "acknowledged order {} is lost", a.id);
        let order: Value = r.json().await.unwrap();
        let view: Value =
            http.get(format!("{address}/status/{}", a.id)).send().await.unwrap().json().await.unwrap();
        assert_eq!(view["status"], order["status"], "view and command side disagree on {}", a.id);
    }
}

/// Opens the stopped node's store and checks, from the log and every
/// service's trees: nothing happened twice, no saga stopped half-way, stock
/// is conserved, one notification per status change, views agree.
pub fn check_store(data: &Path, initial: &[(&str, u64)]) -> (usize, crate::lifecycle::Seen) {
    let store = Store::open(data, 16 << 20).expect("the store reopens");
    let events = store.read_log(0, usize::MAX).unwrap();
    let mut by_order: BTreeMap<String, Vec<&Event>> = BTreeMap::new();
    for e in &events {
        by_order.entry(e.order_id.to_string()).or_default().push(e);
    }
    let orders: HashMap<String, Order> = by_text_key(all(&store, "orders"));
    let views: HashMap<String, StatusView> = by_text_key(all(&store, "status_views"));
    let deliveries: HashMap<String, Delivery> = by_text_key(all(&store, "deliveries"));
    let reservations: HashMap<String, Reservation> = by_text_key(all(&store, "reservations"));
    let notifications: Vec<Notification> = fulfil::actors::notification::stored(&store).unwrap();
    let mut taken: HashMap<String, i64> = HashMap::new();
    for (id, evs) in &by_order {
        let mut kinds: HashMap<&str, usize> = HashMap::new();
        for e in evs {
            *kinds.entry(e.kind.name()).or_default() += 1;
            match &e.kind {
                EventKind::StockReserved { lines, .. } => {
                    lines.iter().for_each(|(s, q)| *taken.entry(s.to_string()).or_default() += i64::from(*q))
                }
                EventKind::StockReleased { lines } => {
                    lines.iter().for_each(|(s, q)| *taken.entry(s.to_string()).or_default() -= i64::from(*q))
                }
                _ => {}
            }
        }
        for (kind, n) in &kinds {
            assert_eq!(*n, 1, "order {id}: {kind} happened {n} times");
        }
        let names: Vec<&str> = evs.iter().map(|e| e.kind.name()).collect();
        if names == ["stock_reserved", "stock_released"] && !orders.contains_key(id) {
            continue; // reserved while being placed, the node died, released at start
        }
        let order =
            orders.get(id).unwrap_or_else(|| panic!("order {id} has events ({names:?}) but no record"));
        assert!(FINAL.contains(&order.status), "order {id} stopped half-way at {}", order.status);
        assert_eq!(
            Order::replay(&order.id, evs.iter().map(|e| &e.kind)).as_ref(),
            Some(order),
            "order {id}: the record is not what its events replay to"
        );
        assert_eq!(
            Reservation::replay(evs.iter().map(|e| &e.kind)).as_ref(),
            reservations.get(id),
            "order {id}: the reservation is not what its events replay to"
        );
        let delivery = deliveries.get(id).unwrap_or_else(|| panic!("order {id} has no delivery"));
        assert_eq!(
            Delivery::replay(&order.id, evs.iter().map(|e| &e.kind)).as_ref(),
            Some(delivery),
            "order {id}: the delivery is not what its events replay to"
        );
        let paid = kinds.contains_key("order_paid") || kinds.contains_key("payment_captured");
        if order.status == OrderStatus::Canceled
            && order.payment != fulfil::domain::PaymentMethod::None
            && paid
        {
            assert!(
                kinds.contains_key("payment_refunded"),
                "order {id} was canceled after payment without a refund"
            );
        }
        let status_events = evs.iter().filter(|e| e.kind.status().is_some()).count();
        let view = views.get(id).unwrap_or_else(|| panic!("order {id} has no status view"));
        assert_eq!(view.status, order.status, "order {id}: view and command side disagree");
        assert_eq!(
            StatusView::replay(evs.iter().copied()).as_ref(),
            Some(view),
            "order {id}: the status view is not what its events replay to"
        );
        assert_eq!(view.history.len(), status_events, "order {id}: history");
        let told =
            |e: &&&Event| e.kind.status().is_some() || matches!(e.kind, EventKind::PaymentRefunded { .. });
        let sent = notifications.iter().filter(|n| n.order_id.as_str() == id).count();
        assert_eq!(
            sent,
            evs.iter().filter(told).count(),
            "order {id}: one notification per status change and refund"
        );
    }
    let seen = crate::lifecycle::check_units_and_timers(&store, &by_order);
    let products: HashMap<String, Product> = by_text_key(all(&store, "products"));
    for (sku, stock) in initial {
        let left = products[*sku].stock;
        assert_eq!(
            *stock as i64 - left as i64,
            taken.get(*sku).copied().unwrap_or(0),
            "{sku}: stock is conserved"
        );
    }
    (by_order.len(), seen)
}

/// The orders, deliveries and reservations a stopped node's store holds.
pub fn stored_state(data: &Path) -> Rebuilt {
    let store = Store::open(data, 16 << 20).expect("the store reopens");
    Rebuilt {
        orders: by_order_id(all(&store, "orders")),
        deliveries: by_order_id(all(&store, "deliveries")),
        reservations: by_order_id(all(&store, "reservations")),
        views: by_order_id(all(&store, "status_views")),
    }
}

/// For trees keyed by an order's id.
fn by_order_id<T>(entries: Vec<(Vec<u8>, T)>) -> BTreeMap<OrderId, T> {
    let id = |k: Vec<u8>| OrderId::parse(&String::from_utf8(k).expect("a text key")).expect("an order id");
    entries.into_iter().map(|(k, v)| (id(k), v)).collect()
}

/// Every entry of a tree, with its raw key (some keys hold binary numbers).
fn all<T: serde::de::DeserializeOwned>(store: &Store, tree: &str) -> Vec<(Vec<u8>, T)> {
    let entries = store.raw_entries(tree).unwrap();
    entries.into_iter().map(|(k, v)| (k, decode(&v).unwrap())).collect()
}

/// For trees keyed by an id string.
fn by_text_key<T>(entries: Vec<(Vec<u8>, T)>) -> HashMap<String, T> {
    entries.into_iter().map(|(k, v)| (String::from_utf8(k).expect("a text key"), v)).collect()
}

/// The name of the JetStream server that leads `stream`, once it has one.
pub async fn stream_leader(url: &str, stream: &str) -> String {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = js.get_stream(stream).await {
            let info = stream.info().await.ok();
            let leader = info.and_then(|i| i.cluster.as_ref().and_then(|c| c.leader.clone()));
            if let Some(leader) = leader.filter(|l| !l.is_empty()) {
                return leader;
            }
        }
        assert!(Instant::now() < deadline, "{stream} has no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
