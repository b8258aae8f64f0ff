//! Failures end to end: daemons killed with SIGKILL, connections terminated, an SMTP outage,
//! two daemons sharing work, and operators reprocessing through the API.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_adapters::pg::testing::{drop_database, fresh_database, DropOnPanic};
use campus_adapters::pg::{Notifier, PgStore};
use campus_ports::{ClaimedTask, EventStore, NewEvent, NewTask, TaskQueue};
use campus_tests::{campus_binary, eventually, TestApp};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn noop_tasks(n: usize, sleep_ms: u64) -> Vec<NewTask> {
    (0..n)
        .map(|_| NewTask {
            task_type: "noop".into(),
            payload: format!(r#"{{"sleep_ms":{sleep_ms}}}"#),
            institution_id: None,
            correlation_id: None,
            max_attempts: 20,
            idempotency_key: None,
            run_at: None,
            priority: Default::default(),
        })
        .collect()
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn spawn_daemon(db_url: &str, data_dir: &std::path::Path) -> tokio::process::Child {
    tokio::process::Command::new(campus_binary())
        .arg("daemon")
        .env("DATABASE_URL", db_url)
        .env("CAMPUS_DATA_DIR", data_dir)
        .env("CAMPUS_LEASE", "2s")
        .env("CAMPUS_CONCURRENCY", "32")
        // 4 + 2 pooled connections, plus LISTEN and leader: about 9 per daemon.
        .env("CAMPUS_DB_CONNECTIONS", "4")
        .env("CAMPUS_POLL_INTERVAL", "200ms")
        .env("CAMPUS_RETRY_BASE", "100ms")
        .env("CAMPUS_RETRY_CAP", "1s")
        .env("RUST_LOG", "error")
        .env_remove("SMTP_URL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start a campus daemon")
}

#[tokio::test]
async fn killing_daemons_with_sigkill_loses_no_task() {
    const TASKS: usize = 10_000;
    let (url, pool) = fresh_database("campus_e2e_kill").await.unwrap();
    let url = DropOnPanic(url);
    let store = PgStore::new(pool.clone(), Notifier::disabled());
    for chunk in noop_tasks(TASKS, 10).chunks(2_000) {
        store.enqueue(chunk).await.unwrap();
    }
    let data_dir =
        std::env::temp_dir().join(format!("campus-kill-{}", uuid::Uuid::new_v4().simple()));
    let mut daemons = vec![spawn_daemon(&url, &data_dir), spawn_daemon(&url, &data_dir)];
    let mut kills = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let done = count(
            &pool,
            "SELECT count(*) FROM tasks WHERE status = 'succeeded'",
        )
        .await;
        if done == TASKS as i64 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} of {TASKS} tasks succeeded before the deadline"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        // SIGKILL a daemon mid-run (no chance to clean up) and start a fresh one, ten times.
        if kills < 10 && done > 0 {
            let victim = kills % daemons.len();
            daemons[victim].kill().await.expect("SIGKILL a daemon");
            daemons[victim] = spawn_daemon(&url, &data_dir);
            kills += 1;
        }
    }
    let lost = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE status <> 'succeeded'",
    )
    .await;
    let total = count(&pool, "SELECT count(*) FROM tasks").await;
    let again = count(&pool, "SELECT count(*) FROM tasks WHERE attempt > 1").await;
    let rescued = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE errors::text LIKE '%lease expired%'",
    )
    .await;
    println!("{kills} SIGKILLs during {TASKS} tasks: {again} tasks were claimed more than once ({rescued} rescued after a lease expired)");
    assert_eq!((lost, total), (0, TASKS as i64));
    assert!(
        kills >= 3,
        "the run was too short to kill daemons in it ({kills} kills)"
    );
    for mut d in daemons {
        let _ = d.kill().await;
    }
    pool.close().await;
    drop_database(&url).await.unwrap();
    let _ = std::fs::remove_dir_all(data_dir);
}

