//! `spawn_app()` and the requests the tests share.

use fulfil::{Application, Node, Settings};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// How long a test waits for the asynchronous side of the saga.
const SETTLE: Duration = Duration::from_secs(5);

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub node: Node,
    server: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Kept so the directory lives as long as the app; `None` when the
    /// caller owns the directory (restart tests).
    _dir: Option<TempDir>,
}

pub fn test_settings(dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.http.bind = "127.0.0.1:0".into();
    settings.http.workers = 1;
    settings.store.path = dir.to_path_buf();
    settings.store.cache_mb = 16;
    settings
}

/// A node with its HTTP gateway on a free port and a fresh data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = TempDir::new().expect("temp dir");
    let mut settings = test_settings(dir.path());
    adjust(&mut settings);
    let mut app = spawn_with(settings).await;
    app._dir = Some(dir);
    app
}

/// A node on an existing data directory, e.g. to restart on it.
pub async fn spawn_app_at(dir: &Path) -> TestApp {
    spawn_with(test_settings(dir)).await
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    spawn_with_clock(settings, std::sync::Arc::new(fulfil::clock::SystemClock)).await
}

/// A node whose engine time is `clock` (timers), on `settings`.
pub async fn spawn_with_clock(
    settings: Settings,
    clock: std::sync::Arc<dyn fulfil::clock::Clock>,
) -> TestApp {
    let client = client_of(&settings);
    let app = Application::build_with_clock(settings, clock).await.expect("the app starts");
    let address = format!("http://{}", app.address());
    let node = app.node();
    let server = app.server_handle();
    let task = tokio::spawn(app.run_until_stopped());
    TestApp { address, client, node, server, task, _dir: None }
}

