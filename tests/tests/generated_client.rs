//! The committed spec is enough to drive Campus: a client generated from
//! `openapi/openapi.json` at build time (progenitor, `build.rs`, `campus_tests::generated`)
//! runs the three seed flows and an operator's reprocessing end to end. Every API request
//! here goes through that client; the harness only starts the app, and the test reads the
//! SMTP server's Maildir for e-mailed links.
//!
//! Statuses and kinds are compared by their names (`is`, `to_string()`), so these checks hold
//! whether the spec types them as strings or as enums.

use campus_tests::generated::{self as api, types, ResponseValue};
use campus_tests::{eventually, reset_link, token_of, TestApp};
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// Whether a status or kind, a string or an enum of the spec, is `name`.
fn is(value: &impl std::fmt::Display, name: &str) -> bool {
    value.to_string() == name
}

/// The API without credentials.
fn anonymous(app: &TestApp) -> api::Client {
    api::Client::new(&app.base)
}

/// The API as the holder of `token` (`Authorization: Bearer` on every request).
fn bearer(app: &TestApp, token: &str) -> api::Client {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value");
    value.set_sensitive(true);
    let http = reqwest::Client::builder()
        .default_headers(HeaderMap::from_iter([(AUTHORIZATION, value)]))
        .timeout(WAIT)
        .build()
        .expect("an HTTP client");
    api::Client::new_with_client(&app.base, http)
}

/// Logs in through the API and returns the API as that user.
async fn log_in(app: &TestApp, email: &str, password: &str) -> api::Client {
    let session = anonymous(app)
        .login()
        .body(types::LoginRequest {
            email: email.parse().unwrap(),
            password: password.parse().unwrap(),
        })
        .send()
        .await
        .unwrap_or_else(|e| panic!("log-in of {email}: {e}"));
    assert_eq!(session.status(), 200);
    assert!(is(&session.token_type, "Bearer"), "{session:?}");
    assert!(session.expires_in > 0 && !session.access_token.is_empty());
    bearer(app, &session.access_token)
}

/// Signs up an institution; returns `(institution_id, academic_user_id)`.
/// The demo-seeding task of an `InstitutionCreated` event, once it succeeded.
async fn seeding_task(client: &api::Client, event: Uuid) -> types::TaskItem {
    eventually("the seeding task to succeed", WAIT, || async {
        let page = client
            .list_tasks()
            .event_id(event)
            .send()
            .await
            .expect("tasks");
        page.items
            .iter()
            .find(|t| t.task_type == "seed_demo_data" && is(&t.status, "succeeded"))
            .cloned()
    })
    .await
}

async fn create_institution(
    app: &TestApp,
    name: &str,
    email: &str,
    password: &str,
) -> (Uuid, Uuid) {
    let created = anonymous(app)
        .create_institution()
        .body(types::CreateInstitutionRequest {
            name: name.parse().unwrap(),
            academic: types::AcademicUserRequest {
                name: "Academic".parse().unwrap(),
                email: email.parse().unwrap(),
                password: password.parse().unwrap(),
            },
        })
        .send()
        .await
        .expect("the institution is created");
    assert_eq!(created.status(), 201);
    assert_ne!(created.institution_id, created.user_id);
    (created.institution_id, created.user_id)
}

/// The status and error `code` of a request the API refused.
fn refusal<T: std::fmt::Debug>(
    result: Result<ResponseValue<T>, api::Error<types::ErrorBody>>,
) -> (u16, String) {
    match result {
        Err(api::Error::ErrorResponse(error)) => {
            assert!(!error.message.is_empty(), "{error:?}");
            (error.status().as_u16(), error.code.clone())
        }
        other => panic!("expected a JSON error response, got {other:?}"),
    }
}

/// Asks for a reset link for `email` and returns the token of the e-mail it brings.
async fn e_mailed_token(app: &TestApp, email: &str) -> String {
    let tokens = || -> Vec<String> {
        app.smtp
            .messages_to(email)
            .iter()
            .map(|m| token_of(&reset_link(m)))
            .collect()
    };
    let earlier = tokens();
    let accepted = anonymous(app)
        .request_password_reset()
        .body(types::ResetPasswordTokenRequest {
            email: email.parse().unwrap(),
        })
        .send()
        .await
        .expect("the reset request is accepted");
    assert_eq!(accepted.status(), 202);
    assert!(accepted.headers().contains_key("x-correlation-id"));
    app.smtp.wait_for_messages(email, earlier.len() + 1).await;
    let mut new = tokens();
    new.retain(|t| !earlier.contains(t));
    assert_eq!(new.len(), 1, "one new e-mail to {email}");
    new.remove(0)
}

