//! The store's copies in failover mode (`fulfil::cluster::replica`) on a
//! real JetStream server: a follower that applies the stream holds what
//! the leader committed; a leader fenced off by a newer claim cannot make
//! anything durable; and nothing is durable that the stream does not hold.

use crate::nats::Nats;
use crate::tools::tool;
use fulfil::cluster::replica::{claim, ensure_stream, Names, Replica, ReplicatedBackend, WINDOW};
use fulfil::cluster::PartitionWriter;
use fulfil::store::backend::{Backend, Change, SledBackend};
use std::path::Path;
use std::sync::Arc;

const CACHE: u64 = 16 << 20;

struct Cluster {
    client: async_nats::Client,
    names: Names,
}

async fn cluster(nats: &Nats) -> Cluster {
    let mut settings = fulfil::config::Settings::default().stream;
    settings.url = nats.url.clone();
    let (client, js) = fulfil::stream::connect(&settings).await.unwrap();
    ensure_stream(&js, &settings).await.unwrap();
    Cluster { client, names: Names::of(&settings) }
}

impl Cluster {
    /// The replica in `dir`, leading after its claim.
    async fn lead(&self, dir: &Path, node: &str) -> Arc<ReplicatedBackend> {
        let replica = Replica::open(dir, CACHE).unwrap();
        let mut writer = self.writer().await;
        writer.append(claim(node)).await.unwrap();
        replica.lead(writer).unwrap()
    }

    async fn writer(&self) -> PartitionWriter {
        PartitionWriter::take_over(&self.client, &self.names.stream, &self.names.subject).await.unwrap()
    }

    /// Applies every copy in the stream to the replica in `dir`; returns
    /// the stream's last sequence.
    async fn follow(&self, dir: &Path) -> u64 {
        let mut replica = Replica::open(dir, CACHE).unwrap();
        let js = async_nats::jetstream::new(self.client.clone());
        let stream = js.get_stream(&self.names.stream).await.unwrap();
        let last = self.writer().await.last();
        for seq in 1..=last {
            let message = stream.get_raw_message(seq).await.unwrap();
            replica.receive(seq, &message.payload).unwrap();
        }
        assert_eq!(replica.applied(), last);
        last
    }
}

/// (table, key, value) of one change.
type Changed = (&'static str, &'static [u8], Option<Vec<u8>>);

/// Commits and flushes on a blocking thread (a flush waits for the
/// stream, whose client runs on this runtime).
async fn commit_and_flush(
    backend: &Arc<ReplicatedBackend>,
    changes: Vec<Changed>,
    events: Vec<(u64, Vec<u8>)>,
) -> Result<(), fulfil::store::StoreError> {
    let backend = backend.clone();
    tokio::task::spawn_blocking(move || {
        let changes: Vec<Change<'_>> = changes
            .iter()
            .map(|(table, key, value)| Change { table, key, value: value.as_deref() })
            .collect();
        backend.commit(&changes, &events)?;
        backend.flush()
    })
    .await
    .unwrap()
}

fn entries(backend: &dyn Backend, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    backend.scan(table, b"").unwrap().map(Result::unwrap).collect()
}

#[tokio::test]
async fn a_follower_that_applies_the_stream_holds_what_the_leader_committed() {
    let nats = Nats::start(&tool("nats-server"));
    let cluster = cluster(&nats).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = cluster.lead(a.path(), "a").await;
    // Larger than a message may be: the group goes in parts.
    let big = vec![7u8; 700 * 1024];
    commit_and_flush(
        &leader,
        vec![("orders", b"o1", Some(b"first".to_vec())), ("offsets", b"order", Some(vec![2]))],
        vec![(1, b"e1".to_vec()), (2, b"e2".to_vec())],
    )
    .await
    .unwrap();
    commit_and_flush(
        &leader,
        vec![("orders", b"o1", None), ("orders", b"o2", Some(big.clone()))],
        vec![(3, b"e3".to_vec())],
    )
    .await
    .unwrap();
    let ids: Vec<u64> = (0..3).map(|_| leader.generate_id().unwrap()).collect();
    commit_and_flush(&leader, vec![("orders", b"o3", Some(b"third".to_vec()))], vec![]).await.unwrap();

    let last = cluster.follow(b.path()).await;
    assert!(last >= 4, "the claim and three groups at least, some in parts: {last}");
    let copy = SledBackend::open(b.path(), CACHE).unwrap();
    assert_eq!(entries(&copy, "orders"), entries(leader.as_ref(), "orders"));
    assert_eq!(entries(&copy, "orders"), [(b"o2".to_vec(), big), (b"o3".to_vec(), b"third".to_vec())]);
    assert_eq!(entries(&copy, "offsets"), [(b"order".to_vec(), vec![2])]);
    assert_eq!(copy.read_log(1, 10).unwrap(), leader.read_log(1, 10).unwrap());
    assert_eq!(copy.last_seq().unwrap(), 3);
    drop(copy);

    // The follower takes over: the ids it hands out are new.
    let follower = cluster.lead(b.path(), "b").await;
    let next = follower.generate_id().unwrap();
    assert!(ids.iter().all(|id| *id < next), "{ids:?} then {next}");
}

