//! What keeps one slow or failing part from taking the node down with it:
//! a circuit breaker for downstream calls and a per-client rate limit.
//! Plain state machines with no actor or HTTP types, so the actors and the
//! HTTP edge can both use them and tests drive them by hand.

pub mod breaker;
pub mod limit;

pub use breaker::{Breaker, BreakerSettings, BreakerState, Rejected};
pub use limit::ClientLimiter;
