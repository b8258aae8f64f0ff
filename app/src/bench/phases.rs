//! The engine's phases: (0) the commit limit of the outbox transactions, with no daemon;
//! (1) drain queued no-op tasks; (2) the same transactions' events fanning out under load, with
//! single tasks sampled beside them; (3) latency at light load, one item at a time. Each writes
//! its figures into the report and leaves the engine's tables empty.

use super::load::{self, EventCommits, Load, TaskCommits};
use super::processes::{peak_rss_mb, Scratch};
use super::report::{summarize, BenchReport, Summary};
use super::{err, progress};
use crate::cli::{BenchArgs, HistoryArchive};
use campus_adapters::pg::bench::BenchDatabase;
use campus_ports::{NewTask, TaskQueue};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Loads `args.history` finished tasks into the live tables and, with `--archive before`,
/// archives them with `campus archive` (timed).
pub(super) async fn history(
    s: &mut Scratch,
    args: &BenchArgs,
    report: &mut BenchReport,
) -> Result<(), String> {
    if args.history == 0 {
        return Ok(());
    }
    progress(&format!(
        "[0/4] loading {} finished tasks (two per event) as history",
        args.history
    ));
    s.db.load_history(args.history as u64, |n| {
        progress(&format!("      {n} tasks"));
    })
    .await
    .map_err(err)?;
    if args.archive == HistoryArchive::Before {
        progress("[0/4] archiving the history with `campus archive`");
        let started = Instant::now();
        let archive = s.command("archive", args.concurrency)?;
        s.run_to_end(archive, "archive").await?;
        report.archive_seconds = started.elapsed().as_secs_f64();
    }
    Ok(())
}

/// (0) The commit limit: the writers of phase (2) commit the same outbox transactions for
/// `args.seconds` with no daemon running; (2)'s throughput is reported against this rate.
pub(super) async fn commit_limit(
    s: &Scratch,
    args: &BenchArgs,
    report: &mut BenchReport,
) -> Result<(), String> {
    progress(&format!(
        "[0/4] commit limit: {} writers commit outbox transactions for {} s, no daemon",
        args.writers, args.seconds
    ));
    let load = Load::start(&s.store, args.writers, false);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let (commits, _) = load.stop().await?;
    let secs = started.elapsed().as_secs_f64();
    report.commit_limit_events_per_s = commits.len() as f64 / secs;
    progress(&format!(
        "[0/4] {:.0} transactions/s",
        report.commit_limit_events_per_s
    ));
    s.db.truncate_engine_tables().await.map_err(err)
}

/// Queues `n` no-op tasks of `institution` (none: of no institution) in batches of 5 000.
async fn queue_noops(s: &Scratch, n: usize, institution: Option<uuid::Uuid>) -> Result<(), String> {
    let task = || NewTask {
        institution_id: institution.map(|i| campus_core::ids::InstitutionId(i.as_u128())),
        ..load::noop_task(None)
    };
    let mut queued = 0;
    while queued < n {
        let batch: Vec<NewTask> = (0..(n - queued).min(5_000)).map(|_| task()).collect();
        queued += s.store.enqueue(&batch).await.map_err(err)?;
    }
    Ok(())
}

/// (1) Queues `args.tasks` no-op tasks, starts `campus daemon` and times the drain (with
/// `--archive during`, beside a `campus archive` of the history); returns the daemon's pid
/// (it keeps running for the next phases).
pub(super) async fn drain(
    s: &mut Scratch,
    args: &BenchArgs,
    report: &mut BenchReport,
) -> Result<u32, String> {
    progress(&format!("[1/4] queueing {} no-op tasks", args.tasks));
    queue_noops(s, args.tasks, None).await?;
    // `--daemons K`: K identical processes; the first answers probes, the others do not
    // listen (one address), and its memory is the one reported.
    let daemon = s.command("daemon", args.concurrency)?;
    let daemon_pid = s.spawn(daemon, "daemon")?;
    for _ in 1..args.daemons {
        let mut more = s.command("daemon", args.concurrency)?;
        more.env("CAMPUS_DAEMON_ADDR", "off");
        s.spawn(more, "daemon")?;
    }
    let archive = if args.history > 0 && args.archive == HistoryArchive::During {
        progress("[1/4] draining with a `campus daemon` process beside `campus archive`");
        let archive = s.command("archive", args.concurrency)?;
        Some((Instant::now(), s.start(archive, "archive")?))
    } else {
        progress(&format!(
            "[1/4] draining with {} `campus daemon` process(es)",
            args.daemons
        ));
        None
    };
    wait_until_idle(&s.db, Duration::from_secs(600), true).await?;
    let secs = s.db.busy_seconds().await.map_err(err)?;
    if let Some((started, child)) = archive {
        Scratch::wait_for(child, "archive").await?;
        report.archive_seconds = started.elapsed().as_secs_f64();
    }
    report.tasks_drained = args.tasks;
    report.tasks_per_s = if secs > 0.0 {
        args.tasks as f64 / secs
    } else {
        0.0
    };
    progress(&format!("[1/4] {:.0} tasks/s", report.tasks_per_s));
    s.db.truncate_engine_tables().await.map_err(err)?;
    Ok(daemon_pid)
}

