//! The error type of the actors and of the embedding API.

use crate::domain::{Invalid, Refusal};
use crate::store::{StoreError, WriteError};
use std::time::Duration;

/// Why a call into the node failed. Each variant is one kind of answer a
/// caller can act on; the HTTP layer maps them to status codes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    /// The request breaks a rule; nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// The request names a product that does not exist.
    #[error("unknown sku {0}")]
    UnknownSku(String),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The order's status does not allow the command; nothing changed.
    #[error("{0}")]
    Conflict(String),
    /// Another party accepted (or rejected) the order first.
    #[error("{0}")]
    Taken(String),
    /// Nothing of the kind is available now (no driver free).
    #[error("no {sku} is available now")]
    NothingAvailable { sku: String },
    #[error("payment declined: {0}")]
    PaymentDeclined(String),
    #[error("this Idempotency-Key was first used with a different request")]
    IdempotencyMismatch,
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    #[error("{service} did not answer within {after:?}")]
    Timeout { service: &'static str, after: Duration },
    #[error("{0} is not running")]
    Unavailable(&'static str),
    /// The service is restarting after a failure; retry after the delay.
    #[error("{service} is restarting after a failure; retry in {retry_after:?}")]
    Restarting { service: &'static str, retry_after: Duration },
    /// The service failed to handle the request (an injected fault, or an
    /// error it could not recover from); nothing changed.
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
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Invalid> for NodeError {
    fn from(e: Invalid) -> Self {
        NodeError::Invalid(e.0)
    }
}

impl From<Refusal> for NodeError {
    fn from(e: Refusal) -> Self {
        match e {
            Refusal::NotAllowed(why) => NodeError::Conflict(why),
            Refusal::Taken(why) => NodeError::Taken(why),
            Refusal::Unknown { what, id } => NodeError::NotFound { what, id },
        }
    }
}

impl From<WriteError<NodeError>> for NodeError {
    fn from(e: WriteError<NodeError>) -> Self {
        e.flatten()
    }
}

impl NodeError {
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        NodeError::NotFound { what, id: id.to_string() }
    }

    /// For an answer that asks the caller to come back: when, at the
    /// earliest. `None` for every error that retrying will not fix.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NodeError::Restarting { retry_after, .. }
            | NodeError::Busy { retry_after, .. }
            | NodeError::PaymentUnavailable { retry_after, .. } => Some(*retry_after),
            NodeError::Timeout { .. }
            | NodeError::Unavailable(_)
            | NodeError::Failed { .. }
            | NodeError::Draining
            | NodeError::Store(StoreError::Closed) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}
