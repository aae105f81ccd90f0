//! The event stream: every event of the node's log, published to a NATS
//! JetStream stream (`[stream]`) so that consumers outside the node, in any
//! language, follow orders as they move (`examples/stream_consumer.py`).
//!
//! The log stays the node's source of truth; the stream is a copy of it
//! in the log's order, each event once ([`export`]), in a documented format
//! ([`wire`], `docs/events.md`) that does not change with the log's own
//! encoding.

pub mod export;
pub mod wire;

pub use export::Export;
pub use wire::{partition, WireEvent};
