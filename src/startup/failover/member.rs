//! One node's part in a failover group: it follows the group's leader,
//! applying each copy of its commits to its own store, tries for the
//! lease, claims the lead once it holds it and has applied everything,
//! and leads until stopped, deposed, or asked to step down.

use super::lease::Lease;
use super::snapshots::{self, LeaderSnapshots, Snapshots};
use super::{nats, store_error, FailoverError};
use crate::cluster::partition::{AppendError, PartitionWriter};
use crate::cluster::replica::{claim, Names, Replica};
use crate::config::Settings;
use crate::http::forward::{FollowState, Following};
use crate::startup::Application;
use crate::store::Store;
use actix_web::dev::ServerHandle;
use futures_util::StreamExt;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One node of the cluster, before it knows its role.
pub(super) struct Member {
    pub(super) settings: Settings,
    pub(super) names: Names,
    pub(super) node: String,
    pub(super) advertise: String,
    pub(super) client: async_nats::Client,
    pub(super) lease: Lease,
    pub(super) lease_ms: Duration,
    pub(super) following: Arc<Following>,
    /// Each copy applied this much late (`faults.replica.latency_ms`).
    pub(super) apply_latency: Option<Duration>,
    pub(super) snapshots: Snapshots,
}

/// How leading ended, when it ended well.
pub(super) enum Led {
    /// Stopped by a signal: the node stops.
    Stopped,
    /// Gave its shard up to a node that joined: follows it again.
    SteppedDown,
}

impl Member {
    pub(super) fn new(
        settings: Settings,
        node: String,
        advertise: String,
        client: async_nats::Client,
        lease: Lease,
        following: Arc<Following>,
    ) -> Member {
        let names = Names::of(&settings.stream);
        let lease_ms = Duration::from_millis(settings.stream.lease_ms);
        let apply_latency = settings
            .faults
            .get(crate::service::REPLICA)
            .filter(|fault| fault.latency_ms > 0)
            .map(|fault| Duration::from_millis(fault.latency_ms));
        let snapshots =
            Snapshots::new(client.clone(), names.clone(), node.clone(), settings.clone(), lease_ms);
        Member {
            settings,
            names,
            node,
            advertise,
            client,
            lease,
            lease_ms,
            following,
            apply_latency,
            snapshots,
        }
    }

