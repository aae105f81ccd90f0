//! Snapshots in failover mode: a follower writes its store to the
//! snapshots' bucket every `stream.snapshot_every` copies and trims the
//! stream of copies (the leader writes its own once two rounds passed
//! without one: [`LeaderSnapshots`]); a follower whose next copy is gone
//! starts from the newest.

use super::{data_dir, nats, store_error, Copies, FailoverError, Member};
use crate::cluster::replica::{self, Replica, ReplicatedBackend, Snapshot};
use crate::config::Settings;
use crate::store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The snapshot's name in its bucket (each replaces the one before).
const SNAPSHOT: &str = "store";
/// How often a leader looks at where the newest snapshot stands.
pub(super) const SNAPSHOTS_LOOKED_AT: Duration = Duration::from_secs(5);

/// A number a snapshot's metadata gives (0 if none): `seq`, the copy it
/// stands at, or `settled`, from which a store filled from it is exact.
fn mark(info: &async_nats::jetstream::object_store::ObjectInfo, name: &str) -> u64 {
    info.metadata.get(name).and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn io_store(e: std::io::Error) -> StoreError {
    StoreError::Engine(Arc::new(e))
}

/// What writes and reads the snapshots: cloned into the task that writes
/// the leader's own, which runs beside the lease's renewals.
#[derive(Clone)]
pub(super) struct Snapshots {
    client: async_nats::Client,
    names: replica::Names,
    node: String,
    settings: Settings,
    lease: Duration,
}

impl Snapshots {
    pub(super) fn new(
        client: async_nats::Client,
        names: replica::Names,
        node: String,
        settings: Settings,
        lease: Duration,
    ) -> Snapshots {
        Snapshots { client, names, node, settings, lease }
    }

    /// The snapshots' bucket, made if missing with the stream's copies.
    async fn bucket(&self) -> Result<async_nats::jetstream::object_store::ObjectStore, FailoverError> {
        let js = async_nats::jetstream::new(self.client.clone());
        if let Ok(bucket) = js.get_object_store(&self.names.snapshots).await {
            return Ok(bucket);
        }
        let config = async_nats::jetstream::object_store::Config {
            bucket: self.names.snapshots.clone(),
            num_replicas: self.settings.stream.replicas,
            ..Default::default()
        };
        js.create_object_store(config).await.map_err(nats)
    }

    /// The stream sequence of the newest snapshot (0: none).
    pub(super) async fn newest(&self) -> Result<u64, FailoverError> {
        match self.bucket().await?.info(SNAPSHOT).await {
            Ok(info) => Ok(mark(&info, "seq")),
            Err(e) if e.kind() == async_nats::jetstream::object_store::InfoErrorKind::NotFound => Ok(0),
            Err(e) => Err(nats(e)),
        }
    }

    /// Writes the follower's store as it stands (it applies nothing
    /// meanwhile) to the snapshots' bucket.
    pub(super) async fn snapshot(&self, replica: &Replica) -> Result<(), FailoverError> {
        let snapshot = replica.snapshot().map_err(|e| store_error(&self.settings, e))?;
        self.store_snapshot(snapshot, || Ok(0), "follower").await
    }

    /// The leader's own snapshot, for when no follower writes them: its
    /// store as it stands while it works on (see [`Snapshot`]), stored only
    /// once the stream holds every commit it may hold.
    pub(super) async fn leader_snapshot(self, backend: Arc<ReplicatedBackend>) -> Result<(), FailoverError> {
        let snapshot = backend.snapshot().map_err(|e| store_error(&self.settings, e))?;
        if !self.writes_snapshot(snapshot.seq / self.settings.stream.snapshot_every.max(1)).await {
            return Ok(());
        }
        let lease = self.lease;
        self.store_snapshot(snapshot, move || backend.copied_within(lease), "leader").await
    }

    /// Writes `snapshot` out, then (once `settled` says from which copy a
    /// store filled from it is exact) to the snapshots' bucket, unless a
    /// newer one is there; then trims the stream of copies to
    /// `snapshot_every` copies before it: a follower further behind, or a
    /// new one, starts from the snapshot.
    pub(super) async fn store_snapshot(
        &self,
        snapshot: Snapshot,
        settled: impl FnOnce() -> Result<u64, StoreError> + Send + 'static,
        by: &str,
    ) -> Result<(), FailoverError> {
        let (seq, held) = (snapshot.seq, snapshot.settled);
        let file = data_dir(&self.settings).join(replica::DOWNLOAD);
        let path = file.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            snapshot.write(&mut out).map_err(std::io::Error::other)?;
            std::io::Write::flush(&mut out)?;
            settled().map_err(std::io::Error::other)
        });
        let settled = match written.await.map_err(std::io::Error::other).and_then(|w| w) {
            Ok(settled) => settled.max(held),
            Err(e) => {
                let _ = tokio::fs::remove_file(&file).await;
                return Err(e.into());
            }
        };
        // Two writers of one round, or a follower's slow one: the older
        // must not replace the newer, whose trim it does not cover.
        if self.newest().await? >= seq {
            let _ = tokio::fs::remove_file(&file).await;
            return Ok(());
        }
        let meta = async_nats::jetstream::object_store::ObjectMetadata {
            name: SNAPSHOT.into(),
            metadata: [("seq".to_owned(), seq.to_string()), ("settled".to_owned(), settled.to_string())]
                .into(),
            ..Default::default()
        };
        let mut input = tokio::fs::File::open(&file).await?;
        let put = self.bucket().await?.put(meta, &mut input).await.map_err(nats);
        let _ = tokio::fs::remove_file(&file).await;
        let info = put?;
        let keep_from = (seq + 1).saturating_sub(self.settings.stream.snapshot_every).max(1);
        let js = async_nats::jetstream::new(self.client.clone());
        let stream = js.get_stream(&self.names.stream).await.map_err(nats)?;
        stream.purge().sequence(keep_from).await.map_err(nats)?;
        tracing::info!(
            seq,
            bytes = info.size,
            kept_from = keep_from,
            settled,
            by,
            "failover: wrote a snapshot of the store"
        );
        Ok(())
    }

    /// Whether this node writes the snapshot due at `round` (the copies
    /// applied over `stream.snapshot_every`): the first to make the
    /// round's key in the lease's bucket does, and the others, passing the
    /// same round a moment later, leave it to that one. The key goes with
    /// the bucket's time to live; a follower further behind finds the
    /// round's snapshot written. If the servers cannot answer, this one
    /// writes: two snapshots cost only the work.
    pub(super) async fn writes_snapshot(&self, round: u64) -> bool {
        if self.newest().await.is_ok_and(|newest| newest >= round * self.settings.stream.snapshot_every) {
            return false;
        }
        let js = async_nats::jetstream::new(self.client.clone());
        let Ok(bucket) = js.get_key_value(&self.names.bucket).await else { return true };
        match bucket.create(format!("{}.{round}", self.names.rounds), self.node.clone().into()).await {
            Ok(_) => true,
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => false,
            Err(_) => true,
        }
    }
}

