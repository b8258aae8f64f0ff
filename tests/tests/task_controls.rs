//! Operator controls and rolling deploys, end to end on PostgreSQL: a daemon claims only the
//! task types it runs; cancel; delayed tasks; per-type timeouts and concurrency limits; pause
//! and resume of a task type through the admin API.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler, TaskOptions};
use campus_core::ids::InstitutionId;
use campus_core::Timestamp;
use campus_ports::{ClaimedTask, NewTask, TaskQueue};
use campus_tests::extra::Gate;
use campus_tests::{eventually, TestApp};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the epoch, `delta_ms` from now.
fn in_ms(delta_ms: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(now.as_millis()).unwrap() + delta_ms
}

fn task(task_type: &str, key: &str) -> NewTask {
    NewTask {
        task_type: task_type.into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 3,
        idempotency_key: Some(key.into()),
        run_at: None,
        priority: Default::default(),
    }
}

/// The id of the task enqueued with idempotency key `key`.
async fn id_of(app: &TestApp, key: &str) -> uuid::Uuid {
    app.scalar(&format!(
        "SELECT id FROM tasks WHERE idempotency_key = '{key}'"
    ))
    .await
}

async fn status_of(app: &TestApp, key: &str) -> String {
    app.scalar(&format!(
        "SELECT status FROM tasks WHERE idempotency_key = '{key}'"
    ))
    .await
}

async fn wait_for_status(app: &TestApp, key: &str, status: &str) {
    eventually(
        &format!("task {key} to be {status}"),
        Duration::from_secs(30),
        || async { (status_of(app, key).await == status).then_some(()) },
    )
    .await;
}

/// Counts runs and the most that ran at once.
#[derive(Clone, Default)]
struct Overlap {
    now: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
}

#[async_trait]
impl TaskHandler for Overlap {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn an_old_daemon_never_claims_a_task_type_it_does_not_run() {
    // The app's daemon is the "old release": it knows only the built-in types.
    let app = TestApp::spawn().await;
    let store = app.store();
    store
        .enqueue(&[task("added_in_v2", "new-1"), task("added_in_v2", "new-2")])
        .await
        .unwrap();
    // A task the old daemon runs, enqueued after them: once it ran, the old daemon has
    // claimed past the new ones.
    store.enqueue(&[task("noop", "old-1")]).await.unwrap();
    wait_for_status(&app, "old-1", "succeeded").await;
    for key in ["new-1", "new-2"] {
        assert_eq!(status_of(&app, key).await, "pending", "{key} untouched");
    }

