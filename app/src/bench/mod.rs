//! `campus bench`: measures the engine and the API on a real PostgreSQL, in a scratch
//! database that is dropped afterwards. The daemon and the API run as child processes
//! (`campus daemon`, `campus api`), so their memory and latency are what production sees.
//!
//! Phases: (1) drain queued no-op tasks; (2) concurrent writers commit events that fan out to
//! two tasks each, while single tasks are sampled for latency under load; (3) latency at light
//! load, one task or event at a time; (4) API latency at a fixed request rate. E-mails go to
//! an SMTP sink in this process (see `smtp_sink`).

mod smtp_sink;

use crate::config::Settings;
use crate::database;
use crate::handlers::{noop, BENCHMARK_EVENT};
use campus_adapters::pg::testing::{drop_database, fresh_database_on};
use campus_adapters::pg::{notify::NOTIFY_WINDOW, Notifier, PgStore};
use campus_ports::{EventStore, NewEvent, NewTask, TaskQueue};
use chrono::{DateTime, Utc};
use serde::Serialize;
use smtp_sink::SmtpSink;
use sqlx::PgPool;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Sizes of a run.
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
    /// Concurrent event writers in phase 2.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Tasks the daemon runs at once (1 024 measured best for no-op tasks on 2 cores).
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What a run measured. Latencies in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchReport {
    pub tasks_drained: usize,
    pub tasks_per_s: f64,
    pub e2e_events: usize,
    pub e2e_events_per_s: f64,
    pub e2e_tasks_per_s: f64,
    pub task_latency_p50_ms: f64,
    pub task_latency_p99_ms: f64,
    pub task_latency_max_ms: f64,
    pub event_latency_p50_ms: f64,
    pub event_latency_p99_ms: f64,
    pub event_latency_max_ms: f64,
    pub loaded_task_latency_p50_ms: f64,
    pub loaded_task_latency_p99_ms: f64,
    pub loaded_task_latency_max_ms: f64,
    pub loaded_event_latency_p50_ms: f64,
    pub loaded_event_latency_p99_ms: f64,
    pub loaded_event_latency_max_ms: f64,
    pub api_reset_token_p50_ms: f64,
    pub api_reset_token_p99_ms: f64,
    pub api_grade_note_p50_ms: f64,
    pub api_grade_note_p99_ms: f64,
    pub api_p99_ms: f64,
    pub api_rate_per_s: u32,
    pub api_errors: usize,
    /// E-mails the daemon delivered to the bench's SMTP sink (reset links of phase 4).
    pub emails_received: usize,
    pub daemon_peak_rss_mb: f64,
}

/// Latency summary of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub n: usize,
}

