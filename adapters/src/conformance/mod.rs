//! The engine's contract, written once against the ports and run against every adapter set
//! (River runs one suite against every driver the same way). `conformance_suite!` turns
//! each case into a test for one adapter set; this crate runs it on PostgreSQL (a fresh
//! database per test) and on `memory`. Another adapter passes when the macro, given a
//! factory of its [`Engine`], passes. Compiled for this crate's tests and behind the
//! `conformance` feature, never into production builds.
//!
//! **Time.** PostgreSQL stamps leases, retries and errors with its own `now()`, which no test
//! can move; the in-memory store reads a `Clock` port that a test can. The cases therefore
//! never sleep and never assume how fast a machine is: they only *let time pass*
//! ([`Harness::advance`]: the memory harness moves its `ManualClock`, exactly and at once;
//! the PostgreSQL harness waits until the database's clock has moved that far), use short
//! leases and retry delays where something must expire, long ones where it must not, and
//! wait for a condition with [`eventually`], advancing in small steps. Assertions that hold
//! only on a clock nobody else moves (e.g. "due no later than its delay") are made when
//! [`Harness::exact_time`] says so.
//!
//! Cases: `dispatch` (fan-out, poison events, event order, event copies), `queue` (claims,
//! fencing, retries, leases), `copies` (task copies, scoping), `outbox` (entity rows and
//! their events commit together; the summary), `controls` (claims by type, pauses, delayed
//! tasks, cancel, the leader lock, wake-ups as hints), `retention` (the archive), `search` (the
//! lists' correlation and text filters), `webhooks` (subscriptions and the delivery log) and `model` (a proptest of the task
//! lifecycle against a model).

pub mod controls;
pub mod copies;
pub mod dispatch;
pub mod fairness;
pub mod model;
pub mod ordering;
pub mod outbox;
pub mod queue;
pub mod retention;
pub mod search;
pub mod sets;
pub mod webhooks;

use async_trait::async_trait;
use campus_core::engine::{EventEnvelope, PlannedTask, RetryPolicy};
use campus_ports::*;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// One adapter set under test.
pub struct Engine {
    pub events: Arc<dyn EventStore>,
    pub tasks: Arc<dyn TaskQueue>,
    /// The read side, through which the cases observe what the other ports did.
    pub log: Arc<dyn EngineLog>,
    /// A repository, to check that entity writes and their events commit together.
    pub users: Arc<dyn UserRepository>,
    /// Operator controls (cancel, pause), the leader lock and the wake-up hints.
    pub controls: Arc<dyn TaskControl>,
    pub leader: Arc<dyn LeaderLock>,
    pub wake_ups: Arc<dyn WakeUps>,
    pub archive: Arc<dyn Archive>,
    pub gauges: Arc<dyn QueueGauges>,
    /// The search index of payload texts.
    pub payloads: Arc<dyn PayloadIndex>,
    pub roster: Arc<dyn DaemonRoster>,
    pub webhooks: Arc<dyn WebhookStore>,
    /// What the archive run purges besides.
    pub sessions: Arc<dyn SessionStore>,
    pub sent: Arc<dyn SentEmailLog>,
    pub harness: Box<dyn Harness>,
}

/// What a case needs from an adapter set beyond its ports.
#[async_trait]
pub trait Harness: Send + Sync {
    /// Lets at least `d` pass on the clock the adapters stamp their rows with.
    async fn advance(&self, d: Duration);
    /// Whether time moves only through [`Harness::advance`] (then upper bounds can be exact).
    fn exact_time(&self) -> bool;
    /// The current time of the clock the adapters stamp their rows with.
    async fn now(&self) -> campus_core::Timestamp;
    /// Forgets every event and task (between the cases of a property test).
    async fn reset(&self);
    /// Releases what the set holds (e.g. drops its database).
    async fn finish(&self);
}