/// The leader's own snapshots: followers write them at each round and
/// are left the first; once two rounds passed without one (a leader
/// alone, or followers all far behind) the leader writes one, in a task
/// beside the lease's renewals, or the stream of copies would grow until
/// the servers' disks are full.
#[derive(Default)]
pub(super) struct LeaderSnapshots {
    writing: Option<JoinHandle<Result<(), FailoverError>>>,
    /// The leader wrote, or tried to write, one.
    tried: bool,
    /// It said it could not keep up (until it could again).
    warned: bool,
    /// Snapshots that failed in a row, and when to try again: a full disk
    /// or an unreachable bucket is not hammered with whole-store copies.
    failed: u32,
    retry_at: Option<tokio::time::Instant>,
}

/// The longest a leader waits to try its snapshot again.
const RETRY_AT_MOST: Duration = Duration::from_secs(300);

/// How long a leader waits after `failed` snapshots in a row: twice as
/// long each time, from two looks, up to [`RETRY_AT_MOST`].
fn retry_in(failed: u32) -> Duration {
    SNAPSHOTS_LOOKED_AT.saturating_mul(2u32.saturating_pow(failed.min(16))).min(RETRY_AT_MOST)
}

impl LeaderSnapshots {
    /// Every [`SNAPSHOTS_LOOKED_AT`]: starts the leader's snapshot when due,
    /// and warns once if its own did not keep the stream within three
    /// rounds.
    pub(super) async fn look(
        &mut self,
        member: &Member,
        node: &crate::node::Node,
        backend: &Arc<ReplicatedBackend>,
    ) {
        let Some(since) = member.copies_since_snapshot(node).await else { return };
        let every = member.settings.stream.snapshot_every;
        if every == 0 || self.writing.is_some() {
            return;
        }
        let late = since > 3 * every;
        if late && self.tried && !self.warned {
            tracing::warn!(copies = since, snapshot_every = every,
                "failover: more than three rounds of stream.snapshot_every copies past the newest snapshot, though \
                 the leader writes its own: the stream of copies grows until the servers' disks are full; see the \
                 errors above");
        }
        self.warned = late;
        let waiting = self.retry_at.is_some_and(|at| tokio::time::Instant::now() < at);
        if since > 2 * every && !waiting {
            self.writing = Some(tokio::spawn(member.snapshots.clone().leader_snapshot(backend.clone())));
        }
    }