#[tokio::test]
async fn a_leader_fenced_off_by_a_newer_claim_makes_nothing_durable_and_says_it_no_longer_leads() {
    let nats = Nats::start(&tool("nats-server"));
    let cluster = cluster(&nats).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = cluster.lead(a.path(), "a").await;
    commit_and_flush(&old, vec![("orders", b"o1", Some(b"one".to_vec()))], vec![]).await.unwrap();
    let mut deposed = old.deposed();
    assert!(deposed.borrow().is_none());

    // Another node catches up and claims (the old one was paused).
    cluster.follow(b.path()).await;
    let _new = cluster.lead(b.path(), "b").await;

    let refused = commit_and_flush(&old, vec![("orders", b"o2", Some(b"two".to_vec()))], vec![]).await;
    let why = refused.expect_err("a fenced leader's flush fails").to_string();
    assert!(why.contains("another node leads"), "{why}");
    deposed.wait_for(Option::is_some).await.unwrap();
    // And it takes no more commits, nor gives a snapshot of its store.
    assert!(commit_and_flush(&old, vec![("orders", b"o3", Some(b"3".to_vec()))], vec![]).await.is_err());
    assert!(old.snapshot().is_err(), "a deposed leader gave a snapshot");
}

#[tokio::test]
async fn nothing_is_durable_that_the_stream_does_not_hold() {
    let nats = Nats::start(&tool("nats-server"));
    let cluster = cluster(&nats).await;
    let a = tempfile::tempdir().unwrap();
    let leader = cluster.lead(a.path(), "a").await;
    commit_and_flush(&leader, vec![("orders", b"o1", Some(b"one".to_vec()))], vec![]).await.unwrap();
    drop(nats);
    let failed = commit_and_flush(&leader, vec![("orders", b"o2", Some(b"two".to_vec()))], vec![]).await;
    assert!(failed.is_err(), "a flush returned with its commit in no stream");
    // Nor is a snapshot that may hold it stored: its wait gives up.
    let waited =
        tokio::task::spawn_blocking(move || leader.copied_within(std::time::Duration::from_millis(200)));
    assert!(waited.await.unwrap().is_err(), "a snapshot's wait passed with a commit in no stream");
}

/// A leader paused with copies in flight, each fenced on the sequence it
/// predicts for the one before, resumes after another node's claim: none
/// of them is stored after the claim, whichever sequence it predicted
/// (with a claim of one message, the copy predicting the claim's own
/// sequence would be, deposing the new leader and breaking the order the
/// followers apply).
#[tokio::test]
async fn copies_in_flight_of_a_deposed_leader_never_line_up_behind_a_claim() {
    let nats = Nats::start(&tool("nats-server"));
    let cluster = cluster(&nats).await;
    let old = cluster.writer().await;
    old.send(0, b"stored before the claim".to_vec()).await.unwrap().await.unwrap();
    let mut new = cluster.writer().await;
    let claimed = new.append(claim("n2")).await.unwrap();
    // Whatever the old leader predicted: from its last stored copy on, as
    // many as it may have had in flight.
    for predicted in 1..=WINDOW as u64 {
        let ack = old.send(predicted, b"from the old leader".to_vec()).await.unwrap();
        assert!(ack.await.is_err(), "a copy predicting {predicted} was stored after the claim");
    }
    assert_eq!(cluster.writer().await.last(), claimed);
    // The fence itself still lets the one who knows the end write.
    new.send(claimed, b"from the new leader".to_vec()).await.unwrap().await.unwrap();
}

