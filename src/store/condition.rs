//! What everyone sharing a store needs to know of it right now: where the
//! log ends, whether the store takes writes (and if not, why), and how many
//! times it was reopened.

use crate::domain::Seq;
use crate::logging::ERRORS;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

pub struct Condition {
    /// The last sequence number written; readers wait on it.
    pub(super) head: watch::Sender<Seq>,
    /// Why the store does not take writes now; `None` while it does.
    failure: Mutex<Option<String>>,
    /// Whether `failure` is set: read on every write, without the lock.
    failing: AtomicBool,
    /// Bumped each time the store is reopened after a failure: consumers
    /// that see it change reload their offsets (what was committed but not
    /// flushed before the failure is gone).
    generation: AtomicU64,
}

impl Condition {
    pub(super) fn new(head: Seq) -> Condition {
        let (head, _) = watch::channel(head);
        Condition {
            head,
            failure: Mutex::new(None),
            failing: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    /// Why the store does not take writes, if it does not.
    pub fn failure(&self) -> Option<String> {
        if !self.failing.load(Ordering::Acquire) {
            return None;
        }
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The store stopped taking writes.
    pub(super) fn fail(&self, reason: String) {
        if let Some(held_back) = ERRORS.allow("store-write") {
            tracing::error!(reason = %reason, held_back, "the store cannot write; writes answer 503 until it can");
        }
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.failing.store(true, Ordering::Release);
    }

    /// The store takes writes again, with its log ending at `head` (crate
    /// tests call it to stand for a reopened store).
    pub(crate) fn recovered(&self, head: Seq) {
        self.head.send_replace(head);
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        self.failing.store(false, Ordering::Release);
        tracing::info!(head, "the store takes writes again");
    }
}
