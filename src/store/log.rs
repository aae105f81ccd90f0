//! The event log's key format and the transaction view handed to writers.

use super::{decode, encode, CodecError, StoreError};
use crate::domain::{now_ms, Event, EventKind, OrderId, Seq};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::ConflictableTransactionError;
use sled::Tree;
use std::collections::BTreeMap;

/// What a transaction closure returns: `Abort(E)` to refuse.
pub type TxResult<T, E> = Result<T, ConflictableTransactionError<E>>;

/// Log keys are big-endian sequence numbers, so sled's order is log order.
pub(super) fn key(seq: Seq) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(super) fn seq_from_key(k: &[u8]) -> Result<Seq, StoreError> {
    let bytes: [u8; 8] =
        k.try_into().map_err(|_| StoreError::Codec(CodecError::Decode("event key is not 8 bytes".into())))?;
    Ok(Seq::from_be_bytes(bytes))
}

/// A writer's view of one write: its own trees (by the index they were
/// passed to [`super::Store::write`] in), the log and the offsets.
///
/// Reads see the committed state plus this write's own pending changes.
/// Nothing is written until [`super::Store::write`] commits: events are
/// numbered then, under the log's writer lock, and every change is applied
/// in one sled transaction. Reading outside the lock is sound because each
/// tree has one writer, its service; the log offsets read here are checked
/// again at commit, so two instances of one consumer cannot both apply a
/// batch.
pub struct Tx<'a> {
    trees: &'a [&'a Tree],
    pub(super) writes: BTreeMap<(usize, Vec<u8>), Option<Vec<u8>>>,
    pub(super) events: Vec<(OrderId, Option<Seq>, EventKind)>,
    /// Offsets read: consumer → the value seen.
    pub(super) offsets_read: BTreeMap<String, Option<Vec<u8>>>,
}

/// Turns a codec failure into the storage error that ends the write.
fn codec<T, E>(r: Result<T, CodecError>) -> TxResult<T, E> {
    r.map_err(|e| ConflictableTransactionError::Storage(sled::Error::Unsupported(e.to_string())))
}

fn storage<T, E>(r: sled::Result<T>) -> TxResult<T, E> {
    r.map_err(ConflictableTransactionError::Storage)
}

impl<'a> Tx<'a> {
    pub(super) fn new(trees: &'a [&'a Tree]) -> Tx<'a> {
        Tx { trees, writes: BTreeMap::new(), events: Vec::new(), offsets_read: BTreeMap::new() }
    }

    fn offsets_index(&self) -> usize {
        self.trees.len() - 1
    }

    fn raw(&self, tree: usize, key: &[u8]) -> sled::Result<Option<Vec<u8>>> {
        match self.writes.get(&(tree, key.to_vec())) {
            Some(pending) => Ok(pending.clone()),
            None => Ok(self.trees[tree].get(key)?.map(|v| v.to_vec())),
        }
    }

    /// Reads a value from the writer's tree number `tree`.
    pub fn get<T: DeserializeOwned, E>(&self, tree: usize, key: impl AsRef<[u8]>) -> TxResult<Option<T>, E> {
        match storage(self.raw(tree, key.as_ref()))? {
            Some(bytes) => codec(decode(&bytes)).map(Some),
            None => Ok(None),
        }
    }

    /// Writes a value to the writer's tree number `tree`.
    pub fn put<T: Serialize, E>(&mut self, tree: usize, key: impl AsRef<[u8]>, value: &T) -> TxResult<(), E> {
        let bytes = codec(encode(value))?;
        self.writes.insert((tree, key.as_ref().to_vec()), Some(bytes));
        Ok(())
    }

    /// Removes a key from the writer's tree number `tree`. A key that is
    /// not in the committed state (never written, or only put earlier in
    /// this write) costs nothing at commit: every key written is time under
    /// the log's writer lock, and this check is a read outside it.
    pub fn remove<E>(&mut self, tree: usize, key: impl AsRef<[u8]>) -> TxResult<(), E> {
        let key = (tree, key.as_ref().to_vec());
        if storage(self.trees[tree].contains_key(&key.1))? {
            self.writes.insert(key, None);
        } else {
            self.writes.remove(&key);
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
        let index = self.offsets_index();
        let seen = storage(self.raw(index, consumer.as_bytes()))?;
        if !self.writes.contains_key(&(index, consumer.as_bytes().to_vec())) {
            self.offsets_read.entry(consumer.to_owned()).or_insert_with(|| seen.clone());
        }
        match seen {
            Some(bytes) => codec(decode(&bytes)),
            None => Ok(0),
        }
    }

    /// Records that `consumer` has processed the log up to `seq`.
    pub fn commit_offset<E>(&mut self, consumer: &str, seq: Seq) -> TxResult<(), E> {
        let index = self.offsets_index();
        self.put(index, consumer, &seq)
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
    use crate::store::{abort, Store};

    type Result<T> = std::result::Result<T, crate::store::WriteError<()>>;

    fn keys_written(store: &Store) -> u64 {
        store.writer_stats().read().keys
    }

    #[test]
    fn removing_what_the_committed_state_lacks_writes_nothing() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let tree = store.tree("t").unwrap();

        // Put and removed in the same write: nothing to commit.
        store.write(&[&tree], |tx| {
            tx.put(0, "a", &1u32)?;
            tx.remove(0, "a")?;
            tx.remove(0, "never")
        })?;
        assert_eq!(keys_written(&store), 0);
        assert!(!tree.contains_key("a").unwrap());

        // A committed key is removed, with one key written.
        store.write(&[&tree], |tx| tx.put(0, "b", &2u32))?;
        store.write(&[&tree], |tx| tx.remove(0, "b"))?;
        assert_eq!(keys_written(&store), 2);
        assert!(!tree.contains_key("b").unwrap());

        // An aborted write writes nothing at all.
        let refused = store.write(&[&tree], |tx| {
            tx.put(0, "c", &3u32)?;
            abort::<(), ()>(())
        });
        assert!(matches!(refused, Err(crate::store::WriteError::Abort(()))));
        assert_eq!((keys_written(&store), store.writer_stats().read().commits), (2, 2), "keys, commits");
        Ok(())
    }
}
