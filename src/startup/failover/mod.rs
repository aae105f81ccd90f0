//! `fulfil serve` in failover mode (`stream.mode = "failover"`): several
//! nodes share one store kept in JetStream; one leads, the others follow.
//!
//! A node starts as a follower: it answers on its port at once, forwarding
//! every request to the leader ([`crate::http::forward`]), while it applies
//! the leader's commits to its own store ([`Replica`]) and tries for the
//! leader's lease. When it gets the lease, it applies everything the stream
//! holds, appends its claim (which fences the old leader off), and starts
//! the node on its store, exactly as a node starts after a crash. The
//! leader's server then takes over the same socket, so no connection is
//! refused in between.
//!
//! A leader that loses its lease, or whose copies are refused, stops at
//! once with an error: it can no longer acknowledge anything, and its
//! store may hold commits no one else has; its next start empties the
//! store and follows. A leader stopped by SIGTERM drains, hands its store
//! back as a replica at the stream's end, and gives up the lease, so that a
//! follower takes over within a third of `stream.lease_ms`.

mod lease;
mod seed;
mod sharded;
mod snapshots;

use lease::Lease;
pub use seed::{seed, Seeded};
use snapshots::{LeaderSnapshots, Snapshots};

use super::Application;
use crate::cluster::partition::{AppendError, PartitionWriter};
use crate::cluster::replica::{self, claim, Names, Replica, StreamEnd};
use crate::cluster::{LeaseError, Leases};
use crate::config::Settings;
use crate::http::forward::{follower_routes, FollowState, Following, LocalReads};
use crate::node::StartError;
use crate::store::{Store, StoreError};
use crate::stream::ConnectError;
use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer};
use futures_util::StreamExt;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("failover: {0}")]
    Nats(String),
    #[error("failover: the store in {path}: {source}")]
    Store { path: String, source: StoreError },
    #[error("failover: {0}")]
    Lease(#[from] LeaseError),
    #[error(transparent)]
    Start(#[from] StartError),
    /// This node led and no longer does; its store is emptied at the next
    /// start.
    #[error("this node no longer leads: {0}")]
    Deposed(String),
    #[error("failover: {0}")]
    Io(#[from] std::io::Error),
    /// The command cannot do what was asked, as things stand.
    #[error("{0}")]
    Refused(String),
}

fn nats(e: impl std::fmt::Display) -> FailoverError {
    FailoverError::Nats(e.to_string())
}

/// One node of the cluster, before it knows its role.
struct Member {
    settings: Settings,
    names: Names,
    node: String,
    advertise: String,
    client: async_nats::Client,
    lease: Lease,
    lease_ms: Duration,
    following: Arc<Following>,
    /// Each copy applied this much late (`faults.replica.latency_ms`).
    apply_latency: Option<Duration>,
    snapshots: Snapshots,
}

/// Serves in failover mode until stopped by a signal (`Ok`), or until this
/// node, leading, loses the lead (`Deposed`).
pub async fn serve(settings: Settings) -> Result<(), FailoverError> {
    if settings.stream.shards > 1 {
        return sharded::serve(settings).await;
    }
    let bind = settings.http.bind.clone();
    let listener = TcpListener::bind(&bind).map_err(|source| StartError::Bind { address: bind, source })?;
    let address = listener.local_addr()?;
    let node = node_name(&settings);
    let advertise = advertised(&settings, address);
    let _ = std::fs::remove_file(data_dir(&settings).join(replica::DOWNLOAD));
    let replica = open_replica(&settings).await?;
    // Answering (not ready) from the start, while the servers are reached.
    let following = Arc::new(Following::default());
    let routes = follower_routes(following.clone());
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .disable_signals()
        .workers(2)
        .listen(listener.try_clone()?)?
        .run();
    let forwarding = server.handle();
    tokio::spawn(server);
    tracing::info!(%address, %node, %advertise, data = %data_dir(&settings).display(), applied = replica.applied(),
        "failover: following; requests go to the leader; listening on http://{address}");
    let stop = stop_signal();
    let Some(Joined { client, leases, .. }) = join(&settings, &node, &advertise, stop.clone()).await? else {
        forwarding.stop(true).await;
        return Ok(());
    };
    let names = Names::of(&settings.stream);
    let local = LocalReads::new(&settings, replica.reads(), StreamEnd::new(&client, &names));
    following.set_local(Some(local.map_err(StartError::from)?));
    let mut member =
        Member::new(settings, node, advertise, client, Lease::Own(Some(Box::new(leases))), following);
    let Some((replica, writer)) = member.follow(replica, stop.clone()).await? else {
        member.following.set_local(None);
        forwarding.stop(true).await;
        member.lease.give_up().await?;
        tracing::info!("failover: stopped following");
        return Ok(());
    };
    member.lead(replica, writer, listener, Some(forwarding), stop).await.map(|_| ())
}

/// How leading ended, when it ended well.
enum Led {
    /// Stopped by a signal: the node stops.
    Stopped,
    /// Gave its shard up to a node that joined: follows it again.
    SteppedDown,
}

/// The settings of each failover group a node runs: its own, or one per
/// shard.
fn groups(settings: &Settings) -> Vec<Settings> {
    match settings.stream.shards {
        0 | 1 => vec![settings.clone()],
        shards => (0..shards).map(|k| settings.for_shard(k)).collect(),
    }
}

/// Reaches the servers, makes the streams of copies if missing, and joins
/// the leases' bucket; tried again until it works or a signal stops the
/// node (`None`): servers that start with the nodes, or a cluster still
/// electing its leaders, answer a little later.
async fn join(
    settings: &Settings,
    node: &str,
    advertise: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<Option<Joined>, FailoverError> {
    let names = Names::of(&settings.stream);
    let lease = Duration::from_millis(settings.stream.lease_ms);
    let mut wait = Duration::from_millis(200);
    loop {
        let joining = |e: ConnectError| match e {
            ConnectError::Settings(why) => Joining::Refused(why),
            e => Joining::NotYet(e.to_string()),
        };
        let joined = async {
            let (client, js) = crate::stream::connect(&settings.stream).await.map_err(joining)?;
            replica::agree_on_shards(&js, &settings.stream).await.map_err(joining)?;
            let hop = replica::hop_key(&js, &settings.stream).await.map_err(joining)?;
            for group in groups(settings) {
                replica::ensure_stream(&js, &group.stream).await.map_err(joining)?;
            }
            let (shards, replicas) = (settings.stream.shards.max(1), settings.stream.replicas);
            let leases = Leases::join_replicated(&js, &names.bucket, lease, node, shards, replicas)
                .await
                .map_err(|e| Joining::NotYet(e.to_string()))?;
            Ok(Joined { client, leases: leases.announcing(advertise), hop })
        };
        let why = tokio::select! {
            joined = joined => match joined {
                Ok(joined) => return Ok(Some(joined)),
                Err(Joining::Refused(why)) => return Err(FailoverError::Nats(why)),
                Err(Joining::NotYet(why)) => why,
            },
            _ = stop.wait_for(|s| *s) => return Ok(None),
        };
        tracing::warn!(server = %crate::config::host_of(&settings.stream.url), error = %why,
            retry_in_ms = wait.as_millis() as u64, "failover: the NATS servers cannot be used yet; trying again");
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return Ok(None),
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

impl Member {
    fn new(
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
    async fn follow(
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
    async fn stream_end(&self) -> Result<u64, FailoverError> {
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
    async fn lead(
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
struct Copies {
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
    fn failed(&mut self) {
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

/// A node that joined its cluster.
struct Joined {
    client: async_nats::Client,
    leases: Leases,
    /// The cluster's hop key ([`replica::hop_key`]).
    hop: String,
}

/// Why joining failed: for good (the settings), or for now.
enum Joining {
    Refused(String),
    NotYet(String),
}

enum Claimed {
    Yes(Box<PartitionWriter>),
    /// The stream goes on to this sequence: apply up to it first.
    NotYet(u64),
}

/// The replica in `store.path`, opened off the async threads (it may be
/// emptied first: [`Replica::open`]). A snapshot half written or
/// downloaded when the process stopped is not needed there, and may be as
/// large as the store: the caller removes it at start.
async fn open_replica(settings: &Settings) -> Result<Replica, FailoverError> {
    let (path, cache) = (settings.store.path.clone(), settings.store.cache_mb * 1024 * 1024);
    let opened = tokio::task::spawn_blocking(move || Replica::open(&path, cache)).await;
    opened.map_err(std::io::Error::other)?.map_err(|source| store_error(settings, source))
}

fn store_error(settings: &Settings, source: StoreError) -> FailoverError {
    FailoverError::Store { path: settings.store.path.display().to_string(), source }
}

fn data_dir(settings: &Settings) -> std::path::PathBuf {
    std::path::absolute(&settings.store.path).unwrap_or_else(|_| settings.store.path.clone())
}

/// `stream.node`, or the host's name, or failing both a random one.
fn node_name(settings: &Settings) -> String {
    let named = |s: &str| s.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_')).collect();
    match settings.stream.node.as_str() {
        "" => std::env::var("HOSTNAME")
            .ok()
            .map(|h| named(&h))
            .filter(|h: &String| !h.is_empty())
            .unwrap_or_else(|| format!("node-{:08x}", fastrand::u32(..))),
        given => given.to_owned(),
    }
}

/// `stream.advertise`, or the bound address (the host's name in place of
/// an unspecified address).
fn advertised(settings: &Settings, bound: std::net::SocketAddr) -> String {
    if !settings.stream.advertise.is_empty() {
        return settings.stream.advertise.trim_end_matches('/').to_owned();
    }
    match bound.ip().is_unspecified() {
        true => format!(
            "http://{}:{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into()),
            bound.port()
        ),
        false => format!("http://{bound}"),
    }
}

/// Set once SIGTERM or SIGINT arrives.
fn stop_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        super::wait_for_signal().await;
        let _ = tx.send(true);
    });
    rx
}
