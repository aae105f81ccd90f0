//! Durable state in sled: the event log, each consumer's committed offset,
//! and every service's own trees.
//!
//! Every change goes through [`Store::write`], one sled transaction that can
//! touch a service's trees, append events to the log and commit the writer's
//! log offset together: a consumer's effect and its progress are never
//! separated, so replaying the log after a crash applies nothing twice.
//! [`Store::durable`] waits until a flush covers everything written so far
//! (group commit), which is what an acknowledgement waits for.

mod codec;
mod commit;
mod dead_letter;
mod log;
mod table;

pub use codec::{decode, encode, CodecError};
pub use dead_letter::{remove_dead_letter, DeadLetter};
pub use log::{Tx, TxError, TxResult};
pub use table::Table;

use crate::domain::{Event, Seq};
use commit::GroupCommit;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::Tree;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A key and its value as stored.
pub type RawEntry = (Vec<u8>, Vec<u8>);

/// One change of a commit: the tree's index, the key, the value (`None`:
/// removed).
type TreeWrite<'a> = (usize, &'a [u8], Option<&'a [u8]>);

/// Errors of the store layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(String),
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("the store is shut down")]
    Closed,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e.to_string())
    }
}

/// A handle to the node's database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    events: Tree,
    /// The trees behind the tables, opened on first use.
    trees: RwLock<HashMap<&'static str, Tree>>,
    /// Serialises writers so that sequence numbers are handed out and made
    /// visible in order: a reader that sees event N has seen every event < N.
    append: Mutex<()>,
    /// The last sequence number written; readers wait on it.
    head: watch::Sender<Seq>,
    group: GroupCommit,
    stats: Arc<WriterStats>,
}

/// How busy the log's writer lock is: every change in the node passes
/// through it, so its busy share of wall time is how close the store is to
/// its ceiling (see the README's performance section).
#[derive(Debug, Default)]
pub struct WriterStats {
    commits: AtomicU64,
    keys: AtomicU64,
    busy_ns: AtomicU64,
}

/// A reading of [`WriterStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WriterReading {
    /// Writes committed.
    pub commits: u64,
    /// Keys written or removed by them, events included.
    pub keys: u64,
    /// Time the writer lock was held.
    pub busy: Duration,
}

impl WriterStats {
    pub fn read(&self) -> WriterReading {
        WriterReading {
            commits: self.commits.load(Ordering::Relaxed),
            keys: self.keys.load(Ordering::Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
        }
    }

    fn record(&self, keys: usize, held: Duration) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.keys.fetch_add(keys as u64, Ordering::Relaxed);
        self.busy_ns.fetch_add(held.as_nanos() as u64, Ordering::Relaxed);
    }
}

const EVENTS: &str = "events";
/// Each consumer's committed offset, by consumer name.
const OFFSETS: Table<Seq> = Table::new("offsets");

