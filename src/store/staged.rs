//! Writes kept in memory over the store, committed later in one write with
//! the consumer's offset: a read model written behind.
//!
//! A status view changes at every status of its order, and an order's
//! events reach the projection in different batches: written at once, each
//! view and its index were written four or five times an order, every key
//! time under the store's writer lock. Staged, the changes of many batches
//! are folded in memory and committed together (a view once per flush, its
//! index only for the status it has then), with the offset of the last
//! event folded in. The log stays the truth: after a crash the consumer
//! starts again from the committed offset and folds the same events into
//! the same state, so nothing is lost and nothing is applied twice.
//! Readers read through the staged changes ([`Staged::get`],
//! [`Staged::entries_from`]), so what was applied is seen at once.

use super::log::{Slot, Writes};
use super::{decode, RawEntry, Store, StoreError, Table, Tx, TxError, TxResult, WriteError};
use crate::domain::{Event, Seq};
use serde::de::DeserializeOwned;
use std::time::Instant;

/// One consumer's staged changes.
#[derive(Default, Clone)]
pub struct Staged {
    writes: Writes,
    /// The last event folded in; `None` before the first.
    applied: Option<Seq>,
    /// When the oldest change not yet committed was staged.
    since: Option<Instant>,
    /// The store's generation the changes were folded in: after the store
    /// is reopened, what it did not flush is gone, and changes folded from
    /// it are never committed (nor their reactions appended).
    generation: Option<u64>,
}

impl Staged {
    /// The last event folded in, if any was since the last commit.
    pub fn applied(&self) -> Option<Seq> {
        self.applied
    }

    /// Keys waiting to be committed.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.applied.is_none()
    }

    /// How long the oldest change has waited.
    pub fn age(&self) -> std::time::Duration {
        self.since.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// Forgets everything staged (after a restart: it is folded again
    /// from the committed offset).
    pub fn clear(&mut self) {
        *self = Staged::default();
    }

    /// A value, staged here, in `below` (staged changes being committed)
    /// or committed.
    pub fn get<V: DeserializeOwned>(
        &self,
        below: Option<&Staged>,
        store: &Store,
        table: Table<V>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<V>, StoreError> {
        match self.layered(below, table.name(), key.as_ref()) {
            Some(Some(bytes)) => Ok(Some(decode(bytes)?)),
            Some(None) => Ok(None),
            None => store.get(table, key),
        }
    }

    /// The value of a key here or in `below`: `Some(None)` when it was
    /// removed, `None` when neither holds it (the store has it, or not).
    pub fn layered<'a>(
        &'a self,
        below: Option<&'a Staged>,
        table: &'static str,
        key: &[u8],
    ) -> Option<Option<&'a [u8]>> {
        let slot = (table, key.to_vec());
        let found = self.writes.get(&slot).or_else(|| below.and_then(|b| b.writes.get(&slot)));
        found.map(Option::as_deref)
    }

    /// The keys written here, with their tables.
    pub fn slots(&self) -> impl Iterator<Item = (&'static str, &[u8])> {
        self.writes.keys().map(|(table, key)| (*table, key.as_slice()))
    }

    /// Entries with keys from `start` on, staged here, in `below` or
    /// committed, in key order (see [`Store::entries_from`]).
    pub fn entries_from<'a, V: DeserializeOwned + 'a>(
        &'a self,
        below: Option<&'a Staged>,
        store: &'a Store,
        table: Table<V>,
        start: impl AsRef<[u8]>,
    ) -> Result<impl Iterator<Item = Result<(Vec<u8>, V), StoreError>> + 'a, StoreError> {
        let start = start.as_ref().to_vec();
        let committed = store.raw_entries_from(table.name(), &start)?;
        let lower: Entries<'a> = match below {
            Some(below) => Box::new(merge(committed, below.range(table.name(), &start))),
            None => Box::new(committed),
        };
        let merged = merge(lower, self.range(table.name(), &start));
        Ok(merged.map(|entry| {
            let (key, bytes) = entry?;
            Ok((key, decode(&bytes)?))
        }))
    }

    /// The staged changes of `table` from `start` on.
    fn range<'a>(
        &'a self,
        table: &'static str,
        start: &[u8],
    ) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + 'a {
        let from: Slot = (table, start.to_vec());
        let changes = self.writes.range(from..).take_while(move |((t, _), _)| *t == table);
        changes.map(|((_, k), v)| (k.clone(), v.clone()))
    }

    /// Puts `above` (staged after these) over these changes: when a commit
    /// of these failed, they are staged again under what came since.
    pub fn absorb(&mut self, above: Staged) {
        self.writes.extend(above.writes);
        self.applied = above.applied.or(self.applied);
        self.since = self.since.or(above.since);
        self.generation = self.generation.or(above.generation);
    }
}

