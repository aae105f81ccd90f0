//! The command line of the `fulfil` binary.

use crate::config::{LogFormat, LogSettings, Settings};
use crate::startup::Application;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "fulfil", version, about = "An order-fulfilment runtime on supervised actors")]
pub struct Args {
    /// A configuration file to read over the defaults (default: ./config.toml
    /// if it exists). FULFIL_SECTION__KEY environment variables override both.
    #[arg(long, short, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the node and its HTTP gateway (the default).
    Serve,
    /// Drive concurrent clients placing card orders at a running node, for a
    /// bounded time, on loopback only; print status counts, throughput and
    /// latency percentiles.
    Load(LoadArgs),
    /// Verify a stopped node's store: the log is contiguous, offsets and
    /// views are not ahead of it, every named unit is held at most once.
    /// Exit status 0 when it is sound, 1 when it has problems, 2 when it
    /// cannot be opened.
    Check {
        /// The data directory (default: the configured `store.path`).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Ask a running node for a consistent copy of its store, written to a
    /// new or empty directory on the node's machine (needs `admin.token`).
    Backup {
        /// The directory to write the copy to, on the node's machine.
        #[arg(long)]
        to: PathBuf,
        /// The node's base URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Ask a running node whether it is ready (`/health/ready`): exit status
    /// 0 when it is, 1 when it is not or does not answer within 2 s. A
    /// container's health check, where there is no curl.
    Probe {
        /// The node's base URL (default: `http.bind`, on loopback).
        #[arg(long)]
        url: Option<String>,
    },
    /// Make a stopped node's store the first store of a new failover
    /// cluster (`stream.mode = "failover"`): a single node's (embedded or
    /// export mode), or a failover node's whose cluster is gone (a backup
    /// restored, a stopped node's directory). It becomes the cluster's
    /// first snapshot, and the directory a follower's, so that failover
    /// nodes start on it or on empty directories with every order it
    /// holds. Exit status 0 when seeded, 1 when refused (a damaged store,
    /// a cluster that holds a store already), 2 when the store or the
    /// servers cannot be reached.
    Seed {
        /// The data directory (default: the configured `store.path`).
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// Put a backup in place of a (new or empty) data directory, after
    /// checking that it opens; then start the node on it.
    Restore {
        /// The backup's directory.
        #[arg(long)]
        from: PathBuf,
        /// The data directory to restore into (default: `store.path`).
        #[arg(long)]
        data: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The node's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Concurrent clients.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Requests per second across all clients (fixed rate); without it, as
    /// fast as answers come.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this many requests.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_requests: u64,
    /// A request without an answer after this many milliseconds is a timeout.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Write the ids of acknowledged orders to this file.
    #[arg(long)]
    pub ids_out: Option<PathBuf>,
    /// Sample this process's resident memory (the node's pid).
    #[arg(long)]
    pub watch_pid: Option<u32>,
    /// A file holding the API key to send (an operator's), for a node with
    /// keys; read from a file so that it never shows in the process list.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Spread the orders over this many products (`LOAD-0`, `LOAD-1`, ...;
    /// 1: `LOAD` alone), e.g. over the shards of a cluster split into shards.
    #[arg(long, default_value_t = 1)]
    pub skus: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> ExitCode {
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let _telemetry = crate::telemetry::init(&LogSettings {
                format: LogFormat::Text,
                otlp_endpoint: String::new(),
            });
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    // Kept until the command ends: dropping it sends the spans still batched.
    let _telemetry = crate::telemetry::init(&settings.log);
    match args.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => serve(settings).await,
        Cmd::Load(load) => drive(load).await,
        Cmd::Check { data } => check(&data.unwrap_or(settings.store.path)),
        Cmd::Backup { to, url } => backup(&url, &to, &settings.admin.token).await,
        Cmd::Restore { from, data } => restore(&from, &data.unwrap_or(settings.store.path)),
        Cmd::Seed { data } => {
            let data = data.unwrap_or_else(|| settings.store.path.clone());
            seed(&settings, &data).await
        }
        Cmd::Probe { url } => probe(&url.unwrap_or_else(|| local_url(&settings.http.bind))).await,
    }
}

/// The URL a process on the node's own machine reaches `bind` at.
fn local_url(bind: &str) -> String {
    let port = bind.rsplit_once(':').map_or("8080", |(_, port)| port);
    format!("http://127.0.0.1:{port}")
}

async fn probe(url: &str) -> ExitCode {
    let ready = format!("{}/health/ready", url.trim_end_matches('/'));
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(2)).build();
    let answer = match client {
        Ok(client) => client.get(&ready).send().await,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match answer {
        Ok(r) if r.status().is_success() => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!("{ready}: {}", r.status());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{ready}: {e}");
            ExitCode::from(1)
        }
    }
}

fn check(data: &std::path::Path) -> ExitCode {
    match crate::node::check::check(data) {
        Ok(report) => {
            println!("store in {}", data.display());
            report.summary.iter().for_each(|line| println!("  {line}"));
            if report.is_ok() {
                println!("sound");
                return ExitCode::SUCCESS;
            }
            println!("{} problems:", report.problems.len());
            report.problems.iter().for_each(|p| println!("  {p}"));
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn backup(url: &str, to: &std::path::Path, token: &str) -> ExitCode {
    let answer = reqwest::Client::new()
        .post(format!("{}/admin/backup", url.trim_end_matches('/')))
        .bearer_auth(token)
        .json(&serde_json::json!({ "to": to }))
        .send()
        .await;
    match answer {
        Ok(r) if r.status().is_success() => {
            println!("{}", r.text().await.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(r) => {
            let status = r.status();
            tracing::error!("the node refused the backup ({status}): {}", r.text().await.unwrap_or_default());
            ExitCode::FAILURE
        }
        Err(e) => {
            tracing::error!("cannot reach the node at {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn restore(from: &std::path::Path, data: &std::path::Path) -> ExitCode {
    match crate::store::restore(from, data) {
        Ok(report) => {
            println!(
                "restored store {} ({} events) from {} into {}; start the node on it",
                report.store_id,
                report.head,
                from.display(),
                data.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

async fn seed(settings: &Settings, data: &std::path::Path) -> ExitCode {
    use crate::startup::failover::FailoverError;
    match crate::startup::failover::seed(settings, data).await {
        Ok(seeded) => {
            println!(
                "seeded: the store in {} is the cluster's first snapshot (copy {}); start failover nodes on \
                 it or on empty directories",
                data.display(),
                seeded.seq
            );
            ExitCode::SUCCESS
        }
        Err(e @ FailoverError::Refused(_)) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(2)
        }
    }
}

async fn serve(settings: Settings) -> ExitCode {
    if settings.stream.mode == crate::config::StreamMode::Failover {
        return match crate::startup::failover::serve(settings).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("the server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn drive(args: LoadArgs) -> ExitCode {
    let key = match &args.key_file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(key) => Some(key.trim().to_owned()),
            Err(e) => {
                eprintln!("cannot read the key file {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let spec = crate::load::LoadSpec {
        url: args.url,
        clients: args.clients,
        duration: std::time::Duration::from_secs(args.duration),
        rate: args.rate,
        max_requests: args.max_requests,
        timeout: std::time::Duration::from_millis(args.timeout_ms),
        ids_out: args.ids_out,
        watch_pid: args.watch_pid,
        key,
        skus: args.skus,
    };
    match crate::load::run(spec).await {
        Ok(report) if args.json => {
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.table());
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(2)
        }
    }
}
