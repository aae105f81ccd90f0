//! The node's error, for the actors, the embedding API and the HTTP layer.
//!
//! Two levels, as kameo separates send errors from handler errors:
//! - [`CallError`]: the call did not reach a decision (the service was busy,
//!   slow, restarting, not running, or the node is draining). Nothing
//!   changed; the same call may succeed later.
//! - [`Refused`]: the service decided, and said no (the request breaks a
//!   rule, names something unknown, or conflicts with the order's state).
//!   Nothing changed; the same call will be refused again.
//!
//! [`NodeError::class`] is the one place that says what each error means to
//! a caller: its HTTP status, problem type and title, how long to wait
//! before retrying, and whether it counts as an outage of the service.

use crate::domain::{Invalid, Refusal};
use crate::store::{StoreError, WriteError};
use std::time::Duration;

/// Why a call into the node failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Call(#[from] CallError),
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The store failed; it keeps its cause.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A call that did not reach a decision; nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("{service} did not answer within {after:?}")]
    Timeout { service: &'static str, after: Duration },
    #[error("{0} is not running")]
    Unavailable(&'static str),
    /// The service is restarting after a failure; retry after the delay.
    #[error("{service} is restarting after a failure; retry in {retry_after:?}")]
    Restarting { service: &'static str, retry_after: Duration },
    /// The service failed to handle the request (an injected fault, or an
    /// error it could not recover from).
    #[error("{service} failed: {reason}")]
    Failed { service: &'static str, reason: String },
    /// A service stayed full longer than callers wait for room.
    #[error("{service} is busy; retry in {retry_after:?}")]
    Busy { service: &'static str, retry_after: Duration },
    /// Card payment cannot be taken now (the gateway is failing, slow or
    /// over its rate, or the breaker is open) and the workflow refuses
    /// rather than defers: pay a little later.
    #[error("card payment is unavailable ({reason}); please pay a little later")]
    PaymentUnavailable { reason: String, retry_after: Duration },
    /// The node is shutting down and takes no new work.
    #[error("the node is shutting down")]
    Draining,
}

/// A decision against the request; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The request breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// The request names a product that does not exist.
    #[error("unknown sku {0}")]
    UnknownSku(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The order's status does not allow the command.
    #[error("{0}")]
    Conflict(String),
    /// A product with this sku is already in the catalog.
    #[error("{0}")]
    ProductExists(String),
    /// A named unit is already in the pool, or held by an order.
    #[error("{0}")]
    UnitInUse(String),
    /// An event of the order failed and waits for an operator: commands on
    /// it wait too.
    #[error("{0}")]
    NeedsAttention(String),
    /// The principal may not take this step; the message names who may.
    #[error("{0}")]
    Forbidden(String),
    /// The party already holds as many orders as its workflow lets it (a
    /// driver on a ride).
    #[error("{0}")]
    PartyBusy(String),
    /// Another party accepted (or rejected) the order first.
    #[error("{0}")]
    Taken(String),
    /// Nothing of the kind is available now (no driver free), or for the
    /// dates asked (no room).
    #[error("no {sku} is {}", if *dated { "free for these dates" } else { "available now" })]
    NothingAvailable { sku: String, dated: bool },
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    #[error("this Idempotency-Key was first used with a different request")]
    IdempotencyMismatch,
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
}

/// What an error means to whoever made the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    /// The HTTP status.
    pub status: u16,
    /// The stable slug of the problem `type` (`/problems/{slug}`).
    pub problem: &'static str,
    pub title: &'static str,
    /// When to come back, at the earliest; `None`: retrying will not help.
    pub retry_after: Option<Duration>,
    /// Whether it says the service is out of order (as opposed to a
    /// decision): the order service falls back on such payment errors.
    pub outage: bool,
}

const SOON: Option<Duration> = Some(Duration::from_secs(1));

const fn refused(status: u16, problem: &'static str, title: &'static str) -> Class {
    Class { status, problem, title, retry_after: None, outage: false }
}

const fn outage(problem: &'static str, title: &'static str, retry_after: Option<Duration>) -> Class {
    Class { status: 503, problem, title, retry_after, outage: true }
}

impl NodeError {
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Refused::NotFound { what, id: id.to_string() }.into()
    }

    /// The one classification of every error (see [`Class`]).
    pub fn class(&self) -> Class {
        match self {
            NodeError::Refused(r) => r.class(),
            NodeError::Call(c) => c.class(),
            NodeError::Store(StoreError::Unavailable(_)) => {
                outage("store-unavailable", "The store cannot write now; reads still answer", SOON)
            }
            NodeError::Store(StoreError::Closed) => {
                Class { outage: false, ..outage("unavailable", "The service is unavailable", SOON) }
            }
            NodeError::Store(_) => refused(500, "storage-error", "The store failed"),
        }
    }

    /// For an answer that asks the caller to come back: when, at the
    /// earliest. `None` for every error that retrying will not fix.
    pub fn retry_after(&self) -> Option<Duration> {
        self.class().retry_after
    }
}

impl Refused {
    fn class(&self) -> Class {
        match self {
            Refused::Invalid(_) => refused(422, "invalid-request", "The request is not valid"),
            Refused::UnknownSku(_) => refused(422, "unknown-sku", "The order names an unknown product"),
            Refused::IdempotencyMismatch => {
                refused(422, "idempotency-key-reused", "The Idempotency-Key belongs to another request")
            }
            Refused::NotFound { .. } => refused(404, "not-found", "Not found"),
            Refused::Conflict(_) => refused(409, "order-status", "The order's status does not allow this"),
            Refused::ProductExists(_) => refused(409, "product-exists", "A product with this sku exists"),
            Refused::UnitInUse(_) => refused(409, "unit-in-use", "The unit is already in the pool or in use"),
            Refused::NeedsAttention(_) => {
                refused(409, "needs-attention", "The order waits for an operator to retry a failed step")
            }
            Refused::Taken(_) => refused(409, "already-taken", "Someone else took this order first"),
            Refused::PartyBusy(_) => refused(409, "party-busy", "The party holds as many orders as it may"),
            Refused::Forbidden(_) => refused(403, "forbidden", "This principal may not do this"),
            Refused::NothingAvailable { .. } => {
                refused(409, "nothing-available", "Nothing is available for this order now")
            }
            Refused::IdempotencyInProgress => {
                refused(409, "idempotency-key-in-use", "A request with this Idempotency-Key is in progress")
            }
            Refused::PaymentDeclined(_) => refused(402, "payment-declined", "The payment was declined"),
        }
    }
}

impl CallError {
    fn class(&self) -> Class {
        match self {
            CallError::Timeout { .. } => outage("timeout", "A service did not answer in time", SOON),
            CallError::Unavailable(_) => outage("unavailable", "The service is unavailable", SOON),
            CallError::Restarting { retry_after, .. } => {
                outage("restarting", "The service is restarting", Some(*retry_after))
            }
            CallError::Failed { .. } => outage("service-failed", "The service failed; nothing changed", SOON),
            CallError::Busy { retry_after, .. } => {
                outage("busy", "The service is busy; retry a little later", Some(*retry_after))
            }
            CallError::PaymentUnavailable { retry_after, .. } => outage(
                "payment-unavailable",
                "Card payment is unavailable; pay a little later",
                Some(*retry_after),
            ),
            // The node, not a service, stops taking work.
            CallError::Draining => {
                Class { outage: false, ..outage("shutting-down", "The node is shutting down", SOON) }
            }
        }
    }
}

impl From<Invalid> for NodeError {
    fn from(e: Invalid) -> Self {
        Refused::Invalid(e.0).into()
    }
}

impl From<Refusal> for NodeError {
    fn from(e: Refusal) -> Self {
        match e {
            Refusal::NotAllowed(why) => Refused::Conflict(why),
            Refusal::Taken(why) => Refused::Taken(why),
            Refusal::Unknown { what, id } => Refused::NotFound { what, id },
            Refusal::ProductExists(why) => Refused::ProductExists(why),
            Refusal::UnitInUse(why) => Refused::UnitInUse(why),
            Refusal::Invalid { field, why } => Refused::Invalid(format!("{field}: {why}")),
        }
        .into()
    }
}

impl From<WriteError<NodeError>> for NodeError {
    fn from(e: WriteError<NodeError>) -> Self {
        e.flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_never_an_outage_and_never_asks_for_a_retry() {
        let refusals = [
            Refused::Invalid("x".into()),
            Refused::UnknownSku("x".into()),
            Refused::NotFound { what: "order", id: "x".into() },
            Refused::Conflict("x".into()),
            Refused::PartyBusy("x".into()),
            Refused::Forbidden("x".into()),
            Refused::ProductExists("x".into()),
            Refused::UnitInUse("x".into()),
            Refused::NeedsAttention("x".into()),
            Refused::Taken("x".into()),
            Refused::NothingAvailable { sku: "x".into(), dated: false },
            Refused::PaymentDeclined("x".into()),
            Refused::IdempotencyMismatch,
            Refused::IdempotencyInProgress,
        ];
        for r in refusals {
            let class = NodeError::from(r.clone()).class();
            assert!(!class.outage && class.retry_after.is_none(), "{r:?}: {class:?}");
            assert!((400..500).contains(&class.status), "{r:?}: {class:?}");
        }
    }

    #[test]
    fn a_failed_call_is_a_503_with_a_retry_after_and_counts_as_an_outage_unless_draining() {
        let wait = Duration::from_secs(3);
        let calls = [
            CallError::Timeout { service: "payment", after: wait },
            CallError::Unavailable("payment"),
            CallError::Restarting { service: "payment", retry_after: wait },
            CallError::Failed { service: "payment", reason: "x".into() },
            CallError::Busy { service: "payment", retry_after: wait },
            CallError::PaymentUnavailable { reason: "x".into(), retry_after: wait },
        ];
        for c in calls {
            let class = NodeError::from(c.clone()).class();
            assert!(class.outage && class.status == 503 && class.retry_after.is_some(), "{c:?}: {class:?}");
        }
        let draining = NodeError::from(CallError::Draining).class();
        assert_eq!((draining.status, draining.outage), (503, false));
        let disk = std::io::Error::other("no space left on device");
        let failed = NodeError::from(StoreError::Engine(std::sync::Arc::new(disk)));
        assert_eq!(failed.class().status, 500);
        // `transparent`: the node error's source is the store error's cause.
        let source = std::error::Error::source(&failed);
        assert_eq!(
            source.map(ToString::to_string).as_deref(),
            Some("no space left on device"),
            "the cause is kept"
        );
    }

    #[test]
    fn messages_are_the_inner_errors_own() {
        let e = NodeError::from(CallError::Busy { service: "order", retry_after: Duration::from_secs(1) });
        assert_eq!(e.to_string(), "order is busy; retry in 1s");
        assert_eq!(NodeError::not_found("order", "ord-9").to_string(), "order ord-9 not found");
    }
}
