//! The container and the Kubernetes manifests: the Dockerfile passes
//! hadolint, every manifest validates against the Kubernetes schemas, and
//! the settings and keys they ship start a node that the container's health
//! check finds ready. The tools are installed by `scripts/test-tools.sh`
//! (into `target/test-tools`) when they are missing.

#[allow(dead_code)]
#[path = "tools/nats.rs"]
mod nats;
mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tools::{root, tool};

fn run(tool_name: &str, args: &[&Path]) -> Output {
    Command::new(tool(tool_name)).args(args).current_dir(root()).output().unwrap()
}

/// The manifests: the node's, the event stream's (`stream/`), and failover
/// mode's (`failover/`).
fn manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["deploy/k8s", "deploy/k8s/stream", "deploy/k8s/failover"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root().join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas_and_a_broken_one_does_not() {
    let files = manifests();
    let kinds: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    for kind in [
        "kind: StatefulSet",
        "kind: Service",
        "kind: ConfigMap",
        "kind: Secret",
        "kind: PodDisruptionBudget",
        "kind: HorizontalPodAutoscaler",
    ] {
        assert!(kinds.iter().any(|k| k.contains(kind)), "deploy/k8s has a {kind}");
    }
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let checked = run("kubernetes-validate", &[&[Path::new("--strict")], paths.as_slice()].concat());
    let said =
        String::from_utf8_lossy(&checked.stdout).into_owned() + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "{said}");
    let resources: usize =
        kinds.iter().map(|k| k.matches("\nkind: ").count() + usize::from(k.starts_with("kind: "))).sum();
    assert_eq!(said.matches("passed").count(), resources, "{said}");

    // The validator is not a formality: a misspelt field fails it.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let statefulset = std::fs::read_to_string(root().join("deploy/k8s/statefulset.yaml")).unwrap();
    std::fs::write(&broken, statefulset.replace("replicas: 1", "replicaz: 1")).unwrap();
    assert!(!run("kubernetes-validate", &[Path::new("--strict"), &broken]).status.success());
}