type Entries<'a> = Box<dyn Iterator<Item = Result<RawEntry, StoreError>> + 'a>;

/// `committed` with `staged` over it, both in key order: a staged value
/// replaces the committed one, a staged removal hides it.
fn merge<'a>(
    committed: impl Iterator<Item = Result<RawEntry, StoreError>> + 'a,
    staged: impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> + 'a,
) -> impl Iterator<Item = Result<RawEntry, StoreError>> + 'a {
    let (mut committed, mut staged) = (committed.peekable(), staged.peekable());
    std::iter::from_fn(move || loop {
        let order = match (committed.peek(), staged.peek()) {
            (None, None) => return None,
            (Some(Err(_)), _) => return committed.next(),
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(Ok((c, _))), Some((s, _))) => s.cmp(c),
        };
        match order {
            std::cmp::Ordering::Greater => return committed.next(),
            // The staged change stands in for the committed entry.
            std::cmp::Ordering::Equal => drop(committed.next()),
            std::cmp::Ordering::Less => {}
        }
        if let Some((key, Some(value))) = staged.next() {
            return Some(Ok((key, value)));
        }
    })
}

impl Store {
    /// Folds `f` into `staged` instead of committing it: `f` reads the
    /// store through what is staged, and what it changes is staged on top
    /// once it returns `Ok`; on an error nothing is staged. `seq` is the
    /// last event it folds in.
    ///
    /// The events `f` appends are written to the log at once, in a write of
    /// their own, before its changes are staged (if that write fails,
    /// nothing is staged): the consumer's outputs are in the log before its
    /// state holds them, so a consumer that folds the same events again
    /// after a crash finds them there and must not append them twice.
    pub fn stage<R, E>(
        &self,
        staged: &mut Staged,
        below: Option<&Staged>,
        seq: Seq,
        f: impl FnOnce(&mut Tx<'_>) -> TxResult<R, E>,
    ) -> Result<R, WriteError<E>> {
        self.stage_cached(staged, below, None, seq, f)
    }

    /// [`Store::stage`], reading the store through `cache`.
    pub fn stage_cached<R, E>(
        &self,
        staged: &mut Staged,
        below: Option<&Staged>,
        cache: Option<&std::cell::RefCell<super::ReadCache>>,
        seq: Seq,
        f: impl FnOnce(&mut Tx<'_>) -> TxResult<R, E>,
    ) -> Result<R, WriteError<E>> {
        let generation = self.inner.condition.generation();
        let mut folded_in = std::iter::once(&*staged).chain(below).filter_map(|s| s.generation);
        if folded_in.any(|g| g != generation) {
            return Err(WriteError::Store(StoreError::Unavailable(
                "the store was reopened under staged changes; fold them again".into(),
            )));
        }
        let (value, writes, events) = {
            let bases = std::iter::once(&staged.writes).chain(below.map(|b| &b.writes)).collect();
            let mut tx = Tx::over(self, bases);
            tx.cache = cache;
            let value = f(&mut tx).map_err(WriteError::from)?;
            let events = std::mem::take(&mut tx.events);
            (value, std::mem::take(&mut tx.writes), events)
        };
        if !events.is_empty() {
            self.append_now(events, generation).map_err(WriteError::Store)?;
        }
        staged.generation = Some(generation);
        staged.since.get_or_insert_with(Instant::now);
        staged.writes.extend(writes);
        staged.applied = Some(seq);
        Ok(value)
    }

    /// Commits what is staged with `consumer`'s offset at the last event
    /// folded in, in one write, if the committed offset is still
    /// `committed` (no other instance moved it); then nothing is staged.
    /// On an error everything stays staged, to be committed later.
    pub fn commit_staged(
        &self,
        staged: &mut Staged,
        consumer: &str,
        committed: Seq,
    ) -> Result<(), StoreError> {
        self.commit_frozen(staged, consumer, committed)?;
        staged.clear();
        Ok(())
    }

    /// Writes `f` at once, beside what is staged (and `below`) when it
    /// neither read nor wrote a key they hold: then it does not depend on
    /// anything not committed yet. `None` when it did, and nothing was
    /// written: it must be written with the staged changes
    /// ([`Store::commit_staged_with`]).
    pub fn write_beside<R, E>(
        &self,
        staged: &Staged,
        below: Option<&Staged>,
        f: impl Fn(&mut Tx<'_>) -> TxResult<R, E>,
    ) -> Result<Option<(R, Vec<Event>)>, WriteError<E>> {
        let bases: Vec<&Writes> = std::iter::once(&staged.writes).chain(below.map(|b| &b.writes)).collect();
        loop {
            let mut tx = Tx::over(self, bases.clone());
            let value = f(&mut tx).map_err(WriteError::from)?;
            if tx.touched_bases() {
                return Ok(None);
            }
            if tx.writes.is_empty() && tx.events.is_empty() {
                return Ok(Some((value, Vec::new())));
            }
            if let Some(appended) = self.commit(tx).map_err(WriteError::Store)? {
                return Ok(Some((value, appended)));
            }
        }
    }

    /// Commits `staged` with `consumer`'s offset, as
    /// [`Store::commit_staged`] does, and `f` over it, in one write: `f`
    /// reads the staged changes as committed. Nothing may be committing
    /// beneath `staged` meanwhile. On an error everything stays staged.
    pub fn commit_staged_with<R, E>(
        &self,
        staged: &mut Staged,
        consumer: &str,
        committed: Seq,
        f: impl Fn(&mut Tx<'_>) -> TxResult<R, E>,
    ) -> Result<(R, Vec<Event>), WriteError<E>> {
        let frozen = &*staged;
        let written = self.write(|tx| {
            frozen.write_into(tx, consumer, committed).map_err(TxError::Store)?;
            f(tx)
        })?;
        staged.clear();
        Ok(written)
    }

    /// Appends `events` to the log in a write of their own.
    fn append_now(
        &self,
        events: Vec<(crate::domain::OrderId, Option<Seq>, crate::domain::EventKind)>,
        generation: u64,
    ) -> Result<Vec<Event>, StoreError> {
        let mut tx = Tx::new(self);
        tx.events = events;
        tx.generation = Some(generation);
        // It reads no offset, so it is never asked to be redone.
        self.commit(tx)?.ok_or_else(|| StoreError::Unavailable("an append was asked to be redone".into()))
    }

    /// Commits `staged` as [`Store::commit_staged`] does, leaving it as it
    /// is: a frozen layer, committed on another thread while readers still
    /// read it.
    pub fn commit_frozen(&self, staged: &Staged, consumer: &str, committed: Seq) -> Result<(), StoreError> {
        if staged.applied.is_none() {
            return Ok(());
        }
        let written = self.write(|tx| staged.write_into(tx, consumer, committed).map_err(TxError::Store));
        match written {
            Ok(_) => Ok(()),
            Err(WriteError::Abort(e) | WriteError::Store(e)) => Err(e),
        }
    }
}

impl Staged {
    /// Puts these changes and `consumer`'s offset at the last event folded
    /// in into `tx`, if the offset committed is still `committed` (no other
    /// instance moved it).
    fn write_into(&self, tx: &mut Tx<'_>, consumer: &str, committed: Seq) -> Result<(), StoreError> {
        let Some(applied) = self.applied else { return Ok(()) };
        tx.generation = self.generation;
        let flatten = |e: TxError<StoreError>| match e {
            TxError::Abort(e) | TxError::Store(e) => e,
        };
        if tx.offset(consumer).map_err(flatten)? != committed {
            return Err(StoreError::Unavailable(format!(
                "{consumer}'s offset moved under its staged writes"
            )));
        }
        for ((table, key), value) in &self.writes {
            match value {
                Some(bytes) => tx.put_raw(table, key, bytes.clone()),
                None => tx.remove_raw(table, key.clone()).map_err(flatten)?,
            }
        }
        tx.commit_offset(consumer, applied).map_err(flatten)
    }
}

#[cfg(test)]
mod tests;
