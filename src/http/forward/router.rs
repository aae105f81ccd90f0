//! The public port of a node of a cluster split into shards
//! (`stream.shards > 1`): every request goes to the node that leads its
//! shard ([`super::by_shard`] says which), here on this node's own
//! loopback port for the shards it leads, elsewhere to the node that
//! holds the shard's lease, at most once.
//!
//! A placement goes to the shard of the products it draws on, so its
//! stock or pool is decided in one place; one that draws on nothing goes
//! by its `Idempotency-Key` (so a retry finds the first try), or without
//! one to a shard this node leads. A customer's orders and what they were
//! told are read from every shard and merged; the other lists are read
//! one shard at a time (`shard=`), and `shard=` also picks the shard that
//! answers what any shard could (`GET /health?shard=2`). What a shard's leader answers comes
//! back as it is.

use super::by_shard::{route, Route};
use super::{relay, streamed, Client, FollowState, Following, BODY_LIMIT, FORWARDED, SHARD};
use crate::domain::partition::partition;
use crate::domain::shard::Shards;
use crate::domain::Sku;
use crate::error::Refused;
use crate::http::ApiError;
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{get, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What a node knows of each shard: whether it leads it (and where it
/// serves it), or which node does.
pub struct ShardMap {
    shards: Shards,
    groups: Vec<Arc<Following>>,
    /// Turns over the shards for requests any shard may take.
    turn: AtomicUsize,
}

impl ShardMap {
    pub fn new(shards: Shards) -> Arc<ShardMap> {
        let groups = (0..shards.count()).map(|_| Arc::new(Following::default())).collect();
        Arc::new(ShardMap { shards, groups, turn: AtomicUsize::new(0) })
    }

    /// What the group of `shard` on this node keeps current.
    pub fn group(&self, shard: u32) -> Arc<Following> {
        self.groups[shard as usize].clone()
    }

    /// Where `shard`'s requests go from here. A request another node
    /// forwarded goes only to a shard led here: no loops, no second hop.
    fn target(&self, shard: u32, forwarded: bool) -> Result<String, ApiError> {
        let group = &self.groups[shard as usize];
        if let Some(here) = group.here() {
            return Ok(here);
        }
        if forwarded {
            return Err(ApiError::NoLeader(format!(
                "shard {shard} moved while this request was forwarded; retry"
            )));
        }
        group.get().leader.ok_or_else(|| {
            ApiError::NoLeader(format!(
                "no node leads shard {shard} just now; one takes over within stream.lease_ms"
            ))
        })
    }

    /// A shard for a request any shard can answer: one led here if there
    /// is one, else the next that has a leader.
    fn any(&self, forwarded: bool) -> Result<u32, ApiError> {
        let count = self.shards.count();
        if let Some(here) = (0..count).find(|k| self.groups[*k as usize].here().is_some()) {
            return Ok(here);
        }
        let start = self.turn.fetch_add(1, Ordering::Relaxed) as u32;
        let led = (0..count).map(|i| (start + i) % count).find(|k| self.target(*k, forwarded).is_ok());
        led.ok_or_else(|| ApiError::NoLeader("no node leads any shard just now; retry".into()))
    }

    fn states(&self) -> Vec<ShardState> {
        let state = |(shard, group): (usize, &Arc<Following>)| ShardState {
            shard: shard as u32,
            here: group.here().is_some(),
            follow: group.get(),
        };
        self.groups.iter().enumerate().map(state).collect()
    }
}

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

/// The public port's routes: its own health and metrics, the console's
/// page, and every other request to its shard.
pub fn shard_routes(map: Arc<ShardMap>) -> impl Fn(&mut ServiceConfig) + Clone {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let client: Arc<Client> = Arc::new(client.map_err(|e| e.to_string()));
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(Data::from(map.clone()))
            .app_data(Data::from(client.clone()))
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .service(live)
            .service(ready)
            .service(metrics)
            .configure(crate::http::console::follower_routes)
            .default_service(web::to(dispatch));
    }
}

#[get("/health/live")]
async fn live(map: Data<ShardMap>) -> HttpResponse {
    HttpResponse::Ok().json(RouterHealth { status: "ok", role: "shards", shards: map.states() })
}

/// Ready once this node leads or has caught up with every shard. A shard
/// with no leader for a moment (one died, or moves to a node that joined)
/// leaves it ready: it answers that shard's requests 503 with
/// `Retry-After` itself, which tells a client more than a Service with no
/// endpoints would.
#[get("/health/ready")]
async fn ready(map: Data<ShardMap>) -> HttpResponse {
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
async fn metrics(
    req: HttpRequest,
    map: Data<ShardMap>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    // Another node's router sent it on for a shard led here.
    let sent_on = req.headers().contains_key(FORWARDED);
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
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text))
}

/// A request on its way to its shard's leader.
struct Asked<'a> {
    req: &'a HttpRequest,
    map: &'a ShardMap,
    client: &'a Client,
    forwarded: bool,
}

