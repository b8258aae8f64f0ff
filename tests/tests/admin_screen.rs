//! The admin screen at /admin: in real headless Chromium (log in, filter to one institution's
//! dead tasks, open one, reprocess it and watch the copy succeed without a reload), and over
//! plain HTTP for sessions, CSRF and tenant scoping.

#[path = "admin_screen/accessibility.rs"]
mod accessibility;
#[path = "admin_screen/controls.rs"]
mod controls;

use campus_ports::EventStore;
use campus_tests::browser::Browser;
use campus_tests::eventually;
use campus_tests::extra::{cookie_value, hidden, report, row_ids, Tenants, WebClient};
use fantoccini::Locator;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The text of the first element matching `css`, read in one step (no stale handles).
async fn text_of(c: &fantoccini::Client, css: &str) -> Option<String> {
    let v = c
        .execute(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            vec![serde_json::json!(css)],
        )
        .await
        .ok()?;
    v.as_str().map(str::to_string)
}

#[tokio::test]
async fn an_operator_finds_a_dead_task_and_reprocesses_it_live() {
    let Tenants { app, broken, a, .. } = Tenants::spawn("screen.test").await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let wait = Duration::from_secs(20);

    // Log in: the screen sends us to the login page and back.
    c.goto(&format!("{}/admin", app.base)).await.unwrap();
    browser
        .log_in("root@screen.test", "root-password", wait)
        .await;
    // Live pages swap their content while the daemon works: read with one script call.
    let dead = eventually("the overview with dead tasks", wait, || async {
        text_of(c, "#task-counts a[data-status=dead] .n").await
    })
    .await;
    assert_eq!(dead, "3");
    browser.screenshot("admin-overview").await;
    // The overview says what the tables hold: every count by status, the failure rate,
    // nothing waiting, and the dead reports as the tasks needing attention.
    let page = c
        .execute(
            "const counts = id => Object.fromEntries([...document.querySelectorAll(id + ' a[data-status]')]
                 .map(a => [a.dataset.status, a.querySelector('.n').textContent]));
             const text = css => document.querySelector(css)?.textContent?.trim() ?? null;
             return {
               title: text('h1'),
               events: counts('#event-counts'),
               tasks: counts('#task-counts'),
               rate: text('#failure-rate'),
               oldest_event: text('#oldest-event'),
               oldest_task: text('#oldest-task'),
               by_type: [...document.querySelectorAll('#by-type tbody tr')].map(r =>
                 [...r.querySelectorAll('td')].map(td => td.textContent.trim())
                   .concat([r.querySelector('a')?.getAttribute('href') ?? ''])),
             };",
            vec![],
        )
        .await
        .unwrap();
    let by_status = |table: &'static str| {
        let pool = app.pool.clone();
        async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
                "SELECT status, count(*) FROM {table} GROUP BY status"
            ))
            .fetch_all(&pool)
            .await
            .unwrap();
            serde_json::Value::Object(
                rows.into_iter()
                    .map(|(s, n)| (s, serde_json::json!(n.to_string())))
                    .collect(),
            )
        }
    };
    assert_eq!(page["title"], "Overview", "{page}");
    assert_eq!(page["events"], by_status("domain_events").await, "{page}");
    assert_eq!(page["tasks"], by_status("tasks").await, "{page}");
    let (ok, dead): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'dead') FROM tasks",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        page["rate"],
        format!("{:.1}%", 100.0 * dead as f64 / (ok + dead) as f64),
        "{page}"
    );
    assert_eq!(
        (&page["oldest_event"], &page["oldest_task"]),
        (
            &serde_json::json!("nothing waiting"),
            &serde_json::json!("nothing waiting")
        )
    );
    assert_eq!(
        page["by_type"],
        serde_json::json!([[
            "print_report",
            "dead",
            "3",
            "/admin/tasks?task_type=print_report&status=dead"
        ]]),
        "{page}"
    );

    // Filter to institution A's dead tasks; the filters land in the URL.
    c.goto(&format!("{}/admin/tasks", app.base)).await.unwrap();
    c.find(Locator::Css("select[name=institution_id]"))
        .await
        .unwrap()
        .select_by_value(&a)
        .await
        .unwrap();
    c.find(Locator::Css("select[name=status]"))
        .await
        .unwrap()
        .select_by_value("dead")
        .await
        .unwrap();
    c.find(Locator::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let url = eventually("the filtered list's URL", wait, || async {
        let url = c.current_url().await.ok()?;
        url.query()
            .is_some_and(|q| q.contains("status=dead"))
            .then_some(url)
    })
    .await;
    assert!(
        url.as_str().contains(&format!("institution_id={a}")),
        "{url}"
    );
    let rows = c
        .execute(
            "return [...document.querySelectorAll('#tasks tbody tr')]
                 .map(r => [r.dataset.id, r.dataset.status, r.textContent]);",
            vec![],
        )
        .await
        .unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "institution A has two dead tasks: {rows:?}");
    for row in rows {
        assert_eq!(row[1], "dead");
        assert!(row[2].as_str().unwrap().contains("Alpha College"));
    }
    browser.screenshot("admin-task-list").await;

    // Open one.
    let task_id = rows[0][0].as_str().unwrap().to_string();
    c.find(Locator::Css(&format!(
        "#tasks tr[data-id='{task_id}'] td:nth-child(2) a"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("form#reprocess"))
        .await
        .expect("the task page with a reprocess button");
    let heading = text_of(c, "h1").await.unwrap();
    assert!(heading.contains(&task_id), "{heading}");
    let errors = text_of(c, "table.attempts").await.unwrap();
    assert!(errors.contains("printer on fire"), "{errors}");

    // Reprocess it; the copy appears and succeeds while the page stays loaded.
    broken.store(false, Ordering::SeqCst);
    c.execute(
        "window.campusMarker = 'same page';
         window.campusRefreshesBefore = Number(document.body.dataset.refreshes || 0);
         return true;",
        vec![],
    )
    .await
    .unwrap();
    c.find(Locator::Css("form#reprocess button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The form's answer may already show the copy succeeded (the daemon can run it between
    // the POST and the page it redirects to), so wait for both: the succeeded copy, and a
    // live update besides the form's answer (`refreshes` counts content swaps of either kind).
    let copy_id = eventually(
        "the copy listed as succeeded, and a live update after the form's answer",
        wait,
        || async {
            let found = c
                .execute(
                    "const r = document.querySelector('#copies tr[data-status=succeeded]');
                     const n = Number(document.body.dataset.refreshes || 0);
                     return r && n >= window.campusRefreshesBefore + 2 ? r.dataset.id : null;",
                    vec![],
                )
                .await
                .ok()?;
            found.as_str().map(str::to_string)
        },
    )
    .await;
    let marker = c
        .execute("return window.campusMarker || null;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, "same page", "the page was not reloaded");
    browser.screenshot("admin-task-reprocessed").await;
    let (from, status): (String, String) =
        sqlx::query_as("SELECT reprocessed_from::text, status FROM tasks WHERE id = $1::uuid")
            .bind(&copy_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (from.as_str(), status.as_str()),
        (task_id.as_str(), "succeeded")
    );
    let original: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1::uuid")
        .bind(&task_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(original, "dead", "the original never changes");

    // The back button returns to the filtered list.
    c.back().await.unwrap();
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("#tasks"))
        .await
        .unwrap();
    let selected = c
        .execute(
            "return document.querySelector('select[name=institution_id]').value;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(selected, a.as_str());

    // A text search walks the table, so live updates do not re-run it: the page says so and
    // stays as loaded while changes are announced (seen here by a listener of the test's own).
    c.goto(&format!("{}/admin/tasks?q=grades", app.base))
        .await
        .unwrap();
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("#tasks"))
        .await
        .unwrap();
    c.execute(
        "window.campusChanges = 0;
         const probe = new EventSource('/admin/live');
         probe.addEventListener('changed', () => window.campusChanges++);
         return true;",
        vec![],
    )
    .await
    .unwrap();
    app.store().append(&[report(&a, "grades")]).await.unwrap();
    let (changes, refreshes, title) =
        eventually("a change announced to the page", wait, || async {
            let v = c
                .execute(
                    "return [window.campusChanges, Number(document.body.dataset.refreshes || 0),
                         document.getElementById('live-dot').title];",
                    vec![],
                )
                .await
                .ok()?;
            let changes = v[0].as_u64()?;
            (changes > 0).then(|| {
                (
                    changes,
                    v[1].as_u64().unwrap(),
                    v[2].as_str().unwrap().to_string(),
                )
            })
        })
        .await;
    assert!(changes > 0);
    assert_eq!(refreshes, 0, "the search was not re-run");
    assert!(title.contains("pause"), "{title}");

    browser.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn sessions_csrf_and_scoping_hold_on_the_screen() {
    let Tenants { app, broken, a, b } = Tenants::spawn("screen.test").await;
    let dead_of = |inst: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT id::text FROM tasks WHERE status = 'dead' AND institution_id = $1::uuid ORDER BY id",
            )
            .bind(inst)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let a_dead = dead_of(a.clone()).await;
    let b_dead = dead_of(b.clone()).await;
    assert_eq!((a_dead.len(), b_dead.len()), (2, 1));

    // No session: pages send to the login page, keeping where they were going.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = anonymous
        .get(format!("{}/admin/tasks?status=dead", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert_eq!(
        r.headers()["location"],
        "/admin/login?next=%2Fadmin%2Ftasks%3Fstatus%3Ddead"
    );

    // Bad credentials and non-operators get no session.
    let (_, status) = WebClient::login(&app.base, "root@screen.test", "wrong-password").await;
    assert_eq!(status, 401);
    let academic_a = app.login("alpha@screen.test", "password-a").await;
    let student = app
        .post(
            "/academic/students",
            Some(&academic_a),
            serde_json::json!({"name": "S", "email": "s@web.test"}),
        )
        .await;
    assert_eq!(student.status, 201);
    app.set_password_by_email("s@web.test", "student-pass")
        .await;
    let (student, status) = WebClient::login(&app.base, "s@web.test", "student-pass").await;
    assert_eq!(status, 403);
    assert!(student.cookie.is_empty());

    // The session cookie is HttpOnly and SameSite; only its hash is stored.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{}/admin/login", app.base))
        .send()
        .await
        .unwrap();
    let login_csrf = cookie_value(&form, "campus_login_csrf").unwrap();
    let csrf = hidden(&form.text().await.unwrap(), "csrf");
    let resp = http
        .post(format!("{}/admin/login", app.base))
        .header("cookie", format!("campus_login_csrf={login_csrf}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "beta@screen.test"),
            ("password", "password-b"),
        ])
        .send()
        .await
        .unwrap();
    let set_cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("campus_session="))
        .unwrap();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let token = cookie_value(&resp, "campus_session").unwrap();
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operator_sessions WHERE token_hash = $1 OR csrf_token = $1",
    )
    .bind(&token)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0, "the token itself is never stored");
    // A login form without its CSRF cookie is refused.
    let forged = http
        .post(format!("{}/admin/login", app.base))
        .form(&[
            ("csrf", csrf.as_str()),
            ("email", "beta@screen.test"),
            ("password", "password-b"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 403);

    // Academic B sees only B, whatever the URL asks for.
    let (beta, status) = WebClient::login(&app.base, "beta@screen.test", "password-b").await;
    assert_eq!(status, 303);
    let (status, html) = beta.get("/admin/tasks?status=dead").await;
    assert_eq!(status, 200);
    assert_eq!(row_ids(&html), b_dead);
    let (_, html) = beta
        .get(&format!("/admin/tasks?status=dead&institution_id={a}"))
        .await;
    assert!(row_ids(&html).is_empty(), "B asked for A's tasks");
    assert_eq!(
        beta.get(&format!("/admin/tasks/{}", a_dead[0])).await.0,
        404
    );
    let (_, overview) = beta.get("/admin").await;
    assert!(overview.contains("Academic · Beta College"));
    assert!(!overview.contains("Alpha College"));

    // Reprocessing needs the session's CSRF token; without it nothing changes.
    let (_, page) = beta.get(&format!("/admin/tasks/{}", b_dead[0])).await;
    let csrf = hidden(&page, "csrf");
    let copies = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM tasks WHERE reprocessed_from IS NOT NULL",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let path = format!("/admin/tasks/{}/reprocess", b_dead[0]);
    assert_eq!(beta.post(&path, &[]).await.0, 403);
    assert_eq!(beta.post(&path, &[("csrf", "forged")]).await.0, 403);
    assert_eq!(copies().await, 0, "a refused form changes nothing");
    // B cannot reprocess A's task even with a valid token.
    let a_path = format!("/admin/tasks/{}/reprocess", a_dead[0]);
    assert_eq!(beta.post(&a_path, &[("csrf", &csrf)]).await.0, 404);
    assert_eq!(copies().await, 0);

    // Bulk: needs the confirmation, then copies B's dead tasks only, shown by correlation.
    broken.store(false, Ordering::SeqCst);
    let bulk = [("csrf", csrf.as_str()), ("limit", "50")];
    assert_eq!(beta.post("/admin/tasks/reprocess", &bulk).await.0, 400);
    assert_eq!(copies().await, 0);
    let r = beta
        .http
        .post(format!("{}/admin/tasks/reprocess", app.base))
        .header("cookie", &beta.cookie)
        .form(&[
            ("csrf", csrf.as_str()),
            ("limit", "50"),
            ("confirm", "yes"),
            ("institution_id", a.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "B asked to copy A's tasks");
    let bulk_copy = |q: &'static str| {
        let request = beta
            .http
            .post(format!("{}/admin/tasks/reprocess", app.base))
            .header("cookie", &beta.cookie)
            .form(&[
                ("csrf", csrf.as_str()),
                ("limit", "50"),
                ("confirm", "yes"),
                ("q", q),
            ]);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 303);
            r.headers()["location"].to_str().unwrap().to_string()
        }
    };
    // The list's filters narrow the bulk copy too: B has no dead "attendance" report.
    let location = bulk_copy("attendance").await;
    assert!(location.ends_with("&copies=0"), "{location}");
    let location = bulk_copy("grades").await;
    assert!(location.ends_with("&copies=1"), "{location}");
    let (_, listed) = beta.get(&location).await;
    assert!(listed.contains("1 copies created"));
    assert_eq!(row_ids(&listed).len(), 1);
    let copied_from: Vec<String> = sqlx::query_scalar(
        "SELECT reprocessed_from::text FROM tasks WHERE reprocessed_from IS NOT NULL",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(copied_from, b_dead);

    // Bad filters are a clear 400; JSON clients get JSON.
    let (status, html) = beta.get("/admin/tasks?status=exploded").await;
    assert_eq!(status, 400);
    assert!(html.contains("status"));
    let r = beta
        .http
        .get(format!("{}/admin/events?from=yesterday", app.base))
        .header("cookie", &beta.cookie)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["code"], "invalid_input");

    // Logging out ends the session for good.
    let (_, page) = beta.get("/admin").await;
    let csrf = hidden(&page, "csrf");
    assert_eq!(beta.post("/admin/logout", &[("csrf", &csrf)]).await.0, 303);
    assert_eq!(beta.get("/admin").await.0, 303);
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operator_sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'beta@screen.test'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(open, 1, "only the other login (above) is still open");
    app.stop().await;
}
