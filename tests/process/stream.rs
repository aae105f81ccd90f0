//! The event stream on a real NATS JetStream server (installed by
//! `scripts/test-tools.sh`, started on a port it picks itself): every event
//! of the log reaches it once and in order, through `kill -9`, and a
//! consumer in Python follows an order through it.

use crate::helpers::{add_products, client, settle, stored_state, stream_leader, Load, Proc};
use crate::nats::Nats;
use crate::tools::tool;
use fulfil::cluster::Rebuilt;
use fulfil::domain::OrderId;
use fulfil::stream::WireEvent;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::process::Command;
use std::time::{Duration, Instant};

/// Every message of the stream once it holds `head` events, oldest first:
/// (stream sequence, subject, event).
pub async fn stream_events(url: &str, head: u64) -> Vec<(u64, String, Value)> {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    // A cluster that lost a server answers nothing until it has elected
    // new leaders: a failed request is asked again, up to the deadline.
    let (stream, last) = loop {
        let newest = async {
            let mut stream = js.get_stream("FULFIL").await.map_err(|e| e.to_string())?;
            let last = stream.info().await.map_err(|e| e.to_string())?.state.last_sequence;
            let newest = match last {
                0 => 0,
                n => event_of(&stream.get_raw_message(n).await.map_err(|e| e.to_string())?.payload)["seq"]
                    .as_u64()
                    .unwrap(),
            };
            Ok::<_, String>((stream, last, newest))
        }
        .await;
        let ends_at = match newest {
            Ok((stream, last, newest)) if newest == head => break (stream, last),
            Ok((_, _, newest)) => format!("it ends at event {newest}"),
            Err(e) => e,
        };
        assert!(Instant::now() < deadline, "the stream does not end at the log's event {head}: {ends_at}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut all = Vec::new();
    for n in 1..=last {
        let m = stream.get_raw_message(n).await.unwrap_or_else(|e| panic!("message {n}: {e}"));
        all.push((m.sequence, m.subject.to_string(), event_of(&m.payload)));
    }
    all
}

fn event_of(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).expect("a JSON event")
}

/// Places one card order for a mug; its id.
async fn place_card_order(address: &str) -> String {
    let order = json!({"customer": "c-1", "items": [{"sku": "MUG", "qty": 1}], "address": "Seoul",
                       "payment": "card", "card": "4111111111111111"});
    let placed: Value =
        client().post(format!("{address}/orders")).json(&order).send().await.unwrap().json().await.unwrap();
    placed["id"].as_str().expect("an order id").to_owned()
}

/// Orders placed under load, the node killed twice mid-way: the stream
/// then holds each event of the log exactly once, in the log's order, on
/// its order's partition; every acknowledged order is in it.
#[tokio::test]
async fn the_stream_holds_every_event_once_and_in_order_across_kill_9() {
    let nats = Nats::start(&tool("nats-server"));
    let data = tempfile::tempdir().unwrap();
    let env = [("FULFIL_STREAM__URL", nats.url.as_str())];
    let mut acked = Vec::new();
    for round in 0..2 {
        let node = Proc::start_with(data.path(), &env);
        if round == 0 {
            add_products(&node.address, &[("MUG", 1_000_000), ("RARE", 40)]).await;
        }
        let load = Load::drive(&node.address, 4, round);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(300..700))).await;
        node.signal("KILL");
        assert!(!node.wait(Duration::from_secs(5)).await.success(), "killed, not exited");
        let (round_acked, unexpected) = load.finish().await;
        assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
        assert!(!round_acked.is_empty(), "round {round} acknowledged nothing");
        acked.extend(round_acked);
    }
    let node = Proc::start_with(data.path(), &env);
    let head = settle(&node.address).await["log_head"].as_u64().unwrap();

    let events = stream_events(&nats.url, head).await;
    assert_the_log(&events, head, &acked);
    println!("{} events in the stream, {} acknowledged orders, across 2 kills", events.len(), acked.len());

    // The stream alone rebuilds what the node's store holds of every order:
    // its record, its delivery, its reservation and its status view.
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());
    let read = events.iter().map(|(_, _, e)| serde_json::from_value::<WireEvent>(e.clone()).unwrap());
    let rebuilt = Rebuilt::from_events(read.map(|w| w.to_event().unwrap()));
    let stored = stored_state(data.path());
    assert!(rebuilt.orders.len() >= acked.len());
    same(&rebuilt.orders, &stored.orders, "order");
    same(&rebuilt.deliveries, &stored.deliveries, "delivery");
    same(&rebuilt.reservations, &stored.reservations, "reservation");
    same(&rebuilt.views, &stored.views, "status view");
}

