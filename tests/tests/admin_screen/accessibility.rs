//! Every page of the admin screen (and the reset-password page) checked with axe-core in
//! real Chromium: WCAG 2.0/2.1 A and AA and axe's best practices, in every state a test can
//! reach (lists full and empty, details before and after a reprocess, flashes, refusals,
//! errors). Any violation fails the test, listed with its rule, impact and target.

use campus_tests::browser::{Browser, AXE_TAGS};
use campus_tests::extra::Tenants;
use fantoccini::Locator;
use std::sync::atomic::Ordering;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// Checks the current page, adding its violations to `found` under `name`, and keeps a
/// screenshot of it (`target/screenshots/axe-<name>.png`).
async fn check(browser: &Browser, name: &str, found: &mut Vec<String>) {
    let file: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    browser.screenshot(&format!("axe-{file}")).await;
    for v in browser.accessibility_violations(&AXE_TAGS).await {
        found.push(format!("{name}: {v}"));
    }
}

/// Opens `path` (under `base`), waits for `css`, then checks the page as `name`.
async fn visit(browser: &Browser, base: &str, page: [&str; 3], found: &mut Vec<String>) {
    let [name, path, css] = page;
    let c = &browser.client;
    c.goto(&format!("{base}{path}")).await.unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{path}: no {css}: {e}"));
    check(browser, name, found).await;
}

/// Clicks `css` and waits for the page to show `then`.
async fn click(browser: &Browser, css: &str, then: &str) {
    let c = &browser.client;
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(then))
        .await
        .unwrap_or_else(|e| panic!("after clicking {css}: no {then}: {e}"));
}

#[tokio::test]
async fn every_admin_page_passes_axe() {
    let tenants = Tenants::spawn("axe.test").await;
    let task = tenants.dead_reports(&tenants.a).await[0].clone();
    let event = tenants.report_events(&tenants.a).await[0].clone();
    let Tenants { app, broken, .. } = tenants;
    let base = app.base.clone();
    let browser = Browser::start().await;
    let c = &browser.client;
    let mut found = Vec::new();

    // Logged out: the login page, then the same page refusing a wrong password.
    visit(
        &browser,
        &base,
        ["login", "/admin", "form.login"],
        &mut found,
    )
    .await;
    browser
        .log_in("root@axe.test", "wrong-password", WAIT)
        .await;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("form.login [role=alert]"))
        .await
        .expect("the login page saying why");
    check(&browser, "login refused", &mut found).await;
    browser.log_in("root@axe.test", "root-password", WAIT).await;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#task-counts a[data-status=dead]"))
        .await
        .expect("the overview");
    check(&browser, "overview", &mut found).await;

    // The lists, full and empty (the task list's bulk form included), and the details.
    let (task_page, event_page) = (
        format!("/admin/tasks/{task}"),
        format!("/admin/events/{event}"),
    );
    for page in [
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
        ["task", &task_page, "form#reprocess"],
        ["event", &event_page, "form#reprocess"],
    ] {
        visit(&browser, &base, page, &mut found).await;
    }

    // After a reprocess: the flash and the copies, then the copy's own page.
    broken.store(false, Ordering::SeqCst);
    c.goto(&format!("{base}/admin/tasks/{task}")).await.unwrap();
    click(
        &browser,
        "form#reprocess button",
        "#copies tr[data-status=succeeded]",
    )
    .await;
    check(&browser, "task with a copy", &mut found).await;
    let copy = c
        .find(Locator::Css("#copies tr[data-status=succeeded]"))
        .await
        .unwrap()
        .attr("data-id")
        .await
        .unwrap()
        .expect("the copy's id");
    let copy_page = format!("/admin/tasks/{copy}");
    visit(
        &browser,
        &base,
        ["copy", &copy_page, "form#reprocess"],
        &mut found,
    )
    .await;
    c.goto(&format!("{base}/admin/events/{event}"))
        .await
        .unwrap();
    click(&browser, "form#reprocess button", "#copies tr[data-id]").await;
    check(&browser, "event with a copy", &mut found).await;

    // Errors: an unknown id, a bad filter; and the reset-password page, with and without
    // its token.
    for page in [
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
    ] {
        visit(&browser, &base, page, &mut found).await;
    }

    browser.stop().await;
    app.stop().await;
    assert!(
        found.is_empty(),
        "{} accessibility violations:\n{}",
        found.len(),
        found.join("\n")
    );
}
