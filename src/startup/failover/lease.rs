//! The lease a failover group is led by.
//!
//! A cluster of one group ([`Lease::Own`]) holds the node's leases itself,
//! one partition of them. A cluster split into shards ([`Lease::Shard`])
//! has one group per shard on every node, and one set of leases per node,
//! kept by a [`Keeper`]: the leases' fair share (`shards / nodes`,
//! rounded up or down: [`crate::cluster::Leases`]) is counted over the
//! node's shards together, so a node that joins takes a share and one
//! that dies leaves its shards to the others.
//!
//! A node above its share after another joined gives the surplus up: a
//! shard it only follows at once (the keeper releases it), a shard it
//! leads once that group has stopped leading and handed its store back
//! ([`Lease::step_down_asked`], [`Lease::give_up`]), so that the other
//! node finds the lease free and the store in the stream.

use crate::cluster::{LeaseError, Leases};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The lease of one failover group.
pub(super) enum Lease {
    /// The only group: the node's leases are its own (`None` once given up).
    Own(Option<Box<Leases>>),
    /// Shard `index` of several, whose leases a node's keeper holds.
    Shard { keeper: Arc<Keeper>, index: u32 },
}

impl Lease {
    /// Renews the lease (tries for it, if free): the keeper of shards does
    /// that on its own, so a shard's only reports how the last round went.
    pub async fn tick(&mut self) -> Result<(), LeaseError> {
        match self {
            Lease::Own(Some(leases)) => leases.tick().await.map(|_| ()),
            Lease::Own(None) => Ok(()),
            Lease::Shard { keeper, .. } => match keeper.held().failed {
                Some(why) => Err(LeaseError(why)),
                None => Ok(()),
            },
        }
    }

    /// Whether this node holds the lease.
    pub fn holds(&self) -> bool {
        match self {
            Lease::Own(leases) => leases.as_ref().is_some_and(|l| l.held().next().is_some()),
            Lease::Shard { keeper, index } => keeper.held().until.contains_key(index),
        }
    }

    /// Until when no other node can lead (now, if this one holds no
    /// lease): see [`Leases::held_until`].
    pub fn held_until(&self) -> Instant {
        let until = match self {
            Lease::Own(leases) => {
                leases.as_ref().and_then(|l| l.held().filter_map(|p| l.held_until(p)).min())
            }
            Lease::Shard { keeper, index } => keeper.held().until.get(index).copied(),
        };
        until.unwrap_or_else(Instant::now)
    }

    /// The address the node that holds the lease announced, if one does.
    pub async fn holder_address(&self) -> Result<Option<String>, LeaseError> {
        match self {
            Lease::Own(Some(leases)) => leases.holder_address(0).await,
            Lease::Own(None) => Ok(None),
            Lease::Shard { keeper, index } => Ok(keeper.held().holders.get(index).cloned()),
        }
    }

    /// Says this group is about to claim the lead: true if it still holds
    /// the lease, which from then on is not given up as surplus until the
    /// group stepped down.
    pub fn about_to_lead(&self) -> bool {
        match self {
            Lease::Own(_) => self.holds(),
            Lease::Shard { keeper, index } => keeper.about_to_lead(*index),
        }
    }

    /// Says the claim that [`Lease::about_to_lead`] announced did not
    /// happen.
    pub fn not_leading(&self) {
        if let Lease::Shard { keeper, index } = self {
            keeper.marks().leading.remove(index);
        }
    }

    /// Whether the node holds more than its share and this group, leading,
    /// should stop and hand its store back.
    pub fn step_down_asked(&self) -> bool {
        match self {
            Lease::Own(_) => false,
            Lease::Shard { keeper, index } => keeper.held().surplus.contains(index),
        }
    }

    /// Gives the lease up (the node's membership with it, for the only
    /// group), for another node to take at once.
    pub async fn give_up(&mut self) -> Result<(), LeaseError> {
        match self {
            Lease::Own(leases) => match leases.take() {
                Some(leases) => (*leases).leave().await,
                None => Ok(()),
            },
            Lease::Shard { keeper, index } => {
                if let Err(e) = keeper.release(*index).await {
                    // Another node took it meanwhile, or will once it runs out.
                    tracing::warn!(shard = *index, error = %e,
                        "failover: the shard's lease could not be given up; it runs out within stream.lease_ms");
                }
                Ok(())
            }
        }
    }
}

/// What the keeper's last round found.
#[derive(Debug, Clone, Default)]
pub(super) struct Held {
    /// The shards held, each with the moment until which no other node can
    /// hold it.
    pub until: BTreeMap<u32, Instant>,
    /// Shards led here above the node's share: to be stepped down from.
    pub surplus: BTreeSet<u32>,
    /// The address of each shard's holder, where one does.
    pub holders: BTreeMap<u32, String>,
    /// Why the last round failed, if it did.
    pub failed: Option<String>,
}