/// (1b) Fairness: institution A's backlog of `backlog` no-op tasks (queued while the type is
/// paused, then released at once) drains while institution B commits one task every 10 ms;
/// measures B's commit → start and A's drain rate against phase (1)'s.
pub(super) async fn fairness(
    s: &Scratch,
    backlog: usize,
    report: &mut BenchReport,
) -> Result<(), String> {
    use campus_ports::TaskControl;
    let (a, b) = (uuid::Uuid::from_u128(0xa), uuid::Uuid::from_u128(0xb));
    let of = |institution: uuid::Uuid, key: Option<String>| NewTask {
        institution_id: Some(campus_core::ids::InstitutionId(institution.as_u128())),
        ..load::noop_task(key)
    };
    progress(&format!(
        "[1b] fairness: queueing institution A's backlog of {backlog} no-op tasks"
    ));
    let noop = crate::handlers::noop::TASK_TYPE;
    s.store.set_paused(noop, true).await.map_err(err)?;
    queue_noops(s, backlog, Some(a)).await?;
    s.store.set_paused(noop, false).await.map_err(err)?;
    progress("[1b] A drains while B commits a task every 10 ms");
    let mut commits = TaskCommits::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut looked = Instant::now();
    loop {
        // A look every 100 ms: the bench's own queries stay out of the drain's way.
        if looked.elapsed() >= Duration::from_millis(100) {
            if !s.db.has_waiting_tasks(a).await.map_err(err)? {
                break;
            }
            looked = Instant::now();
        }
        tick.tick().await;
        let key = format!("fair-b-{}", commits.len());
        s.store
            .enqueue(&[of(b, Some(key.clone()))])
            .await
            .map_err(err)?;
        commits.push((key, Utc::now()));
    }
    wait_until_idle(&s.db, Duration::from_secs(600), false).await?;
    let secs = s.db.busy_seconds_of(a).await.map_err(err)?;
    report.fairness_backlog = backlog;
    report.fairness_drain_per_s = if secs > 0.0 {
        backlog as f64 / secs
    } else {
        0.0
    };
    if report.tasks_per_s > 0.0 {
        report.fairness_drain_ratio = report.fairness_drain_per_s / report.tasks_per_s;
    }
    let b_latency = task_latencies(&s.db, &commits).await?;
    report.fairness_b_tasks = b_latency.n;
    (
        report.fairness_b_latency_p50_ms,
        report.fairness_b_latency_p99_ms,
        report.fairness_b_latency_max_ms,
    ) = (b_latency.p50, b_latency.p99, b_latency.max);
    progress(&format!(
        "[1b] A: {:.0} tasks/s ({:.2} of (1)); B: p50 {:.1} ms, p99 {:.1} ms",
        report.fairness_drain_per_s, report.fairness_drain_ratio, b_latency.p50, b_latency.p99
    ));
    s.db.truncate_engine_tables().await.map_err(err)
}

/// (2) `args.writers` writers commit events for `args.seconds` while single tasks are
/// sampled; measures the fan-out's throughput, both latencies under load and the daemon's
/// peak memory.
pub(super) async fn under_load(
    s: &Scratch,
    args: &BenchArgs,
    daemon_pid: u32,
    report: &mut BenchReport,
) -> Result<(), String> {
    progress(&format!(
        "[2/4] {} writers commit events for {} s (each fans out to 2 tasks)",
        args.writers, args.seconds
    ));
    let load = Load::start(&s.store, args.writers, true);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress(&format!("[2/4] {:>3} s", started.elapsed().as_secs()));
    }
    let (event_commits, task_commits) = load.stop().await?;
    wait_until_idle(&s.db, Duration::from_secs(600), false).await?;
    let first_commit = event_commits.values().min().copied();
    let tasks = s.db.fanned_out_tasks().await.map_err(err)?;
    if let (Some(first), Some(last)) = (first_commit, tasks.last_finished) {
        let window = (last - first).num_microseconds().unwrap_or(0) as f64 / 1e6;
        if window > 0.0 {
            report.e2e_events_per_s = event_commits.len() as f64 / window;
            report.e2e_tasks_per_s = tasks.count as f64 / window;
        }
    }
    report.e2e_events = event_commits.len();
    if report.commit_limit_events_per_s > 0.0 {
        report.e2e_ratio = report.e2e_events_per_s / report.commit_limit_events_per_s;
    }
    let events = event_latencies(&s.db, &event_commits).await?;
    let tasks = task_latencies(&s.db, &task_commits).await?;
    (
        report.loaded_event_latency_p50_ms,
        report.loaded_event_latency_p99_ms,
        report.loaded_event_latency_max_ms,
    ) = (events.p50, events.p99, events.max);
    (
        report.loaded_task_latency_p50_ms,
        report.loaded_task_latency_p99_ms,
        report.loaded_task_latency_max_ms,
    ) = (tasks.p50, tasks.p99, tasks.max);
    report.daemon_peak_rss_mb = peak_rss_mb(daemon_pid);
    progress(&format!(
        "[2/4] {:.0} events/s ({:.2} of the commit limit), {:.0} tasks/s; daemon peak RSS {:.1} MB",
        report.e2e_events_per_s,
        report.e2e_ratio,
        report.e2e_tasks_per_s,
        report.daemon_peak_rss_mb
    ));
    s.db.truncate_engine_tables().await.map_err(err)
}

