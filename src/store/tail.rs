//! The log's newest events in memory ([`Tail`]).

use crate::domain::{Event, Seq};

/// The newest events of the log, kept in memory as they are committed, so
/// that the services, which read the log's tail batch after batch, do not
/// ask sled for it: a sled read waits while any write commits. Only events
/// of the store's current generation are served: after it is reopened, what
/// it did not flush is gone.
#[derive(Default)]
pub(super) struct Tail {
    generation: u64,
    events: std::collections::VecDeque<Event>,
}

/// Events kept in [`Tail`]: a second or so of a busy node's events, a few
/// MiB; a reader further behind reads the store.
pub(super) const TAIL_EVENTS: usize = 8192;

impl Tail {
    /// Keeps `events`, just committed in `generation`, in order.
    pub(super) fn keep(&mut self, generation: u64, events: &[Event]) {
        let follows = match (self.events.back(), events.first()) {
            (Some(last), Some(first)) => last.seq + 1 == first.seq,
            _ => true,
        };
        if self.generation != generation || !follows {
            (self.generation, self.events) = (generation, Default::default());
        }
        for event in events {
            if self.events.len() == TAIL_EVENTS {
                self.events.pop_front();
            }
            self.events.push_back(event.clone());
        }
    }

    /// The `limit` events after `after`, if all of them are here.
    pub(super) fn read(&self, generation: u64, after: Seq, limit: usize) -> Option<Vec<Event>> {
        let first = self.events.front()?.seq;
        if self.generation != generation || after + 1 < first {
            return None;
        }
        let from = usize::try_from(after + 1 - first).ok()?;
        let to = from.checked_add(limit)?;
        (to <= self.events.len()).then(|| self.events.range(from..to).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EventKind, OrderId};
    use crate::store::{decode, Store, StoreError};

    fn append(store: &Store, n: u64) -> Vec<Event> {
        let mut all = Vec::new();
        for i in 0..n {
            let (_, events) = store
                .write::<_, StoreError>(|tx| {
                    tx.append(&OrderId::from_number(i), None, EventKind::OrderClosed)?;
                    tx.append(&OrderId::from_number(i), None, EventKind::OrderClosed)
                })
                .unwrap();
            all.extend(events);
        }
        all
    }

    /// The log reads the same from the tail kept in memory as from the
    /// store: within it, across its start, past what it keeps, and after
    /// the store is reopened (when the tail is not trusted).
    #[test]
    fn the_log_reads_the_same_from_its_tail_in_memory_as_from_the_store() {
        let store = Store::in_memory();
        let mut written = append(&store, (TAIL_EVENTS as u64 + 100) / 2);
        let head = store.head();
        assert_eq!(written.len() as u64, head);
        let from_store = |after: Seq, n: usize| -> Vec<Event> {
            let encoded = store.inner.backend.read_log(after + 1, n).unwrap();
            encoded.iter().map(|b| decode::<Event>(b).unwrap()).collect()
        };
        for (after, limit) in [(head - 10, 256), (head - 300, 256), (50, 256), (head - 1, 1), (head, 5)] {
            let read = store.read_log(after, limit).unwrap();
            assert_eq!(read, from_store(after, limit), "after {after}");
            let expected: Vec<Seq> = ((after + 1)..=head).take(limit).collect();
            assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), expected, "after {after}");
        }
        store.condition().recovered(head);
        written.extend(append(&store, 3));
        let read = store.read_log(head - 4, 256).unwrap();
        assert_eq!(read, written[(head - 4) as usize..].to_vec(), "after a reopen");
    }
}
