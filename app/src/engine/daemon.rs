//! The daemon: LISTEN + polling wake-ups, the dispatch loop (events → tasks), the worker
//! loop (claim due tasks, run them with bounded concurrency) and the batched completer.
//!
//! NOTIFY only shortens the wait; every loop also polls, so nothing depends on a
//! notification arriving. Many daemons can share one database: claims use
//! `FOR UPDATE SKIP LOCKED` and completions are fenced by worker id and attempt.

use super::registry::{Registry, TaskError};
use campus_adapters::pg::notify::{Listener, Wakers};
use campus_core::engine::RetryPolicy;
use campus_core::ids::TaskId;
use campus_ports::{ClaimedTask, Completion, EventStore, TaskOutcome, TaskQueue};
use futures::FutureExt;
use sqlx::PgPool;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

/// Tuning of a daemon. Defaults suit a small deployment.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Identifies this daemon in `locked_by` (host:pid:random by default).
    pub worker_id: String,
    /// Tasks running at once.
    pub concurrency: usize,
    /// Events claimed per dispatch round.
    pub dispatch_batch: u32,
    /// Longest wait between two looks at the tables when no notification arrives.
    pub poll_interval: Duration,
    /// How long a claim holds a task.
    pub lease: Duration,
    /// Retry policy of failed tasks and events.
    pub retry: RetryPolicy,
    /// How long shutdown waits for running tasks.
    pub shutdown_timeout: Duration,
    /// How often the maintenance leader rescues expired leases.
    pub maintenance_interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            worker_id: default_worker_id(),
            concurrency: 16,
            dispatch_batch: 500,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            shutdown_timeout: Duration::from_secs(10),
            maintenance_interval: Duration::from_secs(1),
        }
    }
}

/// `host:pid:random`, unique per process.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "campus".into());
    format!(
        "{host}:{}:{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// A running daemon's dependencies.
pub struct Daemon {
    pub pool: PgPool,
    pub events: Arc<dyn EventStore>,
    pub tasks: Arc<dyn TaskQueue>,
    pub registry: Arc<Registry>,
    pub config: DaemonConfig,
}

impl Daemon {
    /// Runs until `shutdown` turns true, then stops claiming, lets running tasks finish
    /// (up to `shutdown_timeout`) and flushes their outcomes.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let wakers = Wakers::default();
        let config = Arc::new(self.config);
        tracing::info!(worker = %config.worker_id, concurrency = config.concurrency, "daemon started");
        let listener = tokio::spawn(Listener::run(
            self.pool.clone(),
            wakers.clone(),
            shutdown.clone(),
        ));
        let dispatcher = tokio::spawn(dispatch_loop(
            self.events.clone(),
            self.registry.clone(),
            config.clone(),
            wakers.events.clone(),
            shutdown.clone(),
        ));
        let maintenance = tokio::spawn(maintenance_loop(
            self.pool.clone(),
            self.tasks.clone(),
            config.clone(),
            shutdown.clone(),
        ));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let slots = Slots::new(config.concurrency);
        let completer = tokio::spawn(complete_loop(
            self.tasks.clone(),
            config.clone(),
            slots.clone(),
            done_rx,
        ));
        worker_loop(
            self.tasks.clone(),
            self.registry.clone(),
            config.clone(),
            wakers.tasks.clone(),
            slots,
            done_tx,
            shutdown,
        )
        .await;
        // The worker loop returned after its tasks finished; the completer ends when the last
        // sender (held by those tasks) is gone.
        let _ = completer.await;
        let _ = dispatcher.await;
        let _ = maintenance.await;
        let _ = listener.await;
        tracing::info!(worker = %config.worker_id, "daemon stopped");
    }
}

/// How long a busy dispatcher lets events gather before its next round.
const GATHER: Duration = Duration::from_millis(2);

/// Most tasks one claim takes. With many slots free, several claims of this size follow one
/// another while the completer writes, instead of one large claim that leaves PostgreSQL's
/// second core idle (measured on 2 cores: 256 beat 512 and unlimited).
const CLAIM_BATCH: usize = 256;
/// Most outcomes one completion statement writes.
const COMPLETION_BATCH: usize = 256;
/// Completion statements in flight at once.
const COMPLETION_WRITERS: usize = 2;

