//! Durable state in sled: the event log, each consumer's committed offset,
//! and every service's own trees.
//!
//! Every change goes through [`Store::write`], one sled transaction that can
//! touch a service's trees, append events to the log and commit the writer's
//! log offset together: a consumer's effect and its progress are never
//! separated, so replaying the log after a crash applies nothing twice.
//! [`Store::durable`] waits until a flush covers everything written so far
//! (group commit), which is what an acknowledgement waits for.

pub mod backend;
mod backup;
mod codec;
mod commit;
mod condition;
#[cfg(test)]
mod contract;
mod dead_letter;
mod log;
pub mod marker;
mod open;
mod read_cache;
mod reader;
mod staged;
mod table;
mod tail;
mod writer_stats;

pub use backup::{restore, BackupReport};
pub use codec::{decode, encode, CodecError};
pub use condition::Condition;
pub use dead_letter::{park, remove_dead_letter, unpark, DeadLetter};
pub use log::{Tx, TxError, TxResult};
pub use open::sled_in;
pub use read_cache::ReadCache;
pub use reader::{Reader, UNFOLDED_AT_MOST};
pub use staged::Staged;
pub use table::Table;
pub use writer_stats::{WriterReading, WriterStats, LOG_KEYS};

use crate::domain::{Event, Seq};
use backend::{Backend, Change, MemoryBackend};
use commit::GroupCommit;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tail::Tail;
use tokio::sync::watch;

/// A key and its value as stored.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// Errors of the store layer. Each keeps its cause (`source()`); they are
/// `Clone` (one failed write answers many waiting callers), so causes are
/// shared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The storage engine failed (I/O, a full disk, corruption).
    #[error("storage error: {0}")]
    Engine(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// An append repeated a sequence number already in the log.
    #[error("event {0} is already in the log; the append is refused")]
    DuplicateAppend(Seq),
    #[error("cannot start the flusher thread: {0}")]
    Flusher(#[source] Arc<std::io::Error>),
    /// What is on disk is not a store the node can trust (see
    /// [`marker`]); the message says what is wrong.
    #[error("{0}")]
    Damaged(String),
    /// The store does not take writes now (a full disk); it retries by
    /// itself, and so may the caller.
    #[error("the store cannot write now ({0}); retry a little later")]
    Unavailable(String),
    /// A backup or restore needs a new or empty directory.
    #[error("{0} is not empty; choose a new directory")]
    NotEmpty(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the store is shut down")]
    Closed,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(Arc::new(e))
    }
}

/// A handle to the node's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    /// Serialises writers so that sequence numbers are handed out and made
    /// visible in order: a reader that sees event N has seen every event < N.
    append: Mutex<()>,
    /// The log's head, whether writes are taken, how often it was reopened.
    condition: Arc<Condition>,
    group: GroupCommit,
    stats: Arc<WriterStats>,
    /// The newest events, for readers that keep up ([`Tail`]).
    tail: Mutex<Tail>,
    /// Whether the store may hold a dead letter: false only while it is
    /// known to hold none, so that a status read need not scan for an
    /// order's (a scan waits for sled's lock like any read). Set before a
    /// dead letter is written; never cleared while the store is open.
    maybe_dead_letters: std::sync::atomic::AtomicBool,
}

/// Each consumer's committed offset, by consumer name.
const OFFSETS: Table<Seq> = Table::new("offsets");