#[tokio::test]
async fn sigterm_lets_running_tasks_finish_and_stops_claiming() {
    let (url, pool) = fresh_database("campus_e2e_term").await.unwrap();
    let url = DropOnPanic(url);
    let store = PgStore::new(pool.clone(), Notifier::disabled());
    store.enqueue(&noop_tasks(4, 1_500)).await.unwrap();
    let data_dir =
        std::env::temp_dir().join(format!("campus-term-{}", uuid::Uuid::new_v4().simple()));
    let mut daemon = spawn_daemon(&url, &data_dir);
    eventually(
        "the daemon to start the tasks",
        Duration::from_secs(30),
        || async {
            (count(&pool, "SELECT count(*) FROM tasks WHERE status = 'running'").await == 4)
                .then_some(())
        },
    )
    .await;
    // SIGTERM; once the daemon has stopped claiming (its LISTEN connection closes only then,
    // after a claim under way at the signal has returned), more work arrives: the running
    // tasks finish, the new ones are never claimed.
    let listeners = "SELECT count(*) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN %'";
    // Its LISTEN connection is its own and may come up just after the first claims.
    eventually("the daemon to listen", Duration::from_secs(10), || async {
        (count(&pool, listeners).await == 1).then_some(())
    })
    .await;
    let pid = daemon.id().expect("daemon pid");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    eventually(
        "the daemon to stop claiming (its LISTEN connection closes)",
        Duration::from_secs(10),
        || async { (count(&pool, listeners).await == 0).then_some(()) },
    )
    .await;
    assert_eq!(
        count(&pool, "SELECT count(*) FROM tasks WHERE status = 'running'").await,
        4,
        "the long tasks are still running when the new work arrives"
    );
    store.enqueue(&noop_tasks(3, 0)).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .expect("the daemon exits")
        .unwrap();
    assert!(exit.success(), "graceful exit: {exit:?}");
    let finished = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE status = 'succeeded' AND payload->>'sleep_ms' = '1500'",
    )
    .await;
    let untouched = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE payload->>'sleep_ms' = '0' AND status = 'pending'
           AND attempt = 0 AND started_at IS NULL AND locked_by IS NULL",
    )
    .await;
    let held = count(
        &pool,
        "SELECT count(*) FROM tasks WHERE locked_by IS NOT NULL",
    )
    .await;
    assert_eq!(finished, 4, "running tasks finished before exit");
    assert_eq!(held, 0, "nothing is left claimed");
    assert_eq!(untouched, 3, "a stopping daemon claims nothing new");
    pool.close().await;
    drop_database(&url).await.unwrap();
    let _ = std::fs::remove_dir_all(data_dir);
}

/// Counts how often each task ran, per daemon.
#[derive(Clone)]
struct Counter {
    runs: Arc<Mutex<HashMap<u128, u32>>>,
    mine: Arc<Mutex<u32>>,
}

#[async_trait]
impl TaskHandler for Counter {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        *self.runs.lock().unwrap().entry(task.id.0).or_default() += 1;
        *self.mine.lock().unwrap() += 1;
        Ok(())
    }
}

#[tokio::test]
async fn two_daemons_run_ten_thousand_tasks_exactly_once() {
    const TASKS: usize = 10_000;
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let (first, second) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(0)));
    let c1 = Counter {
        runs: runs.clone(),
        mine: first.clone(),
    };
    let app = TestApp::spawn_with(move |c| c.default_registry().task("count", c1)).await;
    let c2 = Counter {
        runs: runs.clone(),
        mine: second.clone(),
    };
    let other = app
        .campus
        .daemon(app.campus.default_registry().task("count", c2));
    let other = tokio::spawn(other.run(app.shutdown_signal()));

    let tasks: Vec<_> = noop_tasks(TASKS, 0)
        .into_iter()
        .map(|t| NewTask {
            task_type: "count".into(),
            ..t
        })
        .collect();
    for chunk in tasks.chunks(2_000) {
        app.store().enqueue(chunk).await.unwrap();
    }
    eventually(
        "10 000 tasks to succeed",
        Duration::from_secs(120),
        || async {
            let done: i64 = app
                .scalar("SELECT count(*) FROM tasks WHERE status = 'succeeded'")
                .await;
            (done == TASKS as i64).then_some(())
        },
    )
    .await;
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), TASKS);
    assert!(runs.values().all(|&n| n == 1), "some task ran twice");
    let (a, b) = (*first.lock().unwrap(), *second.lock().unwrap());
    println!("daemon 1 ran {a} tasks, daemon 2 ran {b}");
    assert!(
        a > 0 && b > 0 && a + b == TASKS as u32,
        "both daemons took part ({a} + {b})"
    );
    app.stop().await;
    let _ = other.await;
}

