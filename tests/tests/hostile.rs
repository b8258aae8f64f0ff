//! Hostile input: each finding of the security review (#16) as the attack an outsider or a
//! user would try, and the refusal expected, with every table's row count unchanged after
//! each refused request (but the payload search index's, which the daemon writes meanwhile).

use campus::web::limits::RateLimits;
use campus::Campus;
use campus_tests::extra::WebClient;
use campus_tests::{eventually, reset_link, token_of, wait_for_port, TestApp, TEST_SECRET};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Rows of every table of the schema, except the payload search index (`*_texts`,
/// `*_texts_pending`): the daemon's leader writes it in the background, whatever a request does.
async fn row_counts(app: &TestApp) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'
           AND tablename !~ '_texts(_pending)?$' ORDER BY 1",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut counts = BTreeMap::new();
    for t in tables {
        let n: i64 = app.scalar(&format!("SELECT count(*) FROM \"{t}\"")).await;
        counts.insert(t, n);
    }
    counts
}

/// A raw request: status, `Retry-After`, JSON body.
async fn send(req: reqwest::RequestBuilder) -> (u16, Option<u64>, Value) {
    let r = req.send().await.expect("a response");
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let text = r.text().await.unwrap_or_default();
    (
        status,
        retry,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Option<u64>, Value) {
    send(
        app.http
            .post(format!("{}/auth/login", app.base))
            .json(&json!({"email": email, "password": password})),
    )
    .await
}

fn limits(raw: &str) -> RateLimits {
    RateLimits::parse(raw).unwrap()
}

/// 1. The database holds no key; processes with different keys refuse to share it; a
/// required secret is required.
#[tokio::test]
async fn keys_never_live_in_the_database_and_mismatched_processes_refuse_to_start() {
    let app = TestApp::spawn_custom(|s| s.jwt_secret = None, |c| c.default_registry()).await;
    let key = std::fs::read_to_string(app.campus.settings.data_dir.join("master.key"))
        .expect("a generated key file");
    let settings: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM settings")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(!settings.is_empty(), "the key's fingerprint is recorded");
    for (k, v) in &settings {
        assert!(k.starts_with("key_fingerprint:"), "unexpected setting {k}");
        assert!(
            !v.contains(key.trim()) && !key.contains(v.as_str()),
            "{k} reveals the key"
        );
    }

    // A process with another secret (another data directory, no CAMPUS_JWT_SECRET).
    let other_dir = std::env::temp_dir().join(format!("campus-other-{}", uuid::Uuid::new_v4()));
    let mut settings = app.campus.settings.clone();
    settings.data_dir = other_dir.clone();
    let err = Campus::start(settings).await.err().expect("refused");
    assert!(err.contains("CAMPUS_JWT_SECRET"), "{err}");
    std::fs::remove_dir_all(&other_dir).unwrap();
    // The same key id with another secret.
    let kid = app.campus.state.jwt.kid().to_string();
    let mut settings = app.campus.settings.clone();
    settings.jwt_secret = Some(format!("{kid}:another-secret-entirely-0123"));
    let err = Campus::start(settings).await.err().expect("refused");
    assert!(
        err.contains(&kid) && err.contains("CAMPUS_JWT_SECRET"),
        "{err}"
    );
    // A rotation that keeps the old key after the new one is accepted.
    let mut settings = app.campus.settings.clone();
    settings.jwt_secret = Some(format!(
        "next:the-next-secret-0123456789,{kid}:{}",
        key.trim()
    ));
    assert!(Campus::start(settings).await.is_ok());
    // CAMPUS_REQUIRE_SECRET without a secret.
    let mut settings = app.campus.settings.clone();
    settings.require_secret = true;
    let err = Campus::start(settings).await.err().expect("refused");
    assert!(err.contains("CAMPUS_REQUIRE_SECRET"), "{err}");
    app.stop().await;
}

/// 2. Online guessing, reset-e-mail bombing and mass sign-ups meet 429 with Retry-After,
/// counted per address and per account; a forged X-Forwarded-For changes nothing.
#[tokio::test]
async fn guessing_bombing_and_mass_signups_are_rate_limited() {
    let app = TestApp::spawn_custom(
        |s| {
            s.rate_limits = limits(
                "login-account=3/1h,login-ip=5/1h,reset-account=2/1h,reset-ip=100/1h,signup-ip=2/1h",
            );
        },
        |c| c.default_registry(),
    )
    .await;
    app.create_institution("Target U", "ana@target.test", "right-password")
        .await;
    app.wait_for_idle().await;
    let before = row_counts(&app).await;

    for _ in 0..3 {
        assert_eq!(login(&app, "ana@target.test", "guess").await.0, 401);
    }
    let (status, retry, body) = login(&app, "ana@target.test", "right-password").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "rate_limited");
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After {retry:?}");
    // Another account from the same address, until the address's own limit (5).
    assert_eq!(login(&app, "bob@target.test", "guess").await.0, 401);
    assert_eq!(login(&app, "carl@target.test", "guess").await.0, 429);
    // Claiming to be someone else does not help: no proxy is trusted.
    let spoofed = send(
        app.http
            .post(format!("{}/auth/login", app.base))
            .header("x-forwarded-for", "198.51.100.77")
            .json(&json!({"email": "dan@target.test", "password": "guess"})),
    )
    .await;
    assert_eq!(spoofed.0, 429);
    assert_eq!(row_counts(&app).await, before);

    // Reset bombing of one account: two requests, then 429 (and the account got one link:
    // the cooldown holds even within the limit).
    let reset = || async {
        send(
            app.http
                .post(format!("{}/auth/reset-password-token", app.base))
                .json(&json!({"email": "ana@target.test"})),
        )
        .await
    };
    assert_eq!(reset().await.0, 202);
    assert_eq!(reset().await.0, 202);
    let refused = reset().await;
    assert_eq!(refused.0, 429, "{:?}", refused.2);
    assert!(refused.1.is_some());
    app.wait_for_idle().await;
    let tokens: i64 = app
        .scalar("SELECT count(*) FROM reset_password_tokens")
        .await;
    assert_eq!(tokens, 1, "one link per account per cooldown");
    assert_eq!(
        app.smtp.wait_for_messages("ana@target.test", 1).await.len(),
        1
    );

    // Mass sign-ups: the first institution above used one of the two.
    app.create_institution("Second", "b@second.test", "password-2")
        .await;
    app.wait_for_idle().await;
    let before = row_counts(&app).await;
    let third = send(app.http.post(format!("{}/institutions", app.base)).json(
        &json!({"name": "Third", "academic": {"name": "C", "email": "c@third.test", "password": "password-3"}}),
    ))
    .await;
    assert_eq!(third.0, 429);
    assert_eq!(row_counts(&app).await, before);
    app.stop().await;
}

