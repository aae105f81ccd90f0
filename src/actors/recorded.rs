//! What a service that writes behind already appended past its committed
//! offset.
//!
//! The service's state is written behind ([`crate::actors::write_behind`])
//! while its reactions to facts are appended to the log at once. After a
//! crash, or a restart of the actor, it folds the facts after its committed
//! offset again, into the same state; a fact whose reactions the log
//! already holds must not have them appended a second time. They are found
//! by their cause: a reaction is an event of a kind only this service
//! writes, naming the fact it reacts to.

use crate::domain::{EventKind, Seq};
use crate::store::{Store, StoreError};
use std::collections::HashSet;

/// Events read at a time while looking.
const PAGE: usize = 4096;

/// The facts whose reactions are in the log already.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The consumer whose offset the log is read after.
    consumer: &'static str,
    /// Whether an event is of a kind this service writes; `None` for a
    /// service that appends nothing as it folds (nothing to look for).
    mine: Option<fn(&EventKind) -> bool>,
    causes: HashSet<Seq>,
    /// The head when the log was read: nothing past it was appended by an
    /// earlier instance, so past it nothing is held.
    until: Seq,
    /// The store's generation it was read in; `None`: read it again.
    generation: Option<u64>,
}

impl Recorded {
    /// Nothing read yet: the log is read before the first fold.
    pub fn new(consumer: &'static str, mine: Option<fn(&EventKind) -> bool>) -> Recorded {
        Recorded { consumer, mine, causes: HashSet::new(), until: 0, generation: None }
    }

    /// Reads the log after the consumer's committed offset, unless it was
    /// read in this generation of the store already.
    pub fn refresh(&mut self, store: &Store) -> Result<(), StoreError> {
        let generation = store.condition().generation();
        let Some(mine) = self.mine.filter(|_| self.generation != Some(generation)) else {
            return Ok(());
        };
        let (mut after, until) = (store.offset(self.consumer)?, store.head());
        let mut causes = HashSet::new();
        while after < until {
            let events = store.read_log(after, PAGE)?;
            let Some(last) = events.last() else { break };
            after = last.seq;
            let reactions = events.iter().filter(|e| mine(&e.kind));
            causes.extend(reactions.filter_map(|e| e.caused_by));
        }
        (self.causes, self.until, self.generation) = (causes, until, Some(generation));
        Ok(())
    }

    /// Reads the log again before the next fold (after a restart).
    pub fn stale(&mut self) {
        self.generation = None;
    }

    /// Whether the reactions to `fact` are in the log already.
    pub fn holds(&self, fact: Seq) -> bool {
        self.causes.contains(&fact)
    }

    /// The consumer has folded everything up to `offset`: what was held
    /// for the facts before it is needed no more.
    pub fn passed(&mut self, offset: Seq) {
        if offset >= self.until && !self.causes.is_empty() {
            self.causes = HashSet::new();
        }
    }
}
