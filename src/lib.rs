//! fulfil: an order-fulfilment runtime.
//!
//! Orders flow through payment, stock reservation, delivery and receipt on
//! supervised [actix] actors that exchange typed messages and record every
//! change as an event in a durable [sled] log. A projection turns the events
//! into a status view (CQRS); a notification service tells the customer of
//! every change. It runs as a server (the `fulfil` binary) or embedded in a
//! larger application through [`Node`].
//!
//! # Layout
//!
//! Layers point down; `tests/layers.rs` keeps it so.
//!
//! - [`domain`]: pure types and rules: ids, money, events, workflows, and
//!   each service's rules as a fold ([`domain::order`],
//!   [`domain::payment`], [`domain::inventory`], [`domain::delivery`], the
//!   status view), after cqrs-es's aggregates and given/when/then test
//!   framework ([`domain::fold`]). No actix, no sled, no I/O.
//! - Leaves, each knowing at most the domain and one another downwards:
//!   - [`store`]: the log and the services' typed tables behind the
//!     [`store::backend::Backend`] trait (restate's log-provider shape; sled
//!     and in-memory providers, one contract suite), writes that commit a
//!     service's effects, events and offset together, writes staged in
//!     memory and committed behind, group commit, the
//!     codec;
//!   - [`service`]: the one list of services;
//!   - [`resilience`]: the circuit breaker and the per-client rate limit;
//!   - [`faults`]: fault injection; [`health`]: the health registry;
//!   - [`config`]: typed [`Settings`]: `config.toml`, then `FULFIL_*` env;
//!   - [`metrics`]: Prometheus metrics for `GET /metrics`;
//!   - [`telemetry`]: the process's log lines and, with the `otlp`
//!     feature, its spans exported over OTLP;
//!   - [`error`]: [`NodeError`], in two levels (kameo's split of delivery
//!     errors from handler errors) with one classification.
//! - [`stream`]: the log published to NATS JetStream for consumers
//!   outside the node: a documented JSON format, each event once and in
//!   order, on a thread of its own.
//! - [`cluster`]: several nodes on one JetStream server or cluster:
//!   leases in a key-value bucket, fenced appends, the leader's store
//!   copied commit by commit to the followers' ([`cluster::replica`],
//!   failover mode), and the services' state rebuilt from events.
//! - [`auth`]: who a request is by: API keys by SHA-256 digest, compared
//!   in constant time (the rules of who may do what are
//!   [`domain::access`]).
//! - [`actors`]: one module per service (order, payment, inventory,
//!   delivery, notification, projection), its messages at the top: thin
//!   shells that load state, run the domain fold and persist what it
//!   returns; the shared pull-based log consumer; what the projection,
//!   the notifications and the orders write behind
//!   ([`actors::write_behind`]); supervision.
//! - [`node`]: [`Node`], the embedding API: starts the actor system on its
//!   own thread and offers typed async calls, returning [`node::bodies`].
//! - [`http`]: the actix-web gateway, one module per resource, errors as
//!   `application/problem+json`; its OpenAPI document
//!   ([`http::openapi`]) is collected from the handlers' annotations as the
//!   routes are registered.
//! - [`startup`]: [`Application`], a node plus its HTTP server, and
//!   [`startup::failover`], `fulfil serve` as a follower that forwards
//!   requests ([`http::forward`]) until it leads; [`cli`] and [`load`] (the
//!   load generator behind `fulfil load`) on top.
//!
//! # Embedding
//!
//! ```no_run
//! use fulfil::{Node, Settings};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let mut settings = Settings::default();
//!     settings.store.path = "/tmp/my-shop".into();
//!     let node = Node::start(settings).await?;
//!     let health = node.health();
//!     println!("{} services, log at {}", health.services.len(), health.log_head);
//!     node.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! `examples/embedded.rs` walks a whole order and mounts the HTTP routes into
//! the application's own `App` with [`http::routes`].

pub mod actors;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod domain;
pub mod error;
pub mod faults;
pub mod health;
pub mod http;
pub mod load;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod resilience;
pub mod service;
pub mod startup;
pub mod store;
pub mod stream;
pub mod telemetry;

pub use actors::order::OrderReceipt;
pub use config::Settings;
pub use domain::order::{ItemRequest, OrderRequest};
pub use domain::NewProduct;
pub use error::{CallError, NodeError, Refused};
pub use faults::FaultSpec;
pub use node::{HealthReport, Node, StartError};
pub use service::Service;
pub use startup::Application;
