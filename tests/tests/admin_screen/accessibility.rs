//! Every page of the admin screen (and the reset-password page) checked with axe-core in
//! real Chromium: WCAG 2.0/2.1 A and AA and axe's best practices, in every state a test can
//! reach (lists full and empty, details before and after a reprocess, flashes, refusals,
//! errors). Any violation fails the test, listed with its rule, impact and target.

use campus_core::engine::Priority;
use campus_core::ids::InstitutionId;
use campus_core::Timestamp;
use campus_ports::{NewTask, TaskQueue};
use campus_tests::browser::{Browser, AXE_TAGS};
use campus_tests::eventually;
use campus_tests::extra::Tenants;
use fantoccini::Locator;
use std::sync::atomic::Ordering;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Pages reached by their URL alone: (name, path, what shows it is loaded).
const LISTS: [[&str; 3]; 8] = [
    [
        "overview empty",
        "/admin?task_type=none&event_type=none",
        "#live .empty",
    ],
    ["events", "/admin/events", "#events tbody tr"],
    [
        "events empty",
        "/admin/events?event_type=none",
        "#live .empty",
    ],
    ["tasks", "/admin/tasks", "#tasks tbody tr"],
    ["dead tasks", "/admin/tasks?status=dead", "details.bulk"],
    ["tasks empty", "/admin/tasks?task_type=none", "#live .empty"],
    ["task types", "/admin/task-types", "#task-types tbody tr"],
    [
        "webhooks without an institution",
        "/admin/webhooks",
        "#live .empty",
    ],
];

/// Errors (an unknown id, a bad filter) and the reset-password page with and without its
/// token.
const OTHERS: [[&str; 3]; 4] = [
    [
        "not found",
        "/admin/tasks/00000000-0000-0000-0000-000000000000",
        "h1",
    ],
    ["bad filter", "/admin/tasks?status=exploded", "h1"],
    ["reset without token", "/reset-password", "h1"],
    [
        "reset",
        "/reset-password?token=not-a-real-token",
        "form #password",
    ],
];

/// The browser on one app, and the violations found so far.
struct Checker {
    browser: Browser,
    base: String,
    found: Vec<String>,
}

impl Checker {
    /// Checks the current page, adding its violations under `name`, and keeps a screenshot
    /// of it (`target/screenshots/axe-<name>.png`).
    async fn check(&mut self, name: &str) {
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        self.browser.screenshot(&format!("axe-{file}")).await;
        for v in self.browser.accessibility_violations(&AXE_TAGS).await {
            self.found.push(format!("{name}: {v}"));
        }
    }

    /// Waits until the page shows `css`.
    async fn wait_for(&self, css: &str) {
        self.browser
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
    }

    /// Opens `path`, waits for `css`, then checks the page as `name`. The page must load
    /// in time even after many others: pages left behind must not keep holding one of the
    /// few connections a browser opens to the server (their live-update streams).
    async fn visit(&mut self, [name, path, css]: [&str; 3]) {
        let url = format!("{}{path}", self.base);
        match tokio::time::timeout(WAIT, self.browser.client.goto(&url)).await {
            Ok(loaded) => loaded.unwrap(),
            Err(_) => panic!("{path} did not load within {WAIT:?}"),
        }
        self.wait_for(css).await;
        self.check(name).await;
    }

    /// Clicks `css` and waits for the page to show `then`.
    async fn click(&self, css: &str, then: &str) {
        let c = &self.browser.client;
        c.find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        self.wait_for(then).await;
    }

    /// The login page, the same page refusing a wrong password, then the overview.
    async fn log_in(&mut self) {
        self.visit(["login", "/admin", "form.login"]).await;
        let b = &self.browser;
        b.log_in("root@axe.test", "wrong-password", WAIT).await;
        self.wait_for("form.login [role=alert]").await;
        self.check("login refused").await;
        let b = &self.browser;
        b.log_in("root@axe.test", "root-password", WAIT).await;
        self.wait_for("#task-counts a[data-status=dead]").await;
        self.check("overview").await;
    }

