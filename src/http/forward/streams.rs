//! Live streams on a failover follower (`GET /events`), followed from its
//! own store as the stream's copies are applied: the connections clients
//! keep open spread over every node instead of all ending on the leader.
//!
//! One [`Tail`] of the notification service's rule runs while any stream
//! is open, and publishes what each applied copy tells to every stream.
//! It starts when the first stream opens, under the lock its steps take,
//! before the stream reads its backlog: so nothing falls between the
//! backlog (read from the store with the same rule, after subscribing)
//! and what the tail tells next, and what both hold is sent once
//! (`actors::notification::follow`).
//!
//! A stream that falls too far behind ends, and so do all when the store
//! cannot be read (refilled from a snapshot, or this node leads now) or
//! the follower stops: clients reconnect with `Last-Event-ID`, as they do
//! to the leader.

use crate::actors::notification::{Published, Tail};
use crate::cluster::ReplicaReads;
use crate::domain::Workflows;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Notifications kept for a slow stream before it ends.
const BUFFER: usize = 4096;
/// Events the tail reads at a time.
const PAGE: usize = 512;

pub struct Live {
    reads: ReplicaReads,
    workflows: Arc<Workflows>,
    /// The tail, while a stream is open, and where it publishes.
    tail: Mutex<(Option<Tail>, broadcast::Sender<Published>)>,
}

impl Live {
    /// Follows `reads` as copies are applied, for as long as the process
    /// runs (a follower that leads stops serving these streams).
    pub fn start(reads: ReplicaReads, workflows: Arc<Workflows>) -> Arc<Live> {
        let live = Arc::new(Live { reads, workflows, tail: Mutex::new(stopped()) });
        tokio::spawn(run(live.clone()));
        live
    }

    /// What the tail tells from now on, starting it if none runs; `None`
    /// when this store cannot be followed (the leader serves the stream).
    pub async fn subscribe(self: &Arc<Self>) -> Option<broadcast::Receiver<Published>> {
        let live = self.clone();
        let subscribed = tokio::task::spawn_blocking(move || {
            let mut guard = live.tail.lock().unwrap_or_else(|p| p.into_inner());
            let (tail, sender) = &mut *guard;
            if tail.is_none() {
                match live.reads.read(|store| Tail::start(store, live.workflows.clone())) {
                    Some(Ok(started)) => *tail = started,
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "failover: this follower cannot follow its store for a live stream; the leader serves it")
                    }
                    None => {}
                }
            }
            tail.is_some().then(|| sender.subscribe())
        });
        subscribed.await.ok().flatten()
    }

    /// Ends every stream (their clients reconnect) and stops the tail.
    pub fn end(&self) {
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = stopped();
    }

    /// Runs the tail over what was applied since its last step, and
    /// publishes what it tells; whether the log goes on past what it read.
    /// With no stream open, the tail stops.
    fn step(&self) -> bool {
        let mut guard = self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let (tail, sender) = &mut *guard;
        if sender.receiver_count() == 0 {
            *tail = None;
            return false;
        }
        let Some(running) = tail.as_mut() else { return false };
        match self.reads.read(|store| running.next(store, PAGE)) {
            Some(Ok((told, more))) => {
                for published in told {
                    let _ = sender.send(published);
                }
                more
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "failover: this follower's live streams cannot read its store; they end, and start again when asked");
                // A new sender: the streams of the old one end.
                *guard = stopped();
                false
            }
            // Being refilled from a snapshot, or leading now: the streams
            // end (rather than fall silent), and their clients reconnect.
            None => {
                *guard = stopped();
                false
            }
        }
    }
}

async fn run(live: Arc<Live>) {
    let mut applied = live.reads.watch();
    loop {
        let stepping = live.clone();
        let more = tokio::task::spawn_blocking(move || stepping.step()).await.unwrap_or(false);
        if !more && applied.changed().await.is_err() {
            return;
        }
    }
}

/// No tail, and a sender no stream follows yet (the old one's end).
fn stopped() -> (Option<Tail>, broadcast::Sender<Published>) {
    (None, broadcast::channel(BUFFER).0)
}
