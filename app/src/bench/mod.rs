//! `campus bench`: measures the engine and the API on a real PostgreSQL, in a scratch
//! database that is dropped afterwards. The daemon and the API run as child processes
//! (`campus daemon`, `campus api`), so their memory and latency are what production sees.
//!
//! Optionally first: history in the live tables (`--history`), kept or archived before or
//! during the drain (`--archive`). Phases: (0) the commit limit of the outbox transactions
//! (an entity and its event) with no daemon; (1) drain queued no-op tasks; (1b) with `--fairness N`,
//! one institution's backlog beside another's trickle of tasks; (2) concurrent writers commit the same transactions, whose
//! events fan out to two tasks each, while single tasks are sampled for latency under load; (3) latency at light
//! load, one task or event at a time; (4) API latency at a fixed request rate; (5) with
//! `--webhooks N`, webhook deliveries to a receiver in this process. E-mails go to an SMTP
//! sink in this process.
//!
//! - `processes`: the scratch database, the child processes and their clean-up;
//! - `phases`: phases (1) to (3) and (1b); `api`: phase (4); `webhooks`: phase (5);
//! - `load`: the load generators (event writers, task sampler, open-loop HTTP client);
//! - `report`: what a run measured and its table; `smtp_sink`: the SMTP sink.
//!
//! The database is reached through `campus_adapters::pg::bench` (reads) and the ports
//! (writes). Built with the `bench` cargo feature (on by default).

mod api;
mod bus;
mod load;
mod phases;
mod processes;
mod report;
mod smtp_sink;
mod webhooks;

pub use report::{summarize, table, BenchReport, Summary};

use crate::cli::BenchArgs;
use crate::config::Settings;
use campus_adapters::pg::cluster;
use processes::Scratch;

fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Runs every phase and returns the report (also printed by the CLI).
pub async fn run(settings: &Settings, args: &BenchArgs) -> Result<BenchReport, String> {
    let resolved = cluster::resolve(settings.database_url.as_deref(), &settings.data_dir)
        .await
        .map_err(err)?;
    let result = match Scratch::create(&resolved.url).await {
        Ok(mut scratch) => {
            progress(&format!(
                "scratch database {}",
                cluster::redact_url(scratch.db.url())
            ));
            scratch.bus_url = settings.bus_url.clone();
            let result = phases(&mut scratch, args).await;
            scratch.cleanup().await;
            result
        }
        Err(e) => Err(e),
    };
    if let Some(pg) = &resolved.embedded {
        pg.stop();
    }
    result
}

async fn phases(s: &mut Scratch, args: &BenchArgs) -> Result<BenchReport, String> {
    let mut report = BenchReport {
        api_rate_per_s: args.rate,
        history_tasks: args.history,
        archive: args.archive,
        ..Default::default()
    };
    phases::history(s, args, &mut report).await?;
    phases::commit_limit(s, args, &mut report).await?;
    let daemon_pid = phases::drain(s, args, &mut report).await?;
    if args.fairness > 0 {
        phases::fairness(s, args.fairness, &mut report).await?;
    }
    phases::under_load(s, args, daemon_pid, &mut report).await?;
    phases::light_load(s, args, &mut report).await?;
    let (base, institution) = api::api_phase(s, args, &mut report).await?;
    if args.webhooks > 0 {
        webhooks::webhook_phase(s, &base, institution, args.webhooks, &mut report).await?;
    }
    if args.bus > 0 {
        let url = s.bus_url.clone();
        bus::bus_phase(s, url.as_deref(), institution, args.bus, &mut report).await?;
    }
    Ok(report)
}
