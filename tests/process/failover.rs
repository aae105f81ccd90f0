//! Three `fulfil serve` nodes in failover mode on one JetStream server on
//! loopback: the leader killed with `kill -9` under load (drivers taken
//! for rides and given back, unpaid orders expiring on timers, across the
//! takeover), a rolling restart of all three under load, a paused leader,
//! a NATS restart, a JetStream cluster losing a server, snapshots, and
//! followers answering status reads themselves. Every node takes every
//! request; nothing acknowledged is lost, nothing happens twice, and
//! stock and drivers are conserved.

use crate::helpers::{
    add_products, check_acknowledged, check_store, client, settle, stream_leader, Acked, Load, Proc,
};
use crate::lifecycle::{add_drivers, finish_rides, until_nothing_is_unpaid, EXPIRY};
use crate::nats::Nats;
use crate::tools::tool;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const INITIAL: [(&str, u64); 2] = [("MUG", 1_000_000), ("RARE", 40)];
const LEASE_MS: u64 = 1000;
/// Clients placing orders on each node.
const CLIENTS: usize = 3;

fn start(nats: &Nats, data: &Path, name: &str) -> Proc {
    start_with(nats, data, name, &[])
}

pub(crate) fn start_with(nats: &Nats, data: &Path, name: &str, more: &[(&str, &str)]) -> Proc {
    let lease = LEASE_MS.to_string();
    let mut env = vec![
        ("FULFIL_STREAM__URL", nats.url.as_str()),
        ("FULFIL_STREAM__MODE", "failover"),
        ("FULFIL_STREAM__NODE", name),
        ("FULFIL_STREAM__LEASE_MS", lease.as_str()),
    ];
    env.extend_from_slice(more);
    Proc::start_with(data, &env)
}

/// `n` nodes on `nats`, each on a data directory of its own.
fn nodes(nats: &Nats, n: usize) -> (Vec<TempDir>, Vec<Option<Proc>>) {
    nodes_with(nats, n, &[])
}

/// [`nodes`] with `more` settings.
fn nodes_with(nats: &Nats, n: usize, more: &[(&str, &str)]) -> (Vec<TempDir>, Vec<Option<Proc>>) {
    let dirs: Vec<TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let nodes = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| Some(start_with(nats, d.path(), &format!("n{i}"), more)))
        .collect();
    (dirs, nodes)
}

/// Stops `node` with SIGTERM; it must exit cleanly within 10 s. What it
/// logged.
async fn stopped(node: Proc) -> String {
    node.signal("TERM");
    let (status, log) = node.wait_logged(Duration::from_secs(10)).await;
    assert!(status.success(), "the node did not stop cleanly ({status}):\n{log}");
    log
}

/// Stops every node still running with SIGTERM, the followers first and
/// `leader` last (it hands its store back); each must exit cleanly.
pub(crate) async fn stop_all(nodes: &mut [Option<Proc>], leader: usize) {
    for i in (0..nodes.len()).filter(|i| *i != leader).chain([leader]) {
        let Some(node) = nodes[i].take() else { continue };
        stopped(node).await;
    }
}

/// What `GET /health/live` says: a follower names the leader it forwards
/// to; the leader answers as a node does.
async fn live(address: &str) -> Option<Value> {
    let r = client().get(format!("{address}/health/live")).send().await.ok()?;
    r.json().await.ok()
}

