//! Typed settings: `config.toml`'s defaults (compiled in), then an optional
//! file, then `FULFIL_<SECTION>__<KEY>` environment variables.

use crate::domain::Workflow;
use crate::faults::FaultSpec;
use crate::service::Service;
use config::{Config, Environment, File, FileFormat};
use ranges::{check_env_names, environment, explain};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod nats;
mod ranges;
mod stream;

pub use nats::NatsAuth;
pub use stream::{host_of, ShardOf, StreamMode, StreamSettings};

/// The defaults; the same file users read and edit.
const DEFAULTS: &str = include_str!("../../config.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub actors: ActorSettings,
    pub mailbox: MailboxSettings,
    pub timeouts: TimeoutSettings,
    pub payment: PaymentSettings,
    pub supervision: SupervisionSettings,
    pub shutdown: ShutdownSettings,
    pub timers: TimerSettings,
    pub admin: AdminSettings,
    pub auth: AuthSettings,
    pub webhooks: WebhookSettings,
    pub log: LogSettings,
    pub stream: StreamSettings,
    pub workflow: WorkflowChoice,
    pub workflows: BTreeMap<String, Workflow>,
    /// Faults injected from the start, by service name.
    #[serde(default)]
    pub faults: BTreeMap<String, FaultSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionSettings {
    pub max_restarts: u32,
    pub window_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    pub poison_after: u32,
    pub ping_timeout_ms: u64,
}

/// How the node writes its own log lines (to stderr; `RUST_LOG` filters).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    /// An OpenTelemetry collector's OTLP/HTTP base URL
    /// (`http://otel-collector:4318`): the node's spans go to
    /// `<url>/v1/traces`. Empty: none. Needs a build with `--features otlp`.
    #[serde(default)]
    pub otlp_endpoint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object a line, with the fields of the spans it is in (the
    /// order id of a request or an event), for log collectors.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerSettings {
    /// How often due timers (order expiries) are looked for.
    pub tick_ms: u64,
    /// How long an Idempotency-Key is remembered.
    pub idempotency_key_ttl_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    pub drain_ms: u64,
    pub timeout_ms: u64,
}

/// How webhook deliveries are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// How often due deliveries are looked for.
    pub tick_ms: u64,
    /// A receiver that does not answer within this failed.
    pub timeout_ms: u64,
    /// Retries back off from min to max (doubling, with jitter).
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// A delivery still failing after this is set aside.
    pub give_up_after_ms: u64,
    /// A PEM file of certificates that https receivers may be signed by,
    /// beside Mozilla's roots (a company's own CA); empty: none.
    #[serde(default)]
    pub extra_ca_file: String,
    /// Whether subscriptions made by customers and parties may reach
    /// private and loopback addresses (the operator's always may).
    #[serde(default)]
    pub allow_private_targets: bool,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// Empty: the admin API is disabled.
    pub token: String,
}

/// The token is a secret: a printed setting says only whether it is set.
impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = if self.token.is_empty() { "" } else { "<set>" };
        f.debug_struct("AdminSettings").field("token", &token).finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub keys: Vec<KeySetting>,
    /// A file of `<sha256 hex> <principal>` lines; empty: none.
    pub keys_file: String,
    pub jwt: JwtSettings,
}

/// JSON Web Tokens: how they are verified and which claim names the
/// principal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// `HS256`, `RS256` or `EdDSA`; empty: tokens are not accepted.
    pub algorithm: String,
    pub key_file: String,
    pub issuer: String,
    pub audience: String,
    pub principal_claim: String,
}