impl Store {
    /// Opens (or creates) the embedded store at `path` with a page cache
    /// of `cache_bytes` (sled's default of 1 GiB is far more than a node
    /// needs).
    ///
    /// A store that is unreadable, empty where its marker says it held
    /// events, another store than the marker names, or whose log ends before
    /// the marker's head is refused with [`StoreError::Damaged`] (see
    /// [`marker`]); nothing is changed then.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let (backend, store_id) = open::checked(path, cache_bytes)?;
        Store::with_parts(Arc::new(backend), Some((path.to_path_buf(), store_id)))
    }

    /// Opens the store in `path` over `backend` (already open on `path`,
    /// e.g. a backend that also copies each commit elsewhere), checked
    /// against its marker as [`Store::open`] does.
    pub fn open_on(path: &Path, backend: Arc<dyn Backend>) -> Result<Store, StoreError> {
        let store_id = open::checked_on(path, backend.as_ref())?;
        Store::with_parts(backend, Some((path.to_path_buf(), store_id)))
    }

    /// A store that keeps everything in memory, for tests.
    pub fn in_memory() -> Store {
        // Only a failure to start the flusher thread can fail here.
        Store::with_backend(Arc::new(MemoryBackend::default())).expect("an in-memory store opens")
    }

    /// A store over `backend`, with no marker.
    pub fn with_backend(backend: Arc<dyn Backend>) -> Result<Store, StoreError> {
        Store::with_parts(backend, None)
    }

    /// A store over `backend`; `marked`: the data directory and the store's
    /// id, when a marker is kept beside it.
    fn with_parts(
        backend: Arc<dyn Backend>,
        marked: Option<(std::path::PathBuf, String)>,
    ) -> Result<Store, StoreError> {
        let condition = Arc::new(Condition::new(backend.last_seq()?));
        let marking =
            marked.map(|(dir, store_id)| commit::Marking { dir, store_id, head: condition.head.subscribe() });
        let group = GroupCommit::start(backend.clone(), marking, condition.clone())
            .map_err(|e| StoreError::Flusher(Arc::new(e)))?;
        let maybe_dead_letters = dead_letter::any_in(backend.as_ref())?.into();
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                append: Mutex::new(()),
                condition,
                group,
                stats: Arc::default(),
                tail: Mutex::default(),
                maybe_dead_letters,
            }),
        })
    }

    pub(crate) fn raw_get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.backend.get(table, key).map_err(|e| self.failed(e))
    }

    /// A value read through `cache`: kept from an earlier read, or read now
    /// and kept (see [`ReadCache`]).
    pub(crate) fn raw_get_cached(
        &self,
        cache: &std::cell::RefCell<ReadCache>,
        table: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let kept = cache.borrow_mut().get(table, key);
        if let Some(kept) = kept {
            return Ok(kept);
        }
        let read = self.raw_get(table, key)?;
        cache.borrow_mut().insert(table, key, read.clone());
        Ok(read)
    }

    fn raw_contains(&self, table: &'static str, key: &[u8]) -> Result<bool, StoreError> {
        self.inner.backend.contains(table, key).map_err(|e| self.failed(e))
    }

    /// Reads one value outside a write.
    pub fn get<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<V>, StoreError> {
        self.reader().get(table, key).map_err(|e| self.failed(e))
    }

    /// Every value whose key starts with `prefix`, in key order.
    pub fn scan_prefix<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        prefix: impl AsRef<[u8]>,
    ) -> Result<Vec<V>, StoreError> {
        self.reader().scan_prefix(table, prefix).map_err(|e| self.failed(e))
    }

    /// Entries with keys from `start` on, in key order, each with its key;
    /// read lazily, so a caller can stop early.
    pub fn entries_from<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        start: impl AsRef<[u8]>,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, V), StoreError>> + '_, StoreError> {
        let entries = self.reader().entries_from(table, start).map_err(|e| self.failed(e))?;
        Ok(entries.map(|entry| entry.map_err(|e| self.failed(e))))
    }

    /// Raw entries with keys from `start` on, in key order, read lazily.
    pub(crate) fn raw_entries_from(
        &self,
        table: &'static str,
        start: &[u8],
    ) -> Result<impl Iterator<Item = Result<RawEntry, StoreError>> + '_, StoreError> {
        let entries = self.inner.backend.scan(table, start).map_err(|e| self.failed(e))?;
        Ok(entries.map(|kv| kv.map_err(|e| self.failed(e))))
    }

    /// Writes one value at once, outside the log's writer lock: for a
    /// single key that no event depends on (one insert is atomic on its own).
    pub fn put_now<V: serde::Serialize>(
        &self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
        value: &V,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let put = self.inner.backend.put(table.name(), key.as_ref(), &encode(value)?);
        put.map_err(|e| self.failed(e))
    }

    /// Reads of what is committed, as another node reading this store's
    /// backend would see it (nothing held back or staged).
    pub fn reader(&self) -> Reader<'_> {
        Reader::new(self.inner.backend.as_ref())
    }

    /// Every raw entry of the table called `name`, for inspection (tests,
    /// checks of a stopped store).
    pub fn raw_entries(&self, name: &str) -> Result<Vec<RawEntry>, StoreError> {
        self.inner.backend.scan(name, &[])?.collect()
    }

    /// A fresh unique number, never handed out twice, even across restarts.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        self.inner.backend.generate_id()
    }

    /// The sequence number of the last event in the log.
    pub fn head(&self) -> Seq {
        *self.inner.condition.head.borrow()
    }

    /// A receiver that changes whenever events are appended.
    pub fn watch_head(&self) -> watch::Receiver<Seq> {
        self.inner.condition.head.subscribe()
    }

    /// The committed offset of `consumer`: the last event it has processed.
    pub fn offset(&self, consumer: &str) -> Result<Seq, StoreError> {
        Ok(self.get(OFFSETS, consumer)?.unwrap_or(0))
    }

    /// Up to `limit` events after `after`, oldest first, none past the head.
    pub fn read_log(&self, after: Seq, limit: usize) -> Result<Vec<Event>, StoreError> {
        let head = self.head();
        if after >= head {
            return Ok(Vec::new());
        }
        let limit = limit.min(usize::try_from(head - after).unwrap_or(usize::MAX));
        let generation = self.inner.condition.generation();
        let tail = self.inner.tail.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(events) = tail.read(generation, after, limit) {
            return Ok(events);
        }
        drop(tail);
        let encoded = self.inner.backend.read_log(after + 1, limit).map_err(|e| self.failed(e))?;
        encoded.iter().map(|bytes| Ok(decode::<Event>(bytes)?)).collect()
    }

    /// Runs `f` and applies what it wrote atomically: its tables, the
    /// events it appended and the offsets it committed (see [`Tx`]).
    ///
    /// `f` may run more than once (when a log offset it read changed before
    /// commit), so it must only compute and write through the [`Tx`].
    /// Returns `f`'s value and the events it appended.
    pub fn write<R, E>(
        &self,
        f: impl Fn(&mut Tx<'_>) -> TxResult<R, E>,
    ) -> Result<(R, Vec<Event>), WriteError<E>> {
        loop {
            let mut tx = Tx::new(self);
            let value = f(&mut tx)?;
            if tx.writes.is_empty() && tx.events.is_empty() {
                return Ok((value, Vec::new()));
            }
            match self.commit(tx) {
                Ok(Some(appended)) => return Ok((value, appended)),
                Ok(None) => continue,
                Err(e) => return Err(WriteError::Store(e)),
            }
        }
    }

    /// Applies a write under the log's writer lock: numbers its events,
    /// checks the offsets it read, and applies everything in one short sled
    /// transaction over the trees it touches. `None` when an offset changed:
    /// the write must be redone.
    fn commit(&self, tx: Tx<'_>) -> Result<Option<Vec<Event>>, StoreError> {
        let inner = &self.inner;
        let changes: Vec<Change<'_>> = tx
            .writes
            .iter()
            .map(|((table, key), value)| Change { table, key, value: value.as_deref() })
            .collect();
        // The mutex guards no data, only the order of writers, so a panic in
        // an earlier writer (poisoning it) changes nothing: carry on.
        let guard = inner.append.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.writable()?;
        // Decided on what a reopened store may have lost: folded again.
        if tx.generation.is_some_and(|g| g != inner.condition.generation()) {
            return Err(StoreError::Unavailable(
                "the store was reopened since this write was decided".into(),
            ));
        }
        let locked = Instant::now();
        for (consumer, seen) in &tx.offsets_read {
            if self.raw_get(OFFSETS.name(), consumer.as_bytes())? != *seen {
                return Ok(None);
            }
        }
        let events = log::number(tx.events, self.head() + 1);
        let encoded: Vec<(Seq, Vec<u8>)> =
            events.iter().map(|e| Ok((e.seq, encode(e)?))).collect::<Result<_, CodecError>>()?;
        inner.backend.commit(&changes, &encoded).map_err(|e| self.failed(e))?;
        if let Some(last) = events.last() {
            // Kept before the head moves: a reader that sees the new head
            // finds every event up to it in the tail, or reads the store.
            let generation = inner.condition.generation();
            inner.tail.lock().unwrap_or_else(|p| p.into_inner()).keep(generation, &events);
            inner.condition.head.send_replace(last.seq);
        }
        // The log takes one key a commit: its events are one record.
        let log = (!encoded.is_empty()).then_some(LOG_KEYS);
        inner.stats.record(tx.writes.keys().map(|(table, _)| *table).chain(log), locked.elapsed());
        drop(guard);
        Ok(Some(events))
    }

    /// Whether the store takes writes, and why not; readiness reports it.
    pub fn condition(&self) -> Arc<Condition> {
        self.inner.condition.clone()
    }

    /// Refuses a write while the store cannot take one.
    fn writable(&self) -> Result<(), StoreError> {
        match self.inner.condition.failure() {
            Some(reason) => Err(StoreError::Unavailable(reason)),
            None => Ok(()),
        }
    }

    /// An operation failed in the backend: a storage failure (a full disk)
    /// means the store stops taking writes until it heals; the rest (a
    /// duplicate append, a value that does not decode) is the caller's.
    fn failed(&self, e: StoreError) -> StoreError {
        match e {
            other @ StoreError::Engine(_) => {
                let reason = other.to_string();
                self.inner.condition.fail(reason.clone());
                StoreError::Unavailable(reason)
            }
            other => other,
        }
    }

    /// The writer lock's counters, shared: readable after the store closes.
    pub fn writer_stats(&self) -> Arc<WriterStats> {
        self.inner.stats.clone()
    }

    /// The store's identity, given when it was created (none for a store
    /// in memory): what tells one store's events from another's outside it.
    pub fn id(&self) -> Result<Option<String>, StoreError> {
        open::store_id(&*self.inner.backend)
    }

    /// Waits until everything written before this call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.inner.group.durable().await
    }

    /// Flushes now, blocking the calling thread; for shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.backend.flush()
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.backend.size_on_disk()
    }
}

/// Why a [`Store::write`] did not happen.
#[derive(Debug)]
pub enum WriteError<E> {
    /// The closure refused; nothing was written.
    Abort(E),
    Store(StoreError),
}

impl<E> From<TxError<E>> for WriteError<E> {
    fn from(e: TxError<E>) -> Self {
        match e {
            TxError::Abort(e) => WriteError::Abort(e),
            TxError::Store(e) => WriteError::Store(e),
        }
    }
}

/// Ends a write's closure with the caller's error; nothing is written.
pub fn abort<T, E>(e: E) -> TxResult<T, E> {
    Err(TxError::Abort(e))
}

impl<E: From<StoreError>> WriteError<E> {
    /// Folds a storage failure into the caller's error type.
    pub fn flatten(self) -> E {
        match self {
            WriteError::Abort(e) => e,
            WriteError::Store(e) => e.into(),
        }
    }
}

/// `part \0`: the prefix of composite keys that start with `part`. Ids never
/// contain `\0` (they refuse control characters), so one id's keys never
/// run into another's.
pub fn key_prefix(part: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(part.len() + 9);
    key.extend_from_slice(part.as_bytes());
    key.push(0);
    key
}
