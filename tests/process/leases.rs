//! Partition leases on a real JetStream server (`fulfil::cluster`): every
//! partition has one owner, shares are fair, a joiner takes its share, and
//! a node that stops renewing gives its partitions up within the lease's
//! time to live.

use crate::nats::Nats;
use crate::tools::tool;
use fulfil::cluster::Leases;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

const PARTITIONS: u32 = 16;
const TTL: Duration = Duration::from_secs(2);

async fn join(url: &str, node: &str) -> Leases {
    let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
    Leases::join(&js, "FULFIL_OWNERS", TTL, node, PARTITIONS).await.unwrap()
}

/// One round, as each node's loop does it: tick, then hand over the
/// surplus. Checks after every node's turn that no partition has two
/// owners among `nodes`.
async fn round(nodes: &mut [&mut Leases]) {
    for i in 0..nodes.len() {
        nodes[i].tick().await.unwrap();
        for p in nodes[i].surplus().await.unwrap() {
            nodes[i].release(p).await.unwrap();
        }
        assert_disjoint(nodes);
    }
}

fn assert_disjoint(nodes: &[&mut Leases]) {
    let mut seen = BTreeSet::new();
    for n in nodes {
        for p in n.held() {
            assert!(seen.insert(p), "partition {p} has two owners");
        }
    }
}

fn owned(nodes: &[&mut Leases]) -> usize {
    nodes.iter().map(|n| n.held().count()).sum()
}

fn shares(nodes: &[&mut Leases]) -> Vec<usize> {
    nodes.iter().map(|n| n.held().count()).collect()
}

/// Rounds until every partition is owned and each node holds its fair
/// share (no fewer than `floor`, no more than `ceil` of partitions over
/// nodes); the rounds it took.
async fn settle(nodes: &mut [&mut Leases], limit: Duration) -> usize {
    let fair = (PARTITIONS as usize / nodes.len())..=(PARTITIONS as usize).div_ceil(nodes.len());
    let deadline = Instant::now() + limit;
    for n in 1.. {
        round(nodes).await;
        if owned(nodes) == PARTITIONS as usize && shares(nodes).iter().all(|s| fair.contains(s)) {
            return n;
        }
        assert!(Instant::now() < deadline, "not settled: {:?}", shares(nodes));
        tokio::time::sleep(TTL / 8).await;
    }
    unreachable!()
}

#[tokio::test]
async fn partitions_have_one_owner_each_and_move_when_a_node_joins_dies_or_leaves() {
    let nats = Nats::start(&tool("nats-server"));
    let (mut a, mut b, mut c) =
        (join(&nats.url, "a").await, join(&nats.url, "b").await, join(&nats.url, "c").await);

    // Alone, a takes them all; each newcomer gets a fair share from it.
    settle(&mut [&mut a], TTL).await;
    assert_eq!(a.held().count(), 16);
    settle(&mut [&mut a, &mut b], TTL).await;
    assert_eq!(shares(&[&mut a, &mut b]), [8, 8]);
    settle(&mut [&mut a, &mut b, &mut c], TTL).await;
    let mut three = shares(&[&mut a, &mut b, &mut c]);
    three.sort();
    assert_eq!(three, [5, 5, 6]);

    // c stops renewing, as a node killed with kill -9 does: a and b take
    // its partitions once its leases run out, and not before.
    let dead: BTreeSet<u32> = c.held().collect();
    let stopped = Instant::now();
    // What c believes is still surely its own: none is taken before then.
    let c_until = dead.iter().map(|p| c.held_until(*p).unwrap()).min().unwrap();
    assert!(c_until > stopped && c_until <= stopped + TTL, "{:?} after the stop", c_until - stopped);
    assert_eq!(a.held_until(*dead.first().unwrap()), None, "a holds none of c's");
    while a.held().chain(b.held()).all(|p| !dead.contains(&p)) {
        assert!(stopped.elapsed() < TTL * 3, "c's partitions were never taken");
        round(&mut [&mut a, &mut b]).await;
        tokio::time::sleep(TTL / 8).await;
    }
    assert!(Instant::now() >= c_until, "taken while c still believed it held them");
    settle(&mut [&mut a, &mut b], TTL * 3).await;
    let moved = stopped.elapsed();
    assert!(moved >= TTL / 2, "its leases lived on for a while ({moved:?})");
    assert_eq!(shares(&[&mut a, &mut b]), [8, 8]);
    println!("a dead node's partitions moved in {moved:?} (lease {TTL:?})");

    // c comes back (it was only paused): its first tick tells it what it
    // lost, and it gets a share again from the others' surplus.
    let change = c.tick().await.unwrap();
    assert_eq!(change.lost.iter().copied().collect::<BTreeSet<u32>>(), dead, "c learns it lost them");
    assert_disjoint(&[&mut a, &mut b, &mut c]);
    settle(&mut [&mut a, &mut b, &mut c], TTL).await;

    // b leaves: a and c take its partitions at once, without waiting for
    // a lease to expire.
    b.leave().await.unwrap();
    let left = Instant::now();
    settle(&mut [&mut a, &mut c], TTL).await;
    assert_eq!(shares(&[&mut a, &mut c]), [8, 8]);
    assert!(left.elapsed() < TTL, "a leaver's partitions are free at once ({:?})", left.elapsed());
}
