//! What a node of a cluster split into shards reads from every shard and
//! merges: a customer's orders and what they were told, the work lists
//! (a cursor with a position per shard) and the live streams
//! ([`super::super::merged_events`]).

use super::super::{relay, relay_as, streamed};
use super::{with_query, Asked};
use crate::http::ApiError;
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use futures_util::StreamExt;
use serde_json::Value;

impl Asked<'_> {
    /// A live stream of every shard at once ([`super::super::merged_events`]).
    pub(super) async fn merged_events(&self) -> Result<HttpResponse, ApiError> {
        use super::super::merged_events::{positions, resume_at, starting_at};
        let count = self.map.shards.count();
        let last = self.req.headers().get("last-event-id").and_then(|id| id.to_str().ok());
        let mut at = positions(last, count as usize).map_err(ApiError::BadQuery)?;
        let query = self.req.query_string();
        let whole = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "customer");
        // "Now", said as each shard's position.
        let from_now = last.is_none() && !whole;
        if from_now {
            for shard in 0..count {
                at[shard as usize] = self.log_head(shard).await?;
            }
        }
        let path = with_query(self.req.path(), query);
        let mut streams = Vec::new();
        for shard in 0..count {
            let base = self.map.target(shard, self.forwarded)?;
            let resume = resume_at(at[shard as usize], whole);
            let get = (reqwest::Method::GET, Bytes::new());
            let to = self.to(&base, shard);
            let answer =
                relay_as(self.req, get, self.client, to, &path, Some(("last-event-id", resume))).await?;
            if !answer.status().is_success() {
                return Ok(streamed(answer));
            }
            streams.push(answer.bytes_stream().boxed_local());
        }
        let first = from_now.then(|| Ok(starting_at(&at)));
        let events = futures_util::stream::iter(first)
            .chain(super::super::merged_events::merged(streams, at))
            .map(|frame| frame.map_err(actix_web::error::ErrorBadGateway));
        Ok(HttpResponse::Ok()
            .content_type("text/event-stream")
            .insert_header(("Cache-Control", "no-cache"))
            .streaming(events))
    }

    /// Where `shard`'s log ends (its worker health's `log_head`).
    async fn log_head(&self, shard: u32) -> Result<u64, ApiError> {
        let base = self.map.target(shard, self.forwarded)?;
        let get = (reqwest::Method::GET, Bytes::new());
        let health = relay_as(self.req, get, self.client, self.to(&base, shard), "/health", None).await?;
        let health: Value = health.json().await.map_err(|e| {
            ApiError::NoLeader(format!("shard {shard} did not say where its log ends ({e}); retry"))
        })?;
        health["log_head"].as_u64().ok_or_else(|| {
            ApiError::NoLeader(format!("shard {shard} did not say where its log ends ({health}); retry"))
        })
    }

    /// A customer's orders, or what they were told, from every shard:
    /// oldest first, as one node lists them. The first shard that refuses
    /// (the caller may not see them, the query is wrong) gives the answer.
    pub(super) async fn merged(&self, list: Merged) -> Result<HttpResponse, ApiError> {
        let query = self.req.query_string().to_owned();
        let pages = match self.ask_every_shard(|_| query.clone()).await? {
            Ok(pages) => pages,
            Err(refused) => return Ok(refused),
        };
        let (mut merged, lists) = split(pages, list.field());
        let items = oldest_first(lists, list.at(), usize::MAX).into_iter().map(|(_, item)| item).collect();
        merged[list.field()] = Value::Array(items);
        Ok(HttpResponse::Ok().json(merged))
    }

    /// A page of a work list from every shard: the oldest `limit` of their
    /// pages, with a cursor (`next`) that says where each shard stands.
    pub(super) async fn merged_page(&self) -> Result<HttpResponse, ApiError> {
        let count = self.map.shards.count() as usize;
        let mut pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(self.req.query_string().as_bytes()).into_owned().collect();
        let after = match pairs.iter().position(|(k, _)| k == "after") {
            Some(i) => cursors(&pairs.remove(i).1, count)?,
            None => vec![0; count],
        };
        let limit = match pairs.iter().find(|(k, _)| k == "limit") {
            // A limit no shard takes: the first says why.
            Some((_, limit)) => limit.parse().unwrap_or(0),
            None => {
                pairs.push(("limit".into(), crate::http::status::DEFAULT_LIMIT.to_string()));
                crate::http::status::DEFAULT_LIMIT
            }
        };
        let query = |shard: usize| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.extend_pairs(&pairs);
            if after[shard] > 0 {
                query.append_pair("after", &after[shard].to_string());
            }
            query.finish()
        };
        let pages = match self.ask_every_shard(query).await? {
            Ok(pages) => pages,
            Err(refused) => return Ok(refused),
        };
        let fuller: Vec<bool> = pages.iter().map(|page| !page["next"].is_null()).collect();
        let (mut merged, lists) = split(pages, "orders");
        let held: Vec<usize> = lists.iter().map(Vec::len).collect();
        let page = oldest_first(lists, Merged::Customer.at(), limit);
        let (mut at, mut taken) = (after, vec![0; count]);
        for (shard, order) in &page {
            at[*shard] = order["placed_seq"].as_u64().unwrap_or(at[*shard]);
            taken[*shard] += 1;
        }
        // More where a shard's page was not all taken, or was full.
        let more = (0..count).any(|k| taken[k] < held[k] || fuller[k]);
        merged["orders"] = Value::Array(page.into_iter().map(|(_, order)| order).collect());
        merged["next"] = match more {
            true => Value::String(at.iter().map(u64::to_string).collect::<Vec<_>>().join(",")),
            false => Value::Null,
        };
        Ok(HttpResponse::Ok().json(merged))
    }

    /// What every shard answers to this request with `query(shard)` for
    /// its query, in shard order; or the first refusal, as it came.
    async fn ask_every_shard(
        &self,
        query: impl Fn(usize) -> String,
    ) -> Result<Result<Vec<Value>, HttpResponse>, ApiError> {
        let mut pages = Vec::new();
        for shard in 0..self.map.shards.count() {
            let query = query(shard as usize);
            if let Some(page) = self.list_here(shard, &query).await? {
                pages.push(page);
                continue;
            }
            let base = self.map.target(shard, self.forwarded)?;
            let path = with_query(self.req.path(), &query);
            let answer = relay(self.req, Bytes::new(), self.client, self.to(&base, shard), &path).await?;
            if !answer.status().is_success() {
                return Ok(Err(streamed(answer)));
            }
            let page = answer.json().await.map_err(|e| {
                ApiError::NoLeader(format!("shard {shard} answered what is not a list ({e}); retry"))
            })?;
            pages.push(page);
        }
        Ok(Ok(pages))
    }
}

