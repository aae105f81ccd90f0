//! Typed reads straight from a [`Backend`] that something else writes: a
//! failover follower's store, which the stream's copies change while its
//! HTTP server reads it.
//!
//! [`super::Store`] keeps things in memory for its own writes (the log's
//! head, the tail of the log, whether any dead letter exists) and would
//! not see another writer's commits; a [`Reader`] keeps nothing and sees
//! each commit as soon as it returned. It cannot write.

use super::backend::Backend;
use super::{decode, DeadLetter, StoreError, Table};
use crate::domain::{Event, Seq};

/// The most events a read from the store folds after a consumer's
/// committed offset ([`Reader::unfolded`]): about `store.hold_back_ms` of
/// them normally.
pub const UNFOLDED_AT_MOST: usize = 20_000;

/// Reads of one backend; see the module docs.
pub struct Reader<'a> {
    backend: &'a dyn Backend,
}

impl<'a> Reader<'a> {
    pub fn new(backend: &'a dyn Backend) -> Reader<'a> {
        Reader { backend }
    }

    /// A write over this store that is never committed, for running a
    /// service's fold over the events after its offset (as
    /// `actors::inventory::product_in` does): what it writes, its later
    /// reads see; the store itself is not changed.
    pub fn scratch(&self) -> super::Tx<'a> {
        super::Tx::scratch(self.backend)
    }

    /// One value.
    pub fn get<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<V>, StoreError> {
        self.backend.get(table.name(), key.as_ref())?.map(|bytes| Ok(decode(&bytes)?)).transpose()
    }

    /// Every value whose key starts with `prefix`, in key order.
    pub fn scan_prefix<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        prefix: impl AsRef<[u8]>,
    ) -> Result<Vec<V>, StoreError> {
        let prefix = prefix.as_ref();
        let mut values = Vec::new();
        for entry in self.backend.scan(table.name(), prefix)? {
            let (key, value) = entry?;
            if !key.starts_with(prefix) {
                break;
            }
            values.push(decode(&value)?);
        }
        Ok(values)
    }

    /// Entries with keys from `start` on, in key order, each with its key;
    /// read lazily, so a caller can stop early.
    pub fn entries_from<V: serde::de::DeserializeOwned>(
        &self,
        table: Table<V>,
        start: impl AsRef<[u8]>,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, V), StoreError>> + 'a, StoreError> {
        let entries = self.backend.scan(table.name(), start.as_ref())?;
        Ok(entries.map(|entry| {
            let (key, value) = entry?;
            Ok((key, decode(&value)?))
        }))
    }

    /// The committed offset of `consumer`: the last event it processed.
    pub fn offset(&self, consumer: &str) -> Result<Seq, StoreError> {
        Ok(self.get(super::OFFSETS, consumer)?.unwrap_or(0))
    }

    /// The events after `consumer`'s committed offset, oldest first: what
    /// a store read alone folds on top of the records that consumer
    /// committed with it. `None` past `at_most` of them (a consumer far
    /// behind, paused or failing: the node that runs it answers instead).
    pub fn unfolded(&self, consumer: &str, at_most: usize) -> Result<Option<Vec<Event>>, StoreError> {
        let mut after = self.offset(consumer)?;
        let mut events = Vec::new();
        loop {
            let more = self.read_log(after, 1024)?;
            let Some(last) = more.last() else { return Ok(Some(events)) };
            after = last.seq;
            events.extend(more);
            if events.len() > at_most {
                return Ok(None);
            }
        }
    }

    /// Up to `limit` events after `after`, oldest first.
    pub fn read_log(&self, after: Seq, limit: usize) -> Result<Vec<Event>, StoreError> {
        let encoded = self.backend.read_log(after + 1, limit)?;
        encoded.iter().map(|bytes| Ok(decode::<Event>(bytes)?)).collect()
    }

    /// The dead letters about one order.
    pub fn dead_letters_of(&self, order: &crate::domain::OrderId) -> Result<Vec<DeadLetter>, StoreError> {
        use super::dead_letter::{BY_ORDER, DEAD_LETTERS};
        let mut letters = Vec::new();
        for id in self.scan_prefix(BY_ORDER, super::key_prefix(order.as_str()))? {
            letters.extend(self.get(DEAD_LETTERS, id.to_be_bytes())?);
        }
        Ok(letters)
    }

    /// Whether `service` set one of `order`'s events aside: the order's
    /// later events wait behind it there, so a read of the store alone
    /// cannot tell what that service holds of the order.
    pub fn set_aside(&self, order: &crate::domain::OrderId, service: &str) -> Result<bool, StoreError> {
        Ok(self.dead_letters_of(order)?.iter().any(|letter| letter.service == service))
    }
}
