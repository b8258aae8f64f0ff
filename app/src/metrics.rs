//! Prometheus metrics: the process-wide recorder of the `metrics` facade (installed once, by
//! the first [`Campus`](crate::Campus) a process starts), every metric's name and help, and
//! the text `GET /metrics` serves. Code records through the facade's macros, with the names
//! below; without a recorder (`CAMPUS_METRICS=off`) those calls do nothing.

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};
use std::time::Duration;

pub use campus_adapters::telemetry::EVENTS_RECORDED;
pub const EVENTS_DISPATCHED: &str = "campus_events_dispatched_total";
pub const TASKS_STARTED: &str = "campus_tasks_started_total";
pub const TASKS_FINISHED: &str = "campus_tasks_finished_total";
pub const TASK_RETRIES: &str = "campus_task_retries_total";
pub const TASK_DURATION: &str = "campus_task_duration_seconds";
pub const TASK_START_DELAY: &str = "campus_task_start_delay_seconds";
pub const TASKS_CANCELLED: &str = "campus_tasks_cancelled_total";
pub const LEASES_LOST: &str = "campus_task_leases_lost_total";
pub const TASKS_RESCUED: &str = "campus_tasks_rescued_total";
pub const LEADER: &str = "campus_daemon_leader";
pub const HTTP_REQUESTS: &str = "campus_http_requests_total";
pub const HTTP_DURATION: &str = "campus_http_request_duration_seconds";
pub const POOL_CONNECTIONS: &str = "campus_db_pool_connections";
pub const QUEUE_TASKS: &str = "campus_queue_tasks";
pub const QUEUE_DUE_TASKS: &str = "campus_queue_due_tasks";
pub const QUEUE_EVENTS: &str = "campus_queue_waiting_events";
pub const OLDEST_DUE_TASK: &str = "campus_queue_oldest_due_task_age_seconds";
pub const OLDEST_DUE_EVENT: &str = "campus_queue_oldest_due_event_age_seconds";
pub const WEBHOOK_DELIVERIES: &str = "campus_webhook_deliveries_total";
pub const PAYLOADS_INDEXED: &str = "campus_payloads_indexed_total";

/// Outcomes of `campus_tasks_finished_total`.
pub const SUCCEEDED: &str = "succeeded";
pub const RETRYING: &str = "failed_will_retry";
pub const DEAD: &str = "dead";

/// Histogram buckets, in seconds: from half a millisecond (a no-op task, an API read) to a
/// minute (a slow handler).
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// How often histograms are compacted.
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process; later calls return the same handle) and, inside
/// a Tokio runtime, its upkeep task. `None` when another recorder was installed first.
pub fn install() -> Option<&'static PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Some(handle);
    }
    let builder = PrometheusBuilder::new()
        .set_buckets(BUCKETS)
        .expect("the buckets are not empty");
    let handle = match builder.install_recorder() {
        Ok(handle) => handle,
        Err(e) => {
            tracing::warn!(error = %e, "metrics are off: a recorder is already installed");
            return HANDLE.get();
        }
    };
    let handle = HANDLE.get_or_init(|| handle);
    describe();
    // Counters of rare things exist from the start, at 0, so that a rate over them is 0
    // rather than no data.
    for rare in [LEASES_LOST, TASKS_RESCUED, TASKS_CANCELLED] {
        metrics::counter!(rare).increment(0);
    }
    for outcome in ["succeeded", "failed_will_retry", "failed_permanently"] {
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    Some(handle)
}

/// The handles of one task type's metrics, looked up once: a worker records five of them
/// per attempt, and a lookup by name and labels costs more than the increment.
pub struct TaskMetrics {
    pub started: Counter,
    pub succeeded: Counter,
    pub retrying: Counter,
    pub dead: Counter,
    pub retries: Counter,
    pub duration: Histogram,
    pub start_delay: Histogram,
}