/// Sets `email`'s password through the e-mailed reset link.
async fn set_password_by_email(app: &TestApp, email: &str, password: &str) {
    let token = e_mailed_token(app, email).await;
    let done = anonymous(app)
        .reset_password()
        .body(types::ResetPasswordRequest {
            token: token.parse().unwrap(),
            password: password.parse().unwrap(),
        })
        .send()
        .await
        .unwrap_or_else(|e| panic!("reset of {email}: {e}"));
    assert_eq!(done.status(), 204);
}

/// Seed flow: a new institution records `InstitutionCreated`, and the daemon seeds demo data
/// that the new Academic lists.
#[tokio::test]
async fn a_new_institution_is_seeded_with_demo_data() {
    let app = TestApp::spawn().await;
    let (institution, _) = create_institution(
        &app,
        "Generated College",
        "academic@gen.test",
        "academic-pass",
    )
    .await;
    let academic = log_in(&app, "academic@gen.test", "academic-pass").await;

    // The event, seen through the operators' API (scoped to the Academic's institution).
    let created = academic
        .list_events()
        .event_type("InstitutionCreated")
        .send()
        .await
        .expect("the Academic lists their events");
    assert_eq!(created.items.len(), 1, "{created:?}");
    let event = &created.items[0];
    assert_eq!(event.institution_id, Some(institution));
    assert_eq!(event.event_type, "InstitutionCreated");

    let teachers = eventually("the demo teachers", WAIT, || async {
        let page = academic.list_teachers().send().await.expect("teachers");
        (!page.is_empty()).then(|| page.into_inner())
    })
    .await;
    assert_eq!(teachers.len(), 3, "{teachers:?}");
    assert!(teachers
        .iter()
        .all(|t| t.email.contains('@') && !t.name.is_empty()));
    let students = academic
        .list_students()
        .limit(200)
        .send()
        .await
        .expect("students");
    assert_eq!(students.len(), 8);
    let disciplines = academic
        .list_disciplines()
        .send()
        .await
        .expect("disciplines");
    assert_eq!(disciplines.len(), 4);
    let classes = academic.list_classes().send().await.expect("classes");
    assert_eq!(classes.len(), 4);
    for class in classes.iter() {
        let discipline = disciplines.iter().find(|d| d.id == class.discipline_id);
        assert_eq!(discipline.map(|d| &d.name), Some(&class.discipline_name));
        let teacher = teachers.iter().find(|t| t.id == class.teacher_id);
        assert_eq!(teacher.map(|t| &t.name), Some(&class.teacher_name));
    }

    // Keyset pagination: two pages of students, no overlap.
    let first = academic
        .list_students()
        .limit(5)
        .send()
        .await
        .expect("page 1");
    let second = academic
        .list_students()
        .limit(5)
        .after(first[4].id)
        .send()
        .await
        .expect("page 2");
    assert_eq!((first.len(), second.len()), (5, 3));
    assert!(second.iter().all(|s| first.iter().all(|f| f.id != s.id)));

    // The seeding task came from that event and succeeded; demo users can log in.
    let seeded = seeding_task(&academic, event.id).await;
    assert_eq!(seeded.institution_id, Some(institution));
    assert_eq!(seeded.correlation_id, event.correlation_id);
    log_in(&app, &teachers[0].email, campus_tests::DEMO_PASSWORD).await;
    app.stop().await;
}

/// Seed flow: a reset link arrives at the real SMTP server and sets a new password once.
#[tokio::test]
async fn a_reset_link_by_email_changes_the_password() {
    let app = TestApp::spawn().await;
    create_institution(&app, "Reset College", "ana@gen.test", "old-password").await;

    let token = e_mailed_token(&app, "ana@gen.test").await;
    let guest = anonymous(&app);
    let reset = |password: &str| {
        guest.reset_password().body(types::ResetPasswordRequest {
            token: token.parse().unwrap(),
            password: password.parse().unwrap(),
        })
    };
    assert!(
        "short"
            .parse::<types::ResetPasswordRequestPassword>()
            .is_err(),
        "the spec's minLength reaches the generated client: a short password is not even sent"
    );
    let done = reset("new-password").send().await.expect("the reset");
    assert_eq!(done.status(), 204);
    assert_eq!(
        refusal(reset("another-password").send().await).0,
        400,
        "a token works once"
    );

    log_in(&app, "ana@gen.test", "new-password").await;
    let old = anonymous(&app)
        .login()
        .body(types::LoginRequest {
            email: "ana@gen.test".parse().unwrap(),
            password: "old-password".parse().unwrap(),
        })
        .send()
        .await;
    assert_eq!(refusal(old), (401, "unauthorized".into()));
    app.stop().await;
}

