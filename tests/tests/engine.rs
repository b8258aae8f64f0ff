//! The engine through the real daemon: a synthetic event type with two handlers registered
//! from outside the engine, retries until dead, permanent failures, panics.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_ports::{ClaimedTask, EventStore, NewEvent};
use campus_tests::{eventually, TestApp};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records the payload of every task it runs.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<(String, String)>>>);

#[async_trait]
impl TaskHandler for Recorder {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        self.0
            .lock()
            .unwrap()
            .push((task.task_type.clone(), task.payload.clone()));
        Ok(())
    }
}

struct Fails {
    permanent: bool,
}

#[async_trait]
impl TaskHandler for Fails {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        let message = format!("attempt {} failed", task.attempt);
        Err(if self.permanent {
            TaskError::permanent(message)
        } else {
            TaskError::transient(message)
        })
    }
}

/// Fails every attempt, recording for each retry the delay the policy chose before it
/// (its row's `run_at` minus the time of the previous failure).
#[derive(Clone)]
struct FailsTimed {
    pool: sqlx::PgPool,
    delays: Arc<Mutex<Vec<(u32, f64)>>>,
}

#[async_trait]
impl TaskHandler for FailsTimed {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        if task.attempt > 1 {
            let delay: f64 = sqlx::query_scalar(
                "SELECT (extract(epoch FROM run_at - (errors->-1->>'at')::timestamptz) * 1000)::float8
                 FROM tasks WHERE id = $1",
            )
            .bind(uuid::Uuid::from_u128(task.id.0))
            .fetch_one(&self.pool)
            .await
            .expect("the task's row");
            self.delays.lock().unwrap().push((task.attempt, delay));
        }
        Err(TaskError::transient(format!(
            "attempt {} failed",
            task.attempt
        )))
    }
}

struct Panics;

#[async_trait]
impl TaskHandler for Panics {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        panic!("handler bug")
    }
}

fn event(event_type: &str) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        aggregate_type: "Thesis".into(),
        aggregate_id: 42,
        institution_id: None,
        payload: r#"{"title":"On queues"}"#.into(),
        correlation_id: Some("corr-thesis".into()),
    }
}

#[tokio::test]
async fn a_registered_synthetic_event_fans_out_to_every_handler() {
    let recorder = Recorder::default();
    let r = recorder.clone();
    let app = TestApp::spawn_with(move |campus| {
        campus
            .default_registry()
            .on_event("ThesisSubmitted", "archive_thesis", "archive_thesis")
            .on_event_with("ThesisSubmitted", "tell_library", "tell_library", |e| {
                Ok(format!(r#"{{"event":"{:032x}"}}"#, e.id.0))
            })
            .task("archive_thesis", r.clone())
            .task("tell_library", r)
    })
    .await;
    let store = campus_adapters::pg::PgStore::new(
        app.pool.clone(),
        campus_adapters::pg::Notifier::disabled(),
    );
    let ids = store.append(&[event("ThesisSubmitted")]).await.unwrap();

    let runs = eventually("both handlers to run", Duration::from_secs(20), || async {
        let runs = recorder.0.lock().unwrap().clone();
        (runs.len() == 2).then_some(runs)
    })
    .await;
    let mut types: Vec<_> = runs.iter().map(|(t, _)| t.as_str()).collect();
    types.sort();
    assert_eq!(types, ["archive_thesis", "tell_library"]);
    assert!(runs
        .iter()
        .any(|(t, p)| t == "archive_thesis" && p.contains("On queues")));
    assert!(runs
        .iter()
        .any(|(t, p)| t == "tell_library" && p.contains(&format!("{:032x}", ids[0].0))));

    app.wait_for_idle().await;
    let linked: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM tasks WHERE event_id = '{}' AND status = 'succeeded' AND correlation_id = 'corr-thesis'",
            uuid::Uuid::from_u128(ids[0].0)
        ))
        .await;
    assert_eq!(linked, 2);
    // An event nobody handles is dispatched with no task.
    store.append(&[event("NobodyCares")]).await.unwrap();
    app.wait_for_idle().await;
    assert_eq!(
        app.scalar::<String>("SELECT status FROM domain_events WHERE event_type = 'NobodyCares'")
            .await,
        "dispatched"
    );
    app.stop().await;
}