impl TaskMetrics {
    fn new(task_type: &str) -> TaskMetrics {
        let t = task_type.to_string();
        let finished = |outcome: &'static str| metrics::counter!(TASKS_FINISHED, "task_type" => t.clone(), "outcome" => outcome);
        TaskMetrics {
            started: metrics::counter!(TASKS_STARTED, "task_type" => t.clone()),
            succeeded: finished(SUCCEEDED),
            retrying: finished(RETRYING),
            dead: finished(DEAD),
            retries: metrics::counter!(TASK_RETRIES, "task_type" => t.clone()),
            duration: metrics::histogram!(TASK_DURATION, "task_type" => t.clone()),
            start_delay: metrics::histogram!(TASK_START_DELAY, "task_type" => t),
        }
    }

    /// The handles of `task_type`, made on first use (after the recorder is installed) and
    /// kept for the life of the process: task types are few and fixed by the registry, and a
    /// `'static` reference spares every attempt a reference count shared by all workers.
    pub fn of(task_type: &str) -> &'static TaskMetrics {
        type ByType = RwLock<HashMap<String, &'static TaskMetrics>>;
        static BY_TYPE: OnceLock<ByType> = OnceLock::new();
        let by_type = BY_TYPE.get_or_init(Default::default);
        if let Some(m) = by_type.read().ok().and_then(|m| m.get(task_type).copied()) {
            return m;
        }
        let mut all = by_type.write().unwrap_or_else(|e| e.into_inner());
        all.entry(task_type.to_string())
            .or_insert_with(|| Box::leak(Box::new(TaskMetrics::new(task_type))))
    }
}

/// Counts one webhook delivery attempt by its outcome.
pub fn webhook_delivery(outcome: &'static str) {
    metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// The metrics in Prometheus text format (`None`: metrics are off in this process).
pub fn render() -> Option<String> {
    HANDLE.get().map(PrometheusHandle::render)
}

fn describe() {
    describe_counter!(
        EVENTS_RECORDED,
        "Domain events recorded (committed with the change that caused them), by type."
    );
    describe_counter!(
        EVENTS_DISPATCHED,
        "Domain events turned into their tasks by this process, by type."
    );
    describe_counter!(TASKS_STARTED, "Task attempts started, by task type.");
    describe_counter!(
        TASKS_FINISHED,
        "Task attempts finished, by task type and outcome (succeeded, failed_will_retry, dead)."
    );
    describe_counter!(
        TASK_RETRIES,
        "Task attempts that failed and will be tried again, by task type."
    );
    describe_histogram!(
        TASK_DURATION,
        Unit::Seconds,
        "How long a handler ran, by task type."
    );
    describe_histogram!(
        TASK_START_DELAY,
        Unit::Seconds,
        "From a task's creation (the commit that queued it) to the start of its attempt, by task type."
    );
    describe_counter!(TASKS_CANCELLED, "Tasks cancelled by an operator.");
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook delivery attempts, by outcome (succeeded, failed_will_retry, failed_permanently)."
    );
    describe_counter!(
        LEASES_LOST,
        "Outcomes this daemon could not write because the task's lease had passed to another."
    );
    describe_counter!(
        TASKS_RESCUED,
        "Running tasks whose lease expired, handed back to the queue by the maintenance leader."
    );
    describe_counter!(
        PAYLOADS_INDEXED,
        "Payload texts entered in the search index by the maintenance leader, by table (events, tasks)."
    );
    describe_gauge!(
        LEADER,
        "1 while this daemon is the maintenance leader, else 0."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration, by method and route template."
    );
    let capped = " (read every 5 s by the maintenance leader; at most 100 000)";
    describe_gauge!(
        QUEUE_TASKS,
        format!("Tasks waiting or running, by status (pending, retrying, running){capped}.")
    );
    describe_gauge!(
        QUEUE_DUE_TASKS,
        format!("Pending or retrying tasks whose time has come{capped}.")
    );
    describe_gauge!(
        QUEUE_EVENTS,
        format!("Events waiting for dispatch{capped}.")
    );
    describe_gauge!(
        OLDEST_DUE_TASK,
        Unit::Seconds,
        "How long the oldest due task next in line (of each institution, the first in claim order) has waited (0: none is due)."
    );
    describe_gauge!(
        OLDEST_DUE_EVENT,
        Unit::Seconds,
        "How long the oldest due event has waited for dispatch (0: none)."
    );
    describe_gauge!(
        POOL_CONNECTIONS,
        "Database connections of a pool, by pool and state (in_use, idle)."
    );
}
