//! The load generator behind `fulfil load`: concurrent clients placing card
//! orders at a node, for a bounded time and count, on loopback only.
//!
//! Closed loop by default (each client sends its next order when the last
//! is answered). With `rate`, open loop: requests are scheduled at a fixed
//! rate and latency is measured from each request's *scheduled* time, so a
//! stalled server shows up as latency instead of hiding behind fewer
//! requests (coordinated omission).

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most clients one run may start.
pub const MAX_CLIENTS: usize = 1000;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The node's base URL; must be a loopback address.
    pub url: String,
    pub clients: usize,
    pub duration: Duration,
    /// Requests per second across all clients (open loop); `None`: as fast
    /// as answers come (closed loop).
    pub rate: Option<f64>,
    pub max_requests: u64,
    pub timeout: Duration,
    /// Where to write the ids of acknowledged orders, one a line.
    pub ids_out: Option<PathBuf>,
    /// A process whose resident memory to sample once a second (the node).
    pub watch_pid: Option<u32>,
    /// The API key sent as `Authorization: Bearer`, for a node with keys
    /// (an operator's: it places orders for its load customers and adds
    /// their product).
    pub key: Option<String>,
    /// How many products the orders are spread over (1: `LOAD` alone;
    /// more: `LOAD-0`, `LOAD-1`, ...), so that a cluster split into shards
    /// gets orders on several.
    pub skus: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub requests: u64,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// 429 and 503 answers that did not say when to come back.
    pub without_retry_after: u64,
    /// Requests that got no answer within the timeout.
    pub timeouts: u64,
    /// Requests that failed otherwise (connection refused or reset).
    pub errors: u64,
    pub acknowledged: u64,
    pub elapsed_s: f64,
    pub throughput_rps: f64,
    pub acknowledged_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Peak and last resident memory of the watched process, in MiB.
    pub peak_rss_mib: Option<f64>,
    pub last_rss_mib: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Invalid(String),
    #[error("setting up the load failed: {0}")]
    Setup(String),
    #[error("writing {path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// The sku the load orders; created with ample stock if missing.
const SKU: &str = "LOAD";
/// Most products a load spreads its orders over.
pub const MAX_SKUS: usize = 1000;

/// The load's products: `LOAD`, or `LOAD-0` to `LOAD-<skus - 1>`.
fn skus(count: usize) -> Vec<String> {
    match count {
        0 | 1 => vec![SKU.to_owned()],
        n => (0..n).map(|i| format!("{SKU}-{i}")).collect(),
    }
}

impl LoadSpec {
    fn validate(&self) -> Result<reqwest::Url, LoadError> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| LoadError::Invalid(format!("url: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(LoadError::Invalid(
                "load goes to loopback addresses only (127.0.0.0/8, ::1, localhost)".into(),
            ));
        }
        if self.clients == 0 || self.clients > MAX_CLIENTS {
            return Err(LoadError::Invalid(format!("clients must be 1 to {MAX_CLIENTS}")));
        }
        if self.duration.is_zero() || self.duration > MAX_DURATION {
            return Err(LoadError::Invalid(format!("duration must be 1 s to {} s", MAX_DURATION.as_secs())));
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            return Err(LoadError::Invalid("rate must be a positive number".into()));
        }
        if self.skus == 0 || self.skus > MAX_SKUS {
            return Err(LoadError::Invalid(format!("skus must be 1 to {MAX_SKUS}")));
        }
        Ok(url)
    }
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    by_status: BTreeMap<u16, u64>,
    without_retry_after: u64,
    timeouts: u64,
    errors: u64,
    latencies_us: Vec<u32>,
    acknowledged: Vec<String>,
}

