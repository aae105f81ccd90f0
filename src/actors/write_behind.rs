//! A consumer's writes held back in memory and committed every so often
//! with its log offset, in one write: state written behind (see
//! [`Staged`]).
//!
//! A consumer can hold its writes back when they are a function of the
//! log: after a crash it folds the same events again from its committed
//! offset into the same state, and nothing is lost or applied twice. The
//! projection's views and the notifications are nothing else. A consumer
//! that appends events as it folds (the reactions of the order, inventory
//! and delivery services) has them written to the log at once, before its
//! state holds them ([`Store::stage`]); folding again after a crash, it
//! must not append what the log already holds ([`super::recorded`]). A
//! state written once a flush instead of at every event saves a key under
//! the store's writer lock each time an order changes.
//!
//! A command, which must be durable when it is answered, is written at
//! once with [`WriteBehind::write_now`]: beside what is held back when it
//! touches none of it, else together with it.
//!
//! Reads go through what is held back ([`WriteBehind::get`],
//! [`WriteBehind::entries_from`]), so what was applied is seen at once.
//! A commit runs on a thread of its own while the actor goes on folding
//! and answering reads; what it folds meanwhile is staged above the
//! frozen layer being committed.

use super::consumer::{Cursor, Delivery};
use super::recorded::Recorded;
use super::ServiceEnv;
use crate::domain::{Event, EventKind, Seq};
use crate::error::NodeError;
use crate::store::{decode, ReadCache, Staged, Store, StoreError, Table, Tx, TxResult, WriteError};
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

/// The longest a commit waits for the timer (see [`WriteBehind::tick_every`]);
/// how long writes are held back is `store.hold_back_ms`.
const TICK_AT_MOST: Duration = Duration::from_millis(100);
/// Keys held back past which they are committed at once.
const COMMIT_AT: usize = 20_000;

/// Entries of a table in key order, each with its key.
pub type Entries<'a, V> = Box<dyn Iterator<Item = Result<(Vec<u8>, V), StoreError>> + 'a>;

/// One consumer's held-back writes.
pub struct WriteBehind {
    store: Store,
    /// The consumer whose offset is committed with the writes.
    name: &'static str,
    staged: Staged,
    /// The offset committed in the store when staging began.
    committed: Seq,
    /// The store's generation the staged changes were read in: after it is
    /// reopened they are dropped and folded again.
    generation: u64,
    /// How long writes may be held back (`store.hold_back_ms`). Reads see
    /// them at once; a crash only means folding the same events again.
    every: Duration,
    /// Staged writes being committed on a thread of their own; read under
    /// the ones staged since.
    committing: Option<InFlight>,
    /// For a consumer that reacts to facts: what it appended past its
    /// committed offset.
    recorded: Recorded,
    /// Values read from the store, for a consumer that asked for it
    /// ([`WriteBehind::caching`]): read again without waiting for sled.
    cache: Option<RefCell<ReadCache>>,
}

/// A commit of frozen staged writes, under way on a thread of its own.
struct InFlight {
    frozen: Arc<Staged>,
    done: Receiver<Result<(), StoreError>>,
}

impl WriteBehind {
    pub fn new(env: &ServiceEnv, name: &'static str) -> WriteBehind {
        let store = env.store.clone();
        let generation = store.condition().generation();
        WriteBehind {
            store,
            name,
            staged: Staged::default(),
            committed: 0,
            generation,
            every: env.hold_back,
            committing: None,
            recorded: Recorded::new(name, None),
            cache: None,
        }
    }