/// Plans tasks `t_h1` and `t_h2` (handlers `h1`, `h2`) for every event, each with the
/// event's payload and 3 attempts; an event of type `Poison` cannot be planned.
pub struct TwoHandlers;

impl EventPlanner for TwoHandlers {
    fn plan(
        &self,
        event: &EventEnvelope<Payload>,
    ) -> Result<Vec<PlannedTask<Payload>>, PlanFailure> {
        if event.event_type == "Poison" {
            return Err(PlanFailure {
                handler: "h1".into(),
                message: "cannot plan".into(),
            });
        }
        Ok(["h1", "h2"]
            .into_iter()
            .map(|h| PlannedTask {
                task_type: format!("t_{h}"),
                handler: h.into(),
                payload: event.payload.clone(),
                max_attempts: None,
                priority: Default::default(),
                ordering_key: None,
            })
            .collect())
    }
    fn max_attempts(&self, _: &str) -> u32 {
        3
    }
}

/// An event of type `event_type` with payload `{"n": 1}` and correlation id `corr-1`.
pub fn event(event_type: &str) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        aggregate_type: "Thing".into(),
        aggregate_id: 1,
        institution_id: None,
        payload: r#"{"n":1}"#.into(),
        correlation_id: Some("corr-1".into()),
    }
}

/// A task of type `t` with 2 attempts.
pub fn task(key: Option<&str>) -> NewTask {
    NewTask {
        task_type: "t".into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 2,
        idempotency_key: key.map(str::to_string),
        run_at: None,
        priority: Default::default(),
    }
}

/// Every task type the cases enqueue or plan.
pub fn types() -> ClaimTypes {
    ClaimTypes::of(["t", "t_h1", "t_h2"])
}

/// Delays of 0.5–1 ms, 1–2 ms, …, at most 5 ms: retries are due almost at once.
pub fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        max_attempts: 3,
    }
}

/// Delays long enough to measure, short enough not to wait for: 20–40 ms, 40–80 ms, dead.
pub fn measurable_policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(40),
        cap: Duration::from_secs(1),
        max_attempts: 3,
    }
}

/// A lease that expires at once; one that never does during a test.
pub const SHORT_LEASE: Duration = Duration::from_millis(1);
pub const LONG_LEASE: Duration = Duration::from_secs(60);

/// Calls `check` until it returns `Some`, letting `step` pass on the adapters' clock between
/// two calls; panics naming `what` after 10 s of the adapters' time (or of real time).
pub async fn eventually<T, F, Fut>(e: &Engine, what: &str, step: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let limit = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let mut advanced = Duration::ZERO;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            advanced < limit && started.elapsed() < limit,
            "timed out waiting for {what}"
        );
        e.harness.advance(step).await;
        advanced += step;
    }
}

/// An error's `at` in milliseconds since the epoch.
pub fn at_ms(e: &AttemptError) -> f64 {
    chrono::DateTime::parse_from_rfc3339(&e.at)
        .unwrap_or_else(|err| panic!("{}: {err}", e.at))
        .timestamp_micros() as f64
        / 1000.0
}

/// Asserts that `delay_ms`, chosen after failed attempt `attempt`, lies in the policy's
/// equal-jitter window `[raw / 2, raw]`, give or take the 1 ms resolution of `run_at`.
pub fn assert_in_window(p: &RetryPolicy, attempt: u32, delay_ms: f64) {
    let raw = p.raw_delay(attempt).as_secs_f64() * 1000.0;
    assert!(
        delay_ms >= raw / 2.0 - 1.0 && delay_ms <= raw + 1.0,
        "the delay after attempt {attempt} was {delay_ms} ms, outside [{}, {raw}] ms",
        raw / 2.0
    );
}

/// Every task, newest first (the suite's stores hold fewer than 200).
pub async fn all_tasks(e: &Engine) -> Vec<TaskView> {
    let q = TaskQuery {
        limit: 200,
        ..Default::default()
    };
    e.log.list_tasks(&q, None).await.expect("list tasks")
}

