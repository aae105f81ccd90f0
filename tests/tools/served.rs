//! A `fulfil serve` process of this build, for the tests and the
//! benchmark: on a data directory of its own and a loopback port of its
//! choosing, killed on drop.

use std::ffi::OsStr;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

pub struct Served {
    child: Child,
    /// Where it listens: `http://127.0.0.1:<port>`.
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Served {
    /// Starts it with `env` on top of its defaults, once it says where it
    /// listens.
    pub fn start(env: &[(impl AsRef<OsStr>, impl AsRef<OsStr>)]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_fulfil"))
            .arg("serve")
            .env("FULFIL_HTTP__BIND", "127.0.0.1:0")
            .env("FULFIL_STORE__PATH", dir.path())
            .env("NO_COLOR", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = loop {
            let line = lines.next().expect("the node logs its address").unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break format!(
                    "http://{}",
                    rest.split(|c: char| c.is_whitespace() || c == '"').next().unwrap()
                );
            }
        };
        // Read on, so that the node never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Served { child, url, _dir: dir }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
