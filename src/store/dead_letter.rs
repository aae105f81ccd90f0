//! Dead letters: events a service failed on again and again, set aside so
//! that the service can move on instead of crash-looping. An operator lists
//! them, fixes the cause, and puts one back (`Redelivery`).

use super::{decode, key_prefix, log, Store, StoreError, Tx, TxResult};
use crate::domain::{now_ms, rfc3339, Event, OrderId, Seq};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub id: u64,
    /// The service that failed on the event.
    pub service: String,
    /// The event's sequence number in the log.
    pub seq: Seq,
    pub order_id: OrderId,
    /// The event's kind.
    pub event: String,
    /// The last failure.
    pub error: String,
    /// Failures in a row before it was set aside.
    pub attempts: u32,
    /// When it was set aside (RFC 3339).
    pub at: String,
}

/// `order \0 id`: finds an order's dead letters.
fn order_key(order: &OrderId, id: u64) -> Vec<u8> {
    let mut key = key_prefix(order.as_str());
    key.extend_from_slice(&id.to_be_bytes());
    key
}

impl Store {
    /// Sets `event` aside for `consumer` and moves the consumer's offset past
    /// it, in one transaction.
    pub fn set_aside(
        &self,
        consumer: &str,
        event: &Event,
        error: &str,
        attempts: u32,
    ) -> Result<DeadLetter, StoreError> {
        let letter = DeadLetter {
            id: self.generate_id()?,
            service: consumer.to_owned(),
            seq: event.seq,
            order_id: event.order_id.clone(),
            event: event.kind.name().to_owned(),
            error: error.to_owned(),
            attempts,
            at: rfc3339(now_ms()),
        };
        let (letters, index) = (&self.inner.dead_letters, &self.inner.dead_letter_index);
        self.write::<_, StoreError>(&[letters, index], |tx| {
            tx.put(0, letter.id.to_be_bytes(), &letter)?;
            tx.put(1, order_key(&letter.order_id, letter.id), &letter.id)?;
            let committed = tx.offset(consumer)?;
            tx.commit_offset(consumer, committed.max(event.seq))
        })
        .map_err(|e| match e {
            super::WriteError::Abort(e) | super::WriteError::Store(e) => e,
        })?;
        Ok(letter)
    }

    /// The trees a redelivery transaction must include, after the
    /// service's own (see [`remove_dead_letter`]).
    pub fn dead_letter_trees(&self) -> [&sled::Tree; 2] {
        [&self.inner.dead_letters, &self.inner.dead_letter_index]
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters.iter().map(|kv| Ok(decode(&kv?.1)?)).collect()
    }

    pub fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>, StoreError> {
        super::read(&self.inner.dead_letters, id.to_be_bytes())
    }

    /// The dead letters about one order.
    pub fn dead_letters_of(&self, order: &OrderId) -> Result<Vec<DeadLetter>, StoreError> {
        let mut out = Vec::new();
        for kv in self.inner.dead_letter_index.scan_prefix(key_prefix(order.as_str())) {
            let id: u64 = decode(&kv?.1)?;
            out.extend(self.dead_letter(id)?);
        }
        Ok(out)
    }

    /// One event of the log.
    pub fn read_event(&self, seq: Seq) -> Result<Option<Event>, StoreError> {
        super::read(&self.inner.events, log::key(seq))
    }
}

/// Removes a dead letter inside a transaction whose trees include
/// [`Store::dead_letter_trees`] at index `at` and `at + 1`.
pub fn remove_dead_letter<E>(tx: &mut Tx<'_>, at: usize, letter: &DeadLetter) -> TxResult<(), E> {
    tx.remove(at, letter.id.to_be_bytes())?;
    tx.remove(at + 1, order_key(&letter.order_id, letter.id))
}
