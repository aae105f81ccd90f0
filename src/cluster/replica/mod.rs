//! One store kept by several nodes through JetStream (`stream.mode =
//! "failover"`): the leader's every commit is copied to a stream, and each
//! follower applies the copies to its own store, in order, so that it can
//! take over with everything the leader acknowledged.
//!
//! # Why the store's commits, not only its events
//!
//! A node's state is more than its log: each service's offset, its
//! records written behind, the payments' deferred retries, the timers,
//! the products' stock. A follower that copies commits has all of it,
//! exactly as the leader had, and taking over is the same start a node
//! makes after `kill -9` on its own store: the path every crash test
//! already proves. (Rebuilding each service's state from events alone is
//! the other way, and is not there yet for payments and stock:
//! `docs/multi-node.md`.)
//!
//! # The rules that keep it safe
//!
//! - **Nothing is acknowledged before it is in the stream.**
//!   [`ReplicatedBackend::flush`], which every acknowledgement waits for,
//!   returns only once the stream has stored every commit made before it.
//! - **One writer.** Each append is fenced on the subject's last message
//!   ([`PartitionWriter`]), and a new leader first appends a *claim*, long
//!   enough that none of the old leader's copies in flight can line up
//!   behind it ([`claim`]): from then on every append of the old leader is
//!   refused, its flushes fail, it acknowledges nothing more, and it
//!   stops.
//! - **A store that led is not trusted after.** It may hold commits that
//!   never reached the stream. Unless it handed over cleanly
//!   ([`ReplicatedBackend::hand_back`]), it is emptied at the next start
//!   and filled again from the stream.
//!
//! # Snapshots
//!
//! A follower writes its store as it stands at one copy ([`Snapshot`]);
//! a leader with no follower that keeps up writes its own while it works
//! on ([`ReplicatedBackend::snapshot`]), which may hold some commits
//! after its copy, so a store filled from it reads nothing until it has
//! applied those again. One whose next copy was trimmed away fills its
//! store from the newest ([`Replica::refill`]); `startup::failover`
//! stores them and trims the stream.
//!
//! # The format of the copies
//!
//! A message on `<stream.subject>-store` is a frame: a tag byte (0: part of
//! a group of commits, 1: a claim), the part's number and the number of
//! parts (u32, little-endian each), then the bytes. A group, bincode of
//! the commits one flush covered, is cut into parts of at most
//! [`PART_BYTES`] so that no message passes the server's payload limit,
//! and a follower applies it once its last part is in. Private to fulfil
//! nodes (it holds every table); consumers in other languages read the
//! event stream (`docs/events.md`).

mod leader;
mod reads;
mod seed;
mod snapshot;

pub use leader::ReplicatedBackend;
pub use reads::{ReplicaReads, StreamEnd};
pub use seed::Seed;
pub use snapshot::{Snapshot, DOWNLOAD};

use super::partition::PartitionWriter;
use crate::config::StreamSettings;
use crate::domain::Seq;
use crate::store::backend::{Backend, Change, SledBackend};
use crate::store::StoreError;
use crate::stream::ConnectError;
use async_nats::jetstream;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// The most bytes of a group one message holds (the server's payload
/// limit is 1 MiB by default).
pub const PART_BYTES: usize = 256 * 1024;
/// The follower's own facts, never copied: where it stands in the stream,
/// and whether it led.
const REPLICA: &str = "replica";
const APPLIED: &[u8] = b"applied";
const LED: &[u8] = b"led";
/// The copy from which a store filled from a leader's snapshot is exact.
const SETTLED: &[u8] = b"settled";
/// Ids are handed out in blocks recorded in the copied store, so that a
/// new leader never hands out an id the old one did.
const META: &str = "meta";
const ID_FLOOR: &[u8] = b"id_floor";
const ID_BLOCK: u64 = 1024;

const GROUP: u8 = 0;
const CLAIM: u8 = 1;

/// One commit as copied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Commit {
    changes: Vec<(String, Vec<u8>, Option<Vec<u8>>)>,
    events: Vec<(Seq, Vec<u8>)>,
}