    /// Keeps up to about `entries` values read from the store for the next
    /// reads ([`ReadCache`]), for a consumer that writes nothing but what it
    /// holds back: a write made around the held-back layers ([`Self::write_now`],
    /// an event given again) drops them all.
    pub fn caching(self, entries: usize, tables: &'static [&'static str]) -> WriteBehind {
        WriteBehind { cache: Some(RefCell::new(ReadCache::new(entries, tables))), ..self }
    }

    /// For a consumer that appends reactions as it folds: `mine` tells the
    /// kinds of event only it writes, by which its reactions are found
    /// again after a crash ([`Recorded`]).
    pub fn reacting(self, mine: fn(&EventKind) -> bool) -> WriteBehind {
        WriteBehind { recorded: Recorded::new(self.name, Some(mine)), ..self }
    }

    /// Holds writes back for `every` instead (tests that look before the
    /// commit).
    pub fn every(self, every: Duration) -> WriteBehind {
        WriteBehind { every, ..self }
    }

    /// How often [`WriteBehind::tick`] should run.
    pub fn tick_every(&self) -> Duration {
        (self.every / 2).clamp(Duration::from_millis(1), TICK_AT_MOST)
    }

    /// A value, held back or committed.
    pub fn get<V: DeserializeOwned>(
        &self,
        table: Table<V>,
        key: impl AsRef<[u8]>,
    ) -> Result<Option<V>, NodeError> {
        let Some(staged) = self.held() else { return Ok(self.store.get(table, key)?) };
        let Some(cache) = &self.cache else { return Ok(staged.get(self.below(), &self.store, table, key)?) };
        let (name, key) = (table.name(), key.as_ref());
        let decoded = match staged.layered(self.below(), name, key) {
            Some(held) => held.map(decode).transpose(),
            None => self.store.raw_get_cached(cache, name, key)?.as_deref().map(decode).transpose(),
        };
        Ok(decoded.map_err(StoreError::from)?)
    }

    /// Drops from the cache what `staged` wrote: it was just committed.
    fn committed_to_cache(&self, staged: &Staged) {
        if let Some(cache) = &self.cache {
            let mut cache = cache.borrow_mut();
            staged.slots().for_each(|(table, key)| cache.remove(table, key));
        }
    }

    /// Drops the whole cache: the store changed in ways not told key by key.
    fn drop_cache(&self) {
        if let Some(cache) = &self.cache {
            cache.borrow_mut().clear();
        }
    }

    /// Entries with keys from `start` on, held back or committed, in key
    /// order.
    pub fn entries_from<'a, V: DeserializeOwned + 'a>(
        &'a self,
        table: Table<V>,
        start: impl AsRef<[u8]>,
    ) -> Result<Entries<'a, V>, StoreError> {
        Ok(match self.held() {
            Some(staged) => Box::new(staged.entries_from(self.below(), &self.store, table, start)?),
            None => Box::new(self.store.entries_from(table, start)?),
        })
    }

    /// The last event folded in: held back, being committed, or committed.
    pub fn position(&self) -> Result<Seq, NodeError> {
        let folded = self.held().and_then(|s| s.applied().or(self.below().and_then(Staged::applied)));
        match folded {
            Some(seq) => Ok(seq),
            None => Ok(self.store.offset(self.name)?),
        }
    }

    /// What is held back, unless the store was reopened since it was
    /// folded: then it may rest on events that are gone, and reads see the
    /// store alone until the service folds the log again.
    fn held(&self) -> Option<&Staged> {
        (self.store.condition().generation() == self.generation).then_some(&self.staged)
    }

    /// The staged writes being committed, if a commit is under way.
    fn below(&self) -> Option<&Staged> {
        self.committing.as_ref().map(|c| &*c.frozen)
    }

    /// Applies a batch with `f`, which folds one event, given what the log
    /// holds of the consumer's reactions already. In order, the batch is
    /// folded into what is held back (its reactions appended at once); an
    /// event given again (a dead letter's) or one of an order with a dead
    /// letter here goes the consumer framework's way, written at once,
    /// after what is held back.
    pub fn apply(
        &mut self,
        cursor: &Cursor,
        batch: &[Event],
        delivery: Delivery,
        f: impl Fn(&mut Tx<'_>, &Event, &Recorded) -> TxResult<(), NodeError>,
    ) -> Result<(), NodeError> {
        self.recorded.refresh(&self.store)?;
        // Out for the fold, which `stage` cannot lend it; back right after.
        let recorded = std::mem::take(&mut self.recorded);
        let fold = |tx: &mut Tx<'_>, event: &Event| f(tx, event, &recorded);
        let applied = match delivery == Delivery::InOrder && !cursor.any_quarantined(batch) {
            true => self.stage(cursor.offset(), batch, fold),
            false => self.commit_now().and_then(|()| {
                self.drop_cache();
                cursor.apply(batch, delivery, fold).map(drop)
            }),
        };
        self.recorded = recorded;
        applied?;
        if let Some(last) = batch.last() {
            self.recorded.passed(last.seq);
        }
        Ok(())
    }

    /// Folds the events of `batch` after `consumed` (the consumer's offset)
    /// that are not folded in yet (a batch tried again) with `f`, holding
    /// back what it writes.
    fn stage(
        &mut self,
        consumed: Seq,
        batch: &[Event],
        mut f: impl FnMut(&mut Tx<'_>, &Event) -> TxResult<(), NodeError>,
    ) -> Result<(), NodeError> {
        self.follow_store();
        if self.staged.is_empty() && self.committing.is_none() {
            self.committed = self.store.offset(self.name)?;
        }
        let below = self.committing.as_ref().map(|c| c.frozen.clone());
        let folded = self.staged.applied().or(below.as_ref().and_then(|b| b.applied()));
        let from = folded.unwrap_or(self.committed).max(consumed);
        let Some(last) = batch.last().map(|e| e.seq.max(from)) else { return Ok(()) };
        let name = self.name;
        self.store
            .stage_cached(&mut self.staged, below.as_deref(), self.cache.as_ref(), last, |tx| {
                batch.iter().filter(|e| e.seq > from).try_for_each(|e| {
                    let _span = super::consumer::event_span(name, e).entered();
                    f(tx, e)
                })
            })
            .map_err(WriteError::flatten)?;
        if self.staged.len() >= COMMIT_AT {
            self.start_commit();
        }
        Ok(())
    }

    /// Drops what was folded before the store was last reopened: what the
    /// store did not flush then is gone, so those changes may rest on
    /// events that are no more. The consumer folds the log again from its
    /// committed offset (it reloads it when it sees the new generation).
    fn follow_store(&mut self) {
        let generation = self.store.condition().generation();
        if generation != self.generation {
            let _ = self.settle(true);
            (self.generation, self.staged) = (generation, Staged::default());
            self.recorded.stale();
            self.drop_cache();
        }
    }

    /// Commits what has waited long enough, and takes in a commit that
    /// ended; run every [`WriteBehind::tick_every`].
    pub fn tick(&mut self) {
        self.follow_store();
        if let Err(e) = self.settle(false) {
            self.warn(&e);
        }
        if self.staged.applied().is_some() && self.staged.age() >= self.every {
            self.start_commit();
        }
    }

    /// Starts committing what is staged on a thread of its own, unless a
    /// commit is under way.
    fn start_commit(&mut self) {
        if let Err(e) = self.settle(false) {
            self.warn(&e);
        }
        if self.committing.is_some() || self.staged.applied().is_none() {
            return;
        }
        let frozen = Arc::new(std::mem::take(&mut self.staged));
        let (sent, done) = channel();
        let (store, for_thread, committed, name) =
            (self.store.clone(), frozen.clone(), self.committed, self.name);
        let spawned = std::thread::Builder::new().name(format!("fulfil-{name}-commit")).spawn(move || {
            let outcome = store.commit_frozen(&for_thread, name, committed);
            drop(for_thread);
            let _ = sent.send(outcome);
        });
        match spawned {
            Ok(_) => self.committing = Some(InFlight { frozen, done }),
            Err(e) => {
                self.staged = Arc::try_unwrap(frozen).unwrap_or_else(|shared| (*shared).clone());
                self.warn(&NodeError::from(StoreError::Flusher(Arc::new(e))));
            }
        }
    }

    /// Takes in the outcome of the commit under way, if it is over (or,
    /// with `wait`, once it is). A failed commit's writes are staged again
    /// under those staged since, and its error returned.
    fn settle(&mut self, wait: bool) -> Result<(), NodeError> {
        let Some(flight) = &self.committing else { return Ok(()) };
        let ended = || StoreError::Unavailable(format!("{}'s commit thread ended", self.name));
        let outcome = match wait {
            true => flight.done.recv().unwrap_or_else(|_| Err(ended())),
            false => match flight.done.try_recv() {
                Ok(outcome) => outcome,
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => Err(ended()),
            },
        };
        let Some(flight) = self.committing.take() else { return Ok(()) };
        match outcome {
            Ok(()) => {
                self.committed = flight.frozen.applied().unwrap_or(self.committed);
                self.committed_to_cache(&flight.frozen);
                Ok(())
            }
            Err(e) => {
                let mut again = Arc::try_unwrap(flight.frozen).unwrap_or_else(|shared| (*shared).clone());
                again.absorb(std::mem::take(&mut self.staged));
                self.staged = again;
                Err(e.into())
            }
        }
    }

    /// Commits what is held back, with the offset, here and now (after any
    /// commit under way): before the consumer framework writes the offset
    /// itself, before a write that may not wait, and at shutdown.
    pub fn commit_now(&mut self) -> Result<(), NodeError> {
        self.follow_store();
        self.settle(true)?;
        if let Some(applied) = self.staged.applied() {
            self.committed_to_cache(&self.staged);
            self.store.commit_staged(&mut self.staged, self.name, self.committed)?;
            self.committed = applied;
        }
        Ok(())
    }

    /// Writes `f` at once (a command's write): beside what is held back
    /// when `f` neither reads nor writes any of it, else together with it
    /// and the offset, in one write. Either way nothing written depends on
    /// a change that a crash could still take back.
    pub fn write_now<R>(
        &mut self,
        f: impl Fn(&mut Tx<'_>) -> TxResult<R, NodeError>,
    ) -> Result<(R, Vec<Event>), NodeError> {
        self.follow_store();
        if let Err(e) = self.settle(false) {
            self.warn(&e);
        }
        // What `f` writes is not told key by key.
        self.drop_cache();
        let beside = self.store.write_beside(&self.staged, self.below(), &f).map_err(WriteError::flatten)?;
        if let Some(written) = beside {
            return Ok(written);
        }
        // A commit under way ends first: what it writes is older.
        self.settle(true)?;
        let applied = self.staged.applied();
        let written = self
            .store
            .commit_staged_with(&mut self.staged, self.name, self.committed, &f)
            .map_err(WriteError::flatten)?;
        self.committed = applied.unwrap_or(self.committed);
        Ok(written)
    }

    /// Forgets what is held back, once a commit under way is over (whatever
    /// its outcome): after a restart it is folded again from the committed
    /// offset.
    pub fn forget(&mut self) {
        let _ = self.settle(true);
        self.staged.clear();
        self.recorded.stale();
        self.drop_cache();
    }

    fn warn(&self, e: &NodeError) {
        // One cause for every service's: their failures share a cause (the
        // store), and each line names the service.
        if let Some(held_back) = crate::logging::ERRORS.allow("held-back-commit") {
            tracing::warn!(service = self.name, error = %e, held_back, "committing held-back writes failed; they stay held back");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actors::testing::{order, temp_store};
    use std::time::Duration;

    const T: Table<u32> = Table::new("t");

    /// A cached value never hides a newer one: committed from what was held
    /// back (at once or on the commit thread), or written around it.
    #[test]
    fn a_value_kept_from_the_store_gives_way_to_every_newer_one() {
        let t = temp_store();
        let mut behind = WriteBehind::new(&t.env(), "consumer").caching(16, &["t"]).every(Duration::ZERO);
        let fold = |behind: &mut WriteBehind, value: u32| {
            t.append(&order(1), vec![EventKind::OrderClosed]);
            let head = t.store.head();
            let batch = t.store.read_log(head - 1, 1).unwrap();
            behind.stage(head - 1, &batch, |tx, _| tx.put(T, "a", &value)).unwrap();
        };
        fold(&mut behind, 1);
        behind.commit_now().unwrap();
        assert_eq!(behind.get(T, "a").unwrap(), Some(1), "read from the store, and kept");
        assert_eq!(behind.get(T, "b").unwrap(), None, "kept as absent");

        fold(&mut behind, 2);
        assert_eq!(behind.get(T, "a").unwrap(), Some(2), "held back: read first");
        behind.commit_now().unwrap();
        assert_eq!(behind.get(T, "a").unwrap(), Some(2), "committed at once");

        fold(&mut behind, 3);
        behind.tick(); // commits on its own thread
        behind.commit_now().unwrap(); // takes that commit in
        assert_eq!(t.store.get(T, "a").unwrap(), Some(3));
        assert_eq!(behind.get(T, "a").unwrap(), Some(3), "committed on the commit thread");

        behind.write_now(|tx| tx.put(T, "b", &4)).unwrap();
        assert_eq!(behind.get(T, "b").unwrap(), Some(4), "written around what is held back");
    }

    /// What was folded before the store was reopened may rest on events the
    /// store lost then: it is not read any more, and never committed.
    #[test]
    fn what_was_held_back_before_a_reopen_is_neither_read_nor_committed() {
        let t = temp_store();
        let mut behind = WriteBehind::new(&t.env(), "consumer");
        t.append(&order(1), vec![EventKind::OrderClosed]);
        let batch = t.store.read_log(0, 10).unwrap();
        behind.stage(0, &batch, |tx, _| tx.put(T, "a", &1)).unwrap();
        assert_eq!((behind.get(T, "a").unwrap(), behind.position().unwrap()), (Some(1), 1));

        t.store.condition().recovered(t.store.head());
        assert_eq!(behind.get(T, "a").unwrap(), None, "not read after the reopen");
        assert_eq!(behind.entries_from(T, "").unwrap().count(), 0);
        assert_eq!(behind.position().unwrap(), 0, "the committed offset");
        behind.commit_now().unwrap();
        assert_eq!(
            (t.store.get(T, "a").unwrap(), t.store.offset("consumer").unwrap()),
            (None, 0),
            "nor committed"
        );
    }
}