#[tokio::test]
async fn terminated_connections_are_reopened_and_listen_resumes() {
    // A one-minute poll: after the outage only a working LISTEN wakes the daemon in time.
    let app = TestApp::spawn_custom(
        |s| s.poll_interval = Duration::from_secs(60),
        |c| c.default_registry(),
    )
    .await;
    app.store().enqueue(&noop_tasks(3_000, 1)).await.unwrap();
    eventually("the first tasks", Duration::from_secs(30), || async {
        let done: i64 = app
            .scalar("SELECT count(*) FROM tasks WHERE status = 'succeeded'")
            .await;
        (done > 0).then_some(())
    })
    .await;
    let killer = campus_adapters::pg::connect(&app.db_url, 1).await.unwrap();
    let terminated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()) t",
    )
    .fetch_one(&killer)
    .await
    .unwrap();
    assert!(
        terminated > 1,
        "the daemon's connections were terminated ({terminated})"
    );
    eventually(
        "every task after the outage",
        Duration::from_secs(60),
        || async {
            let left: i64 = app
                .scalar("SELECT count(*) FROM tasks WHERE status <> 'succeeded'")
                .await;
            (left == 0).then_some(())
        },
    )
    .await;
    // New work is picked up by a NOTIFY on the re-established LISTEN (polling would take 60 s).
    app.store()
        .append(&[NewEvent {
            event_type: "InstitutionCreated".into(),
            aggregate_type: "Institution".into(),
            aggregate_id: 1,
            institution_id: None,
            payload: "{}".into(),
            correlation_id: Some("after-outage".into()),
        }])
        .await
        .unwrap();
    eventually(
        "the event after the outage to be dispatched",
        Duration::from_secs(15),
        || async {
            let n: i64 = app
                .scalar("SELECT count(*) FROM tasks WHERE correlation_id = 'after-outage'")
                .await;
            (n == 1).then_some(())
        },
    )
    .await;
    killer.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_smtp_outage_delays_every_email_but_sends_each_once() {
    let mut app = TestApp::spawn_custom(
        |s| {
            s.retry_base = Duration::from_millis(300);
            s.retry_cap = Duration::from_secs(2);
            s.max_attempts = 20;
        },
        |c| c.default_registry(),
    )
    .await;
    app.create_institution("Outage College", "academic@outage.test", "academic-pass")
        .await;
    let academic = app.login("academic@outage.test", "academic-pass").await;
    let mut emails = vec!["academic@outage.test".to_string()];
    for i in 0..4 {
        let email = format!("student{i}@outage.test");
        let r = app
            .post(
                "/academic/students",
                Some(&academic),
                json!({"name": format!("Student {i}"), "email": email}),
            )
            .await;
        assert_eq!(r.status, 201);
        emails.push(email);
    }

    app.smtp.stop().await;
    for email in &emails {
        assert_eq!(
            app.post("/auth/reset-password-token", None, json!({"email": email}))
                .await
                .status,
            202
        );
    }
    eventually("every e-mail task to fail at least once", Duration::from_secs(20), || async {
        let failing: i64 = app
            .scalar("SELECT count(*) FROM tasks WHERE task_type = 'send_reset_password_email' AND jsonb_array_length(errors) > 0")
            .await;
        (failing == emails.len() as i64).then_some(())
    })
    .await;
    assert!(app.smtp.messages().is_empty());
    app.smtp.restart().await;

    for email in &emails {
        app.smtp.wait_for_messages(email, 1).await;
    }
    app.wait_for_idle().await;
    for email in &emails {
        assert_eq!(
            app.smtp.messages_to(email).len(),
            1,
            "exactly one e-mail to {email}"
        );
    }
    let ok: i64 = app
        .scalar("SELECT count(*) FROM tasks WHERE task_type = 'send_reset_password_email' AND status = 'succeeded' AND attempt > 1")
        .await;
    assert_eq!(ok, emails.len() as i64);
    app.stop().await;
}

