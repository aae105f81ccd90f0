//! The event log's key format and the transaction view handed to writers.

use super::backend::Backend;
use super::{decode, encode, CodecError, Store, StoreError, Table};
use crate::domain::{now_ms, Event, EventKind, OrderId, Seq};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a write's closure stopped: the caller refused (`Abort`), or the
/// store failed. Either way nothing is written.
#[derive(Debug)]
pub enum TxError<E> {
    Abort(E),
    Store(StoreError),
}

impl<E> From<StoreError> for TxError<E> {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}

impl<E> From<CodecError> for TxError<E> {
    fn from(e: CodecError) -> Self {
        TxError::Store(e.into())
    }
}

/// What a write's closure returns: `Err(TxError::Abort(e))` to refuse
/// (see [`super::abort`]).
pub type TxResult<T, E> = Result<T, TxError<E>>;

/// The sequence number in a log key: log keys are big-endian numbers, so
/// key order is log order.
pub(super) fn seq_from_key(k: &[u8]) -> Result<Seq, StoreError> {
    let bytes: [u8; 8] =
        k.try_into().map_err(|_| StoreError::Codec(CodecError::Decode("event key is not 8 bytes".into())))?;
    Ok(Seq::from_be_bytes(bytes))
}

/// A table's name and a key in it.
pub(super) type Slot = (&'static str, Vec<u8>);

/// Changes by slot, in slot order: `None` removes the key.
pub(super) type Writes = BTreeMap<Slot, Option<Vec<u8>>>;

/// A writer's view of one write: the tables it names, the log and the
/// offsets.
///
/// Reads see the committed state plus this write's own pending changes.
/// Nothing is written until [`super::Store::write`] commits: events are
/// numbered then, under the log's writer lock, and every change is applied
/// atomically. Reading outside the lock is sound because each table has one
/// writer, its service; the log offsets read here are checked again at
/// commit, so two instances of one consumer cannot both apply a batch.
pub struct Tx<'a> {
    store: Source<'a>,
    /// Changes kept in memory over the store, the upper first (a staged
    /// consumer's, see [`super::Staged`]): read before the store, under
    /// this write's own.
    bases: Vec<&'a Writes>,
    pub(super) writes: Writes,
    pub(super) events: Vec<(OrderId, Option<Seq>, EventKind)>,
    /// Offsets read: consumer → the value seen.
    pub(super) offsets_read: BTreeMap<String, Option<Vec<u8>>>,
    /// Whether a read found its key in a base (see [`Tx::touched_bases`]).
    read_base: std::cell::Cell<bool>,
    /// The store's generation this write was decided in, when it must be
    /// committed in that one (see [`super::Staged`]).
    pub(super) generation: Option<u64>,
    /// Values kept from earlier reads of the store, read before it and
    /// filled by it (a staged consumer's, see [`super::ReadCache`]).
    pub(super) cache: Option<&'a std::cell::RefCell<super::ReadCache>>,
}

/// Where a write reads what it does not hold itself.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// The store it is committed to.
    Store(&'a Store),
    /// A store as it stands, for a fold whose writes are never committed
    /// (a failover follower folding a service's rule over its copy of the
    /// leader's store: [`super::Reader::scratch`]).
    Backend(&'a dyn Backend),
}

impl Source<'_> {
    fn get(
        &self,
        cache: Option<&std::cell::RefCell<super::ReadCache>>,
        table: &'static str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match (self, cache) {
            (Source::Store(store), Some(cache)) => store.raw_get_cached(cache, table, key),
            (Source::Store(store), None) => store.raw_get(table, key),
            (Source::Backend(backend), _) => backend.get(table, key),
        }
    }

    fn contains(&self, table: &'static str, key: &[u8]) -> Result<bool, StoreError> {
        match self {
            Source::Store(store) => store.raw_contains(table, key),
            Source::Backend(backend) => backend.contains(table, key),
        }
    }
}

