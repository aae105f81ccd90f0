//! The fenced partition writer (`fulfil::cluster::PartitionWriter`) on a
//! real JetStream server: a stale owner's batch is refused whole once the
//! new owner has written, and writers of other partitions do not fence
//! each other; with the leases, a node paused past its lease cannot write.

use crate::nats::Nats;
use crate::tools::tool;
use async_nats::jetstream::{self, stream};
use fulfil::cluster::{AppendError, PartitionWriter};

const STREAM: &str = "PARTS";

async fn server() -> (Nats, async_nats::Client) {
    let nats = Nats::start(&tool("nats-server"));
    let client = async_nats::connect(&nats.url).await.unwrap();
    let config = stream::Config {
        name: STREAM.into(),
        subjects: vec!["parts.*".into()],
        allow_atomic_publish: true,
        ..Default::default()
    };
    jetstream::new(client.clone()).create_stream(config).await.unwrap();
    (nats, client)
}

/// The payloads on `subject`, in the stream's order.
async fn on(client: &async_nats::Client, subject: &str) -> Vec<String> {
    let mut stream = jetstream::new(client.clone()).get_stream(STREAM).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut found = Vec::new();
    for n in 1..=last {
        let m = stream.get_raw_message(n).await.unwrap();
        if m.subject.as_str() == subject {
            found.push(String::from_utf8(m.payload.to_vec()).unwrap());
        }
    }
    found
}

fn batch(words: &[&str]) -> Vec<Vec<u8>> {
    words.iter().map(|w| w.as_bytes().to_vec()).collect()
}

#[tokio::test]
async fn a_stale_owner_is_fenced_off_its_partition_and_its_batch_stored_not_at_all() {
    let (_nats, client) = server().await;
    let mut old = PartitionWriter::take_over(&client, STREAM, "parts.3").await.unwrap();
    assert_eq!(old.last(), 0);
    old.append(batch(&["a1", "a2", "a3"])).await.unwrap();
    old.append(batch(&["a4"])).await.unwrap();

    // Another partition's writer does not fence this one.
    let mut other = PartitionWriter::take_over(&client, STREAM, "parts.4").await.unwrap();
    other.append(batch(&["x1"])).await.unwrap();
    old.append(batch(&["a5"])).await.unwrap();

    // The partition moves (old's lease ran out while it was paused): the
    // new owner starts after everything old wrote, and writes.
    let mut new = PartitionWriter::take_over(&client, STREAM, "parts.3").await.unwrap();
    assert_eq!(new.last(), old.last());
    new.append(batch(&["b1", "b2"])).await.unwrap();

    // old wakes up and writes as if it still owned the partition.
    for stale in [batch(&["late1", "late2", "late3"]), batch(&["late4"])] {
        match old.append(stale).await {
            Err(AppendError::Fenced { subject, .. }) => assert_eq!(subject, "parts.3"),
            other => panic!("a stale owner's append must be fenced, not {other:?}"),
        }
    }
    new.append(batch(&["b3"])).await.unwrap();
    assert_eq!(on(&client, "parts.3").await, ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3"]);
    assert_eq!(on(&client, "parts.4").await, ["x1"]);
}

/// Leases and fencing together, as a node will use them: a node that held
/// a partition and paused past its lease finds, on waking, its write
/// refused (the partition's new owner wrote meanwhile) and then its lease
/// gone; nothing it wrote after losing the partition is in the stream.
#[tokio::test]
async fn a_node_paused_past_its_lease_can_no_longer_write_its_partition() {
    use fulfil::cluster::Leases;
    use std::time::{Duration, Instant};
    const TTL: Duration = Duration::from_secs(1);
    let (_nats, client) = server().await;
    let js = jetstream::new(client.clone());
    let subject = |p: u32| format!("parts.{p}");

    // One partition, two nodes: a takes it first.
    let mut a = Leases::join(&js, "PARTS_OWNERS", TTL, "a", 1).await.unwrap();
    assert_eq!(a.tick().await.unwrap().gained, [0]);
    let mut a_writer = PartitionWriter::take_over(&client, STREAM, &subject(0)).await.unwrap();
    a_writer.append(batch(&["a1"])).await.unwrap();

    // a pauses; b waits for the lease to run out, then takes the partition
    // over and writes.
    let mut b = Leases::join(&js, "PARTS_OWNERS", TTL, "b", 1).await.unwrap();
    let deadline = Instant::now() + TTL * 5;
    while b.tick().await.unwrap().gained.is_empty() {
        assert!(Instant::now() < deadline, "b never got the partition");
        tokio::time::sleep(TTL / 4).await;
    }
    let mut b_writer = PartitionWriter::take_over(&client, STREAM, &subject(0)).await.unwrap();
    b_writer.append(batch(&["b1"])).await.unwrap();

    // a wakes up and writes as if nothing happened: refused; its next
    // tick tells it the partition is gone.
    assert!(matches!(a_writer.append(batch(&["a2", "a3"])).await, Err(AppendError::Fenced { .. })));
    assert_eq!(a.tick().await.unwrap().lost, [0]);
    assert_eq!(a.held().count(), 0);
    assert_eq!(on(&client, &subject(0)).await, ["a1", "b1"]);
}