/// One task's view.
pub async fn view(e: &Engine, id: campus_core::ids::TaskId) -> TaskView {
    e.log.task(id, None).await.expect("task view").task
}

/// A completion of `c`'s attempt with `outcome`.
pub fn completion(c: &ClaimedTask, outcome: TaskOutcome) -> Completion {
    Completion {
        id: c.id,
        attempt: c.attempt,
        max_attempts: c.max_attempts,
        outcome,
        duration: Duration::from_millis(3),
    }
}

/// A failed outcome.
pub fn failed(message: &str, permanent: bool) -> TaskOutcome {
    TaskOutcome::Failed {
        message: message.into(),
        permanent,
        retry_in: None,
    }
}

/// Defines one test per conformance case for the adapter set that `$make().await` returns
/// (an [`Engine`]); invoke it inside a module of its own.
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make;
            dispatch::fan_out_creates_one_task_per_event_and_handler,
            dispatch::a_failed_plan_fails_only_its_event_then_retries_and_dies,
            dispatch::events_are_dispatched_oldest_first,
            dispatch::reprocessing_an_event_fans_out_again,
            queue::enqueue_is_idempotent_per_key,
            queue::claims_are_exclusive_under_concurrency,
            queue::completion_is_fenced_by_worker_and_attempt,
            queue::failures_retry_with_backoff_then_die,
            queue::a_failure_may_say_when_to_retry,
            queue::permanent_failures_are_dead_at_once,
            queue::tasks_are_claimed_oldest_due_first,
            queue::expired_leases_are_rescued_and_heartbeats_keep_them,
            copies::reprocessing_a_task_copies_and_never_edits,
            copies::bulk_reprocessing_skips_waiting_and_fixed_tasks,
            copies::scoping_hides_other_institutions,
            outbox::a_refused_write_records_no_event,
            outbox::the_summary_counts_what_the_store_holds,
            controls::a_claim_takes_only_the_types_asked_for_within_their_caps,
            controls::paused_types_are_not_claimed_until_resumed,
            controls::delayed_tasks_wait_for_their_run_at,
            controls::cancel_stops_a_waiting_task_and_refuses_others,
            controls::one_leader_at_a_time,
            controls::a_wake_up_is_only_a_hint,
            controls::type_stats_count_outcomes_and_latency,
            controls::the_roster_lists_the_daemons_heard_from,
            fairness::a_claim_shares_its_limit_between_institutions,
            fairness::a_capped_institution_takes_no_more_than_its_room,
            fairness::higher_priorities_go_first_and_lower_ones_age,
            fairness::bulk_reprocessing_yields_to_fresh_work,
            ordering::an_ordered_route_runs_one_aggregates_tasks_one_at_a_time,
            ordering::an_event_waiting_for_dispatch_holds_back_later_ones,
            search::searches_find_rows_in_every_state,
            search::text_searches_answer_alike_before_during_and_after_indexing,
            retention::the_archive_moves_exactly_the_archivable_rows,
            retention::the_purge_deletes_only_what_has_no_use,
            retention::the_audit_trail_follows_an_entity_into_the_archive,
            webhooks::webhook_subscriptions_are_scoped_and_deliveries_logged
        );

        #[test]
        fn the_task_queue_follows_the_lifecycle_model() {
            $crate::conformance::model::check(|| Box::pin($make()));
        }
    };
    (@cases $make:path; $($module:ident :: $case:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $case() {
            let engine = $make().await;
            $crate::conformance::$module::$case(&engine).await;
            engine.harness.finish().await;
        }
    )*};
}

#[cfg(test)]
mod on_postgres {
    crate::conformance_suite!(crate::conformance::sets::postgres);
}

#[cfg(test)]
mod on_memory {
    crate::conformance_suite!(crate::conformance::sets::memory);
}
