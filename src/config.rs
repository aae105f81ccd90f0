//! Typed settings: `config.toml`'s defaults (compiled in), then an optional
//! file, then `FULFIL_<SECTION>__<KEY>` environment variables.

use crate::domain::Workflow;
use crate::faults::FaultSpec;
use crate::service::Service;
use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The defaults; the same file users read and edit.
const DEFAULTS: &str = include_str!("../config.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub store: StoreSettings,
    pub actors: ActorSettings,
    pub mailbox: MailboxSettings,
    pub timeouts: TimeoutSettings,
    pub payment: PaymentSettings,
    pub supervision: SupervisionSettings,
    pub shutdown: ShutdownSettings,
    pub admin: AdminSettings,
    pub workflow: WorkflowChoice,
    pub workflows: BTreeMap<String, Workflow>,
    /// Faults injected from the start, by service name.
    #[serde(default)]
    pub faults: BTreeMap<String, FaultSpec>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SupervisionSettings {
    pub max_restarts: u32,
    pub window_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    pub poison_after: u32,
    pub ping_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShutdownSettings {
    pub drain_ms: u64,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AdminSettings {
    /// Empty: the admin API is disabled.
    pub token: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub bind: String,
    pub workers: usize,
    pub max_connections: usize,
    /// Requests per second per client; 0 turns the limit off.
    pub rate_per_client: u32,
    pub burst_per_client: u32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StoreSettings {
    pub path: PathBuf,
    pub cache_mb: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ActorSettings {
    /// Threads the services share (at least 1).
    pub threads: usize,
}

#[derive(Debug, Clone, Deserialize)]
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
    pub breaker: crate::resilience::BreakerSettings,
}

#[derive(Debug, Clone, Deserialize)]
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
    /// Defaults, then `file` if given (it must exist) or `./config.toml` if
    /// present, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, SettingsError> {
        Settings::build(file, true)
    }

    fn build(file: Option<&Path>, outside: bool) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        if outside {
            builder = match file {
                Some(path) => builder.add_source(File::from(path).format(FileFormat::Toml)),
                None => builder
                    .add_source(File::with_name("config.toml").format(FileFormat::Toml).required(false)),
            };
            builder = builder.add_source(
                Environment::with_prefix("FULFIL").prefix_separator("_").separator("__").try_parsing(true),
            );
        }
        let mut settings: Settings = builder.build()?.try_deserialize()?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&mut self) -> Result<(), SettingsError> {
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
            if !crate::service::is_fault_target(service) {
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

    #[test]
    fn compiled_defaults_match_the_documented_ones() {
        let s = Settings::default();
        assert_eq!(s.http.bind, "127.0.0.1:8080");
        assert_eq!(s.store.path, PathBuf::from("data"));
        assert_eq!(s.workflow.default, "shop");
        assert_eq!(s.workflows["shop"], Workflow::shop());
        let names: Vec<&str> = s.workflows.keys().map(String::as_str).collect();
        assert_eq!(names, ["driver", "hotel", "malltail", "shop", "taxi"]);
        assert_eq!(s.workflows["taxi"].label(crate::domain::OrderStatus::Accepted), "dispatched");
    }
}