/// p50 / p99 / max of millisecond samples (nearest rank).
pub fn summarize(mut ms: Vec<f64>) -> Summary {
    if ms.is_empty() {
        return Summary::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    Summary {
        p50: at(0.50),
        p99: at(0.99),
        max: ms[ms.len() - 1],
        n: ms.len(),
    }
}

fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Child processes and the scratch database; everything is removed by `cleanup`.
struct Scratch {
    db_url: String,
    pool: PgPool,
    store: PgStore,
    dir: PathBuf,
    smtp: SmtpSink,
    /// The master key every process of the run shares.
    secret: String,
    children: Vec<Child>,
}

/// Password of the demo users in the bench's scratch database (the API phase logs in as a
/// demo teacher).
const DEMO_PASSWORD: &str = "bench-demo-password";

impl Scratch {
    fn command(&self, sub: &str, concurrency: usize) -> Result<Command, String> {
        let exe = std::env::current_exe().map_err(err)?;
        let mut cmd = Command::new(exe);
        cmd.arg(sub)
            .env("DATABASE_URL", &self.db_url)
            .env("CAMPUS_DATA_DIR", &self.dir)
            .env("CAMPUS_CONCURRENCY", concurrency.to_string())
            .env("RUST_LOG", "warn")
            .env("SMTP_URL", &self.smtp.url)
            .env("CAMPUS_JWT_SECRET", &self.secret)
            .env("CAMPUS_DEMO_PASSWORD", DEMO_PASSWORD)
            // The bench's client is one address standing for many users: 500 requests a
            // second, many connections, reset links for the same account again and again.
            .env("CAMPUS_RATE_LIMITS", "off")
            .env("CAMPUS_MAX_CONNECTIONS_PER_CLIENT", "100000")
            .env("CAMPUS_RESET_COOLDOWN", "0s")
            .env_remove("CAMPUS_ADMIN_EMAIL")
            .env_remove("CAMPUS_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        Ok(cmd)
    }

    async fn cleanup(mut self) {
        for c in &mut self.children {
            if let Some(pid) = c.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(15), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
        self.pool.close().await;
        self.store.pool().close().await;
        if let Err(e) = drop_database(&self.db_url).await {
            progress(&format!("could not drop the scratch database: {e}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs every phase and returns the report (also printed by the CLI).
pub async fn run(settings: &Settings, args: &BenchArgs) -> Result<BenchReport, String> {
    let resolved = database::resolve(settings.database_url.as_deref(), &settings.data_dir)
        .await
        .map_err(err)?;
    let (db_url, pool) = fresh_database_on(&resolved.url, "campus_bench")
        .await
        .map_err(err)?;
    progress(&format!(
        "scratch database {}",
        database::redact_url(&db_url)
    ));
    let store = PgStore::new(pool.clone(), Notifier::spawn(pool.clone(), NOTIFY_WINDOW));
    let dir = std::env::temp_dir().join(format!("campus-bench-{}", uuid::Uuid::new_v4().simple()));
    let smtp = SmtpSink::start()
        .await
        .map_err(|e| format!("cannot start the SMTP sink: {e}"))?;
    let mut scratch = Scratch {
        db_url,
        pool,
        store,
        dir,
        smtp,
        secret: campus_adapters::keys::KeyRing::generate(),
        children: Vec::new(),
    };
    let result = phases(&mut scratch, args).await;
    scratch.cleanup().await;
    if let Some(pg) = &resolved.embedded {
        pg.stop();
    }
    result
}

async fn phases(s: &mut Scratch, args: &BenchArgs) -> Result<BenchReport, String> {
    let mut report = BenchReport {
        api_rate_per_s: args.rate,
        ..Default::default()
    };

    // (1) Drain queued no-op tasks.
    progress(&format!("[1/4] queueing {} no-op tasks", args.tasks));
    let batch: Vec<NewTask> = (0..5_000).map(|_| noop_task(None)).collect();
    let mut queued = 0;
    while queued < args.tasks {
        let n = (args.tasks - queued).min(batch.len());
        queued += s.store.enqueue(&batch[..n]).await.map_err(err)?;
    }
    let daemon = s
        .command("daemon", args.concurrency)?
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let daemon_pid = daemon.id().unwrap_or(0);
    s.children.push(daemon);
    progress("[1/4] draining with a `campus daemon` process");
    wait_until_idle(&s.pool, Duration::from_secs(600), true).await?;
    let secs: f64 = sqlx::query_scalar(
        "SELECT COALESCE(EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8, 0) FROM tasks",
    )
    .fetch_one(&s.pool)
    .await
    .map_err(err)?;
    report.tasks_drained = args.tasks;
    report.tasks_per_s = if secs > 0.0 {
        args.tasks as f64 / secs
    } else {
        0.0
    };
    progress(&format!("[1/4] {:.0} tasks/s", report.tasks_per_s));
    truncate(&s.pool).await?;

    // (2) End to end under load.
    progress(&format!(
        "[2/4] {} writers commit events for {} s (each fans out to 2 tasks)",
        args.writers, args.seconds
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for _ in 0..args.writers {
        let store = s.store.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut commits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match store.append(&[bench_event()]).await {
                    Ok(ids) => commits.push((uuid::Uuid::from_u128(ids[0].0), Utc::now())),
                    Err(e) => return Err(err(e)),
                }
            }
            Ok(commits)
        }));
    }
    let sampler = {
        let store = s.store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut commits = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("loaded-{i}");
                store
                    .enqueue(&[noop_task(Some(key.clone()))])
                    .await
                    .map_err(err)?;
                commits.push((key, Utc::now()));
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, String>(commits)
        })
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(args.seconds) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        progress(&format!("[2/4] {:>3} s", started.elapsed().as_secs()));
    }
    stop.store(true, Ordering::Relaxed);
    let mut event_commits = HashMap::new();
    for w in writers {
        event_commits.extend(w.await.map_err(err)??);
    }
    let task_commits = sampler.await.map_err(err)??;
    wait_until_idle(&s.pool, Duration::from_secs(600), false).await?;
    let first_commit = event_commits.values().min().copied();
    let last_finish: Option<DateTime<Utc>> =
        sqlx::query_scalar("SELECT max(finished_at) FROM tasks WHERE event_id IS NOT NULL")
            .fetch_one(&s.pool)
            .await
            .map_err(err)?;
    let e2e_tasks: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE event_id IS NOT NULL")
            .fetch_one(&s.pool)
            .await
            .map_err(err)?;
    if let (Some(first), Some(last)) = (first_commit, last_finish) {
        let window = (last - first).num_microseconds().unwrap_or(0) as f64 / 1e6;
        if window > 0.0 {
            report.e2e_events_per_s = event_commits.len() as f64 / window;
            report.e2e_tasks_per_s = e2e_tasks as f64 / window;
        }
    }
    report.e2e_events = event_commits.len();
    let loaded_events = event_latencies(&s.pool, &event_commits).await?;
    let loaded_tasks = task_latencies(&s.pool, &task_commits).await?;
    (
        report.loaded_event_latency_p50_ms,
        report.loaded_event_latency_p99_ms,
        report.loaded_event_latency_max_ms,
    ) = (loaded_events.p50, loaded_events.p99, loaded_events.max);
    (
        report.loaded_task_latency_p50_ms,
        report.loaded_task_latency_p99_ms,
        report.loaded_task_latency_max_ms,
    ) = (loaded_tasks.p50, loaded_tasks.p99, loaded_tasks.max);
    report.daemon_peak_rss_mb = peak_rss_mb(daemon_pid);
    progress(&format!(
        "[2/4] {:.0} events/s, {:.0} tasks/s; daemon peak RSS {:.1} MB",
        report.e2e_events_per_s, report.e2e_tasks_per_s, report.daemon_peak_rss_mb
    ));
    truncate(&s.pool).await?;

    // (3) Light load: one at a time.
    progress(&format!(
        "[3/4] latency at light load: {} tasks, then {} events, one at a time",
        args.samples, args.samples
    ));
    let mut task_commits = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        let key = format!("light-{i}");
        s.store
            .enqueue(&[noop_task(Some(key.clone()))])
            .await
            .map_err(err)?;
        task_commits.push((key, Utc::now()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut event_commits = HashMap::with_capacity(args.samples);
    for _ in 0..args.samples {
        let ids = s.store.append(&[bench_event()]).await.map_err(err)?;
        event_commits.insert(uuid::Uuid::from_u128(ids[0].0), Utc::now());
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    wait_until_idle(&s.pool, Duration::from_secs(120), false).await?;
    let light_tasks = task_latencies(&s.pool, &task_commits).await?;
    let light_events = event_latencies(&s.pool, &event_commits).await?;
    (
        report.task_latency_p50_ms,
        report.task_latency_p99_ms,
        report.task_latency_max_ms,
    ) = (light_tasks.p50, light_tasks.p99, light_tasks.max);
    (
        report.event_latency_p50_ms,
        report.event_latency_p99_ms,
        report.event_latency_max_ms,
    ) = (light_events.p50, light_events.p99, light_events.max);
    truncate(&s.pool).await?;

    // (4) API latency at a fixed rate, measured by this process's HTTP client.
    api_phase(s, args, &mut report).await?;
    Ok(report)
}

fn noop_task(key: Option<String>) -> NewTask {
    NewTask {
        task_type: noop::TASK_TYPE.into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 5,
        idempotency_key: key,
        run_at: None,
    }
}

fn bench_event() -> NewEvent {
    NewEvent {
        event_type: BENCHMARK_EVENT.into(),
        aggregate_type: "Benchmark".into(),
        aggregate_id: 0,
        institution_id: None,
        payload: "{}".into(),
        correlation_id: None,
    }
}

async fn truncate(pool: &PgPool) -> Result<(), String> {
    sqlx::query("TRUNCATE tasks, domain_events CASCADE")
        .execute(pool)
        .await
        .map_err(err)?;
    Ok(())
}

/// Waits until no event awaits dispatch and no task awaits completion.
async fn wait_until_idle(pool: &PgPool, timeout: Duration, report: bool) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last_report = Instant::now();
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM domain_events WHERE status IN ('pending', 'retrying'))
                  + (SELECT count(*) FROM tasks WHERE status IN ('pending', 'running', 'retrying'))",
        )
        .fetch_one(pool)
        .await
        .map_err(err)?;
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms_between(commit: DateTime<Utc>, start: DateTime<Utc>) -> f64 {
    (start - commit).num_microseconds().unwrap_or(0) as f64 / 1000.0
}

/// Commit → first task start of each event (two hops).
async fn event_latencies(
    pool: &PgPool,
    commits: &HashMap<uuid::Uuid, DateTime<Utc>>,
) -> Result<Summary, String> {
    let rows: Vec<(uuid::Uuid, DateTime<Utc>)> = sqlx::query_as(
        "SELECT event_id, min(started_at) FROM tasks WHERE event_id IS NOT NULL GROUP BY event_id",
    )
    .fetch_all(pool)
    .await
    .map_err(err)?;
    Ok(summarize(
        rows.into_iter()
            .filter_map(|(id, start)| commits.get(&id).map(|c| ms_between(*c, start)))
            .collect(),
    ))
}

/// Commit → start of each sampled task (one hop).
async fn task_latencies(
    pool: &PgPool,
    commits: &[(String, DateTime<Utc>)],
) -> Result<Summary, String> {
    let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
        "SELECT idempotency_key, started_at FROM tasks WHERE idempotency_key IS NOT NULL AND started_at IS NOT NULL",
    )
    .fetch_all(pool)
    .await
    .map_err(err)?;
    let starts: HashMap<String, DateTime<Utc>> = rows.into_iter().collect();
    Ok(summarize(
        commits
            .iter()
            .filter_map(|(k, c)| starts.get(k).map(|s| ms_between(*c, *s)))
            .collect(),
    ))
}

/// Peak resident set (VmHWM) of a process, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn api_phase(
    s: &mut Scratch,
    args: &BenchArgs,
    report: &mut BenchReport,
) -> Result<(), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(err)?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let api = s
        .command("api", 1)?
        .env("CAMPUS_ADDR", format!("127.0.0.1:{port}"))
        .spawn()
        .map_err(|e| format!("cannot start the API: {e}"))?;
    s.children.push(api);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(err)?;
    progress("[4/4] starting `campus api` and an institution with demo data");
    let ready = Instant::now();
    while http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        if ready.elapsed() > Duration::from_secs(60) {
            return Err("the API did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let academic_email = "bench-academic@campus.test";
    let r = http
        .post(format!("{base}/institutions"))
        .json(&serde_json::json!({"name": "Bench College", "academic": {"name": "Bench", "email": academic_email, "password": "bench-password"}}))
        .send()
        .await
        .map_err(err)?;
    if r.status().as_u16() != 201 {
        return Err(format!("creating the institution failed: {}", r.status()));
    }
    // The demo seed task gives a teacher with classes and enrolled students.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (teacher_email, pairs) = loop {
        let rows: Vec<(String, uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
            "SELECT u.email, c.id, e.student_id FROM classes c JOIN users u ON u.id = c.teacher_id
             JOIN enrollments e ON e.class_id = c.id ORDER BY u.email, c.id, e.student_id",
        )
        .fetch_all(&s.pool)
        .await
        .map_err(err)?;
        if let Some((email, _, _)) = rows.first() {
            let email = email.clone();
            let pairs: Vec<_> = rows
                .into_iter()
                .filter(|(e, _, _)| *e == email)
                .map(|(_, c, st)| (c, st))
                .collect();
            break (email, pairs);
        }
        if Instant::now() > deadline {
            return Err("the demo data did not appear".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let login: serde_json::Value = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"email": teacher_email, "password": DEMO_PASSWORD}))
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    let token = login["access_token"]
        .as_str()
        .ok_or("teacher login failed")?
        .to_string();

    progress(&format!(
        "[4/4] POST /auth/reset-password-token at {} req/s for {} s",
        args.rate, args.api_seconds
    ));
    let reset = open_loop(args.rate, args.api_seconds, {
        let http = http.clone();
        let url = format!("{base}/auth/reset-password-token");
        move |_| {
            http.post(url.clone())
                .json(&serde_json::json!({"email": academic_email}))
        }
    })
    .await;
    progress(&format!(
        "[4/4] PUT …/notes at {} req/s for {} s",
        args.rate, args.api_seconds
    ));
    let notes = open_loop(args.rate, args.api_seconds, {
        let http = http.clone();
        move |i| {
            let (class, student) = pairs[i % pairs.len()];
            http.put(format!(
                "{base}/teacher/classes/{class}/students/{student}/notes"
            ))
            .bearer_auth(&token)
            .json(&serde_json::json!({"exam": "N3", "note": (i % 21) as f64 / 2.0}))
        }
    })
    .await;
    report.api_errors = reset.1 + notes.1;
    (report.api_reset_token_p50_ms, report.api_reset_token_p99_ms) = (reset.0.p50, reset.0.p99);
    (report.api_grade_note_p50_ms, report.api_grade_note_p99_ms) = (notes.0.p50, notes.0.p99);
    report.api_p99_ms = reset.0.p99.max(notes.0.p99);
    wait_until_idle(&s.pool, Duration::from_secs(120), false).await?;
    report.emails_received = s.smtp.received();
    Ok(())
}

/// Sends `rate` requests per second for `seconds`, whatever the answers' speed (open loop).
/// Returns the latency summary and the number of failed requests.
async fn open_loop(
    rate: u32,
    seconds: u64,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> (Summary, usize) {
    let total = rate as usize * seconds as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    let mut inflight = tokio::task::JoinSet::new();
    for i in 0..total {
        tick.tick().await;
        let req = request(i);
        inflight.spawn(async move {
            let t = Instant::now();
            let ok = req
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            (t.elapsed().as_secs_f64() * 1000.0, ok)
        });
    }
    let mut ms = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(r) = inflight.join_next().await {
        match r {
            Ok((m, true)) => ms.push(m),
            _ => errors += 1,
        }
    }
    (summarize(ms), errors)
}

/// The report as a table.
pub fn table(r: &BenchReport) -> String {
    let mut t = String::new();
    let mut row = |what: &str, value: String| t.push_str(&format!("{what:<52} {value}\n"));
    row(
        "task throughput (no-op tasks drained)",
        format!("{:.0} tasks/s ({} tasks)", r.tasks_per_s, r.tasks_drained),
    );
    row(
        "end to end (events, 2 tasks each)",
        format!(
            "{:.0} events/s, {:.0} tasks/s ({} events)",
            r.e2e_events_per_s, r.e2e_tasks_per_s, r.e2e_events
        ),
    );
    let lat =
        |p50: f64, p99: f64, max: f64| format!("p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
    row(
        "task commit → handler start, light load",
        lat(
            r.task_latency_p50_ms,
            r.task_latency_p99_ms,
            r.task_latency_max_ms,
        ),
    );
    row(
        "event commit → task start, light load",
        lat(
            r.event_latency_p50_ms,
            r.event_latency_p99_ms,
            r.event_latency_max_ms,
        ),
    );
    row(
        "task commit → handler start, under load (2)",
        lat(
            r.loaded_task_latency_p50_ms,
            r.loaded_task_latency_p99_ms,
            r.loaded_task_latency_max_ms,
        ),
    );
    row(
        "event commit → task start, under load (2)",
        lat(
            r.loaded_event_latency_p50_ms,
            r.loaded_event_latency_p99_ms,
            r.loaded_event_latency_max_ms,
        ),
    );
    row(
        &format!("POST /auth/reset-password-token at {}/s", r.api_rate_per_s),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms ({} e-mails delivered over SMTP)",
            r.api_reset_token_p50_ms, r.api_reset_token_p99_ms, r.emails_received
        ),
    );
    row(
        &format!("PUT /teacher/…/notes at {}/s", r.api_rate_per_s),
        format!(
            "p50 {:.2} ms, p99 {:.2} ms ({} failed requests)",
            r.api_grade_note_p50_ms, r.api_grade_note_p99_ms, r.api_errors
        ),
    );
    row(
        "daemon peak RSS during (1) and (2)",
        format!("{:.1} MB", r.daemon_peak_rss_mb),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s = summarize((1..=100).map(f64::from).collect());
        assert_eq!((s.p50, s.p99, s.max, s.n), (50.0, 99.0, 100.0, 100));
        let one = summarize(vec![3.0]);
        assert_eq!((one.p50, one.p99), (3.0, 3.0));
        assert_eq!(summarize(Vec::new()).n, 0);
    }
}