    /// The snapshot being written, until it is done.
    pub(super) async fn written(&mut self) {
        let Some(writing) = self.writing.as_mut() else { return std::future::pending().await };
        let written = writing.await;
        (self.writing, self.tried) = (None, true);
        match written.map_err(|e| FailoverError::Io(std::io::Error::other(e))).and_then(|w| w) {
            Ok(()) => (self.failed, self.retry_at) = (0, None),
            Err(e) => {
                self.failed += 1;
                let wait = retry_in(self.failed);
                self.retry_at = Some(tokio::time::Instant::now() + wait);
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "failover: the leader's snapshot failed");
            }
        }
    }

    /// Stops writing: the node no longer leads.
    pub(super) fn stop(&mut self) {
        if let Some(writing) = self.writing.take() {
            writing.abort();
        }
    }
}

impl Member {
    /// On the leader, every [`SNAPSHOTS_LOOKED_AT`]: how many copies the
    /// stream holds past the newest snapshot (`None`: the servers could
    /// not say in time), also in its metrics.
    async fn copies_since_snapshot(&self, node: &crate::node::Node) -> Option<u64> {
        let since = async {
            Ok::<_, FailoverError>(self.stream_end().await?.saturating_sub(self.snapshots.newest().await?))
        };
        // Briefly: the lease's renewals wait in the same loop.
        let since = match tokio::time::timeout(self.lease_ms / 4, since).await {
            Ok(Ok(since)) => since,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "failover: cannot tell where the newest snapshot stands");
                return None;
            }
            Err(_) => {
                tracing::debug!("failover: no answer in time on where the newest snapshot stands");
                return None;
            }
        };
        node.metrics().set_copies_since_snapshot(since);
        Some(since)
    }

    /// Where the newest snapshot stands, and whether this replica must
    /// start from it: the stream no longer holds its next copy.
    async fn behind(&self, replica: &Replica) -> Result<(u64, bool), FailoverError> {
        let js = async_nats::jetstream::new(self.client.clone());
        let mut stream = js.get_stream(&self.names.stream).await.map_err(nats)?;
        let first = stream.info().await.map_err(nats)?.state.first_sequence;
        let newest = self.snapshots.newest().await?;
        if replica.applied() + 1 >= first {
            return Ok((newest, false));
        }
        if newest + 1 < first {
            return Err(FailoverError::Nats(format!(
                "the stream of copies starts at {first}, after the newest snapshot ({newest}) and this \
                 node's store ({}): nothing can fill the gap yet",
                replica.applied()
            )));
        }
        Ok((newest, true))
    }

    /// The replica, filled from the newest snapshot if the stream no
    /// longer holds its next copy, and where the newest snapshot stands.
    /// If the servers cannot tell yet, the replica as it is (a gap in the
    /// copies brings it back here).
    pub(super) async fn restored(
        &self,
        replica: Replica,
        copies: &mut Copies,
    ) -> Result<(Replica, u64), FailoverError> {
        match self.behind(&replica).await {
            Ok((newest, false)) => Ok((replica, newest)),
            Ok((_, true)) => {
                let replica = self.refilled(replica).await?;
                let at = replica.applied();
                Ok((replica, at))
            }
            Err(e) => {
                tracing::warn!(error = %e, "failover: cannot tell yet whether the stream holds this store's next copy");
                copies.failed();
                let applied = replica.applied();
                Ok((replica, applied))
            }
        }
    }

    /// The replica, emptied and filled from the newest snapshot.
    async fn refilled(&self, replica: Replica) -> Result<Replica, FailoverError> {
        let file = data_dir(&self.settings).join(replica::DOWNLOAD);
        let mut object = self.snapshots.bucket().await?.get(SNAPSHOT).await.map_err(nats)?;
        // Where it stands, from the object read (a newer one may have
        // replaced the one asked about).
        let (seq, settled) = (mark(&object.info, "seq"), mark(&object.info, "settled"));
        let mut out = tokio::fs::File::create(&file).await?;
        tokio::io::copy(&mut object, &mut out).await?;
        out.sync_all().await?;
        let (dir, cache) = (self.settings.store.path.clone(), self.settings.store.cache_mb * 1024 * 1024);
        let path = file.clone();
        let refilled = tokio::task::spawn_blocking(move || {
            let mut input = std::io::BufReader::new(std::fs::File::open(&path).map_err(io_store)?);
            replica.refill(&dir, cache, &mut input, seq, settled)
        });
        let replica =
            refilled.await.map_err(std::io::Error::other)?.map_err(|e| store_error(&self.settings, e))?;
        let _ = tokio::fs::remove_file(&file).await;
        tracing::info!(
            seq,
            settled,
            "failover: the stream no longer holds this store's next copy; filled it from the newest snapshot"
        );
        Ok(replica)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_waits_twice_as_long_after_each_failed_snapshot_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=8).map(|n| retry_in(n).as_secs()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(retry_in(u32::MAX), RETRY_AT_MOST);
    }
}