impl Store {
    /// Opens (or creates) the database at `path` with a page cache of
    /// `cache_bytes` (sled's default of 1 GiB is far more than a node needs).
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(cache_bytes).open()?;
        let events = db.open_tree(EVENTS)?;
        let last = match events.last()? {
            Some((k, _)) => log::seq_from_key(&k)?,
            None => 0,
        };
        let (head, _) = watch::channel(last);
        let group = GroupCommit::start(db.clone())
            .map_err(|e| StoreError::Sled(format!("cannot start the flusher thread: {e}")))?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                events,
                trees: RwLock::new(HashMap::new()),
                append: Mutex::new(()),
                head,
                group,
                stats: Arc::default(),
            }),
        })
    }

    /// The tree behind the table called `name`, opened on first use.
    fn tree(&self, name: &'static str) -> Result<Tree, StoreError> {
        if let Some(tree) = self.inner.trees.read().ok().and_then(|t| t.get(name).cloned()) {
            return Ok(tree);
        }
        let tree = self.inner.db.open_tree(name)?;
        if let Ok(mut trees) = self.inner.trees.write() {
            trees.insert(name, tree.clone());
        }
        Ok(tree)
    }

    pub(crate) fn raw_get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree(table)?.get(key)?.map(|v| v.to_vec()))
    }

    fn raw_contains(&self, table: &'static str, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.tree(table)?.contains_key(key)?)
    }

    /// Reads one value outside a write.
    pub fn get<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<V>, StoreError> {
        match self.tree(table.name())?.get(key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Every value whose key starts with `prefix`, in key order.
    pub fn scan_prefix<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        prefix: impl AsRef<[u8]>,
    ) -> Result<Vec<V>, StoreError> {
        self.tree(table.name())?.scan_prefix(prefix).map(|kv| Ok(decode(&kv?.1)?)).collect()
    }

    /// Entries with keys from `start` on, in key order, each with its key;
    /// read lazily, so a caller can stop early.
    pub fn entries_from<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        start: impl AsRef<[u8]>,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, V), StoreError>>, StoreError> {
        let start = start.as_ref().to_vec();
        let entries = self.tree(table.name())?.range(start..);
        Ok(entries.map(|kv| {
            let (k, v) = kv?;
            Ok((k.to_vec(), decode(&v)?))
        }))
    }

    /// Writes one value at once, outside the log's writer lock: for a
    /// single key that no event depends on (one insert is atomic on its own).
    pub fn put_now<V: serde::Serialize>(
        &self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
        value: &V,
    ) -> Result<(), StoreError> {
        self.tree(table.name())?.insert(key.as_ref(), encode(value)?)?;
        Ok(())
    }

    /// Every raw entry of the table called `name`, for inspection (tests,
    /// checks of a stopped store).
    pub fn raw_entries(&self, name: &str) -> Result<Vec<RawEntry>, StoreError> {
        let tree = self.inner.db.open_tree(name)?;
        tree.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from)).collect()
    }

    /// A fresh unique number, never handed out twice, even across restarts.
    pub fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.generate_id()?)
    }

    /// The sequence number of the last event in the log.
    pub fn head(&self) -> Seq {
        *self.inner.head.borrow()
    }

    /// A receiver that changes whenever events are appended.
    pub fn watch_head(&self) -> watch::Receiver<Seq> {
        self.inner.head.subscribe()
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
        let range = log::key(after + 1)..=log::key(head);
        self.inner.events.range(range).take(limit).map(|kv| Ok(decode::<Event>(&kv?.1)?)).collect()
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
            let value = match f(&mut tx) {
                Ok(v) => v,
                Err(TxError::Abort(e)) => return Err(WriteError::Abort(e)),
                Err(TxError::Store(e)) => return Err(WriteError::Store(e)),
            };
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
        // The trees the write touches, the log last; each write by index.
        let mut names: Vec<&'static str> = tx.writes.keys().map(|(name, _)| *name).collect();
        names.dedup();
        let mut trees = names.iter().map(|n| self.tree(n)).collect::<Result<Vec<Tree>, _>>()?;
        trees.push(inner.events.clone());
        let writes: Vec<TreeWrite<'_>> = tx
            .writes
            .iter()
            .map(|((name, key), value)| {
                let index = names.iter().position(|n| n == name).unwrap_or_default();
                (index, key.as_slice(), value.as_deref())
            })
            .collect();
        // The mutex guards no data, only the order of writers, so a panic in
        // an earlier writer (poisoning it) changes nothing: carry on.
        let guard = inner.append.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let locked = Instant::now();
        for (consumer, seen) in &tx.offsets_read {
            if self.raw_get(OFFSETS.name(), consumer.as_bytes())? != *seen {
                return Ok(None);
            }
        }
        let events = log::number(tx.events, self.head() + 1);
        let encoded: Vec<([u8; 8], Vec<u8>)> =
            events.iter().map(|e| Ok((log::key(e.seq), encode(e)?))).collect::<Result<_, CodecError>>()?;
        let events_index = trees.len() - 1;
        let all: Vec<&Tree> = trees.iter().collect();
        all.as_slice()
            .transaction(|view| {
                for (tree, key, value) in &writes {
                    match value {
                        Some(bytes) => view[*tree].insert(*key, *bytes)?,
                        None => view[*tree].remove(*key)?,
                    };
                }
                for (key, bytes) in &encoded {
                    view[events_index].insert(&key[..], bytes.as_slice())?;
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Abort(()) => StoreError::Sled("commit aborted".into()),
                TransactionError::Storage(e) => e.into(),
            })?;
        if let Some(last) = events.last() {
            inner.head.send_replace(last.seq);
        }
        inner.stats.record(writes.len() + encoded.len(), locked.elapsed());
        drop(guard);
        Ok(Some(events))
    }

    /// Whether the last flush succeeded; readiness reports it.
    pub fn healthy(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        self.inner.group.healthy()
    }

    /// The writer lock's counters, shared: readable after the store closes.
    pub fn writer_stats(&self) -> Arc<WriterStats> {
        self.inner.stats.clone()
    }

    /// Waits until everything written before this call is on disk.
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.inner.group.durable().await
    }

    /// Flushes now, blocking the calling thread; for shutdown.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.inner.db.size_on_disk()?)
    }
}

/// Why a [`Store::write`] did not happen.
#[derive(Debug)]
pub enum WriteError<E> {
    /// The closure refused; nothing was written.
    Abort(E),
    Store(StoreError),
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
