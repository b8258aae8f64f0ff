#!/usr/bin/env bash
# Campus against graphile_worker (the Rust crate, 0.14, from crates.io): each drains JOBS no-op
# jobs queued beforehand in a fresh database, alternated ROUNDS times in one sitting (the order
# swaps every round) so that drift on the machine hits both alike. Usage, from the repository root:
#   cargo build --release -p campus && bash tests/perf/graphile_compare.sh [JOBS] [ROUNDS]
# Needs psql, cargo and python3; PostgreSQL at $PGURL_BASE (default postgres://postgres@127.0.0.1:5432,
# trust auth). The peer is our own small program built --release from crates.io in
# $GRAPHILE_DIR (default /tmp/campus-graphile-bench, with its own target dir; reused once built),
# never a dependency of the workspace. Campus's figure is `campus bench`'s drain rate
# (`tasks_per_s`: first task start → last task finish); the peer's is worker start → the
# handler has run JOBS times; a last line gives it from its first handler start (start-up left
# out, as campus bench does), and its JSON also has the time until its jobs table is empty.
#
# Peer settings (env; the defaults are the fastest measured; all exist in 0.14.1, none is a
# stand-in): GW_CONCURRENCY=1024, GW_LOCAL_QUEUE=4000 (jobs per fetch; 0 = no local queue),
# GW_LOCAL_QUEUE_COUNT=2 (local queues, each of GW_LOCAL_QUEUE), GW_BATCH_MS=5
# (complete_job_batch_delay; 0 = one UPDATE per job), GW_POOL=20
# (max_pg_conn), GW_POLL_MS=1000. Measured with 100 000 jobs on 2 cores, other cargo builds running
# beside (so ±20 % run to run), jobs/s, median (range, runs): concurrency 1024, one local queue of
# 4000, 5 ms batches, 20 connections: 28.7k (24-37k, 9); two such queues: 39.8k (33-46k, 6, chosen);
# three: 34.6k (34-46k, 3); four: 35-38k (2); 2×2000: 27-43k; 4×1000: 33-43k; concurrency 256: 33k,
# 512: 36k, 2048: 34k, 2048 with 2 queues: 36-43k; one queue of 8000: 30k, of 2000: 25k; batches of
# 1 ms: 26k, 10 ms: 28k; pool 10: 24k, 40: 24k; no completion batching: 6k; no local queue: 1k.
# CAMPUS_BENCH_ARGS go to `campus bench` (its --concurrency defaults to 1024 too).
set -euo pipefail
jobs=${1:-100000}
rounds=${2:-2}
base=${PGURL_BASE:-postgres://postgres@127.0.0.1:5432}
dir=${GRAPHILE_DIR:-/tmp/campus-graphile-bench}
bin=./target/release/campus
die() { echo "graphile_compare: $*" >&2; exit 1; }
[[ $jobs =~ ^[1-9][0-9]*$ && $rounds =~ ^[1-9][0-9]*$ ]] || die "usage: $0 [JOBS] [ROUNDS] (positive integers)"
[ -x "$bin" ] || die "$bin not found: run from the repository root after cargo build --release -p campus"
for tool in psql cargo python3; do command -v $tool >/dev/null || die "$tool is not installed"; done
psql -qtA "$base/postgres" -c "SELECT 1" >/dev/null || die "cannot reach PostgreSQL at $base"
dbs=()
cleanup() {
  for db in "${dbs[@]}"; do psql -q "$base/postgres" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
fresh_db() { # sets $url to a fresh database campus_cmp_<pid>_<n> (dropped on exit)
  local db=campus_cmp_$$_${#dbs[@]}
  dbs+=("$db")
  psql -q "$base/postgres" -c "CREATE DATABASE $db" >/dev/null || die "cannot create database $db"
  url=$base/$db
}
# Writes $dir/$1 from stdin unless it already holds exactly that (so a built peer is reused).
put() { mkdir -p "$(dirname "$dir/$1")"; cat > "$dir/$1.new"; cmp -s "$dir/$1.new" "$dir/$1" && rm "$dir/$1.new" || mv "$dir/$1.new" "$dir/$1"; }

put Cargo.toml <<'TOML'
[package]
name = "graphile-bench"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
graphile_worker = "=0.14.1"
tokio = { version = "1", features = ["macros", "rt-multi-thread", "time"] }
sqlx = { version = "0.8", default-features = false, features = ["runtime-tokio", "postgres"] }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[workspace]
TOML
put src/main.rs <<'RUST'
//! Queues N no-op graphile_worker jobs (not timed), then times a worker draining them.
use graphile_worker::{IntoTaskHandlerResult, JobSpec, LocalQueueConfig, RawJobSpec, TaskHandler, WorkerContext, WorkerOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static DONE: AtomicUsize = AtomicUsize::new(0);
static TARGET: AtomicUsize = AtomicUsize::new(usize::MAX);
static ALL_DONE: tokio::sync::Notify = tokio::sync::Notify::const_new();
static FIRST: OnceLock<Instant> = OnceLock::new();

#[derive(serde::Deserialize, serde::Serialize)]
struct Noop {}

impl TaskHandler for Noop {
    const IDENTIFIER: &'static str = "noop";
    async fn run(self, _ctx: WorkerContext) -> impl IntoTaskHandlerResult {
        FIRST.get_or_init(Instant::now);
        if DONE.fetch_add(1, Ordering::Relaxed) + 1 == TARGET.load(Ordering::Relaxed) {
            ALL_DONE.notify_one();
        }
        Ok::<(), String>(())
    }
}

fn env(name: &str, default: u64) -> u64 {
    let parse = |v: String| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}"));
    std::env::var(name).ok().map(parse).unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let jobs: usize = std::env::args().nth(1).ok_or("usage: graphile-bench JOBS")?.parse()?;
    let (concurrency, pool) = (env("GW_CONCURRENCY", 1024) as usize, env("GW_POOL", 20) as u32);
    let (queue, queues) = (env("GW_LOCAL_QUEUE", 4000) as usize, env("GW_LOCAL_QUEUE_COUNT", 2) as usize);
    let (batch_ms, poll_ms) = (env("GW_BATCH_MS", 5), env("GW_POLL_MS", 1000));
    let mut options = WorkerOptions::default().database_url(&url).max_pg_conn(pool).concurrency(concurrency)
        .poll_interval(Duration::from_millis(poll_ms)).listen_os_shutdown_signals(false).define_job::<Noop>();
    if batch_ms > 0 {
        options = options.complete_job_batch_delay(Duration::from_millis(batch_ms));
    }
    if queue > 0 {
        options = options.local_queue(LocalQueueConfig::default().with_size(queue).with_queue_count(queues));
    }
    let worker = Arc::new(options.init().await?); // init() runs graphile_worker's migrations
    let spec = RawJobSpec { identifier: "noop".into(), payload: serde_json::json!({}), spec: JobSpec::default() };
    let chunk = vec![spec; 10_000];
    let mut queued = 0; // add_raw_jobs: one graphile_worker.add_jobs(array) call per 10 000 jobs
    while queued < jobs {
        let take = (jobs - queued).min(chunk.len());
        worker.create_utils().add_raw_jobs(&chunk[..take]).await?;
        queued += take;
    }
    TARGET.store(jobs, Ordering::Relaxed);
    let started = Instant::now();
    let runner = { let w = worker.clone(); tokio::spawn(async move { w.run().await }) };
    tokio::time::timeout(Duration::from_secs(1800), ALL_DONE.notified()).await.map_err(|_| "not drained in 30 min")?;
    let seconds = started.elapsed().as_secs_f64();
    let first_to_last = FIRST.get().map_or(0.0, |f| f.elapsed().as_secs_f64());
    // Completions are written in batches: also when the last one was committed.
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&url).await?;
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM graphile_worker._private_jobs").fetch_one(&db).await? > 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds_db = started.elapsed().as_secs_f64();
    worker.request_shutdown();
    runner.await??;
    println!("{{\"jobs\":{jobs},\"seconds\":{seconds:.3},\"jobs_per_s\":{:.1},\"seconds_first_to_last\":{first_to_last:.3},\
\"seconds_db_empty\":{seconds_db:.3},\"concurrency\":{concurrency},\"local_queue\":{queue},\"local_queue_count\":{queues},\
\"batch_ms\":{batch_ms},\"pool\":{pool}}}", jobs as f64 / seconds);
    Ok(())
}
RUST

echo "== building graphile_worker bench in $dir (first run takes a few minutes)"
(cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release --quiet) || die "building the graphile_worker bench failed"
peer="$dir/target/release/graphile-bench"
out="$dir/results-$$"
mkdir -p "$out" "$dir/campus-data"

run_campus() { # round
  echo "== round $1: campus drains $jobs tasks" >&2
  # `campus bench` makes (and drops) its own scratch database on the server of DATABASE_URL.
  fresh_db
  # shellcheck disable=SC2086
  DATABASE_URL=$url CAMPUS_DATA_DIR="$dir/campus-data" $bin bench --tasks "$jobs" --seconds 1 --samples 10 \
    --api-seconds 1 --fairness 0 --json ${CAMPUS_BENCH_ARGS:-} > "$out/campus-$1.json" 2> "$out/campus-$1.log" \
    || { tail -20 "$out/campus-$1.log" >&2; die "campus bench failed (log above)"; }
  python3 -c 'import json,sys; print("   campus           %.0f tasks/s" % json.load(open(sys.argv[1]))["tasks_per_s"])' "$out/campus-$1.json"
}
run_graphile() { # round
  echo "== round $1: graphile_worker drains $jobs jobs" >&2
  fresh_db
  DATABASE_URL=$url "$peer" "$jobs" > "$out/graphile-$1.json" 2> "$out/graphile-$1.log" \
    || { tail -20 "$out/graphile-$1.log" >&2; die "graphile_worker bench failed (log above)"; }
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("   graphile_worker  %.0f jobs/s  %s" % (r["jobs_per_s"], json.dumps(r)))' "$out/graphile-$1.json"
}
for r in $(seq 1 "$rounds"); do
  if (( r % 2 )); then run_campus "$r"; run_graphile "$r"; else run_graphile "$r"; run_campus "$r"; fi
done

python3 - "$out" "$rounds" "$jobs" <<'PY'
import json, statistics, sys
out, rounds, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = [json.load(open(f"{out}/campus-{r}.json"))["tasks_per_s"] for r in range(1, rounds + 1)]
gj = [json.load(open(f"{out}/graphile-{r}.json")) for r in range(1, rounds + 1)]
g = [r["jobs_per_s"] for r in gj]
g1 = [r["jobs"] / r["seconds_first_to_last"] for r in gj]
print(f"\n{jobs} no-op jobs per run\n\n| round | campus tasks/s | graphile_worker jobs/s | ratio |\n|---|---|---|---|")
for r, (a, b) in enumerate(zip(c, g), 1):
    print(f"| {r} | {a:.0f} | {b:.0f} | {a / b:.2f} |")
print(f"| median | {statistics.median(c):.0f} | {statistics.median(g):.0f} | {statistics.median(x / y for x, y in zip(c, g)):.2f} |")
print(f"\nmedian ratio campus/graphile_worker: {statistics.median(x / y for x, y in zip(c, g)):.2f}")
# campus bench times first task start -> last finish; the same span of the peer leaves out its start-up.
print(f"graphile_worker timed from its first handler start: median {statistics.median(g1):.0f} jobs/s, "
      f"ratio {statistics.median(x / y for x, y in zip(c, g1)):.2f}")
PY
rm -rf "$out"
