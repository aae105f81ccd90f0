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

use crate::config::{NatsAuth, StreamSettings};
use std::time::Duration;

/// How long a JetStream request (stream info, create) and a publish's
/// acknowledgement are waited for. Shorter than the client's defaults (5 s
/// and 30 s): when a cluster loses the server that leads a stream, the
/// requests in flight go unanswered, and whoever waits starts over sooner.
pub const TIMEOUTS: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(5));

/// Why the NATS servers could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// `stream.url` cannot be used as it is; retrying will not help.
    #[error("{0}")]
    Settings(String),
    #[error("NATS: {0}")]
    Nats(String),
}

/// Connects to the servers of `stream.url`, with its credentials given as
/// options (see [`crate::config::NatsAuth`] for why), and the JetStream
/// context over that connection.
pub async fn connect(
    settings: &StreamSettings,
) -> Result<(async_nats::Client, async_nats::jetstream::Context), ConnectError> {
    let options = async_nats::ConnectOptions::new()
        .name("fulfil")
        .connection_timeout(Duration::from_secs(5))
        // The JetStream API's requests wait this long (the context's own
        // timeout does not reach them).
        .request_timeout(Some(TIMEOUTS.0));
    let options = match settings.credentials().map_err(ConnectError::Settings)? {
        Some(NatsAuth::UserPassword { user, password }) => options.user_and_password(user, password),
        Some(NatsAuth::Token(token)) => options.token(token),
        None => options,
    };
    let client = options.connect(settings.servers()).await.map_err(|e| ConnectError::Nats(e.to_string()))?;
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(TIMEOUTS.0)
        .ack_timeout(TIMEOUTS.1)
        .build(client.clone());
    Ok((client, js))
}