struct Fragile(Arc<AtomicBool>);

#[async_trait]
impl TaskHandler for Fragile {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        if self.0.load(Ordering::SeqCst) {
            Err(TaskError::permanent("the printer is on fire"))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn operators_reprocess_events_and_tasks_through_the_api() {
    let broken = Arc::new(AtomicBool::new(true));
    let fragile = Fragile(broken.clone());
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@campus.test".into());
            s.admin_password = Some("root-password".into());
        },
        move |c| {
            c.default_registry()
                .on_event("ReportRequested", "print_report", "print_report")
                .task("print_report", fragile)
        },
    )
    .await;
    let adm = app.login("root@campus.test", "root-password").await;
    let (inst_a, _) = app
        .create_institution("A", "a@ops.test", "password-a")
        .await;
    app.create_institution("B", "b@ops.test", "password-b")
        .await;
    let academic_a = app.login("a@ops.test", "password-a").await;
    let academic_b = app.login("b@ops.test", "password-b").await;

    let inst = campus_core::ids::InstitutionId(uuid::Uuid::parse_str(&inst_a).unwrap().as_u128());
    let event = NewEvent {
        event_type: "ReportRequested".into(),
        aggregate_type: "Report".into(),
        aggregate_id: 7,
        institution_id: Some(inst),
        payload: r#"{"report":"grades"}"#.into(),
        correlation_id: None,
    };
    let event_id =
        uuid::Uuid::from_u128(app.store().append(&[event.clone(), event]).await.unwrap()[0].0);
    app.wait_for_idle().await;
    let dead: Vec<(uuid::Uuid, serde_json::Value)> =
        sqlx::query_as("SELECT id, errors FROM tasks WHERE task_type = 'print_report' AND status = 'dead' ORDER BY id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(dead.len(), 2);
    let task_id = dead[0].0;

    // Only operators of the right scope may reprocess.
    let path = format!("/adm/tasks/{task_id}/reprocess");
    assert_eq!(app.post(&path, None, json!({})).await.status, 401);
    let rows = || async {
        (
            app.scalar::<i64>("SELECT count(*) FROM domain_events")
                .await,
            app.scalar::<i64>("SELECT count(*) FROM tasks").await,
        )
    };
    let before = rows().await;
    let refused = app.post(&path, Some(&academic_b), json!({})).await.status;
    assert_eq!(
        (refused, rows().await),
        (404, before),
        "B cannot see A's task, and its refused reprocess wrote no row"
    );
    broken.store(false, Ordering::SeqCst);
    let copy = app.post(&path, Some(&academic_a), json!({})).await;
    assert_eq!(copy.status, 201, "{copy:?}");
    let copy_id = copy.body["id"].as_str().unwrap().to_string();
    app.wait_for_idle().await;
    let (status, from): (String, uuid::Uuid) =
        sqlx::query_as("SELECT status, reprocessed_from FROM tasks WHERE id = $1::uuid")
            .bind(&copy_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), from), ("succeeded", task_id));
    let (original_status, original_errors): (String, serde_json::Value) =
        sqlx::query_as("SELECT status, errors FROM tasks WHERE id = $1")
            .bind(task_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (original_status.as_str(), &original_errors),
        ("dead", &dead[0].1),
        "the original is untouched"
    );

    // Bulk of a status that cannot be reprocessed: refused, and nothing is copied (the
    // second dead task would be, were the status ignored).
    let before = rows().await;
    let bad = app
        .post(
            "/adm/tasks/reprocess",
            Some(&adm),
            json!({"task_type": "print_report", "status": "running"}),
        )
        .await;
    assert_eq!(
        (bad.status, rows().await),
        (400, before),
        "a refused bulk reprocess wrote no row: {bad:?}"
    );

    // Bulk of the dead ones: only the second task is copied; the first one's copy already
    // succeeded, so a reprocess already fixed it.
    let bulk = app
        .post(
            "/adm/tasks/reprocess",
            Some(&adm),
            json!({"task_type": "print_report", "status": "dead"}),
        )
        .await;
    assert_eq!(
        (bulk.status, bulk.body["copies"].as_u64()),
        (200, Some(1)),
        "{bulk:?}"
    );
    let copied: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT reprocessed_from FROM tasks WHERE task_type = 'print_report' AND reprocessed_from IS NOT NULL ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(copied, [task_id, dead[1].0], "one copy of each dead task");
    app.wait_for_idle().await;

    // An event copy fans out again.
    let ev = app
        .post(
            &format!("/adm/events/{event_id}/reprocess"),
            Some(&adm),
            json!({}),
        )
        .await;
    assert_eq!(ev.status, 201, "{ev:?}");
    app.wait_for_idle().await;
    let fanned: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM tasks WHERE event_id = '{}' AND status = 'succeeded'",
            ev.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(fanned, 1);
    let before = rows().await;
    let other_tenant = app
        .post(
            &format!("/adm/events/{event_id}/reprocess"),
            Some(&academic_b),
            json!({}),
        )
        .await;
    assert_eq!(
        (other_tenant.status, rows().await),
        (404, before),
        "B cannot see A's event, and its refused reprocess wrote no row"
    );
    app.stop().await;
}

