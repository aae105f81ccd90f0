//! The public port of a node of a cluster split into shards
//! (`stream.shards > 1`): every request goes to the node that leads its
//! shard ([`super::by_shard`] says which), here on this node's own
//! loopback port for the shards it leads, elsewhere to the node that
//! holds the shard's lease, at most once.
//!
//! A placement goes to the shard of the products it draws on, so its
//! stock or pool is decided in one place. An order of a workflow that
//! limits how many orders a party holds at once (a taxi driver on one
//! ride) goes to its workflow's shard, where that count is kept; one that
//! draws on nothing goes by its `Idempotency-Key` (so a retry finds the
//! first try), or without one to a shard this node leads. A customer's
//! orders, what they were told and the work lists are read from every
//! shard and merged, oldest first (a work list's cursor then holds one
//! position per shard); the other lists are read one shard at a time
//! (`shard=`), and `shard=` also picks the shard that answers what any
//! shard could (`GET /health?shard=2`). What a shard's leader answers
//! comes back as it is.

mod health;
mod lists;

use super::by_shard::{route, Route};
use super::{
    relay, relay_as, streamed, Client, Following, Hop, LocalReads, To, BODY_LIMIT, FORWARDED, HOP, SHARD,
    SUBSCRIPTION_ID,
};
use crate::domain::partition::partition;
use crate::domain::shard::Shards;
use crate::domain::{Sku, Workflows};
use crate::error::Refused;
use crate::http::ApiError;
use actix_web::web::{self, Bytes, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What a node knows of each shard: whether it leads it (and where it
/// serves it), or which node does.
pub struct ShardMap {
    shards: Shards,
    /// Which workflows keep a count per party, and the default workflow.
    workflows: Arc<Workflows>,
    groups: Vec<Arc<Following>>,
    /// Turns over the shards for requests any shard may take.
    turn: AtomicUsize,
    /// The cluster's hop key, once the node joined it.
    hop: OnceLock<String>,
    /// `http.trusted_proxies`: who may say who the caller is.
    trusted: Vec<IpAddr>,
}

impl ShardMap {
    /// The router of `shards`, for `workflows`, believing `trusted`
    /// proxies (`http.trusted_proxies`) on who the caller is.
    pub fn new(shards: Shards, workflows: Arc<Workflows>, trusted: Vec<IpAddr>) -> Arc<ShardMap> {
        let groups = (0..shards.count()).map(|_| Arc::new(Following::default())).collect();
        let (turn, hop) = (AtomicUsize::new(0), OnceLock::new());
        Arc::new(ShardMap { shards, workflows, groups, turn, hop, trusted })
    }

    /// The cluster's hop key ([`crate::cluster::replica::hop_key`]), which
    /// this router sends with each request it routes to another node or a
    /// shard, and believes another router's marks by.
    pub fn set_hop_key(&self, key: String) {
        let _ = self.hop.set(key);
    }

    /// Whether another router sent `req` on: it carries the marks and the
    /// cluster's hop key. A client's marks are not believed (they would
    /// steer a request past its shard's placement).
    fn hopped(&self, req: &HttpRequest) -> bool {
        let Some(key) = self.hop.get() else { return false };
        let given = req.headers().get(HOP).map(|v| v.as_bytes()).unwrap_or_default();
        req.headers().contains_key(FORWARDED) && crate::auth::same_secret(given, key.as_bytes())
    }

    /// Who the caller of `req` is ([`Asked::caller`]): what the router
    /// that sent it on said, if another did (`hopped`), else as a node
    /// decides it, by `http.trusted_proxies`.
    fn caller(&self, req: &HttpRequest, hopped: bool) -> String {
        let open = crate::domain::access::Principal::Open;
        crate::http::client_by(req, &open, hopped, |ip| self.trusted.contains(&ip))
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
            .service(health::live)
            .service(health::ready)
            .service(health::metrics)
            .configure(crate::http::console::follower_routes)
            .default_service(web::to(dispatch));
    }
}

/// A request on its way to its shard's leader.
struct Asked<'a> {
    req: &'a HttpRequest,
    map: &'a ShardMap,
    client: &'a Client,
    forwarded: bool,
    /// Who the caller is (`X-Client-Id` on each hop): the router that took
    /// the request decides, by `http.trusted_proxies`, as a node does; a
    /// router another sent it on to keeps what that one said. So the
    /// caller's own header counts only from a trusted proxy, and every
    /// shard counts the caller's rate by the caller, not by the node that
    /// forwarded it.
    caller: String,
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
        let method = (reqwest::Method::from_bytes(self.req.method().as_str().as_bytes()).ok(), body);
        let (Some(method), body) = method else {
            return Err(ApiError::NoRoute(self.req.method().to_string()));
        };
        // A subscription's id, from the node that routed it for this shard.
        let id = self.req.headers().get(SUBSCRIPTION_ID).and_then(|id| id.to_str().ok());
        let id = id.filter(|_| self.sent_for().is_some()).map(|id| (SUBSCRIPTION_ID, id.to_owned()));
        let to = self.to(&base, shard);
        Ok(streamed(relay_as(self.req, (method, body), self.client, to, &path, id).await?))
    }

    /// An order's status, command side or delivery, or a product, from
    /// this node's copy of `shard` while another node leads it, as a
    /// failover follower answers them (`None`: the leader is asked).
    async fn read_here(&self, shard: Option<u32>) -> Result<Option<HttpResponse>, ApiError> {
        let Some((group, local)) = shard.and_then(|k| self.copy_of(k)) else { return Ok(None) };
        let segments: Vec<&str> = self.req.path().trim_start_matches('/').split('/').collect();
        let req = self.req;
        let answer = match segments.as_slice() {
            ["status", id] => local.status(req, id).await?.map(serde_json::to_value),
            ["orders", id] => local.order(req, id).await?.map(serde_json::to_value),
            ["deliveries", id] => local.delivery(req, id).await?.map(serde_json::to_value),
            ["products", sku] => local.product(req, sku).await?.map(serde_json::to_value),
            _ => None,
        };
        let Some(Ok(answer)) = answer else { return Ok(None) };
        group.local_reads.fetch_add(1, Ordering::Relaxed);
        Ok(Some(HttpResponse::Ok().json(answer)))
    }

    /// A list (`GET /status`, `GET /notifications`) with `query`, from this
    /// node's copy of `shard` while another node leads it (`None`: the
    /// leader is asked).
    async fn list_here(&self, shard: u32, query: &str) -> Result<Option<Value>, ApiError> {
        let Some((group, local)) = self.copy_of(shard) else { return Ok(None) };
        let listed = super::local_list(&local, self.req, query).await?;
        if listed.is_some() {
            group.local_reads.fetch_add(1, Ordering::Relaxed);
        }
        Ok(listed)
    }

    /// The group of `shard` and its copy's reads, if this node may answer
    /// this request from it: a read, asked of this node (not forwarded
    /// here by another), of a shard another node leads.
    fn copy_of(&self, shard: u32) -> Option<(&Following, Arc<LocalReads>)> {
        let group = &self.map.groups[shard as usize];
        if self.forwarded || self.req.method() != actix_web::http::Method::GET || group.here().is_some() {
            return None;
        }
        Some((group, group.local()?))
    }

    /// Where a request for `shard` goes at `base`: marked as routed, with
    /// the cluster's hop key.
    fn to<'b>(&'b self, base: &'b str, shard: u32) -> To<'b> {
        let key = self.map.hop.get().map_or("", String::as_str);
        (base, Some(Hop { shard, key, caller: &self.caller }))
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
    let forwarded = map.hopped(&req);
    let caller = map.caller(&req, forwarded);
    let asked = Asked { req: &req, map: &map, client: &client, forwarded, caller };
    let (shards, query) = (map.shards, req.query_string());
    if let Some(shard) = asked.sent_for() {
        return asked.send(Some(shard), body, query).await;
    }
    match route {
        Route::Order(_) | Route::Product(_) => {
            let shard = route.shard(shards);
            match asked.read_here(shard).await? {
                Some(answer) => Ok(answer),
                None => asked.send(shard, body, query).await,
            }
        }
        Route::Placement => {
            let shard = placed_on(&req, &body, shards, &map.workflows)?;
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
            match (named, lists::merged(req.path(), query)) {
                (Some(shard), _) => asked.send(Some(shard), body, &rest).await,
                (None, Some(lists::Merged::Page)) => asked.merged_page().await,
                (None, Some(list)) => asked.merged(list).await,
                // Neither list: any shard says what is wrong.
                (None, None) if req.path() == "/status" => asked.send(None, body, query).await,
                (None, None) if req.path() == "/events" => asked.merged_events().await,
                (None, None) => Err(ApiError::BadQuery(format!(
                    "on a cluster split into {} shards, {} is read one shard at a time: add shard=0 to shard={}",
                    shards.count(),
                    req.path(),
                    shards.count() - 1
                ))),
            }
        }
        Route::Everywhere if req.path() == "/subscriptions" => asked.subscribe(body).await,
        Route::Everywhere => asked.everywhere(body).await,
    }
}

impl Asked<'_> {
    /// Sends the request to every shard in turn, each whatever the others
    /// answered (a shard that could not is told again by the same request,
    /// which each shard takes as often as it comes): the first refusal is
    /// the answer, else the last shard's.
    async fn everywhere(&self, body: Bytes) -> Result<HttpResponse, ApiError> {
        let path = with_query(self.req.path(), self.req.query_string());
        let (mut refused, mut last) = (None, None);
        for shard in 0..self.map.shards.count() {
            let answer = async {
                let base = self.map.target(shard, self.forwarded)?;
                relay(self.req, body.clone(), self.client, self.to(&base, shard), &path).await
            };
            match answer.await {
                Ok(answer) if answer.status().is_success() => last = Some(answer),
                failed => {
                    refused.get_or_insert(failed);
                }
            }
        }
        match (refused, last) {
            (Some(refused), _) => refused.map(streamed),
            (None, Some(last)) => Ok(streamed(last)),
            (None, None) => Ok(HttpResponse::NoContent().finish()),
        }
    }

    /// A webhook subscription, kept by every shard's notifications under
    /// one id: the first shard gives it, the others take it. If one cannot,
    /// those that did drop it again, and its answer is the answer.
    async fn subscribe(&self, body: Bytes) -> Result<HttpResponse, ApiError> {
        let path = with_query(self.req.path(), self.req.query_string());
        let first = self.map.target(0, self.forwarded)?;
        let answer = relay(self.req, body.clone(), self.client, self.to(&first, 0), &path).await?;
        if !answer.status().is_success() {
            return Ok(streamed(answer));
        }
        let location = answer.headers().get("location").cloned();
        let made: Value = answer.json().await.map_err(|e| {
            ApiError::NoLeader(format!("shard 0 answered what is not a subscription ({e}); retry"))
        })?;
        let id = made["id"].as_u64().ok_or_else(|| ApiError::NoLeader("shard 0 gave no id; retry".into()))?;
        for shard in 1..self.map.shards.count() {
            let taken = async {
                let base = self.map.target(shard, self.forwarded)?;
                let to = self.to(&base, shard);
                let post = (reqwest::Method::POST, body.clone());
                relay_as(self.req, post, self.client, to, &path, Some((SUBSCRIPTION_ID, id.to_string())))
                    .await
            };
            match taken.await {
                Ok(answer) if answer.status().is_success() => {}
                refused => {
                    self.unsubscribe(id, shard).await;
                    return refused.map(streamed);
                }
            }
        }
        let mut created = HttpResponse::Created();
        if let Some(location) = location {
            created.insert_header((actix_web::http::header::LOCATION, location.as_bytes()));
        }
        Ok(created.json(made))
    }

    /// Drops subscription `id` from the shards before `upto`, as far as
    /// they can be reached (one that cannot keeps it until it is dropped
    /// again with `DELETE /subscriptions/{id}`).
    async fn unsubscribe(&self, id: u64, upto: u32) {
        for shard in 0..upto {
            let dropped = async {
                let base = self.map.target(shard, self.forwarded)?;
                let delete = (reqwest::Method::DELETE, Bytes::new());
                let path = format!("/subscriptions/{id}");
                relay_as(self.req, delete, self.client, self.to(&base, shard), &path, None).await
            };
            if let Err(e) = dropped.await {
                tracing::warn!(shard, subscription = id, error = %e,
                    "a subscription half made could not be dropped from this shard; DELETE it again");
            }
        }
    }
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

/// The shard a placement goes to: its workflow's if the workflow counts
/// a party's orders, else its products'; for one that draws on none, its
/// `Idempotency-Key`'s. `None`: any (and for a body that is not an order,
/// the shard it goes to says what is wrong with it).
fn placed_on(
    req: &HttpRequest,
    body: &[u8],
    shards: Shards,
    workflows: &Workflows,
) -> Result<Option<u32>, ApiError> {
    #[derive(Deserialize)]
    struct Placement {
        #[serde(default)]
        items: Vec<Line>,
        #[serde(default)]
        workflow: Option<String>,
    }
    #[derive(Deserialize)]
    struct Line {
        sku: String,
    }
    let Ok(placement) = serde_json::from_slice::<Placement>(body) else { return Ok(None) };
    let workflow = workflows.get(placement.workflow.as_deref().unwrap_or(workflows.default_name()));
    if let Some(workflow) = workflow.ok().filter(|w| w.max_active_per_party.is_some()) {
        // How many orders a party holds is counted where they all are.
        return Ok(Some(partition(&workflow.name, shards.count())));
    }
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
    fn a_placement_goes_to_its_products_shard_or_by_its_key() {
        let shards = Shards::new(8);
        let workflows = crate::config::Settings::default().workflow_rules();
        let sku = Sku::parse("latte").unwrap();
        let req = actix_web::test::TestRequest::default()
            .insert_header(("Idempotency-Key", "k-1"))
            .to_http_request();
        let order = br#"{"customer":"a","items":[{"sku":"latte","qty":2}],"address":"x","payment":"card"}"#;
        assert_eq!(
            placed_on(&req, order, shards, &workflows).unwrap(),
            Some(shards.of_sku(&sku)),
            "the key does not matter"
        );
        let call = br#"{"customer":"a","address":"x","payment":"none"}"#;
        assert_eq!(
            placed_on(&req, call, shards, &workflows).unwrap(),
            Some(partition("k-1", 8)),
            "a retry finds the first try"
        );
        let bare = actix_web::test::TestRequest::default().to_http_request();
        assert_eq!(placed_on(&bare, call, shards, &workflows).unwrap(), None, "any shard");
        assert_eq!(placed_on(&bare, b"{", shards, &workflows).unwrap(), None, "any shard says what is wrong");
        let other = (0..)
            .map(|n| format!("s{n}"))
            .find(|s| shards.of_sku(&Sku::parse(s).unwrap()) != shards.of_sku(&sku));
        let two = format!(r#"{{"items":[{{"sku":"latte"}},{{"sku":"{}"}}]}}"#, other.unwrap());
        let refused = placed_on(&bare, two.as_bytes(), shards, &workflows).unwrap_err();
        assert_eq!(actix_web::ResponseError::status_code(&refused), 422, "{refused}");
        // A taxi driver holds one ride at a time, counted on one shard.
        let taxi = br#"{"customer":"a","workflow":"taxi","address":"x","payment":"none"}"#;
        assert_eq!(placed_on(&req, taxi, shards, &workflows).unwrap(), Some(partition("taxi", 8)));
    }

    #[test]
    fn a_new_product_goes_to_its_skus_shard() {
        let shards = Shards::new(8);
        let sku = Sku::parse("latte").unwrap();
        assert_eq!(product_on(br#"{"sku":"latte","name":"L","price":1}"#, shards), Some(shards.of_sku(&sku)));
        assert_eq!(product_on(b"not json", shards), None, "any shard says what is wrong");
    }
}
