//! A full disk is survived: while the store cannot write, writes answer 503
//! with Retry-After, readiness says why, reads still answer; when space
//! returns the node takes writes again by itself, and nothing acknowledged
//! is lost. On a real small filesystem (tmpfs), where the machine lets the
//! test mount one (CI runs as root).

use crate::helpers::{order_body, spawn_app_at};
use reqwest::StatusCode;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A small filesystem mounted for the test; unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().ok()?.keep();
        let options = format!("size={size}");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &options, "tmpfs"]).arg(&dir).status();
        match mounted {
            Ok(s) if s.success() => Some(SmallDisk(dir)),
            _ => None,
        }
    }

    /// Fills the disk: a file grows until nothing more fits.
    fn fill(&self) -> PathBuf {
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![7u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn status_of(client: &reqwest::Client, url: String) -> (StatusCode, Value) {
    let r = client.get(url).send().await.unwrap();
    (r.status(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_full_disk_answers_503_keeps_reads_and_recovers_by_itself() {
    let Some(disk) = SmallDisk::mount("24m") else {
        eprintln!("skipped: this machine does not let the test mount a small filesystem");
        return;
    };
    let data: &Path = &disk.0.join("data");
    let app = spawn_app_at(data).await;
    app.add_product("MUG", 100, 1_000_000).await;
    let mut acked = Vec::new();
    for n in 0..5 {
        acked.push(app.place(&order_body(&format!("before{n}"), "MUG", 1, "bank_transfer")).await);
    }

    let filler = disk.fill();
    let deadline = Instant::now() + Duration::from_secs(20);
    let problem = loop {
        let r = app.post_json("/orders", &order_body("during", "MUG", 1, "bank_transfer")).await;
        match r.status() {
            StatusCode::CREATED => {
                acked.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned())
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(r.headers().contains_key("retry-after"), "503 without Retry-After");
                let problem: Value = r.json().await.unwrap();
                if problem["type"] == "/problems/store-unavailable" {
                    break problem;
                }
            }
            other => panic!("a write on a full disk answered {other}: {}", r.text().await.unwrap()),
        }
        assert!(Instant::now() < deadline, "the disk never filled up for the node");
    };
    assert!(problem["detail"].as_str().unwrap().contains("cannot write"), "{problem}");

    let (ready, health) = status_of(&app.client, app.url("/health/ready")).await;
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["status"], "store_unavailable", "{health}");
    assert!(health["store_failure"].is_string(), "readiness says why: {health}");
    // sled fails reads too once a write failed; the node reopens it for
    // reads within a second, while the disk is still full.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (read, view) = status_of(&app.client, app.url(&format!("/status/{}", acked[0]))).await;
        if read == StatusCode::OK {
            break;
        }
        assert_eq!(read, StatusCode::SERVICE_UNAVAILABLE, "a read is answered or told to retry: {view}");
        assert!(Instant::now() < deadline, "reads did not answer again: {view}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status_of(&app.client, app.url("/products/MUG")).await.0, StatusCode::OK);
    let (still, _) = status_of(&app.client, app.url("/health/ready")).await;
    assert_eq!(still, StatusCode::SERVICE_UNAVAILABLE, "writes wait for space; readiness says so");

    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let recovered = loop {
        let r = app.post_json("/orders", &order_body("after", "MUG", 1, "bank_transfer")).await;
        if r.status() == StatusCode::CREATED {
            break r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "the node did not take writes again: {}", r.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    app.wait_until_ready().await;
    for id in acked.iter().chain([&recovered]) {
        let order = app.node.order(id).await;
        assert!(order.is_ok(), "{id} was acknowledged and is gone: {order:?}");
    }
    app.wait_for_status(&recovered, "payment_pending").await;
    app.stop().await;
}
