//! One correlation id from the request to every effect, on real PostgreSQL and a real SMTP
//! server: a W3C `traceparent` followed to the response headers, the event, the task, the
//! task's log lines and the e-mail's `X-Correlation-Id` as the SMTP server received it; an
//! `X-Request-Id` followed to the grade event, its task, the student's notification and the
//! log lines; and reprocessing, whose copies keep the original's id and carry the operator's
//! request id beside it — live and archived, both ids find them.

use campus_core::engine::retention::RetentionWindows;
use campus_ports::Archive;
use campus_tests::{eventually, TestApp, DEMO_PASSWORD};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// The app's log lines (this process's), as the default text format writes them.
#[derive(Clone)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Installed once per test process, before any app starts (the harness's own subscriber,
    /// `TEST_LOG=1`, then finds one in place and stays out), with the engine's debug lines.
    fn capture() -> Logs {
        static LOGS: OnceLock<Logs> = OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs(Arc::default());
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "info,campus=debug,sqlx=warn",
                ))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .try_init()
                .expect("no other log subscriber in this test process");
            logs
        })
        .clone()
    }

    /// Waits for a line naming both `correlation_id` and `task_type` and returns it.
    async fn line_with(&self, correlation_id: &str, task_type: &str) -> String {
        let what = format!("a log line of a {task_type} task with correlation id {correlation_id}");
        eventually(&what, WAIT, || async {
            let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
            // The field as `tracing` writes a text value (quoted) or a displayed one.
            let quoted = format!("correlation_id=\"{correlation_id}\"");
            let bare = format!("correlation_id={correlation_id}");
            text.lines()
                .find(|l| l.contains(task_type) && (l.contains(&quoted) || l.contains(&bare)))
                .map(str::to_string)
        })
        .await
    }
}

/// The value of header `name` in the header section of a raw RFC 5322 message.
fn mail_header(message: &str, name: &str) -> Option<String> {
    message.lines().take_while(|l| !l.is_empty()).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// A response's header as text.
fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
        .to_string()
}

/// The four fields of a `traceparent`, checked to be version 00's shape.
fn traceparent_fields(raw: &str) -> [String; 4] {
    let fields: Vec<String> = raw.split('-').map(str::to_string).collect();
    let lengths: Vec<usize> = fields.iter().map(String::len).collect();
    assert_eq!(lengths, [2, 32, 16, 2], "{raw}");
    assert!(
        raw.bytes()
            .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "lowercase hex: {raw}"
    );
    assert_eq!(fields[0], "00", "{raw}");
    assert_ne!(fields[2], "0".repeat(16), "{raw}");
    fields.try_into().unwrap()
}

