//! Strict reading of the settings: every key must be known, in the file and
//! in the environment, and every number must make sense. A typo or a
//! meaningless value stops the start with a message that names it, rather
//! than running a default the operator did not choose.

use super::{Settings, SettingsError, DEFAULTS};
use std::collections::{BTreeMap, BTreeSet};

/// Environment variables the node reads settings from.
const PREFIX: &str = "FULFIL_";
/// Variables under the prefix that are not settings: the benchmark's knobs.
const NOT_SETTINGS: &[&str] = &["FULFIL_BENCH_"];
/// Sections whose keys are names the operator chooses (a workflow, a
/// service to inject faults into): checked when deserialised, not here.
const OPEN_SECTIONS: &[&str] = &["workflows", "faults"];

/// The `FULFIL_*` variables among `vars` that carry settings.
pub(super) fn environment(vars: impl Iterator<Item = (String, String)>) -> BTreeMap<String, String> {
    vars.filter(|(name, _)| name.starts_with(PREFIX) && !NOT_SETTINGS.iter().any(|p| name.starts_with(p)))
        .collect()
}

/// Every setting's variable name (`FULFIL_HTTP__BIND`), from the defaults.
fn known_variables() -> BTreeSet<String> {
    type Table = config::Map<String, config::Value>;
    fn walk(table: &Table, path: &mut Vec<String>, names: &mut BTreeSet<String>) {
        for (key, value) in table {
            path.push(key.to_uppercase());
            match &value.kind {
                config::ValueKind::Table(inner) => walk(inner, path, names),
                _ => {
                    names.insert(format!("{PREFIX}{}", path.join("__")));
                }
            }
            path.pop();
        }
    }
    let defaults = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<Table>())
        .unwrap_or_default();
    let mut names = BTreeSet::new();
    walk(&defaults, &mut Vec::new(), &mut names);
    names
}

/// Refuses a variable that names no setting, naming the nearest one.
pub(super) fn check_env_names(env: &BTreeMap<String, String>) -> Result<(), SettingsError> {
    let known = known_variables();
    for name in env.keys() {
        let section = name[PREFIX.len()..].split("__").next().unwrap_or("").to_lowercase();
        if known.contains(name) || OPEN_SECTIONS.contains(&section.as_str()) {
            continue;
        }
        let hint = nearest(name, known.iter().map(String::as_str))
            .map(|n| format!("; did you mean {n}?"))
            .unwrap_or_default();
        return Err(SettingsError::Invalid(format!(
            "environment variable {name} is not a setting (settings are FULFIL_<SECTION>__<KEY>){hint}"
        )));
    }
    Ok(())
}

/// The candidate closest to `word`, if any is close enough to be a typo.
fn nearest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .map(|c| (strsim::levenshtein(&word, &c.to_lowercase()), c))
        .filter(|(distance, c)| *distance <= (c.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// serde's "unknown field `bnd`, expected one of `bind`, …", with the
/// nearest known key added.
pub(super) fn explain(e: config::ConfigError) -> SettingsError {
    let text = e.to_string();
    let Some(rest) = text.split("unknown field `").nth(1) else { return SettingsError::Load(e) };
    let field = rest.split('`').next().unwrap_or("");
    let expected: Vec<&str> =
        rest.split("expected ").nth(1).unwrap_or("").split('`').skip(1).step_by(2).collect();
    let hint = nearest(field, expected.iter().copied())
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    SettingsError::Invalid(format!("{text}{hint}"))
}

/// A rule that a setting breaks, as the message that says so.
fn rule(ok: bool, message: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message.to_owned())
    }
}

/// The largest page cache accepted: 1 TiB (its bytes must fit in a u64).
const MAX_CACHE_MB: u64 = 1 << 20;
/// Longer, and a crash means folding a minute of events again at start.
const MAX_HOLD_BACK_MS: u64 = 60_000;

