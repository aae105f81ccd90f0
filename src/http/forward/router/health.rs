//! The router's own answers: its health (which shards this node leads,
//! and how far it follows the others) and its metrics. A request named
//! to one shard (`shard=`) goes to that shard's leader instead.

use super::{dispatch, named_shard, ShardMap};
use crate::http::forward::{Client, FollowState, Following};
use crate::http::ApiError;
use actix_web::web::{Bytes, Data};
use actix_web::{get, HttpRequest, HttpResponse};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Serialize)]
struct ShardState {
    shard: u32,
    /// Whether this node leads the shard.
    here: bool,
    #[serde(flatten)]
    follow: FollowState,
}

#[derive(Serialize)]
struct RouterHealth {
    status: &'static str,
    role: &'static str,
    shards: Vec<ShardState>,
}

impl ShardMap {
    /// Each shard as this node sees it, for health.
    fn states(&self) -> Vec<ShardState> {
        let state = |(shard, group): (usize, &Arc<Following>)| ShardState {
            shard: shard as u32,
            here: group.here().is_some(),
            follow: group.get(),
        };
        self.groups.iter().enumerate().map(state).collect()
    }
}

#[get("/health/live")]
pub(super) async fn live(map: Data<ShardMap>) -> HttpResponse {
    HttpResponse::Ok().json(RouterHealth { status: "ok", role: "shards", shards: map.states() })
}

/// Ready once this node leads or has caught up with every shard. A shard
/// with no leader for a moment (one died, or moves to a node that joined)
/// leaves it ready: it answers that shard's requests 503 with
/// `Retry-After` itself, which tells a client more than a Service with no
/// endpoints would.
#[get("/health/ready")]
pub(super) async fn ready(map: Data<ShardMap>) -> HttpResponse {
    let states = map.states();
    let ready = states.iter().all(|s| s.here || s.follow.caught_up);
    let health =
        RouterHealth { status: if ready { "ok" } else { "following" }, role: "shards", shards: states };
    match ready {
        true => HttpResponse::Ok().json(health),
        false => HttpResponse::ServiceUnavailable().insert_header(("Retry-After", "1")).json(health),
    }
}

/// Which shards this node leads, and how far it follows the others; with
/// `shard=`, that shard's leader's own.
#[get("/metrics")]
pub(super) async fn metrics(
    req: HttpRequest,
    map: Data<ShardMap>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    // Another node's router sent it on for a shard led here.
    let sent_on = map.hopped(&req);
    if sent_on || named_shard(req.query_string(), map.shards)?.0.is_some() {
        return dispatch(req, Bytes::new(), map, client).await;
    }
    let mut text = String::from(
        "# HELP fulfil_shard_leading Whether this node leads the shard (1) or follows it (0).\n\
         # TYPE fulfil_shard_leading gauge\n",
    );
    let states = map.states();
    for s in &states {
        text.push_str(&format!("fulfil_shard_leading{{shard=\"{}\"}} {}\n", s.shard, u8::from(s.here)));
    }
    text.push_str(
        "# HELP fulfil_shard_applied Stream sequence of the last copy of the shard's store applied here.\n\
         # TYPE fulfil_shard_applied gauge\n",
    );
    for s in &states {
        text.push_str(&format!("fulfil_shard_applied{{shard=\"{}\"}} {}\n", s.shard, s.follow.applied));
    }
    text.push_str(
        "# HELP fulfil_shard_local_reads_total Reads this node answered from its copy of a shard another node leads.\n\
         # TYPE fulfil_shard_local_reads_total counter\n",
    );
    for (shard, group) in map.groups.iter().enumerate() {
        let reads = group.local_reads.load(Ordering::Relaxed);
        text.push_str(&format!("fulfil_shard_local_reads_total{{shard=\"{shard}\"}} {reads}\n"));
    }
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}
