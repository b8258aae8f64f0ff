//! Seed flow 2: a teacher sets a note → `ExamGradeNoteAdded` → task → the student sees a
//! notification naming the discipline and class.

use campus_tests::{eventually, TestApp};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_new_note_notifies_the_student_and_the_same_note_does_not() {
    let app = TestApp::spawn().await;
    app.create_institution("Grade College", "academic@grade.test", "academic-pass")
        .await;
    let academic = app.login("academic@grade.test", "academic-pass").await;

    let teacher = app
        .post(
            "/academic/teachers",
            Some(&academic),
            json!({"name": "Tereza", "email": "tereza@grade.test"}),
        )
        .await;
    assert_eq!(teacher.status, 201, "{teacher:?}");
    let teacher_id = teacher.body["id"].as_str().unwrap().to_string();
    let other_teacher = app
        .post(
            "/academic/teachers",
            Some(&academic),
            json!({"name": "Otto", "email": "otto@grade.test"}),
        )
        .await;
    let student = app
        .post(
            "/academic/students",
            Some(&academic),
            json!({"name": "Sofia", "email": "sofia@grade.test"}),
        )
        .await;
    let student_id = student.body["id"].as_str().unwrap().to_string();
    let outsider = app
        .post(
            "/academic/students",
            Some(&academic),
            json!({"name": "Olga", "email": "olga@grade.test"}),
        )
        .await;
    let outsider_id = outsider.body["id"].as_str().unwrap().to_string();

    let discipline = app
        .post(
            "/academic/disciplines",
            Some(&academic),
            json!({"name": "Compilers"}),
        )
        .await;
    assert_eq!(discipline.status, 201);
    let discipline_id = discipline.body["id"].as_str().unwrap().to_string();
    let class = app
        .post(
            "/academic/classes",
            Some(&academic),
            json!({"discipline_id": discipline_id, "teacher_id": teacher_id, "period": "2026.2"}),
        )
        .await;
    assert_eq!(class.status, 201, "{class:?}");
    let class_id = class.body["id"].as_str().unwrap().to_string();
    let other_class = app
        .post(
            "/academic/classes",
            Some(&academic),
            json!({"discipline_id": discipline_id, "teacher_id": other_teacher.body["id"], "period": "2026.2"}),
        )
        .await;
    let other_class_id = other_class.body["id"].as_str().unwrap().to_string();
    let enrolled = app
        .post(
            &format!("/academic/classes/{class_id}/students"),
            Some(&academic),
            json!({"student_id": student_id}),
        )
        .await;
    assert_eq!(enrolled.status, 204, "{enrolled:?}");
    let twice = app
        .post(
            &format!("/academic/classes/{class_id}/students"),
            Some(&academic),
            json!({"student_id": student_id}),
        )
        .await;
    assert_eq!(twice.status, 409);

    // Teachers and students set their passwords through the e-mailed reset link.
    app.set_password_by_email("tereza@grade.test", "teacher-pass")
        .await;
    app.set_password_by_email("sofia@grade.test", "student-pass")
        .await;
    let teacher_token = app.login("tereza@grade.test", "teacher-pass").await;
    let student_token = app.login("sofia@grade.test", "student-pass").await;
    assert!(app
        .get("/student/notifications", Some(&student_token))
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());

    let notes = format!("/teacher/classes/{class_id}/students/{student_id}/notes");
    // (Demo data of the new institution records grade events too; count this class's only.)
    let grade_events =
        format!("SELECT count(*) FROM domain_events WHERE event_type = 'ExamGradeNoteAdded' AND payload->>'class_id' = '{class_id}'");
    let set = app
        .put(&notes, &teacher_token, json!({"exam": "N1", "note": 8.5}))
        .await;
    assert_eq!(set.status, 204, "{set:?}");

    let list = eventually(
        "the grade notification",
        Duration::from_secs(20),
        || async {
            let r = app
                .get("/student/notifications", Some(&student_token))
                .await;
            let items = r.body.as_array().cloned().unwrap_or_default();
            (!items.is_empty()).then_some(items)
        },
    )
    .await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["kind"], "grade_note_added");
    let message = list[0]["message"].as_str().unwrap();
    assert!(
        message.contains("Compilers") && message.contains("2026.2") && message.contains("N1"),
        "{message}"
    );
    assert!(
        list[0]["id"].is_string()
            && list[0]["created_at"].is_string()
            && list[0]["read_at"].is_null()
    );

    // The same value again: 204, but no new event and no new notification.
    assert_eq!(
        app.put(&notes, &teacher_token, json!({"exam": "N1", "note": 8.5}))
            .await
            .status,
        204
    );
    app.wait_for_idle().await;
    let events: i64 = app.scalar(&grade_events).await;
    assert_eq!(events, 1);
    assert_eq!(
        app.get("/student/notifications", Some(&student_token))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A real change notifies again.
    assert_eq!(
        app.put(&notes, &teacher_token, json!({"exam": "N1", "note": 9.0}))
            .await
            .status,
        204
    );
    eventually(
        "the second notification",
        Duration::from_secs(20),
        || async {
            let r = app
                .get("/student/notifications", Some(&student_token))
                .await;
            (r.body.as_array().map_or(0, Vec::len) == 2).then_some(())
        },
    )
    .await;

    // Not their class, not enrolled, bad input, wrong role: refused, nothing recorded.
    let not_theirs = app
        .put(
            &format!("/teacher/classes/{other_class_id}/students/{student_id}/notes"),
            &teacher_token,
            json!({"exam": "N1", "note": 5.0}),
        )
        .await;
    assert_eq!(
        (not_theirs.status, not_theirs.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let not_enrolled = app
        .put(
            &format!("/teacher/classes/{class_id}/students/{outsider_id}/notes"),
            &teacher_token,
            json!({"exam": "N1", "note": 5.0}),
        )
        .await;
    assert_eq!(not_enrolled.status, 404);
    let too_high = app
        .put(&notes, &teacher_token, json!({"exam": "N2", "note": 10.5}))
        .await;
    // Outside the `note` bounds the spec declares: refused by the request's schema.
    assert_eq!(
        (too_high.status, too_high.body["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let bad_exam = app
        .put(&notes, &teacher_token, json!({"exam": "N4", "note": 5.0}))
        .await;
    assert_eq!(bad_exam.status, 400);
    let as_student = app
        .put(&notes, &student_token, json!({"exam": "N2", "note": 5.0}))
        .await;
    assert_eq!(as_student.status, 403);
    let events: i64 = app.scalar(&grade_events).await;
    assert_eq!(events, 2);
    app.stop().await;
}