/// Seed flow: a teacher's note reaches the student as a notification naming the discipline.
#[tokio::test]
async fn a_grade_note_notifies_the_student() {
    let app = TestApp::spawn().await;
    create_institution(
        &app,
        "Grade College",
        "academic@grade.gen.test",
        "academic-pass",
    )
    .await;
    let academic = log_in(&app, "academic@grade.gen.test", "academic-pass").await;

    let member = |name: &str, email: &str| types::CreateMemberRequest {
        name: name.parse().unwrap(),
        email: email.parse().unwrap(),
    };
    let teacher = academic
        .create_teacher()
        .body(member("Tereza", "tereza@grade.gen.test"))
        .send()
        .await
        .expect("the teacher");
    assert_eq!(teacher.status(), 201);
    let student = academic
        .create_student()
        .body(member("Sofia", "sofia@grade.gen.test"))
        .send()
        .await
        .expect("the student");
    let discipline = academic
        .create_discipline()
        .body(types::CreateDisciplineRequest {
            name: "Compilers".parse().unwrap(),
        })
        .send()
        .await
        .expect("the discipline");
    let class = academic
        .create_class()
        .body(types::CreateClassRequest {
            discipline_id: discipline.id,
            teacher_id: teacher.id,
            period: "2026.2".parse().unwrap(),
        })
        .send()
        .await
        .expect("the class");
    assert_eq!(class.status(), 201);
    let enrol = || {
        academic
            .enroll_student()
            .class_id(class.id)
            .body(types::EnrollRequest {
                student_id: student.id,
            })
    };
    assert_eq!(enrol().send().await.expect("the enrolment").status(), 204);
    assert_eq!(refusal(enrol().send().await).0, 409, "enrolled once");
    let classes = academic.list_classes().send().await.expect("classes");
    let listed = classes
        .iter()
        .find(|c| c.id == class.id)
        .expect("the class is listed");
    assert_eq!(
        (
            listed.discipline_name.as_str(),
            listed.teacher_name.as_str()
        ),
        ("Compilers", "Tereza")
    );

    // Teachers and students set their passwords through the e-mailed reset link.
    set_password_by_email(&app, "tereza@grade.gen.test", "teacher-pass").await;
    set_password_by_email(&app, "sofia@grade.gen.test", "student-pass").await;
    let as_teacher = log_in(&app, "tereza@grade.gen.test", "teacher-pass").await;
    let as_student = log_in(&app, "sofia@grade.gen.test", "student-pass").await;
    let none = as_student
        .list_notifications()
        .send()
        .await
        .expect("notifications");
    assert!(none.is_empty(), "{none:?}");

    fn note(
        client: &api::Client,
        class: Uuid,
        student: Uuid,
        note: f64,
    ) -> api::builder::SetGradeNote<'_> {
        client
            .set_grade_note()
            .class_id(class)
            .student_id(student)
            .body(types::SetNoteRequest {
                exam: types::ExamName::N1,
                note,
            })
    }
    assert_eq!(
        refusal(note(&as_teacher, class.id, student.id, 10.5).send().await),
        (400, "invalid_request".into())
    );
    assert_eq!(
        refusal(note(&as_student, class.id, student.id, 8.5).send().await).0,
        403,
        "students grade nobody"
    );
    assert_eq!(
        note(&as_teacher, class.id, student.id, 8.5)
            .send()
            .await
            .expect("the note")
            .status(),
        204
    );

    let notifications = eventually("the grade notification", WAIT, || async {
        let list = as_student
            .list_notifications()
            .send()
            .await
            .expect("notifications");
        (!list.is_empty()).then(|| list.into_inner())
    })
    .await;
    assert_eq!(notifications.len(), 1, "{notifications:?}");
    let notification = &notifications[0];
    assert_eq!(notification.kind.to_string(), "grade_note_added");
    assert!(
        ["Compilers", "2026.2", "N1"]
            .iter()
            .all(|part| notification.message.contains(part)),
        "{}",
        notification.message
    );
    assert!(notification.read_at.is_none());
    assert!(notification.correlation_id.is_some());
    app.stop().await;
}

