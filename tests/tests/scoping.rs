//! Tenant scoping of every `/adm` route: an Academic user reaches their institution only (lists,
//! details, summary, reprocess one, reprocess in bulk), Teacher and Student tokens are refused
//! everywhere, and no refused request writes a row.

use campus_tests::extra::Tenants;
use campus_tests::Reply;
use serde_json::{json, Value};

fn items(r: &Reply) -> Vec<Value> {
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a page of items: {r:?}"))
        .clone()
}

fn ids_of(items: &[Value]) -> Vec<String> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The count of `status` in a summary's `list` (events_by_status / tasks_by_status).
fn count(summary: &Value, list: &str, status: &str) -> i64 {
    summary[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} in {summary}"))
        .iter()
        .find(|c| c["status"] == status)
        .map_or(0, |c| c["count"].as_i64().unwrap())
}

#[tokio::test]
async fn an_academic_reaches_only_their_institution_on_every_adm_route() {
    let t = Tenants::spawn("scope.test").await;
    let app = &t.app;
    let (a, b) = (t.a.as_str(), t.b.as_str());
    let academic = app.login("alpha@scope.test", "password-a").await;
    let adm = app.login("root@scope.test", "root-password").await;
    let (a_dead, b_dead) = (t.dead_reports(a).await, t.dead_reports(b).await);
    let (a_events, b_events) = (t.report_events(a).await, t.report_events(b).await);
    assert_eq!((a_dead.len(), b_dead.len()), (2, 1));
    assert_eq!((a_events.len(), b_events.len()), (2, 1));

    // GET /adm/events: only A's events, whatever institution the query asks for.
    let mine = app
        .get(
            "/adm/events?limit=200&event_type=ReportRequested",
            Some(&academic),
        )
        .await;
    assert_eq!(mine.status, 200, "{mine:?}");
    let listed = items(&mine);
    assert!(!listed.is_empty());
    assert!(
        listed.iter().all(|e| e["institution_id"] == a),
        "{listed:?}"
    );
    let listed = ids_of(&listed);
    assert!(a_events.iter().all(|e| listed.contains(e)));
    let theirs = app
        .get(&format!("/adm/events?institution_id={b}"), Some(&academic))
        .await;
    // Asking for another institution narrows to nothing (the scope and the filter combine).
    assert_eq!(
        (theirs.status, items(&theirs).len()),
        (200, 0),
        "A asked for B's events: {theirs:?}"
    );
    // The Adm user, for contrast, sees B's event.
    let all = app
        .get(
            &format!("/adm/events?institution_id={b}&event_type=ReportRequested"),
            Some(&adm),
        )
        .await;
    assert!(ids_of(&items(&all)).contains(&b_events[0]));

    // GET /adm/events/{id}
    let own = app
        .get(&format!("/adm/events/{}", a_events[0]), Some(&academic))
        .await;
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(own.body["event"]["id"], a_events[0].as_str());
    let other = app
        .get(&format!("/adm/events/{}", b_events[0]), Some(&academic))
        .await;
    assert_eq!(other.status, 404, "{other:?}");

    // GET /adm/tasks
    let mine = app
        .get(
            "/adm/tasks?limit=200&task_type=print_report",
            Some(&academic),
        )
        .await;
    assert_eq!(mine.status, 200, "{mine:?}");
    let listed = items(&mine);
    assert!(
        listed.iter().all(|t| t["institution_id"] == a),
        "{listed:?}"
    );
    let listed = ids_of(&listed);
    assert!(a_dead.iter().all(|t| listed.contains(t)));
    assert!(!listed.contains(&b_dead[0]));
    let theirs = app
        .get(
            &format!("/adm/tasks?institution_id={b}&status=dead"),
            Some(&academic),
        )
        .await;
    assert_eq!(
        (theirs.status, items(&theirs).len()),
        (200, 0),
        "A asked for B's tasks: {theirs:?}"
    );

    // GET /adm/tasks/{id}
    let own = app
        .get(&format!("/adm/tasks/{}", a_dead[0]), Some(&academic))
        .await;
    assert_eq!(own.status, 200, "{own:?}");
    assert_eq!(own.body["task"]["id"], a_dead[0].as_str());
    let other = app
        .get(&format!("/adm/tasks/{}", b_dead[0]), Some(&academic))
        .await;
    assert_eq!(other.status, 404, "{other:?}");

    // GET /adm/summary: A's counts (the Adm user's include B's dead task).
    let summary = app.get("/adm/summary", Some(&academic)).await;
    assert_eq!(summary.status, 200, "{summary:?}");
    let everything = app.get("/adm/summary", Some(&adm)).await;
    assert_eq!(count(&summary.body, "tasks_by_status", "dead"), 2);
    assert_eq!(count(&everything.body, "tasks_by_status", "dead"), 3);
    let theirs = app
        .get(&format!("/adm/summary?institution_id={b}"), Some(&academic))
        .await;
    assert_eq!(theirs.status, 200, "{theirs:?}");
    assert!(
        theirs.body["tasks_by_status"]
            .as_array()
            .unwrap()
            .is_empty()
            && theirs.body["events_by_status"]
                .as_array()
                .unwrap()
                .is_empty(),
        "A asked for B's summary and saw counts: {theirs:?}"
    );

    // POST /adm/events/{id}/reprocess and /adm/tasks/{id}/reprocess on B's rows: 404, no row.
    let before = t.rows().await;
    let r = app
        .post(
            &format!("/adm/events/{}/reprocess", b_events[0]),
            Some(&academic),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let r = app
        .post(
            &format!("/adm/tasks/{}/reprocess", b_dead[0]),
            Some(&academic),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    // POST /adm/tasks/reprocess naming B: refused, nothing copied.
    let r = app
        .post(
            "/adm/tasks/reprocess",
            Some(&academic),
            json!({"institution_id": b, "task_type": "print_report"}),
        )
        .await;
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(t.rows().await, before, "a refused request wrote rows");

    // The same actions on A's rows work, and the bulk copy takes A's dead tasks only.
    let r = app
        .post(
            &format!("/adm/events/{}/reprocess", a_events[0]),
            Some(&academic),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let event_copy_of: String = app
        .scalar(&format!(
            "SELECT reprocessed_from::text FROM domain_events WHERE id = '{}'",
            r.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(event_copy_of, a_events[0]);
    // The copy fans out again: one more dead print_report task for A (the printer is broken).
    app.wait_for_idle().await;
    let a_dead = t.dead_reports(a).await;
    assert_eq!(a_dead.len(), 3);
    let r = app
        .post(
            "/adm/tasks/reprocess",
            Some(&academic),
            json!({"task_type": "print_report", "status": "dead"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["copies"].as_u64()),
        (200, Some(3)),
        "{r:?}"
    );
    let mut copied: Vec<String> = sqlx::query_scalar(
        "SELECT reprocessed_from::text FROM tasks WHERE reprocessed_from IS NOT NULL AND task_type = 'print_report'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    copied.sort();
    assert_eq!(copied, a_dead, "only A's dead tasks were copied");
    app.wait_for_idle().await;
    t.app.stop().await;
}

#[tokio::test]
async fn teacher_and_student_tokens_are_refused_on_every_adm_route() {
    let t = Tenants::spawn("refuse.test").await;
    let app = &t.app;
    let a = t.a.as_str();
    let (a_dead, a_events) = (t.dead_reports(a).await, t.report_events(a).await);
    let (teacher, teacher_pw) = t.demo_user(a, "teacher").await;
    let (student, student_pw) = t.demo_user(a, "student").await;
    let tokens = [
        ("teacher", app.login(&teacher, &teacher_pw).await),
        ("student", app.login(&student, &student_pw).await),
    ];
    let before = t.rows().await;
    let gets = [
        "/adm/events".to_string(),
        format!("/adm/events/{}", a_events[0]),
        "/adm/tasks".to_string(),
        format!("/adm/tasks/{}", a_dead[0]),
        "/adm/summary".to_string(),
    ];
    let posts = [
        (format!("/adm/events/{}/reprocess", a_events[0]), json!({})),
        (format!("/adm/tasks/{}/reprocess", a_dead[0]), json!({})),
        ("/adm/tasks/reprocess".to_string(), json!({})),
        (
            "/adm/tasks/reprocess".to_string(),
            json!({"institution_id": a, "task_type": "print_report"}),
        ),
    ];
    for (who, token) in &tokens {
        for path in &gets {
            let r = app.get(path, Some(token)).await;
            assert_eq!(r.status, 403, "{who} on GET {path}: {r:?}");
            assert!(r.body.get("items").is_none() && r.body.get("event").is_none());
        }
        for (path, body) in &posts {
            let r = app.post(path, Some(token), body.clone()).await;
            assert_eq!(r.status, 403, "{who} on POST {path}: {r:?}");
        }
    }
    // Without a token: 401 everywhere.
    for path in &gets {
        assert_eq!(app.get(path, None).await.status, 401, "GET {path}");
    }
    for (path, body) in &posts {
        assert_eq!(
            app.post(path, None, body.clone()).await.status,
            401,
            "POST {path}"
        );
    }
    assert_eq!(t.rows().await, before, "a refused request wrote rows");
    t.app.stop().await;
}
