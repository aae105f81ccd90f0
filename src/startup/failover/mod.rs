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
//! store and follows (a shard's group does that at once, and the node goes
//! on: `sharded`). A leader stopped by SIGTERM drains, hands its store
//! back as a replica at the stream's end, and gives up the lease, so that a
//! follower takes over within a third of `stream.lease_ms`.
//!
//! Here: the node of one group ([`serve`]) and joining the cluster; in
//! `member`, a node's part in one group (follow, claim, lead); in
//! `sharded`, a node of several groups behind one router; in `lease`, the
//! leases a group is led by; in `snapshots`, the store written out for new
//! followers; in `seed`, `fulfil seed`.

mod lease;
mod member;
mod seed;
mod sharded;
mod snapshots;

use lease::Lease;
use member::{Copies, Led, Member};
pub use seed::{seed, Seeded};

use crate::cluster::replica::{self, Names, Replica, StreamEnd};
use crate::cluster::{LeaseError, Leases};
use crate::config::Settings;
use crate::http::forward::{follower_routes, Following, LocalReads};
use crate::node::StartError;
use crate::store::StoreError;
use crate::stream::ConnectError;
use actix_web::{App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
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

/// The settings of each failover group a node runs: its own, or one per
/// shard, whose server takes requests with the cluster's `hop` key only.
fn groups(settings: &Settings, hop: &str) -> Vec<Settings> {
    match settings.stream.shards {
        0 | 1 => vec![settings.clone()],
        shards => (0..shards).map(|k| settings.for_shard(k, hop)).collect(),
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
            for group in groups(settings, &hop) {
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