/// One API key: its SHA-256 digest (hex) and who it stands for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySetting {
    pub sha256: String,
    pub principal: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub bind: String,
    pub workers: usize,
    pub max_connections: usize,
    /// Requests per second per client; 0 turns the limit off.
    pub rate_per_client: u32,
    pub burst_per_client: u32,
    /// Proxies whose client headers are believed.
    pub trusted_proxies: Vec<String>,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub cache_mb: u64,
    /// How long a service may hold its writes back before it commits them
    /// with its offset (see `actors::write_behind`).
    pub hold_back_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSettings {
    /// Threads the services share (at least 1).
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxSettings {
    pub wait_ms: u64,
    pub order: usize,
    pub payment: usize,
    pub inventory: usize,
    pub delivery: usize,
    pub notification: usize,
    pub projection: usize,
}

impl MailboxSettings {
    /// The mailbox capacity of `service`.
    pub fn capacity(&self, service: Service) -> usize {
        match service {
            Service::Order => self.order,
            Service::Payment => self.payment,
            Service::Inventory => self.inventory,
            Service::Delivery => self.delivery,
            Service::Notification => self.notification,
            Service::Projection => self.projection,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutSettings {
    pub request_ms: u64,
    pub payment_ms: u64,
}

impl TimeoutSettings {
    pub fn request(&self) -> Duration {
        Duration::from_millis(self.request_ms)
    }

    pub fn payment(&self) -> Duration {
        Duration::from_millis(self.payment_ms)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentSettings {
    pub decline_suffix: String,
    pub gateway_latency_ms: u64,
    pub gateway_jitter_ms: u64,
    pub gateway_failure_rate: f64,
    pub gateway_timeout_ms: u64,
    pub gateway_rate: u32,
    pub gateway_burst: u32,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    /// Most deferred card payments kept at once.
    pub max_deferred: u64,
    pub breaker: crate::resilience::BreakerSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowChoice {
    pub default: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Default for Settings {
    /// The compiled-in defaults, without reading files or the environment.
    fn default() -> Self {
        Settings::build(None, false).expect("the compiled-in config.toml is valid")
    }
}

impl Settings {
    /// The workflows as the engine runs them: by name, with the default.
    pub fn workflow_rules(&self) -> crate::domain::Workflows {
        crate::domain::Workflows::new(self.workflows.clone(), self.workflow.default.clone())
    }

    /// The settings a node runs shard `index` of `stream.shards` with: the
    /// shard's store in a directory of its own (`<store.path>/shard-<index>`),
    /// its events in a stream of their own, and its server on a loopback
    /// port of its own, which the node's public port forwards to with the
    /// cluster's `hop` key (and which takes requests only with it).
    pub fn for_shard(&self, index: u32, hop: &str) -> Settings {
        let mut shard = self.clone();
        shard.stream = self.stream.of_shard(index);
        if let Some(of) = shard.stream.shard.as_mut() {
            of.hop = hop.to_owned();
        }
        shard.store.path = self.store.path.join(format!("shard-{index}"));
        shard.http.bind = "127.0.0.1:0".into();
        shard
    }

    /// `http.trusted_proxies` as addresses (the settings check that every
    /// entry is one).
    pub fn trusted_proxies(&self) -> Vec<std::net::IpAddr> {
        self.http.trusted_proxies.iter().filter_map(|p| p.parse().ok()).collect()
    }

    /// Defaults, then `file` if given (it must exist) or `./config.toml` if
    /// present, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Settings::build(file, true)
    }

    fn build(file: Option<&Path>, outside: bool) -> Result<Settings, SettingsError> {
        let env = if outside { environment(std::env::vars()) } else { BTreeMap::new() };
        let file = match (outside, file) {
            (false, _) => None,
            (true, Some(path)) => Some(File::from(path).format(FileFormat::Toml)),
            (true, None) => {
                Some(File::from(Path::new("config.toml")).format(FileFormat::Toml).required(false))
            }
        };
        Settings::from_sources(file, env)
    }

    /// The defaults, then `file`, then `env` (`FULFIL_*` variables, by name).
    fn from_sources<S: config::Source + Send + Sync + 'static>(
        file: Option<S>,
        env: BTreeMap<String, String>,
    ) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if let Some(file) = file {
            builder = builder.add_source(file);
        }
        check_env_names(&env)?;
        // No `try_parsing`: a value stays the string it was (a token of
        // "007" stays "007"); numbers are parsed where a number is expected.
        let source = env.into_iter().collect::<std::collections::HashMap<_, _>>();
        builder = builder.add_source(
            Environment::with_prefix("FULFIL").prefix_separator("_").separator("__").source(Some(source)),
        );
        let config = builder.build()?;
        let mut settings: Settings = config.try_deserialize().map_err(explain)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&mut self) -> Result<(), SettingsError> {
        self.check_ranges().map_err(SettingsError::Invalid)?;
        for (name, wf) in self.workflows.iter_mut() {
            wf.name = name.clone();
            wf.check().map_err(|e| SettingsError::Invalid(format!("workflows.{name}: {e}")))?;
        }
        if !self.workflows.contains_key(&self.workflow.default) {
            return Err(SettingsError::Invalid(format!(
                "workflow.default names {:?}, which is not defined under [workflows]",
                self.workflow.default
            )));
        }
        if self.supervision.poison_after == 0
            || self.supervision.backoff_min_ms > self.supervision.backoff_max_ms
        {
            return Err(SettingsError::Invalid(
                "supervision: poison_after must be at least 1 and backoff_min_ms at most backoff_max_ms"
                    .into(),
            ));
        }
        for (service, spec) in &self.faults {
            if service == crate::service::REPLICA {
                if *spec != (FaultSpec { latency_ms: spec.latency_ms, ..FaultSpec::default() }) {
                    return Err(SettingsError::Invalid(format!("faults.{service}: only latency_ms applies")));
                }
            } else if !crate::service::is_fault_target(service) {
                return Err(SettingsError::Invalid(format!("faults.{service}: no such service")));
            }
            spec.validate().map_err(|e| SettingsError::Invalid(format!("faults.{service}: {e}")))?;
        }
        let p = &self.payment;
        if p.gateway_rate == 0 || p.gateway_burst == 0 || !(0.0..=1.0).contains(&p.gateway_failure_rate) {
            return Err(SettingsError::Invalid(
                "payment: gateway_rate and gateway_burst must be at least 1, gateway_failure_rate within 0..1".into(),
            ));
        }
        if self.http.rate_per_client > 0 && self.http.burst_per_client == 0 {
            return Err(SettingsError::Invalid("http.burst_per_client must be at least 1".into()));
        }
        let m = &self.mailbox;
        if Service::ALL.iter().any(|s| m.capacity(*s) == 0) {
            return Err(SettingsError::Invalid("mailbox capacities must be at least 1".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings from the defaults, `file` (TOML text) and `env` variables.
    fn load(file: &str, env: &[(&str, &str)]) -> Result<Settings, String> {
        let env = environment(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::from_sources(Some(File::from_str(file, FileFormat::Toml)), env).map_err(|e| e.to_string())
    }

    fn refused(file: &str, env: &[(&str, &str)], words: &[&str]) {
        let err = load(file, env).expect_err("refused");
        for w in words {
            assert!(err.contains(w), "{err:?} should mention {w:?}");
        }
    }

    #[test]
    fn values_from_the_environment_stay_what_they_were_written_as() {
        let s =
            load("", &[("FULFIL_ADMIN__TOKEN", "007"), ("FULFIL_PAYMENT__DECLINE_SUFFIX", "0002")]).unwrap();
        assert_eq!((s.admin.token.as_str(), s.payment.decline_suffix.as_str()), ("007", "0002"));
        let s = load("", &[("FULFIL_ADMIN__TOKEN", "1e3"), ("FULFIL_HTTP__WORKERS", "3")]).unwrap();
        assert_eq!((s.admin.token.as_str(), s.http.workers), ("1e3", 3), "numbers still read as numbers");
        refused("", &[("FULFIL_HTTP__WORKERS", "three")], &["workers"]);
    }

    #[test]
    fn a_printed_setting_never_shows_the_admin_token() {
        let s = load("", &[("FULFIL_ADMIN__TOKEN", "s3cret-t0ken")]).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("s3cret-t0ken") && printed.contains("<set>"), "{printed}");
    }

    #[test]
    fn an_unknown_variable_or_key_is_refused_with_the_nearest_known_one() {
        refused(
            "",
            &[("FULFIL_ADMIN_TOKEN", "x")],
            &["FULFIL_ADMIN_TOKEN", "did you mean FULFIL_ADMIN__TOKEN"],
        );
        refused("", &[("FULFIL_HTTP__NOPE", "1")], &["FULFIL_HTTP__NOPE", "not a setting"]);
        refused("[http]\nbnd = \"127.0.0.1:1\"\n", &[], &["bnd", "did you mean `bind`"]);
        refused("[workflows.shop]\nrecipt = true\n", &[], &["recipt", "did you mean `receipt`"]);
        // The benchmark's own knobs are not settings, and are left alone.
        assert!(load("", &[("FULFIL_BENCH_SCALE", "10")]).is_ok());
    }

    #[test]
    fn meaningless_numbers_are_refused_by_name() {
        for (file, words) in [
            ("[timeouts]\nrequest_ms = 0", &["timeouts.request_ms"][..]),
            ("[mailbox]\nwait_ms = 0", &["mailbox.wait_ms"]),
            ("[http]\nmax_connections = 0", &["http.max_connections"]),
            ("[shutdown]\ntimeout_ms = 0", &["shutdown.timeout_ms"]),
            ("[payment]\nretry_min_ms = 500\nretry_max_ms = 100", &["payment.retry_min_ms"]),
            ("[payment.breaker]\nfailure_rate = 7.0", &["payment.breaker.failure_rate"]),
            ("[store]\ncache_mb = 99999999999999", &["store.cache_mb"]),
            ("[store]\nhold_back_ms = 0", &["store.hold_back_ms"]),
            ("[actors]\nthreads = 0", &["actors.threads"]),
            ("[stream]\nurl = \"nats://127.0.0.1:4222\"\npartitions = 0", &["stream.partitions"]),
            ("[stream]\nurl = \"nats://127.0.0.1:4222\"\nreplicas = 2", &["stream.replicas"]),
            ("[stream]\nurl = \"nats://127.0.0.1:4222\"\nname = \"a.b\"", &["stream.name"]),
            ("[stream]\nurl = \"nats://127.0.0.1:4222\"\nsubject = \"a.*\"", &["stream.subject"]),
            ("[stream]\nurl = \"http://127.0.0.1:4222\"", &["stream.url", "not a NATS URL"]),
            ("[stream]\nurl = \"nats://a:4222,\"", &["stream.url", "not a NATS URL"]),
            ("[stream]\nurl = \"nats://a:4222,http://b:4222\"", &["stream.url", "\"http://b:4222\""]),
            ("[supervision]\nbackoff_min_ms = 10\nbackoff_max_ms = 5", &["supervision.backoff_min_ms"]),
            ("[stream]\nmode = \"failover\"", &["stream.mode", "needs stream.url"]),
            ("[stream]\nmode = \"cluster\"", &["stream.mode", "\"export\" or \"failover\"", "cluster"]),
            ("[stream]\nurl = \"nats://a:4222\"\nmode = \"failover\"\nlease_ms = 10", &["stream.lease_ms"]),
            ("[stream]\nurl = \"nats://a:4222\"\nmode = \"failover\"\nnode = \"a.b\"", &["stream.node"]),
            (
                "[stream]\nurl = \"nats://a:4222\"\nmode = \"failover\"\nadvertise = \"a:80\"",
                &["stream.advertise"],
            ),
            ("[stream]\nurl = \"nats://a:4222\"\nshards = 4", &["stream.shards > 1", "failover"]),
            (
                "[stream]\nurl = \"nats://a:4222\"\nmode = \"failover\"\nshards = 3",
                &["stream.partitions (16)", "multiple of stream.shards (3)"],
            ),
            (
                "[stream]\nurl = \"nats://a:4222\"\nmode = \"failover\"\nshards = 0",
                &["stream.shards must be 1 to 64"],
            ),
        ] {
            refused(file, &[], words);
        }
    }

    #[test]
    fn a_shard_runs_on_a_store_a_stream_and_a_loopback_port_of_its_own() {
        let s = load("[stream]\nurl = \"nats://a:4222\"\nmode = \"failover\"\nshards = 4", &[]).unwrap();
        let shard = s.for_shard(2, "k3y-0f-the-cluster");
        assert_eq!(shard.store.path, s.store.path.join("shard-2"));
        assert_eq!(
            (shard.stream.name.as_str(), shard.stream.subject.as_str()),
            ("FULFIL_2", "fulfil.events-2")
        );
        let of = ShardOf { index: 2, cluster: "FULFIL".into(), hop: "k3y-0f-the-cluster".into() };
        assert_eq!(shard.stream.shard, Some(of));
        assert_eq!(shard.http.bind, "127.0.0.1:0");
        // Its router says who the caller is with the hop key; an address
        // on this machine is not believed for it.
        assert_eq!(shard.trusted_proxies(), s.trusted_proxies());
        assert_eq!(s.stream.shard, None, "the node's own settings name no shard");
        let printed = format!("{shard:?}");
        assert!(!printed.contains("k3y-0f-the-cluster") && printed.contains("hop: \"set\""), "{printed}");
    }

    #[test]
    fn a_url_is_shown_without_its_user_and_password() {
        assert_eq!(host_of("nats://u:p4ss@nats.internal:4222"), "nats://nats.internal:4222");
        assert_eq!(host_of("nats://127.0.0.1"), "nats://127.0.0.1");
        assert_eq!(host_of("u:p4ss@bad url"), "bad url");
        assert_eq!(host_of("nats://u:p4ss@a:4222, nats://u:p4ss@b:4223"), "nats://a:4222,nats://b:4223");
    }

    #[test]
    fn a_printed_setting_never_shows_the_stream_password() {
        let s = load("", &[("FULFIL_STREAM__URL", "nats://fulfil:s3cret@nats.internal:4222")]).unwrap();
        let printed = format!("{s:?}");
        assert!(!printed.contains("s3cret") && printed.contains("nats.internal"), "{printed}");
        let err = load("", &[("FULFIL_STREAM__URL", "http://fulfil:s3cret@nats.internal:4222")]).unwrap_err();
        assert!(!err.contains("s3cret") && err.contains("stream.url"), "{err}");
    }

    #[test]
    fn a_bind_address_without_a_real_port_is_reported_as_such() {
        refused("", &[("FULFIL_HTTP__BIND", "127.0.0.1:99999")], &["http.bind", "not a port"]);
        refused("", &[("FULFIL_HTTP__BIND", "localhost")], &["http.bind", "no port"]);
        assert_eq!(load("", &[("FULFIL_HTTP__BIND", "[::1]:0")]).unwrap().http.bind, "[::1]:0");
    }

    #[test]
    fn a_followers_fault_takes_only_a_latency() {
        let s = load("", &[("FULFIL_FAULTS__REPLICA__LATENCY_MS", "20")]).unwrap();
        assert_eq!(s.faults["replica"].latency_ms, 20);
        let err = load("", &[("FULFIL_FAULTS__REPLICA__PANIC_NEXT", "1")]).unwrap_err();
        assert!(err.contains("faults.replica: only latency_ms applies"), "{err}");
        let err = load("", &[("FULFIL_FAULTS__NOPE__LATENCY_MS", "1")]).unwrap_err();
        assert!(err.contains("faults.nope: no such service"), "{err}");
    }

    #[test]
    fn compiled_defaults_match_the_documented_ones() {
        let s = Settings::default();
        assert_eq!(s.http.bind, "127.0.0.1:8080");
        assert_eq!(s.store.path, PathBuf::from("data"));
        assert_eq!(s.workflow.default, "shop");
        // The shipped file adds the shop's Korean messages to the built-in shop.
        assert!(s.workflows["shop"].template("ko", "paid").is_some());
        assert_eq!(
            Workflow { messages: Default::default(), ..s.workflows["shop"].clone() },
            Workflow::shop()
        );
        let names: Vec<&str> = s.workflows.keys().map(String::as_str).collect();
        assert_eq!(names, ["driver", "hotel", "malltail", "shop", "taxi"]);
        assert_eq!(s.workflows["taxi"].label(crate::domain::OrderStatus::Accepted), "dispatched");
    }
}
