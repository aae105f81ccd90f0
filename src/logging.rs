//! Error lines at a bounded rate.
//!
//! A failure that repeats (a full disk, a service that keeps failing) would
//! otherwise log a line per attempt, many a second, onto the very disk that
//! is full. Each cause logs at most one line per interval, and that line
//! says how many were held back since the last.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How often one cause of error may log.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// Error lines by cause: when each last logged, and how many since.
pub static ERRORS: LazyLock<Throttle> = LazyLock::new(|| Throttle::new(INTERVAL));

pub struct Throttle {
    interval: Duration,
    causes: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle { interval, causes: Mutex::new(HashMap::new()) }
    }

    /// Whether a line for `cause` may be logged now (`Some`, with how many
    /// were held back since the last one), or must be held back (`None`).
    pub fn allow(&self, cause: &'static str) -> Option<u64> {
        self.allow_at(cause, Instant::now())
    }

    fn allow_at(&self, cause: &'static str, now: Instant) -> Option<u64> {
        let mut causes = self.causes.lock().unwrap_or_else(|p| p.into_inner());
        match causes.get_mut(cause) {
            Some((last, held)) if now.duration_since(*last) < self.interval => {
                *held += 1;
                None
            }
            Some((last, held)) => {
                let since = std::mem::take(held);
                *last = now;
                Some(since)
            }
            None => {
                causes.insert(cause, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_cause_per_interval_with_the_count_held_back() {
        let t = Throttle::new(Duration::from_secs(10));
        let start = Instant::now();
        assert_eq!(t.allow_at("disk", start), Some(0));
        for s in 1..=9 {
            assert_eq!(t.allow_at("disk", start + Duration::from_secs(s)), None);
        }
        assert_eq!(t.allow_at("other", start + Duration::from_secs(1)), Some(0), "causes apart");
        assert_eq!(t.allow_at("disk", start + Duration::from_secs(10)), Some(9));
        assert_eq!(t.allow_at("disk", start + Duration::from_secs(21)), Some(0));
    }
}