impl<'a> Tx<'a> {
    pub(super) fn new(store: &'a Store) -> Tx<'a> {
        Tx::reading(Source::Store(store))
    }

    /// A write over `backend` as it stands that is never committed: what
    /// it writes, later reads of it see (see [`super::Reader::scratch`]).
    pub(super) fn scratch(backend: &'a dyn Backend) -> Tx<'a> {
        Tx::reading(Source::Backend(backend))
    }

    fn reading(store: Source<'a>) -> Tx<'a> {
        Tx {
            store,
            bases: Vec::new(),
            writes: BTreeMap::new(),
            events: Vec::new(),
            offsets_read: BTreeMap::new(),
            read_base: std::cell::Cell::new(false),
            generation: None,
            cache: None,
        }
    }

    /// A write over `bases` (the upper first): changes kept in memory that
    /// it reads as if committed.
    pub(super) fn over(store: &'a Store, bases: Vec<&'a Writes>) -> Tx<'a> {
        Tx { bases, ..Tx::new(store) }
    }

    /// A slot's change in this write or its bases, the upper first.
    fn pending(&self, slot: &Slot) -> Option<&Option<Vec<u8>>> {
        self.writes.get(slot).or_else(|| {
            let found = self.bases.iter().find_map(|b| b.get(slot));
            if found.is_some() {
                self.read_base.set(true);
            }
            found
        })
    }

    /// Whether this write read or wrote a key that its bases hold: then
    /// it depends on changes not committed yet, and cannot be committed
    /// apart from them.
    pub(super) fn touched_bases(&self) -> bool {
        self.read_base.get() || self.writes.keys().any(|slot| self.bases.iter().any(|b| b.contains_key(slot)))
    }

    fn raw(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(pending) = self.pending(&(table, key.to_vec())) {
            return Ok(pending.clone());
        }
        self.store.get(self.cache, table, key)
    }

    /// Reads a value from `table`.
    pub fn get<V: DeserializeOwned, E>(
        &self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
    ) -> TxResult<Option<V>, E> {
        match self.raw(table.name(), key.as_ref())? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Writes a value to `table`.
    pub fn put<V: Serialize, E>(
        &mut self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
        value: &V,
    ) -> TxResult<(), E> {
        let bytes = encode(value)?;
        self.writes.insert((table.name(), key.as_ref().to_vec()), Some(bytes));
        Ok(())
    }

    /// Writes raw bytes to a slot (staged changes being committed).
    pub(super) fn put_raw(&mut self, table: &'static str, key: &[u8], bytes: Vec<u8>) {
        self.writes.insert((table, key.to_vec()), Some(bytes));
    }

    /// Removes a key from `table`. A key that is not in the committed state
    /// (never written, or only put earlier in this write) costs nothing at
    /// commit: every key written is time under the log's writer lock, and
    /// this check is a read outside it.
    pub fn remove<V, E>(&mut self, table: Table<V>, key: impl AsRef<[u8]>) -> TxResult<(), E> {
        self.remove_raw(table.name(), key.as_ref().to_vec())
    }

    /// Removes a slot (see [`Tx::remove`]); over a base, a key the base
    /// holds is removed too.
    pub(super) fn remove_raw<E>(&mut self, table: &'static str, key: Vec<u8>) -> TxResult<(), E> {
        let slot = (table, key);
        let in_base = self.bases.iter().find_map(|b| b.get(&slot)).map(Option::is_some);
        if in_base == Some(true) || self.store.contains(slot.0, &slot.1)? {
            self.writes.insert(slot, None);
        } else {
            self.writes.remove(&slot);
        }
        Ok(())
    }

    /// Appends an event to the log; it is numbered and becomes visible when
    /// the write commits.
    pub fn append<E>(
        &mut self,
        order_id: &OrderId,
        caused_by: Option<Seq>,
        kind: EventKind,
    ) -> TxResult<(), E> {
        self.events.push((order_id.clone(), caused_by, kind));
        Ok(())
    }

    /// The offset `consumer` has committed (checked again at commit).
    pub fn offset<E>(&mut self, consumer: &str) -> TxResult<Seq, E> {
        let slot = (super::OFFSETS.name(), consumer.as_bytes().to_vec());
        let seen = self.raw(slot.0, &slot.1)?;
        if !self.writes.contains_key(&slot) {
            self.offsets_read.entry(consumer.to_owned()).or_insert_with(|| seen.clone());
        }
        match seen {
            Some(bytes) => Ok(decode(&bytes)?),
            None => Ok(0),
        }
    }

    /// Records that `consumer` has processed the log up to `seq`.
    pub fn commit_offset<E>(&mut self, consumer: &str, seq: Seq) -> TxResult<(), E> {
        self.put(super::OFFSETS, consumer, &seq)
    }
}

/// Numbers pending events from `first`, stamping them with the time.
pub(super) fn number(events: Vec<(OrderId, Option<Seq>, EventKind)>, first: Seq) -> Vec<Event> {
    let at_ms = now_ms();
    events
        .into_iter()
        .zip(first..)
        .map(|((order_id, caused_by, kind), seq)| Event { seq, order_id, caused_by, at_ms, kind })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::store::{abort, Store, Table, TxError, WriteError};

    type Result<T> = std::result::Result<T, WriteError<()>>;

    const T: Table<u32> = Table::new("t");

    fn keys_written(store: &Store) -> u64 {
        store.writer_stats().read().keys
    }

    #[test]
    fn removing_what_the_committed_state_lacks_writes_nothing() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();

        // Put and removed in the same write: nothing to commit.
        store.write(|tx| {
            tx.put(T, "a", &1)?;
            tx.remove(T, "a")?;
            tx.remove(T, "never")
        })?;
        assert_eq!(keys_written(&store), 0);
        assert_eq!(store.get(T, "a").unwrap(), None);

        // A committed key is removed, with one key written.
        store.write(|tx| tx.put(T, "b", &2))?;
        store.write(|tx| tx.remove(T, "b"))?;
        assert_eq!(keys_written(&store), 2);
        assert_eq!(store.get(T, "b").unwrap(), None);

        // An aborted write writes nothing at all.
        let refused = store.write(|tx| {
            tx.put(T, "c", &3)?;
            abort::<(), ()>(())
        });
        assert!(matches!(refused, Err(WriteError::Abort(()))));
        assert_eq!((keys_written(&store), store.writer_stats().read().commits), (2, 2), "keys, commits");
        assert_eq!(store.writer_stats().read().by_table, [("t", 2)].into(), "by table");
        let _: Option<TxError<()>> = None;
        Ok(())
    }
}
