//! `campus archive` on a real database while the app runs: a dry run counts, a run moves
//! exactly those rows (batch by batch, with progress on standard error), nothing is lost or
//! duplicated, and a second run moves nothing.

use campus_ports::TaskQueue;
use campus_tests::extra::{campus_command, Process};
use campus_tests::TestApp;
use std::time::Duration;

async fn archive(app: &TestApp, args: &[&str]) -> Process {
    let mut cmd = campus_command(&[&["archive"], args].concat());
    cmd.env("DATABASE_URL", &app.db_url)
        .env("CAMPUS_RETENTION_FINISHED", "1h")
        .env("CAMPUS_DATA_DIR", &app.campus.settings.data_dir);
    let mut run = Process::spawn(cmd);
    let status = run.finish(Duration::from_secs(60)).await;
    assert!(status.success(), "campus archive failed: {}", run.stderr());
    run
}

#[tokio::test]
async fn campus_archive_moves_old_finished_rows_with_progress() {
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@archive.test".into());
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await;
    for i in 0..3 {
        let email = format!("academic{i}@archive.test");
        app.create_institution(&format!("College {i}"), &email, "password-1")
            .await;
    }
    app.wait_for_idle().await;
    let count = |sql: &'static str| app.scalar::<i64>(sql);
    let (tasks, events) = (
        count("SELECT count(*) FROM tasks").await,
        count("SELECT count(*) FROM domain_events").await,
    );
    assert!(
        tasks >= 3 && events > tasks,
        "the demo seeds ran: {tasks} tasks, {events} events"
    );
    // Two hours pass for what is finished; one recent succeeded task stays.
    for sql in [
        "UPDATE tasks SET finished_at = finished_at - interval '2 hours'",
        "UPDATE domain_events SET dispatched_at = dispatched_at - interval '2 hours'",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    let recent = app
        .store()
        .enqueue(&[campus_ports::NewTask {
            task_type: "noop".into(),
            payload: "{}".into(),
            institution_id: None,
            correlation_id: None,
            max_attempts: 1,
            idempotency_key: Some("recent".into()),
            run_at: None,
            priority: Default::default(),
        }])
        .await;
    assert_eq!(recent.unwrap(), 1);
    app.wait_for_idle().await;

    let dry = archive(&app, &["--dry-run"]).await;
    assert_eq!(
        dry.stdout().lines().next().unwrap_or_default(),
        format!(
            "Would archive {tasks} tasks and {events} events (finished more than 1h ago, \
             dead or cancelled more than 30d ago)."
        )
    );
    assert_eq!(
        count("SELECT count(*) FROM tasks_processed").await,
        0,
        "a dry run moves nothing"
    );

    let run = archive(&app, &["--batch", "7"]).await;
    assert!(
        run.stdout()
            .starts_with(&format!("Archived {tasks} tasks and {events} events")),
        "{}",
        run.stdout()
    );
    assert!(
        run.stderr().contains(&format!(
            "archiving: {} of {} rows",
            tasks.min(7) + events.min(7),
            tasks + events
        )),
        "the first batch's progress line: {}",
        run.stderr()
    );
    assert_eq!(count("SELECT count(*) FROM tasks_processed").await, tasks);
    assert_eq!(
        count("SELECT count(*) FROM domain_events_processed").await,
        events
    );
    assert_eq!(
        count("SELECT count(*) FROM tasks WHERE idempotency_key = 'recent'").await,
        1,
        "the recent task stays"
    );
    assert_eq!(count("SELECT count(*) FROM tasks").await, 1);
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT id FROM tasks UNION SELECT id FROM tasks_processed) AS every"
        )
        .await,
        tasks + 1,
        "no task lost or duplicated"
    );

    // Operators still find archived rows: the lists' `archived` filter, details and links,
    // and reprocessing into a live copy.
    let adm = app.login("root@archive.test", "root-password").await;
    let listed = |archived: &'static str| {
        let (app, adm) = (&app, &adm);
        async move {
            let r = app
                .get(
                    &format!("/adm/tasks?limit=200&archived={archived}"),
                    Some(adm),
                )
                .await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body["items"].as_array().unwrap().len() as i64
        }
    };
    assert_eq!(listed("live").await, 1);
    assert_eq!(listed("archived").await, tasks);
    assert_eq!(listed("all").await, tasks + 1);
    let refused = app.get("/adm/events?archived=attic", Some(&adm)).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    // `archived` is an enum (`live`, `archived`, `all`) in the spec: the message names it.
    assert!(refused.body["message"]
        .as_str()
        .unwrap()
        .contains("`archived`"));
    let seeded: String = app
        .scalar("SELECT id::text FROM tasks_processed WHERE task_type = 'seed_demo_data' LIMIT 1")
        .await;
    let detail = app.get(&format!("/adm/tasks/{seeded}"), Some(&adm)).await;
    assert_eq!(detail.body["task"]["status"], "succeeded", "{detail:?}");
    let origin = detail.body["task"]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let event = app.get(&format!("/adm/events/{origin}"), Some(&adm)).await;
    assert_eq!(event.body["event"]["event_type"], "InstitutionCreated");
    assert_eq!(event.body["tasks"][0]["id"], seeded.as_str());
    let copy = app
        .post(
            &format!("/adm/tasks/{seeded}/reprocess"),
            Some(&adm),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(copy.status, 201, "{copy:?}");
    let copy_id = copy.body["id"].as_str().unwrap().to_string();
    let live_copy: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM tasks WHERE id = '{copy_id}' AND reprocessed_from = '{seeded}'"
        ))
        .await;
    assert_eq!(
        live_copy, 1,
        "the copy is live and points at the archived original"
    );
    app.wait_for_idle().await;

    let again = archive(&app, &[]).await;
    assert!(
        again.stdout().starts_with("Archived 0 tasks and 0 events"),
        "the copy finished within the hour: {}",
        again.stdout()
    );
    app.stop().await;
}