/// Waits for a wake-up, the poll interval or shutdown. Returns false on shutdown.
async fn idle(wake: &Notify, poll: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = wake.notified() => true,
        _ = tokio::time::sleep(poll) => true,
        _ = shutdown.changed() => false,
    }
}

async fn dispatch_loop(
    events: Arc<dyn EventStore>,
    registry: Arc<Registry>,
    config: Arc<DaemonConfig>,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        match events
            .dispatch_pending(config.dispatch_batch, registry.clone(), &config.retry)
            .await
        {
            Ok(report) => {
                failures = 0;
                if report.events > 0 {
                    tracing::debug!(
                        events = report.events,
                        tasks = report.tasks,
                        failed = report.failed,
                        "dispatched"
                    );
                }
                if report.events as u32 >= config.dispatch_batch {
                    continue; // more may be waiting
                }
                if report.events > 0 {
                    // Busy: let a few milliseconds of events gather into the next round rather
                    // than running one tiny round per NOTIFY. The round was not full, so it
                    // took every due event no other dispatcher holds; a later one NOTIFYs after its
                    // commit, which leaves a wake-up for `idle` below (no empty round to
                    // find that out; polling still covers a lost NOTIFY).
                    tokio::select! {
                        _ = tokio::time::sleep(GATHER) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "dispatch round failed");
                let backoff =
                    Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                continue;
            }
        }
        if !idle(&wake, config.poll_interval, &mut shutdown).await {
            return;
        }
    }
}

async fn worker_loop(
    queue: Arc<dyn TaskQueue>,
    registry: Arc<Registry>,
    config: Arc<DaemonConfig>,
    wake: Arc<Notify>,
    slots: Slots,
    done: mpsc::UnboundedSender<Finished>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut running = JoinSet::new();
    let heartbeat = tokio::spawn(heartbeat_loop(queue.clone(), config.clone(), slots.clone()));
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        while running.try_join_next().is_some() {}
        let free = slots.permits.available_permits();
        if free == 0 {
            tokio::select! {
                _ = slots.freed.notified() => continue,
                _ = shutdown.changed() => break,
            }
        }
        let want = u32::try_from(free.min(CLAIM_BATCH)).unwrap_or(u32::MAX);
        let claimed = match queue.claim(&config.worker_id, want, config.lease).await {
            Ok(c) => {
                failures = 0;
                c
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, "claiming tasks failed");
                let backoff =
                    Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => break,
                }
                continue;
            }
        };
        let got = claimed.len();
        for task in claimed {
            let Ok(permit) = slots.permits.clone().try_acquire_owned() else {
                // Cannot happen: we never claim more than the free permits.
                tracing::error!(task_id = task.id.0, "no free slot for a claimed task");
                continue;
            };
            let registry = registry.clone();
            let done = done.clone();
            let in_flight = slots.in_flight.clone();
            let id = task.id;
            in_flight.insert(&task);
            let handle = running.spawn({
                let in_flight = in_flight.clone();
                async move {
                    let completion = execute(&registry, task).await;
                    in_flight.mark_finished(id);
                    // The slot stays taken until the outcome is written (back-pressure:
                    // claims never outrun the completer), see `complete_loop`.
                    let _ = done.send(Finished {
                        completion,
                        permit: Some(permit),
                    });
                }
            });
            in_flight.set_abort(id, handle);
        }
        if got < want as usize && !idle(&wake, config.poll_interval, &mut shutdown).await {
            break;
        }
    }
    // Graceful stop: no new claims; let the running tasks finish within the timeout (their
    // leases are still extended meanwhile).
    if !running.is_empty() {
        tracing::info!(
            running = running.len(),
            "waiting for running tasks before stopping"
        );
        let drained = tokio::time::timeout(config.shutdown_timeout, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
            // What is still in flight was interrupted: record a failed attempt now rather
            // than leaving it to the lease rescuer.
            let interrupted = slots.in_flight.drain_unfinished();
            tracing::warn!(
                interrupted = interrupted.len(),
                "shutdown timeout: interrupting running tasks"
            );
            for (
                id,
                Attempt {
                    attempt,
                    max_attempts,
                    started,
                    ..
                },
            ) in interrupted
            {
                let completion = Completion {
                    id,
                    attempt,
                    max_attempts,
                    outcome: TaskOutcome::Failed {
                        message: "the daemon stopped before the task finished".into(),
                        permanent: false,
                    },
                    duration: started.elapsed(),
                };
                let _ = done.send(Finished {
                    completion,
                    permit: None,
                });
            }
        }
    }
    heartbeat.abort();
    drop(done);
}