pub async fn run(spec: LoadSpec) -> Result<LoadReport, LoadError> {
    let base = spec.validate()?;
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(key) = &spec.key {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
            .map_err(|_| LoadError::Setup("the key is not a valid header value".into()))?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(spec.timeout)
        .pool_max_idle_per_host(spec.clients)
        .build()
        .map_err(|e| LoadError::Setup(e.to_string()))?;
    let skus: Arc<[String]> = skus(spec.skus).into();
    for sku in skus.iter() {
        setup(&http, &base, sku).await?;
    }
    let sampler = spec.watch_pid.map(RssSampler::start);
    let started = Instant::now();
    let deadline = started + spec.duration;
    let sent = Arc::new(AtomicU64::new(0));
    let run_id = crate::domain::now_ms();
    let interval = spec.rate.map(|r| Duration::from_secs_f64(spec.clients as f64 / r));
    let tasks: Vec<_> = (0..spec.clients)
        .map(|c| {
            let (http, base, skus, sent) = (http.clone(), base.clone(), skus.clone(), sent.clone());
            let client = Client { http, base, id: c, run_id, sent, skus };
            let max = spec.max_requests;
            tokio::spawn(async move { client.run(deadline, interval, max).await })
        })
        .collect();
    let mut total = Tally::default();
    for task in tasks {
        let t = task.await.map_err(|e| LoadError::Setup(e.to_string()))?;
        for (status, n) in t.by_status {
            *total.by_status.entry(status).or_default() += n;
        }
        total.without_retry_after += t.without_retry_after;
        total.timeouts += t.timeouts;
        total.errors += t.errors;
        total.latencies_us.extend(t.latencies_us);
        total.acknowledged.extend(t.acknowledged);
    }
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(path) = &spec.ids_out {
        let text: String = total.acknowledged.iter().map(|id| format!("{id}\n")).collect();
        std::fs::write(path, text)
            .map_err(|source| LoadError::Write { path: path.display().to_string(), source })?;
    }
    let (peak, last) = sampler.map(RssSampler::stop).unwrap_or((None, None));
    Ok(report(total, elapsed, peak, last))
}

fn report(mut t: Tally, elapsed_s: f64, peak_rss_mib: Option<f64>, last_rss_mib: Option<f64>) -> LoadReport {
    t.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if t.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((t.latencies_us.len() as f64 * p).ceil() as usize).clamp(1, t.latencies_us.len()) - 1;
        f64::from(t.latencies_us[i]) / 1000.0
    };
    let requests = t.by_status.values().sum::<u64>() + t.timeouts + t.errors;
    let acknowledged = t.acknowledged.len() as u64;
    LoadReport {
        requests,
        without_retry_after: t.without_retry_after,
        timeouts: t.timeouts,
        errors: t.errors,
        acknowledged,
        elapsed_s,
        throughput_rps: requests as f64 / elapsed_s,
        acknowledged_rps: acknowledged as f64 / elapsed_s,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        max_ms: t.latencies_us.last().map(|v| f64::from(*v) / 1000.0).unwrap_or(0.0),
        by_status: t.by_status,
        peak_rss_mib,
        last_rss_mib,
    }
}

/// Creates one of the load's products, unless it exists.
async fn setup(http: &reqwest::Client, base: &reqwest::Url, sku: &str) -> Result<(), LoadError> {
    let body = serde_json::json!({"sku": sku, "name": "Load test item", "price": 1000, "stock": 1_000_000_000_000i64});
    let url = base.join("/products").map_err(|e| LoadError::Setup(e.to_string()))?;
    let r = http.post(url).json(&body).send().await.map_err(|e| LoadError::Setup(e.to_string()))?;
    match r.status().as_u16() {
        201 | 409 => Ok(()),
        other => Err(LoadError::Setup(format!("creating the product answered {other}"))),
    }
}

struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    id: usize,
    run_id: u64,
    sent: Arc<AtomicU64>,
    skus: Arc<[String]>,
}

impl Client {
    async fn run(self, deadline: Instant, interval: Option<Duration>, max: u64) -> Tally {
        let mut tally = Tally::default();
        let mut next = Instant::now();
        let Ok(url) = self.base.join("/orders") else { return tally };
        for n in 0.. {
            // Open loop waits for the scheduled time (sending at once when
            // behind); closed loop sends now.
            match interval {
                Some(_) if next > Instant::now() => tokio::time::sleep_until(next.into()).await,
                Some(_) => {}
                None => next = Instant::now(),
            }
            if Instant::now() >= deadline || self.sent.fetch_add(1, Ordering::Relaxed) >= max {
                break;
            }
            self.one(&url, n, next, &mut tally).await;
            if let Some(every) = interval {
                next += every;
            }
        }
        tally
    }