    /// Applies the stream's copies until stopped (`None`) or until this
    /// node has the lease, everything the stream holds, and its claim in.
    ///
    /// A follower outlives a NATS server that restarts or a connection
    /// that drops: it subscribes again from where its store stands, and
    /// tries for the lease again at its next renewal.
    pub(super) async fn follow(
        &mut self,
        replica: Replica,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Option<(Replica, PartitionWriter)>, FailoverError> {
        let mut copies = Copies::default();
        let (mut replica, mut snapshot_at) = self.restored(replica, &mut copies).await?;
        let mut tick = tokio::time::interval(self.lease_ms / 3);
        // The stream's end when last looked at (unknown until it answers).
        let mut end = self.stream_end().await.unwrap_or(u64::MAX);
        // Whether to try to claim: after each renewal, until a try fails.
        let mut claim_due = false;
        loop {
            let from = replica.applied() + 1;
            tokio::select! {
                copy = copies.next(self, from) => match copy {
                    // Copies this follower fell behind on were trimmed away
                    // after a snapshot: start from the snapshot.
                    Ok((seq, _)) if seq > replica.seen() + 1 => {
                        copies.failed();
                        (replica, snapshot_at) = self.restored(replica, &mut copies).await?;
                    }
                    Ok((seq, payload)) => {
                        if let Some(late) = self.apply_latency {
                            tokio::time::sleep(late).await;
                        }
                        replica.receive(seq, &payload).map_err(|source| store_error(&self.settings, source))?;
                        let every = self.settings.stream.snapshot_every;
                        // Between groups, so that the store stands at one
                        // copy; not by a node about to lead; and not while
                        // more than a round behind, catching up, when the
                        // snapshot would be stale at once (one per round
                        // of a long catch-up held its applies back).
                        let between = replica.seen() == replica.applied() && !self.lease.holds();
                        let near_the_end = end.saturating_sub(replica.applied()) < every;
                        if every > 0 && replica.applied() >= snapshot_at + every && between && near_the_end {
                            snapshot_at = replica.applied();
                            if self.snapshots.writes_snapshot(snapshot_at / every).await {
                                if let Err(e) = self.snapshots.snapshot(&replica).await {
                                    tracing::warn!(error = %e, "failover: the snapshot failed; trying again later");
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, retry_in_ms = copies.retry.as_millis() as u64,
                        "failover: following the stream failed; subscribing again"),
                },
                _ = tick.tick() => {
                    if let Err(e) = self.lease.tick().await {
                        tracing::warn!(error = %e, "failover: the lease could not be renewed");
                    }
                    claim_due = true;
                    // Under load the stream's end moves on while it is read:
                    // caught up means holding all it held a tick ago.
                    let caught_up = replica.applied() >= end;
                    let behind = if end == u64::MAX { 0 } else { end.saturating_sub(replica.applied()) };
                    end = self.stream_end().await.unwrap_or(end);
                    // This node, about to lead, forwards to no one.
                    let leader = self.lease.holder_address().await.unwrap_or_default()
                        .filter(|leader| *leader != self.advertise);
                    self.following.set(FollowState { leader, caught_up, applied: replica.applied(), behind });
                }
                _ = stop.wait_for(|s| *s) => return Ok(None),
            }
            if !(claim_due && self.lease.holds() && replica.seen() >= end) {
                continue;
            }
            if !self.lease.about_to_lead() {
                continue;
            }
            let claimed = self.claim(&replica).await;
            if !matches!(claimed, Ok(Claimed::Yes(_))) {
                self.lease.not_leading();
            }
            match claimed {
                Ok(Claimed::Yes(writer)) => {
                    // Until the leader's server takes the socket over.
                    self.following.set_local(None);
                    self.following.set(FollowState {
                        leader: None,
                        caught_up: true,
                        applied: replica.applied(),
                        behind: 0,
                    });
                    return Ok(Some((replica, *writer)));
                }
                Ok(Claimed::NotYet(last)) => end = last,
                Err(e) => {
                    tracing::warn!(error = %e, "failover: the claim failed; trying again at the next renewal");
                    claim_due = false;
                }
            }
        }
    }

    /// An ordered consumer of the stream of copies from sequence `from`.
    async fn subscribe(
        &self,
        from: u64,
    ) -> Result<async_nats::jetstream::consumer::push::Ordered, FailoverError> {
        let js = async_nats::jetstream::new(self.client.clone());
        let stream = js.get_stream(&self.names.stream).await.map_err(nats)?;
        let config = async_nats::jetstream::consumer::push::OrderedConfig {
            deliver_subject: self.client.new_inbox(),
            filter_subject: self.names.subject.clone(),
            deliver_policy: async_nats::jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ..Default::default()
        };
        let consumer = stream.create_consumer(config).await.map_err(nats)?;
        consumer.messages().await.map_err(nats)
    }

    /// The sequence of the last copy in the stream (0: none).
    pub(super) async fn stream_end(&self) -> Result<u64, FailoverError> {
        let writer = PartitionWriter::take_over(&self.client, &self.names.stream, &self.names.subject).await;
        Ok(writer.map_err(nats)?.last())
    }

    /// Appends this node's claim after the last copy, if the replica has
    /// it; from then on the old leader's appends are refused.
    async fn claim(&self, replica: &Replica) -> Result<Claimed, FailoverError> {
        let mut writer = PartitionWriter::take_over(&self.client, &self.names.stream, &self.names.subject)
            .await
            .map_err(nats)?;
        if writer.last() != replica.seen() {
            return Ok(Claimed::NotYet(writer.last()));
        }
        match writer.append(claim(&self.node)).await {
            Ok(_) => Ok(Claimed::Yes(Box::new(writer))),
            Err(AppendError::Fenced { after, .. }) => Ok(Claimed::NotYet(after + 1)),
            Err(e) => Err(nats(e)),
        }
    }

    /// Starts the node on the replica, on `listener` (taking the
    /// follower's socket over from `forwarding`, if given), and serves
    /// until stopped, deposed, or asked to step down.
    pub(super) async fn lead(
        &mut self,
        replica: Replica,
        writer: PartitionWriter,
        listener: TcpListener,
        forwarding: Option<ServerHandle>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<Led, FailoverError> {
        tracing::info!(node = %self.node, claim = writer.last(), "failover: this node leads now");
        let backend = replica.lead(writer).map_err(|source| store_error(&self.settings, source))?;
        let path = self.settings.store.path.clone();
        let shared: Arc<dyn crate::store::backend::Backend> = backend.clone();
        let opened = tokio::task::spawn_blocking(move || Store::open_on(&path, shared)).await;
        let store =
            opened.map_err(std::io::Error::other)?.map_err(|source| store_error(&self.settings, source))?;
        let clock = Arc::new(crate::clock::SystemClock);
        let app = Application::build_on(self.settings.clone(), clock, Some(store), listener).await?;
        // Both servers accept on the socket until the follower's stops.
        if let Some(forwarding) = forwarding {
            tokio::spawn(async move { forwarding.stop(true).await });
        }
        self.following.set_here(Some(format!("http://{}", app.address())));
        let (node, server) = (app.node(), app.server_handle());
        node.lead_until(self.lease.held_until());
        node.metrics().set_leading();
        let mut running = tokio::spawn(app.run_until_stopped());
        let mut deposed = backend.deposed();
        let mut tick = tokio::time::interval(self.lease_ms / 3);
        let mut renewed = Instant::now();
        let (mut stopping, mut stepping_down) = (false, false);
        let mut snapshots_due = tokio::time::interval(snapshots::SNAPSHOTS_LOOKED_AT);
        let mut own_snapshots = LeaderSnapshots::default();
        let why = loop {
            tokio::select! {
                served = &mut running => {
                    served.map_err(std::io::Error::other)??;
                    break None;
                }
                _ = deposed.changed() => break deposed.borrow().clone(),
                // A signal that came while the node was starting, before
                // the server listened for signals itself: stop as it would.
                _ = stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    self.stop_serving(&node, &server);
                }
                _ = snapshots_due.tick() => own_snapshots.look(self, &node, &backend).await,
                _ = own_snapshots.written() => {}
                // A lease that ran out and was taken again in the same tick
                // (the renewals waited on a slow server) still leads: had
                // another node claimed meanwhile, the next copy would be
                // fenced off.
                _ = tick.tick() => {
                    let ticked = self.lease.tick().await;
                    node.lead_until(self.lease.held_until());
                    match ticked {
                        Ok(_) if !self.lease.holds() => break Some("its lease ran out".to_owned()),
                        Ok(_) => renewed = Instant::now(),
                        Err(e) if renewed.elapsed() > self.lease_ms => {
                            break Some(format!("its lease could not be renewed for {:?} ({e})", self.lease_ms))
                        }
                        Err(e) => tracing::warn!(error = %e, "failover: the lease could not be renewed"),
                    }
                    if self.lease.step_down_asked() && !stopping {
                        tracing::info!(node = %self.node, "failover: another node joined; handing this group over");
                        (stopping, stepping_down) = (true, true);
                        self.stop_serving(&node, &server);
                    }
                }
            }
        };
        own_snapshots.stop();
        self.following.set_here(None);
        if let Some(why) = why {
            node.drain();
            server.stop(false).await;
            // Its services stopped and its store closed: a shard's group
            // opens (and empties) that store again to follow.
            if let Err(e) = running.await.map_err(std::io::Error::other).and_then(|served| served) {
                tracing::warn!(error = %e, "failover: the deposed node did not stop cleanly");
            }
            self.lease.not_leading();
            return Err(FailoverError::Deposed(why));
        }
        let handed =
            tokio::task::spawn_blocking(move || backend.hand_back()).await.map_err(std::io::Error::other)?;
        if let Err(e) = handed {
            tracing::warn!(error = %e, "failover: the store could not be handed back; it is emptied at the next start");
        }
        self.lease.give_up().await?;
        tracing::info!("failover: stopped leading; the lease is free");
        Ok(if stepping_down { Led::SteppedDown } else { Led::Stopped })
    }

    /// Drains the node, and stops its server once requests in flight had
    /// `shutdown.drain_ms` to finish.
    fn stop_serving(&self, node: &crate::node::Node, server: &ServerHandle) {
        let (node, server, drain) = (node.clone(), server.clone(), self.settings.shutdown.drain_ms);
        tokio::spawn(async move {
            node.drain();
            tokio::time::sleep(Duration::from_millis(drain)).await;
            server.stop(true).await;
        });
    }
}

/// The follower's subscription to the stream of copies, made again after
/// a failure, waiting longer each time (up to 5 s).
#[derive(Default)]
pub(super) struct Copies {
    messages: Option<async_nats::jetstream::consumer::push::Ordered>,
    retry: Duration,
}

impl Copies {
    /// The next copy (its stream sequence and payload), subscribing from
    /// `from` first if there is no subscription.
    async fn next(
        &mut self,
        member: &Member,
        from: u64,
    ) -> Result<(u64, actix_web::web::Bytes), FailoverError> {
        let next = self.next_or_fail(member, from).await;
        match &next {
            Ok(_) => self.retry = Duration::ZERO,
            Err(_) => self.failed(),
        }
        next
    }

    /// Drops the subscription; the next is made after a longer wait.
    pub(super) fn failed(&mut self) {
        self.messages = None;
        self.retry = (self.retry * 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
    }

    async fn next_or_fail(
        &mut self,
        member: &Member,
        from: u64,
    ) -> Result<(u64, actix_web::web::Bytes), FailoverError> {
        if self.messages.is_none() {
            tokio::time::sleep(self.retry).await;
            self.messages = Some(member.subscribe(from).await?);
        }
        let messages = self.messages.as_mut().expect("subscribed above");
        let copy = messages.next().await.ok_or_else(|| nats("the stream of copies ended"))?.map_err(nats)?;
        let seq = copy.info().map_err(nats)?.stream_sequence;
        Ok((seq, copy.payload.clone()))
    }
}

enum Claimed {
    Yes(Box<PartitionWriter>),
    /// The stream goes on to this sequence: apply up to it first.
    NotYet(u64),
}
