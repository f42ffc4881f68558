//! `calgate-bench`: the load and idle-session tool behind BENCHMARKS.md (issue #7).
//!
//! It starts the release `calgate` binary as a separate process in front of a running upstream
//! (`scripts/upstream start`), drives it over real TCP as legacy clients do, and sends the same
//! CalDAV requests directly to the same upstream for comparison. It prints the figures; it
//! asserts nothing about speed.
//!
//! ```text
//! cargo build --release --bin calgate --example calgate-bench
//! target/release/examples/calgate-bench load  --help
//! target/release/examples/calgate-bench idle  --help
//! ```

mod client;
mod gateway;
mod idle;
mod load;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "calgate-bench",
    about = "Load and idle-session benchmarks for calgate"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the gateway under test comes from and what it talks to.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The calgate binary to start (default: `calgate` next to this tool's directory, i.e.
    /// target/release/calgate for target/release/examples/calgate-bench).
    #[arg(long)]
    pub gateway_bin: Option<PathBuf>,
    /// The upstream CalDAV server (as `scripts/upstream env` prints it).
    #[arg(long, default_value = "http://127.0.0.1:8008/")]
    pub upstream_url: String,
    /// Principal path template of the upstream ({user} = login name).
    #[arg(long, default_value = "/dav/principals/user/{user}/")]
    pub principal_template: String,
    /// Default-calendar path template of the upstream ({user} = login name).
    #[arg(long, default_value = "/dav/calendars/user/{user}/Default/")]
    pub calendar_template: String,
    /// Extra `[upstream]` settings for the gateway under test, as TOML lines (repeatable),
    /// e.g. `--upstream-option 'request_timeout_secs = 60'`.
    #[arg(long)]
    pub upstream_option: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Throughput and latency: calgate (CIP and CAP sessions) against the same CalDAV requests
    /// sent directly, alternated within one run, for each concurrency N.
    Load(load::Args),
    /// Resident memory per idle authenticated CAP session.
    Idle(idle::Args),
    /// Internal: a worker process of `idle` that holds client connections (so that the client
    /// side is not bound by one process's file limit).
    #[command(hide = true)]
    IdleWorker(idle::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Load(args) => load::run(args),
        Command::Idle(args) => idle::run(args),
        Command::IdleWorker(args) => idle::worker(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("calgate-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
