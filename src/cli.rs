//! The command line of the `fulfil` binary.

use crate::config::Settings;
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
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> ExitCode {
    init_tracing();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    match args.command.unwrap_or(Cmd::Serve) {
        Cmd::Serve => serve(settings).await,
        Cmd::Load(load) => drive(load).await,
    }
}

async fn serve(settings: Settings) -> ExitCode {
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
    let spec = crate::load::LoadSpec {
        url: args.url,
        clients: args.clients,
        duration: std::time::Duration::from_secs(args.duration),
        rate: args.rate,
        max_requests: args.max_requests,
        timeout: std::time::Duration::from_millis(args.timeout_ms),
        ids_out: args.ids_out,
        watch_pid: args.watch_pid,
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

/// Logs to stderr; `RUST_LOG` filters (default `info`).
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
