//! Partition leases in a JetStream key-value bucket.
//!
//! The bucket keeps every entry for `ttl` after it was last written
//! (`max_age`), then drops it. Each node, on every [`Leases::tick`]:
//! - writes `member.<node>`, so the others count it as alive;
//! - renews each partition it holds by compare-and-set on
//!   `partition.<p>` (the revision it last wrote), so a lease that expired
//!   and was taken by another is lost, not overwritten;
//! - counts the live members and what each holds, and takes free
//!   partitions (create: only if absent) until it holds its fair share
//!   (`share`).
//!
//! A fair share is `ceil(partitions / members)`, but only `floor` of it
//! while another member holds less than `floor`: so that a newcomer gets
//! partitions even when the others hold no more than `ceil` (four over
//! three nodes: 2, 2 and 0 would be within `ceil`). A node above its
//! share ([`Leases::surplus`], once another joined) stops its work on
//! those partitions and then releases them ([`Leases::release`]), so the
//! newcomer finds them free (and those that gave them up do not take them
//! back while it is short). A node that dies stops renewing: its leases
//! expire after `ttl` and the others take them at their next tick.
//!
//! Each node tries partitions in an order of its own (rendezvous hashing
//! of its name and the partition), so that nodes starting together do not
//! all try the same ones first, and a node that comes back tends to get
//! the same ones again.

use async_nats::jetstream::kv;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const MEMBER: &str = "member.";
const PARTITION: &str = "partition.";

/// Why a lease operation failed (the server, the connection); the leases
/// held stand until their time runs out.
#[derive(Debug, thiserror::Error)]
#[error("partition leases: {0}")]
pub struct LeaseError(pub String);

fn failed(e: impl std::fmt::Display) -> LeaseError {
    LeaseError(e.to_string())
}

/// What a tick changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    /// Partitions this node holds now and did not before.
    pub gained: Vec<u32>,
    /// Partitions it held and no longer does: its lease ran out (the node
    /// was too slow to renew) and another may hold it now.
    pub lost: Vec<u32>,
}

/// One node's leases on the partitions of a stream.
pub struct Leases {
    bucket: kv::Store,
    node: String,
    partitions: u32,
    /// The partitions held, with the revision of their lease and when the
    /// write that made it was sent.
    held: BTreeMap<u32, (u64, Instant)>,
    /// How long an entry lives after its last write.
    ttl: Duration,
    /// What `member.<node>` holds: how others reach this node.
    address: String,
}

impl Leases {
    /// Joins the owners of `partitions` partitions recorded in `bucket`
    /// (created if missing, its entries living `ttl`) as `node`, holding
    /// nothing yet. Node names must be unique among the live nodes.
    pub async fn join(
        js: &async_nats::jetstream::Context,
        bucket: &str,
        ttl: Duration,
        node: &str,
        partitions: u32,
    ) -> Result<Leases, LeaseError> {
        Leases::join_replicated(js, bucket, ttl, node, partitions, 1).await
    }

    /// Like [`Leases::join`], with a bucket made (if missing) with
    /// `replicas` copies on a JetStream cluster: the leases must outlive a
    /// server as the stream they guard does.
    pub async fn join_replicated(
        js: &async_nats::jetstream::Context,
        bucket: &str,
        ttl: Duration,
        node: &str,
        partitions: u32,
        replicas: usize,
    ) -> Result<Leases, LeaseError> {
        let config = kv::Config {
            bucket: bucket.to_owned(),
            history: 1,
            max_age: ttl,
            num_replicas: replicas,
            ..Default::default()
        };
        let bucket = match js.get_key_value(bucket).await {
            Ok(store) => store,
            Err(_) => js.create_key_value(config).await.map_err(failed)?,
        };
        Ok(Leases {
            bucket,
            node: node.to_owned(),
            partitions,
            held: BTreeMap::new(),
            ttl,
            address: node.to_owned(),
        })
    }

    /// Says, with this node's membership, how other nodes reach it
    /// (its HTTP URL); [`Leases::holder_address`] reads it back.
    pub fn announcing(mut self, address: &str) -> Leases {
        self.address = address.to_owned();
        self
    }

