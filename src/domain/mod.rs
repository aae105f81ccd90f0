//! Pure types and rules of order fulfilment.
//!
//! Nothing here knows about actix, sled or HTTP, so every rule can be tested
//! as a plain function: the order state machine ([`order`]), the events that
//! record each change ([`event`]), the knobs of a workflow ([`workflow`]) and
//! the status view folded from events ([`view`]).

pub mod access;
pub mod calendar;
pub mod delivery;
pub mod details;
pub mod event;
pub mod fold;
pub mod ids;
pub mod inventory;
pub mod message;
pub mod money;
pub mod order;
pub mod partition;
pub mod payment;
pub mod product;
pub mod request;
#[cfg(test)]
mod samples;
pub mod shard;
pub mod status;
pub mod stay;
pub mod subscription;
pub mod text;
pub mod view;
pub mod workflow;

pub use event::{CancelReason, Event, EventKind, Seq};
pub use ids::{CustomerId, OrderId, Sku};
pub use message::Notification;
pub use money::Money;
pub use order::{Command, Order, OrderLine, OrderRequest, PaymentMethod, Refusal, Settlement, ValidOrder};
pub use product::{NewProduct, Product};
pub use status::OrderStatus;
pub use view::StatusView;
pub use workflow::{
    Acceptance, CheckpointPolicy, Decline, LegSpec, PaymentFallback, ReservationMode, Workflow, Workflows,
};

/// A request that breaks a rule of the domain, with a message for the caller.
///
/// These are the caller's mistakes (bad quantities, empty names); they map to
/// 4xx answers and never change any state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Invalid(msg.into())
    }
}

/// Milliseconds since the Unix epoch: the timestamp carried by every event.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Renders an event timestamp as RFC 3339 (UTC, milliseconds) for clients.
pub fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
