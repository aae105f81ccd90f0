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
//! - [`domain`]: pure types and rules: ids, money, the order state machine,
//!   events, workflows, the status view fold. No actix, no sled.
//! - [`store`]: sled. The event log, consumer offsets, each service's trees,
//!   transactions that write all three at once, group commit, the codec.
//! - [`actors`]: one module per service (order, payment, inventory,
//!   delivery, notification, projection), its messages at the top; the
//!   shared pull-based log consumer; the health registry.
//! - [`node`]: [`Node`], the embedding API: starts the actor system on its
//!   own thread and offers typed async calls.
//! - [`http`]: the actix-web gateway, one module per resource, errors as
//!   `application/problem+json`.
//! - [`config`]: typed [`Settings`]: `config.toml`, then `FULFIL_*` env.
//! - [`startup`]: [`Application`], a node plus its HTTP server.
//! - [`metrics`]: Prometheus metrics for `GET /metrics`.
//! - [`load`]: the load generator behind `fulfil load`.
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
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod faults;
pub mod health;
pub mod http;
pub mod load;
pub mod metrics;
pub mod node;
pub mod resilience;
pub mod service;
pub mod startup;
pub mod store;

pub use actors::order::OrderReceipt;
pub use config::Settings;
pub use domain::order::{ItemRequest, OrderRequest};
pub use domain::NewProduct;
pub use error::{CallError, NodeError, Refused};
pub use faults::FaultSpec;
pub use node::{HealthReport, Node, StartError};
pub use service::Service;
pub use startup::Application;
