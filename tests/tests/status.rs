//! `campus status` after a known workload: its JSON agrees with the database (counts by
//! status, by type, the last hour's outcomes per type, the last archive run), and its table
//! names the same.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_ports::{ClaimedTask, NewTask, TaskQueue};
use campus_tests::extra::{campus_command, Process};
use campus_tests::TestApp;
use std::time::Duration;

struct AlwaysFails;

#[async_trait]
impl TaskHandler for AlwaysFails {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        Err(TaskError::permanent("no ink"))
    }
}

async fn status(app: &TestApp, args: &[&str]) -> String {
    let mut cmd = campus_command(&[&["status"], args].concat());
    cmd.env("DATABASE_URL", &app.db_url)
        .env("CAMPUS_DATA_DIR", &app.campus.settings.data_dir);
    let mut run = Process::spawn(cmd);
    let exit = run.finish(Duration::from_secs(60)).await;
    assert!(exit.success(), "campus status failed: {}", run.stderr());
    run.stdout()
}

#[tokio::test]
async fn the_status_agrees_with_the_database() {
    let app = TestApp::spawn_with(|c| c.default_registry().task("always_fails", AlwaysFails)).await;
    let task = |task_type: &str, key: String| NewTask {
        task_type: task_type.into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 1,
        idempotency_key: Some(key),
        run_at: None,
    };
    let mut tasks: Vec<NewTask> = (0..4).map(|i| task("noop", format!("ok-{i}"))).collect();
    tasks.push(task("always_fails", "dies".into()));
    app.store().enqueue(&tasks).await.unwrap();
    app.wait_for_idle().await;

    let report: serde_json::Value = serde_json::from_str(&status(&app, &["--json"]).await).unwrap();
    let count = |list: &str, status: &str| {
        report[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["status"] == status)
            .map_or(0, |c| c["count"].as_i64().unwrap())
    };
    let succeeded: i64 = app
        .scalar("SELECT count(*) FROM tasks WHERE status = 'succeeded'")
        .await;
    assert_eq!(count("tasks_by_status", "succeeded"), succeeded);
    assert_eq!(count("tasks_by_status", "succeeded"), 4);
    assert_eq!(count("tasks_by_status", "dead"), 1);
    assert_eq!(count("tasks_by_status", "pending"), 0);
    let by_type = report["tasks_by_type"].as_array().unwrap();
    assert!(
        by_type
            .iter()
            .any(|t| t["task_type"] == "always_fails" && t["status"] == "dead" && t["count"] == 1),
        "{by_type:?}"
    );
    let types = report["types_last_hour"].as_array().unwrap();
    let of = |name: &str| {
        types
            .iter()
            .find(|t| t["task_type"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            of("noop")["succeeded"].as_i64(),
            of("noop")["failed"].as_i64()
        ),
        (Some(4), Some(0))
    );
    assert_eq!(of("always_fails")["failed"], 1);
    assert_eq!(of("always_fails")["failure_rate"], 1.0);
    assert!(of("noop")["p95_ms"].as_f64().is_some_and(|ms| ms >= 0.0));
    assert_eq!(report["failed_last_hour"], 1);
    assert!(report["last_archive"].is_null());

    let table = status(&app, &[]).await;
    assert!(table.contains("always_fails"), "{table}");
    assert!(table.contains("last archive run: none yet"), "{table}");
    assert!(
        !table.contains("\u{1b}["),
        "no colour when not on a terminal"
    );
    // After an archive run, the status names it.
    let mut archive = campus_command(&["archive"]);
    archive
        .env("DATABASE_URL", &app.db_url)
        .env("CAMPUS_DATA_DIR", &app.campus.settings.data_dir)
        .env("CAMPUS_RETENTION_FINISHED", "0s")
        .env("CAMPUS_RETENTION_DEAD", "0s");
    let mut run = Process::spawn(archive);
    assert!(run.finish(Duration::from_secs(60)).await.success());
    let report: serde_json::Value = serde_json::from_str(&status(&app, &["--json"]).await).unwrap();
    assert_eq!(report["last_archive"]["tasks"], 5);
    let table = status(&app, &[]).await;
    assert!(table.contains("5 tasks and 0 events moved"), "{table}");
}
