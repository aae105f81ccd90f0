//! `fulfil serve` nodes of a cluster split into shards (`stream.shards`)
//! on one JetStream server on loopback: each node leads its share of the
//! shards and forwards the rest; a node killed with `kill -9` under load
//! leaves its shards to the others; a node that joins takes a share; a
//! node paused past its leases follows its shards again; three nodes
//! restarted one by one lose nothing.
//! Nothing acknowledged is lost, nothing happens twice, and each
//! product's stock, decided on its one shard, is conserved.

use crate::failover::start_with;
use crate::helpers::{add_products, check_acknowledged, check_store, client, Acked, Load, Proc};
use crate::nats::Nats;
use crate::tools::tool;
use fulfil::domain::shard::Shards;
use fulfil::domain::{OrderId, Sku};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const SHARDS: u32 = 4;
const LEASE_MS: u64 = 1000;
/// Products on (most likely) more than one shard.
const INITIAL: [(&str, u64); 4] =
    [("MUG", 1_000_000), ("CUP", 1_000_000), ("PLATE", 1_000_000), ("RARE", 40)];
const CLIENTS: usize = 3;

fn shards() -> Shards {
    Shards::new(SHARDS)
}

fn start(nats: &Nats, data: &Path, name: &str) -> Proc {
    start_sharded(nats, data, name, &[])
}

/// A node of a cluster of [`SHARDS`] shards, with `more` settings.
pub(crate) fn start_sharded(nats: &Nats, data: &Path, name: &str, more: &[(&str, &str)]) -> Proc {
    let shards = SHARDS.to_string();
    let mut env = vec![("FULFIL_STREAM__SHARDS", shards.as_str())];
    env.extend_from_slice(more);
    start_with(nats, data, name, &env)
}

/// What `GET /health/live` says of each shard: whether the node leads it,
/// and whether it knows who does.
async fn led_here(address: &str) -> Option<Vec<(bool, bool)>> {
    let r = client().get(format!("{address}/health/live")).send().await.ok()?;
    let body: Value = r.json().await.ok()?;
    let led = |s: &Value| (s["here"] == true, s["here"] == true || s["leader"].is_string());
    Some(body["shards"].as_array()?.iter().map(led).collect())
}

/// Waits until each shard is led by exactly one of `nodes`, each node
/// leading `share[i]` of them, and every node ready and knowing every
/// shard's leader. Returns which node leads each shard.
pub(crate) async fn spread(nodes: &[&Proc], share: &[usize]) -> Vec<usize> {
    spread_as(nodes, |counts| counts == share, &format!("{share:?}")).await
}

/// As [`spread`], with each node leading its fair share (the floor or
/// the ceiling of `SHARDS / nodes`), however the shards fell.
async fn spread_fairly(nodes: &[&Proc]) -> Vec<usize> {
    let fair = (SHARDS as usize / nodes.len())..=(SHARDS as usize).div_ceil(nodes.len());
    spread_as(nodes, |counts| counts.iter().all(|c| fair.contains(c)), &format!("{fair:?} each")).await
}

