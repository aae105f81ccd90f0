//! The real `fulfil` binary: configuration from the environment, where it
//! says it listens, and a clean exit on SIGTERM with nothing lost.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The running binary; killed and reaped on drop, so a failing test leaves
/// no process behind.
struct Node(Option<Child>);

impl Node {
    fn pid(&self) -> u32 {
        self.0.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Waits for the process to exit on its own.
    fn wait(mut self) -> std::process::ExitStatus {
        self.0.take().unwrap().wait().unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the binary on a free port and returns it with the address it
/// logged.
fn start(data: &std::path::Path) -> (Node, String, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .arg("serve")
        .env("FULFIL_HTTP__BIND", "127.0.0.1:0")
        .env("FULFIL_STORE__PATH", data)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let node = Node(Some(child));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no address logged: {seen:?}"));
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let address = rest.split_whitespace().next().unwrap().to_owned();
            assert!(line.contains(&data.display().to_string()), "it logs where its data is: {line}");
            return (node, address, rx);
        }
        seen.push(line);
    }
}

#[tokio::test]
async fn the_binary_takes_env_overrides_serves_and_exits_0_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let (node, address, _log) = start(data.path());
    let client = reqwest::Client::new();
    let ready = client.get(format!("http://{address}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body = serde_json::json!({"sku": "MUG", "name": "Mug", "price": 1500, "stock": 3});
    let r = client.post(format!("http://{address}/products")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);

    let killed = Command::new("kill").arg("-TERM").arg(node.pid().to_string()).status().unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || node.wait()).await.unwrap();
    assert!(status.success(), "exit status {status:?}");

    // The acknowledged product is there when the node comes back.
    let (_node, address, _log) = start(data.path());
    let product: serde_json::Value =
        client.get(format!("http://{address}/products/MUG")).send().await.unwrap().json().await.unwrap();
    assert_eq!(product["stock"], 3);
}
