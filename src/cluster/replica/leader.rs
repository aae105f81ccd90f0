//! The leader's side: its store, whose every commit is copied to the
//! stream before a flush returns ([`ReplicatedBackend`]), and the task
//! that sends the copies.

use super::{frames, Commit, Snapshot, APPLIED, ID_BLOCK, ID_FLOOR, LED, META, REPLICA, WINDOW};
use crate::cluster::partition::{AppendError, PartitionWriter, MAX_BATCH};
use crate::domain::Seq;
use crate::store::backend::{Backend, Change, Entries, SledBackend};
use crate::store::StoreError;
use async_nats::jetstream::context::{PublishError, PublishErrorKind};
use async_nats::jetstream::publish::PublishAck;
use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// Commits made and not yet in the stream.
#[derive(Default)]
struct QueueState {
    pending: Vec<Commit>,
    /// Commits made so far, and how many of them the stream holds.
    queued: u64,
    acked: u64,
    /// Why copying stopped for good: the node no longer leads.
    failed: Option<String>,
    /// The stream sequence of the last message appended.
    last: u64,
}

struct Queue {
    state: Mutex<QueueState>,
    acked: Condvar,
    work: Notify,
    deposed: watch::Sender<Option<String>>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, why: String) {
        tracing::error!("{why}");
        self.lock().failed = Some(why.clone());
        self.acked.notify_all();
        self.deposed.send_replace(Some(why));
    }
}

/// A copy in flight: its acknowledgement, the sequence it must get, and
/// the commits it covers.
type InFlight = (Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>, u64, u64);

/// Sends each batch of pending commits as one group, until a failure.
/// A group in one message is sent at once, fenced on the one before it,
/// without waiting for the acknowledgements of those in flight (so a
/// flush waits for its own copy, not for a queue of round trips); a group
/// in parts goes as one atomic batch once those in flight are stored.
async fn publish(queue: Arc<Queue>, mut writer: PartitionWriter) {
    let mut last = writer.last();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    loop {
        if in_flight.len() < WINDOW {
            let (commits, upto) = {
                let mut state = queue.lock();
                if state.failed.is_some() {
                    return;
                }
                (std::mem::take(&mut state.pending), state.queued)
            };
            if !commits.is_empty() {
                let sent = send(&mut writer, &mut last, &mut in_flight, &queue, &commits, upto).await;
                if let Err(why) = sent {
                    return queue.fail(why);
                }
                continue;
            }
        }
        let room = in_flight.len() < WINDOW;
        let acked = match in_flight.front_mut() {
            Some((ack, _, _)) => tokio::select! {
                result = ack => Some(result),
                _ = queue.work.notified(), if room => None,
            },
            None => {
                queue.work.notified().await;
                None
            }
        };
        if let Some(result) = acked {
            let (_, expected, upto) = in_flight.pop_front().expect("an acknowledgement came for it");
            if let Err(why) = stored(&queue, result, expected, upto) {
                return queue.fail(why);
            }
        }
    }
}

/// Sends one batch of commits as a group: at once if it is one message,
/// else as an atomic batch after everything in flight.
async fn send(
    writer: &mut PartitionWriter,
    last: &mut u64,
    in_flight: &mut VecDeque<InFlight>,
    queue: &Queue,
    commits: &[Commit],
    upto: u64,
) -> Result<(), String> {
    let mut frames = frames(commits).map_err(|e| e.to_string())?;
    if frames.len() == 1 {
        let ack = writer.send(*last, frames.remove(0)).await.map_err(|e| refused(&e))?;
        *last += 1;
        in_flight.push_back((Box::pin(ack.into_future()), *last, upto));
        return Ok(());
    }
    while let Some((ack, expected, covered)) = in_flight.pop_front() {
        stored(queue, ack.await, expected, covered)?;
    }
    writer.set_last(*last);
    *last = append(writer, frames).await?;
    let mut state = queue.lock();
    (state.acked, state.last) = (upto, *last);
    drop(state);
    queue.acked.notify_all();
    Ok(())
}

/// A copy's acknowledgement: it must be stored where it was fenced to go.
fn stored(
    queue: &Queue,
    result: Result<PublishAck, PublishError>,
    expected: u64,
    upto: u64,
) -> Result<(), String> {
    match result {
        Ok(ack) if ack.sequence == expected => {
            let mut state = queue.lock();
            (state.acked, state.last) = (upto, expected);
            drop(state);
            queue.acked.notify_all();
            Ok(())
        }
        Ok(ack) => Err(format!(
            "a copy of the store was stored as message {}, not {expected}; this node stops leading",
            ack.sequence
        )),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(format!(
            "another node leads now (a copy was fenced off after message {}); this one stops",
            expected - 1
        )),
        Err(e) => Err(format!("the store's copy in the stream failed ({e}); this node stops leading")),
    }
}

fn refused(e: &AppendError) -> String {
    format!("the store's copy in the stream failed ({e}); this node stops leading")
}

async fn append(writer: &mut PartitionWriter, frames: Vec<Vec<u8>>) -> Result<u64, String> {
    let mut frames = frames.into_iter().peekable();
    while frames.peek().is_some() {
        let batch: Vec<Vec<u8>> = frames.by_ref().take(MAX_BATCH).collect();
        writer.append(batch).await.map_err(|e| match e {
            AppendError::Fenced { .. } => format!("another node leads now ({e}); this one stops"),
            e => refused(&e),
        })?;
    }
    Ok(writer.last())
}