impl Asked<'_> {
    /// Sends the request to `shard` (`None`: any), with `query` for its
    /// own.
    async fn send(&self, shard: Option<u32>, body: Bytes, query: &str) -> Result<HttpResponse, ApiError> {
        let shard = match shard {
            Some(shard) => shard,
            None => self.map.any(self.forwarded)?,
        };
        let base = self.map.target(shard, self.forwarded)?;
        let path = with_query(self.req.path(), query);
        Ok(streamed(relay(self.req, body, self.client, (&base, Some(shard)), &path).await?))
    }

    /// The shard another node forwarded this request here for: that node
    /// routed it already (a list it merges asks each shard in turn).
    fn sent_for(&self) -> Option<u32> {
        let shard = self.req.headers().get(SHARD)?.to_str().ok()?.parse().ok();
        shard.filter(|k| self.forwarded && *k < self.map.shards.count())
    }
}

async fn dispatch(
    req: HttpRequest,
    body: Bytes,
    map: Data<ShardMap>,
    client: Data<Client>,
) -> Result<HttpResponse, ApiError> {
    let Some(route) = route(req.method(), req.path()) else { return Err(crate::http::no_route(req).await) };
    let asked =
        Asked { req: &req, map: &map, client: &client, forwarded: req.headers().contains_key(FORWARDED) };
    let (shards, query) = (map.shards, req.query_string());
    if let Some(shard) = asked.sent_for() {
        return asked.send(Some(shard), body, query).await;
    }
    match route {
        Route::Order(_) | Route::Product(_) => asked.send(route.shard(shards), body, query).await,
        Route::Placement => {
            let shard = placed_on(&req, &body, shards)?;
            asked.send(shard, body, query).await
        }
        Route::NewProduct => asked.send(product_on(&body, shards), body, query).await,
        Route::Node => {
            // Any shard's answer, or the named one's (`/health?shard=2`).
            let (named, rest) = named_shard(query, shards)?;
            asked.send(named, body, &rest).await
        }
        Route::Named | Route::Merged => {
            let (named, rest) = named_shard(query, shards)?;
            match named {
                Some(shard) => asked.send(Some(shard), body, &rest).await,
                None if route == Route::Merged && merges(req.path(), query) => asked.merged().await,
                None => Err(ApiError::BadQuery(format!(
                    "on a cluster split into {} shards, {} is read one shard at a time: add shard=0 to shard={}",
                    shards.count(),
                    req.path(),
                    shards.count() - 1
                ))),
            }
        }
        Route::Everywhere if req.path().starts_with("/subscriptions") => Err(ApiError::NotAcrossShards(
            "webhook subscriptions are not kept on a cluster split into shards yet: each shard's \
             notifications would need them, under one id"
                .into(),
        )),
        Route::Everywhere => asked.everywhere(body).await,
    }
}

impl Asked<'_> {
    /// Sends the request to every shard in turn; the first refusal stops
    /// it and is the answer, else the last shard's.
    async fn everywhere(&self, body: Bytes) -> Result<HttpResponse, ApiError> {
        let mut last = None;
        for shard in 0..self.map.shards.count() {
            let base = self.map.target(shard, self.forwarded)?;
            let path = with_query(self.req.path(), self.req.query_string());
            let answer = relay(self.req, body.clone(), self.client, (&base, Some(shard)), &path).await?;
            if !answer.status().is_success() {
                return Ok(streamed(answer));
            }
            last = Some(answer);
        }
        Ok(last.map(streamed).unwrap_or_else(|| HttpResponse::NoContent().finish()))
    }

    /// A customer's orders, or what they were told, from every shard:
    /// oldest first, as one node lists them. The first shard that refuses
    /// (the caller may not see them, the query is wrong) gives the answer.
    async fn merged(&self) -> Result<HttpResponse, ApiError> {
        let path = with_query(self.req.path(), self.req.query_string());
        let (list, at): (&str, fn(&Value) -> &Value) = match self.req.path() {
            "/notifications" => ("notifications", |told| &told["at"]),
            _ => ("orders", |order| &order["history"][0]["at"]),
        };
        let mut merged: Option<Value> = None;
        let mut items = Vec::new();
        for shard in 0..self.map.shards.count() {
            let base = self.map.target(shard, self.forwarded)?;
            let answer = relay(self.req, Bytes::new(), self.client, (&base, Some(shard)), &path).await?;
            if !answer.status().is_success() {
                return Ok(streamed(answer));
            }
            let mut page: Value = answer.json().await.map_err(|e| {
                ApiError::NoLeader(format!("shard {shard} answered what is not a list ({e}); retry"))
            })?;
            if let Some(Value::Array(some)) = page.get_mut(list).map(Value::take) {
                items.extend(some);
            }
            merged.get_or_insert(page);
        }
        // Stable: a shard's own order stands among equal times.
        items.sort_by(|a, b| at(a).as_str().cmp(&at(b).as_str()));
        let mut merged = merged.unwrap_or_else(|| serde_json::json!({}));
        merged[list] = Value::Array(items);
        Ok(HttpResponse::Ok().json(merged))
    }
}

/// Whether a list is merged from every shard when no shard is named.
fn merges(path: &str, query: &str) -> bool {
    let customer = url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "customer");
    path == "/notifications" || (path == "/status" && customer)
}

