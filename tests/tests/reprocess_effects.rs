//! Reprocessing a task that already succeeded runs a copy of it (in the same lineage) against
//! real PostgreSQL and a real SMTP server, and the effect it had is not repeated: no second
//! reset e-mail, no second grade notification.

use campus_tests::{eventually, TestApp};
use serde_json::json;
use std::time::Duration;

const ADM: &str = "root@effects.test";

async fn app() -> TestApp {
    TestApp::spawn_custom(
        |s| {
            s.admin_email = Some(ADM.into());
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await
}

/// Reprocesses task `id` as the Adm user and waits until the copy succeeded; returns the
/// copy's id.
async fn reprocess_and_wait(app: &TestApp, adm: &str, id: &str) -> String {
    let r = app
        .post(&format!("/adm/tasks/{id}/reprocess"), Some(adm), json!({}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let copy = r.body["id"].as_str().unwrap().to_string();
    let (status, attempt, from, same_lineage): (String, i32, String, bool) =
        eventually("the copy to finish", Duration::from_secs(30), || async {
            sqlx::query_as(
                "SELECT c.status, c.attempt, c.reprocessed_from::text, c.lineage_id = o.lineage_id
                 FROM tasks c JOIN tasks o ON o.id = c.reprocessed_from
                 WHERE c.id = $1::uuid AND c.status IN ('succeeded', 'dead')",
            )
            .bind(&copy)
            .fetch_optional(&app.pool)
            .await
            .unwrap()
        })
        .await;
    // The copy really ran (and succeeded): a missing effect is not a copy that never ran.
    assert_eq!(
        (status.as_str(), attempt, from.as_str(), same_lineage),
        ("succeeded", 1, id, true)
    );
    copy
}

#[tokio::test]
async fn reprocessing_a_sent_reset_email_does_not_send_it_again() {
    let app = app().await;
    app.create_institution("Effects College", "ana@effects.test", "ana-password")
        .await;
    let adm = app.login(ADM, "root-password").await;
    let r = app
        .post(
            "/auth/reset-password-token",
            None,
            json!({"email": "ana@effects.test"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let first = app.smtp.wait_for_messages("ana@effects.test", 1).await;
    app.wait_for_idle().await;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id::text FROM tasks WHERE task_type = 'send_reset_password_email' AND status = 'succeeded'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(ids.len(), 1, "one e-mail task: {ids:?}");

    reprocess_and_wait(&app, &adm, &ids[0]).await;
    // The SMTP server stores a message before it accepts it, and the copy succeeded only
    // after the server's answer: had the copy sent anything, it would be here now.
    let after = app.smtp.messages_to("ana@effects.test");
    assert_eq!(after.len(), 1, "still exactly one e-mail: {after:?}");
    assert_eq!(after, first);
    assert_eq!(app.smtp.messages().len(), 1, "no e-mail to anyone else");
    let recorded: i64 = app
        .scalar("SELECT count(*) FROM sent_emails WHERE recipient = 'ana@effects.test'")
        .await;
    assert_eq!(recorded, 1);
    app.stop().await;
}

#[tokio::test]
async fn reprocessing_a_delivered_grade_notification_does_not_notify_again() {
    let app = app().await;
    app.create_institution("Notes College", "ana@notes.test", "ana-password")
        .await;
    let adm = app.login(ADM, "root-password").await;
    // The new institution's demo data records grade notes; each becomes a notification task.
    app.wait_for_idle().await;
    let task: Option<(String, String)> = sqlx::query_as(
        "SELECT id::text, payload->>'student_id' FROM tasks
         WHERE task_type = 'notify_student_of_grade_note' AND status = 'succeeded'
         ORDER BY id LIMIT 1",
    )
    .fetch_optional(&app.pool)
    .await
    .unwrap();
    let (task_id, student_id) = task.expect("a succeeded grade-notification task");
    let count = |sql: String| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let of_student =
        format!("SELECT count(*) FROM notifications WHERE user_id = '{student_id}'::uuid");
    let before_student = count(of_student.clone()).await;
    let before_all = count("SELECT count(*) FROM notifications".into()).await;
    assert!(before_student >= 1, "the student was notified once already");

    reprocess_and_wait(&app, &adm, &task_id).await;
    assert_eq!(
        count(of_student).await,
        before_student,
        "no second notification for the student"
    );
    assert_eq!(
        count("SELECT count(*) FROM notifications".into()).await,
        before_all
    );
    app.stop().await;
}
