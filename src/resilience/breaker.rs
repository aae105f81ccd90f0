//! A circuit breaker for calls into a downstream service (the card gateway).
//!
//! closed → open after `consecutive_failures` failures in a row, or when at
//! least `min_calls` of the last `window` calls were made and their failure
//! rate reached `failure_rate`; open → half-open after `open_ms`; half-open
//! lets `half_open_probes` calls through and closes when they all succeed,
//! or opens again at the first failure.
//!
//! Written here rather than taken from a crate: the maintained breaker crates
//! read the system clock themselves, so their transitions can only be tested
//! by sleeping. This one is a plain state machine that is handed `now` on
//! every call, so tests drive time by hand, and it reports its transitions
//! for metrics.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BreakerSettings {
    pub consecutive_failures: u32,
    pub failure_rate: f64,
    pub window: u32,
    pub min_calls: u32,
    pub open_ms: u64,
    pub half_open_probes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    state: BreakerState,
    /// While open: when it may let a probe through.
    open_until: Instant,
    /// Outcomes of the last `window` calls while closed (true = failed).
    recent: VecDeque<bool>,
    failures_in_a_row: u32,
    /// Half-open: probes let through, and how many of them succeeded.
    probes: u32,
    probe_successes: u32,
}

/// The call may not be made; retry after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected(pub Duration);

impl Breaker {
    pub fn new(settings: BreakerSettings, now: Instant) -> Breaker {
        Breaker {
            settings,
            state: BreakerState::Closed,
            open_until: now,
            recent: VecDeque::new(),
            failures_in_a_row: 0,
            probes: 0,
            probe_successes: 0,
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Asks to make a call at `now`. Returns the state it moved to, if it
    /// moved, so the caller can count transitions.
    pub fn acquire(&mut self, now: Instant) -> Result<Option<BreakerState>, Rejected> {
        let mut moved = None;
        if self.state == BreakerState::Open {
            if now < self.open_until {
                return Err(Rejected(self.open_until - now));
            }
            moved = Some(self.enter(BreakerState::HalfOpen, now));
        }
        if self.state == BreakerState::HalfOpen {
            if self.probes >= self.settings.half_open_probes {
                // Probes are out; the verdict comes soon.
                return Err(Rejected(Duration::from_millis(self.settings.open_ms.min(1000))));
            }
            self.probes += 1;
        }
        Ok(moved)
    }

    /// Records how a call made after [`Breaker::acquire`] went. Returns the
    /// state it moved to, if it moved.
    pub fn record(&mut self, failed: bool, now: Instant) -> Option<BreakerState> {
        match self.state {
            BreakerState::Closed => {
                self.recent.push_back(failed);
                while self.recent.len() > self.settings.window as usize {
                    self.recent.pop_front();
                }
                self.failures_in_a_row = if failed { self.failures_in_a_row + 1 } else { 0 };
                self.should_trip().then(|| self.enter(BreakerState::Open, now))
            }
            BreakerState::HalfOpen if failed => Some(self.enter(BreakerState::Open, now)),
            BreakerState::HalfOpen => {
                self.probe_successes += 1;
                (self.probe_successes >= self.settings.half_open_probes)
                    .then(|| self.enter(BreakerState::Closed, now))
            }
            // A late answer to a call made before the breaker opened.
            BreakerState::Open => None,
        }
    }

    fn should_trip(&self) -> bool {
        if self.failures_in_a_row >= self.settings.consecutive_failures {
            return true;
        }
        let calls = self.recent.len() as u32;
        let failures = self.recent.iter().filter(|f| **f).count() as f64;
        calls >= self.settings.min_calls && failures / f64::from(calls) >= self.settings.failure_rate
    }

    fn enter(&mut self, state: BreakerState, now: Instant) -> BreakerState {
        self.state = state;
        self.recent.clear();
        self.failures_in_a_row = 0;
        self.probes = 0;
        self.probe_successes = 0;
        if state == BreakerState::Open {
            self.open_until = now + Duration::from_millis(self.settings.open_ms);
        }
        tracing::warn!(state = state.as_str(), "payment circuit breaker");
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 3,
            failure_rate: 0.5,
            window: 10,
            min_calls: 6,
            open_ms: 1000,
            half_open_probes: 2,
        }
    }

    fn after(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Makes a call at `now` that fails or not.
    fn call(b: &mut Breaker, failed: bool, now: Instant) -> Option<BreakerState> {
        b.acquire(now).expect("the breaker lets the call through");
        b.record(failed, now)
    }

    #[test]
    fn a_run_of_failures_opens_it_and_calls_are_refused_until_the_cool_down() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        assert_eq!(call(&mut b, true, t0), None);
        assert_eq!(call(&mut b, true, t0), None);
        assert_eq!(call(&mut b, true, t0), Some(BreakerState::Open));
        assert_eq!(b.acquire(after(t0, 400)), Err(Rejected(Duration::from_millis(600))));
    }

    #[test]
    fn a_failure_rate_over_the_window_opens_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for failed in [true, false, true, false, true] {
            assert_eq!(call(&mut b, failed, t0), None, "fewer than min_calls");
        }
        // Never three failures in a row, but 3 of 6 calls failed: 50%.
        assert_eq!(call(&mut b, false, t0), Some(BreakerState::Open));
    }

    #[test]
    fn the_rate_rule_counts_only_with_enough_calls() {
        let t0 = Instant::now();
        let mut b = Breaker::new(BreakerSettings { failure_rate: 0.4, ..settings() }, t0);
        for failed in [true, false, true, false, false] {
            call(&mut b, failed, t0);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(call(&mut b, true, t0), Some(BreakerState::Open), "3 of 6 >= 40%");
    }

    #[test]
    fn after_the_cool_down_probes_close_it_again() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            call(&mut b, true, t0);
        }
        let t1 = after(t0, 1000);
        assert_eq!(b.acquire(t1), Ok(Some(BreakerState::HalfOpen)));
        assert_eq!(b.acquire(t1), Ok(None), "second probe");
        assert!(b.acquire(t1).is_err(), "only two probes at once");
        assert_eq!(b.record(false, t1), None);
        assert_eq!(b.record(false, t1), Some(BreakerState::Closed));
        assert_eq!(b.acquire(t1), Ok(None));
    }

    #[test]
    fn a_failed_probe_opens_it_again_for_a_full_cool_down() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            call(&mut b, true, t0);
        }
        let t1 = after(t0, 1500);
        assert_eq!(b.acquire(t1), Ok(Some(BreakerState::HalfOpen)));
        assert_eq!(b.record(true, t1), Some(BreakerState::Open));
        assert_eq!(b.acquire(after(t1, 999)), Err(Rejected(Duration::from_millis(1))));
        assert_eq!(b.acquire(after(t1, 1000)), Ok(Some(BreakerState::HalfOpen)));
    }

    #[test]
    fn late_answers_while_open_change_nothing() {
        let t0 = Instant::now();
        let mut b = Breaker::new(settings(), t0);
        for _ in 0..3 {
            call(&mut b, true, t0);
        }
        assert_eq!(b.record(false, t0), None);
        assert_eq!(b.state(), BreakerState::Open);
    }
}
