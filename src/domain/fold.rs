//! What every service's rules share: a state folded from events, and a
//! refusal when a command does not fit that state.
//!
//! Each service keeps one aggregate per order ([`super::Order`],
//! [`super::delivery::Delivery`], [`super::payment::PaymentRecord`],
//! [`super::inventory::Reservation`]) with the same three pure steps, the
//! shape cqrs-es gives aggregates:
//! - `decide`: a command against the current state gives events or a
//!   [`Refusal`], and changes nothing;
//! - `apply` ([`Fold::apply`]): one event folded into the state;
//! - `react`/`on_fact`: another service's fact gives this service's events.
//!
//! The actors are shells around them: load the state, call the fold,
//! persist what it returns in one write, and run effects after the commit.

use super::EventKind;

/// A state that events are folded into.
pub trait Fold {
    /// Folds one event of this aggregate into it.
    fn apply(&mut self, event: &EventKind);

    /// Folds `events` in order.
    fn apply_all<'a>(&mut self, events: impl IntoIterator<Item = &'a EventKind>) {
        for e in events {
            self.apply(e);
        }
    }
}

/// A command refused because of the current state; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The state does not allow it (HTTP 409).
    #[error("{0}")]
    NotAllowed(String),
    /// Someone else accepted (or rejected) it first.
    #[error("{0}")]
    Taken(String),
    /// The command names a part that does not exist (a leg).
    #[error("{what} {id} not found")]
    Unknown { what: &'static str, id: String },
    /// The catalog has a product with this sku already.
    #[error("{0}")]
    ProductExists(String),
    /// A named unit is already free in its pool (or held).
    #[error("{0}")]
    UnitInUse(String),
    /// The command does not fit what it acts on (a quantity for a pool of
    /// named units, a total that would overflow): the caller's mistake, and
    /// `field` is the part of the request to fix (HTTP 422).
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
}

/// given/when/then for the folds, after cqrs-es's `TestFramework`:
/// `given(state, events).when(|s| s.decide(..)).then_expect(events)`.
#[cfg(test)]
pub mod testing {
    use super::{Fold, Refusal};
    use crate::domain::EventKind;
    use std::fmt::Debug;

    /// Given `facts` from other services, folded in turn through a
    /// service's `on_fact`: the state they lead to and every event it
    /// decided on the way (the "then" to assert on).
    pub fn given_facts<S: Clone>(
        initial: Option<S>,
        facts: &[EventKind],
        mut on_fact: impl FnMut(Option<S>, &EventKind) -> Option<(S, Vec<EventKind>)>,
    ) -> (Option<S>, Vec<EventKind>) {
        let (mut state, mut events) = (initial, Vec::new());
        for fact in facts {
            if let Some((next, more)) = on_fact(state.clone(), fact) {
                state = Some(next);
                events.extend(more);
            }
        }
        (state, events)
    }

    /// A state built by folding `events` into `initial`.
    pub fn given<S: Fold>(initial: S, events: &[EventKind]) -> Given<S> {
        let mut state = initial;
        state.apply_all(events);
        Given { state }
    }

    pub struct Given<S> {
        pub state: S,
    }

    impl<S: Fold + Clone + Debug> Given<S> {
        /// Runs a decision on the state; the state is not changed by it.
        pub fn when<E>(self, decide: impl FnOnce(&S) -> Result<Vec<EventKind>, E>) -> Then<S, E> {
            let outcome = decide(&self.state);
            Then { state: self.state, outcome }
        }
    }

    pub struct Then<S, E> {
        state: S,
        outcome: Result<Vec<EventKind>, E>,
    }

    impl<S: Fold + Debug, E: Debug> Then<S, E> {
        /// Asserts the events decided, and returns the state they lead to.
        pub fn then_expect(self, expected: &[EventKind]) -> S {
            let events = self.outcome.unwrap_or_else(|e| panic!("refused: {e:?}; expected {expected:?}"));
            assert_eq!(events, expected);
            let mut state = self.state;
            state.apply_all(&events);
            state
        }

        /// Asserts the names of the events decided.
        pub fn then_expect_names(self, expected: &[&str]) -> S {
            let events = self.outcome.unwrap_or_else(|e| panic!("refused: {e:?}; expected {expected:?}"));
            assert_eq!(events.iter().map(EventKind::name).collect::<Vec<_>>(), expected);
            let mut state = self.state;
            state.apply_all(&events);
            state
        }
    }

    impl<S: Debug> Then<S, Refusal> {
        /// Asserts a refusal whose text contains `words`.
        pub fn then_refused(self, words: &str) -> Refusal {
            match self.outcome {
                Err(r) if r.to_string().contains(words) => r,
                other => panic!("expected a refusal with {words:?}, got {other:?} on {:?}", self.state),
            }
        }
    }
}
