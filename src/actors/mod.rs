//! The services, one actor each, and what they share.
//!
//! Each actor owns its sled trees and consumes the event log from its own
//! committed offset ([`consumer`]); each runs under an `actix::Supervisor` on
//! its own arbiter (thread), started by [`crate::node`]. All but payment
//! write their state behind ([`write_behind`]), and the three that react to
//! facts find their reactions again by cause after a crash ([`recorded`]).
//!
//! | actor | owns | reacts to | answers |
//! |---|---|---|---|
//! | [`order`] | orders, idempotency keys | stock, delivery and payment facts | place, confirm deposit, cancel, receipt |
//! | [`payment`] | payments | paid, canceled | card authorisation |
//! | [`inventory`] | products, reservations | placed, paid, canceled, in delivery | products, restock, quotes |
//! | [`delivery`] | deliveries | placed, reserved, canceled | complete delivery |
//! | [`notification`] | notifications and recipients, by order | every status change | a customer's notifications |
//! | [`projection`] | status views | everything | status queries |

pub mod consumer;
pub mod delivery;
pub mod gateway;
pub mod inventory;
pub mod notification;
pub mod order;
pub mod payment;
pub mod projection;
pub mod recorded;
pub mod supervision;
#[cfg(test)]
mod testing;
pub mod write_behind;

use crate::config::SupervisionSettings;
use crate::error::{CallError, NodeError};
use crate::faults::Faults;
use crate::health::Health;
use crate::store::Store;
use supervision::Supervision;

/// What every service is built with.
#[derive(Clone)]
pub struct ServiceEnv {
    pub store: Store,
    pub health: Health,
    pub faults: Faults,
    pub policy: SupervisionSettings,
    pub metrics: std::sync::Arc<crate::metrics::Metrics>,
    /// The engine's time (timers); tests pass a clock they move by hand.
    pub clock: std::sync::Arc<dyn crate::clock::Clock>,
    /// How often due timers are looked for.
    pub timer_tick: std::time::Duration,
    /// How long an idempotency key is remembered.
    pub key_ttl_ms: u64,
    /// How long a service may hold its writes back ([`write_behind`]).
    pub hold_back: std::time::Duration,
}

impl ServiceEnv {
    /// Fresh supervision state for the service `name`.
    pub fn supervision(&self, name: &'static str) -> Supervision {
        Supervision::new(name, self)
    }
}

use actix::dev::{MessageResponse, ToEnvelope};
use actix::{Actor, Addr, Handler, MailboxError, Message, Recipient};
use std::time::Duration;

/// Sends `msg` to `addr` and waits at most `timeout` for the answer.
///
/// `send` (never `do_send`) waits for room in the bounded mailbox, so a full
/// actor pushes back on its callers instead of queueing without bound.
pub async fn ask<A, M, T>(
    addr: &Addr<A>,
    msg: M,
    timeout: Duration,
    service: &'static str,
) -> Result<T, NodeError>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = Result<T, NodeError>> + Send + 'static,
    T: Send + 'static,
    Result<T, NodeError>: MessageResponse<A, M> + Send,
{
    answer(tokio::time::timeout(timeout, addr.send(msg)).await, timeout, service)
}

/// Like [`ask`], through a [`Recipient`]: for a message every service
/// understands, sent to one of them chosen at run time.
pub async fn ask_recipient<M, T>(
    to: &Recipient<M>,
    msg: M,
    timeout: Duration,
    service: &'static str,
) -> Result<T, NodeError>
where
    M: Message<Result = Result<T, NodeError>> + Send + 'static,
    T: Send + 'static,
{
    answer(tokio::time::timeout(timeout, to.send(msg)).await, timeout, service)
}

/// A delivery failure (the mailbox closed, no answer in time) as the
/// caller's error; a handler's own answer as it is.
fn answer<T>(
    sent: Result<Result<Result<T, NodeError>, MailboxError>, tokio::time::error::Elapsed>,
    timeout: Duration,
    service: &'static str,
) -> Result<T, NodeError> {
    match sent {
        Ok(Ok(result)) => result,
        Ok(Err(MailboxError::Closed)) => Err(NodeError::Call(CallError::Unavailable(service))),
        Ok(Err(MailboxError::Timeout)) | Err(_) => {
            Err(NodeError::Call(CallError::Timeout { service, after: timeout }))
        }
    }
}

/// Answers with `result` once everything written so far is on disk: an
/// acknowledgement is only sent for a change that survives a crash.
pub fn durably<T: 'static>(
    store: &crate::store::Store,
    result: Result<T, NodeError>,
) -> actix::ResponseFuture<Result<T, NodeError>> {
    let store = store.clone();
    Box::pin(async move {
        let value = result?;
        store.durable().await?;
        Ok(value)
    })
}
