//! `fulfil serve` with `stream.shards > 1`: one failover group per shard on
//! every node (docs/multi-node.md, "shard groups").
//!
//! Each shard has its own stream of copies, snapshots and store directory
//! (`<store.path>/shard-<k>`), and is led by one node at a time, exactly as
//! a failover cluster of one group is. A node's [`Keeper`] holds its leases
//! on the shards, up to its fair share: it leads those, each on a loopback
//! port of its own, and follows the others. Its public port is a router
//! ([`crate::http::forward::router`]) that sends each request to the node
//! that leads its shard.
//!
//! A shard whose leader is deposed (paused or cut off past its lease,
//! while another node took the shard over) stops serving it, empties its
//! store (it may hold commits the stream never got) and follows the shard
//! again from the stream; the node's other shards go on, and its keeper
//! takes its share again. A cluster of one group exits instead: there the
//! deposed leader held the public port itself.

use super::lease::{Keeper, Lease};
use super::{
    advertised, data_dir, groups, join, node_name, open_replica, stop_signal, FailoverError, Joined, Led,
    Member,
};
use crate::cluster::replica;
use crate::cluster::StreamEnd;
use crate::config::Settings;
use crate::http::forward::router::{shard_routes, ShardMap};
use crate::http::forward::LocalReads;
use crate::node::StartError;
use actix_web::{App, HttpServer};
use std::net::TcpListener;
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Serves until stopped by a signal (`Ok`), or until a shard's group
/// fails for good (its store, the servers for too long).
pub(super) async fn serve(settings: Settings) -> Result<(), FailoverError> {
    let bind = settings.http.bind.clone();
    let listener = TcpListener::bind(&bind).map_err(|source| StartError::Bind { address: bind, source })?;
    let address = listener.local_addr()?;
    let open = crate::auth::Authenticator::from_settings(&settings.auth, &settings.admin)
        .map_err(StartError::from)?
        .is_open();
    if open && !address.ip().is_loopback() {
        // The shards' own servers are on loopback; this port is not.
        return Err(StartError::OpenToTheNetwork { bind: settings.http.bind.clone() }.into());
    }
    let (node, advertise) = (node_name(&settings), advertised(&settings, address));
    let rules = std::sync::Arc::new(settings.workflow_rules());
    let map = ShardMap::new(settings.stream.sharding(), rules, settings.trusted_proxies());
    let routes = shard_routes(map.clone());
    let server = HttpServer::new(move || App::new().configure(routes.clone()))
        .disable_signals()
        .workers(settings.http.workers.max(2))
        .listen(listener)?
        .run();
    let router = server.handle();
    tokio::spawn(server);
    tracing::info!(%address, %node, %advertise, shards = settings.stream.shards, data = %data_dir(&settings).display(),
        "failover: {} shards; requests go to each shard's leader; listening on http://{address}", settings.stream.shards);
    let stop = stop_signal();
    let Some(Joined { client, leases, hop }) = join(&settings, &node, &advertise, stop.clone()).await? else {
        router.stop(true).await;
        return Ok(());
    };
    map.set_hop_key(hop.clone());
    let keeper = Keeper::new(leases, settings.stream.shards);
    let renewals = Duration::from_millis(settings.stream.lease_ms) / 3;
    // Renewed until every group stopped: a group that drains and hands its
    // store back on a signal still leads meanwhile.
    let (groups_done, renewing) = watch::channel(false);
    tokio::spawn(keeper.clone().run(renewals, renewing));
    let shards = groups(&settings, &hop).into_iter().enumerate().map(|(k, group)| {
        let lease = Lease::Shard { keeper: keeper.clone(), index: k as u32 };
        let member =
            Member::new(group, node.clone(), advertise.clone(), client.clone(), lease, map.group(k as u32));
        // Its lines in the log name the shard.
        run_shard(member, stop.clone()).instrument(tracing::info_span!("shard", index = k))
    });
    let ran = futures_util::future::try_join_all(shards).await;
    let _ = groups_done.send(true);
    router.stop(true).await;
    if let Err(e) = keeper.leave().await {
        tracing::warn!(error = %e, "failover: the leases could not be given up; they run out within stream.lease_ms");
    }
    ran.map(|_| ())
}

/// One shard's group: follows, leads while it holds the shard's lease,
/// and follows again after stepping down, until stopped.
async fn run_shard(mut member: Member, stop: watch::Receiver<bool>) -> Result<(), FailoverError> {
    // A snapshot half downloaded when the process stopped.
    let _ = std::fs::remove_file(data_dir(&member.settings).join(replica::DOWNLOAD));
    loop {
        let started = std::time::Instant::now();
        let replica = open_replica(&member.settings).await?;
        tracing::info!(
            applied = replica.applied(),
            opened_ms = started.elapsed().as_millis() as u64,
            "failover: following the shard"
        );
        // Its reads are answered here while another node leads it.
        let end = StreamEnd::new(&member.client, &member.names);
        let local = LocalReads::new(&member.settings, replica.reads(), end).map_err(StartError::from)?;
        member.following.set_local(Some(local));
        let Some((replica, writer)) = member.follow(replica, stop.clone()).await? else {
            return Ok(());
        };
        let listener = TcpListener::bind("127.0.0.1:0")?;
        match member.lead(replica, writer, listener, None, stop.clone()).await {
            Ok(Led::Stopped) => return Ok(()),
            Ok(Led::SteppedDown) => continue,
            Err(FailoverError::Deposed(why)) => tracing::warn!(%why,
                "failover: this node no longer leads the shard; its store is emptied and filled again \
                 from the stream, and the node's other shards go on"),
            Err(e) => return Err(e),
        }
    }
}