impl Commit {
    fn of(changes: &[Change<'_>], events: &[(Seq, Vec<u8>)]) -> Commit {
        let changes = changes
            .iter()
            .map(|c| (c.table.to_owned(), c.key.to_vec(), c.value.map(<[u8]>::to_vec)))
            .collect();
        Commit { changes, events: events.to_vec() }
    }
}

fn frame(tag: u8, part: u32, parts: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + bytes.len());
    out.push(tag);
    out.extend_from_slice(&part.to_le_bytes());
    out.extend_from_slice(&parts.to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A frame taken apart: (tag, part, parts, bytes).
fn unframe(payload: &[u8]) -> Option<(u8, u32, u32, &[u8])> {
    let (&tag, rest) = payload.split_first()?;
    let part = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    let parts = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?);
    Some((tag, part, parts, &rest[8..]))
}

/// The frames of one group of commits.
fn frames(commits: &[Commit]) -> Result<Vec<Vec<u8>>, StoreError> {
    let bytes = bincode::serde::encode_to_vec(commits, bincode::config::standard())
        .map_err(|e| StoreError::Codec(crate::store::CodecError::Encode(e.to_string())))?;
    let chunks: Vec<&[u8]> = bytes.chunks(PART_BYTES).collect();
    let parts = chunks.len() as u32;
    Ok(chunks.iter().enumerate().map(|(i, c)| frame(GROUP, i as u32 + 1, parts, c)).collect())
}

/// Copies a leader sends and has not had acknowledged, at most: enough
/// to keep the server busy while the node commits on.
pub const WINDOW: usize = 64;

/// The claim a new leader appends, as one atomic batch, before it writes
/// anything: [`WINDOW`] messages.
///
/// Why so many: a leader's copies in flight are each fenced on the
/// stream's sequence it predicts for the one before. A leader paused with
/// copies in flight (or about to be sent) resumes after the claim: its
/// first is refused, but were the claim one message, the next one's
/// prediction would be the claim's own sequence, and it would be stored
/// after the claim, deposing the new leader and breaking the followers'
/// order. The old leader's predictions reach at most `WINDOW - 1` past
/// the claim's fence (its copies stored before the claim, plus a window
/// of more), so a claim of `WINDOW` messages ends past all of them, and
/// every copy the old leader sends after it is refused.
pub fn claim(node: &str) -> Vec<Vec<u8>> {
    vec![frame(CLAIM, 1, 1, node.as_bytes()); WINDOW]
}

fn u64_of(bytes: &[u8]) -> u64 {
    bytes.try_into().map(u64::from_be_bytes).unwrap_or_default()
}

fn damaged(why: String) -> StoreError {
    StoreError::Damaged(why)
}

/// A follower's store: the stream's commits applied in order.
pub struct Replica {
    local: Arc<SledBackend>,
    /// What the follower's HTTP server reads; the same across a refill.
    reads: ReplicaReads,
    /// The stream sequence of the last message applied (or skipped).
    applied: u64,
    /// The stream sequence of the last message received, perhaps a part
    /// of a group not yet whole.
    seen: u64,
    /// The parts of a group not yet whole.
    parts: Vec<u8>,
    next_part: u32,
}

impl Replica {
    /// Opens the replica in `dir`. A store that led without handing back is
    /// emptied first (it may hold commits the stream never got); a store
    /// made outside failover mode is refused (nothing in the stream holds
    /// its data).
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Replica, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Engine(Arc::new(e)))?;
        let mut local = crate::store::sled_in(dir, cache_bytes)?;
        if local.get(REPLICA, LED)?.is_some() {
            drop(local);
            tracing::warn!(data = %dir.display(),
                "this store led and did not hand over cleanly: it may hold commits the stream never got; \
                 emptying it to fill it again from the stream");
            empty(dir).map_err(|e| StoreError::Engine(Arc::new(e)))?;
            local = crate::store::sled_in(dir, cache_bytes)?;
        }
        let applied = match local.get(REPLICA, APPLIED)? {
            Some(bytes) => u64_of(&bytes),
            // Every store a node opened has an identity (`meta`); a new
            // directory has none yet.
            None if local.last_seq()? == 0 && local.scan(META, b"")?.next().is_none() => {
                local.put(REPLICA, APPLIED, &0u64.to_be_bytes())?;
                0
            }
            None => {
                return Err(damaged(format!(
                    "the store in {} was not made in failover mode, and the stream holds none of its data: \
                     start a failover node on an empty directory, or make this store a new cluster's first \
                     with `fulfil seed`",
                    dir.display()
                )))
            }
        };
        let settled = local.get(REPLICA, SETTLED)?.map(|b| u64_of(&b)).unwrap_or(0);
        let local = Arc::new(local);
        let reads = ReplicaReads::of(&local, applied, settled);
        Ok(Replica { local, reads, applied, seen: applied, parts: Vec::new(), next_part: 1 })
    }

    /// Reads of this follower's store, for its HTTP server.
    pub fn reads(&self) -> ReplicaReads {
        self.reads.clone()
    }

    /// The stream sequence of the last message applied: the next one to
    /// read follows it.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The stream sequence of the last message received.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The number of the last event in the replica's log.
    pub fn head(&self) -> Result<Seq, StoreError> {
        self.local.last_seq()
    }

    /// Applies the stream's message `seq`. Messages must come in order.
    pub fn receive(&mut self, seq: u64, payload: &[u8]) -> Result<(), StoreError> {
        let unreadable = || damaged(format!("replication message {seq} cannot be read"));
        let (tag, part, parts, bytes) = unframe(payload).ok_or_else(unreadable)?;
        self.seen = seq;
        match tag {
            CLAIM => {
                // A leader that stopped in the middle of a group: the rest
                // never comes, and none of it was acknowledged.
                self.parts.clear();
                self.next_part = 1;
                self.set_applied(seq, &[], &[])
            }
            GROUP => {
                if part == 1 {
                    self.parts.clear();
                } else if part != self.next_part {
                    return Err(unreadable());
                }
                self.parts.extend_from_slice(bytes);
                self.next_part = part + 1;
                if part < parts {
                    return Ok(());
                }
                self.next_part = 1;
                let (commits, _): (Vec<Commit>, _) =
                    bincode::serde::decode_from_slice(&self.parts, bincode::config::standard())
                        .map_err(|_| unreadable())?;
                self.parts.clear();
                self.apply(seq, commits)
            }
            _ => Err(unreadable()),
        }
    }

    /// One group, as one local commit with the replica's new position.
    fn apply(&mut self, seq: u64, commits: Vec<Commit>) -> Result<(), StoreError> {
        let events: Vec<(Seq, Vec<u8>)> = commits.iter().flat_map(|c| c.events.iter().cloned()).collect();
        let events = self.new_events(seq, events)?;
        let changes: Vec<Change<'_>> = commits
            .iter()
            .flat_map(|c| c.changes.iter())
            .map(|(table, key, value)| Change { table, key, value: value.as_deref() })
            .collect();
        self.set_applied(seq, &changes, &events)
    }

    /// The group's events this replica's log does not hold yet. They must
    /// follow its last one. A store filled from a leader's snapshot may
    /// already hold some (see [`Snapshot`]): those must be the same bytes.
    fn new_events(
        &self,
        seq: u64,
        mut events: Vec<(Seq, Vec<u8>)>,
    ) -> Result<Vec<(Seq, Vec<u8>)>, StoreError> {
        let Some(&(first, _)) = events.first() else { return Ok(events) };
        let head = self.local.last_seq()?;
        if first > head + 1 {
            return Err(damaged(format!(
                "replication message {seq} starts at event {first}, but this replica's log ends at {head}"
            )));
        }
        let held = events.iter().take_while(|(n, _)| *n <= head).count();
        if held == 0 {
            return Ok(events);
        }
        let mine = self.local.read_log(first, held)?;
        if mine.len() != held || events[..held].iter().zip(&mine).any(|((_, theirs), mine)| theirs != mine) {
            return Err(damaged(format!(
                "replication message {seq} holds events from {first} that differ from this replica's"
            )));
        }
        Ok(events.split_off(held))
    }

    fn set_applied(
        &mut self,
        seq: u64,
        changes: &[Change<'_>],
        events: &[(Seq, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let position = seq.to_be_bytes();
        let mut all = changes.to_vec();
        all.push(Change { table: REPLICA, key: APPLIED, value: Some(&position) });
        self.reads.applying(seq, || self.local.commit(&all, events))?;
        self.applied = seq;
        Ok(())
    }

    /// Becomes the leader's store: marks it as leading (durably, before
    /// anything is written), and copies every commit from now on through
    /// `writer`, which must have appended this node's claim. The returned
    /// backend's copies run on the current tokio runtime.
    pub fn lead(self, writer: PartitionWriter) -> Result<Arc<ReplicatedBackend>, StoreError> {
        // The leader's store changes without the copies' lock: no more
        // follower reads of it.
        self.reads.close();
        self.local.put(REPLICA, LED, b"1")?;
        self.local.flush()?;
        let floor = self.local.get(META, ID_FLOOR)?.map(|b| u64_of(&b)).unwrap_or(1).max(1);
        Ok(ReplicatedBackend::start(self.local, writer, floor))
    }
}

/// Removes what `dir` holds, not `dir` itself (it may be a mount point),
/// nor a snapshot being downloaded into it.
fn empty(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.file_name().is_some_and(|n| n == DOWNLOAD) {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// What failover mode names after `[stream]`: the stream of the store's
/// copies, its one subject, and the bucket of the leader's lease.
#[derive(Debug, Clone)]
pub struct Names {
    pub stream: String,
    pub subject: String,
    pub bucket: String,
    /// The object store of the followers' snapshots.
    pub snapshots: String,
    /// The keys in `bucket` that say who writes a round's snapshot:
    /// `<rounds>.<round>`.
    pub rounds: String,
}

impl Names {
    /// The names of a failover group: the cluster's, or a shard's (its
    /// settings renamed by [`StreamSettings::of_shard`]), whose leases
    /// are in the cluster's one bucket, where the nodes count each other.
    pub fn of(s: &StreamSettings) -> Names {
        let (bucket, rounds) = match &s.shard {
            Some(shard) => (format!("{}_LEADER", shard.cluster), format!("snapshot-{}", shard.index)),
            None => (format!("{}_LEADER", s.name), "snapshot".to_owned()),
        };
        Names {
            stream: format!("{}_STORE", s.name),
            // Not under `<subject>.*`, which the event stream takes.
            subject: format!("{}-store", s.subject),
            bucket,
            snapshots: format!("{}_SNAPSHOTS", s.name),
            rounds,
        }
    }
}

/// Records how many shards the cluster `s` names is made of (in a bucket
/// of its own, `<name>_CLUSTER`, kept for good), or checks a node's
/// setting against the record: every order's id names its shard by that
/// number, so a node that counts otherwise is refused
/// ([`ConnectError::Settings`]) rather than send orders to the wrong
/// shard. A cluster made before the record was kept is recognised by its
/// streams of copies.
pub async fn agree_on_shards(js: &jetstream::Context, s: &StreamSettings) -> Result<(), ConnectError> {
    let failed = |e: &dyn std::fmt::Display| ConnectError::Nats(format!("bucket {}_CLUSTER: {e}", s.name));
    let bucket = match js.get_key_value(format!("{}_CLUSTER", s.name)).await {
        Ok(bucket) => bucket,
        Err(_) => {
            let config = jetstream::kv::Config {
                bucket: format!("{}_CLUSTER", s.name),
                history: 1,
                num_replicas: s.replicas,
                ..Default::default()
            };
            js.create_key_value(config).await.map_err(|e| failed(&e))?
        }
    };
    let shards = s.shards.max(1);
    let refused = |made: u32| {
        ConnectError::Settings(format!(
            "the cluster {} is made of {made} shard(s), and this node has stream.shards = {shards}: every \
             order's id names its shard by that number, so start every node of it with stream.shards = {made} \
             (or name another cluster with stream.name)",
            s.name
        ))
    };
    if let Some(made) = bucket.get("shards").await.map_err(|e| failed(&e))? {
        let made: u32 = String::from_utf8_lossy(&made).parse().unwrap_or(0);
        return if made == shards { Ok(()) } else { Err(refused(made)) };
    }
    // Made before the record: a cluster of one group has `<name>_STORE`,
    // one of shards `<name>_0_STORE`.
    let (one, sharded) = (format!("{}_STORE", s.name), format!("{}_0_STORE", s.name));
    if shards > 1 && js.get_stream(&one).await.is_ok() {
        return Err(refused(1));
    }
    if shards == 1 && js.get_stream(&sharded).await.is_ok() {
        return Err(ConnectError::Settings(format!(
            "the cluster {} is split into shards, and this node has stream.shards = 1: start it with the \
             cluster's stream.shards",
            s.name
        )));
    }
    match bucket.create("shards", shards.to_string().into()).await {
        Ok(_) => Ok(()),
        // Another node recorded it meanwhile: check against that.
        Err(e) if e.kind() == jetstream::kv::CreateErrorKind::AlreadyExists => {
            Box::pin(agree_on_shards(js, s)).await
        }
        Err(e) => Err(failed(&e)),
    }
}

/// The key the nodes of cluster `s.name` prove to each other with that a
/// request was routed by one of them (a shard's router sends a request
/// on to the node that leads its shard): made by the first node that asks
/// (32 bytes from the OS, in hex), kept in `<name>_CLUSTER`. Whoever may
/// read that bucket may already run the cluster.
pub async fn hop_key(js: &jetstream::Context, s: &StreamSettings) -> Result<String, ConnectError> {
    let failed = |e: &dyn std::fmt::Display| ConnectError::Nats(format!("bucket {}_CLUSTER: {e}", s.name));
    let bucket = js.get_key_value(format!("{}_CLUSTER", s.name)).await.map_err(|e| failed(&e))?;
    if let Some(key) = bucket.get("hop").await.map_err(|e| failed(&e))? {
        return Ok(String::from_utf8_lossy(&key).into_owned());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| ConnectError::Nats(format!("no random bytes from the OS: {e}")))?;
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    match bucket.create("hop", key.clone().into()).await {
        Ok(_) => Ok(key),
        // Another node made it meanwhile: theirs.
        Err(e) if e.kind() == jetstream::kv::CreateErrorKind::AlreadyExists => Box::pin(hop_key(js, s)).await,
        Err(e) => Err(failed(&e)),
    }
}

/// The stream of the store's copies, created if missing (kept whole: a
/// new follower fills its store from the first message), with the
/// copies `[stream] replicas` asks for.
///
/// A stream of that name made otherwise is refused for good
/// ([`ConnectError::Settings`]); the servers' failures may pass.
pub async fn ensure_stream(
    js: &jetstream::Context,
    s: &StreamSettings,
) -> Result<jetstream::stream::Stream, ConnectError> {
    let names = Names::of(s);
    let config = jetstream::stream::Config {
        name: names.stream.clone(),
        subjects: vec![names.subject.clone()],
        num_replicas: s.replicas,
        storage: jetstream::stream::StorageType::File,
        allow_atomic_publish: true,
        ..Default::default()
    };
    let failed = |e: &dyn std::fmt::Display| ConnectError::Nats(format!("stream {}: {e}", names.stream));
    let mut stream = js.get_or_create_stream(config).await.map_err(|e| failed(&e))?;
    let info = stream.info().await.map_err(|e| failed(&e))?;
    if info.config.subjects != [names.subject.clone()] || !info.config.allow_atomic_publish {
        return Err(ConnectError::Settings(format!(
            "stream {} exists, but not as failover mode makes it (subjects {:?}, atomic batches {}): \
             give [stream] name another name",
            names.stream, info.config.subjects, info.config.allow_atomic_publish
        )));
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_cut_into_parts_reads_back_whole() {
        let big = vec![7u8; PART_BYTES * 2 + 10];
        let commits = vec![
            Commit { changes: vec![("orders".into(), b"k".to_vec(), Some(big))], events: vec![(1, vec![1])] },
            Commit { changes: vec![("orders".into(), b"j".to_vec(), None)], events: vec![] },
        ];
        let frames = frames(&commits).unwrap();
        assert_eq!(frames.len(), 3);
        let mut bytes = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let (tag, part, parts, chunk) = unframe(f).unwrap();
            assert_eq!((tag, part, parts), (GROUP, i as u32 + 1, 3));
            assert!(chunk.len() <= PART_BYTES);
            bytes.extend_from_slice(chunk);
        }
        let (back, _): (Vec<Commit>, _) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, commits);
    }
}
