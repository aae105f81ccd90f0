//! Dead letters: events a service failed on again and again, set aside so
//! that the service can move on instead of crash-looping. An operator lists
//! them, fixes the cause, and puts one back (`Redelivery`).

use super::{key_prefix, Store, StoreError, Table, Tx, TxResult};
use crate::domain::{now_ms, rfc3339, Event, OrderId, Seq};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Dead letters by id.
pub(super) const DEAD_LETTERS: Table<DeadLetter> = Table::new("dead_letters");
/// `order \0 id` → id: an order's dead letters.
pub(super) const BY_ORDER: Table<u64> = Table::new("dead_letters_by_order");

/// `service \0 order \0 seq` → seq: events of an order that wait behind
/// its dead letter in that service.
const PARKED: Table<Seq> = Table::new("parked_events");

fn parked_prefix(service: &str, order: &OrderId) -> Vec<u8> {
    let mut key = key_prefix(service);
    key.extend(key_prefix(order.as_str()));
    key
}

fn parked_key(service: &str, order: &OrderId, seq: Seq) -> Vec<u8> {
    let mut key = parked_prefix(service, order);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Parks `event` for `service` behind its order's dead letter, as part of
/// the write that would have applied it.
pub fn park<E>(tx: &mut Tx<'_>, service: &str, event: &Event) -> TxResult<(), E> {
    tx.put(PARKED, parked_key(service, &event.order_id, event.seq), &event.seq)
}

/// Takes a parked event back out, as part of the write that applies it.
pub fn unpark<E>(tx: &mut Tx<'_>, service: &str, event: &Event) -> TxResult<(), E> {
    tx.remove(PARKED, parked_key(service, &event.order_id, event.seq))
}

/// `order \0 id`: finds an order's dead letters.
fn order_key(order: &OrderId, id: u64) -> Vec<u8> {
    let mut key = key_prefix(order.as_str());
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// Whether `backend` holds any dead letter (read when the store opens).
pub(super) fn any_in(backend: &dyn super::backend::Backend) -> Result<bool, StoreError> {
    Ok(backend.scan(DEAD_LETTERS.name(), &[])?.next().is_some())
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
        // Before the write: a reader that sees it unset finds none written.
        self.inner.maybe_dead_letters.store(true, std::sync::atomic::Ordering::SeqCst);
        self.write::<_, StoreError>(|tx| {
            tx.put(DEAD_LETTERS, letter.id.to_be_bytes(), &letter)?;
            tx.put(BY_ORDER, order_key(&letter.order_id, letter.id), &letter.id)?;
            let committed = tx.offset(consumer)?;
            tx.commit_offset(consumer, committed.max(event.seq))
        })
        .map_err(|e| match e {
            super::WriteError::Abort(e) | super::WriteError::Store(e) => e,
        })?;
        Ok(letter)
    }

    /// Records another failed attempt at a dead letter's event (an
    /// automatic retry): its count and the last error.
    pub fn letter_failed_again(&self, id: u64, error: &str) -> Result<Option<DeadLetter>, StoreError> {
        let Some(mut letter) = self.dead_letter(id)? else { return Ok(None) };
        letter.attempts += 1;
        letter.error = error.to_owned();
        self.put_now(DEAD_LETTERS, id.to_be_bytes(), &letter)?;
        Ok(Some(letter))
    }

    /// Every dead letter, oldest first.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.scan_prefix(DEAD_LETTERS, [])
    }

    pub fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>, StoreError> {
        self.get(DEAD_LETTERS, id.to_be_bytes())
    }

    /// The dead letters about one order.
    pub fn dead_letters_of(&self, order: &OrderId) -> Result<Vec<DeadLetter>, StoreError> {
        if !self.inner.maybe_dead_letters.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        self.reader().dead_letters_of(order).map_err(|e| self.failed(e))
    }

    /// The events of `order` parked for `service`, oldest first.
    pub fn parked(&self, service: &str, order: &OrderId) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::new();
        for seq in self.scan_prefix(PARKED, parked_prefix(service, order))? {
            events.extend(self.read_event(seq)?);
        }
        Ok(events)
    }

    /// One event of the log.
    pub fn read_event(&self, seq: Seq) -> Result<Option<Event>, StoreError> {
        let found = self.inner.backend.read_log(seq, 1)?;
        match found.first().map(|bytes| super::decode::<Event>(bytes)).transpose()? {
            Some(event) if event.seq == seq => Ok(Some(event)),
            _ => Ok(None),
        }
    }
}

/// Removes a dead letter as part of a write (the redelivery of its event).
pub fn remove_dead_letter<E>(tx: &mut Tx<'_>, letter: &DeadLetter) -> TxResult<(), E> {
    tx.remove(DEAD_LETTERS, letter.id.to_be_bytes())?;
    tx.remove(BY_ORDER, order_key(&letter.order_id, letter.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;

    fn appended(store: &Store) -> Event {
        let order = OrderId::from_number(1);
        let (_, events) =
            store.write::<_, StoreError>(|tx| tx.append(&order, None, EventKind::OrderClosed)).unwrap();
        events.into_iter().next().unwrap()
    }

    /// A status read skips the scan for an order's dead letters while the
    /// store holds none; once one is set aside, and after a restart, it is
    /// found.
    #[test]
    fn an_orders_dead_letters_are_found_as_soon_as_set_aside_and_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let event = appended(&store);
        assert!(store.dead_letters_of(&event.order_id).unwrap().is_empty());
        store.set_aside("projection", &event, "it failed", 3).unwrap();
        assert_eq!(store.dead_letters_of(&event.order_id).unwrap().len(), 1, "at once");
        drop(store);
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let found = store.dead_letters_of(&event.order_id).unwrap();
        assert_eq!((found.len(), found[0].error.as_str()), (1, "it failed"), "after a restart");
    }
}