/// Rebuilt and stored hold the same orders, each the same; the first that
/// differs is shown.
fn same<T: PartialEq + std::fmt::Debug>(
    rebuilt: &BTreeMap<OrderId, T>,
    stored: &BTreeMap<OrderId, T>,
    what: &str,
) {
    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        stored.keys().collect::<Vec<_>>(),
        "the orders with a {what}"
    );
    for (id, r) in rebuilt {
        assert_eq!(Some(r), stored.get(id), "{id}: the {what} rebuilt from the stream, and the store's");
    }
}

/// Checks that `events` are exactly the log's `head` events, message n
/// holding event n on its order's partition, and that every order in
/// `acked` was placed in it once.
pub fn assert_the_log(events: &[(u64, String, Value)], head: u64, acked: &[crate::helpers::Acked]) {
    assert_eq!(events.len() as u64, head, "one message per event of the log");
    let mut placed = HashSet::new();
    for (n, subject, event) in events {
        // A new stream for a new store: message n holds event n.
        assert_eq!(event["seq"].as_u64(), Some(*n), "message {n} holds {event}");
        assert_eq!(event["v"], 1);
        let order = event["correlation_id"].as_str().unwrap();
        assert_eq!(subject, &fulfil::stream::wire::subject("fulfil.events", order, 16));
        if event["type"] == "order_placed" {
            assert!(placed.insert(order.to_owned()), "{order} placed twice");
        }
    }
    for a in acked {
        assert!(placed.contains(&a.id), "acknowledged order {} is not in the stream", a.id);
    }
}

/// A JetStream cluster of three servers keeping three copies: the server
/// that leads the stream is killed with `kill -9` while orders flow. The
/// export goes on through the others, and the stream still holds every
/// event of the log once and in order, every acknowledged order with it.
#[tokio::test]
async fn a_stream_of_three_copies_loses_nothing_when_its_leader_is_killed() {
    let mut servers = Nats::cluster(&tool("nats-server"), 3);
    let urls = servers.iter().map(|s| s.url.as_str()).collect::<Vec<_>>().join(",");
    let data = tempfile::tempdir().unwrap();
    let node =
        Proc::start_with(data.path(), &[("FULFIL_STREAM__URL", &urls), ("FULFIL_STREAM__REPLICAS", "3")]);
    add_products(&node.address, &[("MUG", 1_000_000), ("RARE", 40)]).await;
    let leader = stream_leader(&servers[0].url, "FULFIL").await;
    let load = Load::drive(&node.address, 4, 0);
    tokio::time::sleep(Duration::from_millis(fastrand::u64(300..700))).await;
    // The cluster's servers are named n0, n1, … in order.
    let killed: usize = leader.trim_start_matches('n').parse().expect("a server of the cluster");
    let mut dead = servers.remove(killed);
    Command::new("kill").arg("-KILL").arg(dead.child.id().to_string()).status().unwrap();
    dead.child.wait().unwrap();
    // Orders go on while the other two elect a new leader.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (acked, unexpected) = load.finish().await;
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert!(!acked.is_empty(), "nothing acknowledged");
    let head = settle(&node.address).await["log_head"].as_u64().unwrap();
    let events = stream_events(&servers[0].url, head).await;
    assert_the_log(&events, head, &acked);
    let after = stream_leader(&servers[0].url, "FULFIL").await;
    assert_ne!(after, leader, "another server leads the stream");
    println!("{} events in the stream, {} acknowledged orders, its leader killed", events.len(), acked.len());
}

/// `stream.replicas` changed after the stream was made: the node has
/// JetStream keep the new number of copies.
#[tokio::test]
async fn a_changed_number_of_copies_is_applied_to_the_stream() {
    let servers = Nats::cluster(&tool("nats-server"), 3);
    let urls = servers.iter().map(|s| s.url.as_str()).collect::<Vec<_>>().join(",");
    let data = tempfile::tempdir().unwrap();
    for replicas in ["1", "3"] {
        let node = Proc::start_with(
            data.path(),
            &[("FULFIL_STREAM__URL", &urls), ("FULFIL_STREAM__REPLICAS", replicas)],
        );
        if replicas == "1" {
            add_products(&node.address, &[("MUG", 10)]).await;
        }
        let js = async_nats::jetstream::new(async_nats::connect(&servers[0].url).await.unwrap());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = async {
                js.get_stream("FULFIL").await.ok()?.info().await.ok().map(|i| i.config.num_replicas)
            };
            if info.await == replicas.parse().ok() {
                break;
            }
            assert!(Instant::now() < deadline, "the stream does not keep {replicas} copies");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        node.signal("TERM");
        assert!(node.wait(Duration::from_secs(10)).await.success());
    }
}

