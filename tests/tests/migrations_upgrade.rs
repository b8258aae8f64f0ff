//! Upgrades of databases that already hold data: a database left at each earlier migration
//! (applied one by one, each followed by the rows a Campus of that version would have
//! written) upgrades to the current schema at start-up, keeps every row, satisfies the
//! constraints added later (the running-iff-locked CHECK among them), and the app works on
//! the old rows. Readiness reports a database whose migrations are not all applied.

use campus_adapters::pg::testing::{server_url, with_database};
use campus_adapters::pg::{connect, migrations_applied, MIGRATOR};
use campus_tests::{eventually, TestApp};
use serde_json::json;
use sqlx::migrate::Migrate;
use sqlx::Connection;
use std::time::Duration;

const INST: &str = "01900000-0000-7000-8000-000000000001";
/// An institution created just before the upgrade, whose demo data was not seeded yet.
const NEW_INST: &str = "01900000-0000-7000-8000-000000000002";
const ACADEMIC: &str = "01900000-0000-7000-8000-0000000000a1";
const TEACHER: &str = "01900000-0000-7000-8000-0000000000a2";
const STUDENT: &str = "01900000-0000-7000-8000-0000000000a3";
const ADM: &str = "01900000-0000-7000-8000-0000000000a4";
const NEW_ACADEMIC: &str = "01900000-0000-7000-8000-0000000000a5";
/// An Argon2id hash as an older version stored it (the password itself is never needed:
/// the tests set passwords through the e-mailed reset link).
const OLD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$b2xkLXNhbHQtb2xkLXNhbHQ$3MhxQ0mK3Yd3QEzc3yXv8mZ2wM0bN4gQ0Xx1mS2yV5c";

