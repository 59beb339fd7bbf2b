//! `causerie bench …`: a load generator that drives real WebSocket and HTTP clients against a
//! running Causerie over loopback and measures it (docs/benchmarks.md).
//!
//! Fixtures (users, chats, prefilled history) are written straight into the server's database
//! with the server's own configuration, and tokens are minted with the server's signing key, so
//! setting up thousands of users takes seconds instead of thousands of argon2 hashes and logins.
//!
//! Every run is bounded: in time (`--duration`, at most [`MAX_DURATION_SECS`]), in count (each
//! size option has a cap) and in place (the target must resolve to 127.0.0.0/8).

pub mod app;
pub mod connections;
pub mod engine;
pub mod fixtures;
pub mod history;
pub mod http;
pub mod net;
pub mod rest;
pub mod stats;
pub mod storm;
pub mod throughput;

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use crate::config::Config;

/// The longest measured phase a run may ask for.
pub const MAX_DURATION_SECS: u64 = 300;
/// Time allowed for everything around the measured phases (fixtures, connecting, draining).
const SETUP_ALLOWANCE: Duration = Duration::from_secs(900);

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
}

#[derive(Subcommand, Debug)]
pub enum Scenario {
    /// Open N authenticated v2 sockets, hold them, report how many held and the server's memory.
    Connections(connections::ConnectionsArgs),
    /// Two-person chats, both members connected and sending: stored msg/s, deliveries/s, latency.
    Throughput(throughput::ThroughputArgs),
    /// One group chat of M members, one sender: deliveries/s and latency.
    Fanout(throughput::FanoutArgs),
    /// Concurrent REST history reads on a chat prefilled with messages.
    History(history::HistoryArgs),
    /// One authenticated GET (`--path`) by N clients: requests/s, latency, errors.
    Rest(rest::RestArgs),
    /// N sockets opened as fast as the server accepts them: handshakes/s, refusals, resets.
    ConnectStorm(storm::StormArgs),
    /// Simulated users of the finished app, ramped: the most users served within the p99 limit.
    App(app::AppArgs),
}

/// Options every scenario takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The running server (must resolve to 127.0.0.0/8).
    #[arg(long, default_value = "http://127.0.0.1:8000", env = "CAUSERIE_BENCH_URL")]
    pub url: String,
    /// Length of the measured phase in seconds (at most 300).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    pub json: bool,
    /// The server's process id, for its memory and CPU (default: the process listening on --url).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Tag of this run's fixtures (users are bench-<run id>-<n>@bench.invalid); default random.
    #[arg(long)]
    pub run_id: Option<String>,
}

impl Common {
    pub fn duration(&self) -> anyhow::Result<Duration> {
        if self.duration == 0 || self.duration > MAX_DURATION_SECS {
            anyhow::bail!("--duration must be between 1 and {MAX_DURATION_SECS} seconds");
        }
        Ok(Duration::from_secs(self.duration))
    }

    pub fn run_id(&self) -> String {
        self.run_id.clone().unwrap_or_else(|| {
            let bytes: [u8; 4] = rand::random();
            hex::encode(bytes)
        })
    }
}

/// Refuses a size option outside `1..=max`.
pub fn bounded(name: &str, value: usize, min: usize, max: usize) -> anyhow::Result<usize> {
    if value < min || value > max {
        anyhow::bail!("--{name} must be between {min} and {max}");
    }
    Ok(value)
}

/// Runs one scenario and prints its report.
pub async fn run(config: Config, args: BenchArgs) -> anyhow::Result<()> {
    let files = crate::app::raise_open_files_limit();
    let (common, total) = match &args.scenario {
        Scenario::Connections(a) => (a.common.clone(), a.common.duration()? + Duration::from_secs(a.hold)),
        Scenario::Throughput(a) => {
            let phases = if a.login_storm > 0 { 2 } else { 1 };
            (a.common.clone(), a.common.duration()? * phases)
        }
        Scenario::Fanout(a) => (a.common.clone(), a.common.duration()?),
        Scenario::History(a) => (a.common.clone(), a.common.duration()?),
        Scenario::Rest(a) => (a.common.clone(), a.common.duration()?),
        Scenario::ConnectStorm(a) => (a.common.clone(), a.common.duration()?),
        Scenario::App(a) => (a.common.clone(), a.common.duration()?),
    };
    let target = net::Target::resolve(&common.url).await?;
    eprintln!(
        "bench: target {} (open-files limit of this process: {files})",
        target.addr
    );
    let work = async {
        match args.scenario {
            Scenario::Connections(a) => connections::run(&config, &target, a, files).await,
            Scenario::Throughput(a) => throughput::run_throughput(&config, &target, a).await,
            Scenario::Fanout(a) => throughput::run_fanout(&config, &target, a).await,
            Scenario::History(a) => history::run(&config, &target, a).await,
            Scenario::Rest(a) => rest::run(&config, &target, a).await,
            Scenario::ConnectStorm(a) => storm::run(&config, &target, a).await,
            Scenario::App(a) => app::run(&config, &target, a).await,
        }
    };
    let limit = total + SETUP_ALLOWANCE;
    let (report, human) = tokio::time::timeout(limit, work)
        .await
        .map_err(|_| anyhow::anyhow!("the run went over its hard limit of {} s", limit.as_secs()))??;
    if common.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{human}");
    }
    Ok(())
}

/// A scenario's result: the JSON object and the human summary.
pub type Outcome = (Value, String);