#[tokio::test]
async fn failures_are_retried_then_dead_and_permanent_failures_die_at_once() {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let seen = delays.clone();
    // The harness's policy: 200 ms base, doubling, capped at 1 s.
    let app = TestApp::spawn_with(move |campus| {
        let flaky = FailsTimed {
            pool: campus.postgres.as_ref().unwrap().pool.clone(),
            delays: seen,
        };
        campus
            .default_registry()
            .on_event("Flaky", "flaky", "flaky")
            .task_arc("flaky", Arc::new(flaky), Some(3))
            .on_event("Doomed", "doomed", "doomed")
            .task("doomed", Fails { permanent: true })
            .on_event("Buggy", "buggy", "buggy")
            .task_arc("buggy", Arc::new(Panics), Some(2))
            .on_event("Healthy", "healthy", "healthy")
            .task("healthy", Recorder::default())
    })
    .await;
    let store = campus_adapters::pg::PgStore::new(
        app.pool.clone(),
        campus_adapters::pg::Notifier::disabled(),
    );
    store
        .append(&[
            event("Flaky"),
            event("Doomed"),
            event("Buggy"),
            event("Healthy"),
        ])
        .await
        .unwrap();
    app.wait_for_idle().await;

    let row = |t: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i32, serde_json::Value)>(
                "SELECT status, attempt, errors FROM tasks WHERE task_type = $1",
            )
            .bind(t)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (status, attempt, errors) = row("flaky").await;
    assert_eq!((status.as_str(), attempt), ("dead", 3));
    let messages: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        messages,
        ["attempt 1 failed", "attempt 2 failed", "attempt 3 failed"]
    );
    let numbers: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    // Each retry waited the policy's delay for its attempt: within [raw / 2, raw] of
    // 200 ms * 2^(attempt - 1), so the windows double; and no attempt ran before it.
    let policy = campus_core::engine::RetryPolicy {
        base: Duration::from_millis(200),
        cap: Duration::from_secs(1),
        max_attempts: 3,
    };
    let delays = delays.lock().unwrap().clone();
    assert_eq!(
        delays.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [2, 3],
        "{delays:?}"
    );
    let failed_at: Vec<f64> = sqlx::query_scalar(
        "SELECT (extract(epoch FROM (e->>'at')::timestamptz) * 1000)::float8
         FROM tasks, jsonb_array_elements(errors) e WHERE task_type = 'flaky'
         ORDER BY (e->>'attempt')::int",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let at = |i: usize| failed_at[i];
    for (i, (attempt, delay)) in delays.iter().enumerate() {
        let raw = policy.raw_delay(attempt - 1).as_secs_f64() * 1000.0;
        assert!(
            *delay >= raw / 2.0 - 0.001 && *delay <= raw + 0.001,
            "attempt {attempt} was scheduled {delay} ms after the failure before it, outside [{}, {raw}] ms",
            raw / 2.0
        );
        assert!(
            at(i + 1) - at(i) >= *delay - 0.001,
            "attempt {attempt} failed {} ms after the one before, sooner than its delay of {delay} ms",
            at(i + 1) - at(i)
        );
    }

    let (status, attempt, errors) = row("doomed").await;
    assert_eq!((status.as_str(), attempt), ("dead", 1));
    assert_eq!(
        errors.as_array().unwrap().len(),
        1,
        "a permanent failure is not retried: {errors}"
    );
    assert_eq!(
        (errors[0]["attempt"].as_i64(), errors[0]["message"].as_str()),
        (Some(1), Some("attempt 1 failed"))
    );

    let (status, attempt, errors) = row("buggy").await;
    assert_eq!((status.as_str(), attempt), ("dead", 2));
    let panics: Vec<_> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["attempt"].as_i64().unwrap(),
                e["message"]
                    .as_str()
                    .unwrap()
                    .contains("handler panicked: handler bug"),
            )
        })
        .collect();
    assert_eq!(panics, [(1, true), (2, true)], "{errors}");

    let (status, _, _) = row("healthy").await;
    assert_eq!(status, "succeeded", "other tasks are not affected");
    app.stop().await;
}
