//! Snapshots of a replica's store: written by a follower at one copy,
//! read back into an emptied store by a follower whose next copy the
//! stream no longer holds.

use super::{damaged, empty, Commit, Replica, APPLIED, REPLICA, SETTLED};
use crate::domain::Seq;
use crate::store::backend::{Backend, Change, SledBackend};
use crate::store::StoreError;
use std::path::Path;
use std::sync::Arc;

/// Where a follower keeps a snapshot it downloads, inside its data
/// directory (which may be the only place it may write), spared when the
/// directory is emptied.
pub const DOWNLOAD: &str = "snapshot.download";
/// Entries or events in one record of a snapshot.
const SNAPSHOT_CHUNK: usize = 10_000;

/// A replica's store as it stood at one stream sequence.
///
/// A follower's is exact: it applies nothing while it writes one. A
/// leader's store changes while it is written
/// ([`ReplicatedBackend::snapshot`](super::ReplicatedBackend::snapshot)),
/// so it may also hold some of the commits after `seq`, in part; the
/// copies after `seq` set each key they touch and each event they append
/// exactly, so a store filled from it and then given those copies (as a
/// refilled follower is) ends exactly where the leader stood; until it
/// has applied up to `settled`, it answers no read ([`super::ReplicaReads`]).
pub struct Snapshot {
    local: Arc<SledBackend>,
    /// The stream sequence the store stands at: every copy up to it is in
    /// the snapshot.
    pub seq: u64,
    /// The last event written out: every event of the copies up to `seq`
    /// (a leader's log grows while it is written).
    log_to: Seq,
    /// The copy from which a store filled from it is exact: a follower's
    /// own (0 once past), or, for a leader's, the stream's end once it
    /// held every commit the snapshot may hold in part.
    pub settled: u64,
}

impl Snapshot {
    /// Writes every table (but the replica's own facts) and the log to
    /// `out`: records of a length (u32, little-endian) and one commit's
    /// bincode, as [`Replica::refill`] reads them.
    pub fn write(&self, out: &mut impl std::io::Write) -> Result<(), StoreError> {
        for table in self.local.table_names()? {
            if table == REPLICA {
                continue;
            }
            let mut entries = self.local.scan(&table, b"")?;
            loop {
                let chunk: Vec<_> = entries.by_ref().take(SNAPSHOT_CHUNK).collect::<Result<_, _>>()?;
                if chunk.is_empty() {
                    break;
                }
                let changes =
                    chunk.into_iter().map(|(key, value)| (table.clone(), key, Some(value))).collect();
                write_record(out, &Commit { changes, events: Vec::new() })?;
            }
        }
        let mut next = 1;
        while next <= self.log_to {
            let room = SNAPSHOT_CHUNK.min((self.log_to - next + 1) as usize);
            let events = self.local.read_log(next, room)?;
            if events.is_empty() {
                break;
            }
            let events: Vec<(Seq, Vec<u8>)> = (next..).zip(events).collect();
            next += events.len() as Seq;
            write_record(out, &Commit { changes: Vec::new(), events })?;
        }
        Ok(())
    }

    pub(super) fn of(local: Arc<SledBackend>, seq: u64, settled: u64) -> Result<Snapshot, StoreError> {
        let log_to = local.last_seq()?;
        Ok(Snapshot { local, seq, log_to, settled })
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Engine(Arc::new(e))
}

fn write_record(out: &mut impl std::io::Write, commit: &Commit) -> Result<(), StoreError> {
    let bytes = bincode::serde::encode_to_vec(commit, bincode::config::standard())
        .map_err(|e| StoreError::Codec(crate::store::CodecError::Encode(e.to_string())))?;
    out.write_all(&(bytes.len() as u32).to_le_bytes()).map_err(io)?;
    out.write_all(&bytes).map_err(io)
}

/// The next record of a snapshot; `None` at its end.
fn read_record(input: &mut impl std::io::Read) -> Result<Option<Commit>, StoreError> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let mut bytes = vec![0u8; u32::from_le_bytes(len) as usize];
    input.read_exact(&mut bytes).map_err(io)?;
    let (commit, _) = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
        .map_err(|_| damaged("a snapshot record cannot be read".into()))?;
    Ok(Some(commit))
}

impl Replica {
    /// The store as it stands now, for [`Snapshot::write`]; apply nothing
    /// until it is written.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        Snapshot::of(self.local.clone(), self.applied, self.reads.settled())
    }

    /// Empties this replica and fills it from `input`, a snapshot taken at
    /// stream sequence `seq` and exact from copy `settled`: for a follower
    /// whose next copy the stream no longer holds.
    pub fn refill(
        self,
        dir: &Path,
        cache_bytes: u64,
        input: &mut impl std::io::Read,
        seq: u64,
        settled: u64,
    ) -> Result<Replica, StoreError> {
        // sled's lock on the directory goes with the last handle: the
        // follower's reads of it end first.
        let reads = self.reads.clone();
        reads.close();
        drop(self);
        empty(dir).map_err(io)?;
        let local = crate::store::sled_in(dir, cache_bytes)?;
        while let Some(commit) = read_record(input)? {
            let changes: Vec<Change<'_>> = commit
                .changes
                .iter()
                .map(|(table, key, value)| Change { table, key, value: value.as_deref() })
                .collect();
            local.commit(&changes, &commit.events)?;
        }
        local.put(REPLICA, APPLIED, &seq.to_be_bytes())?;
        local.put(REPLICA, SETTLED, &settled.to_be_bytes())?;
        local.flush()?;
        let local = Arc::new(local);
        reads.reopen(&local, seq, settled);
        Ok(Replica { local, reads, applied: seq, seen: seq, parts: Vec::new(), next_part: 1 })
    }
}