/// Every task with `correlation_id`: its type, status and the type of the event it came
/// from when that event has the same id.
async fn tasks_and_events(
    app: &TestApp,
    correlation_id: &str,
) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT t.task_type, t.status, e.event_type FROM tasks t
         LEFT JOIN domain_events e ON e.id = t.event_id AND e.correlation_id = t.correlation_id
         WHERE t.correlation_id = $1 ORDER BY t.id",
    )
    .bind(correlation_id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_traceparent_is_followed_to_the_event_the_task_the_logs_and_the_email() {
    let logs = Logs::capture();
    let app = TestApp::spawn().await;
    app.create_institution("Trace College", "ana@trace.test", "password-1")
        .await;
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let parent = &uuid::Uuid::new_v4().simple().to_string()[..16];
    // Flags 00 (not sampled upstream): carried as they came, not replaced by the default 01.
    let r = app
        .http
        .post(format!("{}/auth/reset-password-token", app.base))
        .header("traceparent", format!("00-{trace}-{parent}-00"))
        .header("x-correlation-id", "loses-to-traceparent")
        .json(&json!({"email": "ana@trace.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(
        header(&r, "x-correlation-id"),
        trace,
        "the trace id is the id"
    );
    let [_, trace_id, span_id, flags] = traceparent_fields(&header(&r, "traceparent"));
    assert_eq!((trace_id.as_str(), flags.as_str()), (trace.as_str(), "00"));
    assert_ne!(span_id, parent, "the response names a span of its own");

    // The e-mail as the SMTP server received it.
    let mail = app.smtp.wait_for_messages("ana@trace.test", 1).await;
    assert_eq!(
        mail_header(&mail[0], "X-Correlation-Id").as_deref(),
        Some(trace.as_str()),
        "{}",
        mail[0]
    );

    // The event and its task carry it (and nothing else does).
    app.wait_for_idle().await;
    assert_eq!(
        tasks_and_events(&app, &trace).await,
        [(
            "send_reset_password_email".into(),
            "succeeded".into(),
            Some("ResetPasswordTokenCreated".into())
        )]
    );
    let events: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM domain_events WHERE correlation_id = $1")
            .bind(&trace)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(events, ["ResetPasswordTokenCreated"]);
    assert_eq!(
        app.scalar::<i64>(
            "SELECT count(*) FROM domain_events WHERE correlation_id = 'loses-to-traceparent'"
        )
        .await,
        0
    );

    // The task's processing logged under it.
    let line = logs.line_with(&trace, "send_reset_password_email").await;
    assert!(line.contains("task"), "{line}");
    app.stop().await;
}

#[tokio::test]
async fn an_x_request_id_is_followed_to_the_grade_event_its_task_and_the_notification() {
    let logs = Logs::capture();
    let app = TestApp::spawn().await;
    let (institution, _) = app
        .create_institution("Request College", "ana@request.test", "password-1")
        .await;
    // The demo seed gives the institution teachers, classes and enrolled students.
    app.wait_for_idle().await;
    let (class_id, student_id, teacher, student): (String, String, String, String) =
        sqlx::query_as(
            "SELECT c.id::text, s.id::text, t.email, s.email FROM classes c
             JOIN users t ON t.id = c.teacher_id
             JOIN enrollments e ON e.class_id = c.id
             JOIN users s ON s.id = e.student_id
             WHERE c.institution_id = $1::uuid ORDER BY c.id, s.id LIMIT 1",
        )
        .bind(&institution)
        .fetch_one(&app.pool)
        .await
        .expect("a demo class with a student");
    let teacher_token = app.login(&teacher, DEMO_PASSWORD).await;
    let student_token = app.login(&student, DEMO_PASSWORD).await;

    // The demo seed sets N1 and N2, never N3: this note is a change.
    let request_id = format!("grade-{}", uuid::Uuid::new_v4().simple());
    let r = app
        .http
        .put(format!(
            "{}/teacher/classes/{class_id}/students/{student_id}/notes",
            app.base
        ))
        .bearer_auth(&teacher_token)
        .header("x-request-id", &request_id)
        .json(&json!({"exam": "N3", "note": 7.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(header(&r, "x-correlation-id"), request_id);
    // Not a trace id itself: the response's trace is the one the id stands for.
    let [_, trace_id, _, flags] = traceparent_fields(&header(&r, "traceparent"));
    let derived = campus::web::request::trace_id_of(&request_id);
    assert_eq!(
        (trace_id, flags.as_str()),
        (format!("{derived:032x}"), "01")
    );

    // The student's notification, through the API and in its row.
    let item = eventually("the grade notification", WAIT, || async {
        let list = app
            .get("/student/notifications", Some(&student_token))
            .await;
        list.body
            .as_array()?
            .iter()
            .find(|n| n["correlation_id"] == request_id.as_str())
            .cloned()
    })
    .await;
    assert!(item["message"].as_str().unwrap().contains("N3"), "{item}");
    app.wait_for_idle().await;
    assert_eq!(
        tasks_and_events(&app, &request_id).await,
        [(
            "notify_student_of_grade_note".into(),
            "succeeded".into(),
            Some("ExamGradeNoteAdded".into())
        )]
    );
    let notified: Vec<(String, String)> =
        sqlx::query_as("SELECT user_id::text, kind FROM notifications WHERE correlation_id = $1")
            .bind(&request_id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(notified, [(student_id.clone(), "grade_note_added".into())]);
    // Every event it led to: the grade, and the notification the task created.
    let events: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT event_type, payload ->> 'class_id', payload ->> 'student_id' FROM domain_events
         WHERE correlation_id = $1 ORDER BY id",
    )
    .bind(&request_id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        events,
        [
            (
                "ExamGradeNoteAdded".to_string(),
                Some(class_id.clone()),
                Some(student_id.clone())
            ),
            ("NotificationCreated".to_string(), None, None),
        ]
    );

    let line = logs
        .line_with(&request_id, "notify_student_of_grade_note")
        .await;
    assert!(line.contains("task"), "{line}");
    app.stop().await;
}

/// `GET path` as the Adm user: the ids of the listed items.
async fn listed(app: &TestApp, adm: &str, path: &str) -> Vec<String> {
    let r = app.get(path, Some(adm)).await;
    assert_eq!(r.status, 200, "{path}: {r:?}");
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_copy_keeps_the_original_id_and_carries_the_operators_request_id() {
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@copies.test".into());
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await;
    let adm = app.login("root@copies.test", "root-password").await;
    let original = format!("signup-{}", uuid::Uuid::new_v4().simple());
    let r = app
        .http
        .post(format!("{}/institutions", app.base))
        .header("x-correlation-id", &original)
        .json(&json!({"name": "Copy College", "academic": {"name": "A", "email": "a@copies.test", "password": "password-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    app.wait_for_idle().await;
    let (event_id, task_id): (String, String) = sqlx::query_as(
        "SELECT e.id::text, t.id::text FROM domain_events e JOIN tasks t ON t.event_id = e.id
         WHERE e.event_type = 'InstitutionCreated' AND e.correlation_id = $1 AND t.status = 'succeeded'",
    )
    .bind(&original)
    .fetch_one(&app.pool)
    .await
    .unwrap();

    // The operator reprocesses the seed task, then its event, each with a request id.
    let operator = |what: &str| format!("op-{what}-{}", uuid::Uuid::new_v4().simple());
    let (op_task, op_event) = (operator("task"), operator("event"));
    let reprocess = |path: String, request_id: String| {
        let request = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&adm)
            .header("x-request-id", request_id)
            .json(&json!({}));
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status().as_u16(), 201, "{path}");
            let body: Value = r.json().await.unwrap();
            body["id"].as_str().unwrap().to_string()
        }
    };
    let task_copy = reprocess(format!("/adm/tasks/{task_id}/reprocess"), op_task.clone()).await;
    let event_copy = reprocess(
        format!("/adm/events/{event_id}/reprocess"),
        op_event.clone(),
    )
    .await;
    app.wait_for_idle().await;

    // The copies: the original's correlation id, the operator's request id beside it; the
    // event copy's new task inherits both.
    let task_item = &app
        .get(&format!("/adm/tasks/{task_copy}"), Some(&adm))
        .await
        .body["task"];
    assert_eq!(
        (
            task_item["correlation_id"].as_str(),
            task_item["reprocess_request_id"].as_str(),
            task_item["reprocessed_from"].as_str(),
            task_item["status"].as_str()
        ),
        (
            Some(original.as_str()),
            Some(op_task.as_str()),
            Some(task_id.as_str()),
            Some("succeeded")
        )
    );
    let event_detail = app
        .get(&format!("/adm/events/{event_copy}"), Some(&adm))
        .await
        .body;
    assert_eq!(
        (
            event_detail["event"]["correlation_id"].as_str(),
            event_detail["event"]["reprocess_request_id"].as_str()
        ),
        (Some(original.as_str()), Some(op_event.as_str()))
    );
    let produced = event_detail["tasks"].as_array().unwrap();
    assert_eq!(produced.len(), 1, "{event_detail}");
    assert_eq!(
        (
            produced[0]["correlation_id"].as_str(),
            produced[0]["reprocess_request_id"].as_str()
        ),
        (Some(original.as_str()), Some(op_event.as_str()))
    );
    let event_copy_task = produced[0]["id"].as_str().unwrap().to_string();
    let original_item = &app
        .get(&format!("/adm/tasks/{task_id}"), Some(&adm))
        .await
        .body["task"];
    assert!(
        original_item["reprocess_request_id"].is_null(),
        "the original never changes"
    );

    // Both ids find a copy: the operator's finds only what that request made; the
    // original's finds the original and every copy.
    let tasks = |id: &str, archived: &str| {
        format!("/adm/tasks?correlation_id={id}&archived={archived}&limit=200")
    };
    assert_eq!(
        listed(&app, &adm, &tasks(&op_task, "live")).await,
        [task_copy.as_str()]
    );
    assert_eq!(
        listed(&app, &adm, &tasks(&op_event, "live")).await,
        [event_copy_task.as_str()]
    );
    let by_original = listed(&app, &adm, &tasks(&original, "live")).await;
    for id in [&task_id, &task_copy, &event_copy_task] {
        assert!(by_original.contains(id), "{id} in {by_original:?}");
    }
    let events = |id: &str| format!("/adm/events?correlation_id={id}&limit=200");
    assert_eq!(
        listed(&app, &adm, &events(&op_event)).await,
        [event_copy.as_str()]
    );
    let by_original = listed(&app, &adm, &events(&original)).await;
    assert!(by_original.contains(&event_id) && by_original.contains(&event_copy));

    // Archived, the rows keep both ids and both still find them.
    for sql in [
        "UPDATE tasks SET finished_at = finished_at - interval '2 hours'",
        "UPDATE domain_events SET dispatched_at = dispatched_at - interval '2 hours'",
    ] {
        sqlx::query(sql).execute(&app.pool).await.unwrap();
    }
    let windows = RetentionWindows {
        finished: Duration::from_secs(3600),
        dead: Duration::from_secs(30 * 86_400),
    };
    while app
        .store()
        .archive_batch(&windows, 1000)
        .await
        .unwrap()
        .total()
        > 0
    {}
    let archived: i64 = app
        .scalar(&format!(
            "SELECT count(*) FROM tasks_processed WHERE id = '{task_copy}' AND reprocess_request_id = '{op_task}'
               AND correlation_id = '{original}'"
        ))
        .await;
    assert_eq!(archived, 1, "the copy moved with both ids");
    assert_eq!(
        listed(&app, &adm, &tasks(&op_task, "archived")).await,
        [task_copy.as_str()]
    );
    let by_original = listed(&app, &adm, &tasks(&original, "all")).await;
    assert!(by_original.contains(&task_id) && by_original.contains(&task_copy));
    assert_eq!(
        listed(
            &app,
            &adm,
            &format!("{}&archived=archived", events(&op_event))
        )
        .await,
        [event_copy]
    );
    app.stop().await;
}