/// The index of the leader among `nodes` (those running), once every
/// follower that answers names it and it is ready. If none does in time,
/// the test fails with what the nodes that stopped wrote.
pub(crate) async fn leader(nodes: &mut [Option<Proc>]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut named = Vec::new();
        let mut leading = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let Some(node) = node else { continue };
            match live(&node.address).await {
                Some(body) if body["role"] == "follower" => {
                    named.push(body["leader"].as_str().map(str::to_owned))
                }
                Some(_) => leading.push(i),
                // Stopped, or not listening yet.
                None => {}
            }
        }
        if let [i] = leading[..] {
            let address = &nodes[i].as_ref().unwrap().address;
            let ready = client().get(format!("{address}/health/ready")).send().await;
            if named.iter().all(|n| n.as_deref() == Some(address))
                && ready.is_ok_and(|r| r.status().is_success())
            {
                return i;
            }
        }
        if Instant::now() > deadline {
            let stopped: Vec<String> = nodes
                .iter_mut()
                .flatten()
                .filter_map(|n| n.exited().then(|| n.log().collect::<Vec<_>>().join("\n")))
                .collect();
            panic!("no one leader: leading {leading:?}, followers name {named:?}; the nodes that stopped wrote:\n{}",
                stopped.join("\n-----\n"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the node at `address` serves: a follower ready (it has
/// applied all of the stream) that names a leader, or the leader (a node
/// that comes back may win the lease).
pub(crate) async fn caught_up(address: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = client().get(format!("{address}/health/ready")).send().await;
        let (ok, body) = match answer {
            Ok(r) => (r.status().is_success(), r.json::<Value>().await.unwrap_or_default()),
            Err(e) => (false, Value::String(e.to_string())),
        };
        if ok && (body["leader"].is_string() || body["role"].is_null()) {
            return body;
        }
        assert!(Instant::now() < deadline, "the follower did not catch up: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops `load`'s clients: the orders acknowledged, once every answer was
/// 201, or 503/429 with `Retry-After`.
async fn finished(load: Load) -> Vec<Acked> {
    let (acked, unexpected) = load.finish().await;
    assert!(unexpected.is_empty(), "answers other than 201, or 503/429 with Retry-After: {unexpected:?}");
    acked
}

/// Every load in `loads` stopped: the orders they had acknowledged.
async fn all_finished(loads: impl IntoIterator<Item = Load>) -> Vec<Acked> {
    let mut acked = Vec::new();
    for load in loads {
        acked.extend(finished(load).await);
    }
    acked
}

#[tokio::test]
async fn the_leader_killed_under_load_loses_nothing_and_a_follower_takes_over_within_the_lease() {
    let nats = Nats::start(&tool("nats-server"));
    // Unpaid orders expire on timers, and drivers are taken for rides and
    // given back, across the takeover.
    let (dirs, mut nodes) = nodes_with(&nats, 3, &EXPIRY);
    let first = leader(&mut nodes).await;
    let follower = (first + 1) % 3;
    // Through a follower: forwarded to the leader.
    add_products(&nodes[follower].as_ref().unwrap().address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    add_drivers(&nodes[follower].as_ref().unwrap().address).await;

    let loads: Vec<Load> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Load::drive_mixed(&n.as_ref().unwrap().address, CLIENTS, 1, i))
        .collect();
    tokio::time::sleep(Duration::from_millis(fastrand::u64(400..900))).await;
    let killed = nodes[first].take().unwrap();
    killed.signal("KILL");
    let killed_at = Instant::now();
    assert!(!killed.wait(Duration::from_secs(5)).await.success());
    let second = leader(&mut nodes).await;
    let took = killed_at.elapsed();
    // Let the survivors' clients place orders on the new leader too.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let acked = all_finished(loads).await;
    assert!(!acked.is_empty());
    println!("the new leader served {took:?} after the old one was killed (lease {LEASE_MS} ms)");
    assert!(took < Duration::from_millis(LEASE_MS + 3000), "takeover took {took:?}");

    let address = nodes[second].as_ref().unwrap().address.clone();
    settle(&address).await;
    finish_rides(&address, &acked).await;
    until_nothing_is_unpaid(&address).await;
    settle(&address).await;
    let metrics = client().get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("fulfil_failover_leading 1"), "{metrics}");
    // Read through the other survivor: forwarded.
    let other = (0..3).find(|i| *i != first && *i != second).unwrap();
    check_acknowledged(&nodes[other].as_ref().unwrap().address, &acked).await;

    // The killed node comes back: its store led and may hold what the
    // stream never got, so it is emptied and filled again from the stream.
    let back = start_with(&nats, dirs[first].path(), &format!("n{first}"), &EXPIRY);
    let state = caught_up(&back.address).await;
    assert_eq!(state["leader"].as_str(), Some(address.as_str()), "{state}");
    check_acknowledged(&back.address, &acked).await;
    // Its metrics are its own, not the leader's forwarded.
    let metrics =
        client().get(format!("{}/metrics", back.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("fulfil_failover_leading 0"), "{metrics}");
    assert!(metrics.contains("fulfil_failover_caught_up 1"), "{metrics}");
    assert!(metrics.contains("# TYPE fulfil_failover_behind gauge\nfulfil_failover_behind "), "{metrics}");
    nodes[first] = Some(back);

    // Followers first; the leader last, handing its store back.
    stop_all(&mut nodes, second).await;
    let (orders, seen) = check_store(dirs[second].path(), &INITIAL);
    assert!(orders >= acked.len());
    assert!(seen.rides_ended > 0 && seen.expired > 0, "the load exercised rides and expiries: {seen:?}");
    println!("{} acknowledged orders, {orders} in the store, {seen:?}", acked.len());
}

#[tokio::test]
async fn a_rolling_restart_under_load_answers_only_201_or_503_with_retry_after_and_loses_nothing() {
    let nats = Nats::start(&tool("nats-server"));
    let (dirs, mut nodes) = nodes(&nats, 3);
    let first = leader(&mut nodes).await;
    add_products(&nodes[first].as_ref().unwrap().address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let mut loads: Vec<Option<Load>> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Some(Load::drive(&n.as_ref().unwrap().address, CLIENTS, i)))
        .collect();
    let mut acked = Vec::new();
    for (round, i) in (0..3).enumerate() {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // As a Service does: no new requests to a node being stopped.
        acked.extend(finished(loads[i].take().unwrap()).await);
        let node = nodes[i].take().unwrap();
        stopped(node).await;
        let back = start(&nats, dirs[i].path(), &format!("n{i}"));
        caught_up(&back.address).await;
        loads[i] = Some(Load::drive(&back.address, CLIENTS, 10 + round));
        nodes[i] = Some(back);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    acked.extend(all_finished(loads.into_iter().flatten()).await);
    let last = leader(&mut nodes).await;
    let address = nodes[last].as_ref().unwrap().address.clone();
    settle(&address).await;
    check_acknowledged(&address, &acked).await;
    stop_all(&mut nodes, last).await;
    let (orders, _) = check_store(dirs[last].path(), &INITIAL);
    assert!(orders >= acked.len());
    println!("{} acknowledged orders through a rolling restart, {orders} in the store", acked.len());
}

/// A leader paused past its lease (SIGSTOP: a long GC, a frozen VM) while
/// a follower takes over: once resumed, it serves no stale read in the
/// moment before it learns it was deposed, finds itself fenced off, takes
/// no more orders, and exits with an error; what it acknowledged before
/// the pause is on the new leader, and its store is refilled from the
/// stream at its next start.
#[tokio::test]
async fn a_leader_paused_past_its_lease_is_fenced_off_when_it_resumes_and_exits() {
    let nats = Nats::start(&tool("nats-server"));
    let (dirs, mut nodes) = nodes(&nats, 2);
    let old = leader(&mut nodes).await;
    let address = nodes[old].as_ref().unwrap().address.clone();
    add_products(&address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&address, CLIENTS, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let paused = nodes[old].take().unwrap();
    paused.signal("STOP");
    let new = leader(&mut nodes).await;
    assert_ne!(new, old);
    // An order the new leader took, asked of the old one before it wakes:
    // it must not answer 404 from its store of before the pause.
    let placed = client().post(format!("{}/orders", nodes[new].as_ref().unwrap().address)).json(&kims_mug());
    let placed = placed.send().await.unwrap();
    assert_eq!(placed.status(), 201);
    let id = placed.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let asked = asked_while_paused(&paused.address, &format!("/status/{id}")).await;
    paused.signal("CONT");
    let answer = answer_of(asked).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "the deposed leader answered a read after its lease ran out: {answer}"
    );
    let status = paused.wait(Duration::from_secs(10)).await;
    assert!(!status.success(), "a deposed leader exits with an error: {status:?}");
    let acked = finished(load).await;
    assert!(!acked.is_empty());
    let address = nodes[new].as_ref().unwrap().address.clone();
    settle(&address).await;
    check_acknowledged(&address, &acked).await;

    let back = start(&nats, dirs[old].path(), &format!("n{old}"));
    caught_up(&back.address).await;
    check_acknowledged(&back.address, &acked).await;
    nodes[old] = Some(back);
    stop_all(&mut nodes, new).await;
    check_store(dirs[new].path(), &INITIAL);
}

fn kims_mug() -> Value {
    serde_json::json!({"customer": "kim", "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul",
        "payment": "bank_transfer"})
}

/// A request written whole to a paused node's socket (the kernel takes
/// the connection and the bytes), to be answered once it resumes.
async fn asked_while_paused(address: &str, path: &str) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let host = address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    socket
}

/// The answer's status line and headers; empty if the connection closed
/// with none.
async fn answer_of(mut socket: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "no answer and no close within 10 s");
    String::from_utf8_lossy(&answer).lines().take_while(|l| !l.is_empty()).collect::<Vec<_>>().join("\n")
}

/// Any node takes any request as the leader would: a retried order with
/// the same `Idempotency-Key` sent to another node is the same order; a
/// customer's live stream opened on a follower, which follows it from its
/// own store, shows an order placed through the other one as it happens;
/// and a workflow's stream resumed through a follower is the leader's.
#[tokio::test]
async fn through_any_node_idempotency_keys_hold_and_live_streams_flow() {
    let nats = Nats::start(&tool("nats-server"));
    let (_dirs, mut nodes) = nodes(&nats, 3);
    let lead = leader(&mut nodes).await;
    let followers: Vec<&str> =
        (0..3).filter(|i| *i != lead).map(|i| nodes[i].as_ref().unwrap().address.as_str()).collect();
    add_products(followers[0], &[("MUG", 10)]).await;

    let before = local_reads(followers[0]).await;
    let mut live = client().get(format!("{}/events?customer=kim", followers[0])).send().await.unwrap();
    assert_eq!(live.headers()["content-type"], "text/event-stream");
    assert_eq!(local_reads(followers[0]).await, before + 1, "the follower follows its own store");
    let body = kims_mug();
    let mut ids = Vec::new();
    for address in [followers[1], followers[0]] {
        let r = client()
            .post(format!("{address}/orders"))
            .header("Idempotency-Key", "kim-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let placed: Value = r.json().await.unwrap();
        ids.push((placed["id"].as_str().unwrap().to_owned(), placed["replayed"].clone()));
    }
    assert_eq!(ids[0].0, ids[1].0, "one order for one key, whichever node it was sent to");
    assert_eq!((ids[0].1.clone(), ids[1].1.clone()), (Value::Bool(false), Value::Bool(true)));

    let seen = frames_until(&mut live, "event: payment_pending").await;
    assert!(seen.contains("event: placed") && seen.contains(&ids[0].0), "{seen}");

    // A workflow's stream resumed from the start: the same frames through
    // the follower as from the leader.
    let resumed = |address: &str| {
        let url = format!("{address}/events?workflow=shop");
        async move { client().get(url).header("Last-Event-ID", "0").send().await.unwrap() }
    };
    let here = frames_until(&mut resumed(followers[0]).await, "event: payment_pending").await;
    let there =
        frames_until(&mut resumed(&nodes[lead].as_ref().unwrap().address).await, "event: payment_pending")
            .await;
    assert_eq!(here, there);
    assert_eq!(local_reads(followers[0]).await, before + 2);
}

/// What a live stream sent until it sent `needle` (within 5 s a frame).
async fn frames_until(live: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    while !seen.contains(needle) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), live.chunk()).await;
        let chunk = chunk.expect("a frame within 5 s").unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

/// The NATS server restarts under load: the leader can no longer make its
/// commits durable, so it acknowledges nothing more and stops; the
/// followers wait the server out, one of them leads once it is back, and
/// nothing acknowledged is lost.
#[tokio::test]
async fn a_nats_restart_under_load_stops_the_leader_and_a_follower_takes_over_with_nothing_lost() {
    let mut nats = Nats::start(&tool("nats-server"));
    let (dirs, mut nodes) = nodes(&nats, 3);
    let old = leader(&mut nodes).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != old).collect();
    add_products(&nodes[followers[0]].as_ref().unwrap().address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let loads: Vec<Load> =
        followers.iter().map(|i| Load::drive(&nodes[*i].as_ref().unwrap().address, CLIENTS, *i)).collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Down for a while: the leader's copies in flight time out.
    nats.restart(Duration::from_secs(3));
    let stopped = nodes[old].take().unwrap().wait(Duration::from_secs(20)).await;
    assert!(!stopped.success(), "the leader stops with an error: {stopped:?}");
    let new = leader(&mut nodes).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = all_finished(loads).await;
    assert!(!acked.is_empty());
    let address = nodes[new].as_ref().unwrap().address.clone();
    settle(&address).await;
    check_acknowledged(&address, &acked).await;
    stop_all(&mut nodes, new).await;
    check_store(dirs[new].path(), &INITIAL);
}

/// On a JetStream cluster of three servers keeping three copies, the
/// server that leads the stream of the store's copies is killed under
/// load: whichever node leads once the servers have elected another (the
/// old one, or, if its copies timed out meanwhile, a follower) has every
/// acknowledged order.
#[tokio::test]
async fn on_a_three_server_jetstream_cluster_killing_the_server_leading_the_copies_loses_nothing() {
    let mut servers = Nats::cluster(&tool("nats-server"), 3);
    let urls = servers.iter().map(|s| s.url.as_str()).collect::<Vec<_>>().join(",");
    let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let env = |i: usize| {
        let name = format!("n{i}");
        let lease = LEASE_MS.to_string();
        let env: Vec<(&str, String)> = vec![
            ("FULFIL_STREAM__URL", urls.clone()),
            ("FULFIL_STREAM__REPLICAS", "3".into()),
            ("FULFIL_STREAM__MODE", "failover".into()),
            ("FULFIL_STREAM__NODE", name),
            ("FULFIL_STREAM__LEASE_MS", lease),
        ];
        env
    };
    let mut nodes: Vec<Option<Proc>> = (0..2)
        .map(|i| {
            let env = env(i);
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Some(Proc::start_with(dirs[i].path(), &env))
        })
        .collect();
    let first = leader(&mut nodes).await;
    add_products(&nodes[1 - first].as_ref().unwrap().address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let loads: Vec<Load> =
        (0..2).map(|i| Load::drive(&nodes[i].as_ref().unwrap().address, CLIENTS, i)).collect();
    let killed = stream_leader(&servers[0].url, "FULFIL_STORE").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The cluster's servers are named n0, n1, … in order.
    let mut dead = servers.remove(killed.trim_start_matches('n').parse::<usize>().unwrap());
    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let survivor = servers[0].url.clone();
    assert_ne!(stream_leader(&survivor, "FULFIL_STORE").await, killed);
    let now = leader(&mut nodes).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = all_finished(loads).await;
    assert!(!acked.is_empty());
    let address = nodes[now].as_ref().unwrap().address.clone();
    settle(&address).await;
    check_acknowledged(&address, &acked).await;
    // The old leader may have stopped on its own (its copies timed out).
    for node in nodes.iter_mut() {
        if node.as_mut().is_some_and(Proc::exited) {
            *node = None;
        }
    }
    stop_all(&mut nodes, now).await;
    check_store(dirs[now].path(), &INITIAL);
    println!("{} acknowledged orders; node {first} led before, node {now} after", acked.len());
}

/// With a snapshot every 100 copies, a follower writes snapshots and the
/// stream of copies is trimmed; a node that joins on an empty directory
/// starts from the newest snapshot and follows on from it; once the other
/// two stop it leads, with every acknowledged order.
#[tokio::test]
async fn a_node_that_joins_after_the_copies_were_trimmed_starts_from_a_snapshot() {
    let nats = Nats::start(&tool("nats-server"));
    let snapshots = [("FULFIL_STREAM__SNAPSHOT_EVERY", "100")];
    let dirs: Vec<TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<Proc>> =
        (0..3).map(|i| Some(start_with(&nats, dirs[i].path(), &format!("n{i}"), &snapshots))).collect();
    let first = leader(&mut nodes).await;
    let followers: Vec<usize> = (0..3).filter(|i| *i != first).collect();
    let follower = nodes[followers[0]].as_ref().unwrap().address.clone();
    add_products(&follower, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&follower, CLIENTS, 0);
    let js = trimmed_past(&nats, 200).await;
    let acked = finished(load).await;
    let snapshot = js.get_object_store("FULFIL_SNAPSHOTS").await.unwrap().info("store").await.unwrap();
    assert!(snapshot.metadata["seq"].parse::<u64>().unwrap() > 200, "{snapshot:?}");

    nodes.push(Some(start_with(&nats, dirs[3].path(), "n3", &snapshots)));
    caught_up(&nodes[3].as_ref().unwrap().address).await;
    // The others stop; the newcomer takes over with what the snapshot and
    // the copies after it hold.
    let mut written = Vec::new();
    for i in followers.iter().copied().chain([first]) {
        let node = nodes[i].take().unwrap();
        let log = stopped(node).await;
        written.extend(log.lines().filter(|l| l.contains("wrote a snapshot")).map(snapshot_round));
    }
    // One snapshot a round, by whichever follower got there first.
    assert!(!written.is_empty());
    let rounds: std::collections::BTreeSet<u64> = written.iter().copied().collect();
    assert_eq!(rounds.len(), written.len(), "two followers wrote the same round's snapshot: {written:?}");
    assert_eq!(leader(&mut nodes).await, 3);
    let address = nodes[3].as_ref().unwrap().address.clone();
    settle(&address).await;
    check_acknowledged(&address, &acked).await;
    let mut newcomer = nodes[3].take().unwrap();
    newcomer.signal("TERM");
    let log: Vec<String> = tokio::task::spawn_blocking(move || {
        let log = newcomer.log().collect();
        drop(newcomer);
        log
    })
    .await
    .unwrap();
    assert!(log.iter().any(|l| l.contains("filled it from the newest snapshot")), "{log:#?}");
    check_store(dirs[3].path(), &INITIAL);
}

/// Waits (30 s at most) until a snapshot trimmed the stream of copies to
/// start past `seq`; a JetStream context on `nats`.
async fn trimmed_past(nats: &Nats, seq: u64) -> async_nats::jetstream::Context {
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    while js.get_stream("FULFIL_STORE").await.unwrap().info().await.unwrap().state.first_sequence <= seq {
        assert!(Instant::now() < deadline, "the stream of copies was never trimmed past {seq}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    js
}

/// The round of a snapshot a follower logged it wrote: its stream
/// sequence over `stream.snapshot_every` (100 here).
fn snapshot_round(line: &str) -> u64 {
    let seq = line.split("seq=").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse::<u64>().ok());
    seq.unwrap_or_else(|| panic!("no seq in {line:?}")) / 100
}

/// Writes a keys file giving each `(key, principal)`; the path to pass as
/// `FULFIL_AUTH__KEYS_FILE`.
fn keys_file(dir: &Path, keys: &[(&str, &str)]) -> String {
    let text: String =
        keys.iter().map(|(key, who)| format!("{} {who}\n", fulfil::auth::digest_hex(key))).collect();
    let path = dir.join("keys.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// How many reads the follower at `address` answered from its own store.
async fn local_reads(address: &str) -> u64 {
    metric(address, "fulfil_failover_local_reads_total ").await
}

/// Reads a follower sent to the leader for `reason`.
async fn forwarded_reads(address: &str, reason: &str) -> u64 {
    metric(address, &format!("fulfil_failover_forwarded_reads_total{{reason=\"{reason}\"}} ")).await
}

/// The value of the node's metric whose line starts with `prefix`.
pub(crate) async fn metric(address: &str, prefix: &str) -> u64 {
    let text = client().get(format!("{address}/metrics")).send().await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with(prefix));
    line.and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse().ok()).expect("a metric of the node")
}

/// Polls the leader's copies past the newest snapshot until `holds`.
async fn copies_since_snapshot_until(address: &str, holds: impl Fn(u64) -> bool, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let since = metric(address, "fulfil_failover_copies_since_snapshot ").await;
        if holds(since) {
            return since;
        }
        assert!(Instant::now() < deadline, "the copies past the newest snapshot never {what} ({since})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Followers write the snapshots; a leader alone writes its own once two
/// rounds passed without one, while it works on (its store changes as it
/// is written). A node that joins after the copies were trimmed starts
/// from the leader's snapshot and, once the leader stops, leads with
/// every acknowledged order and the stock conserved.
#[tokio::test]
async fn a_leader_alone_writes_its_own_snapshots_and_a_node_that_joins_starts_from_one() {
    let nats = Nats::start(&tool("nats-server"));
    let every = [("FULFIL_STREAM__SNAPSHOT_EVERY", "200")];
    let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = vec![Some(start_with(&nats, dirs[0].path(), "n0", &every)), None];
    assert_eq!(leader(&mut nodes).await, 0);
    let lead = nodes[0].as_ref().unwrap().address.clone();
    add_products(&lead, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&lead, CLIENTS, 0);
    // Trimmed under load: the leader wrote a snapshot while it worked.
    trimmed_past(&nats, 1).await;
    let acked = finished(load).await;
    copies_since_snapshot_until(&lead, |since| since <= 3 * 200, "stayed within three rounds").await;

    nodes[1] = Some(start_with(&nats, dirs[1].path(), "n1", &every));
    let joined = nodes[1].as_ref().unwrap().address.clone();
    caught_up(&joined).await;
    let leader_node = nodes[0].take().unwrap();
    let log = stopped(leader_node).await;
    let written: Vec<&str> = log.lines().filter(|l| l.contains("wrote a snapshot of the store")).collect();
    assert!(!written.is_empty() && written.iter().all(|l| l.contains("by=\"leader\"")), "{log}");
    let written = written.join("\n");
    assert!(!log.contains("more than three rounds"), "{log}");
    assert_eq!(leader(&mut nodes).await, 1);
    settle(&joined).await;
    check_acknowledged(&joined, &acked).await;
    let node = nodes[1].take().unwrap();
    let log = stopped(node).await;
    let filled = log.lines().find(|l| l.contains("filled it from the newest snapshot"));
    let filled = filled.unwrap_or_else(|| panic!("the newcomer did not start from a snapshot:\n{log}"));
    println!(
        "{} orders acknowledged; the leader's snapshots:\n{written}\nthe newcomer: {filled}",
        acked.len()
    );
    check_store(dirs[1].path(), &INITIAL);
}

/// A seed that cannot store its snapshot (here its file's path is taken
/// by a directory) stops after claiming the stream, says so and what to
/// delete; the store is not marked as a cluster's, and seeding again is
/// refused with the same advice.
#[tokio::test]
async fn a_seed_that_stops_half_way_says_what_to_delete() {
    let nats = Nats::start(&tool("nats-server"));
    let dir = tempfile::tempdir().unwrap();
    let single = Proc::start(dir.path());
    add_products(&single.address, &[("MUG", 5)]).await;
    single.signal("TERM");
    assert!(single.wait(Duration::from_secs(10)).await.success());
    std::fs::create_dir(dir.path().join(fulfil::cluster::replica::DOWNLOAD)).unwrap();
    let (status, out) = seed(&nats, dir.path(), "failover");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("stopped half-way") && out.contains("FULFIL_STORE"), "{out}");
    let env = [("FULFIL_STREAM__URL", nats.url.as_str()), ("FULFIL_STREAM__MODE", "failover")];
    let (started, log) = Proc::refused(dir.path(), &env);
    assert!(!started.success() && log.contains("not made in failover mode"), "not marked:\n{log}");
    let (status, out) = seed(&nats, dir.path(), "failover");
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("said so, and what to delete"), "{out}");
}

/// When the NATS servers lose everything, a cluster starts again from a
/// backup: `fulfil backup` of the leader (asked through a follower), then,
/// on new servers, `fulfil restore` and `fulfil seed`. A node on the
/// restored store and one on an empty directory have every order
/// acknowledged before the backup; the node that joined empty takes over
/// with them, the stock conserved.
#[tokio::test]
async fn a_cluster_whose_servers_lost_everything_starts_again_from_a_backup_and_fulfil_seed() {
    let nats = Nats::start(&tool("nats-server"));
    let token = [("FULFIL_ADMIN__TOKEN", "secret")];
    let (_dirs, mut nodes) = nodes_with(&nats, 2, &token);
    let lead = leader(&mut nodes).await;
    let follower = address_of(&nodes[1 - lead]);
    add_products(&follower, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&follower, CLIENTS, 0);
    while load.acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acked = finished(load).await;
    settle(&address_of(&nodes[lead])).await;
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("backup");
    let backup = client().post(format!("{follower}/admin/backup")).bearer_auth("secret");
    let backup = backup.json(&serde_json::json!({ "to": to })).send().await.unwrap();
    assert_eq!(backup.status(), 200, "{}", backup.text().await.unwrap());
    stop_all(&mut nodes, lead).await;
    drop(nats);

    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let restored = dirs[0].path().join("store");
    let restore = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["restore", "--from"])
        .arg(&to)
        .arg("--data")
        .arg(&restored)
        .output()
        .unwrap();
    assert!(restore.status.success(), "{}", String::from_utf8_lossy(&restore.stderr));
    let (status, out) = seed(&nats, &restored, "failover");
    assert!(status.success(), "{out}");
    assert!(out.contains("was a failover node's"), "{out}");
    let mut nodes = vec![Some(start_with(&nats, &restored, "n0", &token)), None];
    assert_eq!(leader(&mut nodes).await, 0);
    nodes[1] = Some(start_with(&nats, dirs[1].path(), "n1", &token));
    caught_up(&address_of(&nodes[1])).await;
    check_acknowledged(&address_of(&nodes[1]), &acked).await;
    let old = nodes[0].take().unwrap();
    old.signal("TERM");
    assert!(old.wait(Duration::from_secs(10)).await.success());
    assert_eq!(leader(&mut nodes).await, 1);
    settle(&address_of(&nodes[1])).await;
    check_acknowledged(&address_of(&nodes[1]), &acked).await;
    stop_all(&mut nodes, 1).await;
    check_store(dirs[1].path(), &INITIAL);
}

/// A snapshot file left half written or downloaded by a process that
/// stopped (it may be as large as the store) is removed at the next start.
#[tokio::test]
async fn a_snapshot_file_left_by_a_stopped_process_is_removed_at_the_next_start() {
    let nats = Nats::start(&tool("nats-server"));
    let dir = tempfile::tempdir().unwrap();
    let left = dir.path().join(fulfil::cluster::replica::DOWNLOAD);
    std::fs::write(&left, vec![7u8; 1 << 20]).unwrap();
    let mut nodes = vec![Some(start(&nats, dir.path(), "n0"))];
    assert_eq!(leader(&mut nodes).await, 0);
    assert!(!left.exists(), "the half-written snapshot is still there");
    stop_all(&mut nodes, 0).await;
}

/// A leader alone killed with `kill -9` under load, after its own
/// snapshots trimmed the stream: restarted on its data directory (emptied,
/// for it led and may hold what the stream never got), it fills its store
/// from its own snapshot, written while it worked, and the copies after
/// it; then it leads again with every acknowledged order and the stock
/// conserved.
#[tokio::test]
async fn a_leader_alone_killed_after_its_own_snapshot_comes_back_from_it_with_everything() {
    let nats = Nats::start(&tool("nats-server"));
    let every = [("FULFIL_STREAM__SNAPSHOT_EVERY", "200")];
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = vec![Some(start_with(&nats, dir.path(), "n0", &every))];
    assert_eq!(leader(&mut nodes).await, 0);
    let address = nodes[0].as_ref().unwrap().address.clone();
    add_products(&address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&address, CLIENTS, 0);
    trimmed_past(&nats, 1).await;
    tokio::time::sleep(Duration::from_millis(fastrand::u64(100..600))).await;
    let killed = nodes[0].take().unwrap();
    killed.signal("KILL");
    assert!(!killed.wait(Duration::from_secs(5)).await.success());
    let (acked, _) = load.finish().await;
    assert!(!acked.is_empty());

    nodes[0] = Some(start_with(&nats, dir.path(), "n0", &every));
    assert_eq!(leader(&mut nodes).await, 0);
    settle(&address_of(&nodes[0])).await;
    check_acknowledged(&address_of(&nodes[0]), &acked).await;
    let back = nodes[0].take().unwrap();
    let log = stopped(back).await;
    assert!(log.contains("emptying it"), "{log}");
    let filled = log.lines().find(|l| l.contains("filled it from the newest snapshot"));
    let filled = filled.unwrap_or_else(|| panic!("it did not start from its snapshot:\n{log}"));
    let (orders, _) = check_store(dir.path(), &INITIAL);
    assert!(orders >= acked.len());
    println!("{} acknowledged, {orders} in the store; {filled}", acked.len());
}

fn address_of(node: &Option<Proc>) -> String {
    node.as_ref().expect("running").address.clone()
}

/// A follower far behind the stream (`faults.replica` slows its applies)
/// sends reads to the leader at once rather than make each wait to catch
/// up, and says why in its metrics; the answer is the leader's, with the
/// order placed a moment before.
#[tokio::test]
async fn a_follower_far_behind_sends_reads_to_the_leader_at_once() {
    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = vec![Some(start(&nats, dirs[0].path(), "n0")), None];
    assert_eq!(leader(&mut nodes).await, 0);
    let slow = [("FULFIL_FAULTS__REPLICA__LATENCY_MS", "20")];
    nodes[1] = Some(start_with(&nats, dirs[1].path(), "n1", &slow));
    let (lead, follower) =
        (nodes[0].as_ref().unwrap().address.clone(), nodes[1].as_ref().unwrap().address.clone());
    caught_up(&follower).await;
    add_products(&lead, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&lead, CLIENTS, 0);
    let limit = fulfil::http::forward::LAG_AT_MOST;
    let deadline = Instant::now() + Duration::from_secs(60);
    while live(&follower).await.and_then(|h| h["behind"].as_u64()).unwrap_or(0) <= limit {
        assert!(Instant::now() < deadline, "the follower never fell {limit} copies behind");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let placed = client().post(format!("{lead}/orders")).json(&kims_mug()).send().await.unwrap();
    assert_eq!(placed.status(), 201);
    let id = placed.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    let (local, behind) = (local_reads(&follower).await, forwarded_reads(&follower, "behind").await);
    let read = client().get(format!("{follower}/status/{id}")).send().await.unwrap();
    assert_eq!(read.status(), 200, "the leader answered for the follower");
    assert_eq!(read.json::<Value>().await.unwrap()["order_id"], id.as_str());
    assert_eq!(forwarded_reads(&follower, "behind").await, behind + 1, "forwarded for being behind");
    assert_eq!(local_reads(&follower).await, local, "not answered from its own store");
    assert_eq!(forwarded_reads(&follower, "late").await, 0, "it did not wait to catch up first");
    finished(load).await;
    stop_all(&mut nodes, 0).await;
}

/// A follower answers `GET /status/{id}`, a customer's list and what the
/// customer was told from its own store, as the leader would: an order placed through another node a
/// moment before is there at once (it waits until it holds what the
/// stream held), the same keys and rules say who sees it, and reads go on
/// while the leader is paused.
#[tokio::test]
async fn followers_answer_status_reads_themselves_with_every_acknowledged_write_and_the_same_rules() {
    let nats = Nats::start(&tool("nats-server"));
    let keys_dir = tempfile::tempdir().unwrap();
    let keys = [("seller-key", "seller"), ("kim-key", "customer:kim"), ("lee-key", "customer:lee")];
    let keys = keys_file(keys_dir.path(), &keys);
    let more = [("FULFIL_AUTH__KEYS_FILE", keys.as_str())];
    let dirs: Vec<TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes: Vec<Option<Proc>> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| Some(start_with(&nats, d.path(), &format!("n{i}"), &more)))
        .collect();
    let lead = leader(&mut nodes).await;
    let addresses: Vec<String> = nodes.iter().map(|n| n.as_ref().unwrap().address.clone()).collect();
    let address = |i: usize| addresses[i].clone();
    let (a, b) = ((lead + 1) % 3, (lead + 2) % 3);
    let product = serde_json::json!({"sku": "MUG", "name": "Mug", "price": 1000, "stock": 1_000_000});
    let added = client().post(format!("{}/products", address(a))).bearer_auth("seller-key").json(&product);
    assert_eq!(added.send().await.unwrap().status(), 201);

    // Placed through one follower, read at once through the other.
    let order = kims_mug();
    // Other customers' orders stream in meanwhile, so that the follower
    // has copies to catch up on when a read comes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, mut order) = (format!("{}/orders", address(lead)), stop.clone(), order.clone());
            order["customer"] = "lee".into();
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let placed = client().post(&url).bearer_auth("lee-key").json(&order).send().await;
                    assert_eq!(placed.unwrap().status(), 201);
                }
            })
        })
        .collect();
    let before = local_reads(&address(b)).await;
    let mut ids = Vec::new();
    let mut stream = None;
    for i in 0..30 {
        if i == 15 {
            // Kim's live stream, opened on the other follower half-way.
            let url = format!("{}/events?customer=kim", address(a));
            stream = Some(client().get(url).bearer_auth("kim-key").send().await.unwrap());
        }
        let placed = client().post(format!("{}/orders", address(a))).bearer_auth("kim-key").json(&order);
        let placed = placed.send().await.unwrap();
        assert_eq!(placed.status(), 201);
        let id = placed.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let read = client().get(format!("{}/status/{id}", address(b))).bearer_auth("kim-key").send().await;
        let read = read.unwrap();
        assert_eq!(read.status(), 200, "the order just placed is there");
        let view: Value = read.json().await.unwrap();
        assert_eq!((view["order_id"].as_str(), view["customer"].as_str()), (Some(id.as_str()), Some("kim")));
        ids.push(id);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for task in busy {
        task.await.unwrap();
    }
    assert_eq!(local_reads(&address(b)).await - before, 30, "each answered by the follower itself");
    // A customer's orders, listed by the follower, as placed.
    let list = |key: &str, customer: &str| {
        client().get(format!("{}/status?customer={customer}", address(b))).bearer_auth(key).send()
    };
    let listed: Value = list("kim-key", "kim").await.unwrap().json().await.unwrap();
    let listed: Vec<&str> =
        listed["orders"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids, "kim's orders, oldest first");
    assert_eq!(local_reads(&address(b)).await - before, 31);
    assert_eq!(list("lee-key", "kim").await.unwrap().status(), 403);
    // The seller's work list, page by page, as the leader pages it.
    let page = |node: usize, after: Option<u64>| {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let url = format!("{}/status?workflow=shop&status=payment_pending&limit=100{after}", address(node));
        async move {
            client().get(url).bearer_auth("seller-key").send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let ids_of = |page: &Value| {
        page["orders"].as_array().unwrap().iter().map(|o| o["order_id"].clone()).collect::<Vec<_>>()
    };
    let (mut after, mut pages) = (None, 0);
    loop {
        let (here, there) = (page(b, after).await, page(lead, after).await);
        assert_eq!((ids_of(&here), &here["next"]), (ids_of(&there), &there["next"]), "page {pages}");
        pages += 1;
        match here["next"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert!(pages > 1, "the work list spans pages");
    assert_eq!(local_reads(&address(b)).await - before, 31 + pages);
    let refused =
        client().get(format!("{}/status?workflow=shop&status=paid", address(b))).bearer_auth("kim-key");
    assert_eq!(refused.send().await.unwrap().status(), 403);

    // What kim was told, listed by the follower itself as the leader lists
    // it once its notification service has caught up.
    let told = |node: usize, key: &str| {
        let url = format!("{}/notifications?customer=kim", address(node));
        let key = key.to_owned();
        async move { client().get(url).bearer_auth(key).send().await.unwrap() }
    };
    settle(&address(lead)).await;
    let here: Value = told(b, "kim-key").await.json().await.unwrap();
    assert_eq!(local_reads(&address(b)).await - before, 32 + pages, "answered by the follower");
    let there: Value = told(lead, "kim-key").await.json().await.unwrap();
    assert_eq!(here, there, "the leader's list");
    assert_eq!(
        here["notifications"].as_array().unwrap().len(),
        60,
        "placed, then awaiting payment: each order"
    );
    // The live stream told the same, each once and in order: what was
    // told before it opened, then what followed as it happened.
    let events = |list: &Value| -> Vec<u64> {
        list["notifications"].as_array().unwrap().iter().map(|n| n["event"].as_u64().unwrap()).collect()
    };
    let last = format!("id: {}\n", events(&there).last().unwrap());
    let streamed = frames_until(stream.as_mut().unwrap(), &last).await;
    let streamed: Vec<u64> = streamed.lines().filter_map(|l| l.strip_prefix("id: ")?.parse().ok()).collect();
    assert_eq!(streamed, events(&there));
    assert_eq!(told(b, "lee-key").await.status(), 403);

    // The same rules: someone else's order does not exist for lee; no
    // key, no answer; an unknown order is not found.
    let read = |key: Option<&str>, id: &str| {
        let r = client().get(format!("{}/status/{id}", address(b)));
        match key {
            Some(key) => r.bearer_auth(key),
            None => r,
        }
        .send()
    };
    assert_eq!(read(Some("lee-key"), &ids[0]).await.unwrap().status(), 404);
    assert_eq!(read(None, &ids[0]).await.unwrap().status(), 401);
    let unknown = read(Some("kim-key"), "ord-0").await.unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.headers()["content-type"], "application/problem+json");
    // The leader gives the same view.
    let on_leader = client().get(format!("{}/status/{}", address(lead), ids[29])).bearer_auth("kim-key");
    let on_leader: Value = on_leader.send().await.unwrap().json().await.unwrap();
    let here: Value = read(Some("kim-key"), &ids[29]).await.unwrap().json().await.unwrap();
    assert_eq!(here["history"], on_leader["history"]);

    // An order's command side too, the leader's for each of kim's orders;
    // one canceled through the other follower a moment before included.
    let get = |node: usize, key: &str, id: &str| {
        client().get(format!("{}/orders/{id}", address(node))).bearer_auth(key.to_owned()).send()
    };
    let cancel = client().post(format!("{}/orders/{}/cancel", address(a), ids[0])).bearer_auth("kim-key");
    assert_eq!(cancel.send().await.unwrap().status(), 200);
    let before_orders = local_reads(&address(b)).await;
    for id in &ids {
        let here: Value = get(b, "kim-key", id).await.unwrap().json().await.unwrap();
        let there: Value = get(lead, "kim-key", id).await.unwrap().json().await.unwrap();
        assert_eq!(here, there, "order {id}");
    }
    let canceled: Value = get(b, "kim-key", &ids[0]).await.unwrap().json().await.unwrap();
    assert_eq!(canceled["status"], "canceled", "{canceled}");
    assert_eq!(local_reads(&address(b)).await - before_orders, 31, "each answered by the follower itself");
    assert_eq!(get(b, "lee-key", &ids[1]).await.unwrap().status(), 404, "not lee's");
    assert_eq!(get(b, "kim-key", "ord-0").await.unwrap().status(), 404);
    // Their deliveries too, for kim and for the seller.
    for key in ["kim-key", "seller-key"] {
        let delivery = |node: usize| {
            client().get(format!("{}/deliveries/{}", address(node), ids[1])).bearer_auth(key).send()
        };
        let here: Value = delivery(b).await.unwrap().json().await.unwrap();
        let there: Value = delivery(lead).await.unwrap().json().await.unwrap();
        assert_eq!(here, there, "the delivery for {key}");
    }
    let lees = client().get(format!("{}/deliveries/{}", address(b), ids[1])).bearer_auth("lee-key").send();
    assert_eq!(lees.await.unwrap().status(), 404, "not lee's");
    // A product, as the leader gives it.
    let product =
        |node: usize| client().get(format!("{}/products/MUG", address(node))).bearer_auth("kim-key").send();
    let here: Value = product(b).await.unwrap().json().await.unwrap();
    let there: Value = product(lead).await.unwrap().json().await.unwrap();
    assert_eq!(here, there, "the product");
    // A webhook subscription made through the follower (forwarded), then
    // listed by it at once, as the leader lists it; not lee's to see.
    let hook = serde_json::json!({"url": "https://hooks.example.com/kim"});
    let made = client().post(format!("{}/subscriptions", address(b))).bearer_auth("kim-key").json(&hook);
    assert_eq!(made.send().await.unwrap().status(), 201);
    let subscriptions = |node: usize, key: &str| {
        client().get(format!("{}/subscriptions", address(node))).bearer_auth(key.to_owned()).send()
    };
    let here: Value = subscriptions(b, "kim-key").await.unwrap().json().await.unwrap();
    let there: Value = subscriptions(lead, "kim-key").await.unwrap().json().await.unwrap();
    assert_eq!(here, there);
    assert_eq!(here["subscriptions"].as_array().map(Vec::len), Some(1), "{here}");
    let lees: Value = subscriptions(b, "lee-key").await.unwrap().json().await.unwrap();
    assert_eq!(lees["subscriptions"], serde_json::json!([]));
    // The workflows, as the leader lists them for each caller.
    for key in ["kim-key", "seller-key"] {
        let list = |node: usize| client().get(format!("{}/workflows", address(node))).bearer_auth(key).send();
        let here: Value = list(b).await.unwrap().json().await.unwrap();
        let there: Value = list(lead).await.unwrap().json().await.unwrap();
        assert_eq!(here, there, "the workflows for {key}");
    }
    assert_eq!(local_reads(&address(b)).await - before_orders, 38, "answered by the follower");
    let anonymous = client().get(format!("{}/workflows", address(b))).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // The leader paused: reads through the followers are still answered
    // (a forwarded one would wait on it until the client gives up).
    let paused = nodes[lead].take().unwrap();
    paused.signal("STOP");
    for i in [a, b] {
        let r = client().get(format!("{}/status/{}", address(i), ids[0])).bearer_auth("kim-key").send().await;
        assert_eq!(r.unwrap().status(), 200, "node {i} answered while the leader was paused");
        let console = client().get(format!("{}/console", address(i))).send().await.unwrap();
        assert_eq!(console.status(), 200, "node {i} served the console while the leader was paused");
        let listed = client().get(format!("{}/workflows", address(i))).bearer_auth("seller-key").send().await;
        assert_eq!(
            listed.unwrap().status(),
            200,
            "node {i} listed the workflows while the leader was paused"
        );
    }
    let new = leader(&mut nodes).await;
    paused.signal("CONT");
    assert!(!paused.wait(Duration::from_secs(10)).await.success(), "the old leader was deposed");
    stop_all(&mut nodes, new).await;
}

/// The event stream the leader exports (what consumers in other languages
/// read) across a takeover: the leader killed with `kill -9` under load,
/// the new one goes on from where the stream ends. Every event of the
/// log is in it once, in the log's order, and every acknowledged order.
#[tokio::test]
async fn the_event_stream_holds_every_event_once_and_in_order_across_a_takeover() {
    let nats = Nats::start(&tool("nats-server"));
    let (_dirs, mut nodes) = nodes(&nats, 2);
    let first = leader(&mut nodes).await;
    let follower = nodes[1 - first].as_ref().unwrap().address.clone();
    add_products(&follower, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&follower, CLIENTS, 0);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(300..700))).await;
    let killed = nodes[first].take().unwrap();
    killed.signal("KILL");
    assert!(!killed.wait(Duration::from_secs(5)).await.success());
    let second = leader(&mut nodes).await;
    // Orders go on through the new leader for a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acked = finished(load).await;
    let address = nodes[second].as_ref().unwrap().address.clone();
    let head = settle(&address).await["log_head"].as_u64().unwrap();
    let events = crate::stream::stream_events(&nats.url, head).await;
    crate::stream::assert_the_log(&events, head, &acked);
    println!("{} events in the stream, {} acknowledged orders, across a takeover", events.len(), acked.len());
}

/// Webhooks across a takeover: the outbox is in the copied store, so the
/// new leader delivers what the old one had not, and every notification
/// of every acknowledged order reaches the receiver (at least once: a
/// delivery the old leader made but whose mark the stream never got is
/// made again).
#[tokio::test]
async fn webhook_deliveries_go_on_after_a_takeover_and_none_is_lost() {
    let nats = Nats::start(&tool("nats-server"));
    let (_dirs, mut nodes) = nodes_with(&nats, 2, &[("FULFIL_WEBHOOKS__TICK_MS", "5")]);
    let first = leader(&mut nodes).await;
    let follower = nodes[1 - first].as_ref().unwrap().address.clone();
    add_products(&follower, &[("MUG", 100_000)]).await;
    let (url, got) = crate::webhooks::receiver().await;
    let subscribed =
        client().post(format!("{follower}/subscriptions")).json(&serde_json::json!({"url": url}));
    assert_eq!(subscribed.send().await.unwrap().status(), 201);

    // Bank-transfer orders through the follower, the leader killed among them.
    let body = kims_mug();
    let mut acked = Vec::new();
    let started = Instant::now();
    let mut killed = false;
    while started.elapsed() < Duration::from_millis(800) {
        if !killed && started.elapsed() > Duration::from_millis(300) {
            let old = nodes[first].take().unwrap();
            old.signal("KILL");
            assert!(!old.wait(Duration::from_secs(5)).await.success());
            killed = true;
        }
        let r = client().post(format!("{follower}/orders")).json(&body).send().await.unwrap();
        match r.status().as_u16() {
            201 => acked.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()),
            503 => assert!(r.headers().contains_key("retry-after")),
            other => panic!("{other}: {}", r.text().await.unwrap()),
        }
    }
    assert_eq!(leader(&mut nodes).await, 1 - first);
    settle(&follower).await;

    // Each acknowledged order: placed, then payment_pending.
    let expected = acked.len() * 2;
    crate::webhooks::until_delivered(&got, expected).await;
    let deliveries = got.lock().unwrap().len();
    println!("{} orders, {expected} notifications, {deliveries} deliveries across a takeover", acked.len());
}

/// A follower's store is a copy of the stream's: one whose files were
/// damaged while it was stopped (its `db` replaced by text, which sled
/// opens as an empty store) fills itself again from the stream, and then
/// answers reads of what was placed before, itself.
#[tokio::test]
async fn a_follower_whose_files_were_damaged_fills_its_store_again_from_the_stream() {
    let nats = Nats::start(&tool("nats-server"));
    let (dirs, mut nodes) = nodes(&nats, 2);
    let lead = leader(&mut nodes).await;
    let f = 1 - lead;
    let address = nodes[lead].as_ref().unwrap().address.clone();
    add_products(&address, &[("MUG", 1000)]).await;
    let body = kims_mug();
    let mut ids = Vec::new();
    for _ in 0..20 {
        let r = client().post(format!("{address}/orders")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 201);
        ids.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    let stopped = nodes[f].take().unwrap();
    stopped.signal("TERM");
    assert!(stopped.wait(Duration::from_secs(10)).await.success());
    std::fs::write(dirs[f].path().join("db"), b"abc").unwrap();

    let back = start(&nats, dirs[f].path(), &format!("n{f}"));
    caught_up(&back.address).await;
    for id in &ids {
        let r = client().get(format!("{}/status/{id}", back.address)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{id} after the follower's files were damaged");
    }
    assert!(local_reads(&back.address).await >= ids.len() as u64, "answered from its own store");
    nodes[f] = Some(back);
    stop_all(&mut nodes, lead).await;
}

/// Runs `fulfil seed` on `data` for the cluster on `nats`: its exit
/// status and what it wrote (stdout, then stderr).
fn seed(nats: &Nats, data: &Path, mode: &str) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["seed", "--data"])
        .arg(data)
        .env("FULFIL_STREAM__URL", &nats.url)
        .env("FULFIL_STREAM__MODE", mode)
        .env("NO_COLOR", "1")
        .output()
        .expect("the binary runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}

/// A user who outgrows one node keeps its orders: `fulfil seed` makes a
/// single node's store (embedded mode) a new cluster's first. Failover
/// nodes start on it and on an empty directory (which starts from the
/// seed's snapshot); both answer for every order it held; the cluster
/// takes new orders; the node that joins empty takes over with all of
/// them and the stock conserved. Seeding again, or in the wrong mode, is
/// refused and changes nothing.
#[tokio::test]
async fn a_single_nodes_store_seeds_a_new_cluster_that_keeps_every_order() {
    let nats = Nats::start(&tool("nats-server"));
    let dirs: Vec<TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let single = Proc::start(dirs[0].path());
    let address = single.address.clone();
    add_products(&address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&address, CLIENTS, 0);
    while load.acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut acked = finished(load).await;
    settle(&address).await;
    single.signal("TERM");
    assert!(single.wait(Duration::from_secs(10)).await.success());

    let (status, out) = seed(&nats, dirs[0].path(), "export");
    assert_eq!(status.code(), Some(1), "seeded outside failover mode:\n{out}");
    assert!(out.contains("stream.mode = \"failover\""), "{out}");
    let (status, out) = seed(&nats, dirs[0].path(), "failover");
    assert!(status.success(), "{out}");
    assert!(out.contains("seeded"), "{out}");
    let (status, out) = seed(&nats, dirs[1].path(), "failover");
    assert_eq!(status.code(), Some(1), "an empty directory seeded:\n{out}");
    let (status, out) = seed(&nats, dirs[0].path(), "failover");
    assert_eq!(status.code(), Some(1), "seeded twice:\n{out}");
    assert!(out.contains("the cluster already holds a store"), "{out}");

    let mut nodes: Vec<Option<Proc>> = vec![Some(start(&nats, dirs[0].path(), "n0")), None];
    assert_eq!(leader(&mut nodes).await, 0);
    nodes[1] = Some(start(&nats, dirs[1].path(), "n1"));
    let (lead, joined) =
        (nodes[0].as_ref().unwrap().address.clone(), nodes[1].as_ref().unwrap().address.clone());
    caught_up(&joined).await;
    check_acknowledged(&joined, &acked).await;
    let load = Load::drive(&lead, CLIENTS, 1);
    while load.acked.lock().unwrap().len() < 100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let more = finished(load).await;
    let before: std::collections::HashSet<&str> = acked.iter().map(|a| a.id.as_str()).collect();
    assert!(more.iter().all(|a| !before.contains(a.id.as_str())), "an order id was handed out twice");
    acked.extend(more);

    let old = nodes[0].take().unwrap();
    stopped(old).await;
    assert_eq!(leader(&mut nodes).await, 1);
    settle(&joined).await;
    check_acknowledged(&joined, &acked).await;
    let node = nodes[1].take().unwrap();
    let log = stopped(node).await;
    assert!(log.contains("filled it from the newest snapshot"), "{log}");
    check_store(dirs[1].path(), &INITIAL);
    println!("{} orders: the seeded store's, then the cluster's", acked.len());
}