/// One attempt this daemon holds.
#[derive(Clone)]
struct Attempt {
    attempt: u32,
    max_attempts: u32,
    started: Instant,
    /// The handler returned; the outcome waits for the completer.
    finished: bool,
    /// Stops the handler (when its lease is lost).
    abort: Option<tokio::task::AbortHandle>,
}

/// The attempts this daemon holds, by id: running, or finished with the outcome not yet
/// written. Their leases are kept alive until the outcome is written.
#[derive(Clone, Default)]
struct InFlight(Arc<std::sync::Mutex<HashMap<TaskId, Attempt>>>);

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TaskId, Attempt>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn insert(&self, task: &ClaimedTask) {
        let attempt = Attempt {
            attempt: task.attempt,
            max_attempts: task.max_attempts,
            started: Instant::now(),
            finished: false,
            abort: None,
        };
        self.lock().insert(task.id, attempt);
    }
    fn set_abort(&self, id: TaskId, handle: tokio::task::AbortHandle) {
        if let Some(a) = self.lock().get_mut(&id) {
            a.abort = Some(handle);
        }
    }
    fn mark_finished(&self, id: TaskId) {
        if let Some(a) = self.lock().get_mut(&id) {
            a.finished = true;
        }
    }
    fn remove(&self, id: TaskId) {
        self.lock().remove(&id);
    }
    /// Every attempt held, as (task, attempt number).
    fn snapshot(&self) -> Vec<(TaskId, u32)> {
        self.lock().iter().map(|(id, a)| (*id, a.attempt)).collect()
    }
    /// Forgets and stops the attempts among `asked` that have really lost their lease: the
    /// heartbeat did not hold them and their handler is still running here (the leader gave
    /// the task to someone else, whose attempt now counts; this one's outcome would be
    /// refused, and its effects would double those of the new holder). An attempt whose
    /// handler returned may have had its outcome written (clearing its lock) while the
    /// heartbeat ran, so it does not count; if its lease was really lost, the completer says
    /// so when the write is rejected. Returns how many were stopped.
    fn stop_lost(&self, asked: &[(TaskId, u32)], held: &[TaskId]) -> usize {
        let held: std::collections::HashSet<&TaskId> = held.iter().collect();
        let mut map = self.lock();
        let mut stopped = 0;
        for (id, attempt) in asked {
            let lost = !held.contains(id)
                && map
                    .get(id)
                    .is_some_and(|a| a.attempt == *attempt && !a.finished);
            if lost {
                if let Some(handle) = map.remove(id).and_then(|a| a.abort) {
                    handle.abort();
                }
                stopped += 1;
            }
        }
        stopped
    }
    /// Removes and returns the attempts whose handler never returned.
    fn drain_unfinished(&self) -> Vec<(TaskId, Attempt)> {
        let mut map = self.lock();
        let unfinished: Vec<_> = map
            .iter()
            .filter(|(_, a)| !a.finished)
            .map(|(id, a)| (*id, a.clone()))
            .collect();
        for (id, _) in &unfinished {
            map.remove(id);
        }
        unfinished
    }
}

/// The daemon's task slots: at most `concurrency` attempts are held at once, counting those
/// whose outcome is not written yet.
#[derive(Clone)]
struct Slots {
    permits: Arc<Semaphore>,
    freed: Arc<Notify>,
    in_flight: InFlight,
}

impl Slots {
    fn new(concurrency: usize) -> Self {
        Slots {
            permits: Arc::new(Semaphore::new(concurrency)),
            freed: Arc::new(Notify::new()),
            in_flight: InFlight::default(),
        }
    }
}