/// The PostgreSQL backend holding this database's maintenance-leader lock, if any.
async fn leader_pid(pool: &sqlx::PgPool) -> Option<i32> {
    // The lock key 0x6361_6d70_7573 appears as classid (high 32 bits) and objid (low 32 bits).
    sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 25441 AND objid = 1836086643
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn leadership_moves_when_the_leader_dies() {
    let app = TestApp::spawn().await;
    let second = app.campus.daemon(app.campus.default_registry());
    let second = tokio::spawn(second.run(app.shutdown_signal()));
    let first_leader = eventually("a maintenance leader", Duration::from_secs(15), || {
        leader_pid(&app.pool)
    })
    .await;

    // The leader's connection dies (as when its process is killed).
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first_leader)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(killed);
    let alive = |pid: i32| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
            )
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    eventually(
        "the old leader's backend to exit",
        Duration::from_secs(15),
        || async { (!alive(first_leader).await).then_some(()) },
    )
    .await;
    // Whoever holds the lock now (no filter on who): a live backend, not the old one.
    let next_leader = eventually("a leader again", Duration::from_secs(15), || {
        leader_pid(&app.pool)
    })
    .await;
    assert_ne!(next_leader, first_leader, "the lock moved");
    assert!(alive(next_leader).await, "the new leader is a live backend");

    // The new leader does the leader's work: a task whose holder vanished is rescued.
    sqlx::query(
        "INSERT INTO tasks (id, lineage_id, task_type, payload, status, attempt, locked_by, locked_until, started_at)
         SELECT u, u, 'ghost', '{}', 'running', 1, 'vanished-worker', now() - interval '1 second', now()
         FROM gen_random_uuid() AS u",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let errors: serde_json::Value = eventually(
        "the orphaned task to be rescued",
        Duration::from_secs(15),
        || async {
            sqlx::query_scalar::<_, serde_json::Value>(
                "SELECT errors FROM tasks WHERE task_type = 'ghost' AND status <> 'running'",
            )
            .fetch_optional(&app.pool)
            .await
            .unwrap()
        },
    )
    .await;
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("vanished-worker"),
        "{errors}"
    );
    app.stop().await;
    let _ = second.await;
}