impl Settings {
    /// Every number within the range where it means something.
    pub(super) fn check_ranges(&self) -> Result<(), String> {
        let (h, t, m, sh, su, p) =
            (&self.http, &self.timeouts, &self.mailbox, &self.shutdown, &self.supervision, &self.payment);
        check_bind(&h.bind)?;
        rule(h.max_connections > 0, "http.max_connections must be at least 1 (0 refuses every client)")?;
        rule(
            h.header_timeout_ms > 0 && h.body_timeout_ms > 0,
            "http.header_timeout_ms and body_timeout_ms must be more than 0",
        )?;
        for proxy in &h.trusted_proxies {
            rule(
                proxy.parse::<std::net::IpAddr>().is_ok(),
                &format!("http.trusted_proxies: {proxy:?} is not an IP address"),
            )?;
        }
        check_otlp(&self.log.otlp_endpoint)?;
        check_stream(&self.stream)?;
        rule(self.actors.threads > 0, "actors.threads must be at least 1")?;
        rule(
            (1..=MAX_CACHE_MB).contains(&self.store.cache_mb),
            &format!("store.cache_mb must be 1 to {MAX_CACHE_MB}"),
        )?;
        rule(
            (1..=MAX_HOLD_BACK_MS).contains(&self.store.hold_back_ms),
            &format!("store.hold_back_ms must be 1 to {MAX_HOLD_BACK_MS}"),
        )?;
        rule(t.request_ms > 0, "timeouts.request_ms must be more than 0 (0 times out every call)")?;
        rule(t.payment_ms > 0, "timeouts.payment_ms must be more than 0")?;
        rule(m.wait_ms > 0, "mailbox.wait_ms must be more than 0 (0 refuses every call at once)")?;
        rule(sh.timeout_ms > 0, "shutdown.timeout_ms must be more than 0")?;
        rule(self.timers.tick_ms > 0, "timers.tick_ms must be more than 0")?;
        let w = &self.webhooks;
        rule(
            w.tick_ms > 0 && w.timeout_ms > 0 && w.retry_min_ms > 0 && w.retry_min_ms <= w.retry_max_ms,
            "webhooks: tick_ms, timeout_ms and retry_min_ms must be more than 0, retry_min_ms at most retry_max_ms",
        )?;
        rule(self.timers.idempotency_key_ttl_ms > 0, "timers.idempotency_key_ttl_ms must be more than 0")?;
        rule(
            su.window_ms > 0 && su.max_restarts > 0,
            "supervision.window_ms and max_restarts must be at least 1",
        )?;
        rule(su.ping_timeout_ms > 0, "supervision.ping_timeout_ms must be more than 0")?;
        rule(
            su.backoff_min_ms > 0 && su.backoff_min_ms <= su.backoff_max_ms,
            "supervision.backoff_min_ms must be more than 0 and at most backoff_max_ms",
        )?;
        rule(su.poison_after > 0, "supervision.poison_after must be at least 1")?;
        rule(p.gateway_timeout_ms > 0, "payment.gateway_timeout_ms must be more than 0")?;
        rule(p.max_deferred > 0, "payment.max_deferred must be at least 1")?;
        rule(
            p.decline_suffix.len() <= 4 && p.decline_suffix.bytes().all(|b| b.is_ascii_digit()),
            "payment.decline_suffix must be at most 4 digits (the gateway decides on a card's last four)",
        )?;
        rule(
            p.retry_min_ms > 0 && p.retry_min_ms <= p.retry_max_ms,
            "payment.retry_min_ms must be more than 0 and at most retry_max_ms",
        )?;
        rule(
            (0.0..=1.0).contains(&p.gateway_failure_rate),
            "payment.gateway_failure_rate must be within 0..=1",
        )?;
        rule(
            p.gateway_rate > 0 && p.gateway_burst > 0,
            "payment.gateway_rate and gateway_burst must be at least 1",
        )?;
        let b = &p.breaker;
        rule(
            b.failure_rate > 0.0 && b.failure_rate <= 1.0,
            "payment.breaker.failure_rate must be within 0 (exclusive) and 1",
        )?;
        rule(b.consecutive_failures > 0, "payment.breaker.consecutive_failures must be at least 1")?;
        rule(
            b.window > 0 && b.min_calls <= b.window,
            "payment.breaker.window must be at least 1 and at least min_calls",
        )?;
        rule(
            b.open_ms > 0 && b.half_open_probes > 0,
            "payment.breaker.open_ms and half_open_probes must be at least 1",
        )?;
        Ok(())
    }
}

