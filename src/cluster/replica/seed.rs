//! A store made outside failover mode (a single node's, embedded or
//! export mode) made the first store of a new failover cluster
//! (`fulfil seed`): it becomes the cluster's first snapshot, and its
//! directory a follower's at that snapshot, so that no order it holds is
//! left behind when a user outgrows one node.

use super::{Snapshot, APPLIED, ID_FLOOR, META, REPLICA};
use crate::store::backend::{Backend, Change, SledBackend};
use crate::store::StoreError;
use std::path::Path;
use std::sync::Arc;

/// A stopped node's store, being seeded into a cluster.
pub struct Seed {
    local: Arc<SledBackend>,
}

impl Seed {
    /// Opens the store in `dir`, changing nothing: refused if there is no
    /// node's store there (no marker: an empty or new directory is not
    /// made into one), or it is a failover node's already.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Seed, StoreError> {
        let refused = |why: &str| StoreError::Unavailable(format!("{}: {why}", dir.display()));
        if crate::store::marker::read(dir)?.is_none() {
            return Err(refused("no node's store is there (no marker); nothing to seed"));
        }
        let local = crate::store::sled_in(dir, cache_bytes)?;
        if local.get(REPLICA, APPLIED)?.is_some() {
            return Err(refused("the store is a failover node's already; nothing to seed"));
        }
        Ok(Seed { local: Arc::new(local) })
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

    /// Marks the store as a follower's that applied the stream up to
    /// `seq`: once the snapshot at `seq` is stored, a failover node starts
    /// on it as on any follower's.
    pub fn seeded(self, seq: u64) -> Result<(), StoreError> {
        self.local.put(REPLICA, APPLIED, &seq.to_be_bytes())?;
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
        assert!(refusal(dir.path()).contains("a failover node's already"));
        assert_eq!(Replica::open(dir.path(), CACHE).unwrap().applied(), 64);
    }

    #[test]
    fn a_directory_with_no_store_is_refused_and_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        assert!(refusal(dir.path()).contains("no node's store"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
