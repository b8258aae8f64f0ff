//! `campus status` after a known workload: its JSON agrees with the database (counts by
//! status, by type, the last hour's outcomes per type, the last archive run, the due
//! backlog), and its table names the same; it lists the daemons alive from their heartbeats,
//! and which one leads.

use campus_core::engine::Priority;
use campus_core::ids::InstitutionId;
use campus_core::Timestamp;
use campus_ports::{NewTask, TaskQueue};
use campus_tests::extra::{campus_command, AlwaysFails, Process};
use campus_tests::{eventually, TestApp};
use serde_json::Value;
use std::time::Duration;

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
        priority: Default::default(),
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

#[tokio::test]
async fn the_status_shows_the_due_backlog_by_priority_and_institution() {
    let app = TestApp::spawn().await;
    let (alpha, _) = app
        .create_institution("Alpha College", "alpha@backlog.test", "password-a")
        .await;
    let (beta, _) = app
        .create_institution("Beta College", "beta@backlog.test", "password-b")
        .await;
    app.wait_for_idle().await;
    // Of a type no daemon runs: they wait.
    let task = |institution: Option<&str>, priority| NewTask {
        task_type: "nobody_runs_this".into(),
        payload: "{}".into(),
        institution_id: institution
            .map(|i| InstitutionId(i.parse::<uuid::Uuid>().unwrap().as_u128())),
        correlation_id: None,
        max_attempts: 1,
        idempotency_key: None,
        run_at: None,
        priority,
    };
    let mut tasks = vec![
        task(Some(&alpha), Priority::Interactive),
        task(Some(&alpha), Priority::Interactive),
        task(Some(&alpha), Priority::Bulk),
        task(Some(&beta), Priority::Normal),
        task(None, Priority::Normal),
        // Not due yet.
        NewTask {
            run_at: Some(Timestamp(chrono::Utc::now().timestamp_millis() + 3_600_000)),
            ..task(Some(&alpha), Priority::Interactive)
        },
    ];
    tasks.extend((0..3).map(|_| task(Some(&beta), Priority::Bulk)));
    app.store().enqueue(&tasks).await.unwrap();

    let report: Value = serde_json::from_str(&status(&app, &["--json"]).await).unwrap();
    let backlog = &report["due_backlog"];
    let counts =
        |v: &Value| ["interactive", "normal", "bulk", "total"].map(|k| v[k].as_i64().unwrap());
    assert_eq!(counts(backlog), [2, 2, 4, 8], "{backlog}");
    let institutions: Vec<(Value, Value, [i64; 4])> = backlog["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["institution_id"].clone(), i["name"].clone(), counts(i)))
        .collect();
    assert_eq!(
        institutions,
        [
            (beta.clone().into(), "Beta College".into(), [0, 1, 3, 4]),
            (alpha.clone().into(), "Alpha College".into(), [2, 0, 1, 3]),
            (Value::Null, Value::Null, [0, 1, 0, 1]),
        ],
        "{backlog}"
    );

    let table = status(&app, &[]).await;
    assert!(
        table.contains("due backlog: interactive 2, normal 2, bulk 4 (8 in all)"),
        "{table}"
    );
    // The institutions' rows, most due tasks first, each count in its column.
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip_while(|l| !l.starts_with("due backlog (top 5 institutions)"))
        .take(4)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "due",
                "backlog",
                "(top",
                "5",
                "institutions)",
                "interactive",
                "normal",
                "bulk",
                "total"
            ],
            vec!["Beta", "College", "0", "1", "3", "4"],
            vec!["Alpha", "College", "2", "0", "1", "3"],
            vec!["(no", "institution)", "0", "1", "0", "1"],
        ],
        "{table}"
    );
}

/// The daemons `campus status --json` lists as alive.
async fn alive(app: &TestApp) -> Vec<Value> {
    let report: Value = serde_json::from_str(&status(app, &["--json"]).await).unwrap();
    report["daemons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["alive"] == true)
        .cloned()
        .collect()
}

#[tokio::test]
async fn the_status_names_the_daemons_alive_and_the_one_that_leads() {
    let app = TestApp::spawn().await;
    campus_tests::campus_binary(); // built (or found up to date) before the clock starts
                                   // The test app's own daemon, then a second one in its own process.
    let first = eventually("the first daemon", Duration::from_secs(30), || async {
        let d = alive(&app).await;
        (d.len() == 1 && d[0]["leader"] == true && d[0]["listening"] == true).then_some(d)
    })
    .await;
    let leader = first[0]["worker_id"].as_str().unwrap().to_string();
    assert_eq!(
        first[0]["concurrency"],
        app.campus.settings.concurrency.max(1)
    );
    let mut cmd = campus_command(&["daemon"]);
    cmd.env("DATABASE_URL", &app.db_url)
        .env("CAMPUS_DATA_DIR", &app.campus.settings.data_dir)
        .env("CAMPUS_JWT_SECRET", campus_tests::TEST_SECRET)
        .env("CAMPUS_DAEMON_ADDR", "off");
    let mut second = Process::spawn(cmd);
    let both = eventually("two daemons", Duration::from_secs(60), || async {
        let d = alive(&app).await;
        (d.len() == 2 && d.iter().all(|d| d["listening"] == true)).then_some(d)
    })
    .await;
    let leaders: Vec<&Value> = both.iter().filter(|d| d["leader"] == true).collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {both:?}");
    assert_eq!(
        leaders[0]["worker_id"],
        leader.as_str(),
        "the first keeps the lead"
    );
    let report: Value = serde_json::from_str(&status(&app, &["--json"]).await).unwrap();
    assert_eq!(report["leader"], leader.as_str());
    let table = status(&app, &[]).await;
    assert!(table.contains(&format!("{leader} ")), "{table}");
    assert!(
        table.contains("leader") && table.contains("worker"),
        "{table}"
    );

    // A daemon that stops leaves the roster at once.
    second.terminate();
    assert!(second.finish(Duration::from_secs(30)).await.success());
    let left = alive(&app).await;
    let ids: Vec<&str> = left
        .iter()
        .map(|d| d["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [leader.as_str()], "{left:?}");
}
