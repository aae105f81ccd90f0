//! `fulfil seed`: a stopped node's store (a single node's, or a failover
//! node's whose cluster is gone) made the first store of a new, empty
//! failover cluster (`cluster::replica::Seed`).
//!
//! The order of the steps is what keeps it safe:
//! 1. the store is checked (`fulfil check`): a damaged one is not spread;
//! 2. the cluster must be empty: no copy in the stream, no snapshot;
//! 3. a claim is appended, fenced on an empty stream, so that a node
//!    started meanwhile, which would claim the same empty stream, and
//!    this command cannot both go on;
//! 4. the store is stored as the snapshot at the claim's end, and the
//!    stream trimmed of all of the claim but its last message, so that
//!    every node that joins on an empty directory starts from the
//!    snapshot;
//! 5. only then is the directory marked as a follower's at that
//!    snapshot: a store marked before the cluster held it would lead with
//!    data no other node could get.

use super::snapshots::Snapshots;
use super::{nats, node_name, FailoverError};
use crate::cluster::partition::PartitionWriter;
use crate::cluster::replica::{self, claim, Names, Seed};
use crate::config::{Settings, StreamMode};
use std::path::Path;
use std::time::Duration;

/// What was seeded: the stream sequence the snapshot stands at.
#[derive(Debug)]
pub struct Seeded {
    pub seq: u64,
}

/// Seeds the cluster `settings.stream` names with the store in `dir`.
pub async fn seed(settings: &Settings, dir: &Path) -> Result<Seeded, FailoverError> {
    if settings.stream.mode != StreamMode::Failover {
        return Err(FailoverError::Refused(
            "seed makes a store the first of a failover cluster: set stream.mode = \"failover\" and the \
             stream's url and name"
                .into(),
        ));
    }
    if settings.stream.shards > 1 {
        // One store holds every product; each shard must hold only its
        // own, so seeding would first split the store by shard.
        return Err(FailoverError::Refused(format!(
            "seed cannot split one store over {} shards yet: seed a cluster of stream.shards = 1, or start \
             the sharded cluster empty",
            settings.stream.shards
        )));
    }
    // Opened first to refuse a directory with no node's store (the check
    // would make one there), and again after the check, which needs the
    // directory to itself.
    drop(opened(settings, dir).await?);
    let report = crate::node::check::check(dir).map_err(|source| store_error(dir, source))?;
    if !report.is_ok() {
        return Err(FailoverError::Refused(format!(
            "the store in {} has problems (`fulfil check` lists them): {}",
            dir.display(),
            report.problems.join("; ")
        )));
    }
    let store = opened(settings, dir).await?;
    if let Some(at) = store.was_at() {
        tracing::info!(data = %dir.display(), was_at = at,
            "seed: the store was a failover node's, at this copy of its former cluster; that cluster's facts are forgotten");
    }
    let (client, js) = crate::stream::connect(&settings.stream).await.map_err(nats)?;
    replica::agree_on_shards(&js, &settings.stream).await.map_err(|e| match e {
        crate::stream::ConnectError::Settings(why) => FailoverError::Refused(why),
        e => nats(e),
    })?;
    replica::ensure_stream(&js, &settings.stream).await.map_err(nats)?;
    let names = Names::of(&settings.stream);
    let node = node_name(settings);
    // The snapshot is written out in the directory seeded.
    let mut here = settings.clone();
    here.store.path = dir.to_owned();
    let lease = Duration::from_millis(settings.stream.lease_ms);
    let snapshots = Snapshots::new(client.clone(), names.clone(), node.clone(), here, lease);
    let mut writer =
        PartitionWriter::take_over(&client, &names.stream, &names.subject).await.map_err(nats)?;
    let newest = snapshots.newest().await?;
    if writer.last() > 0 || newest > 0 {
        return Err(FailoverError::Refused(format!(
            "the cluster already holds a store (stream {} ends at copy {}, newest snapshot at {newest}): \
             seed only a new cluster; its nodes start from what it holds{}",
            names.stream,
            writer.last(),
            match newest {
                0 => " (an earlier seed that stopped half-way said so, and what to delete)",
                _ => "",
            }
        )));
    }
    // Fenced on an empty stream: refused if a node claimed it meanwhile.
    let seq = writer.append(claim(&format!("seed:{node}"))).await.map_err(|e| {
        FailoverError::Refused(format!(
            "a node took the cluster while it was seeded ({e}); nothing was seeded"
        ))
    })?;
    let stored = async {
        let snapshot = store.snapshot(seq).map_err(|source| store_error(dir, source))?;
        snapshots.store_snapshot(snapshot, || Ok(0), "seed").await?;
        // All but the claim's last message, which the next append is
        // fenced on (a stream with no message would say it ends at 0).
        let stream = js.get_stream(&names.stream).await.map_err(nats)?;
        stream.purge().sequence(seq).await.map_err(nats)
    };
    if let Err(e) = stored.await {
        return Err(FailoverError::Refused(format!(
            "{e}; the seed stopped half-way, after claiming the stream: start no node on this cluster; delete \
             the stream {} and the object store {} (`nats stream rm`, `nats object del`), then seed again",
            names.stream, names.snapshots
        )));
    }
    let marked = tokio::task::spawn_blocking(move || store.seeded(seq)).await;
    marked.map_err(std::io::Error::other)?.map_err(|source| store_error(dir, source))?;
    tracing::info!(seq, stream = %names.stream, data = %dir.display(),
        "seed: the store is the cluster's first snapshot; start failover nodes on this directory or on empty ones");
    Ok(Seeded { seq })
}

/// The store in `dir` to seed; refused if there is none, or it is a
/// failover node's not exact yet.
async fn opened(settings: &Settings, dir: &Path) -> Result<Seed, FailoverError> {
    let (owned, cache) = (dir.to_owned(), settings.store.cache_mb * 1024 * 1024);
    let opened = tokio::task::spawn_blocking(move || Seed::open(&owned, cache)).await;
    opened.map_err(std::io::Error::other)?.map_err(|source| match source {
        crate::store::StoreError::Unavailable(why) => FailoverError::Refused(why),
        source => store_error(dir, source),
    })
}

fn store_error(dir: &Path, source: crate::store::StoreError) -> FailoverError {
    FailoverError::Store { path: dir.display().to_string(), source }
}