    /// One order; latency counts from `scheduled`.
    async fn one(&self, url: &reqwest::Url, n: u64, scheduled: Instant, tally: &mut Tally) {
        let body = serde_json::json!({
            "customer": format!("load-{}", self.id),
            "items": [{"sku": self.skus[(self.id + n as usize) % self.skus.len()], "qty": 1}],
            "address": "1 Load Street",
            "payment": "card",
            "card": "4111111111111111",
        });
        let sent = self
            .http
            .post(url.clone())
            .header("Idempotency-Key", format!("load-{}-{}-{n}", self.run_id, self.id))
            .header("X-Client-Id", format!("load-{}", self.id))
            .json(&body)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return tally.timeouts += 1,
            Err(_) => return tally.errors += 1,
        };
        let status = response.status().as_u16();
        if matches!(status, 429 | 503) && !response.headers().contains_key("retry-after") {
            tally.without_retry_after += 1;
        }
        let answer = response.json::<serde_json::Value>().await;
        tally.latencies_us.push(scheduled.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        *tally.by_status.entry(status).or_default() += 1;
        if let (201, Ok(body)) = (status, answer) {
            if let Some(id) = body["id"].as_str() {
                tally.acknowledged.push(id.to_owned());
            }
        }
    }
}

/// Samples a process's resident memory once a second from `/proc`.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(Option<f64>, Option<f64>)>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut peak, mut last) = (None::<f64>, None);
            while !flag.load(Ordering::Relaxed) {
                if let Some(now) = rss_mib(pid) {
                    peak = Some(peak.map_or(now, |p| p.max(now)));
                    last = Some(now);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            (peak, last)
        });
        RssSampler { stop, thread }
    }

    fn stop(self) -> (Option<f64>, Option<f64>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((None, None))
    }
}

/// A process's resident memory in MiB, from `/proc/<pid>/status`.
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

impl LoadReport {
    /// The report as a short table for people.
    pub fn table(&self) -> String {
        let statuses: Vec<String> = self.by_status.iter().map(|(s, n)| format!("{s}: {n}")).collect();
        let mut out = format!(
            "requests        {}\nanswers         {}\nno Retry-After  {}\ntimeouts        {}\nerrors          {}\n\
             acknowledged    {} ({:.1}/s)\nthroughput      {:.1} req/s over {:.1} s\n\
             latency         p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms\n",
            self.requests,
            statuses.join(", "),
            self.without_retry_after,
            self.timeouts,
            self.errors,
            self.acknowledged,
            self.acknowledged_rps,
            self.throughput_rps,
            self.elapsed_s,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
        );
        if let (Some(peak), Some(last)) = (self.peak_rss_mib, self.last_rss_mib) {
            out.push_str(&format!("node memory     peak {peak:.1} MiB, last {last:.1} MiB\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(url: &str) -> LoadSpec {
        LoadSpec {
            url: url.into(),
            clients: 1,
            duration: Duration::from_secs(1),
            rate: None,
            max_requests: 1,
            timeout: Duration::from_secs(1),
            ids_out: None,
            watch_pid: None,
            key: None,
            skus: 1,
        }
    }

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80", "http://127.5.5.5"] {
            assert!(spec(ok).validate().is_ok(), "{ok}");
        }
        for bad in ["http://10.0.0.1", "http://example.com", "http://192.168.1.1:8080", "not a url"] {
            assert!(spec(bad).validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn bounds_are_enforced() {
        let mut s = spec("http://127.0.0.1:1");
        s.clients = MAX_CLIENTS + 1;
        assert!(s.validate().is_err());
        let mut s = spec("http://127.0.0.1:1");
        s.duration = MAX_DURATION + Duration::from_secs(1);
        assert!(s.validate().is_err());
    }

    #[test]
    fn percentiles_come_from_the_sorted_latencies() {
        let t = Tally { latencies_us: (1..=1000).rev().map(|v| v * 1000).collect(), ..Tally::default() };
        let r = report(t, 1.0, None, None);
        assert_eq!((r.p50_ms, r.p99_ms, r.p999_ms, r.max_ms), (500.0, 990.0, 999.0, 1000.0));
    }
}