/// (3) `args.samples` tasks, then as many events, one at a time: the latencies of an idle
/// system.
pub(super) async fn light_load(
    s: &Scratch,
    args: &BenchArgs,
    report: &mut BenchReport,
) -> Result<(), String> {
    progress(&format!(
        "[3/4] latency at light load: {} tasks, then {} events, one at a time",
        args.samples, args.samples
    ));
    let mut task_commits = TaskCommits::with_capacity(args.samples);
    for i in 0..args.samples {
        task_commits.push(load::commit_sampled_task(&s.store, "light", i).await?);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut event_commits = EventCommits::with_capacity(args.samples);
    for _ in 0..args.samples {
        let (id, at) = load::commit_event(&s.store).await?;
        event_commits.insert(id, at);
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    wait_until_idle(&s.db, Duration::from_secs(120), false).await?;
    let tasks = task_latencies(&s.db, &task_commits).await?;
    let events = event_latencies(&s.db, &event_commits).await?;
    (
        report.task_latency_p50_ms,
        report.task_latency_p99_ms,
        report.task_latency_max_ms,
    ) = (tasks.p50, tasks.p99, tasks.max);
    (
        report.event_latency_p50_ms,
        report.event_latency_p99_ms,
        report.event_latency_max_ms,
    ) = (events.p50, events.p99, events.max);
    s.db.truncate_engine_tables().await.map_err(err)
}

/// Waits until no event awaits dispatch and no task awaits completion; `report` prints how
/// many are left every second.
pub(super) async fn wait_until_idle(
    db: &BenchDatabase,
    timeout: Duration,
    report: bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        let busy = db.waiting_items().await.map_err(err)?;
        if busy == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("timed out with {busy} items still waiting"));
        }
        if report && last_report.elapsed() >= Duration::from_secs(1) {
            progress(&format!("      {busy} left"));
            last_report = Instant::now();
        }
        tokio::time::sleep(idle_poll(busy)).await;
    }
}

/// How long to wait before counting again with `busy` items left. Each count reads the whole
/// backlog (62 ms at 200 000 waiting tasks), and polling every 50 ms took a third to a half of
/// a core from the drain it was waiting for; waiting about as long as a fast drain needs for
/// what is left (and at most a second, for the progress line) counts a few times per drain.
/// The drain rate is measured from the tasks' own timestamps, not from when this notices.
fn idle_poll(busy: i64) -> Duration {
    Duration::from_secs_f64(busy as f64 / 50_000.0)
        .clamp(Duration::from_millis(50), Duration::from_secs(1))
}

fn ms_between(commit: DateTime<Utc>, start: DateTime<Utc>) -> f64 {
    (start - commit).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

/// Commit → first task start of each event (two hops).
async fn event_latencies(db: &BenchDatabase, commits: &EventCommits) -> Result<Summary, String> {
    let starts = db.first_task_start_per_event().await.map_err(err)?;
    Ok(summarize(
        starts
            .into_iter()
            .filter_map(|(id, start)| commits.get(&id).map(|c| ms_between(*c, start)))
            .collect(),
    ))
}

/// Commit → start of each sampled task (one hop).
async fn task_latencies(db: &BenchDatabase, commits: &TaskCommits) -> Result<Summary, String> {
    let starts: HashMap<String, DateTime<Utc>> = db
        .task_starts_by_key()
        .await
        .map_err(err)?
        .into_iter()
        .collect();
    Ok(summarize(
        commits
            .iter()
            .filter_map(|(k, c)| starts.get(k).map(|s| ms_between(*c, *s)))
            .collect(),
    ))
}