    /// The address announced by the node that holds partition `p`, if one
    /// does and is alive.
    pub async fn holder_address(&self, p: u32) -> Result<Option<String>, LeaseError> {
        let Some(holder) = self.bucket.get(key(p)).await.map_err(failed)? else { return Ok(None) };
        let holder = String::from_utf8_lossy(&holder).into_owned();
        let address = self.bucket.get(format!("{MEMBER}{holder}")).await.map_err(failed)?;
        Ok(address.map(|a| String::from_utf8_lossy(&a).into_owned()))
    }

    /// The partitions this node holds.
    pub fn held(&self) -> impl Iterator<Item = u32> + '_ {
        self.held.keys().copied()
    }

    /// Until when no other node can hold partition `p`, by this node's
    /// clock: its lease's last write was sent at some moment, the server
    /// stored it after, and it lives `ttl` from then, so none can take it
    /// before `sent + ttl`. A twentieth of `ttl` is kept back for clocks
    /// that run at slightly different rates. `None` if not held.
    ///
    /// What it is for: a node that was paused (a long GC, a frozen VM)
    /// learns it lost a partition only at its next renewal; until then,
    /// only this says that what it holds may be out of date.
    pub fn held_until(&self, p: u32) -> Option<Instant> {
        self.held.get(&p).map(|(_, sent)| *sent + self.ttl - self.ttl / 20)
    }

    /// Says this node is alive, renews what it holds, and takes free
    /// partitions up to its fair share. Call it well within `ttl` (a third
    /// of it leaves room for one slow round).
    pub async fn tick(&mut self) -> Result<Change, LeaseError> {
        self.bucket
            .put(format!("{MEMBER}{}", self.node), self.address.clone().into())
            .await
            .map_err(failed)?;
        let mut change = Change::default();
        let held: Vec<(u32, u64)> = self.held.iter().map(|(p, (revision, _))| (*p, *revision)).collect();
        for (p, revision) in held {
            let sent = Instant::now();
            match self.bucket.update(key(p), self.node.clone().into(), revision).await {
                Ok(revision) => {
                    self.held.insert(p, (revision, sent));
                }
                // Expired, and perhaps taken by another since.
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    self.held.remove(&p);
                    change.lost.push(p);
                }
                // Unknown whether it was renewed: what is held stays held
                // until a tick says otherwise.
                Err(e) => return Err(failed(e)),
            }
        }
        let share = self.share().await?;
        for p in self.preference() {
            if self.held.len() >= share {
                break;
            }
            if self.held.contains_key(&p) {
                continue;
            }
            let sent = Instant::now();
            match self.bucket.create(key(p), self.node.clone().into()).await {
                Ok(revision) => {
                    self.held.insert(p, (revision, sent));
                    change.gained.push(p);
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => return Err(failed(e)),
            }
        }
        Ok(change)
    }

    /// Partitions held above this node's fair share, least preferred
    /// first: once its work on them has stopped, [`Leases::release`] them.
    pub async fn surplus(&self) -> Result<Vec<u32>, LeaseError> {
        let share = self.share().await?;
        let mut mine: Vec<u32> =
            self.preference().into_iter().rev().filter(|p| self.held.contains_key(p)).collect();
        mine.truncate(self.held.len().saturating_sub(share));
        Ok(mine)
    }

    /// Gives partition `p` up at once, for another node to take.
    pub async fn release(&mut self, p: u32) -> Result<(), LeaseError> {
        let Some((revision, _)) = self.held.remove(&p) else { return Ok(()) };
        self.bucket.delete_expect_revision(key(p), Some(revision)).await.map_err(failed)
    }

    /// Leaves: gives up every partition and stops counting as a member.
    pub async fn leave(mut self) -> Result<(), LeaseError> {
        self.quit().await
    }

    /// [`Leases::leave`], for leases shared behind a lock.
    pub async fn quit(&mut self) -> Result<(), LeaseError> {
        let held: Vec<u32> = self.held().collect();
        for p in held {
            self.release(p).await?;
        }
        self.bucket.delete(format!("{MEMBER}{}", self.node)).await.map_err(failed)
    }

    /// This node's fair share ([`share`]), from what the bucket holds.
    async fn share(&self) -> Result<usize, LeaseError> {
        use futures_util::TryStreamExt;
        let keys: Vec<String> =
            self.bucket.keys().await.map_err(failed)?.try_collect().await.map_err(failed)?;
        let mut holding: BTreeMap<String, usize> =
            keys.iter().filter_map(|k| k.strip_prefix(MEMBER)).map(|member| (member.to_owned(), 0)).collect();
        for k in keys.iter().filter(|k| k.starts_with(PARTITION)) {
            // Gone since listed: free.
            let Some(holder) = self.bucket.get(k).await.map_err(failed)? else { continue };
            if let Some(n) = holding.get_mut(String::from_utf8_lossy(&holder).as_ref()) {
                *n += 1;
            }
        }
        Ok(share(self.partitions, &self.node, &holding))
    }

    /// Every partition, in this node's order of preference.
    fn preference(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.partitions).collect();
        order.sort_by_key(|p| std::cmp::Reverse(rank(&self.node, *p)));
        order
    }
}

