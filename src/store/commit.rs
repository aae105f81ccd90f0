//! Group commit: many writers, one flusher.
//!
//! sled 0.34 deadlocks when several tasks call `flush_async` at once
//! (spacejam/sled#1308), and one flush per write caps a node at a few
//! thousand durable writes a second. So writers only take a ticket after
//! their write, and one dedicated thread runs the blocking `flush()` and
//! publishes the highest ticket each flush covers. A flush that starts after
//! a ticket was taken covers that ticket's write, so every waiter is released
//! by the first flush that begins after it asked.
//!
//! When a flush fails (a full disk), the writes it was to cover are not
//! durable: their waiters get [`StoreError::Unavailable`], the store stops
//! taking writes ([`Condition`]), and the flusher tries every second to heal
//! the backend ([`Backend::heal`]). Once it does, and its log still reaches
//! the marker, the store takes writes again, with no restart.

use super::backend::Backend;
use super::condition::Condition;
use super::marker::{self, Marker};
use super::StoreError;
use crate::domain::Seq;
use crate::logging::ERRORS;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::watch;

/// The marker is rewritten at least this often while the log grows; a
/// failed store is tried this often too.
const MARK_EVERY: Duration = Duration::from_secs(1);

/// Keeping the marker beside an on-disk store (see [`super::marker`]).
pub(super) struct Marking {
    pub(super) dir: PathBuf,
    pub(super) store_id: String,
    pub(super) head: watch::Receiver<Seq>,
}

impl Marking {
    fn write(&self, head: Seq) {
        let marker = Marker { store_id: self.store_id.clone(), head };
        if let Err(e) = marker::write(&self.dir, &marker) {
            if let Some(held_back) = ERRORS.allow("marker") {
                tracing::error!(error = %e, dir = %self.dir.display(), held_back, "writing the store's marker failed");
            }
        }
    }

    /// The head the marker last claimed durable, if it can be read.
    fn marked_head(&self) -> Option<Seq> {
        marker::read(&self.dir).ok().flatten().map(|m| m.head)
    }
}

pub(super) struct GroupCommit {
    shared: Arc<Shared>,
    flushed: watch::Receiver<Flushed>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy, Default)]
struct Flushed {
    /// Every ticket up to this one is settled: made durable, or failed.
    ticket: u64,
    /// The flusher has stopped; waiters get [`StoreError::Closed`].
    closed: bool,
}

struct Shared {
    state: Mutex<Requests>,
    wake: Condvar,
    /// Whether any flush ever failed: until one does, a settled ticket is a
    /// durable one, and waiters need not look at `Requests::failed`.
    ever_failed: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Requests {
    /// The highest ticket handed out.
    requested: u64,
    stop: bool,
    /// Tickets whose flush failed, as ranges (from, to]: never many.
    failed: Vec<(u64, u64)>,
}

impl GroupCommit {
    pub(super) fn start(
        backend: Arc<dyn Backend>,
        marking: Option<Marking>,
        condition: Arc<Condition>,
    ) -> std::io::Result<GroupCommit> {
        let shared = Arc::new(Shared {
            state: Mutex::new(Requests::default()),
            wake: Condvar::new(),
            ever_failed: std::sync::atomic::AtomicBool::new(false),
        });
        let (tx, flushed) = watch::channel(Flushed::default());
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fulfil-flusher".into())
            .spawn(move || Flusher { backend, marking, condition, shared: for_thread, flushed: tx }.run())?;
        Ok(GroupCommit { shared, flushed, thread: Some(thread) })
    }