/// The store is no longer used (the node stopped leading): its copying
/// task, waiting for work that will not come, ends. Each stint as a
/// shard's leader would otherwise leave one behind.
impl Drop for ReplicatedBackend {
    fn drop(&mut self) {
        self.queue.lock().failed.get_or_insert_with(|| "stopped leading".to_owned());
        self.queue.work.notify_one();
    }
}

/// Ids handed out from the block `next..limit`.
struct Ids {
    next: u64,
    limit: u64,
}

/// The leader's store: its own sled store, each commit also copied to the
/// stream, and durable only once copied.
pub struct ReplicatedBackend {
    local: Arc<SledBackend>,
    queue: Arc<Queue>,
    ids: Mutex<Ids>,
}

impl ReplicatedBackend {
    /// The leader's store over `local`, copying each commit through
    /// `writer` (which appended this node's claim) from a task on the
    /// current tokio runtime; ids are handed out from `floor`.
    pub(super) fn start(
        local: Arc<SledBackend>,
        writer: PartitionWriter,
        floor: u64,
    ) -> Arc<ReplicatedBackend> {
        let (deposed, _) = watch::channel(None);
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState { last: writer.last(), ..QueueState::default() }),
            acked: Condvar::new(),
            work: Notify::new(),
            deposed,
        });
        tokio::spawn(publish(queue.clone(), writer));
        Arc::new(ReplicatedBackend { local, queue, ids: Mutex::new(Ids { next: floor, limit: floor }) })
    }

    /// Says why this node stopped leading, once it has.
    pub fn deposed(&self) -> watch::Receiver<Option<String>> {
        self.queue.deposed.subscribe()
    }

    /// After the node stopped and its store flushed: marks the store as a
    /// replica at the stream's end, so that the next start follows from
    /// there rather than emptying it. Does nothing if copying failed.
    pub fn hand_back(&self) -> Result<(), StoreError> {
        self.flush()?;
        let state = self.queue.lock();
        if state.failed.is_some() || !state.pending.is_empty() {
            return Ok(());
        }
        let position = state.last.to_be_bytes();
        let changes = [
            Change { table: REPLICA, key: APPLIED, value: Some(&position) },
            Change { table: REPLICA, key: LED, value: None },
        ];
        // Not copied: the replica's own facts.
        self.local.commit(&changes, &[])?;
        self.local.flush()
    }

    /// The store as it stands, to be written out while the node works on
    /// (see [`Snapshot`]): it stands at the last copy the stream holds, so
    /// every commit up to that one is in it, whole. Before it is stored
    /// anywhere, wait until [`copied_within`](Self::copied_within): it may hold commits
    /// made since, and a new follower must not start from one the stream
    /// never gets.
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        // Under the queue's lock: no commit is half made.
        let state = self.queue.lock();
        Self::failed(&state)?;
        Snapshot::of(self.local.clone(), state.last, 0)
    }

    /// Waits until the stream holds every commit made so far, for at most
    /// `limit` (a process that stops does not wait on a copy that never
    /// goes); the stream's last copy then. An error once this node no
    /// longer leads.
    pub fn copied_within(&self, limit: Duration) -> Result<u64, StoreError> {
        self.copied(Some(Instant::now() + limit))
    }

    fn copied(&self, deadline: Option<Instant>) -> Result<u64, StoreError> {
        let mut state = self.queue.lock();
        let target = state.queued;
        while state.acked < target {
            Self::failed(&state)?;
            state = match deadline {
                None => self.queue.acked.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now()).ok_or_else(|| {
                        StoreError::Unavailable("the stream did not take the store's copies in time".into())
                    })?;
                    self.queue.acked.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0
                }
            };
        }
        Self::failed(&state)?;
        Ok(state.last)
    }

    fn failed(state: &QueueState) -> Result<(), StoreError> {
        match &state.failed {
            Some(why) => Err(StoreError::Unavailable(why.clone())),
            None => Ok(()),
        }
    }
}

impl Backend for ReplicatedBackend {
    fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.local.get(table, key)
    }

    fn contains(&self, table: &str, key: &[u8]) -> Result<bool, StoreError> {
        self.local.contains(table, key)
    }

    fn scan(&self, table: &str, start: &[u8]) -> Result<Entries<'_>, StoreError> {
        self.local.scan(table, start)
    }

    fn commit(&self, changes: &[Change<'_>], events: &[(Seq, Vec<u8>)]) -> Result<(), StoreError> {
        // Under the queue's lock, so that commits are copied in the order
        // they were made.
        let mut state = self.queue.lock();
        Self::failed(&state)?;
        self.local.commit(changes, events)?;
        state.pending.push(Commit::of(changes, events));
        state.queued += 1;
        drop(state);
        self.queue.work.notify_one();
        Ok(())
    }

    fn read_log(&self, from: Seq, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.local.read_log(from, limit)
    }

    fn last_seq(&self) -> Result<Seq, StoreError> {
        self.local.last_seq()
    }

    /// From a block recorded in the copied store: sled's own counter is
    /// per directory, and a new leader must not repeat the old one's ids.
    fn generate_id(&self) -> Result<u64, StoreError> {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        if ids.next == ids.limit {
            let limit = ids.limit + ID_BLOCK;
            self.commit(&[Change { table: META, key: ID_FLOOR, value: Some(&limit.to_be_bytes()) }], &[])?;
            ids.limit = limit;
        }
        ids.next += 1;
        Ok(ids.next - 1)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.local.flush()?;
        self.copied(None).map(drop)
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.local.size_on_disk()
    }

    fn table_names(&self) -> Result<Vec<String>, StoreError> {
        self.local.table_names()
    }

    fn heal(&self) -> Result<bool, StoreError> {
        self.local.heal()
    }
}
