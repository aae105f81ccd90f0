//! Group commit: many writers, one flusher.
//!
//! sled 0.34 deadlocks when several tasks call `flush_async` at once
//! (spacejam/sled#1308), and one flush per write caps a node at a few
//! thousand durable writes a second. So writers only take a ticket after
//! their write, and one dedicated thread runs the blocking `flush()` and
//! publishes the highest ticket each flush covers. A flush that starts after
//! a ticket was taken covers that ticket's write, so every waiter is released
//! by the first flush that begins after it asked.

use super::backend::Backend;
use super::marker::{self, Marker};
use super::StoreError;
use crate::domain::Seq;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::watch;

/// How long the flusher waits before retrying a failed flush.
const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(100);
/// The marker is rewritten at least this often while the log grows.
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
            tracing::error!(error = %e, dir = %self.dir.display(), "writing the store's marker failed");
        }
    }
}

pub(super) struct GroupCommit {
    shared: Arc<Shared>,
    healthy: Arc<AtomicBool>,
    flushed: watch::Receiver<Flushed>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Clone, Copy, Default)]
struct Flushed {
    ticket: u64,
    /// The flusher has stopped; waiters get [`StoreError::Closed`].
    closed: bool,
}

struct Shared {
    state: Mutex<Requests>,
    wake: Condvar,
}

#[derive(Default)]
struct Requests {
    /// The highest ticket handed out.
    requested: u64,
    stop: bool,
}

impl GroupCommit {
    pub(super) fn start(backend: Arc<dyn Backend>, marking: Option<Marking>) -> std::io::Result<GroupCommit> {
        let shared = Arc::new(Shared { state: Mutex::new(Requests::default()), wake: Condvar::new() });
        let (tx, flushed) = watch::channel(Flushed::default());
        let healthy = Arc::new(AtomicBool::new(true));
        let (for_thread, healthy_flag) = (shared.clone(), healthy.clone());
        let thread = std::thread::Builder::new()
            .name("fulfil-flusher".into())
            .spawn(move || flusher(backend, marking, for_thread, tx, healthy_flag))?;
        Ok(GroupCommit { shared, healthy, flushed, thread: Some(thread) })
    }

    pub(super) fn healthy(&self) -> Arc<AtomicBool> {
        self.healthy.clone()
    }

    /// Resolves once a flush has covered every write finished before the call.
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
        if seen.ticket >= ticket {
            Ok(())
        } else {
            Err(StoreError::Closed)
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

/// The flusher thread: flushes when a writer waits for durability, and at
/// least every [`MARK_EVERY`] while the log grows, so that the marker keeps
/// up with the log even when nobody waits. The marker names the head as it
/// was before the flush began: every event up to it is covered.
fn flusher(
    backend: Arc<dyn Backend>,
    marking: Option<Marking>,
    shared: Arc<Shared>,
    flushed: watch::Sender<Flushed>,
    healthy: Arc<AtomicBool>,
) {
    let mut done = 0u64;
    let (mut marked, mut marked_at) = (marking.as_ref().map_or(0, |m| *m.head.borrow()), Instant::now());
    loop {
        let (target, stop) = {
            let Ok(mut s) = shared.state.lock() else {
                break;
            };
            while s.requested == done && !s.stop {
                let grew = marking.as_ref().is_some_and(|m| *m.head.borrow() > marked);
                if grew && marked_at.elapsed() >= MARK_EVERY {
                    break;
                }
                s = match shared.wake.wait_timeout(s, MARK_EVERY) {
                    Ok((s, _)) => s,
                    Err(_) => return,
                };
            }
            (s.requested, s.stop)
        };
        let head = marking.as_ref().map(|m| *m.head.borrow());
        match backend.flush() {
            Ok(_) => {
                healthy.store(true, Ordering::Relaxed);
                done = target;
                flushed.send_replace(Flushed { ticket: done, closed: false });
            }
            Err(e) => {
                healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, "flushing the store failed; retrying");
                std::thread::sleep(RETRY_AFTER_FAILURE);
                continue;
            }
        }
        if let (Some(m), Some(head)) = (&marking, head) {
            if head > marked && (marked_at.elapsed() >= MARK_EVERY || stop) {
                m.write(head);
                (marked, marked_at) = (head, Instant::now());
            }
        }
        if stop {
            break;
        }
    }
    flushed.send_replace(Flushed { ticket: done, closed: true });
}
