//! The bench's load generators: the no-op tasks and benchmark events it commits, concurrent
//! event writers with a sampler of single tasks beside them, and an open-loop HTTP client.

use super::err;
use super::report::{summarize, Summary};
use crate::handlers::{noop, BENCHMARK_EVENT};
use campus_adapters::pg::PgStore;
use campus_ports::{EventStore, NewEvent, NewTask, TaskQueue};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// When each event was committed, by id.
pub(super) type EventCommits = HashMap<uuid::Uuid, DateTime<Utc>>;
/// When each sampled task was committed, by idempotency key.
pub(super) type TaskCommits = Vec<(String, DateTime<Utc>)>;

/// What a typical task or event carries (the size of a grade note's), so that the indexes of
/// settled rows pay what they pay in production.
pub(super) const PAYLOAD: &str = r#"{"student_id":"0192f2a4-7d1e-7c3b-9a55-3f4e2b1c0d9e","exam":"first","note":7.5,"class":"Mathematics 101"}"#;

/// A task of the no-op handler, with an idempotency key when it is sampled for latency and a
/// correlation id of its own (a UUIDv7, as the API mints them).
pub(super) fn noop_task(key: Option<String>) -> NewTask {
    NewTask {
        task_type: noop::TASK_TYPE.into(),
        payload: PAYLOAD.into(),
        institution_id: None,
        correlation_id: Some(uuid::Uuid::now_v7().to_string()),
        max_attempts: 5,
        idempotency_key: key,
        run_at: None,
        priority: Default::default(),
    }
}

/// An event the benchmark route fans out to two tasks, with a correlation id of its own.
pub(super) fn bench_event() -> NewEvent {
    NewEvent {
        event_type: BENCHMARK_EVENT.into(),
        aggregate_type: "Benchmark".into(),
        aggregate_id: 0,
        institution_id: None,
        payload: PAYLOAD.into(),
        correlation_id: Some(uuid::Uuid::now_v7().to_string()),
    }
}

/// Commits one sampled no-op task keyed `<prefix>-<i>` and returns its key and commit time.
pub(super) async fn commit_sampled_task(
    store: &PgStore,
    prefix: &str,
    i: usize,
) -> Result<(String, DateTime<Utc>), String> {
    let key = format!("{prefix}-{i}");
    store
        .enqueue(&[noop_task(Some(key.clone()))])
        .await
        .map_err(err)?;
    Ok((key, Utc::now()))
}

/// Commits one benchmark event and returns its id and commit time.
pub(super) async fn commit_event(store: &PgStore) -> Result<(uuid::Uuid, DateTime<Utc>), String> {
    let ids = store.append(&[bench_event()]).await.map_err(err)?;
    Ok((uuid::Uuid::from_u128(ids[0].0), Utc::now()))
}

/// Writers committing outbox transactions (an entity and its benchmark event) as fast as
/// they can, and optionally a sampler committing a single task every 10 ms, until
/// [`Load::stop`].
pub(super) struct Load {
    stop: Arc<AtomicBool>,
    writers: Vec<JoinHandle<Result<EventCommits, String>>>,
    sampler: Option<JoinHandle<Result<TaskCommits, String>>>,
}

impl Load {
    /// Starts `writers` writers and, with `sample`, the task sampler on `store`.
    pub(super) fn start(store: &PgStore, writers: usize, sample: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = (0..writers)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut commits = EventCommits::new();
                    while !stop.load(Ordering::Relaxed) {
                        let (id, at) = store.commit_outbox(&bench_event()).await.map_err(err)?;
                        commits.insert(id, at);
                    }
                    Ok(commits)
                })
            })
            .collect();
        let sampler = sample.then(|| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut commits = TaskCommits::new();
                while !stop.load(Ordering::Relaxed) {
                    commits.push(commit_sampled_task(&store, "loaded", commits.len()).await?);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(commits)
            })
        });
        Load {
            stop,
            writers,
            sampler,
        }
    }

    /// Stops every generator and returns what they committed.
    pub(super) async fn stop(self) -> Result<(EventCommits, TaskCommits), String> {
        self.stop.store(true, Ordering::Relaxed);
        let mut events = EventCommits::new();
        for w in self.writers {
            events.extend(w.await.map_err(err)??);
        }
        let tasks = match self.sampler {
            Some(sampler) => sampler.await.map_err(err)??,
            None => TaskCommits::new(),
        };
        Ok((events, tasks))
    }
}

/// What an open-loop run measured. Latencies are taken from each request's *scheduled*
/// send time (start + i / rate), not from when the client got round to sending it: a stall of
/// the client or the server then counts against every request it delayed (no coordinated
/// omission).
pub(super) struct OpenLoop {
    /// Scheduled send → answer.
    pub latency: Summary,
    /// Actual send → answer (the server's view; what the bench reported before).
    pub service: Summary,
    /// How late each request was sent after its scheduled time (the timer's own granularity
    /// is 1 ms; more is the client's or the machine's stall).
    pub send_lag: Summary,
    pub errors: usize,
    /// Every request, in the order they were scheduled (for `--api-trace`).
    pub requests: Vec<Request>,
}

/// One request of an open-loop run.
pub(super) struct Request {
    /// Its scheduled send time, in seconds since the Unix epoch.
    pub scheduled_unix_s: f64,
    /// Scheduled send → answer, ms.
    pub latency_ms: f64,
    /// Actual send → answer, ms.
    pub service_ms: f64,
    /// Whether it got a 2xx answer.
    pub ok: bool,
}

/// Sends `rate` requests per second for `seconds`, each at its scheduled instant whatever the
/// answers' speed (open loop; a late send goes out at once, never in a catch-up burst of its
/// own making, and its lateness counts in its latency).
pub(super) async fn open_loop(
    rate: u32,
    seconds: u64,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> OpenLoop {
    let total = rate as usize * seconds as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = tokio::time::Instant::now();
    let start_unix_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut inflight = tokio::task::JoinSet::new();
    let mut send_lag = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        tokio::time::sleep_until(scheduled).await;
        send_lag.push(scheduled.elapsed().as_secs_f64() * 1000.0);
        let req = request(i);
        let scheduled_unix_s = start_unix_s + interval.as_secs_f64() * i as f64;
        inflight.spawn(async move {
            let sent = Instant::now();
            let ok = req
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            let ms = |from: Duration| from.as_secs_f64() * 1000.0;
            Request {
                scheduled_unix_s,
                latency_ms: ms(scheduled.elapsed()),
                service_ms: ms(sent.elapsed()),
                ok,
            }
        });
    }
    let mut requests = Vec::with_capacity(total);
    let mut lost = 0;
    while let Some(r) = inflight.join_next().await {
        match r {
            Ok(request) => requests.push(request),
            Err(_) => lost += 1,
        }
    }
    requests.sort_by(|a, b| a.scheduled_unix_s.total_cmp(&b.scheduled_unix_s));
    let answered = || requests.iter().filter(|r| r.ok);
    let latency = answered().map(|r| r.latency_ms).collect();
    let service = answered().map(|r| r.service_ms).collect();
    let errors = lost + requests.iter().filter(|r| !r.ok).count();
    OpenLoop {
        latency: summarize(latency),
        service: summarize(service),
        send_lag: summarize(send_lag),
        errors,
        requests,
    }
}
