//! Stopping: a handler still running when `CAMPUS_SHUTDOWN_TIMEOUT` runs out is interrupted,
//! recorded as a failed attempt and retried by the next daemon; SIGTERM to the real
//! `campus serve` stops its API and its daemon cleanly.

use campus::config::Settings;
use campus::Campus;
use campus_adapters::pg::testing::{drop_database, fresh_database};
use campus_ports::{NewTask, TaskQueue};
use campus_tests::extra::{accepts, campus_command, free_addr, Gate, Process};
use campus_tests::{eventually, wait_for_port, SmtpServer};
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;

#[tokio::test]
async fn a_task_still_running_at_the_shutdown_timeout_fails_its_attempt_and_is_retried() {
    let (url, pool) = fresh_database("campus_e2e_stop").await.unwrap();
    let mut settings = Settings::defaults();
    settings.database_url = Some(url.clone());
    settings.data_dir =
        std::env::temp_dir().join(format!("campus-stop-{}", uuid::Uuid::new_v4().simple()));
    settings.shutdown_timeout = Duration::from_millis(300);
    settings.retry_base = Duration::from_millis(100);
    settings.retry_cap = Duration::from_millis(200);
    // A long lease: the lease rescuer cannot be what records the failure in this test.
    settings.lease = Duration::from_secs(60);
    settings.poll_interval = Duration::from_millis(200);
    let campus = Campus::start(settings).await.expect("Campus starts");
    // The first attempt hangs until the test ends; later attempts succeed at once.
    let gate = Gate::blocking_before_attempt(2);

    let (stop_first, stopped) = watch::channel(false);
    let first = tokio::spawn(
        campus
            .daemon(campus.default_registry().task("hang", gate.clone()))
            .run(stopped),
    );
    let pg = campus.postgres.as_ref().unwrap();
    pg.store
        .enqueue(&[NewTask {
            task_type: "hang".into(),
            payload: "{}".into(),
            institution_id: None,
            correlation_id: Some("hangs".into()),
            max_attempts: 5,
            idempotency_key: None,
            run_at: None,
            priority: Default::default(),
        }])
        .await
        .unwrap();
    type Row = (String, i32, Option<String>, serde_json::Value);
    let row = || async {
        sqlx::query_as::<_, Row>(
            "SELECT status, attempt, locked_by, errors FROM tasks WHERE correlation_id = 'hangs'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    eventually(
        "the first attempt to run",
        Duration::from_secs(20),
        // Claimed (in the database) and started (in the handler): the claim commits first.
        || async { (row().await.0 == "running" && gate.runs() == 1).then_some(()) },
    )
    .await;

    // Stop the daemon: its handler never returns, so the timeout has to end it.
    stop_first.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(20), first)
        .await
        .expect("the daemon stops although its handler hangs")
        .unwrap();
    let (status, attempt, locked_by, errors) = row().await;
    assert_eq!(
        (status.as_str(), attempt, locked_by),
        ("retrying", 1, None),
        "the interrupted attempt is recorded as failed, not left running: {errors}"
    );
    let errors = errors.as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["attempt"], 1);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("stopped before the task finished"),
        "{errors:?}"
    );

    // The next daemon retries it.
    let (stop_second, stopped) = watch::channel(false);
    let second = tokio::spawn(
        campus
            .daemon(campus.default_registry().task("hang", gate.clone()))
            .run(stopped),
    );
    let (status, attempt, locked_by, errors) =
        eventually("the retry to succeed", Duration::from_secs(20), || async {
            Some(row().await).filter(|r| r.0 == "succeeded")
        })
        .await;
    assert_eq!(
        (status.as_str(), attempt, locked_by),
        ("succeeded", 2, None)
    );
    assert_eq!(
        errors.as_array().unwrap().len(),
        1,
        "the failure stays in the history"
    );
    assert_eq!(gate.runs(), 2);

    stop_second.send(true).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(20), second).await;
    gate.open();
    pool.close().await;
    pg.pool.close().await;
    pg.engine_store.pool().close().await;
    drop_database(&url).await.unwrap();
    let _ = std::fs::remove_dir_all(&campus.settings.data_dir);
}

#[tokio::test]
async fn sigterm_stops_campus_serve_cleanly() {
    let (url, pool) = fresh_database("campus_e2e_serve_term").await.unwrap();
    let smtp = SmtpServer::start().await;
    let addr = free_addr();
    let data_dir =
        std::env::temp_dir().join(format!("campus-serve-{}", uuid::Uuid::new_v4().simple()));
    let mut cmd = campus_command(&["serve"]);
    cmd.env("DATABASE_URL", &url)
        .env("CAMPUS_ADDR", addr.to_string())
        .env("SMTP_URL", smtp.url())
        .env("CAMPUS_DATA_DIR", &data_dir)
        .env("CAMPUS_POLL_INTERVAL", "200ms")
        .env("CAMPUS_SHUTDOWN_TIMEOUT", "5s");
    let mut serve = Process::spawn(cmd);
    serve
        .wait_for_stdout("Campus is running", Duration::from_secs(60))
        .await;
    wait_for_port("campus serve", addr.port(), Duration::from_secs(20)).await;
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    eventually("ready", Duration::from_secs(30), || async {
        let ready = http.get(format!("{base}/health/ready")).send().await.ok()?;
        (ready.status() == 200).then_some(())
    })
    .await;

    // The daemon of this process works: a new institution's demo data is seeded by a task.
    let created = http
        .post(format!("{base}/institutions"))
        .json(&json!({"name": "Term College", "academic": {"name": "Ana", "email": "ana@term.test", "password": "ana-password"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    eventually("the demo data task to succeed", Duration::from_secs(30), || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM tasks WHERE task_type = 'seed_demo_data' AND status = 'succeeded'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        (n == 1).then_some(())
    })
    .await;

    serve.terminate();
    let exit = serve.wait_exit(Duration::from_secs(30)).await;
    let log = serve.stderr();
    assert!(exit.success(), "exit status {exit:?}\n{log}");
    assert!(!accepts(addr).await, "the API port is closed after exit");
    assert!(
        log.contains("daemon stopped"),
        "the daemon ran to its end before the process exited:\n{log}"
    );
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks WHERE locked_by IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 0, "no task is left claimed");
    pool.close().await;
    drop_database(&url).await.unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
}