/// An operator lists events and tasks, reprocesses a finished task and event, and finds each
/// copy linked to its original.
#[tokio::test]
async fn an_operator_reprocesses_a_task_and_an_event() {
    const ADM: &str = "root@gen.test";
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some(ADM.into());
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await;
    let (institution, _) = create_institution(
        &app,
        "Ops College",
        "academic@ops.gen.test",
        "academic-pass",
    )
    .await;
    let adm = log_in(&app, ADM, "root-password").await;
    assert_eq!(
        refusal(anonymous(&app).list_tasks().send().await),
        (401, "unauthorized".into())
    );

    let event = eventually(
        "the InstitutionCreated event to be dispatched",
        WAIT,
        || async {
            let page = adm
                .list_events()
                .event_type("InstitutionCreated")
                .institution_id(institution)
                .send()
                .await
                .expect("events");
            assert!(page.items.len() <= 1, "{page:?}");
            page.items
                .first()
                .filter(|e| is(&e.status, "dispatched"))
                .cloned()
        },
    )
    .await;
    assert!(event.dispatched_at.is_some() && event.reprocessed_from.is_none());
    let task = seeding_task(&adm, event.id).await;
    assert_eq!(task.event_id, Some(event.id));
    assert!(task.finished_at.is_some() && task.errors.is_empty());

    // A copy of the task: same lineage and correlation id, linked to the original, and it runs.
    let copy = adm
        .reprocess_task()
        .id(task.id)
        .send()
        .await
        .expect("the task is reprocessed");
    assert_eq!(copy.status(), 201);
    assert_ne!(copy.id, task.id);
    let copied = eventually("the task's copy to succeed", WAIT, || async {
        let detail = adm.get_task().id(copy.id).send().await.expect("the copy");
        is(&detail.task.status, "succeeded").then(|| detail.into_inner().task)
    })
    .await;
    assert_eq!(copied.reprocessed_from, Some(task.id));
    assert_eq!(copied.lineage_id, task.lineage_id);
    assert_eq!(copied.correlation_id, task.correlation_id);
    assert_eq!(copied.task_type, task.task_type);
    assert!(copied.reprocess_request_id.is_some());
    let original = adm
        .get_task()
        .id(task.id)
        .send()
        .await
        .expect("the original");
    assert_eq!(original.copies, vec![copy.id]);
    assert_eq!(
        original.task.status.to_string(),
        "succeeded",
        "the original never changes"
    );
    let by_event = adm
        .list_tasks()
        .event_id(event.id)
        .send()
        .await
        .expect("tasks");
    assert!(by_event
        .items
        .iter()
        .any(|t| t.id == copy.id && t.reprocessed_from == Some(task.id)));

    // A copy of the event: linked to it, dispatched again, producing tasks of its own.
    let event_copy = adm
        .reprocess_event()
        .id(event.id)
        .send()
        .await
        .expect("the event is reprocessed");
    assert_eq!(event_copy.status(), 201);
    let copied = eventually("the event's copy to fan out", WAIT, || async {
        let detail = adm
            .get_event()
            .id(event_copy.id)
            .send()
            .await
            .expect("the copy");
        let done = is(&detail.event.status, "dispatched")
            && !detail.tasks.is_empty()
            && detail.tasks.iter().all(|t| is(&t.status, "succeeded"));
        done.then(|| detail.into_inner())
    })
    .await;
    assert_eq!(copied.event.reprocessed_from, Some(event.id));
    assert_eq!(copied.event.event_type, "InstitutionCreated");
    assert_eq!(copied.event.correlation_id, event.correlation_id);
    assert!(copied
        .tasks
        .iter()
        .all(|t| t.event_id == Some(event_copy.id)));
    let original = adm
        .get_event()
        .id(event.id)
        .send()
        .await
        .expect("the original");
    assert_eq!(original.copies, vec![event_copy.id]);
    assert_eq!(original.event.status.to_string(), "dispatched");
    app.stop().await;
}
