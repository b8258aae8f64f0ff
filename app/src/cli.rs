//! The `campus` command line: its commands and their own arguments (the bench's sizes); the
//! settings every command shares are `crate::config::Settings`.

use crate::config::Settings;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "campus",
    version,
    about = "Academic management with durable domain events and tasks in PostgreSQL"
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the API and the daemon in one process (the default way to run Campus).
    Serve,
    /// Run only the HTTP API.
    Api,
    /// Run only the daemon (dispatches events, runs tasks). Run as many as you like.
    Daemon,
    /// Apply database migrations and exit.
    Migrate,
    /// Move finished events and tasks older than the retention windows to the archive tables
    /// now (the daemon's daily run does the same), printing progress.
    Archive(ArchiveArgs),
    /// Index the payload texts not indexed yet, for the admin lists' text search (the
    /// daemon does it when it has room; this is for after a bulk load), printing progress.
    IndexPayloads,
    /// Show the queues at a glance: counts by status and type, the oldest waiting items, the
    /// last hour's failures and latency by task type, the last archive run.
    Status(StatusArgs),
    /// Take the events published to the bus (CAMPUS_BUS_URL) from a queue and print each as
    /// a JSON line, acknowledging it once printed; shows how another service consumes them.
    Consume(ConsumeArgs),
    /// Measure throughput, latency and memory on a scratch database (dropped afterwards).
    #[cfg(feature = "bench")]
    Bench(BenchArgs),
    /// Print the OpenAPI document (JSON) and exit.
    Openapi {
        /// Write it to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Options of `campus status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// One JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Refresh every 2 seconds until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
}

/// Options of `campus consume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// The durable queue to declare and read (its dead letters go to `<queue>.dead`).
    #[arg(long)]
    pub queue: String,
    /// Binding keys on `campus.events` (`<institution_id>.<EventType>`; `*` one word, `#`
    /// any); repeat for several.
    #[arg(long = "binding", default_value = "#")]
    pub bindings: Vec<String>,
    /// Messages taken ahead of their acknowledgement.
    #[arg(long, default_value_t = 50)]
    pub prefetch: u16,
}

/// Options of `campus archive`.
#[derive(Debug, Clone, clap::Args)]
pub struct ArchiveArgs {
    /// Only count what would move.
    #[arg(long)]
    pub dry_run: bool,
    /// Rows per table per batch (each batch is one short transaction per table).
    #[arg(long, default_value_t = crate::services::archive::DEFAULT_BATCH)]
    pub batch: u32,
}

/// Sizes of a `campus bench` run.
#[cfg(feature = "bench")]
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// No-op tasks drained in phase 1.
    #[arg(long, default_value_t = 100_000)]
    pub tasks: usize,
    /// Seconds of the end-to-end phase (2).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Latency samples per kind at light load (3).
    #[arg(long, default_value_t = 1_000)]
    pub samples: usize,
    /// Requests per second of the API phase (4).
    #[arg(long, default_value_t = 500)]
    pub rate: u32,
    /// Seconds per endpoint of the API phase (4).
    #[arg(long, default_value_t = 10)]
    pub api_seconds: u64,
    /// Writes every request of the API phase (4) to this CSV file: endpoint, scheduled send
    /// time (Unix seconds), latency from the schedule and from the send (ms), 2xx or not.
    /// `tests/perf/api_tail.py` summarizes it second by second.
    #[arg(long)]
    pub api_trace: Option<std::path::PathBuf>,
    /// Concurrent event writers in phase 2.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// `campus daemon` processes running phases 1 to 3 (each with `--concurrency`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub daemons: u32,
    /// Tasks the daemon runs at once (1 024 measured best for no-op tasks on 2 cores).
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// History in the live tables before the phases: this many tasks that succeeded two to
    /// three days ago, two per event (the cost of history; 0: empty tables).
    #[arg(long, default_value_t = 0)]
    pub history: usize,
    /// What becomes of the history: `keep` it in the live tables, archive it `before` the
    /// phases, or run `campus archive` `during` the drain (1).
    #[arg(long, value_enum, default_value_t = HistoryArchive::Keep)]
    pub archive: HistoryArchive,

    /// Phase 5: commit this many events at once, each delivered to a webhook receiver in
    /// this process, then measure delivery latency one event at a time (0: skip).
    #[arg(long, default_value_t = 0)]
    pub webhooks: usize,

    /// Phase 6: the event bus. With CAMPUS_BUS_URL: this many messages published with
    /// confirms, then this many events committed at once until consumed, then latency one
    /// at a time; without it, the same events until dispatched (the bus off). 0: skip.
    #[arg(long, default_value_t = 0)]
    pub bus: usize,

    /// Phase (1b), fairness: institution A's backlog of this many no-op tasks drains while
    /// institution B commits one task every 10 ms; reports B's commit → start and A's drain
    /// rate against (1). 0: skip.
    #[arg(long, default_value_t = 50_000)]
    pub fairness: usize,
}

/// When a bench run archives its history (`--archive`).
#[cfg(feature = "bench")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryArchive {
    #[default]
    Keep,
    Before,
    During,
}
