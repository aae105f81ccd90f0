//! What a follower's HTTP server reads ([`ReplicaReads`]: its store at
//! one copy), and where the stream of copies ends ([`StreamEnd`]), which
//! a read waits for the store to reach (`http::forward::reads`).

use super::Names;
use crate::store::backend::SledBackend;
use crate::store::Reader;
use async_nats::jetstream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A follower's store as its HTTP server reads it: at one copy (none is
/// applied while a read runs), and only while it is a follower's (not
/// while it is refilled from a snapshot, nor once it leads) and exact
/// (not before a store filled from a leader's snapshot has applied the
/// copies it holds in part: [`Snapshot`](super::Snapshot)).
#[derive(Clone)]
pub struct ReplicaReads {
    store: Arc<std::sync::RwLock<Option<Arc<SledBackend>>>>,
    applied: Arc<tokio::sync::watch::Sender<u64>>,
    /// The copy from which the store is exact.
    settled: Arc<AtomicU64>,
}

impl ReplicaReads {
    pub(super) fn of(local: &Arc<SledBackend>, applied: u64, settled: u64) -> ReplicaReads {
        ReplicaReads {
            store: Arc::new(std::sync::RwLock::new(Some(local.clone()))),
            applied: Arc::new(tokio::sync::watch::channel(applied).0),
            settled: Arc::new(AtomicU64::new(settled)),
        }
    }

    /// Runs `read` on the store as it stands at one copy; `None` while
    /// there is no follower's store to read, or it is not exact yet.
    pub fn read<R>(&self, read: impl FnOnce(&Reader<'_>) -> R) -> Option<R> {
        let store = self.store.read().unwrap_or_else(|p| p.into_inner());
        if self.applied() < self.settled.load(Ordering::Acquire) {
            return None;
        }
        store.as_deref().map(|backend| read(&Reader::new(backend)))
    }

    /// Changes each time a copy is applied (or the store refilled).
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied.subscribe()
    }

    /// The stream sequence of the last copy the store holds.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the store holds every copy up to stream sequence `seq`,
    /// at most `within`; whether it does.
    pub async fn holding(&self, seq: u64, within: std::time::Duration) -> bool {
        let mut applied = self.applied.subscribe();
        let reached = tokio::time::timeout(within, applied.wait_for(|applied| *applied >= seq)).await;
        let held = matches!(reached, Ok(Ok(_)));
        held
    }

    /// Applies a copy (`apply`, the store's commit) while no read runs, so
    /// that each read sees the store at one copy; then tells the reads
    /// waiting for it that the store holds `seq`.
    pub(super) fn applying<E>(&self, seq: u64, apply: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let reading = self.store.write().unwrap_or_else(|p| p.into_inner());
        apply()?;
        drop(reading);
        self.applied.send_replace(seq);
        Ok(())
    }

    /// Ends reads until [`ReplicaReads::reopen`], once those under way are
    /// done.
    pub(super) fn close(&self) {
        self.store.write().unwrap_or_else(|p| p.into_inner()).take();
    }

    pub(super) fn reopen(&self, local: &Arc<SledBackend>, applied: u64, settled: u64) {
        let mut store = self.store.write().unwrap_or_else(|p| p.into_inner());
        *store = Some(local.clone());
        self.settled.store(settled, Ordering::Release);
        self.applied.send_replace(applied);
    }

    /// The copy from which the store is exact.
    pub(super) fn settled(&self) -> u64 {
        self.settled.load(Ordering::Acquire)
    }
}

/// Where the stream of copies ends, asked by a follower before it answers
/// a read itself: every commit acknowledged before the read came is in
/// the stream by then, so a follower holding the stream up to there reads
/// every write that was acknowledged, made through any node.
///
/// Reads that come together share one request: an answer asked for after
/// a read came is as good for it as its own, so each read waits for the
/// first request that starts after it did, and at most one runs at once.
#[derive(Clone)]
pub struct StreamEnd {
    js: jetstream::Context,
    stream: String,
    /// The newest answer, and when the request for it was sent.
    newest: Arc<std::sync::Mutex<Option<(tokio::time::Instant, u64)>>>,
    asking: Arc<tokio::sync::Mutex<()>>,
}

impl StreamEnd {
    pub fn new(client: &async_nats::Client, names: &Names) -> StreamEnd {
        StreamEnd {
            js: jetstream::new(client.clone()),
            stream: names.stream.clone(),
            newest: Arc::default(),
            asking: Arc::default(),
        }
    }

    /// A sequence at or past the stream's last message as it was when
    /// this was called.
    pub async fn last(&self) -> Result<u64, String> {
        let called = tokio::time::Instant::now();
        let asked_since =
            || self.newest.lock().unwrap_or_else(|p| p.into_inner()).filter(|(at, _)| *at >= called);
        let _asking = self.asking.lock().await;
        if let Some((_, end)) = asked_since() {
            return Ok(end);
        }
        let at = tokio::time::Instant::now();
        let stream = self.js.get_stream(&self.stream).await.map_err(|e| e.to_string())?;
        let end = stream.cached_info().state.last_sequence;
        *self.newest.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, end));
        Ok(end)
    }
}
