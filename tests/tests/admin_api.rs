//! The operators' read API: filters, keyset pagination under concurrent inserts, details with
//! lineage, summary, and tenant scoping.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_core::ids::InstitutionId;
use campus_ports::{ClaimedTask, EventStore, NewEvent, NewTask, TaskQueue};
use campus_tests::{eventually, TestApp};
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

struct Broken;

#[async_trait]
impl TaskHandler for Broken {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        Err(TaskError::permanent("out of paper"))
    }
}

/// The count of dead tasks in a `/adm/summary` body.
fn dead_tasks(summary: &serde_json::Value) -> serde_json::Value {
    summary["tasks_by_status"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["status"] == "dead")
        .unwrap()["count"]
        .clone()
}

fn event(inst: InstitutionId, payload: &str, corr: &str) -> NewEvent {
    NewEvent {
        event_type: "ReportRequested".into(),
        aggregate_type: "Report".into(),
        aggregate_id: 1,
        institution_id: Some(inst),
        payload: payload.into(),
        correlation_id: Some(corr.into()),
    }
}

#[tokio::test]
async fn operators_filter_page_and_inspect() {
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@admin.test".into());
            s.admin_password = Some("root-password".into());
        },
        |c| {
            c.default_registry()
                .on_event("ReportRequested", "print_report", "print_report")
                .task("print_report", Broken)
        },
    )
    .await;
    let adm = app.login("root@admin.test", "root-password").await;
    let (a, _) = app
        .create_institution("A", "a@admin.test", "password-a")
        .await;
    let (b, _) = app
        .create_institution("B", "b@admin.test", "password-b")
        .await;
    let academic_a = app.login("a@admin.test", "password-a").await;
    let academic_b = app.login("b@admin.test", "password-b").await;
    let inst = |s: &str| InstitutionId(uuid::Uuid::parse_str(s).unwrap().as_u128());

    let store = app.store();
    store
        .append(&[event(
            inst(&a),
            r#"{"report":"Grades of Zebra class"}"#,
            "corr-zebra",
        )])
        .await
        .unwrap();
    store
        .append(&[event(inst(&b), r#"{"report":"attendance"}"#, "corr-b")])
        .await
        .unwrap();
    app.wait_for_idle().await;

    // Dead tasks of one institution, with their errors.
    let dead = app
        .get(
            &format!("/adm/tasks?status=dead&institution_id={a}"),
            Some(&adm),
        )
        .await;
    assert_eq!(dead.status, 200, "{dead:?}");
    let items = dead.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["task_type"], "print_report");
    assert_eq!(items[0]["errors"][0]["message"], "out of paper");
    let task_id = items[0]["id"].as_str().unwrap().to_string();
    let event_id = items[0]["event_id"].as_str().unwrap().to_string();

    // Filters: text in the payload, correlation id, has_errors, type; bad status → 400.
    let found = app.get("/adm/events?q=zebra", Some(&adm)).await.body;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    assert_eq!(found["items"][0]["id"], event_id.as_str());
    // The daemon's maintenance leader indexes the payload texts; the same search then reads
    // the index and answers the same.
    eventually(
        "the zebra's text in the search index",
        Duration::from_secs(20),
        || async {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM event_texts WHERE body ILIKE '%zebra%'")
                    .fetch_one(&app.pool)
                    .await
                    .unwrap();
            (n == 1).then_some(())
        },
    )
    .await;
    let indexed = app.get("/adm/events?q=zebra", Some(&adm)).await.body;
    assert_eq!(indexed["items"].as_array().unwrap().len(), 1);
    assert_eq!(indexed["items"][0]["id"], event_id.as_str());
    let by_corr = app
        .get("/adm/tasks?correlation_id=corr-b", Some(&adm))
        .await
        .body;
    assert_eq!(by_corr["items"].as_array().unwrap().len(), 1);
    let with_errors = app.get("/adm/tasks?has_errors=true", Some(&adm)).await.body;
    assert_eq!(with_errors["items"].as_array().unwrap().len(), 2);
    let by_type = app
        .get("/adm/events?event_type=InstitutionCreated", Some(&adm))
        .await
        .body;
    assert_eq!(by_type["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.get("/adm/tasks?status=exploded", Some(&adm))
            .await
            .status,
        400
    );

    // Scoping: an Academic sees only their institution, whatever they ask for.
    let b_sees = app
        .get("/adm/tasks?has_errors=true", Some(&academic_b))
        .await
        .body;
    let b_items = b_sees["items"].as_array().unwrap();
    assert_eq!(b_items.len(), 1);
    assert!(b_items.iter().all(|t| t["institution_id"] == b.as_str()));
    assert!(app
        .get(&format!("/adm/tasks?institution_id={a}"), Some(&academic_b))
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(
        app.get(&format!("/adm/tasks/{task_id}"), Some(&academic_b))
            .await
            .status,
        404
    );
    assert_eq!(
        app.get(&format!("/adm/events/{event_id}"), Some(&academic_b))
            .await
            .status,
        404
    );
    let student = app
        .post(
            "/academic/students",
            Some(&academic_a),
            json!({"name": "S", "email": "s@admin.test"}),
        )
        .await;
    assert_eq!(student.status, 201);

    // Details and lineage.
    let copy = app
        .post(
            &format!("/adm/tasks/{task_id}/reprocess"),
            Some(&academic_a),
            json!({}),
        )
        .await;
    assert_eq!(copy.status, 201);
    let copy_id = copy.body["id"].as_str().unwrap().to_string();
    app.wait_for_idle().await;
    let detail = app
        .get(&format!("/adm/tasks/{task_id}"), Some(&academic_a))
        .await
        .body;
    assert_eq!(detail["task"]["status"], "dead");
    assert_eq!(detail["copies"], json!([copy_id]));
    let copy_detail = app
        .get(&format!("/adm/tasks/{copy_id}"), Some(&adm))
        .await
        .body;
    assert_eq!(copy_detail["task"]["reprocessed_from"], task_id.as_str());
    assert_eq!(
        copy_detail["task"]["lineage_id"],
        detail["task"]["lineage_id"]
    );
    let event_detail = app
        .get(&format!("/adm/events/{event_id}"), Some(&adm))
        .await
        .body;
    assert_eq!(
        event_detail["event"]["payload"]["report"],
        "Grades of Zebra class"
    );
    let produced = event_detail["tasks"].as_array().unwrap();
    assert_eq!(
        produced.len(),
        2,
        "the task and its copy both come from the event: {event_detail}"
    );
    assert!(produced.iter().any(|t| t["id"] == task_id.as_str()));
    assert!(produced
        .iter()
        .any(|t| t["reprocessed_from"] == task_id.as_str()));

    // Summary.
    let summary = app.get("/adm/summary", Some(&adm)).await;
    assert_eq!(summary.status, 200);
    let dead_count = dead_tasks(&summary.body);
    assert_eq!(dead_count, 3, "{summary:?}");
    assert_eq!(summary.body["per_minute"].as_array().unwrap().len(), 60);
    assert!(summary.body["failure_rate"].as_f64().unwrap() > 0.0);
    let scoped = app.get("/adm/summary", Some(&academic_b)).await.body;
    let b_dead = dead_tasks(&scoped);
    assert_eq!(b_dead, 1);
    assert_eq!(app.get("/adm/summary", None).await.status, 401);

    // Summary filters: by type and by institution; small tables are counted exactly.
    let by_type = app
        .get("/adm/summary?task_type=print_report", Some(&adm))
        .await
        .body;
    let types = by_type["tasks_by_type"].as_array().unwrap();
    assert!(!types.is_empty());
    assert!(
        types.iter().all(|t| t["task_type"] == "print_report"),
        "{by_type}"
    );
    let statuses = by_type["tasks_by_status"].as_array().unwrap();
    assert!(statuses.iter().all(|c| c["approximate"] == false));
    let total: i64 = statuses.iter().map(|c| c["count"].as_i64().unwrap()).sum();
    assert_eq!(total, 3, "the two originals and the copy: {by_type}");
    let of_a = app
        .get(&format!("/adm/summary?institution_id={a}"), Some(&adm))
        .await
        .body;
    let a_dead = dead_tasks(&of_a);
    assert_eq!(a_dead, 2, "A's original and its copy are dead: {of_a}");
    let b_asks_for_a = app
        .get(
            &format!("/adm/summary?institution_id={a}"),
            Some(&academic_b),
        )
        .await
        .body;
    assert_eq!(
        b_asks_for_a["tasks_by_status"],
        json!([]),
        "B sees nothing of A"
    );
    app.stop().await;
}

#[tokio::test]
async fn pages_stay_stable_while_rows_are_inserted() {
    let app = TestApp::spawn_custom(
        |s| {
            s.admin_email = Some("root@pages.test".into());
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await;
    let adm = app.login("root@pages.test", "root-password").await;
    let task = |key: String| NewTask {
        task_type: "noop".into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: Some("paging".into()),
        max_attempts: 1,
        idempotency_key: Some(key),
        run_at: None,
        priority: Default::default(),
    };
    app.store()
        .enqueue(
            &(0..35)
                .map(|i| task(format!("first-{i}")))
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    for page in 0.. {
        let path = match &before {
            Some(b) => format!("/adm/tasks?correlation_id=paging&limit=10&before={b}"),
            None => "/adm/tasks?correlation_id=paging&limit=10".to_string(),
        };
        let body = app.get(&path, Some(&adm)).await.body;
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string()),
        );
        // New rows arrive while a person pages through older ones.
        app.store()
            .enqueue(&[task(format!("later-{page}"))])
            .await
            .unwrap();
        match body["next_before"].as_str() {
            Some(b) => before = Some(b.to_string()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no task appears twice");
    assert_eq!(
        seen.len(),
        35,
        "exactly the tasks that existed when paging began"
    );
    let mut sorted = seen.clone();
    sorted.sort_by(|x, y| y.cmp(x));
    assert_eq!(seen, sorted, "newest first");
    app.stop().await;
}
