//! A live stream of notifications: what was written, then what is
//! published as it is written, each once. The node's streams follow its
//! notification service; a failover follower's follow its own store
//! (`http::forward::live`).

use super::Published;
use crate::domain::Notification;
use crate::error::NodeError;
use futures_util::{Stream, StreamExt};

/// `backlog` (what was written), then what is published live that `keep`
/// wants, each once (by event, after `after`). It ends when the backlog
/// cannot be read, the client falls too far behind or the node stops: the
/// client reconnects with `Last-Event-ID`.
pub fn follow(
    backlog: impl Stream<Item = Result<Notification, NodeError>> + Unpin,
    live: tokio::sync::broadcast::Receiver<Published>,
    after: u64,
    keep: impl Fn(&Notification, Option<&str>) -> bool + 'static,
) -> impl Stream<Item = Notification> {
    // Fused: each item asks the backlog first, also once it has ended.
    let state = (backlog.fuse(), live, after, keep);
    futures_util::stream::unfold(state, |(mut backlog, mut live, mut last, keep)| async move {
        while let Some(read) = backlog.next().await {
            match read {
                Ok(n) if n.event > last => {
                    last = n.event;
                    return Some((n, (backlog, live, last, keep)));
                }
                Ok(_) => {}
                // Going live now would skip what is left of the backlog.
                Err(_) => return None,
            }
        }
        loop {
            match live.recv().await {
                Ok((n, workflow)) if n.event > last && keep(&n, workflow.as_deref()) => {
                    last = n.event;
                    return Some((n, (backlog, live, last, keep)));
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    })
}
