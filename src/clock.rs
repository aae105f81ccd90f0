//! The engine's time, passed in: timers (order expiries) read it, so tests
//! move time by hand instead of sleeping through it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where the engine's "now" comes from.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::domain::now_ms()
    }
}

/// A clock that moves only when told to: for tests, and for embedders that
/// drive time themselves.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock that reads the machine's time now, then stands still.
    pub fn starting_now() -> ManualClock {
        ManualClock { now_ms: AtomicU64::new(crate::domain::now_ms()) }
    }

    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