/// 2. Windows are short in this test: a spent limit comes back (no long sleep: a wait on
/// the condition, bounded).
#[tokio::test]
async fn a_spent_limit_comes_back_after_its_window() {
    let app = TestApp::spawn_custom(
        |s| s.rate_limits = limits("login-ip=2/1s"),
        |c| c.default_registry(),
    )
    .await;
    assert_eq!(login(&app, "x@y.test", "guess-1").await.0, 401);
    assert_eq!(login(&app, "x@y.test", "guess-2").await.0, 401);
    assert_eq!(login(&app, "x@y.test", "guess-3").await.0, 429);
    eventually(
        "the login limit to refill",
        Duration::from_secs(5),
        || async { (login(&app, "x@y.test", "guess-4").await.0 == 401).then_some(()) },
    )
    .await;
    app.stop().await;
}

/// 2. The admin screen's log-in form is limited like the API's.
#[tokio::test]
async fn the_admin_login_form_is_rate_limited() {
    let app = TestApp::spawn_custom(
        |s| s.rate_limits = limits("login-account=2/1h"),
        |c| c.default_registry(),
    )
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (client, status) =
            WebClient::login(&app.base, "admin@campus.localhost", "guess-guess").await;
        statuses.push((status, client.retry_after.is_some()));
    }
    assert_eq!(statuses, [(401, false), (401, false), (429, true)]);
    app.stop().await;
}