    // The new release's daemon starts beside it and runs them, on their first attempt.
    let runs = Overlap::default();
    let new = app.campus.daemon(
        app.campus
            .default_registry()
            .task("added_in_v2", runs.clone()),
    );
    let new = tokio::spawn(new.run(app.shutdown_signal()));
    for key in ["new-1", "new-2"] {
        wait_for_status(&app, key, "succeeded").await;
    }
    let clean: i64 = app
        .scalar("SELECT count(*) FROM tasks WHERE task_type = 'added_in_v2' AND attempt = 1 AND errors = '[]'")
        .await;
    assert_eq!(
        clean, 2,
        "never dead-lettered nor retried by the old daemon"
    );
    app.stop().await;
    let _ = new.await;
}

#[tokio::test]
async fn pending_tasks_are_cancelled_and_running_or_foreign_ones_are_not() {
    let gate = Gate::new();
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@controls.test".into());
            s.admin_password = Some("root-password".into());
        },
        {
            let gate = gate.clone();
            move |c| c.default_registry().task("hang", gate)
        },
    )
    .await;
    let adm = app.login("root@controls.test", "root-password").await;
    let (a, _) = app
        .create_institution("A", "a@controls.test", "password-a")
        .await;
    app.create_institution("B", "b@controls.test", "password-b")
        .await;
    let academic_b = app.login("b@controls.test", "password-b").await;
    let later = Timestamp(in_ms(3_600_000));
    let of_a = InstitutionId(uuid::Uuid::parse_str(&a).unwrap().as_u128());
    let store = app.store();
    store
        .enqueue(&[
            NewTask {
                run_at: Some(later),
                institution_id: Some(of_a),
                ..task("noop", "later")
            },
            task("hang", "running"),
        ])
        .await
        .unwrap();
    let later_id = id_of(&app, "later").await;
    let cancel = |id: uuid::Uuid| format!("/adm/tasks/{id}/cancel");

    // Another institution's Academic user does not see it.
    let r = app
        .post(&cancel(later_id), Some(&academic_b), serde_json::json!({}))
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let r = app
        .post(&cancel(later_id), Some(&adm), serde_json::json!({}))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(status_of(&app, "later").await, "cancelled");
    let r = app
        .post(&cancel(later_id), Some(&adm), serde_json::json!({}))
        .await;
    assert_eq!(r.status, 409, "a cancelled task is final: {:?}", r.body);

    wait_for_status(&app, "running", "running").await;
    let running = id_of(&app, "running").await;
    let r = app
        .post(&cancel(running), Some(&adm), serde_json::json!({}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert!(r.body["message"].as_str().unwrap().contains("running"));
    gate.open();
    wait_for_status(&app, "running", "succeeded").await;
    app.stop().await;
}

#[tokio::test]
async fn a_delayed_task_runs_at_its_time_and_not_before() {
    let app = TestApp::spawn().await;
    let at = in_ms(1_500);
    app.store()
        .enqueue(&[NewTask {
            run_at: Some(Timestamp(at)),
            ..task("noop", "delayed")
        }])
        .await
        .unwrap();
    wait_for_status(&app, "delayed", "succeeded").await;
    let started: i64 = app
        .scalar("SELECT (extract(epoch FROM started_at) * 1000)::bigint FROM tasks WHERE idempotency_key = 'delayed'")
        .await;
    assert!(started >= at, "started at {started}, before its time {at}");
    app.stop().await;
}

#[tokio::test]
async fn an_attempt_over_its_timeout_fails_and_frees_its_slot() {
    let stuck = TaskOptions {
        timeout: Duration::from_millis(300),
        ..TaskOptions::default()
    };
    let app = TestApp::spawn_custom(
        |s| s.concurrency = 1,
        move |c| {
            c.default_registry()
                .task_with("stuck", Arc::new(Gate::new()), stuck)
        },
    )
    .await;
    app.store()
        .enqueue(&[task("stuck", "stuck")])
        .await
        .unwrap();
    wait_for_status(&app, "stuck", "running").await;
    // The one slot is taken; this runs only once the timed-out attempt gave it back.
    app.store().enqueue(&[task("noop", "next")]).await.unwrap();
    wait_for_status(&app, "next", "succeeded").await;
    wait_for_status(&app, "stuck", "dead").await;
    let errors: serde_json::Value = app
        .scalar("SELECT errors FROM tasks WHERE idempotency_key = 'stuck'")
        .await;
    let errors = errors.as_array().unwrap();
    assert_eq!(
        errors.len(),
        3,
        "three attempts, each timed out: {errors:?}"
    );
    assert!(errors.iter().all(|e| e["message"]
        .as_str()
        .unwrap()
        .starts_with("timed out after 300 ms")));
    app.stop().await;
}

#[tokio::test]
async fn a_type_limited_to_one_never_runs_two_at_once() {
    let overlap = Overlap::default();
    let limited = TaskOptions {
        concurrency: Some(1),
        ..TaskOptions::default()
    };
    let app = TestApp::spawn_with({
        let overlap = overlap.clone();
        move |c| {
            c.default_registry()
                .task_with("one_at_a_time", Arc::new(overlap), limited)
        }
    })
    .await;
    let tasks: Vec<_> = (0..8)
        .map(|i| task("one_at_a_time", &format!("limited-{i}")))
        .collect();
    app.store().enqueue(&tasks).await.unwrap();
    for i in 0..8 {
        wait_for_status(&app, &format!("limited-{i}"), "succeeded").await;
    }
    assert_eq!(overlap.most.load(Ordering::SeqCst), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_paused_type_waits_until_it_is_resumed() {
    let probe = Overlap::default();
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@pause.test".into());
            s.admin_password = Some("root-password".into());
        },
        move |c| c.default_registry().task("probe", probe),
    )
    .await;
    let adm = app.login("root@pause.test", "root-password").await;
    app.create_institution("A", "a@pause.test", "password-a")
        .await;
    let academic = app.login("a@pause.test", "password-a").await;
    let r = app
        .post(
            "/adm/task-types/noop/pause",
            Some(&academic),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 403, "only Adm users pause: {:?}", r.body);
    let r = app
        .post(
            "/adm/task-types/nope/pause",
            Some(&adm),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "an unknown type: {:?}", r.body);
    let r = app
        .post(
            "/adm/task-types/noop/pause",
            Some(&adm),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    let store = app.store();
    store
        .enqueue(&[task("noop", "paused-1"), task("noop", "paused-2")])
        .await
        .unwrap();
    store.enqueue(&[task("probe", "probe")]).await.unwrap();
    wait_for_status(&app, "probe", "succeeded").await;
    for key in ["paused-1", "paused-2"] {
        assert_eq!(
            status_of(&app, key).await,
            "pending",
            "{key} is not claimed"
        );
    }
    let r = app.get("/adm/task-types", Some(&adm)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let noop = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["task_type"] == "noop")
        .unwrap()
        .clone();
    assert_eq!(noop["paused"], true);
    assert_eq!(noop["waiting"], 2);
    assert_eq!(noop["timeout_ms"], 300_000);

    let r = app
        .post(
            "/adm/task-types/noop/resume",
            Some(&adm),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    for key in ["paused-1", "paused-2"] {
        wait_for_status(&app, key, "succeeded").await;
    }
    app.stop().await;
}
