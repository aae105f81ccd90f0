//! A store made the first store of a new failover cluster (`fulfil
//! seed`): it becomes the cluster's first snapshot, and its directory a
//! follower's at that snapshot. The store is a single node's (embedded or
//! export mode), so that no order it holds is left behind when a user
//! outgrows one node; or a failover node's whose cluster is gone (a
//! backup restored, a stopped node's directory), so that a cluster whose
//! NATS servers lost their data can be started again from it.

use super::{Snapshot, APPLIED, ID_FLOOR, LED, META, REPLICA, SETTLED};
use crate::store::backend::{Backend, Change, SledBackend};
use crate::store::StoreError;
use std::path::Path;
use std::sync::Arc;

/// A stopped node's store, being seeded into a cluster.
pub struct Seed {
    local: Arc<SledBackend>,
    /// The copy of its former cluster a failover node's store had applied.
    was_at: Option<u64>,
}

impl Seed {
    /// Opens the store in `dir`, changing nothing: refused if there is no
    /// node's store there (no marker: an empty or new directory is not
    /// made into one), or it is a failover node's that is not exact yet
    /// (filled from a leader's snapshot, short of the copies that make it
    /// so).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Seed, StoreError> {
        let refused = |why: String| StoreError::Unavailable(format!("{}: {why}", dir.display()));
        if crate::store::marker::read(dir)?.is_none() {
            return Err(refused("no node's store is there (no marker); nothing to seed".into()));
        }
        let local = crate::store::sled_in(dir, cache_bytes)?;
        let was_at = local.get(REPLICA, APPLIED)?.map(|b| super::u64_of(&b));
        let settled = local.get(REPLICA, SETTLED)?.map(|b| super::u64_of(&b)).unwrap_or(0);
        if let Some(applied) = was_at.filter(|applied| *applied < settled) {
            return Err(refused(format!(
                "the store was filled from a snapshot and had applied its cluster's copies up to {applied}, short \
                 of {settled}, where it is exact: seed from another node's store or a backup"
            )));
        }
        Ok(Seed { local: Arc::new(local), was_at })
    }

    /// For a failover node's store, the copy of its former cluster it had
    /// applied.
    pub fn was_at(&self) -> Option<u64> {
        self.was_at
    }

    /// The store as the snapshot at stream sequence `seq` (nothing else
    /// writes it: exact). Its ids first go on past sled's own counter
    /// (which is per directory): the cluster's leader hands them out from
    /// the floor recorded in the store, so none is handed out twice.
    pub fn snapshot(&self, seq: u64) -> Result<Snapshot, StoreError> {
        let next = self.local.generate_id()?;
        let floor = self.local.get(META, ID_FLOOR)?.map(|b| super::u64_of(&b)).unwrap_or(0);
        if next > floor {
            let next = next.to_be_bytes();
            self.local.commit(&[Change { table: META, key: ID_FLOOR, value: Some(&next) }], &[])?;
            self.local.flush()?;
        }
        Snapshot::of(self.local.clone(), seq, 0)
    }

    /// Marks the store as a follower's that applied the new cluster's
    /// stream up to `seq` (forgetting a former cluster's facts: that it
    /// led, where it was exact): once the snapshot at `seq` is stored, a
    /// failover node starts on it as on any follower's.
    pub fn seeded(self, seq: u64) -> Result<(), StoreError> {
        let position = seq.to_be_bytes();
        let changes = [
            Change { table: REPLICA, key: APPLIED, value: Some(&position) },
            Change { table: REPLICA, key: LED, value: None },
            Change { table: REPLICA, key: SETTLED, value: None },
        ];
        self.local.commit(&changes, &[])?;
        self.local.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::replica::Replica;

    const CACHE: u64 = 1 << 20;

    fn refusal(dir: &Path) -> String {
        match Seed::open(dir, CACHE) {
            Err(StoreError::Unavailable(why)) => why,
            Err(e) => panic!("not a refusal: {e}"),
            Ok(_) => panic!("seeded"),
        }
    }

    #[test]
    fn a_seeded_store_hands_out_no_id_it_handed_out_before_and_follows_from_its_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path(), CACHE).unwrap();
        let used: Vec<u64> = (0..5).map(|_| store.generate_id().unwrap()).collect();
        drop(store);
        let seed = Seed::open(dir.path(), CACHE).unwrap();
        let snapshot = seed.snapshot(64).unwrap();
        assert_eq!(snapshot.seq, 64);
        let floor = seed.local.get(META, ID_FLOOR).unwrap().map(|b| super::super::u64_of(&b)).unwrap();
        assert!(used.iter().all(|id| *id < floor), "{used:?}, floor {floor}");
        drop(snapshot);
        seed.seeded(64).unwrap();
        assert_eq!(Replica::open(dir.path(), CACHE).unwrap().applied(), 64);
    }

    /// A failover node's store whose cluster is gone seeds a new one: the
    /// former cluster's facts go (a store marked as having led would be
    /// emptied at its next start); one not exact yet is refused.
    #[test]
    fn a_former_leaders_store_seeds_a_new_cluster_and_one_not_exact_yet_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(crate::store::Store::open(dir.path(), CACHE).unwrap());
        let set = |key: &[u8], value: u64| {
            let local = crate::store::sled_in(dir.path(), CACHE).unwrap();
            local.put(REPLICA, key, &value.to_be_bytes()).unwrap();
            local.flush().unwrap();
        };
        set(APPLIED, 500);
        set(SETTLED, 700);
        set(LED, 1);
        assert!(refusal(dir.path()).contains("short of 700"));

        set(APPLIED, 900);
        let seed = Seed::open(dir.path(), CACHE).unwrap();
        assert_eq!(seed.was_at(), Some(900));
        drop(seed.snapshot(64).unwrap());
        seed.seeded(64).unwrap();
        let local = crate::store::sled_in(dir.path(), CACHE).unwrap();
        assert_eq!((local.get(REPLICA, LED).unwrap(), local.get(REPLICA, SETTLED).unwrap()), (None, None));
        drop(local);
        let replica = Replica::open(dir.path(), CACHE).unwrap();
        assert_eq!(replica.applied(), 64, "not emptied: it no longer says it led");
    }

    #[test]
    fn a_directory_with_no_store_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        assert!(refusal(dir.path()).contains("no node's store"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
