//! A live stream (`GET /events`) of a cluster split into shards: every
//! shard's stream at once, as one.
//!
//! Each shard numbers its events itself, so the merged stream's event id
//! is every shard's position at once (`"12,0,7,3"`): a client that
//! reconnects with it as `Last-Event-ID` gets from each shard what it
//! missed there. Each shard's events come in that shard's order; the
//! shards' are interleaved as they arrive. When one shard's stream ends
//! (its leader stopped, or moved), the merged stream ends too, so that the
//! client reconnects rather than following fewer shards unawares.
//!
//! A workflow's or a party's stream starts "now": on each shard at its
//! log's head, and the merged stream says so first, in a frame with only
//! an id (which sets a client's last event id, and is no event). So a
//! client that reconnects before it saw an event of some shard still gets
//! what that shard told meanwhile. A customer's stream starts with all
//! they were told, on each shard until one of its events was seen.

use actix_web::web::Bytes;
use futures_util::stream::{self, Stream, StreamExt};

/// The event ids of a merged stream's `Last-Event-ID`: one per shard, or
/// none given (every shard's stream from its own start).
pub fn positions(last_event_id: Option<&str>, shards: usize) -> Result<Vec<u64>, String> {
    let Some(given) = last_event_id.map(str::trim).filter(|id| !id.is_empty()) else {
        return Ok(vec![0; shards]);
    };
    let at: Option<Vec<u64>> = given.split(',').map(|p| p.trim().parse().ok()).collect();
    at.filter(|at| at.len() == shards).ok_or_else(|| {
        format!("Last-Event-ID {given:?} is not an event id of this cluster's {shards} shards: pass the last id as it came")
    })
}

/// The `Last-Event-ID` a shard's stream is opened with, at `position`: a
/// customer's (`whole`: it starts with all they were told) from its start
/// while none of its events was seen; else after `position`.
pub fn resume_at(position: u64, whole: bool) -> String {
    match (position, whole) {
        (0, true) => String::new(),
        (at, _) => at.to_string(),
    }
}

/// The frame a stream that starts "now" begins with: every shard's
/// position, and no event.
pub fn starting_at(at: &[u64]) -> Bytes {
    Bytes::from(with_id("id:\n\n", at))
}

/// Every shard's stream of frames as one, each frame's `id:` rewritten to
/// every shard's position once that frame is sent; ends when any shard's
/// stream ends or fails.
pub fn merged<S, E>(shards: Vec<S>, mut at: Vec<u64>) -> impl Stream<Item = Result<Bytes, E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + 'static,
    E: 'static,
{
    let framed = shards.into_iter().enumerate().map(|(shard, bytes)| {
        // A shard's end is an item too: the merged stream stops there.
        let ended = stream::once(async { None });
        frames(bytes).map(move |frame| Some((shard, frame))).chain(ended).boxed_local()
    });
    stream::select_all(framed).take_while(|item| std::future::ready(item.is_some())).map(move |item| {
        let (shard, frame) = item.expect("taken while some");
        frame.map(|frame| {
            if let Some(id) = event_id(&frame) {
                at[shard] = id;
            }
            Bytes::from(with_id(&frame, &at))
        })
    })
}

/// Whole frames (ending in a blank line) out of a byte stream that may
/// cut them anywhere.
fn frames<S, E>(bytes: S) -> impl Stream<Item = Result<String, E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    stream::unfold((bytes, String::new(), false), |(mut bytes, mut held, failed)| async move {
        loop {
            if failed {
                return None;
            }
            if let Some(end) = held.find("\n\n") {
                let frame: String = held.drain(..end + 2).collect();
                return Some((Ok(frame), (bytes, held, false)));
            }
            match bytes.next().await? {
                Ok(chunk) => held.push_str(&String::from_utf8_lossy(&chunk)),
                Err(e) => return Some((Err(e), (bytes, held, true))),
            }
        }
    })
}

/// The `id:` of a frame, if it has one.
fn event_id(frame: &str) -> Option<u64> {
    frame.lines().find_map(|line| line.strip_prefix("id:")).and_then(|id| id.trim().parse().ok())
}

/// `frame` with its `id:` line (if any) saying every shard's position.
fn with_id(frame: &str, at: &[u64]) -> String {
    let id = at.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let mut out = String::with_capacity(frame.len() + id.len());
    for line in frame.split_inclusive('\n') {
        match line.starts_with("id:") {
            true => out.push_str(&format!("id: {id}\n")),
            false => out.push_str(line),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&str]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(parts.iter().map(|p| Ok(Bytes::from(p.to_string()))).collect::<Vec<_>>())
    }

    #[test]
    fn a_last_event_id_holds_a_position_per_shard() {
        assert_eq!(positions(None, 3).unwrap(), [0, 0, 0]);
        assert_eq!(positions(Some(" 4,0,9 "), 3).unwrap(), [4, 0, 9]);
        for wrong in ["4", "4,0", "a,b,c"] {
            assert!(positions(Some(wrong), 3).unwrap_err().contains("3 shards"), "{wrong}");
        }
    }

    #[actix_web::test]
    async fn frames_cut_anywhere_come_whole_with_every_shards_position() {
        let first = chunks(&["id: 3\nevent: placed\nda", "ta: {}\n\nid: 4\nevent: paid\ndata: {}\n\n"]);
        let second = chunks(&["id: 7\nevent: placed\ndata: {}\n\n"]);
        // The first shard's stream stays open after its two frames.
        let first = first.chain(stream::pending()).boxed_local();
        let second = second.chain(stream::pending()).boxed_local();
        let out: Vec<String> = merged(vec![first, second], vec![2, 5])
            .take(3)
            .map(|f| String::from_utf8(f.unwrap().to_vec()).unwrap())
            .collect()
            .await;
        assert!(out.iter().all(|f| f.ends_with("data: {}\n\n") && f.contains("\nevent: ")), "{out:?}");
        let last: Vec<&str> = out.last().unwrap().lines().collect();
        assert_eq!(last[0], "id: 4,7", "once all three are sent, each shard's last: {out:?}");
    }

    #[test]
    fn a_customers_stream_starts_whole_until_seen_and_any_other_where_it_stood() {
        assert_eq!(resume_at(0, true), "", "all the customer was told");
        assert_eq!(resume_at(12, true), "12");
        assert_eq!(resume_at(0, false), "0", "an empty shard's log: everything after it");
        assert_eq!(resume_at(12, false), "12");
        assert_eq!(&starting_at(&[3, 0, 9])[..], b"id: 3,0,9\n\n");
    }

    #[actix_web::test]
    async fn the_merged_stream_ends_when_one_shard_ends() {
        let open = chunks(&["id: 1\ndata: {}\n\n"]).chain(stream::pending()).boxed_local();
        let ending = chunks(&["id: 9\ndata: {}\n\n"]).boxed_local();
        let out: Vec<_> = merged(vec![open, ending], vec![0, 0]).collect().await;
        assert!(out.len() <= 2, "{} frames, then the end", out.len());
    }
}
