//! The health registry: each service's state and progress through the log,
//! and each circuit breaker's state, for `/health/*`, `/metrics` and the
//! embedding API.
//!
//! The actors report here as things happen (the supervisor its restarts,
//! the payment service its breaker's transitions); readers take a snapshot.
//! It is the one place such state is read from: metrics copy it into gauges
//! when scraped, and never serve as its store.

use crate::domain::Seq;
use crate::resilience::BreakerState;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    Starting,
    Running,
    /// Consuming is paused by an operator; commands are still answered.
    Paused,
    /// The last attempt to process the log failed; it is being retried.
    Failing,
    /// Restarted after a panic, backing off before it resumes.
    Restarting,
    /// Restarted more often than the policy allows; retried at the maximum
    /// backoff until it recovers.
    Failed,
    Stopped,
}

impl ServiceState {
    pub const ALL: [ServiceState; 7] = [
        ServiceState::Starting,
        ServiceState::Running,
        ServiceState::Paused,
        ServiceState::Failing,
        ServiceState::Restarting,
        ServiceState::Failed,
        ServiceState::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::Starting => "starting",
            ServiceState::Running => "running",
            ServiceState::Paused => "paused",
            ServiceState::Failing => "failing",
            ServiceState::Restarting => "restarting",
            ServiceState::Failed => "failed",
            ServiceState::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceHealth {
    pub state: ServiceState,
    /// The last event the service has processed.
    pub offset: Seq,
    /// Events in the log it has not processed yet.
    pub lag: u64,
    pub restarts: u32,
    /// When the most recent restarts happened (ms since the Unix epoch),
    /// oldest first: the backoff shows in the gaps.
    pub restarted_at: Vec<u64>,
    /// The backoff after the last restart.
    pub backoff_ms: u64,
    pub last_error: Option<String>,
    /// Work it keeps to do later (the payment service's deferred card
    /// payments), for services that keep any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u64>,
}

/// Restart times kept per service.
const RESTARTS_KEPT: usize = 16;

/// Shared between the actors (who report) and the node (which reads).
#[derive(Clone, Default)]
pub struct Health {
    services: Arc<Mutex<BTreeMap<&'static str, ServiceHealth>>>,
    breakers: Arc<Mutex<BTreeMap<&'static str, BreakerState>>>,
}

impl Health {
    fn update(&self, name: &'static str, f: impl FnOnce(&mut ServiceHealth)) {
        if let Ok(mut map) = self.services.lock() {
            let entry = map.entry(name).or_insert(ServiceHealth {
                state: ServiceState::Starting,
                offset: 0,
                lag: 0,
                restarts: 0,
                restarted_at: Vec::new(),
                backoff_ms: 0,
                last_error: None,
                backlog: None,
            });
            f(entry);
        }
    }

    pub fn set_state(&self, name: &'static str, state: ServiceState) {
        self.update(name, |h| h.state = state);
    }

    pub fn progressed(&self, name: &'static str, offset: Seq) {
        self.update(name, |h| {
            h.offset = offset;
            if h.state == ServiceState::Failing {
                h.state = ServiceState::Running;
            }
        });
    }

    /// How much deferred work `name` holds now.
    pub fn backlog(&self, name: &'static str, count: u64) {
        self.update(name, |h| h.backlog = Some(count));
    }

    pub fn failed(&self, name: &'static str, error: String) {
        self.update(name, |h| {
            h.state = ServiceState::Failing;
            h.last_error = Some(error);
        });
    }

    pub fn restarted(&self, name: &'static str, failed: bool, backoff: std::time::Duration) {
        self.update(name, |h| {
            h.restarts += 1;
            h.restarted_at.push(crate::domain::now_ms());
            if h.restarted_at.len() > RESTARTS_KEPT {
                h.restarted_at.remove(0);
            }
            h.backoff_ms = backoff.as_millis() as u64;
            h.state = if failed { ServiceState::Failed } else { ServiceState::Restarting };
        });
    }

    /// Records a circuit breaker's state (on start and on every transition).
    pub fn breaker_is(&self, name: &'static str, state: BreakerState) {
        if let Ok(mut map) = self.breakers.lock() {
            map.insert(name, state);
        }
    }

    /// Every circuit breaker's state, as last reported.
    pub fn breakers(&self) -> BTreeMap<&'static str, BreakerState> {
        self.breakers.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Every service's health, with lag measured against `head`.
    pub fn snapshot(&self, head: Seq) -> BTreeMap<&'static str, ServiceHealth> {
        let mut map = self.services.lock().map(|m| m.clone()).unwrap_or_default();
        for h in map.values_mut() {
            h.lag = head.saturating_sub(h.offset);
        }
        map
    }
}