/// The leader's own snapshot is taken while it commits on, so it may hold
/// commits after the copy it stands at, some in part. A store filled from
/// it answers no read until it applied the copies up to where the
/// snapshot was settled, and once given the copies after the snapshot's
/// own, it holds exactly what the leader holds: each table and the log.
#[tokio::test]
async fn a_snapshot_the_leader_takes_while_it_commits_on_fills_a_store_that_ends_as_the_leader() {
    let nats = Nats::start(&tool("nats-server"));
    let cluster = cluster(&nats).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = cluster.lead(a.path(), "a").await;
    // Enough that writing it out takes a while.
    let stocked = leader.clone();
    tokio::task::spawn_blocking(move || {
        let keys: Vec<String> = (0..20_000).map(|i| format!("sku{i:05}")).collect();
        let changes: Vec<Change<'_>> =
            keys.iter().map(|k| Change { table: "stock", key: k.as_bytes(), value: Some(b"12") }).collect();
        stocked.commit(&changes, &[]).unwrap();
        stocked.flush().unwrap();
    })
    .await
    .unwrap();
    let committing = {
        let leader = leader.clone();
        tokio::task::spawn_blocking(move || commit_on(&leader, 3_000))
    };
    // Once the commits are under way.
    while leader.last_seq().unwrap() < 200 {
        tokio::task::yield_now().await;
    }
    let taken = {
        let leader = leader.clone();
        tokio::task::spawn_blocking(move || {
            let snapshot = leader.snapshot().unwrap();
            let seq = snapshot.seq;
            let mut bytes = Vec::new();
            snapshot.write(&mut bytes).unwrap();
            let settled = leader.copied_within(std::time::Duration::from_secs(10)).unwrap();
            (bytes, seq, settled)
        })
    };
    let (bytes, seq, settled) = taken.await.unwrap();
    committing.await.unwrap();
    commit_and_flush(&leader, vec![], vec![]).await.unwrap();
    assert!(settled > seq, "nothing was committed while the snapshot was written ({seq}, {settled})");

    let replica = Replica::open(b.path(), CACHE).unwrap();
    let mut replica = replica.refill(b.path(), CACHE, &mut bytes.as_slice(), seq, settled).unwrap();
    let reads = replica.reads();
    assert!(reads.read(|_| ()).is_none(), "a store not exact yet answered a read");
    let js = async_nats::jetstream::new(cluster.client.clone());
    let stream = js.get_stream(&cluster.names.stream).await.unwrap();
    let last = cluster.writer().await.last();
    for at in seq + 1..=last {
        let message = stream.get_raw_message(at).await.unwrap();
        replica.receive(at, &message.payload).unwrap();
        assert_eq!(reads.read(|_| ()).is_some(), at >= settled, "read at copy {at}, settled at {settled}");
    }
    drop((reads, replica));
    let copy = SledBackend::open(b.path(), CACHE).unwrap();
    for table in leader.table_names().unwrap().iter().filter(|t| *t != "replica") {
        assert_eq!(entries(&copy, table), entries(leader.as_ref(), table), "table {table}");
    }
    let head = leader.last_seq().unwrap();
    assert_eq!(copy.last_seq().unwrap(), head);
    assert_eq!(copy.read_log(1, head as usize).unwrap(), leader.read_log(1, head as usize).unwrap());
}

/// `n` commits, each setting a key of its own (so that a store missing
/// any one commit differs), every third one removing the key before, and
/// appending an event; flushed now and then (as the node's actors do).
fn commit_on(leader: &ReplicatedBackend, n: u32) {
    for i in 1..=n {
        let (key, before) = (format!("o{i:05}"), format!("o{:05}", i - 1));
        let mut changes = vec![Change { table: "orders", key: key.as_bytes(), value: Some(b"placed") }];
        if i % 3 == 0 {
            changes.push(Change { table: "orders", key: before.as_bytes(), value: None });
        }
        let seq = leader.last_seq().unwrap() + 1;
        leader.commit(&changes, &[(seq, format!("event {i}").into_bytes())]).unwrap();
        if i % 100 == 99 {
            leader.flush().unwrap();
        }
    }
}
