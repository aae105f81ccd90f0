//! The per-client rate limit at the HTTP edge (governor, keyed).

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Keys are pruned after this many checks: governor's keyed state keeps
/// every key it has seen until `retain_recent` drops the idle ones.
const PRUNE_EVERY: u64 = 4096;

pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

impl ClientLimiter {
    /// `None` when the limit is off (a rate of 0).
    pub fn new(per_second: u32, burst: u32) -> Option<ClientLimiter> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        Some(ClientLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        })
    }

    /// Admits one request from `client`, or says how long it must wait.
    pub fn check(&self, client: &str) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter
            .check_key(&client.to_owned())
            // The limiter's own clock: making one calibrates a new timer each time.
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Clients the limiter currently keeps state for.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops the state of clients idle long enough to have a full burst.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_burst_and_waits_after_it() {
        let l = ClientLimiter::new(1, 2).unwrap();
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        let wait = l.check("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(l.check("b").is_ok(), "another client is not affected");
        assert!(ClientLimiter::new(0, 5).is_none(), "rate 0 turns it off");
    }

    #[test]
    fn idle_clients_are_pruned() {
        let l = ClientLimiter::new(1000, 1).unwrap();
        for i in 0..100 {
            let _ = l.check(&format!("client-{i}"));
        }
        assert_eq!(l.len(), 100);
        std::thread::sleep(Duration::from_millis(5));
        l.prune();
        assert_eq!(l.len(), 0);
    }
}
