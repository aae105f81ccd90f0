//! Crash safety: `kill -9` at random moments under load, and SIGTERM under
//! load. Nothing acknowledged is lost, nothing happens twice, no saga stops
//! half-way.

use crate::helpers::{add_products, check_acknowledged, check_store, settle, Load, Proc};
use crate::lifecycle::{add_drivers, finish_rides, until_nothing_is_unpaid, EXPIRY};
use std::time::Duration;

const CLIENTS: usize = 8;
const INITIAL: [(&str, u64); 2] = [("MUG", 1_000_000), ("RARE", 40)];

/// Besides orders: drivers taken for rides and given back, and unpaid
/// orders expiring on durable timers, through every kill. After the last
/// restart every ride a kill interrupted is finished and every unpaid order
/// has expired; then the store holds every unit once and no timer fired
/// twice (an expiry twice would be a second cancel).
#[tokio::test]
async fn kill_9_under_load_five_times_loses_and_repeats_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    for round in 0..5 {
        let node = Proc::start_with(data.path(), &EXPIRY);
        if round == 0 {
            add_products(&node.address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
            add_drivers(&node.address).await;
        } else {
            settle(&node.address).await;
            finish_rides(&node.address, &acked).await;
        }
        let load = Load::drive_mixed(&node.address, CLIENTS, 2, round);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(150..600))).await;
        node.signal("KILL");
        let status = node.wait(Duration::from_secs(5)).await;
        assert!(!status.success(), "killed, not exited");
        let (round_acked, unexpected) = load.finish().await;
        assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
        assert!(!round_acked.is_empty(), "round {round} acknowledged nothing");
        acked.extend(round_acked);
    }

    let node = Proc::start_with(data.path(), &EXPIRY);
    settle(&node.address).await;
    finish_rides(&node.address, &acked).await;
    until_nothing_is_unpaid(&node.address).await;
    settle(&node.address).await;
    check_acknowledged(&node.address, &acked).await;
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());
    let (orders, seen) = check_store(data.path(), &INITIAL);
    assert!(orders >= acked.len());
    assert!(seen.rides_ended > 0 && seen.expired > 0, "the load exercised rides and expiries: {seen:?}");
    println!("{} acknowledged orders across 5 kills, {orders} orders in the store, {seen:?}", acked.len());
}

#[tokio::test]
async fn sigterm_under_load_exits_0_with_nothing_lost_or_half_done() {
    let data = tempfile::tempdir().unwrap();
    let node = Proc::start(data.path());
    add_products(&node.address, &INITIAL.map(|(s, n)| (s, n as i64))).await;
    let load = Load::drive(&node.address, CLIENTS, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    node.signal("TERM");
    let status = node.wait(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
    let (acked, unexpected) = load.finish().await;
    assert!(unexpected.is_empty(), "unexpected answers: {unexpected:?}");
    assert!(!acked.is_empty());

    let node = Proc::start(data.path());
    settle(&node.address).await;
    check_acknowledged(&node.address, &acked).await;
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());
    check_store(data.path(), &INITIAL);
}