/// The lists merged from every shard when no shard is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Merged {
    /// `GET /status?customer=`
    Customer,
    /// `GET /status?workflow=&status=`: a page of a work list.
    Page,
    /// `GET /notifications?customer=`
    Notifications,
}

impl Merged {
    /// The field that holds the list.
    fn field(self) -> &'static str {
        match self {
            Merged::Notifications => "notifications",
            Merged::Customer | Merged::Page => "orders",
        }
    }

    /// When an item happened, which lists are kept in.
    fn at(self) -> fn(&Value) -> &str {
        match self {
            Merged::Notifications => |told| told["at"].as_str().unwrap_or_default(),
            Merged::Customer | Merged::Page => |order| order["history"][0]["at"].as_str().unwrap_or_default(),
        }
    }
}

/// Which list a request on a merged route asks for, if any.
pub(super) fn merged(path: &str, query: &str) -> Option<Merged> {
    let has = |key: &str| url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == key);
    match path {
        "/notifications" => Some(Merged::Notifications),
        "/status" if has("customer") => Some(Merged::Customer),
        "/status" if has("workflow") => Some(Merged::Page),
        _ => None,
    }
}

/// The first page with its list taken out (the fields the pages share),
/// and every page's list.
fn split(pages: Vec<Value>, field: &str) -> (Value, Vec<Vec<Value>>) {
    let mut first = None;
    let mut lists = Vec::new();
    for mut page in pages {
        lists.push(match page.get_mut(field).map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        });
        first.get_or_insert(page);
    }
    (first.unwrap_or_else(|| serde_json::json!({})), lists)
}

