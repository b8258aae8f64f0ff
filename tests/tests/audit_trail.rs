//! The audit trail (`GET /audit/{aggregate_type}/{aggregate_id}` and the admin screen's page):
//! a student's trail shows their creation, enrolment and grades in order, with who caused
//! each, after all of it was archived; scoping, roles and bad input are refused as JSON.

use campus_core::engine::retention::RetentionWindows;
use campus_ports::Archive;
use campus_tests::extra::WebClient;
use campus_tests::TestApp;
use serde_json::json;
use std::time::Duration;

/// Archives everything finished, whatever its age.
async fn archive_everything(app: &TestApp) -> u64 {
    let now = RetentionWindows {
        finished: Duration::ZERO,
        dead: Duration::ZERO,
    };
    let store = app.store();
    let mut moved = 0;
    loop {
        let batch = store.archive_batch(&now, 500).await.unwrap();
        if batch.total() == 0 {
            return moved;
        }
        moved += batch.total();
    }
}

#[tokio::test]
async fn a_students_trail_shows_their_grades_in_order_after_the_archive() {
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@audit.test".into());
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await;
    let (institution, academic_id) = app
        .create_institution("Audit College", "academic@audit.test", "academic-pass")
        .await;
    app.create_institution("Other College", "other@audit.test", "other-pass")
        .await;
    let academic = app.login("academic@audit.test", "academic-pass").await;
    let other = app.login("other@audit.test", "other-pass").await;
    let adm = app.login("root@audit.test", "root-password").await;
    let created = |path: &'static str, body: serde_json::Value| {
        let academic = academic.clone();
        let app = &app;
        async move {
            let r = app.post(path, Some(&academic), body).await;
            assert_eq!(r.status, 201, "{r:?}");
            r.body["id"].as_str().unwrap().to_string()
        }
    };
    let teacher_id = created(
        "/academic/teachers",
        json!({"name": "Tereza", "email": "tereza@audit.test"}),
    )
    .await;
    let student_id = created(
        "/academic/students",
        json!({"name": "Sofia", "email": "sofia@audit.test"}),
    )
    .await;
    let discipline_id = created("/academic/disciplines", json!({"name": "Compilers"})).await;
    let class_id = created(
        "/academic/classes",
        json!({"discipline_id": discipline_id, "teacher_id": teacher_id, "period": "2026.2"}),
    )
    .await;
    let enrolled = app
        .post(
            &format!("/academic/classes/{class_id}/students"),
            Some(&academic),
            json!({"student_id": student_id}),
        )
        .await;
    assert_eq!(enrolled.status, 204, "{enrolled:?}");
    app.set_password_by_email("tereza@audit.test", "teacher-pass")
        .await;
    let teacher = app.login("tereza@audit.test", "teacher-pass").await;
    let notes = format!("/teacher/classes/{class_id}/students/{student_id}/notes");
    for (exam, note) in [("N1", 7.5), ("N2", 9.0), ("N1", 8.0)] {
        let set = app
            .put(&notes, &teacher, json!({"exam": exam, "note": note}))
            .await;
        assert_eq!(set.status, 204, "{set:?}");
    }
    app.wait_for_idle().await;
    let moved = archive_everything(&app).await;
    let live_about_student: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM domain_events
             WHERE aggregate_id = '{student_id}' OR payload->>'student_id' = '{student_id}'"
        ))
        .await;
    assert!(moved > 0);
    assert_eq!(
        live_about_student, 0,
        "everything about the student is archived"
    );

    let path = format!("/audit/User/{student_id}");
    let trail = app.get(&path, Some(&academic)).await;
    assert_eq!(trail.status, 200, "{trail:?}");
    let items = trail.body["items"].as_array().unwrap();
    let types: Vec<&str> = items
        .iter()
        .map(|i| i["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "StudentCreated",
            "StudentEnrolled",
            "ExamGradeNoteAdded",
            "ExamGradeNoteAdded",
            "ExamGradeNoteAdded"
        ]
    );
    let notes: Vec<(&str, f64)> = items[2..]
        .iter()
        .map(|i| {
            (
                i["payload"]["exam"].as_str().unwrap(),
                i["payload"]["note"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(notes, [("N1", 7.5), ("N2", 9.0), ("N1", 8.0)], "in order");
    let actors: Vec<&str> = items
        .iter()
        .map(|i| i["actor_id"].as_str().unwrap_or("system"))
        .collect();
    assert_eq!(
        actors,
        [
            academic_id.as_str(),
            academic_id.as_str(),
            teacher_id.as_str(),
            teacher_id.as_str(),
            teacher_id.as_str()
        ],
        "who caused each change"
    );
    let stamps: Vec<&str> = items
        .iter()
        .map(|i| i["occurred_at"].as_str().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(items.iter().all(|i| i["correlation_id"].is_string()));
    assert!(trail.body["next_after"].is_null());

    // Pages: one at a time, `next_after` continues.
    let first = app.get(&format!("{path}?limit=2"), Some(&academic)).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 2);
    let after = first.body["next_after"].as_str().unwrap();
    let rest = app
        .get(&format!("{path}?after={after}"), Some(&academic))
        .await;
    assert_eq!(rest.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(rest.body["items"][0]["id"], items[2]["id"]);

    // The demo seed's events are the system's; the Adm sees every institution.
    let seeded = app
        .get(&format!("/audit/Institution/{institution}"), Some(&adm))
        .await;
    assert_eq!(seeded.status, 200, "{seeded:?}");
    assert_eq!(seeded.body["items"][0]["event_type"], "InstitutionCreated");
    let demo_student: String = app
        .scalar(&format!(
            "SELECT aggregate_id::text FROM domain_events_processed
                 WHERE event_type = 'StudentCreated' AND aggregate_id <> '{student_id}'
                 ORDER BY id LIMIT 1"
        ))
        .await;
    let demo = app
        .get(&format!("/audit/User/{demo_student}"), Some(&adm))
        .await;
    assert_eq!(demo.status, 200, "{demo:?}");
    assert!(
        demo.body["items"][0]["actor_id"].is_null(),
        "the demo seed is a system actor: {demo:?}"
    );

    // Another institution's Academic, a teacher, and bad input.
    let foreign = app.get(&path, Some(&other)).await;
    assert_eq!(foreign.status, 404, "{foreign:?}");
    assert_eq!(foreign.body["code"], "not_found");
    assert_eq!(app.get(&path, Some(&teacher)).await.status, 403);
    assert_eq!(app.get(&path, None).await.status, 401);
    let unknown_type = app
        .get(&format!("/audit/Spaceship/{student_id}"), Some(&adm))
        .await;
    assert_eq!(unknown_type.status, 400, "{unknown_type:?}");
    assert!(unknown_type.body["message"].is_string());
    let malformed = app.get("/audit/User/not-a-uuid", Some(&adm)).await;
    assert_eq!(malformed.status, 400, "{malformed:?}");
    let nobody = app
        .get(&format!("/audit/User/{}", uuid::Uuid::now_v7()), Some(&adm))
        .await;
    assert_eq!(nobody.status, 404);

    // The admin screen: the event's page links to the trail, which lists the same events.
    let (web, status) = WebClient::login(&app.base, "root@audit.test", "root-password").await;
    assert_eq!(status, 303);
    let grade_event = items[2]["id"].as_str().unwrap();
    let (status, html) = web.get(&format!("/admin/events/{grade_event}")).await;
    assert_eq!(status, 200);
    let enrollment_link = format!(r#"href="/admin/audit/Enrollment/{class_id}""#);
    assert!(html.contains(&enrollment_link), "the link to the trail");
    assert!(
        html.contains(&format!(r#"href="/admin/audit/User/{teacher_id}""#)),
        "who caused it, linked to their own trail"
    );
    let (status, page) = web.get(&format!("/admin/audit/User/{student_id}")).await;
    assert_eq!(status, 200);
    for item in items {
        assert!(page.contains(item["id"].as_str().unwrap()));
    }
    let first_grade = page.find(items[2]["id"].as_str().unwrap()).unwrap();
    let last_grade = page.find(items[4]["id"].as_str().unwrap()).unwrap();
    assert!(first_grade < last_grade, "oldest first");
}