async fn spread_as(nodes: &[&Proc], fair: impl Fn(&[usize]) -> bool, share: &str) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut known = true;
        let mut led: Vec<Vec<bool>> = Vec::new();
        for node in nodes {
            let shards = led_here(&node.address).await.unwrap_or_default();
            known &= shards.len() == SHARDS as usize && shards.iter().all(|(_, known)| *known);
            led.push(shards.into_iter().map(|(here, _)| here).collect());
        }
        let counts: Vec<usize> = led.iter().map(|l| l.iter().filter(|h| **h).count()).collect();
        let owners: Vec<Vec<usize>> = (0..SHARDS as usize)
            .map(|k| (0..nodes.len()).filter(|i| led[*i].get(k) == Some(&true)).collect())
            .collect();
        let mut ready = true;
        for node in nodes {
            let r = client().get(format!("{}/health/ready", node.address)).send().await;
            ready &= r.is_ok_and(|r| r.status().is_success());
        }
        if fair(&counts) && owners.iter().all(|o| o.len() == 1) && ready && known {
            return owners.iter().map(|o| o[0]).collect();
        }
        assert!(
            Instant::now() < deadline,
            "shards not spread as {share}: each node leads {counts:?}, {led:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The products of `INITIAL` on `shard`.
fn initial_on(shard: u32) -> Vec<(&'static str, u64)> {
    INITIAL.iter().copied().filter(|(sku, _)| shards().of_sku(&Sku::parse(sku).unwrap()) == shard).collect()
}

/// Stops the load: the orders acknowledged, once every answer was 201, or
/// 503/429 with `Retry-After`.
async fn finished(loads: Vec<Load>) -> Vec<Acked> {
    let mut acked = Vec::new();
    for load in loads {
        let (more, unexpected) = load.finish().await;
        assert!(unexpected.is_empty(), "answers other than 201, or 503/429 with Retry-After: {unexpected:?}");
        acked.extend(more);
    }
    acked
}

/// Each acknowledged order's id names the shard of what it drew on.
async fn on_their_shards(address: &str, acked: &[Acked]) {
    for a in acked {
        let order: Value = get_json(format!("{address}/orders/{}", a.id)).await;
        let sku = Sku::parse(order["items"][0]["sku"].as_str().unwrap()).unwrap();
        let id = OrderId::parse(&a.id).unwrap();
        assert_eq!(
            shards().of_order(&id),
            shards().of_sku(&sku),
            "{} is not on its product's shard: {order}",
            a.id
        );
    }
}

/// The ids of customer `c0`'s orders, from every shard, oldest first;
/// they span more than one shard.
async fn customer_orders(address: &str) -> Vec<String> {
    let r = client().get(format!("{address}/status?customer=c0")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap();
    let ids: Vec<String> = listed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_str().unwrap().to_owned())
        .collect();
    let on: std::collections::BTreeSet<u32> =
        ids.iter().map(|id| shards().of_order(&OrderId::parse(id).unwrap())).collect();
    assert!(on.len() > 1, "c0's orders from more than one shard: {on:?}");
    ids
}

/// What `GET url` answers, as JSON.
async fn get_json(url: String) -> Value {
    client().get(url).send().await.unwrap().json().await.unwrap()
}

/// Stops `node` with SIGTERM: it must exit cleanly. What it logged.
async fn stopped(node: Proc) -> String {
    node.signal("TERM");
    let (status, log) = node.wait_logged(Duration::from_secs(15)).await;
    assert!(status.success(), "the node did not stop cleanly ({status}):\n{log}");
    log
}

/// Every shard's store in `dir`, checked, against the products on it.
fn check_shards(dir: &Path) -> usize {
    (0..SHARDS).map(|k| check_store(&dir.join(format!("shard-{k}")), &initial_on(k)).0).sum()
}

/// Stops `nodes` (each with its data directory) with SIGTERM in turn,
/// the last once it leads every shard, the others having handed theirs
/// over: its store of each shard is then whole and settled (a follower's
/// copy of a shard may end a little behind its leader's services). That
/// store checked: the orders in it, and what the last node logged.
async fn stop_all_and_check(mut nodes: Vec<(Proc, &Path)>) -> (usize, String) {
    let (last, dir) = nodes.pop().expect("a node");
    for (node, _) in nodes {
        stopped(node).await;
    }
    spread(&[&last], &[SHARDS as usize]).await;
    let log = stopped(last).await;
    (check_shards(dir), log)
}

#[tokio::test]
async fn three_nodes_share_the_shards_and_a_node_killed_under_load_leaves_them_to_the_others() {
    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<Proc>> =
        dirs.iter().enumerate().map(|(i, d)| Some(start(&nats, d.path(), &format!("n{i}")))).collect();
    let owners = spread_fairly(&nodes.iter().flatten().collect::<Vec<_>>()).await;
    let address = |nodes: &[Option<Proc>], i: usize| nodes[i].as_ref().unwrap().address.clone();
    let skus: Vec<u32> = INITIAL.iter().map(|(s, _)| shards().of_sku(&Sku::parse(s).unwrap())).collect();
    assert!(skus.iter().any(|k| *k != skus[0]), "the products span shards: {skus:?}");
    // Each through a node that does not lead its shard: forwarded.
    for (sku, stock) in INITIAL {
        let via = (owners[shards().of_sku(&Sku::parse(sku).unwrap()) as usize] + 1) % 3;
        add_products(&address(&nodes, via), &[(sku, stock as i64)]).await;
    }

    let loads: Vec<Load> = (0..3).map(|i| Load::drive(&address(&nodes, i), CLIENTS, i)).collect();
    tokio::time::sleep(Duration::from_millis(fastrand::u64(600..1000))).await;
    // The node that leads the most: the most to move.
    let victim = (0..3).max_by_key(|i| owners.iter().filter(|o| *o == i).count()).unwrap();
    let killed = nodes[victim].take().unwrap();
    killed.signal("KILL");
    let killed_at = Instant::now();
    assert!(!killed.wait(Duration::from_secs(5)).await.success());
    spread(&nodes.iter().flatten().collect::<Vec<_>>(), &[2, 2]).await;
    let took = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let acked = finished(loads).await;
    println!(
        "the other two led all {SHARDS} shards {took:?} after n{victim} was killed (lease {LEASE_MS} ms)"
    );
    assert!(took < Duration::from_millis(LEASE_MS + 3000), "takeover took {took:?}");
    assert!(acked.len() > 50, "only {} orders acknowledged", acked.len());

    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let survivor = address(&nodes, survivors[0]);
    check_acknowledged(&survivor, &acked).await;
    on_their_shards(&survivor, &acked).await;
    // A customer's orders, from every shard.
    let listed: Value = get_json(format!("{survivor}/status?customer=c0")).await;
    let orders = listed["orders"].as_array().unwrap();
    let c0 = acked.iter().filter(|a| orders.iter().any(|o| o["order_id"] == a.id.as_str())).count();
    assert!(c0 > 0 && orders.len() >= c0, "{listed}");
    let shards_listed: std::collections::BTreeSet<u32> = orders
        .iter()
        .map(|o| shards().of_order(&OrderId::parse(o["order_id"].as_str().unwrap()).unwrap()))
        .collect();
    assert!(shards_listed.len() > 1, "a customer's orders from more than one shard: {shards_listed:?}");
    let at = |o: &Value| o["history"][0]["at"].as_str().unwrap().to_owned();
    assert!(orders.windows(2).all(|w| at(&w[0]) <= at(&w[1])), "oldest first, across shards");

    lists_across_shards(&survivor).await;

    let last: Vec<(Proc, &Path)> =
        survivors.iter().map(|i| (nodes[*i].take().unwrap(), dirs[*i].path())).collect();
    let (stored, _) = stop_all_and_check(last).await;
    assert!(stored >= acked.len(), "{stored} orders stored, {} acknowledged", acked.len());
    println!("{} acknowledged orders, {stored} in the shards' stores", acked.len());
}

#[tokio::test]
async fn a_node_that_joins_takes_its_share_under_load_and_nothing_is_lost() {
    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let first = start(&nats, dirs[0].path(), "n0");
    spread(&[&first], &[SHARDS as usize]).await;
    add_products(&first.address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let mut loads = vec![Load::drive(&first.address, CLIENTS, 0)];
    tokio::time::sleep(Duration::from_millis(400)).await;

    let second = start(&nats, dirs[1].path(), "n1");
    let joined_at = Instant::now();
    spread(&[&first, &second], &[2, 2]).await;
    println!("the node that joined led its share {:?} after it started", joined_at.elapsed());
    loads.push(Load::drive(&second.address, CLIENTS, 1));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let acked = finished(loads).await;
    assert!(acked.len() > 50, "only {} orders acknowledged", acked.len());
    for node in [&first, &second] {
        check_acknowledged(&node.address, &acked).await;
    }
    // Each node merges a customer's orders from every shard, those led by
    // the other node too, and reaches every shard's leader by name.
    let (mine, theirs) = (customer_orders(&first.address).await, customer_orders(&second.address).await);
    assert_eq!(mine, theirs, "the same list through either node");
    lists_across_shards(&second.address).await;
    webhooks_across_shards(&first.address, &second.address).await;
    one_ride_at_a_time(&first.address, &second.address).await;
    read_where_followed(&first.address, &second.address, &acked).await;
    for node in [&first, &second] {
        for k in 0..SHARDS {
            let metrics = client().get(format!("{}/metrics?shard={k}", node.address)).send().await.unwrap();
            let metrics = metrics.text().await.unwrap();
            assert!(metrics.contains("fulfil_failover_leading 1"), "shard {k}'s leader's metrics: {metrics}");
        }
    }
    // An order drawing on two shards' products is refused, naming both.
    let (a, b) = INITIAL
        .iter()
        .flat_map(|(a, _)| INITIAL.iter().map(move |(b, _)| (*a, *b)))
        .find(|(a, b)| shards().of_sku(&Sku::parse(a).unwrap()) != shards().of_sku(&Sku::parse(b).unwrap()))
        .unwrap();
    let body = json!({"customer": "x", "items": [{"sku": a, "qty": 1}, {"sku": b, "qty": 1}],
        "address": "Seoul", "payment": "card", "card": "4111111111111111"});
    let r = client().post(format!("{}/orders", second.address)).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("different shards"), "{problem}");

    let (stored, _) = stop_all_and_check(vec![(second, dirs[1].path()), (first, dirs[0].path())]).await;
    assert!(stored >= acked.len(), "{stored} orders stored, {} acknowledged", acked.len());
}

/// A node paused past its leases (SIGSTOP: a long GC, a frozen VM) while
/// the other takes its shards over: once resumed, each shard it led finds
/// itself deposed, stops serving it, empties its store and follows it
/// again, while the node goes on, and it takes its share back. Through
/// either node, every answer is 201 or 503 with `Retry-After`, and
/// nothing acknowledged is lost or done twice.
#[tokio::test]
async fn a_node_paused_past_its_leases_follows_its_shards_again_and_takes_its_share_back() {
    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (paused, other) = (start(&nats, dirs[0].path(), "n0"), start(&nats, dirs[1].path(), "n1"));
    spread(&[&paused, &other], &[2, 2]).await;
    add_products(&other.address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let loads: Vec<Load> =
        [&paused, &other].iter().enumerate().map(|(i, n)| Load::drive(&n.address, CLIENTS, i)).collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    paused.signal("STOP");
    spread(&[&other], &[SHARDS as usize]).await;
    paused.signal("CONT");
    let resumed_at = Instant::now();
    spread(&[&paused, &other], &[2, 2]).await;
    println!("the paused node led its share again {:?} after it resumed", resumed_at.elapsed());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = finished(loads).await;
    assert!(acked.len() > 50, "only {} orders acknowledged", acked.len());
    for node in [&paused, &other] {
        check_acknowledged(&node.address, &acked).await;
    }

    // The paused node's stores, refilled from the stream, checked.
    let (stored, log) = stop_all_and_check(vec![(other, dirs[1].path()), (paused, dirs[0].path())]).await;
    assert!(log.contains("no longer leads the shard"), "its shards were deposed:\n{log}");
    assert!(log.contains("emptying it to fill it again from the stream"), "{log}");
    assert!(stored >= acked.len(), "{stored} orders stored, {} acknowledged", acked.len());
}

/// The three nodes of a sharded cluster restarted one by one under load
/// (SIGTERM, started again on the same store): each hands its shards
/// over, and takes a share again once back. Every answer is 201 or 503
/// with `Retry-After`, and nothing acknowledged is lost or done twice.
#[tokio::test]
async fn a_rolling_restart_of_three_sharded_nodes_under_load_loses_nothing() {
    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Proc> =
        dirs.iter().enumerate().map(|(i, d)| start(&nats, d.path(), &format!("n{i}"))).collect();
    spread_fairly(&nodes.iter().collect::<Vec<_>>()).await;
    add_products(&nodes[0].address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let mut loads: Vec<Option<Load>> =
        nodes.iter().enumerate().map(|(i, n)| Some(Load::drive(&n.address, CLIENTS, i))).collect();
    let mut acked = Vec::new();
    for i in 0..nodes.len() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // As a Service does: no new requests to a node being stopped.
        acked.extend(finished(vec![loads[i].take().unwrap()]).await);
        stopped(nodes.remove(i)).await;
        nodes.insert(i, start(&nats, dirs[i].path(), &format!("n{i}")));
        let owners = spread_fairly(&nodes.iter().collect::<Vec<_>>()).await;
        println!("restarted n{i}: the shards are led by {owners:?}");
        loads[i] = Some(Load::drive(&nodes[i].address, CLIENTS, 10 + i));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    acked.extend(finished(loads.into_iter().flatten().collect()).await);
    assert!(acked.len() > 50, "only {} orders acknowledged", acked.len());
    for node in &nodes {
        check_acknowledged(&node.address, &acked).await;
    }
    let (stored, _) =
        stop_all_and_check(nodes.into_iter().zip(dirs.iter().map(TempDir::path)).collect()).await;
    assert!(stored >= acked.len(), "{stored} orders stored, {} acknowledged", acked.len());
}

/// Waits until every shard's services have processed its whole log.
async fn settled(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for k in 0..SHARDS {
        loop {
            let health: Value = get_json(format!("{address}/health?shard={k}")).await;
            let services = health["services"].as_object().expect("a shard's worker health");
            if services.values().all(|s| s["lag"] == 0) {
                break;
            }
            assert!(Instant::now() < deadline, "shard {k} did not settle: {health}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The ids of a work list, page by page (`limit` each) from `path`.
async fn paged(address: &str, path: &str, limit: usize) -> Vec<String> {
    let (mut ids, mut after) = (Vec::new(), None::<String>);
    loop {
        let cursor = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
        let r = client().get(format!("{address}{path}&limit={limit}{cursor}")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let page: Value = r.json().await.unwrap();
        let orders = page["orders"].as_array().unwrap();
        assert!(orders.len() <= limit, "{page}");
        ids.extend(orders.iter().map(|o| o["order_id"].as_str().unwrap().to_owned()));
        after = match &page["next"] {
            Value::Null => return ids,
            Value::String(next) => Some(next.clone()),
            next => Some(next.to_string()),
        };
    }
}

/// A work list merged from every shard, paged, holds each shard's list
/// once; a shard's worker health and metrics are read one shard at a
/// time; webhook subscriptions are refused, saying why.
async fn lists_across_shards(address: &str) {
    settled(address).await;
    let list = "/status?workflow=shop&status=in_delivery";
    let merged = paged(address, list, 7).await;
    let mut each = Vec::new();
    for k in 0..SHARDS {
        each.extend(paged(address, &format!("{list}&shard={k}"), 7).await);
    }
    let unique: std::collections::BTreeSet<&String> = merged.iter().collect();
    assert_eq!(unique.len(), merged.len(), "no order twice");
    assert_eq!(unique, each.iter().collect(), "every shard's list, merged");
    assert!(merged.len() > 7, "more than one page: {}", merged.len());
    let r = client().get(format!("{address}{list}&after=3")).send().await.unwrap();
    assert_eq!(r.status(), 400, "a one-shard cursor");
    let get = |path: &str| client().get(format!("{address}{path}")).send();
    let mug = shards().of_sku(&Sku::parse("MUG").unwrap());
    let r = get("/status?workflow=shop&status=in_delivery&shard=9").await.unwrap();
    assert_eq!(r.status(), 400, "no shard 9");
    let r = get("/admin/dead-letters").await.unwrap();
    assert_eq!(r.status(), 400, "an admin list is one shard's");
    let problem: Value = r.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("add shard=0 to shard=3"), "{problem}");
    live_across_shards(address).await;
    let health: Value = get(&format!("/health?shard={mug}")).await.unwrap().json().await.unwrap();
    assert!(health["services"]["order"].is_object(), "the shard's worker health: {health}");
    let metrics = get(&format!("/metrics?shard={mug}")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("fulfil_failover_leading 1"), "the shard's leader's metrics: {metrics}");
    let own = get("/metrics").await.unwrap().text().await.unwrap();
    let here = u8::from(led_here(address).await.unwrap()[mug as usize].0);
    assert!(own.contains(&format!("fulfil_shard_leading{{shard=\"{mug}\"}} {here}")), "{own}");
}

/// Frames of a live stream, read until `done` says so (20 s at most).
async fn frames_until(r: reqwest::Response, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    use futures_util::StreamExt;
    assert_eq!(r.status(), 200);
    let (mut bytes, mut held, mut frames) = (r.bytes_stream(), String::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(&frames) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, bytes.next()).await;
        let chunk = chunk.unwrap_or_else(|_| panic!("the stream went quiet after {frames:?}"));
        held.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on").unwrap()));
        while let Some(end) = held.find("\n\n") {
            frames.push(held.drain(..end + 2).collect());
        }
    }
    frames
}

/// What a frame's `id:` line says.
fn frame_id(frame: &str) -> &str {
    frame.lines().find_map(|l| l.strip_prefix("id: ")).unwrap_or_default()
}

/// A customer's live stream through one node is every shard's: its
/// backlog holds every order's changes, each frame's id a position per
/// shard; reopened with the last id, it goes on with what is new only.
async fn live_across_shards(address: &str) {
    let orders = customer_orders(address).await;
    let told: Value = get_json(format!("{address}/notifications?customer=c0")).await;
    let told = told["notifications"].as_array().unwrap().len();
    let stream = client().get(format!("{address}/events?customer=c0")).send().await.unwrap();
    let frames = frames_until(stream, |frames| frames.len() >= told).await;
    assert_eq!(frames.len(), told, "the backlog is what the customer was told");
    assert!(orders.iter().all(|id| frames.iter().any(|f| f.contains(id.as_str()))), "every shard's orders");
    assert!(frames.iter().all(|f| frame_id(f).split(',').count() == SHARDS as usize), "{frames:?}");
    let last = frame_id(frames.last().unwrap()).to_owned();
    let again = client()
        .get(format!("{address}/events?customer=c0"))
        .header("Last-Event-ID", &last)
        .send()
        .await
        .unwrap();
    let body = json!({"customer": "c0", "items": [{"sku": "RARE", "qty": 1}], "address": "Seoul",
        "payment": "bank_transfer"});
    let r = client().post(format!("{address}/orders")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let new = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let more = frames_until(again, |frames| !frames.is_empty()).await;
    assert!(more[0].contains(new.as_str()), "after {last}, only what is new: {more:?}");
    workflow_stream_resumes(address).await;
}

/// A workflow's live stream through one node starts "now", and says where
/// that is on every shard first (a frame with only an id); reopened with
/// that id, it has what every shard told meanwhile, shards it had seen no
/// event of too.
async fn workflow_stream_resumes(address: &str) {
    let fresh = client().get(format!("{address}/events?workflow=shop")).send().await.unwrap();
    let first = frames_until(fresh, |frames| !frames.is_empty()).await.remove(0);
    let now = frame_id(&first).to_owned();
    assert!(!first.contains("data:") && now.split(',').count() == SHARDS as usize, "{first:?}");
    // Orders on more than one shard while nobody follows.
    let mut placed = Vec::new();
    for (sku, _) in INITIAL {
        let body = json!({"customer": "w", "items": [{"sku": sku, "qty": 1}], "address": "Seoul",
            "payment": "bank_transfer"});
        let r = client().post(format!("{address}/orders")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        placed.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let again = client()
        .get(format!("{address}/events?workflow=shop"))
        .header("Last-Event-ID", &now)
        .send()
        .await
        .unwrap();
    let told = |frames: &[String]| placed.iter().all(|id| frames.iter().any(|f| f.contains(id.as_str())));
    let frames = frames_until(again, told).await;
    assert!(frames.iter().all(|f| frame_id(f).split(',').count() == SHARDS as usize), "{frames:?}");
}

/// A driver holds one ride at a time, whichever nodes the calls came
/// through: a taxi's calls are all on its workflow's shard, where each
/// driver's rides are counted.
async fn one_ride_at_a_time(one: &str, other: &str) {
    let call = json!({"workflow": "taxi", "customer": "yoon", "address": "Seoul station", "payment": "none"});
    let mut calls = Vec::new();
    for node in [one, other] {
        let r = client().post(format!("{node}/orders")).json(&call).send().await.unwrap();
        assert_eq!(r.status(), 201);
        calls.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let taxi = fulfil::domain::partition::partition("taxi", SHARDS);
    for id in &calls {
        assert_eq!(shards().of_order(&OrderId::parse(id).unwrap()), taxi, "{id} on the taxi's shard");
    }
    let by = json!({"by": "driver-a"});
    let r = client().post(format!("{one}/orders/{}/accept", calls[0])).json(&by).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let r = client().post(format!("{other}/orders/{}/accept", calls[1])).json(&by).send().await.unwrap();
    assert_eq!(r.status(), 409);
    let problem: Value = r.json().await.unwrap();
    assert!(problem["type"].as_str().unwrap().ends_with("party-busy"), "{problem}");
    // The ride ends, and the other call is canceled: nothing left half-way.
    for step in ["legs/ride/start", "complete"] {
        let r = client().post(format!("{other}/deliveries/{}/{step}", calls[0])).send().await.unwrap();
        assert!(r.status().is_success(), "{step}: {}", r.text().await.unwrap());
    }
    let r = client().post(format!("{one}/orders/{}/cancel", calls[1])).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

/// Through the node that follows an order's shard, the order's status and
/// command side are read from that node's own copy of the shard, the same
/// as its leader's answer.
async fn read_where_followed(one: &str, other: &str, acked: &[Acked]) {
    let led = led_here(one).await.unwrap();
    let before = (local_reads(one).await, local_reads(other).await);
    let read = &acked[..acked.len().min(20)];
    for a in read {
        let shard = shards().of_order(&OrderId::parse(&a.id).unwrap()) as usize;
        let (leader, follower) = if led[shard].0 { (one, other) } else { (other, one) };
        for path in [format!("/status/{}", a.id), format!("/orders/{}", a.id)] {
            let (there, here) =
                (get_json(format!("{leader}{path}")).await, get_json(format!("{follower}{path}")).await);
            assert_eq!(here, there, "{path}");
        }
    }
    let local = local_reads(one).await + local_reads(other).await - before.0 - before.1;
    assert_eq!(local, 2 * read.len() as u64, "each read through a follower answered by its own copy");

    // The lists merged from every shard: the shards a node follows, from
    // its own copies, the same as their leaders' answers.
    settled(one).await;
    let before = (local_reads(one).await, local_reads(other).await);
    let lists = [
        "/status?customer=c0",
        "/notifications?customer=c0",
        "/status?workflow=shop&status=in_delivery&limit=7",
    ];
    for list in lists {
        let (here, there) =
            (get_json(format!("{one}{list}")).await, get_json(format!("{other}{list}")).await);
        assert_eq!(here, there, "{list} through either node");
        assert!(here
            .as_object()
            .is_some_and(|o| o.values().any(|v| v.as_array().is_some_and(|a| !a.is_empty()))));
    }
    // Each shard is followed by one of the two nodes.
    let local = local_reads(one).await + local_reads(other).await - before.0 - before.1;
    assert_eq!(
        local,
        (lists.len() * SHARDS as usize) as u64,
        "each followed shard's part of a list read here"
    );
}

/// `fulfil_shard_local_reads_total`, over every shard, on the node at
/// `address`.
async fn local_reads(address: &str) -> u64 {
    let metrics = client().get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    let counts = metrics.lines().filter(|l| l.starts_with("fulfil_shard_local_reads_total{"));
    counts.filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

/// The ids of the webhook subscriptions shard `k` keeps, read through the
/// node at `address`.
async fn subscriptions_on(address: &str, k: u32) -> Vec<u64> {
    let listed: Value = get_json(format!("{address}/subscriptions?shard={k}")).await;
    listed["subscriptions"].as_array().unwrap().iter().map(|s| s["id"].as_u64().unwrap()).collect()
}

/// A webhook subscribed through one node is kept by every shard under one
/// id, and gets the changes of orders on every shard; dropped through the
/// other node, no shard keeps it.
async fn webhooks_across_shards(one: &str, other: &str) {
    let (url, got) = crate::webhooks::receiver_keeping(Value::to_string).await;
    let r = client().post(format!("{one}/subscriptions")).json(&json!({"url": url})).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
    for k in 0..SHARDS {
        assert!(subscriptions_on(other, k).await.contains(&id), "shard {k} keeps subscription {id}");
    }
    let mut placed = Vec::new();
    for sku in ["MUG", "RARE"] {
        let body = json!({"customer": "hooked", "items": [{"sku": sku, "qty": 1}], "address": "Seoul",
            "payment": "bank_transfer"});
        let r = client().post(format!("{other}/orders")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        placed.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let on: std::collections::BTreeSet<u32> =
        placed.iter().map(|id| shards().of_order(&OrderId::parse(id).unwrap())).collect();
    assert_eq!(on.len(), 2, "orders on two shards");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !placed.iter().all(|id| got.lock().unwrap().iter().any(|body| body.contains(id.as_str()))) {
        assert!(Instant::now() < deadline, "deliveries for {placed:?}: {:?}", got.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = client().delete(format!("{other}/subscriptions/{id}")).send().await.unwrap();
    assert_eq!(r.status(), 204);
    for k in 0..SHARDS {
        assert!(!subscriptions_on(one, k).await.contains(&id), "shard {k} dropped subscription {id}");
    }
}

#[test]
fn seeding_a_cluster_split_into_shards_is_refused_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["seed", "--data"])
        .arg(dir.path())
        .env("FULFIL_STREAM__URL", "nats://127.0.0.1:4222")
        .env("FULFIL_STREAM__MODE", "failover")
        .env("FULFIL_STREAM__SHARDS", "4")
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("cannot split one store over 4 shards"), "{text}");
}

#[tokio::test]
async fn a_node_that_counts_the_shards_otherwise_is_refused_saying_how_many() {
    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let first = start(&nats, dirs[0].path(), "n0");
    spread(&[&first], &[SHARDS as usize]).await;
    for (shards, dir) in [("2", &dirs[1]), ("1", &dirs[2])] {
        let env = [
            ("FULFIL_STREAM__URL", nats.url.as_str()),
            ("FULFIL_STREAM__MODE", "failover"),
            ("FULFIL_STREAM__NODE", "n1"),
            ("FULFIL_STREAM__SHARDS", shards),
        ];
        let (status, log) = Proc::refused(dir.path(), &env);
        assert!(!status.success(), "{log}");
        assert!(log.contains("is made of 4 shard(s), and this node has stream.shards"), "{log}");
    }
    // The first goes on, alone.
    spread(&[&first], &[SHARDS as usize]).await;
    stopped(first).await;
}
