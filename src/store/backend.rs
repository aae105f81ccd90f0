//! Where a store keeps its log and its tables: the [`Backend`] trait and
//! its providers, after restate's `Loglet` (one interface, several
//! providers, one contract that all of them keep).
//!
//! The [`super::Store`] above a backend does what does not depend on where
//! the bytes live: it numbers events under its writer lock, checks the log
//! offsets a write read, encodes values, and waits for durability by group
//! commit. A backend only has to keep this contract, which
//! `store::contract` tests against every provider:
//!
//! - **One commit, all or nothing.** [`Backend::commit`] applies its table
//!   changes and appends its events atomically: after a crash either all of
//!   them are there or none is. A consumer's effects, the events it appends
//!   and its new offset (a change to the `offsets` table) are one commit, so
//!   replaying the log applies nothing twice.
//! - **The log is contiguous, and an append is stored once.** Events are
//!   appended with the sequence numbers the store gave them, each one after
//!   the last. A commit whose first event's number is already in the log is
//!   refused and changes nothing, so a retried append (over a network, in a
//!   networked provider) is never stored twice.
//! - **Reads see every commit that returned.** `get`, `scan` and
//!   `read_log` see a commit as soon as [`Backend::commit`] has returned.
//! - **Durability is explicit.** A commit may be in memory until
//!   [`Backend::flush`] returns; acknowledgements wait for a flush.
//!
//! Providers: [`SledBackend`] (embedded, the default) and [`MemoryBackend`]
//! (for tests; nothing survives the process).

use super::{RawEntry, StoreError};
use crate::domain::Seq;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, RwLock};

/// One change of a commit: `value` `None` removes the key.
#[derive(Debug, Clone, Copy)]
pub struct Change<'a> {
    pub table: &'a str,
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
}

/// Entries of a table in key order.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<RawEntry, StoreError>> + 'a>;