fn key(p: u32) -> String {
    format!("{PARTITION}{p}")
}

/// How many of `partitions` node `me` may hold, given how many each live
/// member holds (`holding`; `me` counts as live): `ceil(partitions /
/// members)`, or `floor` of it while another member holds less than
/// `floor`. Every node keeps to this, so partitions end up spread within
/// one of each other, and a node that joins gets some.
fn share(partitions: u32, me: &str, holding: &BTreeMap<String, usize>) -> usize {
    let members = holding.len() + usize::from(!holding.contains_key(me));
    let (floor, ceil) = (partitions as usize / members, (partitions as usize).div_ceil(members));
    let short = holding.iter().any(|(member, held)| member != me && *held < floor);
    if short {
        floor
    } else {
        ceil
    }
}

/// Rendezvous hashing: FNV-1a of the node's name and the partition.
fn rank(node: &str, p: u32) -> u32 {
    crate::domain::partition::fnv1a(format!("{node}/{p}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::share;
    use std::collections::BTreeMap;

    fn holding(of: &[(&str, usize)]) -> BTreeMap<String, usize> {
        of.iter().map(|(m, n)| (m.to_string(), *n)).collect()
    }

    #[test]
    fn alone_a_node_may_hold_every_partition() {
        assert_eq!(share(4, "a", &holding(&[])), 4);
        assert_eq!(share(4, "a", &holding(&[("a", 4)])), 4);
    }

    #[test]
    fn a_newcomer_short_of_the_floor_makes_the_others_keep_to_it() {
        // Four over three: 2, 2 and 0 are each within ceil (2), yet the
        // newcomer would lead nothing.
        let now = holding(&[("a", 2), ("b", 2), ("c", 0)]);
        assert_eq!(share(4, "a", &now), 1, "a gives one up");
        assert_eq!(share(4, "b", &now), 1, "b gives one up");
        assert_eq!(share(4, "c", &now), 2, "c takes up to ceil");
        // Once it holds the floor, the others may take up to ceil again.
        let then = holding(&[("a", 1), ("b", 2), ("c", 1)]);
        assert_eq!(share(4, "a", &then), 2);
        assert_eq!(share(4, "b", &then), 2, "b keeps its two");
    }

    #[test]
    fn a_node_not_yet_counted_as_a_member_counts_itself() {
        assert_eq!(share(16, "c", &holding(&[("a", 8), ("b", 8)])), 6);
        assert_eq!(share(16, "a", &holding(&[("a", 8), ("b", 8), ("c", 0)])), 5);
    }

    #[test]
    fn one_partition_goes_to_one_node_and_stays() {
        let now = holding(&[("a", 1), ("b", 0), ("c", 0)]);
        assert_eq!(share(1, "a", &now), 1, "floor is 0: nobody is short of it");
        assert_eq!(share(1, "b", &now), 1);
    }
}