/// A finished attempt on its way to the completer, holding its slot until written.
struct Finished {
    completion: Completion,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Extends the leases of running tasks every third of a lease, so long tasks are not
/// mistaken for abandoned ones; stops the handlers whose lease was lost anyway.
async fn heartbeat_loop(queue: Arc<dyn TaskQueue>, config: Arc<DaemonConfig>, slots: Slots) {
    let every = (config.lease / 3).max(Duration::from_millis(50));
    let in_flight = &slots.in_flight;
    loop {
        tokio::time::sleep(every).await;
        let asked = in_flight.snapshot();
        if asked.is_empty() {
            continue;
        }
        let ids: Vec<TaskId> = asked.iter().map(|(id, _)| *id).collect();
        match queue.heartbeat(&config.worker_id, &ids, config.lease).await {
            Ok(held) => {
                let lost = in_flight.stop_lost(&asked, &held);
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "leases lost (rescued by the leader): their handlers were stopped"
                    );
                    // Their slots came back with the stopped handlers.
                    slots.freed.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

/// The advisory-lock key of the maintenance leader ("campus" in ASCII).
const LEADER_LOCK: i64 = 0x6361_6d70_7573;

/// Elects one maintenance leader among all daemons (a session-level advisory lock held on a
/// dedicated connection: when the leader dies, its connection closes and another daemon takes
/// over), and lets the leader rescue expired leases.
async fn maintenance_loop(
    pool: PgPool,
    queue: Arc<dyn TaskQueue>,
    config: Arc<DaemonConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut leadership: Option<sqlx::PgConnection> = None;
    while !*shutdown.borrow() {
        leadership = match leadership.take() {
            Some(mut conn) => match sqlx::query("SELECT 1").execute(&mut conn).await {
                Ok(_) => Some(conn),
                Err(e) => {
                    tracing::warn!(error = %e, "lost the maintenance leadership");
                    None
                }
            },
            None => try_lead(&pool).await,
        };
        if leadership.is_some() {
            loop {
                match queue.rescue_expired(&config.retry, 1000).await {
                    Ok(0) => break,
                    Ok(n) => tracing::warn!(
                        rescued = n,
                        "returned tasks with expired leases to the queue"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "rescuing expired leases failed");
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(config.maintenance_interval) => {}
            _ = shutdown.changed() => {}
        }
    }
    if let Some(conn) = leadership {
        let _ = sqlx::Connection::close(conn).await;
    }
}

async fn try_lead(pool: &PgPool) -> Option<sqlx::PgConnection> {
    let mut conn = pool.acquire().await.ok()?.detach();
    let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LEADER_LOCK)
        .fetch_one(&mut conn)
        .await
        .ok()?;
    if won {
        tracing::info!("this daemon is the maintenance leader");
        Some(conn)
    } else {
        let _ = sqlx::Connection::close(conn).await;
        None
    }
}

/// Runs one claimed task and turns its result (or panic) into a completion.
async fn execute(registry: &Registry, task: ClaimedTask) -> Completion {
    let started = Instant::now();
    let span = tracing::info_span!(
        "task",
        task_id = %uuid::Uuid::from_u128(task.id.0),
        task_type = %task.task_type,
        attempt = task.attempt,
        correlation_id = task.correlation_id.as_deref().unwrap_or(""),
    );
    let result = match registry.task_handler(&task.task_type) {
        None => Err(TaskError::permanent(format!(
            "no handler is registered for task type {}",
            task.task_type
        ))),
        Some(handler) => AssertUnwindSafe(handler.run(&task))
            .catch_unwind()
            .instrument(span.clone())
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(TaskError::transient(format!("handler panicked: {what}")))
            }),
    };
    let outcome = match result {
        Ok(()) => {
            span.in_scope(|| tracing::debug!(elapsed = ?started.elapsed(), "task succeeded"));
            TaskOutcome::Succeeded
        }
        Err(e) => {
            span.in_scope(
                || tracing::warn!(error = %e.message, permanent = e.permanent, "task failed"),
            );
            TaskOutcome::Failed {
                message: e.message,
                permanent: e.permanent,
            }
        }
    };
    Completion {
        id: task.id,
        attempt: task.attempt,
        max_attempts: task.max_attempts,
        outcome,
        duration: started.elapsed(),
    }
}

/// Writes outcomes in batches, then frees their slots; retries the write until it succeeds
/// (an outcome never written is recovered by the lease rescuer). Up to `COMPLETION_WRITERS`
/// batches are written at once, so PostgreSQL works on completions while the worker loop
/// claims with the slots the previous batch freed.
async fn complete_loop(
    queue: Arc<dyn TaskQueue>,
    config: Arc<DaemonConfig>,
    slots: Slots,
    mut done: mpsc::UnboundedReceiver<Finished>,
) {
    let writers = Arc::new(Semaphore::new(COMPLETION_WRITERS));
    let mut writes = JoinSet::new();
    loop {
        let Ok(writer) = writers.clone().acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(COMPLETION_BATCH);
        if done.recv_many(&mut batch, COMPLETION_BATCH).await == 0 {
            break;
        }
        while writes.try_join_next().is_some() {}
        let (queue, config, slots) = (queue.clone(), config.clone(), slots.clone());
        writes.spawn(async move {
            write_outcomes(queue.as_ref(), &config, batch, &slots).await;
            drop(writer);
        });
    }
    while writes.join_next().await.is_some() {}
}

/// Writes one batch of outcomes (retrying), then frees its slots.
async fn write_outcomes(
    queue: &dyn TaskQueue,
    config: &DaemonConfig,
    batch: Vec<Finished>,
    slots: &Slots,
) {
    let completions: Vec<Completion> = batch.iter().map(|f| f.completion.clone()).collect();
    let mut failures = 0u32;
    loop {
        match queue
            .complete(&config.worker_id, &completions, &config.retry)
            .await
        {
            Ok(accepted) => {
                if accepted < completions.len() {
                    tracing::warn!(
                        rejected = completions.len() - accepted,
                        "stale completions rejected (lease lost)"
                    );
                }
                break;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if failures > 20 {
                    tracing::error!(error = %e, lost = completions.len(), "giving up writing outcomes; leases will expire");
                    break;
                }
                tracing::warn!(error = %e, "writing task outcomes failed; retrying");
                tokio::time::sleep(Duration::from_millis(100u64 << failures.min(6))).await;
            }
        }
    }
    for f in batch {
        slots.in_flight.remove(f.completion.id);
        drop(f.permit);
    }
    slots.freed.notify_one();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(in_flight: &InFlight, id: u128, attempt: u32) -> (TaskId, u32) {
        let held = Attempt {
            attempt,
            max_attempts: 5,
            started: Instant::now(),
            finished: false,
            abort: None,
        };
        in_flight.lock().insert(TaskId(id), held);
        (TaskId(id), attempt)
    }

    #[test]
    fn only_running_attempts_the_heartbeat_missed_count_as_lost() {
        let in_flight = InFlight::default();
        let kept = hold(&in_flight, 1, 1);
        let running = hold(&in_flight, 2, 1);
        let finished = hold(&in_flight, 3, 1);
        let written = hold(&in_flight, 4, 1);
        let retried = hold(&in_flight, 5, 1);
        let asked = in_flight.snapshot();
        assert_eq!(asked.len(), 5);

        // While the heartbeat ran: 3 finished and its outcome was written (unlocking it, but
        // not yet forgotten here), 4 was written and forgotten, 5 was written as a retry and
        // claimed again as attempt 2.
        in_flight.mark_finished(finished.0);
        in_flight.remove(written.0);
        in_flight.remove(retried.0);
        hold(&in_flight, 5, 2);
        let held = [kept.0];

        assert_eq!(
            in_flight.stop_lost(&asked, &[kept.0, running.0]),
            0,
            "nothing lost while both running attempts are held"
        );
        assert_eq!(
            in_flight.stop_lost(&asked, &held),
            1,
            "only task 2 lost its lease"
        );
        assert!(in_flight.lock().get(&running.0).is_none(), "forgotten");
    }

    #[tokio::test]
    async fn a_handler_whose_lease_is_lost_is_stopped() {
        let in_flight = InFlight::default();
        let asked = [hold(&in_flight, 1, 1)];
        let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel::<()>();
        let mut running = JoinSet::new();
        let handle = running.spawn(async move {
            // Stands for a handler sending e-mails for a long time; the sender is dropped
            // only when the future is.
            let _guard = dropped_tx;
            std::future::pending::<()>().await;
        });
        in_flight.set_abort(TaskId(1), handle);
        assert_eq!(in_flight.stop_lost(&asked, &[]), 1);
        let joined = running.join_next().await.expect("the handler's task");
        assert!(joined.unwrap_err().is_cancelled());
        assert!(
            dropped_rx.await.is_err(),
            "the handler's future was dropped"
        );
    }
}
