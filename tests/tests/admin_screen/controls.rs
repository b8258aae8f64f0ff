//! The operator controls on the screen, in real Chromium: pause a task type, cancel a task
//! waiting behind the pause, resume, and watch the other task run.

use super::text_of;
use campus_ports::{NewTask, TaskQueue};
use campus_tests::browser::Browser;
use campus_tests::eventually;
use campus_tests::extra::Tenants;
use fantoccini::Locator;
use std::time::Duration;

/// Clicks the first element matching `css` once there is one, in one script call: live
/// updates replace the page's content, so a handle found in one step may be stale in the next.
async fn click(c: &fantoccini::Client, css: &str, wait: Duration) {
    eventually(&format!("{css} to click"), wait, || async {
        let clicked = c.execute(
            "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;",
            vec![serde_json::json!(css)],
        );
        clicked.await.ok()?.as_bool().filter(|b| *b)
    })
    .await;
}

#[tokio::test]
async fn an_operator_pauses_a_type_cancels_a_waiting_task_and_resumes() {
    let Tenants { app, .. } = Tenants::spawn("controls.test").await;
    let browser = Browser::start().await;
    let c = &browser.client;
    let wait = Duration::from_secs(20);
    c.goto(&format!("{}/admin/task-types", app.base))
        .await
        .unwrap();
    browser
        .log_in("root@controls.test", "root-password", wait)
        .await;

    // Pause `noop` for every daemon: the row says so after the form's answer.
    let paused_row = "#task-types tr[data-type=noop][data-paused=true]";
    let pause = "#task-types tr[data-type=noop] button[type=submit]";
    click(c, pause, wait).await;
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css(paused_row))
        .await
        .unwrap();
    assert_eq!(
        text_of(c, ".flash").await.as_deref(),
        Some("Paused noop: no daemon claims its tasks until it is resumed.")
    );
    browser.screenshot("admin-task-types-paused").await;

    // Two tasks of the paused type wait; cancel one from its page.
    let task = |key: &str| NewTask {
        task_type: "noop".into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 3,
        idempotency_key: Some(key.into()),
        run_at: None,
        priority: Default::default(),
    };
    app.store()
        .enqueue(&[task("cancel-me"), task("run-me")])
        .await
        .unwrap();
    let id_of = |key: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM tasks WHERE idempotency_key = $1")
                .bind(key)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let (cancel_me, run_me) = (id_of("cancel-me").await, id_of("run-me").await);
    c.goto(&format!("{}/admin/tasks/{cancel_me}", app.base))
        .await
        .unwrap();
    click(c, "form#cancel button", wait).await;
    let status = eventually("the cancelled badge", wait, || async {
        text_of(c, "#live p .badge.cancelled").await
    })
    .await;
    assert_eq!(status, "cancelled");
    assert_eq!(
        text_of(c, ".flash").await.as_deref(),
        Some("Cancelled: this task will not run.")
    );
    assert!(
        c.find(Locator::Css("form#reprocess")).await.is_ok(),
        "a cancelled task can be reprocessed"
    );
    browser.screenshot("admin-task-cancelled").await;

    // Resume: the other task runs; the cancelled one never does.
    c.goto(&format!("{}/admin/task-types", app.base))
        .await
        .unwrap();
    click(c, pause, wait).await;
    let resumed_row = "#task-types tr[data-type=noop][data-paused=false]";
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css(resumed_row))
        .await
        .unwrap();
    let status_of = |id: uuid::Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM tasks WHERE id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    eventually("the resumed task to succeed", wait, || async {
        (status_of(run_me).await == "succeeded").then_some(())
    })
    .await;
    assert_eq!(status_of(cancel_me).await, "cancelled");

    browser.stop().await;
    app.stop().await;
}
