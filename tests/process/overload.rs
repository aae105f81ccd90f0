//! `fulfil load` against the real binary with a slow card gateway: every
//! answer is 201, 429 or 503 with Retry-After, none times out, nothing
//! acknowledged is lost, and memory stays bounded.

use crate::helpers::{check_acknowledged, check_store, settle, Acked, Proc};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn a_hundred_clients_against_a_slow_gateway_get_clear_answers_and_lose_nothing() {
    let data = tempfile::tempdir().unwrap();
    let slow = [("FULFIL_PAYMENT__GATEWAY_LATENCY_MS", "400"), ("FULFIL_PAYMENT__GATEWAY_JITTER_MS", "220")];
    let node = Proc::start_with(data.path(), &slow);
    let ids = tempfile::NamedTempFile::new().unwrap();
    let pid = node.pid().to_string();
    let (address, ids_path) = (node.address.clone(), ids.path().to_owned());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_fulfil"))
            .args(["load", "--url", &address, "--clients", "100", "--duration", "4", "--json"])
            .args(["--timeout-ms", "5000", "--watch-pid", &pid])
            .arg("--ids-out")
            .arg(&ids_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    println!("{report}");
    for status in report["by_status"].as_object().unwrap().keys() {
        assert!(["201", "429", "503"].contains(&status.as_str()), "unexpected status {status}: {report}");
    }
    assert_eq!(report["without_retry_after"], 0, "{report}");
    assert_eq!(report["timeouts"], 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["acknowledged"].as_u64().unwrap() >= 100, "{report}");
    assert!(report["p99_ms"].as_f64().unwrap() < 2_000.0, "{report}");
    assert!(report["peak_rss_mib"].as_f64().unwrap() < 200.0, "memory stays bounded: {report}");

    let acked: Vec<Acked> =
        std::fs::read_to_string(ids.path()).unwrap().lines().map(|id| Acked { id: id.to_owned() }).collect();
    assert_eq!(acked.len() as u64, report["acknowledged"].as_u64().unwrap());
    settle(&node.address).await;
    check_acknowledged(&node.address, &acked).await;
    node.signal("TERM");
    assert!(node.wait(Duration::from_secs(10)).await.success());
    check_store(data.path(), &[("LOAD", 1_000_000_000_000)]);
}
