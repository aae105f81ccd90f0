//! Self-healing: what happens when a service's code panics.
//!
//! In actix 0.13 a panicking handler kills its actor for good, even under
//! `actix::Supervisor` (the panic is swallowed by tokio's `LocalSet`); the
//! Supervisor restarts an actor only when it *stops*, restarts the same
//! instance, and has neither a restart limit nor a backoff. So:
//!
//! - every handler that runs domain code catches unwinds ([`guarded`], and
//!   the log consumer's own loop), answers the caller with a 503, and stops
//!   the actor so the Supervisor restarts it;
//! - `Supervised::restarting` reloads what the actor knows from the store and
//!   calls [`Supervision::restarted`], which applies the restart policy:
//!   exponential backoff, and past `max_restarts` within the window the
//!   service is marked failed (readiness 503) and retried at the maximum
//!   backoff instead of crash-looping;
//! - during a backoff commands get 503 with `Retry-After` at once and the
//!   log consumer waits, but the actor still answers pings: the node is
//!   alive and healing, so liveness stays green.
//!
//! Because the same instance is restarted, this state survives restarts.

use super::ServiceEnv;
use crate::config::SupervisionSettings;
use crate::domain::{OrderId, Seq};
use crate::error::{CallError, NodeError};
use crate::faults::Faults;
use crate::health::{Health, ServiceState};
use crate::metrics::Metrics;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One service's supervision state.
pub struct Supervision {
    pub name: &'static str,
    policy: SupervisionSettings,
    health: Health,
    faults: Faults,
    metrics: Arc<Metrics>,
    /// When recent restarts happened, within the policy's window.
    restarts: VecDeque<Instant>,
    /// No work before this instant (the backoff after a restart).
    resume_at: Option<Instant>,
    /// The event that failed last, and how many times in a row.
    failing: Option<(Seq, u32)>,
}

impl Supervision {
    pub fn new(name: &'static str, env: &ServiceEnv) -> Self {
        Supervision {
            name,
            policy: env.policy.clone(),
            health: env.health.clone(),
            faults: env.faults.clone(),
            metrics: env.metrics.clone(),
            restarts: VecDeque::new(),
            resume_at: None,
            failing: None,
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Applies the restart policy; call from `Supervised::restarting`.
    pub fn restarted(&mut self) {
        let now = Instant::now();
        let window = Duration::from_millis(self.policy.window_ms);
        while self.restarts.front().is_some_and(|t| now.duration_since(*t) > window) {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        let n = self.restarts.len() as u32;
        let failed = n > self.policy.max_restarts;
        let backoff = if failed { self.max_backoff() } else { self.backoff(n) };
        self.resume_at = Some(now + backoff);
        tracing::warn!(service = self.name, restarts = n, ?backoff, failed, "service restarted");
        self.health.restarted(self.name, failed, backoff);
        self.metrics.restarts.with_label_values(&[self.name]).inc();
    }

    /// `min × 2^(n-1)`, capped at the maximum.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u64.checked_shl(n.saturating_sub(1)).unwrap_or(u64::MAX);
        Duration::from_millis(self.policy.backoff_min_ms.saturating_mul(factor)).min(self.max_backoff())
    }

    fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.policy.backoff_max_ms)
    }

    /// How long the service still backs off, if it does.
    pub fn backing_off(&self) -> Option<Duration> {
        let until = self.resume_at?;
        until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())
    }

    /// Work succeeded after a restart: the service is healthy again.
    pub fn recovered(&mut self) {
        if self.resume_at.take().is_some() {
            self.health.set_state(self.name, ServiceState::Running);
        }
    }

    /// Records that the event at `seq` failed; returns how many times in a
    /// row it has.
    pub fn event_failed(&mut self, seq: Seq) -> u32 {
        let count = match self.failing {
            Some((s, n)) if s == seq => n + 1,
            _ => 1,
        };
        self.failing = Some((seq, count));
        count
    }

    pub fn event_succeeded(&mut self) {
        self.failing = None;
    }

    /// Failures in a row after which an event is set aside.
    pub fn poison_after(&self) -> u32 {
        self.policy.poison_after
    }

    /// Runs an injected fault for a message about `order`, outside any
    /// transaction: sleeps, panics, or returns an error.
    pub fn inject(&self, order: Option<&OrderId>) -> Result<(), NodeError> {
        match self.faults.apply(self.name, order) {
            true => Err(NodeError::Call(CallError::Failed {
                service: self.name,
                reason: "injected failure".into(),
            })),
            false => Ok(()),
        }
    }
}

