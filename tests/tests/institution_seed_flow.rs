//! Seed flow 3: `InstitutionCreated` → task → demo data for the institution; running the
//! seeding task twice creates nothing twice.

use campus_ports::{NewTask, TaskQueue};
use campus_tests::{eventually, TestApp};
use std::time::Duration;

#[tokio::test]
async fn a_new_institution_gets_demo_data_once() {
    let app = TestApp::spawn().await;
    let (institution_id, _) = app
        .create_institution("Demo College", "academic@demo.test", "academic-pass")
        .await;
    let academic = app.login("academic@demo.test", "academic-pass").await;

    let teachers = eventually("demo teachers", Duration::from_secs(30), || async {
        let r = app.get("/academic/teachers", Some(&academic)).await;
        let items = r.body.as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    assert_eq!(teachers.len(), 3);
    let students = app
        .get("/academic/students?limit=200", Some(&academic))
        .await
        .body;
    assert_eq!(students.as_array().unwrap().len(), 8);
    let disciplines = app.get("/academic/disciplines", Some(&academic)).await.body;
    assert_eq!(disciplines.as_array().unwrap().len(), 4);
    let classes = app.get("/academic/classes", Some(&academic)).await.body;
    assert_eq!(classes.as_array().unwrap().len(), 4);
    assert!(classes[0]["discipline_name"].is_string() && classes[0]["teacher_name"].is_string());

    // Pagination: two pages of students, no overlap.
    let first = app
        .get("/academic/students?limit=5", Some(&academic))
        .await
        .body;
    let last_id = first[4]["id"].as_str().unwrap();
    let second = app
        .get(
            &format!("/academic/students?limit=5&after={last_id}"),
            Some(&academic),
        )
        .await
        .body;
    assert_eq!(
        (
            first.as_array().unwrap().len(),
            second.as_array().unwrap().len()
        ),
        (5, 3)
    );

    // Demo users can log in; their grades produced notifications through the engine.
    let email = teachers[0]["email"].as_str().unwrap();
    app.login(email, campus_tests::DEMO_PASSWORD).await;
    let count_rows = "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM disciplines)
                           + (SELECT count(*) FROM classes) + (SELECT count(*) FROM enrollments)";
    app.wait_for_idle().await;
    let before: i64 = app.scalar(count_rows).await;
    let notifications: i64 = app.scalar("SELECT count(*) FROM notifications").await;
    assert!(notifications > 0, "demo grades notify demo students");

    // Run the seeding task a second time: it succeeds and creates nothing.
    let store = campus_adapters::pg::PgStore::new(
        app.pool.clone(),
        campus_adapters::pg::Notifier::disabled(),
    );
    let payload: String = app
        .scalar("SELECT payload::text FROM tasks WHERE task_type = 'seed_demo_data'")
        .await;
    let again = NewTask {
        task_type: "seed_demo_data".into(),
        payload,
        institution_id: Some(campus_core::ids::InstitutionId(
            uuid::Uuid::parse_str(&institution_id).unwrap().as_u128(),
        )),
        correlation_id: Some("seed-again".into()),
        max_attempts: 3,
        idempotency_key: None,
        run_at: None,
        priority: Default::default(),
    };
    assert_eq!(store.enqueue(&[again]).await.unwrap(), 1);
    eventually("the second seeding task to succeed", Duration::from_secs(20), || async {
        let done: i64 = app.scalar("SELECT count(*) FROM tasks WHERE task_type = 'seed_demo_data' AND status = 'succeeded'").await;
        (done == 2).then_some(())
    })
    .await;
    assert_eq!(
        app.scalar::<i64>(count_rows).await,
        before,
        "seeding twice created nothing twice"
    );
    app.stop().await;
}