/// The test's client of a node on `settings`: of a shard that knows its
/// cluster's hop key, as its node's router calls it (with the key), since
/// it takes no other request.
fn client_of(settings: &Settings) -> reqwest::Client {
    let hop = settings.stream.shard.as_ref().map(|shard| shard.hop.as_str()).filter(|hop| !hop.is_empty());
    let Some(hop) = hop else { return reqwest::Client::new() };
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("fulfil-hop", hop.parse().expect("a header value"));
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

// Used by the seed tests, which share this file.
#[allow(dead_code)]
/// A node in `dir` whose engine time is the manual `clock`, looking for
/// due timers every 10 ms of real time.
pub async fn spawn_on_clock(dir: &Path, clock: &std::sync::Arc<fulfil::clock::ManualClock>) -> TestApp {
    let mut settings = test_settings(dir);
    settings.timers.tick_ms = 10;
    spawn_with_clock(settings, clock.clone()).await
}

#[allow(dead_code)]
/// Several ticks of the timer loop of [`spawn_on_clock`], in real time: to
/// see that a timer not yet due does nothing. The engine's own time is
/// moved by hand.
pub async fn a_few_ticks() {
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

impl TestApp {
    /// Stops the server and the node (flushing the store), as SIGTERM would.
    pub async fn stop(self) -> Option<TempDir> {
        self.server.stop(true).await;
        self.task.await.expect("the server task").expect("the server ran");
        self._dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str) -> Response {
        self.client.post(self.url(path)).send().await.expect("request sent")
    }

    /// Places an order with an idempotency key, retrying while the node
    /// answers 503 (a service restarting), as a well-behaved client does.
    /// Returns the order's id.
    pub async fn place_retrying(&self, body: &Value, key: &str) -> String {
        let deadline = Instant::now() + SETTLE;
        loop {
            let r =
                self.client.post(self.url("/orders")).header("Idempotency-Key", key).json(body).send().await;
            let r = r.expect("request sent");
            match r.status() {
                StatusCode::CREATED => {
                    return r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
                }
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::CONFLICT if Instant::now() < deadline => {
                    assert!(r.headers().contains_key("retry-after") || r.status() == StatusCode::CONFLICT);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => panic!("placing {body} answered {other}: {}", r.text().await.unwrap()),
            }
        }
    }

    /// Polls until readiness is 200.
    pub async fn wait_until_ready(&self) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let r = self.get("/health/ready").await;
            let ok = r.status() == StatusCode::OK;
            let body: Value = r.json().await.unwrap();
            if ok {
                return body;
            }
            assert!(Instant::now() < deadline, "the node did not become ready: {body}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.client.post(self.url(path)).json(body).send().await.expect("request sent")
    }

    /// Sends `body` verbatim as JSON (for malformed bodies).
    pub async fn post_raw(&self, path: &str, body: &str) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn add_product(&self, sku: &str, price: i64, stock: i64) {
        let body = json!({"sku": sku, "name": format!("{sku} product"), "price": price, "stock": stock});
        let r = self.post_json("/products", &body).await;
        assert_eq!(r.status(), StatusCode::CREATED, "adding {sku}");
    }

    pub async fn stock(&self, sku: &str) -> i64 {
        let r = self.get(&format!("/products/{sku}")).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json::<Value>().await.unwrap()["stock"].as_i64().unwrap()
    }

    /// Places an order and returns its id, asserting a 201.
    pub async fn place(&self, body: &Value) -> String {
        let r = self.post_json("/orders", body).await;
        assert_eq!(r.status(), StatusCode::CREATED, "placing {body}");
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
    }

    /// A bank-transfer order of `qty` MUGs whose deposit is confirmed and
    /// whose delivery has started: the precondition of the later steps.
    pub async fn order_in_delivery(&self, customer: &str, qty: i64) -> String {
        let id = self.place(&order_body(customer, "MUG", qty, "bank_transfer")).await;
        let r = self.post(&format!("/payments/{id}/confirm")).await;
        assert_eq!(r.status(), StatusCode::OK);
        self.wait_for_status(&id, "in_delivery").await;
        id
    }

    /// Polls the status view until `order` shows `status`; panics with the
    /// last view seen if it does not within [`SETTLE`].
    pub async fn wait_for_status(&self, order: &str, status: &str) -> Value {
        let deadline = Instant::now() + SETTLE;
        let (mut last, mut refused) = (Value::Null, None);
        while Instant::now() < deadline {
            let r = self.get(&format!("/status/{order}")).await;
            if r.status() == StatusCode::OK {
                last = r.json().await.unwrap();
                if last["status"] == status {
                    return last;
                }
            } else {
                refused = Some((r.status(), r.text().await.unwrap_or_default()));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("order {order} did not reach {status} within {SETTLE:?}; last view: {last}; last refusal: {refused:?}");
    }

    /// Polls the status view until `order`'s delivery is at `leg`.
    #[allow(dead_code)] // used by the seed tests, which share this file
    pub async fn wait_until_leg(&self, order: &str, leg: &str) -> Value {
        let deadline = Instant::now() + SETTLE;
        loop {
            let view: Value = self.get(&format!("/status/{order}")).await.json().await.unwrap();
            if view["delivery"]["leg"] == leg && view["delivery"]["state"] == "in_transit" {
                return view;
            }
            assert!(Instant::now() < deadline, "order {order} never reached leg {leg}: {view}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Polls until the projection and notifications have processed every
    /// event in the log, so that "nothing else happened" can be asserted.
    pub async fn settle(&self) {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            let h = self.node.health();
            if h.services.values().all(|s| s.lag == 0 && s.offset == h.log_head) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the services did not catch up with the log: {:?}", self.node.health());
    }
}

pub fn order_body(customer: &str, sku: &str, qty: i64, payment: &str) -> Value {
    json!({
        "customer": customer,
        "items": [{"sku": sku, "qty": qty}],
        "address": "1 Sejong-daero, Seoul",
        "payment": payment,
        "card": "4111 1111 1111 1111",
    })
}

/// The statuses of an order's history, oldest first.
pub fn history(view: &Value) -> Vec<String> {
    view["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap().to_owned()).collect()
}

/// Asserts an RFC 9457 problem with `status` and returns its body.
pub async fn assert_problem(r: Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(body["type"].as_str().unwrap().starts_with("/problems/"));
    assert!(!body["detail"].as_str().unwrap().is_empty());
    body
}
