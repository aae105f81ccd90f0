//! The in-memory provider, for tests.

use super::{duplicate, Backend, Change, Entries};
use crate::domain::Seq;
use crate::store::{RawEntry, StoreError};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

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