/// `host:port` with a port that exists; the host is resolved when binding.
/// An OTLP endpoint is an http(s) URL, and needs the exporter built in.
fn check_otlp(endpoint: &str) -> Result<(), String> {
    if endpoint.is_empty() {
        return Ok(());
    }
    let url = url::Url::parse(endpoint).map_err(|e| format!("log.otlp_endpoint {endpoint:?}: {e}"))?;
    rule(
        matches!(url.scheme(), "http" | "https"),
        &format!("log.otlp_endpoint {endpoint:?}: give the collector's http:// or https:// URL"),
    )?;
    rule(
        cfg!(feature = "otlp"),
        "log.otlp_endpoint is set, but this fulfil was built without the OTLP exporter: \
         build it with `cargo build --release --features otlp`, or leave log.otlp_endpoint empty",
    )
}

/// Most partitions a stream is spread over: each is a subject every node
/// follows, and more than this only costs.
const MAX_PARTITIONS: u32 = 1024;
/// Most shards a cluster splits its orders over: each is a stream of
/// copies, a store and a loop on every node.
const MAX_SHARDS: u32 = 64;

/// A stream's name and subjects as NATS takes them; the URL a NATS URL.
fn check_stream(s: &super::StreamSettings) -> Result<(), String> {
    let failover = s.mode == super::StreamMode::Failover;
    if s.url.is_empty() {
        return rule(
            !failover,
            "stream.mode = \"failover\" needs stream.url: the NATS servers that keep the store",
        );
    }
    if failover {
        rule(
            (300..=60_000).contains(&s.lease_ms),
            "stream.lease_ms must be 300 to 60000 (milliseconds a leader's lease lives unrenewed)",
        )?;
        rule(
            s.node.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')),
            &format!("stream.node {:?} must be letters, digits, - and _", s.node),
        )?;
        rule(
            s.advertise.is_empty()
                || url::Url::parse(&s.advertise).is_ok_and(|u| matches!(u.scheme(), "http" | "https")),
            &format!("stream.advertise {:?} is not an http(s) URL (e.g. http://10.0.0.5:8080)", s.advertise),
        )?;
    }
    for server in s.url.split(',').map(str::trim) {
        rule(
            url::Url::parse(server).is_ok_and(|u| matches!(u.scheme(), "nats" | "tls") && u.host().is_some()),
            &format!(
                "stream.url {:?} is not a NATS URL (e.g. nats://127.0.0.1:4222, or several separated by commas)",
                super::host_of(server)
            ),
        )?;
    }
    s.credentials()?;
    rule(
        !s.name.is_empty() && s.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')),
        &format!("stream.name {:?} must be letters, digits, - and _ (a JetStream stream name)", s.name),
    )?;
    let token =
        |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    rule(
        s.subject.split('.').all(token),
        &format!(
            "stream.subject {:?} must be dot-separated words of letters, digits, - and _ (no wildcards)",
            s.subject
        ),
    )?;
    rule(
        (1..=MAX_PARTITIONS).contains(&s.partitions),
        &format!("stream.partitions must be 1 to {MAX_PARTITIONS}"),
    )?;
    rule((1..=MAX_SHARDS).contains(&s.shards), &format!("stream.shards must be 1 to {MAX_SHARDS}"))?;
    if s.shards > 1 {
        rule(failover, "stream.shards > 1 needs stream.mode = \"failover\": each shard is a failover group")?;
        // Each event subject is then written by one shard's leader only.
        rule(
            s.partitions.is_multiple_of(s.shards),
            &format!(
                "stream.partitions ({}) must be a multiple of stream.shards ({}), so that each partition's \
                 orders are all on one shard",
                s.partitions, s.shards
            ),
        )?;
    }
    rule(
        matches!(s.replicas, 1 | 3 | 5),
        "stream.replicas must be 1, 3 or 5 (JetStream keeps an odd number of copies, at most 5)",
    )
}

fn check_bind(bind: &str) -> Result<(), String> {
    let bad =
        |why: &str| Err(format!("http.bind {bind:?} is not a listen address: {why} (e.g. 127.0.0.1:8080)"));
    let Some((host, port)) = bind.rsplit_once(':') else { return bad("no port") };
    if host.is_empty() {
        return bad("no host");
    }
    match port.parse::<u16>() {
        Ok(_) => Ok(()),
        Err(_) => bad(&format!("{port:?} is not a port (0 to 65535)")),
    }
}
