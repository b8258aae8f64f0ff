//! The whole app (API, daemon, built-in handlers) on the in-memory adapters, over HTTP and a
//! real SMTP server: what a developer gets from `MemoryApp` without a database.

use campus_tests::{eventually, MemoryApp};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn the_app_runs_its_flows_without_a_database() {
    let app = MemoryApp::spawn(|s| {
        s.admin_email = Some("root@memory.test".into());
        s.admin_password = Some("root-password".into());
    })
    .await;
    let ready = app.get("/health/ready", None).await;
    assert_eq!(ready.status, 200, "{ready:?}");

    // A new institution gets its demo data from the daemon's seed task.
    let r = app
        .post(
            "/institutions",
            None,
            json!({"name": "Memory College", "academic": {"name": "Ana", "email": "ana@memory.test", "password": "password-1"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let academic = app.login("ana@memory.test", "password-1").await;
    let seeded = eventually("the demo seed task", Duration::from_secs(10), || async {
        let r = app
            .get(
                "/adm/tasks?task_type=seed_demo_data&status=succeeded",
                Some(&academic),
            )
            .await;
        (r.body["items"].as_array().map(Vec::len) == Some(1)).then_some(r.body)
    })
    .await;
    assert_eq!(seeded["items"][0]["attempt"], 1);

    // The reset flow: the event's task sends the link over SMTP; the new password works.
    app.set_password_by_email("ana@memory.test", "password-2")
        .await;
    app.login("ana@memory.test", "password-2").await;

    // The Adm user sees the events the flows recorded.
    let adm = app.login("root@memory.test", "root-password").await;
    let events = app.get("/adm/events?limit=200", Some(&adm)).await;
    let types: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    // The seed's own writes recorded events too (its teacher, classes, enrollments).
    for expected in [
        "InstitutionCreated",
        "TeacherCreated",
        "ClassCreated",
        "ResetPasswordTokenCreated",
        "PasswordChanged",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
    app.stop().await;
}
