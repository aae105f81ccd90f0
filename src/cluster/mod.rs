//! Several nodes on one JetStream server or cluster (issue 14).
//!
//! Built and used by the node (`stream.mode = "failover"`):
//! - [`replica`]: the leader's store copied commit by commit to a stream
//!   before anything is acknowledged, and applied by each follower to its
//!   own, so that one takes over with everything acknowledged;
//! - [`lease`]: who leads, by a lease in a JetStream key-value bucket
//!   with a time to live, so that a node that dies gives it up without
//!   anyone deciding it. No consensus of our own: the bucket's
//!   compare-and-set and expiry are JetStream's;
//! - [`partition`]: appends fenced on the subject's last message, so that
//!   a stale leader cannot write once another has claimed.
//!
//! Built towards spreading orders over nodes by partition, not yet used:
//! leases over many partitions with fair shares, and each order's state
//! rebuilt from its events alone ([`rebuild`]). The design and what is
//! still to build: `docs/multi-node.md`.

pub mod lease;
pub mod partition;
pub mod rebuild;
pub mod replica;

pub use lease::{LeaseError, Leases};
pub use partition::{AppendError, PartitionWriter};
pub use rebuild::Rebuilt;
pub use replica::{Replica, ReplicaReads, ReplicatedBackend, StreamEnd};