/// The `shard` a query names, and the query without it (the shard's node
/// does not know the parameter).
fn named_shard(query: &str, shards: Shards) -> Result<(Option<u32>, String), ApiError> {
    let mut named = None;
    let mut rest = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if key != "shard" {
            rest.append_pair(&key, &value);
            continue;
        }
        let shard = value.parse::<u32>().ok().filter(|k| *k < shards.count()).ok_or_else(|| {
            ApiError::BadQuery(format!("shard must be 0 to {}, not {value:?}", shards.count() - 1))
        })?;
        named = Some(shard);
    }
    Ok((named, rest.finish()))
}

fn with_query(path: &str, query: &str) -> String {
    match query {
        "" => path.to_owned(),
        query => format!("{path}?{query}"),
    }
}

/// The shard a placement goes to: its products'; for one that draws on
/// none, its `Idempotency-Key`'s. `None`: any (and for a body that is not
/// an order, the shard it goes to says what is wrong with it).
fn placed_on(req: &HttpRequest, body: &[u8], shards: Shards) -> Result<Option<u32>, ApiError> {
    #[derive(Deserialize)]
    struct Placement {
        #[serde(default)]
        items: Vec<Line>,
    }
    #[derive(Deserialize)]
    struct Line {
        sku: String,
    }
    let Ok(placement) = serde_json::from_slice::<Placement>(body) else { return Ok(None) };
    let skus: Option<Vec<Sku>> = placement.items.iter().map(|line| Sku::parse(&line.sku).ok()).collect();
    let Some(skus) = skus else { return Ok(None) };
    let on = shards.of_lines(&skus).map_err(|e| ApiError::Node(Refused::Invalid(e.0).into()))?;
    let key = req.headers().get("idempotency-key").and_then(|k| k.to_str().ok());
    Ok(on.or_else(|| key.map(|key| partition(key, shards.count()))))
}

/// The shard of a new product's `sku`, if the body names a valid one.
fn product_on(body: &[u8], shards: Shards) -> Option<u32> {
    #[derive(Deserialize)]
    struct NewProduct {
        sku: String,
    }
    let product = serde_json::from_slice::<NewProduct>(body).ok()?;
    Sku::parse(&product.sku).ok().map(|sku| shards.of_sku(&sku))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_shard_is_taken_out_of_the_query() {
        let shards = Shards::new(4);
        let (named, rest) = named_shard("workflow=taxi&shard=2&status=paid", shards).unwrap();
        assert_eq!((named, rest.as_str()), (Some(2), "workflow=taxi&status=paid"));
        assert_eq!(named_shard("customer=a", shards).unwrap(), (None, "customer=a".to_owned()));
        let refused = named_shard("shard=4", shards).unwrap_err().to_string();
        assert!(refused.contains("shard must be 0 to 3"), "{refused}");
    }

    #[test]
    fn customer_lists_and_notifications_merge_work_lists_do_not() {
        assert!(merges("/status", "customer=alice"));
        assert!(merges("/notifications", "customer=alice"));
        assert!(!merges("/status", "workflow=taxi&status=paid"));
        assert!(!merges("/events", "customer=alice"), "live streams: one shard at a time");
    }

    #[test]
    fn a_placement_goes_to_its_products_shard_or_by_its_key() {
        let shards = Shards::new(8);
        let sku = Sku::parse("latte").unwrap();
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Idempotency-Key", "k-1"))
            .to_http_request();
        let order = br#"{"customer":"a","items":[{"sku":"latte","qty":2}],"address":"x","payment":"card"}"#;
        assert_eq!(
            placed_on(&req, order, shards).unwrap(),
            Some(shards.of_sku(&sku)),
            "the key does not matter"
        );
        let call = br#"{"customer":"a","address":"x","payment":"none"}"#;
        assert_eq!(
            placed_on(&req, call, shards).unwrap(),
            Some(partition("k-1", 8)),
            "a retry finds the first try"
        );
        let bare = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(placed_on(&bare, call, shards).unwrap(), None, "any shard");
        assert_eq!(placed_on(&bare, b"{", shards).unwrap(), None, "any shard says what is wrong");
        let other = (0..)
            .map(|n| format!("s{n}"))
            .find(|s| shards.of_sku(&Sku::parse(s).unwrap()) != shards.of_sku(&sku));
        let two = format!(r#"{{"items":[{{"sku":"latte"}},{{"sku":"{}"}}]}}"#, other.unwrap());
        let refused = placed_on(&bare, two.as_bytes(), shards).unwrap_err();
        assert_eq!(actix_web::ResponseError::status_code(&refused), 422, "{refused}");
    }

    #[test]
    fn a_new_product_goes_to_its_skus_shard() {
        let shards = Shards::new(8);
        let sku = Sku::parse("latte").unwrap();
        assert_eq!(product_on(br#"{"sku":"latte","name":"L","price":1}"#, shards), Some(shards.of_sku(&sku)));
        assert_eq!(product_on(b"not json", shards), None, "any shard says what is wrong");
    }
}
