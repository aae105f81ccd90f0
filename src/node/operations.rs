//! Operating a node: health, liveness, draining, faults, dead letters,
//! pausing services, metrics, the per-client rate limit.

use super::Node;
use crate::actors::ask_recipient;
use crate::actors::consumer::{Pause, Ping, Redeliver, Resume};
use crate::actors::projection::{GetDeadLetter, ListDeadLetters};
use crate::error::{CallError, NodeError, Refused};
use crate::faults::FaultSpec;
use crate::health::{ServiceHealth, ServiceState};
use crate::metrics::Metrics;
use crate::resilience::BreakerState;
use crate::service::{is_fault_target, Service};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The node's health, as `/health/*` reports it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    /// `ready`, or why not: `degraded` (a service is not running), `draining`
    /// (shutting down), `store_unavailable` (it cannot write: see
    /// `store_failure`), `lease_lapsed` (a failover leader whose lease ran
    /// out before it renewed it); for liveness,
    /// `live` or `stuck`.
    pub status: &'static str,
    /// The last sequence number in the event log.
    pub log_head: u64,
    pub services: BTreeMap<&'static str, ServiceHealth>,
    /// Circuit breakers and their states; an open breaker does not make the
    /// node unready (orders are still taken, per the workflow's fallback).
    pub breakers: BTreeMap<&'static str, BreakerState>,
    /// For liveness: the services that did not answer a ping in time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unresponsive: Vec<&'static str>,
    /// Why the store does not take writes, when it does not (a full disk):
    /// it retries by itself; reads still answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_failure: Option<String>,
    /// `open` when no keys are configured (anyone may do anything; the
    /// gateway listens on loopback only), else `keys`.
    pub auth: &'static str,
}

impl HealthReport {
    pub fn is_ok(&self) -> bool {
        matches!(self.status, "ready" | "live")
    }
}

impl Node {
    /// Admits one HTTP request from `client` under the per-client rate
    /// limit, or says how long it must wait.
    pub fn admit_client(&self, client: &str) -> Result<(), Duration> {
        match &self.inner.limiter {
            Some(limiter) => limiter.check(client).inspect_err(|_| {
                self.inner.metrics.rate_limited.with_label_values(&["http"]).inc();
            }),
            None => Ok(()),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Every metric in Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let report = self.health();
        self.inner.metrics.render(&report.services, &report.breakers, report.log_head, self.store_writer())
    }

    /// How much the store's writer lock has done: commits, keys written
    /// and the time it was held since the node started.
    pub fn store_writer(&self) -> crate::store::WriterReading {
        self.inner.store_writer.read()
    }

    /// Readiness: every service running, the store flushing, not draining,
    /// and the lease to lead (in failover mode) surely held.
    pub fn health(&self) -> HealthReport {
        let head = *self.inner.head.borrow();
        let services = self.inner.health.snapshot(head);
        let store_failure = self.inner.store_condition.failure();
        let status = if self.is_draining() {
            "draining"
        } else if self.lease_lapsed() {
            "lease_lapsed"
        } else if store_failure.is_some() {
            "store_unavailable"
        } else if services.len() == Service::ALL.len()
            && services.values().all(|s| s.state == ServiceState::Running)
        {
            "ready"
        } else {
            "degraded"
        };
        let breakers = self.inner.health.breakers();
        let auth = if self.auth_is_open() { "open" } else { "keys" };
        HealthReport {
            status,
            log_head: head,
            services,
            breakers,
            unresponsive: Vec::new(),
            store_failure,
            auth,
        }
    }

    /// Liveness: can the node still make progress? Every actor must answer a
    /// ping within the configured timeout. A service that is restarting or
    /// backing off still answers: it is healing, not stuck.
    pub async fn live(&self) -> HealthReport {
        let pings = Service::ALL.map(|service| async move {
            let ping = tokio::time::timeout(self.inner.ping_timeout, self.send_to(service, Ping));
            (service, matches!(ping.await, Ok(Ok(()))))
        });
        let answers = futures_util::future::join_all(pings).await;
        let unresponsive: Vec<&'static str> =
            answers.into_iter().filter(|(_, ok)| !ok).map(|(s, _)| s.name()).collect();
        let mut report = self.health();
        report.status = if unresponsive.is_empty() { "live" } else { "stuck" };
        report.unresponsive = unresponsive;
        report
    }

    /// Stops a service from consuming the log; it keeps answering commands
    /// and catches up from its offset on [`Node::resume`].
    pub async fn pause(&self, service: Service) -> Result<(), NodeError> {
        self.send_to(service, Pause).await
    }

    pub async fn resume(&self, service: Service) -> Result<(), NodeError> {
        self.send_to(service, Resume).await
    }

    /// Injects a fault into a service (see [`FaultSpec`]); replaces any
    /// fault it had.
    pub fn inject_fault(&self, service: Service, spec: FaultSpec) -> Result<(), NodeError> {
        self.inject_fault_named(service.name(), spec)
    }

    /// Like [`Node::inject_fault`], by name: a service, or `"gateway"` for
    /// the simulated card gateway (its latency, jitter and failure rate).
    pub fn inject_fault_named(&self, name: &str, spec: FaultSpec) -> Result<(), NodeError> {
        if !is_fault_target(name) {
            return Err(NodeError::not_found("service", name));
        }
        spec.validate().map_err(|why| NodeError::from(Refused::Invalid(why)))?;
        self.inner.faults.set(name, spec);
        Ok(())
    }

    /// Clears the fault of a service or of the `"gateway"`.
    pub fn clear_fault_named(&self, name: &str) -> Result<(), NodeError> {
        if !is_fault_target(name) {
            return Err(NodeError::not_found("service", name));
        }
        self.inner.faults.clear(Some(name));
        Ok(())
    }

    /// Clears one service's fault, or every fault.
    pub fn clear_faults(&self, service: Option<Service>) {
        self.inner.faults.clear(service.map(Service::name));
    }

    pub fn faults(&self) -> BTreeMap<String, FaultSpec> {
        self.inner.faults.list()
    }

    /// Events the services set aside after failing on them repeatedly.
    pub async fn dead_letters(&self) -> Result<Vec<super::bodies::DeadLetter>, NodeError> {
        let letters = self.call(Service::Projection, &self.inner.actors.projection, ListDeadLetters).await?;
        Ok(letters.into_iter().map(Into::into).collect())
    }

    /// Copies the store, consistently, into `dir` (new or empty) on the
    /// node's machine; writes wait while the copy runs (see
    /// `store::backup`).
    pub async fn backup(&self, dir: std::path::PathBuf) -> Result<crate::store::BackupReport, NodeError> {
        let store = self.inner.store.clone();
        let copied = tokio::task::spawn_blocking(move || store.backup_to(&dir)).await;
        match copied {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(e @ crate::store::StoreError::NotEmpty(_))) => Err(Refused::Invalid(e.to_string()).into()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(CallError::Failed { service: "store", reason: "the backup stopped".into() }.into()),
        }
    }

    /// Puts a dead letter back: its service applies the event again, and
    /// the dead letter is gone once that succeeds.
    pub async fn retry_dead_letter(&self, id: u64) -> Result<(), NodeError> {
        let letter = self.call(Service::Projection, &self.inner.actors.projection, GetDeadLetter(id)).await?;
        let service = Service::parse(&letter.service)
            .ok_or_else(|| NodeError::not_found("service", &letter.service))?;
        let to = self.recipient(service);
        let redelivered = ask_recipient(&to, Redeliver(letter), self.inner.timeout, service.name());
        self.admitted(service, redelivered).await
    }
}
