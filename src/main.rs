use clap::Parser;

/// mimalloc rather than the system allocator: sled copies a tree node on
/// every write, and under glibc's malloc those copies took over a third of
/// the node's cycles at 100k orders (`cargo bench`, README "Performance").
/// A library does not choose the allocator, so embedders pick their own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    fulfil::cli::run(fulfil::cli::Args::parse()).await
}
