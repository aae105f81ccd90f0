//! Several nodes sharing one stream (issue 14's multi-node mode), built in
//! steps. So far:
//! - which node owns which partition ([`lease`]), decided by leases in a
//!   JetStream key-value bucket with a time to live, so that a node that
//!   dies gives its partitions up without anyone deciding it, and a node
//!   that joins takes a fair share. No consensus of our own: the bucket's
//!   compare-and-set and expiry are JetStream's;
//! - the state a node takes over with a partition, rebuilt from the
//!   partition's events alone ([`rebuild`]);
//! - appends to a partition fenced on its last message, as atomic
//!   batches, so that a stale owner cannot write ([`partition`]).
//!
//! The design, and what is still to build: `docs/multi-node.md`.
//!
//! Not yet wired to the services: a node does not yet run a partition's
//! services from the stream (nor can it for payments and stock yet, see
//! [`rebuild`]).

pub mod lease;
pub mod partition;
pub mod rebuild;
pub mod replica;

pub use lease::{LeaseError, Leases};
pub use partition::{AppendError, PartitionWriter};
pub use rebuild::Rebuilt;
pub use replica::{Replica, ReplicatedBackend};