/// What a Campus at migration `version` would have written; `None` for a migration without
/// new tables to fill.
fn rows_after(version: i64) -> Option<String> {
    match version {
        1 => Some(format!(
            "INSERT INTO institutions (id, name, created_at) VALUES
                ('{INST}', 'Old College', now() - interval '400 days'),
                ('{NEW_INST}', 'Fresh College', now() - interval '1 minute');
             INSERT INTO users (id, institution_id, role, name, email, password_hash, created_at) VALUES
                ('{ACADEMIC}', '{INST}', 'academic', 'Old Academic', 'academic@old.test', '{OLD_HASH}', now() - interval '400 days'),
                ('{TEACHER}', '{INST}', 'teacher', 'Old Teacher', 'teacher@old.test', '{OLD_HASH}', now() - interval '300 days'),
                ('{STUDENT}', '{INST}', 'student', 'Old Student', 'student@old.test', '{OLD_HASH}', now() - interval '300 days'),
                ('{ADM}', NULL, 'adm', 'Old Adm', 'adm@old.test', '{OLD_HASH}', now() - interval '400 days'),
                ('{NEW_ACADEMIC}', '{NEW_INST}', 'academic', 'Fresh Academic', 'academic@fresh.test', '{OLD_HASH}', now() - interval '1 minute');
             INSERT INTO reset_password_tokens (id, user_id, token_hash, expires_at, used_at, created_at) VALUES
                (gen_random_uuid(), '{ACADEMIC}', 'old-used-token-hash', now() - interval '99 days', now() - interval '100 days', now() - interval '100 days'),
                (gen_random_uuid(), '{STUDENT}', 'old-expired-token-hash', now() - interval '10 days', NULL, now() - interval '11 days');
             INSERT INTO disciplines (id, institution_id, name) VALUES
                ('01900000-0000-7000-8000-0000000000d1', '{INST}', 'Compilers');
             INSERT INTO classes (id, institution_id, discipline_id, teacher_id, period) VALUES
                ('01900000-0000-7000-8000-0000000000c1', '{INST}', '01900000-0000-7000-8000-0000000000d1', '{TEACHER}', '2025.2');
             INSERT INTO enrollments (class_id, student_id, institution_id, n1, n2) VALUES
                ('01900000-0000-7000-8000-0000000000c1', '{STUDENT}', '{INST}', 7.5, 9.0);
             INSERT INTO notifications (id, institution_id, user_id, kind, message, dedup_key, read_at) VALUES
                (gen_random_uuid(), '{INST}', '{STUDENT}', 'grade_note_added', 'Compilers (2025.2): N1 = 7.5', 'task:old-1', now() - interval '1 day'),
                (gen_random_uuid(), '{INST}', '{STUDENT}', 'grade_note_added', 'Compilers (2025.2): N2 = 9', 'task:old-2', NULL);
             INSERT INTO demo_seeds (institution_id, task_id) VALUES ('{INST}', gen_random_uuid());
             INSERT INTO sent_emails (lineage_id, message_id, recipient) VALUES
                (gen_random_uuid(), '<reset-old@campus>', 'academic@old.test');
             INSERT INTO settings (key, value) VALUES ('jwt_secret', 'an-old-secret-of-enough-length');"
        )),
        2 => Some(format!(
            "INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, institution_id, payload, correlation_id, status, attempts, errors, occurred_at, dispatched_at) VALUES
                ('01900000-0000-7000-8000-0000000000e1', 'InstitutionCreated', 'Institution', '{INST}', '{INST}',
                 '{{\"institution_id\":\"{INST}\",\"name\":\"Old College\",\"academic_id\":\"{ACADEMIC}\"}}', 'old-1', 'dispatched', 1, '[]', now() - interval '400 days', now() - interval '400 days'),
                ('01900000-0000-7000-8000-0000000000e2', 'ReportRequested', 'Report', gen_random_uuid(), '{INST}',
                 '{{\"report\":\"grades\"}}', 'old-2', 'dead', 5, '[{{\"at\":\"2025-01-01T00:00:00Z\",\"attempt\":5,\"message\":\"no handler\"}}]', now() - interval '30 days', NULL),
                ('01900000-0000-7000-8000-0000000000e3', 'InstitutionCreated', 'Institution', '{NEW_INST}', '{NEW_INST}',
                 '{{\"institution_id\":\"{NEW_INST}\",\"name\":\"Fresh College\",\"academic_id\":\"{NEW_ACADEMIC}\"}}', 'old-3', 'pending', 0, '[]', now() - interval '1 minute', NULL);
             INSERT INTO tasks (id, task_type, handler, payload, institution_id, event_id, correlation_id, lineage_id, status, attempt, max_attempts, run_at, locked_by, locked_until, errors, created_at, started_at, finished_at, duration_ms) VALUES
                ('01900000-0000-7000-8000-0000000000f1', 'seed_demo_data', 'seed_demo_data', '{{\"institution_id\":\"{INST}\",\"name\":\"Old College\",\"academic_id\":\"{ACADEMIC}\"}}', '{INST}', '01900000-0000-7000-8000-0000000000e1', 'old-1',
                 '01900000-0000-7000-8000-0000000000f1', 'succeeded', 1, 5, now() - interval '400 days', NULL, NULL, '[]', now() - interval '400 days', now() - interval '400 days', now() - interval '400 days', 42.0),
                ('01900000-0000-7000-8000-0000000000f2', 'legacy_report', NULL, '{{}}', '{INST}', NULL, 'old-4',
                 '01900000-0000-7000-8000-0000000000f2', 'dead', 5, 5, now() - interval '20 days', NULL, NULL, '[{{\"at\":\"2025-01-01T00:00:00Z\",\"attempt\":5,\"message\":\"boom\"}}]', now() - interval '20 days', now() - interval '20 days', now() - interval '20 days', 3.0),
                ('01900000-0000-7000-8000-0000000000f3', 'legacy_report', NULL, '{{}}', '{INST}', NULL, 'old-5',
                 '01900000-0000-7000-8000-0000000000f3', 'cancelled', 0, 5, now() - interval '20 days', NULL, NULL, '[]', now() - interval '20 days', NULL, now() - interval '19 days', NULL),
                ('01900000-0000-7000-8000-0000000000f4', 'legacy_report', NULL, '{{}}', '{INST}', NULL, 'old-6',
                 '01900000-0000-7000-8000-0000000000f4', 'retrying', 2, 5, now() + interval '1 hour', NULL, NULL, '[{{\"at\":\"2025-01-01T00:00:00Z\",\"attempt\":2,\"message\":\"later\"}}]', now() - interval '2 hours', now() - interval '1 hour', NULL, NULL),
                -- claimed by a daemon that died before the upgrade: its lease expired
                ('01900000-0000-7000-8000-0000000000f5', 'legacy_report', NULL, '{{}}', '{INST}', NULL, 'old-7',
                 '01900000-0000-7000-8000-0000000000f5', 'running', 1, 5, now() - interval '5 minutes', 'old-host:42:beef', now() - interval '4 minutes', '[]', now() - interval '5 minutes', now() - interval '5 minutes', NULL, NULL);"
        )),
        3 => Some(format!(
            "INSERT INTO operator_sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES
                ('old-session-hash', '{ADM}', 'old-csrf', now() - interval '1 hour', now() + interval '7 hours'),
                ('expired-session-hash', '{ACADEMIC}', 'old-csrf-2', now() - interval '2 days', now() - interval '1 day');"
        )),
        _ => None,
    }
}