    /// Resolves once a flush has covered every write finished before the
    /// call; fails if that flush failed.
    pub(super) async fn durable(&self) -> Result<(), StoreError> {
        let ticket = {
            let mut s = self.shared.state.lock().map_err(|_| StoreError::Closed)?;
            if s.stop {
                return Err(StoreError::Closed);
            }
            s.requested += 1;
            s.requested
        };
        self.shared.wake.notify_one();
        let mut rx = self.flushed.clone();
        let seen = rx.wait_for(|f| f.ticket >= ticket || f.closed).await.map_err(|_| StoreError::Closed)?;
        if seen.ticket < ticket {
            return Err(StoreError::Closed);
        }
        if !self.shared.ever_failed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let s = self.shared.state.lock().map_err(|_| StoreError::Closed)?;
        match s.failed.iter().any(|(from, to)| *from < ticket && ticket <= *to) {
            true => Err(StoreError::Unavailable("the write could not be made durable".into())),
            false => Ok(()),
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if let Ok(mut s) = self.shared.state.lock() {
            s.stop = true;
        }
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The flusher thread's state.
struct Flusher {
    backend: Arc<dyn Backend>,
    marking: Option<Marking>,
    condition: Arc<Condition>,
    shared: Arc<Shared>,
    flushed: watch::Sender<Flushed>,
}

impl Flusher {
    /// Flushes when a writer waits for durability, and at least every
    /// [`MARK_EVERY`] while the log grows, so that the marker keeps up with
    /// the log even when nobody waits. The marker names the head as it was
    /// before the flush began: every event up to it is covered.
    fn run(self) {
        let mut done = 0u64;
        let (mut marked, mut marked_at) = (self.head(), Instant::now());
        while let Some((target, stop)) = self.next_round(done, marked, marked_at) {
            if self.condition.failure().is_some() {
                done = self.fail_waiters(done, target);
                if stop {
                    break;
                }
                self.heal();
                continue;
            }
            let head = self.head();
            if let Err(e) = self.backend.flush() {
                self.condition.fail(format!("flushing failed: {e}"));
                continue;
            }
            done = target;
            self.flushed.send_replace(Flushed { ticket: done, closed: false });
            if let Some(m) = &self.marking {
                if head > marked && (marked_at.elapsed() >= MARK_EVERY || stop) {
                    m.write(head);
                    (marked, marked_at) = (head, Instant::now());
                }
            }
            if stop {
                break;
            }
        }
        self.flushed.send_replace(Flushed { ticket: done, closed: true });
    }

    fn head(&self) -> Seq {
        self.marking.as_ref().map_or(0, |m| *m.head.borrow())
    }

    /// Waits for work: a ticket to cover, the marker to keep up, a failure
    /// to heal, or the stop. `None` when the state cannot be read.
    fn next_round(&self, done: u64, marked: Seq, marked_at: Instant) -> Option<(u64, bool)> {
        let mut s = self.shared.state.lock().ok()?;
        while s.requested == done && !s.stop {
            let grew = self.head() > marked && marked_at.elapsed() >= MARK_EVERY;
            if grew || self.condition.failure().is_some() {
                break;
            }
            s = self.shared.wake.wait_timeout(s, MARK_EVERY).ok()?.0;
        }
        Some((s.requested, s.stop))
    }

    /// Settles the tickets up to `target` as failed; returns the new done.
    fn fail_waiters(&self, done: u64, target: u64) -> u64 {
        if target > done {
            if let Ok(mut s) = self.shared.state.lock() {
                s.failed.push((done, target));
            }
            self.shared.ever_failed.store(true, std::sync::atomic::Ordering::Release);
            self.flushed.send_replace(Flushed { ticket: target, closed: false });
        }
        target
    }

    /// One attempt to make the store writable again; waits a while if not.
    fn heal(&self) {
        let healed = match self.backend.heal() {
            Ok(true) => self.backend.last_seq(),
            Ok(false) => Err(StoreError::Unavailable("the disk does not take writes yet".into())),
            Err(e) => Err(e),
        };
        match healed {
            // What the marker said was durable must still be there.
            Ok(head) if self.marking.as_ref().and_then(Marking::marked_head).is_some_and(|m| m > head) => {
                self.condition
                    .fail(format!("the reopened log ends at {head}, before its marker: not served"));
            }
            Ok(head) => return self.condition.recovered(head),
            Err(e) => {
                if let Some(held_back) = ERRORS.allow("store-heal") {
                    tracing::warn!(error = %e, held_back, "the store is not writable yet; trying again");
                }
            }
        }
        std::thread::sleep(MARK_EVERY);
    }
}