    /// A task and an event reprocessed in place (the flash, the copies), and the copy's page.
    async fn reprocess(&mut self, task: &str, event: &str) {
        let url = format!("{}/admin/tasks/{task}", self.base);
        self.browser.client.goto(&url).await.unwrap();
        let copied = "#copies tr[data-status=succeeded]";
        self.click("form#reprocess button", copied).await;
        // The form's answer says what it did, and the live update that follows (the copy
        // ran) does not take that back.
        let said = eventually("the form's answer and a live update", WAIT, || async {
            let said = self.browser.client.execute(
                "return Number(document.body.dataset.refreshes || 0) >= 2
                    ? document.getElementById('flash').textContent : null;",
                vec![],
            );
            said.await.ok()?.as_str().map(str::to_string)
        })
        .await;
        assert!(
            said.starts_with("Reprocessing: copy"),
            "the flash says {said:?}"
        );
        self.check("task with a copy").await;
        // Read in one script: a live update may replace the row between a find and a read.
        let copy = eventually("the copy's id", WAIT, || async {
            let id = self.browser.client.execute(
                "const row = document.querySelector(arguments[0]);
                 return row ? row.dataset.id : null;",
                vec![copied.into()],
            );
            id.await.ok()?.as_str().map(str::to_string)
        })
        .await;
        self.visit(["copy", &format!("/admin/tasks/{copy}"), "form#reprocess"])
            .await;
        let url = format!("{}/admin/events/{event}", self.base);
        self.browser.client.goto(&url).await.unwrap();
        self.click("form#reprocess button", "#copies tr[data-id]")
            .await;
        self.check("event with a copy").await;
    }
}

fn an_hour_from_now() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(now.unwrap().as_millis()).unwrap() + 3_600_000
}

#[tokio::test]
async fn every_admin_page_passes_axe() {
    let tenants = Tenants::spawn("axe.test").await;
    let task = tenants.dead_reports(&tenants.a).await[0].clone();
    let event = tenants.report_events(&tenants.a).await[0].clone();
    let Tenants { app, broken, a, .. } = tenants;
    let mut checker = Checker {
        browser: Browser::start().await,
        base: app.base.clone(),
        found: Vec::new(),
    };

    checker.log_in().await;
    for page in LISTS {
        checker.visit(page).await;
    }
    checker
        .visit(["task", &format!("/admin/tasks/{task}"), "form#reprocess"])
        .await;
    checker
        .visit(["event", &format!("/admin/events/{event}"), "form#reprocess"])
        .await;
    let (aggregate_type, aggregate_id): (String, String) = sqlx::query_as(&format!(
        "SELECT aggregate_type, aggregate_id::text FROM domain_events WHERE id = '{event}'"
    ))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    checker
        .visit([
            "audit trail",
            &format!("/admin/audit/{aggregate_type}/{aggregate_id}"),
            "#trail tbody tr",
        ])
        .await;
    // A task due in an hour: its page offers to cancel it.
    let waiting = NewTask {
        task_type: "noop".into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 1,
        idempotency_key: Some("waits-an-hour".into()),
        run_at: Some(Timestamp(an_hour_from_now())),
        priority: Default::default(),
    };
    app.store().enqueue(&[waiting]).await.unwrap();
    let waiting: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM tasks WHERE idempotency_key = 'waits-an-hour'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    checker
        .visit([
            "waiting task",
            &format!("/admin/tasks/{waiting}"),
            "form#cancel",
        ])
        .await;
    // Due tasks of a type no daemon runs: the overview shows its due backlog.
    let due = |institution_id, priority| NewTask {
        task_type: "nobody_runs_this".into(),
        payload: "{}".into(),
        institution_id,
        correlation_id: None,
        max_attempts: 1,
        idempotency_key: None,
        run_at: None,
        priority,
    };
    let a = InstitutionId(a.parse::<uuid::Uuid>().unwrap().as_u128());
    app.store()
        .enqueue(&[
            due(Some(a), Priority::Interactive),
            due(None, Priority::Bulk),
        ])
        .await
        .unwrap();
    checker
        .visit([
            "overview with a due backlog",
            "/admin",
            "#due-backlog tbody tr",
        ])
        .await;
    broken.store(false, Ordering::SeqCst);
    checker.reprocess(&task, &event).await;
    for page in OTHERS {
        checker.visit(page).await;
    }

    let Checker { browser, found, .. } = checker;
    browser.stop().await;
    app.stop().await;
    assert!(
        found.is_empty(),
        "{} accessibility violations:\n{}",
        found.len(),
        found.join("\n")
    );
}