/// `examples/stream_consumer.py` (nats-py) prints an order's statuses as
/// the status view records them, in the same order.
#[tokio::test]
async fn a_python_consumer_sees_every_status_change_of_an_order_in_order() {
    let nats = Nats::start(&tool("nats-server"));
    let data = tempfile::tempdir().unwrap();
    let node = Proc::start_with(data.path(), &[("FULFIL_STREAM__URL", nats.url.as_str())]);
    add_products(&node.address, &[("MUG", 10)]).await;
    let id = place_card_order(&node.address).await;
    settle(&node.address).await;
    let view: Value =
        client().get(format!("{}/status/{id}", node.address)).send().await.unwrap().json().await.unwrap();
    let expected: Vec<&str> =
        view["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert!(expected.len() >= 3, "the order moved on: {view}");

    let script = crate::tools::root().join("examples/stream_consumer.py");
    let run = Command::new(tool("python"))
        .arg(script)
        .args(["--server", &nats.url, "--order", &id, "--until", expected.last().unwrap(), "--idle", "30"])
        .output()
        .expect("python runs");
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{printed}{}", String::from_utf8_lossy(&run.stderr));
    let statuses: Vec<&str> = printed
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts[0], id, "only the order asked for: {line}");
            parts[1]
        })
        .collect();
    assert_eq!(statuses, expected, "the consumer saw: {printed}");
}

/// A second store pointed at a stream the first one filled: its export
/// stops with a message that says why and what to do, the stream keeps
/// only the first store's events, and the node itself serves on.
#[tokio::test]
async fn a_stream_that_holds_another_stores_events_is_left_alone() {
    let nats = Nats::start(&tool("nats-server"));
    let env = [("FULFIL_STREAM__URL", nats.url.as_str())];
    let first = tempfile::tempdir().unwrap();
    let node = Proc::start_with(first.path(), &env);
    add_products(&node.address, &[("MUG", 10)]).await;
    place_card_order(&node.address).await;
    let head = settle(&node.address).await["log_head"].as_u64().unwrap();
    let before = stream_events(&nats.url, head).await;
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());

    let second = tempfile::tempdir().unwrap();
    let mut node = Proc::start_with(second.path(), &env);
    add_products(&node.address, &[("MUG", 10)]).await;
    place_card_order(&node.address).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics =
            client().get(format!("{}/metrics", node.address)).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == "fulfil_stream_failures_total 1") {
            break;
        }
        assert!(Instant::now() < deadline, "the export did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(settle(&node.address).await["status"], "ready", "the node serves on");
    assert_eq!(
        stream_events(&nats.url, head).await,
        before,
        "the stream holds the first store's events only"
    );
    node.signal("TERM");
    let log: Vec<String> = node.log().collect();
    let stopped = log.iter().find(|l| l.contains("the stream export stopped")).expect("it says it stopped");
    assert!(stopped.contains("not this store's events") && stopped.contains("another name"), "{stopped}");
}

/// A server that requires a user and password: the node authenticates
/// with the ones written in `stream.url` and publishes the whole log, and
/// neither the password nor the URL that holds it reaches the node's log,
/// even with the NATS client's own logging at its most detailed.
#[tokio::test]
async fn a_server_with_a_password_is_reached_and_the_password_never_logged() {
    let auth: Vec<String> = ["--user", "fulfil", "--pass", "s3cret-pw"].map(String::from).to_vec();
    let nats = Nats::spawn(&tool("nats-server"), &auth);
    let url = nats.url.replace("nats://", "nats://fulfil:s3cret-pw@");
    let data = tempfile::tempdir().unwrap();
    let env = [("FULFIL_STREAM__URL", url.as_str()), ("RUST_LOG", "info,async_nats=trace")];
    let mut node = Proc::start_with(data.path(), &env);
    add_products(&node.address, &[("MUG", 10)]).await;
    place_card_order(&node.address).await;
    let head = settle(&node.address).await["log_head"].as_u64().unwrap();
    let exported = format!("fulfil_stream_exported_event {head}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics =
            client().get(format!("{}/metrics", node.address)).send().await.unwrap().text().await.unwrap();
        if metrics.lines().any(|l| l == exported) {
            break;
        }
        assert!(Instant::now() < deadline, "the export did not publish the log: {metrics}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.signal("TERM");
    let log: Vec<String> = node.log().collect();
    assert!(log.iter().any(|l| l.contains("async_nats")), "the client's own log lines are in it");
    let leaked: Vec<&String> = log.iter().filter(|l| l.contains("s3cret-pw")).collect();
    assert!(leaked.is_empty(), "the password is in the log: {leaked:?}");
}