const TABLES: &[&str] = &[
    "institutions",
    "users",
    "reset_password_tokens",
    "disciplines",
    "classes",
    "enrollments",
    "notifications",
    "demo_seeds",
    "sent_emails",
    "settings",
    "domain_events",
    "tasks",
    "operator_sessions",
];

/// Row counts of the tables that exist.
async fn counts(pool: &sqlx::PgPool) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in TABLES {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(pool)
            .await
            .unwrap();
        if exists {
            let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(pool)
                .await
                .unwrap();
            out.push((table.to_string(), n));
        }
    }
    out
}

/// A new database with the first `applied` migrations, each followed by its rows.
async fn database_at(applied: usize) -> String {
    let name = format!("campus_e2e_upgrade_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&server_url(), 1).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let url = with_database(&server_url(), &name);
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    conn.ensure_migrations_table().await.unwrap();
    for migration in MIGRATOR.iter().take(applied) {
        conn.apply(migration)
            .await
            .unwrap_or_else(|e| panic!("migration {}: {e}", migration.version));
        if let Some(rows) = rows_after(migration.version) {
            sqlx::raw_sql(&rows)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("rows after migration {}: {e}", migration.version));
        }
    }
    conn.close().await.unwrap();
    url
}

#[tokio::test]
async fn a_database_with_rows_at_each_earlier_migration_upgrades_and_works() {
    let total = MIGRATOR.iter().count();
    assert!(total >= 4, "the migrations are embedded");
    for applied in 1..total {
        let version = MIGRATOR.iter().nth(applied - 1).unwrap().version;
        let url = database_at(applied).await;
        let before = {
            let pool = connect(&url, 1).await.unwrap();
            assert!(!migrations_applied(&pool).await.unwrap());
            let c = counts(&pool).await;
            pool.close().await;
            c
        };

        // Start-up upgrades it (Campus::start migrates), then API and daemon run on it.
        println!("upgrading a database left at migration {version}, with rows");
        let app = TestApp::spawn_on(&url, |_| {}, |c| c.default_registry()).await;
        let at = format!("(database at migration {version})");
        assert!(migrations_applied(&app.pool).await.unwrap(), "{at}");
        let ready = app.get("/health/ready", None).await;
        assert_eq!(ready.status, 200, "{at} {ready:?}");
        let after = counts(&app.pool).await;
        for (table, n) in &before {
            let now = after.iter().find(|(t, _)| t == table).unwrap().1;
            // The daemon may add rows (demo data, new tasks); it never loses any.
            assert!(now >= *n, "{at} {table}: {n} rows before, {now} after");
        }
        let violating: i64 = app
            .scalar(
                "SELECT count(*) FROM tasks WHERE (status = 'running') <> (locked_by IS NOT NULL)",
            )
            .await;
        assert_eq!(violating, 0, "{at}");
        let validated: bool = app
            .scalar("SELECT convalidated FROM pg_constraint WHERE conname = 'tasks_locked_while_running'")
            .await;
        assert!(validated, "{at} the CHECK holds on the old rows");
        let refused = sqlx::query(
            "INSERT INTO tasks (id, lineage_id, task_type, payload, status, locked_by)
             SELECT u, u, 'bad', '{}', 'succeeded', 'someone' FROM gen_random_uuid() AS u",
        )
        .execute(&app.pool)
        .await
        .expect_err("a finished task that is still locked");
        assert_eq!(
            refused
                .as_database_error()
                .and_then(|e| e.code())
                .as_deref(),
            Some("23514"),
            "{at} {refused}"
        );

        // Old users keep working: the old Academic sets a password through the e-mailed
        // link (an old row, a new event, a task run by the daemon) and logs in.
        app.set_password_by_email("academic@old.test", "new-password-1")
            .await;
        let token = app.login("academic@old.test", "new-password-1").await;
        let students = app.get("/academic/students", Some(&token)).await;
        assert_eq!(students.status, 200, "{at} {students:?}");
        assert!(
            students.body.to_string().contains("student@old.test"),
            "{at} {students:?}"
        );
        if applied >= 2 {
            // The event left pending before the upgrade is dispatched: the fresh
            // institution's demo data gets seeded.
            eventually(
                &format!("{at} the old pending event's demo data"),
                Duration::from_secs(30),
                || async {
                    let n: i64 = app
                        .scalar(&format!(
                            "SELECT count(*) FROM demo_seeds WHERE institution_id = '{NEW_INST}'"
                        ))
                        .await;
                    (n == 1).then_some(())
                },
            )
            .await;
            // The task a dead daemon held is rescued (its lease expired long ago).
            let status: String = eventually(
                &format!("{at} the stranded task to be rescued"),
                Duration::from_secs(30),
                || async {
                    let s: String = app
                        .scalar("SELECT status FROM tasks WHERE correlation_id = 'old-7'")
                        .await;
                    (s != "running").then_some(s)
                },
            )
            .await;
            assert_ne!(status, "running");
            let errors: String = app
                .scalar("SELECT errors::text FROM tasks WHERE correlation_id = 'old-7'")
                .await;
            assert!(errors.contains("old-host:42:beef"), "{at} {errors}");
            // The old rows' payloads were indexed by the upgrade (0019), and a text search
            // finds the old event.
            let indexed: i64 = app
                .scalar("SELECT count(*) FROM event_texts WHERE id = '01900000-0000-7000-8000-0000000000e1'")
                .await;
            assert_eq!(indexed, 1, "{at}");
            let found = app
                .get(
                    "/adm/events?q=Old%20College&event_type=InstitutionCreated",
                    Some(&token),
                )
                .await;
            assert_eq!(found.status, 200, "{at} {found:?}");
            let ids: Vec<&str> = found.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, ["01900000-0000-7000-8000-0000000000e1"], "{at}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn readiness_reports_missing_migrations() {
    let app = TestApp::spawn().await;
    let ready = app.get("/health/ready", None).await;
    assert_eq!((ready.status, &ready.body), (200, &json!({"status": "ok"})));

    // The database's record says the newest migration is not applied.
    let newest = MIGRATOR.iter().last().unwrap().version;
    let removed = sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1")
        .bind(newest)
        .execute(&app.pool)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(removed, 1);
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, 503, "{ready:?}");
    assert_eq!(ready.body["code"], "not_ready");
    assert!(
        ready.body["message"]
            .as_str()
            .unwrap()
            .contains("migration"),
        "{ready:?}"
    );
    // Liveness is not readiness: the process still answers.
    assert_eq!(app.get("/health/live", None).await.status, 200);
    app.stop().await;
}