/// Runs `f`, turning a panic into its message.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// An actor that is supervised this way.
pub trait Supervise: actix::Actor<Context = actix::Context<Self>> {
    fn supervision(&mut self) -> &mut Supervision;
}

/// Runs a command handler's domain code: refuses during a backoff, runs any
/// injected fault, catches a panic. On a panic the caller gets a 503 and
/// the failure is recorded. A command about one order that panics fails for
/// that order alone (its state is in the store, which the panic left
/// unchanged); any other panic stops the actor so that its supervisor
/// restarts it with its state reloaded from the store.
pub fn guarded<A: Supervise, T>(
    act: &mut A,
    ctx: &mut actix::Context<A>,
    order: Option<&OrderId>,
    f: impl FnOnce(&mut A) -> Result<T, NodeError>,
) -> Result<T, NodeError> {
    use actix::ActorContext;
    let sup = act.supervision();
    let _span =
        tracing::info_span!("handle", service = sup.name, order = order.map(OrderId::as_str)).entered();
    if let Some(retry_after) = sup.backing_off() {
        return Err(NodeError::Call(CallError::Restarting { service: sup.name, retry_after }));
    }
    // The service's own injected faults first: a panic there is the whole
    // service's. Then the order's (a poison order) and the handler itself.
    let (service_wide, result) = match catch(|| act.supervision().inject(None)) {
        Ok(Ok(())) => (
            false,
            catch(|| {
                if let Some(order) = order {
                    let sup = act.supervision();
                    sup.faults().poison_check(sup.name, order);
                }
                f(act)
            }),
        ),
        Ok(Err(e)) => return Err(e),
        Err(why) => (true, Err(why)),
    };
    match result {
        Ok(answer) => answer,
        Err(why) if order.is_some() && !service_wide => {
            let sup = act.supervision();
            tracing::error!(service = sup.name, order = ?order.map(OrderId::as_str), panic = %why, "a command about one order panicked");
            sup.metrics.event_failures.with_label_values(&[sup.name]).inc();
            Err(NodeError::Call(CallError::Failed { service: sup.name, reason: format!("panic: {why}") }))
        }
        Err(why) => {
            let sup = act.supervision();
            tracing::error!(service = sup.name, panic = %why, "a handler panicked; restarting the service");
            sup.health.failed(sup.name, format!("panic: {why}"));
            let service = sup.name;
            ctx.stop();
            Err(NodeError::Call(CallError::Restarting {
                service,
                retry_after: Duration::from_millis(sup.policy.backoff_min_ms),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(health: &Health) -> ServiceEnv {
        let dir = tempfile::TempDir::new().unwrap();
        let store = crate::store::Store::open(dir.path(), 1 << 20).unwrap();
        let policy = SupervisionSettings {
            max_restarts: 3,
            window_ms: 60_000,
            backoff_min_ms: 10,
            backoff_max_ms: 50,
            poison_after: 3,
            ping_timeout_ms: 1000,
        };
        ServiceEnv {
            store,
            health: health.clone(),
            faults: Faults::default(),
            policy,
            metrics: Default::default(),
            clock: std::sync::Arc::new(crate::clock::SystemClock),
            timer_tick: std::time::Duration::from_millis(50),
            key_ttl_ms: 86_400_000,
            hold_back: std::time::Duration::from_millis(200),
        }
    }

    #[test]
    fn backoff_doubles_then_caps_and_past_the_limit_the_service_is_failed() {
        let health = Health::default();
        let mut sup = Supervision::new("delivery", &env(&health));
        let mut backoffs = Vec::new();
        for _ in 0..5 {
            sup.restarted();
            backoffs.push(health.snapshot(0)["delivery"].backoff_ms);
        }
        assert_eq!(backoffs, [10, 20, 40, 50, 50]);
        let h = &health.snapshot(0)["delivery"];
        assert_eq!(h.state, ServiceState::Failed);
        assert_eq!(h.restarts, 5);
        assert_eq!(h.restarted_at.len(), 5);
        assert!(sup.backing_off().is_some());
    }

    #[test]
    fn an_event_failing_again_and_again_is_counted() {
        let mut sup = Supervision::new("inventory", &env(&Health::default()));
        assert_eq!(sup.event_failed(4), 1);
        assert_eq!(sup.event_failed(4), 2);
        assert_eq!(sup.event_failed(5), 1);
        sup.event_succeeded();
        assert_eq!(sup.event_failed(5), 1);
    }

    #[test]
    fn catch_returns_the_panic_message() {
        assert_eq!(catch(|| 1), Ok(1));
        assert_eq!(catch(|| -> u8 { panic!("boom {}", 7) }), Err("boom 7".to_owned()));
    }
}