/// The oldest `limit` items of `lists` (each oldest first, one per
/// shard), by `at`, with the shard each came from. Each shard's own order
/// is kept (a k-way merge, not a sort: a shard's clock may have stepped
/// back at a takeover); among equal times the lower shard goes first.
fn oldest_first(lists: Vec<Vec<Value>>, at: fn(&Value) -> &str, limit: usize) -> Vec<(usize, Value)> {
    let mut lists: Vec<std::collections::VecDeque<Value>> = lists.into_iter().map(Into::into).collect();
    let mut merged = Vec::new();
    while merged.len() < limit {
        let next = (0..lists.len()).filter(|k| !lists[*k].is_empty()).min_by(|a, b| {
            let (a_at, b_at) = (at(&lists[*a][0]), at(&lists[*b][0]));
            a_at.cmp(b_at).then(a.cmp(b))
        });
        let Some(shard) = next else { break };
        merged.push((shard, lists[shard].pop_front().expect("not empty")));
    }
    merged
}

/// A merged work list's cursor: one position per shard.
fn cursors(after: &str, shards: usize) -> Result<Vec<u64>, ApiError> {
    let at: Option<Vec<u64>> = after.split(',').map(|p| p.parse().ok()).collect();
    at.filter(|at| at.len() == shards).ok_or_else(|| {
        ApiError::BadQuery(format!(
            "after={after:?} is not a cursor of this cluster's {shards} shards: pass a page's next as it came"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_lists_notifications_and_work_lists_merge() {
        assert_eq!(merged("/status", "customer=alice"), Some(Merged::Customer));
        assert_eq!(merged("/notifications", "customer=alice"), Some(Merged::Notifications));
        assert_eq!(merged("/status", "workflow=taxi&status=paid"), Some(Merged::Page));
        assert_eq!(merged("/status", "status=paid"), None, "any shard says what is wrong");
        assert_eq!(merged("/events", "customer=alice"), None, "live streams: one shard at a time");
    }

    fn order(at: &str, seq: u64) -> Value {
        serde_json::json!({"placed_seq": seq, "history": [{"at": at}]})
    }

    #[test]
    fn lists_merge_oldest_first_keeping_each_shards_own_order() {
        let lists = vec![
            vec![order("2026-01-01T00:00:01.000Z", 1), order("2026-01-01T00:00:05.000Z", 2)],
            // A takeover's clock a little behind: still after its own first.
            vec![order("2026-01-01T00:00:03.000Z", 7), order("2026-01-01T00:00:02.000Z", 9)],
            vec![],
        ];
        let merged = oldest_first(lists.clone(), Merged::Page.at(), usize::MAX);
        let seqs: Vec<(usize, u64)> =
            merged.iter().map(|(k, o)| (*k, o["placed_seq"].as_u64().unwrap())).collect();
        assert_eq!(seqs, [(0, 1), (1, 7), (1, 9), (0, 2)]);
        assert_eq!(oldest_first(lists, Merged::Page.at(), 2).len(), 2, "at most the limit");
    }

    #[test]
    fn a_work_list_cursor_holds_a_position_per_shard() {
        assert_eq!(cursors("3,0,17", 3).unwrap(), [3, 0, 17]);
        for wrong in ["3,0", "3,0,17,1", "a,b,c", "42"] {
            let refused = cursors(wrong, 3).unwrap_err().to_string();
            assert!(refused.contains("not a cursor of this cluster's 3 shards"), "{refused}");
        }
    }
}
