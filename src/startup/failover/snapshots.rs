//! Snapshots in failover mode: a follower writes its store to the
//! snapshots' bucket every `stream.snapshot_every` copies and trims the
//! stream of copies; a follower whose next copy is gone starts from the
//! newest.

use super::{data_dir, nats, store_error, Copies, FailoverError, Member};
use crate::cluster::replica::{self, Replica};
use crate::store::StoreError;
use std::sync::Arc;

/// The snapshot's name in its bucket (each replaces the one before).
const SNAPSHOT: &str = "store";
/// How often a leader looks at where the newest snapshot stands.
pub(super) const SNAPSHOTS_LOOKED_AT: std::time::Duration = std::time::Duration::from_secs(5);

fn io_store(e: std::io::Error) -> StoreError {
    StoreError::Engine(Arc::new(e))
}

impl Member {
    /// The snapshots' bucket, made if missing with the stream's copies.
    async fn snapshots(&self) -> Result<async_nats::jetstream::object_store::ObjectStore, FailoverError> {
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
    async fn newest_snapshot(&self) -> Result<u64, FailoverError> {
        match self.snapshots().await?.info(SNAPSHOT).await {
            Ok(info) => Ok(info.metadata.get("seq").and_then(|s| s.parse().ok()).unwrap_or(0)),
            Err(e) if e.kind() == async_nats::jetstream::object_store::InfoErrorKind::NotFound => Ok(0),
            Err(e) => Err(nats(e)),
        }
    }

    /// On the leader, every [`SNAPSHOTS_LOOKED_AT`]: how many copies the
    /// stream holds past the newest snapshot, in its metrics, and a
    /// warning once that passes three rounds (`warned` says it was given):
    /// followers write the snapshots, and with none (or none that keeps
    /// up) the stream of copies grows until the servers' disks are full.
    pub(super) async fn look_at_snapshots(&self, node: &crate::node::Node, warned: &mut bool) {
        let since = async {
            Ok::<_, FailoverError>(self.stream_end().await?.saturating_sub(self.newest_snapshot().await?))
        };
        // Briefly: the lease's renewals wait in the same loop.
        let since = match tokio::time::timeout(self.lease / 4, since).await {
            Ok(Ok(since)) => since,
            Ok(Err(e)) => {
                return tracing::debug!(error = %e, "failover: cannot tell where the newest snapshot stands")
            }
            Err(_) => {
                return tracing::debug!("failover: no answer in time on where the newest snapshot stands")
            }
        };
        node.metrics().set_copies_since_snapshot(since);
        let every = self.settings.stream.snapshot_every;
        let late = every > 0 && since > 3 * every;
        if late && !*warned {
            tracing::warn!(copies = since, snapshot_every = every,
                "failover: no snapshot for more than three rounds of stream.snapshot_every copies: followers write \
                 them, and with none running the stream of copies grows until the servers' disks are full; \
                 start a follower");
        }
        *warned = late;
    }

    /// Writes the replica's store as it stands to the snapshots' bucket,
    /// then trims the stream of copies to `snapshot_every` copies before
    /// it: a follower further behind, or a new one, starts from the
    /// snapshot.
    pub(super) async fn snapshot(&self, replica: &Replica) -> Result<(), FailoverError> {
        let snapshot = replica.snapshot();
        let seq = snapshot.seq;
        let file = data_dir(&self.settings).join(replica::DOWNLOAD);
        let path = file.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            snapshot.write(&mut out).map_err(std::io::Error::other)?;
            std::io::Write::flush(&mut out)?;
            Ok::<_, std::io::Error>(())
        });
        written.await.map_err(std::io::Error::other)??;
        let meta = async_nats::jetstream::object_store::ObjectMetadata {
            name: SNAPSHOT.into(),
            metadata: [("seq".to_owned(), seq.to_string())].into(),
            ..Default::default()
        };
        let mut input = tokio::fs::File::open(&file).await?;
        let put = self.snapshots().await?.put(meta, &mut input).await.map_err(nats);
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
            "failover: wrote a snapshot of the store"
        );
        Ok(())
    }

    /// Whether this follower writes the snapshot due at `round` (the
    /// copies applied over `stream.snapshot_every`): the first follower to
    /// make the round's key in the lease's bucket does, and the others,
    /// passing the same round a moment later, leave it to that one. The
    /// key goes with the bucket's time to live; a follower further behind
    /// finds the round's snapshot written. If the servers cannot answer,
    /// this one writes: two snapshots cost only the work.
    pub(super) async fn writes_snapshot(&self, round: u64) -> bool {
        if self
            .newest_snapshot()
            .await
            .is_ok_and(|newest| newest >= round * self.settings.stream.snapshot_every)
        {
            return false;
        }
        let js = async_nats::jetstream::new(self.client.clone());
        let Ok(bucket) = js.get_key_value(&self.names.bucket).await else { return true };
        match bucket.create(format!("snapshot.{round}"), self.node.clone().into()).await {
            Ok(_) => true,
            Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => false,
            Err(_) => true,
        }
    }

    /// Where the newest snapshot stands, and whether this replica must
    /// start from it: the stream no longer holds its next copy.
    async fn behind(&self, replica: &Replica) -> Result<(u64, bool), FailoverError> {
        let js = async_nats::jetstream::new(self.client.clone());
        let mut stream = js.get_stream(&self.names.stream).await.map_err(nats)?;
        let first = stream.info().await.map_err(nats)?.state.first_sequence;
        let newest = self.newest_snapshot().await?;
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
            Ok((newest, true)) => Ok((self.refilled(replica, newest).await?, newest)),
            Err(e) => {
                tracing::warn!(error = %e, "failover: cannot tell yet whether the stream holds this store's next copy");
                copies.failed();
                let applied = replica.applied();
                Ok((replica, applied))
            }
        }
    }

    /// The replica, emptied and filled from the newest snapshot (at `newest`).
    async fn refilled(&self, replica: Replica, newest: u64) -> Result<Replica, FailoverError> {
        let file = data_dir(&self.settings).join(replica::DOWNLOAD);
        let mut object = self.snapshots().await?.get(SNAPSHOT).await.map_err(nats)?;
        let mut out = tokio::fs::File::create(&file).await?;
        tokio::io::copy(&mut object, &mut out).await?;
        out.sync_all().await?;
        let (dir, cache) = (self.settings.store.path.clone(), self.settings.store.cache_mb * 1024 * 1024);
        let path = file.clone();
        let refilled = tokio::task::spawn_blocking(move || {
            let mut input = std::io::BufReader::new(std::fs::File::open(&path).map_err(io_store)?);
            replica.refill(&dir, cache, &mut input, newest)
        });
        let replica =
            refilled.await.map_err(std::io::Error::other)?.map_err(|e| store_error(&self.settings, e))?;
        let _ = tokio::fs::remove_file(&file).await;
        tracing::info!(
            seq = newest,
            "failover: the stream no longer holds this store's next copy; filled it from the newest snapshot"
        );
        Ok(replica)
    }
}
