//! Seed flow 1: reset-password request → `ResetPasswordTokenCreated` → task → an e-mail at a
//! real SMTP server with a link that sets a new password exactly once.

use campus_tests::{reset_link, token_of, TestApp};
use serde_json::json;

#[tokio::test]
async fn reset_link_arrives_by_smtp_and_changes_the_password_once() {
    let app = TestApp::spawn().await;
    app.create_institution("Reset College", "ana@reset.test", "old-password")
        .await;

    let r = app
        .post(
            "/auth/reset-password-token",
            None,
            json!({"email": "ANA@reset.test"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let correlation = r.correlation_id.clone().expect("a correlation id");

    let messages = app.smtp.wait_for_messages("ana@reset.test", 1).await;
    let link = reset_link(&messages[0]);
    assert!(
        link.starts_with(&format!("{}/reset-password?token=", app.base)),
        "{link}"
    );
    assert!(messages[0].contains("Subject: Reset your Campus password"));

    // The event and its task carry the request's correlation id, and the task links the event.
    app.wait_for_idle().await;
    let linked: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM tasks t JOIN domain_events e ON e.id = t.event_id
             WHERE e.event_type = 'ResetPasswordTokenCreated' AND t.task_type = 'send_reset_password_email'
               AND t.status = 'succeeded' AND t.correlation_id = '{correlation}' AND e.correlation_id = '{correlation}'
               AND t.started_at IS NOT NULL AND t.finished_at IS NOT NULL AND t.duration_ms IS NOT NULL"
        ))
        .await;
    assert_eq!(linked, 1);
    // Only the hash of the token is stored; the event holds it sealed, never in clear.
    let token = token_of(&link);
    let leaks: i64 = app
        .scalar(&format!(
            "SELECT (SELECT count(*) FROM reset_password_tokens WHERE token_hash LIKE '%{token}%')
                  + (SELECT count(*) FROM domain_events WHERE payload::text LIKE '%{token}%')
                  + (SELECT count(*) FROM tasks WHERE payload::text LIKE '%{token}%')"
        ))
        .await;
    assert_eq!(leaks, 0, "the plain token must not be stored");

    // A person opens the link: a form.
    let page = app.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form") && html.contains(&token), "{html}");

    let bad = app
        .post(
            "/auth/reset-password",
            None,
            json!({"token": token, "password": "short"}),
        )
        .await;
    // Shorter than the password's declared `minLength`: refused by the request's schema.
    assert_eq!(
        (bad.status, bad.body["code"].as_str()),
        (400, Some("invalid_request")),
        "{bad:?}"
    );

    let ok = app
        .post(
            "/auth/reset-password",
            None,
            json!({"token": token, "password": "new-password"}),
        )
        .await;
    assert_eq!(ok.status, 204, "{ok:?}");
    app.login("ana@reset.test", "new-password").await;
    let old = app
        .post(
            "/auth/login",
            None,
            json!({"email": "ana@reset.test", "password": "old-password"}),
        )
        .await;
    assert_eq!(
        (old.status, old.body["code"].as_str()),
        (401, Some("unauthorized"))
    );

    let reused = app
        .post(
            "/auth/reset-password",
            None,
            json!({"token": token, "password": "another-password"}),
        )
        .await;
    assert_eq!(reused.status, 400, "a token works once: {reused:?}");
    let unknown = app
        .post(
            "/auth/reset-password",
            None,
            json!({"token": "nope", "password": "another-password"}),
        )
        .await;
    assert_eq!(unknown.status, 400);
    app.login("ana@reset.test", "new-password").await;
    app.stop().await;
}

#[tokio::test]
async fn the_reset_page_form_sets_the_password_and_unknown_emails_reveal_nothing() {
    let app = TestApp::spawn().await;
    app.create_institution("Form College", "bia@form.test", "old-password")
        .await;

    let unknown = app
        .post(
            "/auth/reset-password-token",
            None,
            json!({"email": "nobody@form.test"}),
        )
        .await;
    assert_eq!(unknown.status, 202, "same answer for unknown e-mails");
    let malformed = app
        .post(
            "/auth/reset-password-token",
            None,
            json!({"email": "not-an-email"}),
        )
        .await;
    assert_eq!(malformed.status, 400);

    app.post(
        "/auth/reset-password-token",
        None,
        json!({"email": "bia@form.test"}),
    )
    .await;
    let link = reset_link(&app.smtp.wait_for_messages("bia@form.test", 1).await[0]);
    let token = token_of(&link);

    let mismatch = app
        .http
        .post(format!("{}/reset-password", app.base))
        .form(&[
            ("token", token.as_str()),
            ("password", "form-password"),
            ("confirm", "other-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(mismatch.status(), 400);
    let done = app
        .http
        .post(format!("{}/reset-password", app.base))
        .form(&[
            ("token", token.as_str()),
            ("password", "form-password"),
            ("confirm", "form-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("password was changed"));
    app.login("bia@form.test", "form-password").await;

    // Nothing was sent to the unknown address, and exactly one message to the user.
    app.wait_for_idle().await;
    assert!(app.smtp.messages_to("nobody@form.test").is_empty());
    assert_eq!(app.smtp.messages_to("bia@form.test").len(), 1);
    app.stop().await;
}
