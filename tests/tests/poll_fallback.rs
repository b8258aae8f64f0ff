//! NOTIFY is only a hint: with no notification at all (rows written by plain SQL, which sends
//! none), the daemon's polling still dispatches a new event and runs a new task, within a
//! bound of the poll interval.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_ports::ClaimedTask;
use campus_tests::{eventually, TestApp};
use std::time::Duration;

const POLL: Duration = Duration::from_millis(500);
/// Twenty polls: generous for a loaded machine, far below "never".
const BOUND: Duration = Duration::from_secs(10);

struct Probe;

#[async_trait]
impl TaskHandler for Probe {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        Ok(())
    }
}

#[tokio::test]
async fn without_notify_polling_dispatches_events_and_runs_tasks() {
    let app = TestApp::spawn_custom(
        |s| s.poll_interval = POLL,
        |c| {
            c.default_registry()
                .on_event("ProbeRecorded", "probe", "probe")
                .task("probe", Probe)
        },
    )
    .await;
    // Nothing else is going on: no write of the app's own sends a NOTIFY from here on.
    app.wait_for_idle().await;

    // An event written without NOTIFY (the outbox's rows, but no wake-up hint).
    sqlx::query(
        "INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, payload, correlation_id)
         VALUES (gen_random_uuid(), 'ProbeRecorded', 'Probe', gen_random_uuid(), '{}', 'polled-event')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let status: String = eventually(
        "the silently inserted event to be dispatched and its task to succeed",
        BOUND,
        || async {
            sqlx::query_scalar(
                "SELECT t.status FROM tasks t JOIN domain_events e ON e.id = t.event_id
                 WHERE e.correlation_id = 'polled-event' AND e.status = 'dispatched' AND t.status = 'succeeded'",
            )
            .fetch_optional(&app.pool)
            .await
            .unwrap()
        },
    )
    .await;
    assert_eq!(status, "succeeded");

    // A task written without NOTIFY is claimed by polling too.
    sqlx::query(
        "INSERT INTO tasks (id, lineage_id, task_type, payload, correlation_id)
         SELECT u, u, 'probe', '{}', 'polled-task' FROM gen_random_uuid() AS u",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let attempt: i32 = eventually(
        "the silently inserted task to succeed",
        BOUND,
        || async {
            sqlx::query_scalar(
                "SELECT attempt FROM tasks WHERE correlation_id = 'polled-task' AND status = 'succeeded'",
            )
            .fetch_optional(&app.pool)
            .await
            .unwrap()
        },
    )
    .await;
    assert_eq!(attempt, 1);
    app.stop().await;
}
