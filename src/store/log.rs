//! The event log's key format and the transaction view handed to writers.

use super::{decode, encode, CodecError, StoreError};
use crate::domain::{now_ms, Event, EventKind, OrderId, Seq};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

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

/// A writer's view of one transaction: its own trees (by the index they were
/// passed to [`super::Store::write`] in), the log and the offsets.
pub struct Tx<'a> {
    view: &'a [TransactionalTree],
    next: Seq,
    appended: Vec<Event>,
    now: u64,
}

/// Turns a codec failure inside a transaction into the storage error that
/// sled aborts the transaction with.
fn codec<T, E>(r: Result<T, CodecError>) -> TxResult<T, E> {
    r.map_err(|e| ConflictableTransactionError::Storage(sled::Error::Unsupported(e.to_string())))
}

impl<'a> Tx<'a> {
    pub(super) fn new(view: &'a [TransactionalTree], first: Seq) -> Tx<'a> {
        Tx { view, next: first, appended: Vec::new(), now: now_ms() }
    }

    fn events(&self) -> &TransactionalTree {
        &self.view[self.view.len() - 2]
    }

    fn offsets(&self) -> &TransactionalTree {
        &self.view[self.view.len() - 1]
    }

    /// Reads a value from the writer's tree number `tree`.
    pub fn get<T: DeserializeOwned, E>(&self, tree: usize, key: impl AsRef<[u8]>) -> TxResult<Option<T>, E> {
        match self.view[tree].get(key.as_ref())? {
            Some(bytes) => codec(decode(&bytes)).map(Some),
            None => Ok(None),
        }
    }

    /// Writes a value to the writer's tree number `tree`.
    pub fn put<T: Serialize, E>(&self, tree: usize, key: impl AsRef<[u8]>, value: &T) -> TxResult<(), E> {
        let bytes = codec(encode(value))?;
        self.view[tree].insert(key.as_ref(), bytes)?;
        Ok(())
    }

    /// Removes a key from the writer's tree number `tree`.
    pub fn remove<E>(&self, tree: usize, key: impl AsRef<[u8]>) -> TxResult<(), E> {
        self.view[tree].remove(key.as_ref())?;
        Ok(())
    }

    /// Appends an event to the log; it becomes visible when the transaction
    /// commits. Returns the event's sequence number.
    pub fn append<E>(
        &mut self,
        order_id: &OrderId,
        caused_by: Option<Seq>,
        kind: EventKind,
    ) -> TxResult<Seq, E> {
        let event = Event { seq: self.next, order_id: order_id.clone(), caused_by, at_ms: self.now, kind };
        let bytes = codec(encode(&event))?;
        self.events().insert(&key(event.seq), bytes)?;
        self.next += 1;
        self.appended.push(event);
        Ok(self.next - 1)
    }

    /// The offset `consumer` has committed, read inside the transaction.
    pub fn offset<E>(&self, consumer: &str) -> TxResult<Seq, E> {
        match self.offsets().get(consumer)? {
            Some(bytes) => codec(decode(&bytes)),
            None => Ok(0),
        }
    }

    /// Records that `consumer` has processed the log up to `seq`.
    pub fn commit_offset<E>(&self, consumer: &str, seq: Seq) -> TxResult<(), E> {
        let bytes = codec(encode(&seq))?;
        self.offsets().insert(consumer, bytes)?;
        Ok(())
    }

    pub(super) fn into_appended(self) -> Vec<Event> {
        self.appended
    }
}
