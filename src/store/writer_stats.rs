//! How busy the store's writer lock is, and how long each write holds it
//! ([`WriterStats`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// How busy the log's writer lock is: every change in the node passes
/// through it, so its busy share of wall time is how close the store is to
/// its ceiling (see the README's performance section).
#[derive(Debug)]
pub struct WriterStats {
    commits: AtomicU64,
    keys: AtomicU64,
    busy_ns: AtomicU64,
    /// Keys by table: where the work under the lock goes.
    by_table: Mutex<BTreeMap<&'static str, u64>>,
    /// Commits by how long they held the lock ([`hold_bucket`]): sled 0.34
    /// makes every read and plain insert in the process wait while a
    /// transaction commits, so the longest holds set the tail latency of
    /// everything else.
    holds: [AtomicU64; HOLD_BUCKETS],
}

/// Lock holds are counted in quarter-octave buckets of microseconds, up to
/// about 17 s: a quantile read off them is within a fifth of the truth.
const HOLD_BUCKETS: usize = 96;

/// The bucket of a lock hold of `held`.
fn hold_bucket(held: Duration) -> usize {
    let micros = held.as_micros().max(1) as f64;
    ((micros.log2() * 4.0) as usize).min(HOLD_BUCKETS - 1)
}

/// A reading of [`WriterStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WriterReading {
    /// Writes committed.
    pub commits: u64,
    /// Keys written or removed by them, with one for the events of each
    /// (the log keeps them as one record).
    pub keys: u64,
    /// Time the writer lock was held.
    pub busy: Duration,
    /// The keys by table; the log's records under [`LOG_KEYS`].
    pub by_table: BTreeMap<&'static str, u64>,
    /// Commits by how long they held the lock (quarter-octave buckets).
    pub holds: Vec<u64>,
}

impl WriterReading {
    /// How long the lock was held by the write at quantile `q` (0 to 1)
    /// of those since `before`, rounded up to its bucket's bound.
    pub fn hold_quantile(&self, before: &WriterReading, q: f64) -> Duration {
        self.quantile(before, q, |_| 1.0)
    }

    /// The same, weighted by time held: at a moment taken at random while
    /// the lock is held, the write holding it is this long or shorter with
    /// probability `q`. A read that waits for the lock waits for such a
    /// write, so this, not [`WriterReading::hold_quantile`], is what the
    /// readers' tail sees.
    pub fn hold_quantile_by_time(&self, before: &WriterReading, q: f64) -> Duration {
        self.quantile(before, q, bucket_bound)
    }

    /// How many writes held the lock for at most `bound` (whole buckets
    /// only: a bucket that reaches past `bound` is not counted).
    pub fn holds_within(&self, bound: Duration) -> u64 {
        let micros = bound.as_secs_f64() * 1e6;
        (self.holds.iter().enumerate()).filter(|(b, _)| bucket_bound(*b) <= micros).map(|(_, n)| n).sum()
    }

    fn quantile(&self, before: &WriterReading, q: f64, weight: fn(usize) -> f64) -> Duration {
        let weights: Vec<f64> = (self.holds.iter().enumerate())
            .map(|(i, n)| n.saturating_sub(before.holds.get(i).copied().unwrap_or(0)) as f64 * weight(i))
            .collect();
        let rank = weights.iter().sum::<f64>() * q;
        let mut seen = 0.0;
        let bucket = weights.iter().position(|w| {
            seen += w;
            *w > 0.0 && seen >= rank
        });
        Duration::from_secs_f64(bucket.map_or(0.0, bucket_bound) / 1e6)
    }
}

/// The upper bound of a hold bucket, in microseconds.
fn bucket_bound(bucket: usize) -> f64 {
    2f64.powf((bucket + 1) as f64 / 4.0)
}

/// The name the log's records are counted under in
/// [`WriterReading::by_table`].
pub const LOG_KEYS: &str = "(log)";

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            commits: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            by_table: Mutex::default(),
            holds: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl WriterStats {
    /// The counters as of one moment (read under the lock that records
    /// them, so the tables add up to the keys).
    pub fn read(&self) -> WriterReading {
        let by_table = self.by_table.lock().unwrap_or_else(|p| p.into_inner());
        WriterReading {
            commits: self.commits.load(Ordering::Relaxed),
            keys: self.keys.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
            by_table: by_table.clone(),
            holds: self.holds.iter().map(|n| n.load(Ordering::Relaxed)).collect(),
        }
    }

    /// One commit of keys of `tables` (one entry a key), held for `held`.
    pub(super) fn record(&self, tables: impl Iterator<Item = &'static str>, held: Duration) {
        let mut by_table = self.by_table.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys = 0;
        for table in tables {
            *by_table.entry(table).or_default() += 1;
            keys += 1;
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.keys.fetch_add(keys, Ordering::Relaxed);
        self.busy_ns.fetch_add(held.as_nanos() as u64, Ordering::Relaxed);
        self.holds[hold_bucket(held)].fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(stats: &WriterStats, micros: u64, times: usize) {
        for _ in 0..times {
            stats.record(std::iter::once("t"), Duration::from_micros(micros));
        }
    }

    #[test]
    fn a_hold_quantile_is_read_off_the_commits_since_a_reading_within_a_fifth() {
        let stats = WriterStats::default();
        holding(&stats, 10_000, 50); // before: not counted
        let before = stats.read();
        holding(&stats, 100, 98);
        holding(&stats, 5_000, 2);
        let after = stats.read();
        let p50 = after.hold_quantile(&before, 0.50).as_micros();
        let p99 = after.hold_quantile(&before, 0.99).as_micros();
        let max = after.hold_quantile(&before, 1.0).as_micros();
        assert!((100..=120).contains(&p50), "p50 {p50} µs");
        assert!((5_000..=6_000).contains(&p99), "p99 {p99} µs: the two long holds");
        assert_eq!(p99, max);
        assert_eq!(after.hold_quantile(&after, 0.99), Duration::ZERO, "no commits since");
        // By time, the two long holds are about half of it all: a reader
        // waits behind one of them about as often as behind any of the 98
        // short ones.
        let by_time = after.hold_quantile_by_time(&before, 0.4).as_micros();
        assert!((100..=120).contains(&by_time), "{by_time} µs");
        let by_time = after.hold_quantile_by_time(&before, 0.6).as_micros();
        assert!((5_000..=6_000).contains(&by_time), "{by_time} µs");
        assert_eq!(after.holds_within(Duration::from_millis(1)), 98);
        assert_eq!(after.holds_within(Duration::from_millis(10)), 100);
        assert_eq!(after.holds_within(Duration::from_millis(20)), 150);
    }
}