/// The log and tables of one store; see the module docs for the contract.
pub trait Backend: Send + Sync {
    /// The value at `key` in `table`.
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Whether `table` has `key`.
    fn contains(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.get(table, key)?.is_some())
    }

    /// The entries of `table` from `start` on, in key order, read lazily.
    fn scan(&self, table: &str, start: &[u8]) -> Result<Entries<'_>, StoreError>;

    /// Writes one value on its own, outside any commit: atomic for that key,
    /// ordered with nothing else (for a record no event depends on).
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.commit(&[Change { table, key, value: Some(value) }], &[])
    }

    /// Applies `changes` and appends `events` (numbered, contiguous, after
    /// the last event) in one atomic commit.
    fn commit(&self, changes: &[Change<'_>], events: &[(Seq, Vec<u8>)]) -> Result<(), StoreError>;

    /// Up to `limit` encoded events numbered from `from` on, in order.
    fn read_log(&self, from: Seq, limit: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The number of the last event in the log; 0 when it is empty.
    fn last_seq(&self) -> Result<Seq, StoreError>;

    /// A number never handed out before by this store, even across restarts.
    fn generate_id(&self) -> Result<u64, StoreError>;

    /// Returns once every commit that returned before the call is durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// The names of the tables that hold anything (the log is not one).
    fn table_names(&self) -> Result<Vec<String>, StoreError>;
}

/// A refused append: the log already holds `seq`.
fn duplicate(seq: Seq) -> StoreError {
    StoreError::DuplicateAppend(seq)
}

// ---- sled ----

/// The embedded provider: one sled tree per table, and one for the log.
pub struct SledBackend {
    db: sled::Db,
    events: sled::Tree,
    /// The trees behind the tables, opened on first use.
    trees: RwLock<HashMap<String, sled::Tree>>,
}

const EVENTS: &str = "events";

impl SledBackend {
    /// Opens (or creates) the database at `path` with a page cache of
    /// `cache_bytes` (sled's default of 1 GiB is far more than a node needs).
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
        let db = sled::Config::new().path(path).cache_capacity(cache_bytes).open()?;
        let events = db.open_tree(EVENTS)?;
        Ok(SledBackend { db, events, trees: RwLock::new(HashMap::new()) })
    }

    fn tree(&self, name: &str) -> Result<sled::Tree, StoreError> {
        self.with_tree(name, sled::Tree::clone)
    }

    /// Runs `f` on the tree called `name` (opened on first use) without
    /// cloning it: reads are the hot path, and a clone is two atomic
    /// operations on a counter that every thread shares.
    fn with_tree<T>(&self, name: &str, f: impl FnOnce(&sled::Tree) -> T) -> Result<T, StoreError> {
        if let Ok(trees) = self.trees.read() {
            if let Some(tree) = trees.get(name) {
                return Ok(f(tree));
            }
        }
        let tree = self.db.open_tree(name)?;
        let answer = f(&tree);
        if let Ok(mut trees) = self.trees.write() {
            trees.insert(name.to_owned(), tree);
        }
        Ok(answer)
    }
}

impl Backend for SledBackend {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with_tree(table, |t| t.get(key))??.map(|v| v.to_vec()))
    }

    fn contains(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.with_tree(table, |t| t.contains_key(key))??)
    }

    /// A plain insert: sled runs a transaction under its process-wide lock,
    /// an insert does not.
    fn put(&self, table: &str, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.with_tree(table, |t| t.insert(key, value))??;
        Ok(())
    }

    fn scan(&self, table: &str, start: &[u8]) -> Result<Entries<'_>, StoreError> {
        let entries = self.tree(table)?.range(start.to_vec()..);
        Ok(Box::new(entries.map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(StoreError::from))))
    }

    fn commit(&self, changes: &[Change<'_>], events: &[(Seq, Vec<u8>)]) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        // The trees the commit touches, the log last; each change by index.
        let mut names: Vec<&str> = changes.iter().map(|c| c.table).collect();
        names.sort_unstable();
        names.dedup();
        let mut trees = names.iter().map(|n| self.tree(n)).collect::<Result<Vec<_>, _>>()?;
        trees.push(self.events.clone());
        let log = trees.len() - 1;
        let indexed: Vec<(usize, &Change<'_>)> =
            changes.iter().map(|c| (names.binary_search(&c.table).unwrap_or_default(), c)).collect();
        let all: Vec<&sled::Tree> = trees.iter().collect();
        let outcome = all.as_slice().transaction(|view| {
            if let Some((first, _)) = events.first() {
                if view[log].get(first.to_be_bytes())?.is_some() {
                    return Err(ConflictableTransactionError::Abort(*first));
                }
            }
            for (tree, c) in &indexed {
                match c.value {
                    Some(bytes) => view[*tree].insert(c.key, bytes)?,
                    None => view[*tree].remove(c.key)?,
                };
            }
            for (seq, bytes) in events {
                view[log].insert(&seq.to_be_bytes()[..], bytes.as_slice())?;
            }
            Ok(())
        });
        outcome.map_err(|e| match e {
            TransactionError::Abort(seq) => duplicate(seq),
            TransactionError::Storage(e) => e.into(),
        })
    }

    fn read_log(&self, from: Seq, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let entries = self.events.range(from.to_be_bytes()..).take(limit);
        entries.map(|kv| Ok(kv?.1.to_vec())).collect()
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        match self.events.last()? {
            Some((k, _)) => super::log::seq_from_key(&k),
            None => Ok(0),
        }
    }

    fn generate_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    fn table_names(&self) -> Result<Vec<String>, StoreError> {
        let names = self.db.tree_names().into_iter().map(|n| String::from_utf8_lossy(&n).into_owned());
        // sled's default tree is its own; the log is `events`.
        Ok(names.filter(|n| n != EVENTS && !n.starts_with("__sled__")).collect())
    }
}

// ---- memory ----

/// A provider that keeps everything in memory, for tests: every commit is
/// applied under one lock, so it is atomic; nothing is durable past the
/// process.
#[derive(Default)]
pub struct MemoryBackend {
    state: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    tables: HashMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    log: BTreeMap<Seq, Vec<u8>>,
    next_id: u64,
}

impl MemoryBackend {
    fn state(&self) -> Result<std::sync::MutexGuard<'_, Memory>, StoreError> {
        self.state.lock().map_err(|_| StoreError::Closed)
    }
}

impl Backend for MemoryBackend {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.state()?.tables.get(table).and_then(|t| t.get(key).cloned()))
    }

    fn scan(&self, table: &str, start: &[u8]) -> Result<Entries<'_>, StoreError> {
        // A snapshot: the lock is not held while the caller iterates.
        let entries: Vec<RawEntry> = match self.state()?.tables.get(table) {
            Some(t) => t.range(start.to_vec()..).map(|(k, v)| (k.clone(), v.clone())).collect(),
            None => Vec::new(),
        };
        Ok(Box::new(entries.into_iter().map(Ok)))
    }

    fn commit(&self, changes: &[Change<'_>], events: &[(Seq, Vec<u8>)]) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if let Some((first, _)) = events.first() {
            if state.log.contains_key(first) {
                return Err(duplicate(*first));
            }
        }
        for c in changes {
            let table = state.tables.entry(c.table.to_owned()).or_default();
            match c.value {
                Some(bytes) => table.insert(c.key.to_vec(), bytes.to_vec()),
                None => table.remove(c.key),
            };
        }
        for (seq, bytes) in events {
            state.log.insert(*seq, bytes.clone());
        }
        Ok(())
    }

    fn read_log(&self, from: Seq, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self.state()?.log.range(from..).take(limit).map(|(_, v)| v.clone()).collect())
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        Ok(self.state()?.log.keys().next_back().copied().unwrap_or(0))
    }

    fn generate_id(&self) -> Result<u64, StoreError> {
        let mut state = self.state()?;
        let id = state.next_id;
        state.next_id += 1;
        Ok(id)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn table_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.state()?.tables.keys().cloned().collect())
    }
}