/// 4. An admin read that would walk a big table is cancelled at the statement timeout
/// (503) instead of holding a connection; it writes nothing.
#[tokio::test]
async fn an_expensive_admin_filter_is_cancelled_at_its_timeout() {
    let app = TestApp::spawn_custom(
        |s| s.admin_query_timeout = Duration::from_millis(20),
        |c| c.default_registry(),
    )
    .await;
    // 300 000 dispatched events of another institution (none of them due).
    sqlx::query(
        "INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, institution_id, payload, status)
         SELECT gen_random_uuid(), 'Filler', 'Filler', gen_random_uuid(), NULL,
                jsonb_build_object('n', g, 'text', repeat('x', 200)), 'dispatched'
         FROM generate_series(1, 300000) g",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let adm = app.campus.state.accounts.clone();
    adm.ensure_adm("ops@hostile.test", "ops-password-1")
        .await
        .unwrap();
    let token = app.login("ops@hostile.test", "ops-password-1").await;
    let before = row_counts(&app).await;
    let (status, _, body) = send(
        app.http
            .get(format!("{}/adm/events?q=no-such-text-anywhere", app.base))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(row_counts(&app).await, before);
    // A cheap read still answers.
    let (status, _, _) = send(
        app.http
            .get(format!("{}/adm/events?limit=5", app.base))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// 5. A student cannot log in as a demo teacher of their institution: demo users have no
/// usable password unless the operator sets one.
#[tokio::test]
async fn demo_users_have_no_published_password() {
    let app = TestApp::spawn_custom(|s| s.demo_password = None, |c| c.default_registry()).await;
    app.create_institution("Demo U", "acad@demo-u.test", "academic-pass")
        .await;
    app.wait_for_idle().await;
    let teacher: String = app
        .scalar("SELECT email FROM users WHERE role = 'teacher' ORDER BY email LIMIT 1")
        .await;
    for guess in ["campus-demo", "", "campus-demo-test"] {
        assert_eq!(login(&app, &teacher, guess).await.0, 401, "{guess:?}");
    }
    let unusable: i64 = app
        .scalar("SELECT count(*) FROM users WHERE role IN ('teacher', 'student') AND password_hash NOT LIKE '!unusable:%'")
        .await;
    assert_eq!(unusable, 0);
    app.stop().await;
}

/// 6. A password reset ends what the old password gave: access tokens, admin sessions and
/// the other reset links.
#[tokio::test]
async fn a_reset_revokes_tokens_sessions_and_other_links() {
    let app = TestApp::spawn_custom(
        |s| s.reset_cooldown = Duration::ZERO,
        |c| c.default_registry(),
    )
    .await;
    app.create_institution("Revoke U", "acad@revoke.test", "old-password")
        .await;
    let token = app.login("acad@revoke.test", "old-password").await;
    assert_eq!(
        app.get("/academic/teachers", Some(&token)).await.status,
        200
    );
    let (session, _) = app
        .campus
        .state
        .sessions
        .open("acad@revoke.test", "old-password")
        .await
        .unwrap();
    for _ in 0..2 {
        let r = app
            .post(
                "/auth/reset-password-token",
                None,
                json!({"email": "acad@revoke.test"}),
            )
            .await;
        assert_eq!(r.status, 202);
    }
    let mails = app.smtp.wait_for_messages("acad@revoke.test", 2).await;
    let links: Vec<String> = mails.iter().map(|m| token_of(&reset_link(m))).collect();
    let r = app
        .post(
            "/auth/reset-password",
            None,
            json!({"token": links[0], "password": "new-password"}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    assert_eq!(
        app.get("/academic/teachers", Some(&token)).await.status,
        401
    );
    assert!(app
        .campus
        .state
        .sessions
        .find(&session)
        .await
        .unwrap()
        .is_none());
    let before = row_counts(&app).await;
    let r = app
        .post(
            "/auth/reset-password",
            None,
            json!({"token": links[1], "password": "attacker-password"}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(row_counts(&app).await, before);
    let fresh = app.login("acad@revoke.test", "new-password").await;
    assert_eq!(
        app.get("/academic/teachers", Some(&fresh)).await.status,
        200
    );
    app.stop().await;
}

/// 7. Two teachers' requests grading different exams of one student at the same moment:
/// no grade is lost.
#[tokio::test]
async fn concurrent_grades_of_one_student_are_all_kept() {
    let app = TestApp::spawn().await;
    app.create_institution("Grades U", "acad@grades.test", "academic-pass")
        .await;
    app.wait_for_idle().await;
    let rows: Vec<(String, uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT u.email, e.class_id, e.student_id FROM enrollments e
         JOIN classes c ON c.id = e.class_id JOIN users u ON u.id = c.teacher_id
         ORDER BY u.email, e.class_id, e.student_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let teacher = rows[0].0.clone();
    let token = app.login(&teacher, campus_tests::DEMO_PASSWORD).await;
    let pairs: Vec<_> = rows.iter().filter(|r| r.0 == teacher).collect();
    for round in 0..5 {
        let note = 1.0 + f64::from(round);
        let puts = pairs.iter().flat_map(|(_, class, student)| {
            ["N1", "N2", "N3"].map(|exam| {
                let path = format!("/teacher/classes/{class}/students/{student}/notes");
                let token = token.clone();
                let app = &app;
                async move {
                    app.put(&path, &token, json!({"exam": exam, "note": note}))
                        .await
                        .status
                }
            })
        });
        let statuses = futures::future::join_all(puts).await;
        assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
        let lost: i64 = app
            .scalar(&format!(
                "SELECT count(*) FROM enrollments e JOIN classes c ON c.id = e.class_id
                 JOIN users u ON u.id = c.teacher_id
                 WHERE u.email = '{teacher}'
                   AND (n1 IS DISTINCT FROM {note} OR n2 IS DISTINCT FROM {note} OR n3 IS DISTINCT FROM {note})"
            ))
            .await;
        assert_eq!(lost, 0, "round {round}: a grade was reverted");
    }
    app.stop().await;
}

/// 10. Markup and look-alike text are refused; the reset page cannot be framed, cached or
/// leak its token in a referrer.
#[tokio::test]
async fn phishing_text_and_header_injection_are_refused() {
    let app = TestApp::spawn().await;
    app.wait_for_idle().await;
    let before = row_counts(&app).await;
    for (name, email) in [
        ("Support\u{202E}moc.evil", "a@phish.test"),
        ("Ze\u{200B}ro", "b@phish.test"),
        ("Eve", "Eve <eve@phish.test>"),
        ("Eve", "eve@phish.test, boss@phish.test"),
    ] {
        let r = app
            .post(
                "/institutions",
                None,
                json!({"name": "Phish U", "academic": {"name": name, "email": email, "password": "password-1"}}),
            )
            .await;
        assert_eq!(r.status, 400, "{name:?} {email:?}: {r:?}");
    }
    assert_eq!(row_counts(&app).await, before);

    let page = app
        .http
        .get(format!("{}/reset-password?token=abc", app.base))
        .send()
        .await
        .unwrap();
    let h = page.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    app.stop().await;
}

/// 10. Slow clients: a connection that never finishes its headers is closed at the idle
/// timeout, and one address cannot hold more than its share of connections.
#[tokio::test]
async fn slow_and_greedy_connections_are_closed() {
    let app = TestApp::spawn_custom(
        |s| {
            s.idle_timeout = Duration::from_millis(500);
            s.max_connections_per_client = 3;
        },
        |c| c.default_registry(),
    )
    .await;
    let addr = app.campus.settings.addr;
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("the server closed the half-sent request");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");

    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Keep them busy enough not to be idle: one byte each.
        c.write_all(b"G").await.unwrap();
        held.push(c);
    }
    let mut fourth = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = tokio::time::timeout(Duration::from_secs(10), fourth.read(&mut buf))
        .await
        .expect("the fourth connection was closed at once");
    assert!(matches!(answer, Ok(0) | Err(_)), "{answer:?}");
    drop(held);
    eventually(
        "a connection slot to come back",
        Duration::from_secs(10),
        || async { (app.get("/health/live", None).await.status == 200).then_some(()) },
    )
    .await;
    app.stop().await;
}

/// 10. `campus serve` on a busy port exits at once with a message, instead of announcing
/// itself and running without an API.
#[tokio::test]
async fn serve_on_a_busy_port_fails_at_once() {
    let app = TestApp::spawn().await;
    let busy = app.campus.settings.addr;
    wait_for_port("the test app", busy.port(), Duration::from_secs(5)).await;
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(campus_tests::campus_binary())
            .arg("serve")
            .env("DATABASE_URL", &app.db_url)
            .env("CAMPUS_ADDR", busy.to_string())
            .env("CAMPUS_JWT_SECRET", TEST_SECRET)
            .env("CAMPUS_DATA_DIR", &app.campus.settings.data_dir)
            .env("RUST_LOG", "error")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("serve exits on its own")
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Campus is running"));
    app.stop().await;
}

/// 10. Two API processes starting together on a fresh database: one creates the default Adm
/// user and hands its password over; the other neither fails nor hands over a wrong one.
#[tokio::test]
async fn two_processes_creating_the_default_adm_agree() {
    let app = TestApp::spawn().await;
    sqlx::query("DELETE FROM users WHERE role = 'adm'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        Campus::start(app.campus.settings.clone()),
        Campus::start(app.campus.settings.clone())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (pa, pb) = tokio::join!(a.ensure_default_adm(), b.ensure_default_adm());
    let passwords: Vec<String> = [pa.unwrap(), pb.unwrap()].into_iter().flatten().collect();
    assert_eq!(passwords.len(), 1, "exactly one process created the user");
    assert_eq!(
        login(&app, campus::runtime::DEFAULT_ADM_EMAIL, &passwords[0])
            .await
            .0,
        200
    );
    app.stop().await;
}
