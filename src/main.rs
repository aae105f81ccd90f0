use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fulfil::cli::run(fulfil::cli::Args::parse()).await
}