#[test]
fn the_dockerfile_passes_hadolint_and_a_careless_one_does_not() {
    let linted = run("hadolint", &[&root().join("Dockerfile")]);
    assert!(linted.status.success(), "{}", String::from_utf8_lossy(&linted.stdout));
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for line in ["USER 10001", "HEALTHCHECK", "AS build", "FROM debian:trixie-slim"] {
        assert!(dockerfile.contains(line), "the Dockerfile has {line:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let careless = dir.path().join("Dockerfile");
    std::fs::write(&careless, "FROM debian:latest\nRUN apt-get install curl\n").unwrap();
    assert!(!run("hadolint", &[&careless]).status.success());
}

/// The text of the block under `key: |` in a manifest (a ConfigMap's or a
/// Secret's file), without its indentation.
fn file_in(manifest: &str, key: &str) -> String {
    let text = std::fs::read_to_string(root().join("deploy/k8s").join(manifest)).unwrap();
    let start = text.find(&format!("{key}: |\n")).expect("the file's key") + key.len() + 4;
    let lines = text[start..].lines().take_while(|l| l.starts_with("    ") || l.is_empty());
    lines.map(|l| l.strip_prefix("    ").unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

/// Whether `fulfil probe`, the container's health check, finds the node at
/// `url` ready within `tries` tries 100 ms apart (the probe's own 2 s
/// timeout bounds each).
fn probed_ready(url: &str, tries: usize) -> bool {
    let probe = || Command::new(env!("CARGO_BIN_EXE_fulfil")).args(["probe", "--url", url]).output().unwrap();
    (0..tries).any(|_| {
        let ok = probe().status.success();
        if !ok {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        ok
    })
}

/// The environment a Secret gives a container (`envFrom`): its
/// `stringData`.
fn env_in(manifest: &str) -> Vec<(String, String)> {
    entries_in(manifest, "stringData")
}

/// The settings a ConfigMap gives a container (`envFrom`): its `data`.
fn data_in(manifest: &str) -> Vec<(String, String)> {
    entries_in(manifest, "data")
}

/// The `key: value` lines of `manifest`'s top-level `block`.
fn entries_in(manifest: &str, block: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("deploy/k8s").join(manifest)).unwrap();
    let data = text.split(&format!("\n{block}:\n")).nth(1).unwrap_or_else(|| panic!("a {block} block"));
    let entries = data.lines().take_while(|l| l.starts_with("  ")).filter_map(|l| l.trim().split_once(": "));
    entries.map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned())).collect()
}

/// The JetStream cluster's configuration is one that nats-server (the
/// version the stream's tests run) accepts, with a server's name and the
/// Secret's password; the check is not a formality: a setting out of range
/// fails it. The node's URL names every server, with the password the
/// servers require.
#[test]
fn the_stream_manifests_configure_nats_as_nats_server_accepts() {
    let env = env_in("stream/stream-secret.yaml");
    let get = |key: &str| env.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key}")).1.clone();
    let password = get("NATS_PASSWORD");
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("nats.conf");
    let shipped = file_in("stream/nats.yaml", "nats.conf");
    let check = |text: &str| {
        std::fs::write(&conf, text).unwrap();
        let out = Command::new(tool("nats-server"))
            .arg("-c")
            .arg(&conf)
            .arg("-t")
            .env("SERVER_NAME", "nats-0")
            .env("NATS_PASSWORD", &password)
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (valid, said) = check(&shipped);
    assert!(valid, "{said}");
    for needed in ["jetstream", "nats://nats-2.nats:6222", "password: $NATS_PASSWORD"] {
        assert!(shipped.contains(needed), "{needed} in {shipped}");
    }
    let (valid, _) = check(&shipped.replace("lame_duck_duration: 30s", "lame_duck_duration: 10s"));
    assert!(!valid, "nats-server refuses a lame duck time under 30 s");
    let url = get("FULFIL_STREAM__URL");
    assert_eq!(url.split(',').count(), 3, "every server of the cluster: {url}");
    assert!(url.starts_with(&format!("nats://fulfil:{password}@nats-0.nats:4222,")), "{url}");
}

/// The ConfigMap's settings and the Secret's keys, with the event stream's
/// settings on, start a node (paths and port moved to a temporary
/// directory; no NATS server: the stream waits, the node does not), and
/// `fulfil probe`, the container's health check, finds it ready; the pods'
/// grace period covers the drain and the shutdown the settings ask for.
#[test]
fn the_shipped_settings_and_keys_start_a_node_the_probe_finds_ready() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, file_in("configmap.yaml", "config.toml")).unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, file_in("secret.yaml", "keys.txt")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut node = Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("FULFIL_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("FULFIL_STORE__PATH", dir.path().join("data"))
        .env("FULFIL_AUTH__KEYS_FILE", &keys)
        .envs(env_in("stream/stream-secret.yaml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    // The node starts in well under a second.
    let ready = probed_ready(&url, 50);
    let _ = node.kill();
    let _ = node.wait();
    assert!(ready, "the node on the shipped settings never became ready");

    let settings = fulfil::Settings::load(Some(&config)).unwrap();
    let statefulset = std::fs::read_to_string(root().join("deploy/k8s/statefulset.yaml")).unwrap();
    let grace: u64 = statefulset
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
        .expect("a grace period")
        .trim()
        .parse()
        .unwrap();
    let shutdown_ms = settings.shutdown.drain_ms + settings.shutdown.timeout_ms;
    assert!(grace * 1000 > shutdown_ms + 2000, "{grace} s is not enough for {shutdown_ms} ms and the flush");
}

/// The failover ConfigMap's settings, with the address the StatefulSet
/// gives (`http://$(POD_IP):8080`, here loopback) and a pod's host name,
/// start a node on a real JetStream server; alone, it leads, and the
/// container's health check finds it ready.
#[test]
fn the_failover_settings_start_a_node_that_leads_on_a_real_server() {
    let env = data_in("failover/failover.yaml");
    assert!(env.contains(&("FULFIL_STREAM__MODE".into(), "failover".into())), "{env:?}");
    let statefulset = std::fs::read_to_string(root().join("deploy/k8s/statefulset.yaml")).unwrap();
    assert!(statefulset.contains("http://$(POD_IP):8080") && statefulset.contains("name: fulfil-failover"));
    let nats = nats::Nats::start(&tool("nats-server"));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let mut node = Command::new(env!("CARGO_BIN_EXE_fulfil"))
        .arg("serve")
        .env("FULFIL_HTTP__BIND", format!("127.0.0.1:{port}"))
        .env("FULFIL_STORE__PATH", dir.path().join("data"))
        .env("FULFIL_STREAM__URL", &nats.url)
        .env("FULFIL_STREAM__ADVERTISE", &url)
        .env("HOSTNAME", "fulfil-0")
        .envs(env)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = probed_ready(&url, 100);
    // A follower is ready once caught up, before it claims the lead: wait
    // for the node's own health (that of a node that leads).
    let live = || {
        let out = Command::new("curl").args(["-s", &format!("{url}/health/live")]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let leads = |body: &str| body.contains("\"services\"") && !body.contains("follower");
    let mut last = live();
    for _ in 0..100 {
        if leads(&last) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        last = live();
    }
    let _ = node.kill();
    let _ = node.wait();
    assert!(ready, "the node on the failover settings never became ready");
    assert!(leads(&last), "it leads: {last}");
}