/// A node's leases on its shards, renewed every third of their life.
pub(super) struct Keeper {
    leases: tokio::sync::Mutex<Leases>,
    shards: u32,
    held: Mutex<Held>,
    marks: Mutex<Marks>,
}

/// What the groups and the keeper's rounds tell each other, each decision
/// under this one lock (never held across a call to the servers): a
/// round gives up only a shard no group leads, and a group claims only a
/// shard no round is giving up.
#[derive(Default)]
struct Marks {
    /// The shards whose group leads, or is about to.
    leading: BTreeSet<u32>,
    /// The shards a round is giving up.
    releasing: BTreeSet<u32>,
}

impl Marks {
    /// A round would give `shard` up: true if it may (and it is marked as
    /// being given up), false if a group leads it (and must step down).
    fn giving_up(&mut self, shard: u32) -> bool {
        if self.leading.contains(&shard) {
            return false;
        }
        self.releasing.insert(shard);
        true
    }

    /// A group would claim `shard`, whose lease is `held`: true if it may
    /// (and it is marked as leading).
    fn claiming(&mut self, shard: u32, held: bool) -> bool {
        let may = held && !self.releasing.contains(&shard);
        if may {
            self.leading.insert(shard);
        }
        may
    }
}

impl Keeper {
    pub fn new(leases: Leases, shards: u32) -> Arc<Keeper> {
        Arc::new(Keeper {
            leases: tokio::sync::Mutex::new(leases),
            shards,
            held: Mutex::new(Held::default()),
            marks: Mutex::new(Marks::default()),
        })
    }

    pub fn held(&self) -> Held {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Rounds, every `period`, until `stop` is set.
    pub async fn run(self: Arc<Self>, period: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(period);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        tokio::pin!(stopped);
        loop {
            tokio::select! {
                _ = tick.tick() => self.round().await,
                _ = &mut stopped => return,
            }
        }
    }

    /// Renews, takes free shards up to the share, gives up surplus shards
    /// that are only followed, and finds every shard's holder.
    async fn round(&self) {
        let mut leases = self.leases.lock().await;
        let found = async {
            leases.tick().await?;
            let surplus = leases.surplus().await?;
            let mut asked = BTreeSet::new();
            for shard in surplus {
                if !self.marks().giving_up(shard) {
                    asked.insert(shard);
                    continue;
                }
                let released = leases.release(shard).await;
                self.marks().releasing.remove(&shard);
                released?;
            }
            let mut holders = BTreeMap::new();
            for shard in 0..self.shards {
                if let Some(address) = leases.holder_address(shard).await? {
                    holders.insert(shard, address);
                }
            }
            Ok::<_, LeaseError>((asked, holders))
        }
        .await;
        let until = leases.held().filter_map(|p| leases.held_until(p).map(|t| (p, t))).collect();
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.until = until;
        match found {
            Ok((surplus, holders)) => *held = Held { surplus, holders, failed: None, ..held.clone() },
            Err(e) => held.failed = Some(e.0),
        }
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `shard` as leading if its lease is held and no round is
    /// giving it up; from then on no round gives it up as surplus.
    fn about_to_lead(&self, shard: u32) -> bool {
        let held = self.held().until.contains_key(&shard);
        self.marks().claiming(shard, held)
    }

    /// Gives shard's lease up at once.
    async fn release(&self, shard: u32) -> Result<(), LeaseError> {
        let mut leases = self.leases.lock().await;
        self.marks().leading.remove(&shard);
        let released = leases.release(shard).await;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.until.remove(&shard);
        held.surplus.remove(&shard);
        released
    }

    /// Gives every lease up and stops counting as a member.
    pub async fn leave(&self) -> Result<(), LeaseError> {
        let mut leases = self.leases.lock().await;
        self.marks().leading.clear();
        leases.quit().await
    }
}

#[cfg(test)]
mod tests {
    use super::Marks;

    #[test]
    fn a_shard_being_given_up_is_not_claimed() {
        let mut marks = Marks::default();
        assert!(marks.giving_up(2));
        assert!(!marks.claiming(2, true), "a round is giving it up");
        marks.releasing.remove(&2);
        assert!(marks.claiming(2, true), "once given up and taken again");
    }

    #[test]
    fn a_shard_being_claimed_is_stepped_down_from_not_given_up() {
        let mut marks = Marks::default();
        assert!(marks.claiming(1, true));
        assert!(!marks.giving_up(1), "its group leads: it steps down first");
        assert!(!marks.releasing.contains(&1));
        assert!(!marks.claiming(3, false), "a lease not held is not claimed");
    }
}
