//! `GET /metrics`: Prometheus text that a Prometheus parser reads, whose counters and
//! histograms move by exactly the work done (3 tasks succeed; 1 fails, is retried and dies;
//! an institution's events are recorded and dispatched; requests are counted by route
//! template), behind `CAMPUS_METRICS_TOKEN` when it is set.

use campus_ports::{NewTask, TaskQueue};
use campus_tests::extra::AlwaysFails;
use campus_tests::TestApp;
use prometheus_parse::{Scrape, Value};
use std::time::Duration;

const TOKEN: &str = "scrape-token-for-tests";

fn task(task_type: &str, key: String, max_attempts: u32) -> NewTask {
    NewTask {
        task_type: task_type.into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts,
        idempotency_key: Some(key),
        run_at: None,
        priority: Default::default(),
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let resp = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = resp.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The value of counter or gauge `name` with (at least) `labels`, 0 when absent.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(_) | Value::Summary(_) => 0.0,
        })
        .sum()
}

/// The sample count of histogram `name` with `labels`.
fn histogram_count(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn counters_and_histograms_move_by_the_work_done() {
    let app = TestApp::spawn_custom(
        |s| s.metrics_token = Some(TOKEN.into()),
        |c| c.default_registry().task("always_fails", AlwaysFails),
    )
    .await;
    // Without the token, or with another: 401 as JSON.
    let anonymous = app.get("/metrics", None).await;
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert_eq!(anonymous.body["code"], "unauthorized");
    assert_eq!(app.get("/metrics", Some("wrong")).await.status, 401);

    let before = scrape(&app).await;
    let run = uuid::Uuid::now_v7();
    let mut tasks: Vec<NewTask> = (0..3)
        .map(|i| task("noop", format!("{run}-ok-{i}"), 1))
        .collect();
    tasks.push(task("always_fails", format!("{run}-fails"), 2));
    app.store().enqueue(&tasks).await.unwrap();
    app.create_institution("Metrics College", "academic@metrics.test", "password-1")
        .await;
    for _ in 0..2 {
        assert_eq!(app.get("/health/live", None).await.status, 200);
    }
    app.wait_for_idle().await;
    let dead: i64 = app
        .scalar("SELECT count(*) FROM tasks WHERE task_type = 'always_fails' AND status = 'dead'")
        .await;
    assert_eq!(dead, 1);
    // The daemon counts an attempt before it writes its outcome: idle is enough.
    let after = scrape(&app).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };

    let noop = [("task_type", "noop")];
    let fails = [("task_type", "always_fails")];
    assert_eq!(moved("campus_tasks_started_total", &noop), 3.0);
    assert_eq!(
        moved(
            "campus_tasks_finished_total",
            &[("task_type", "noop"), ("outcome", "succeeded")]
        ),
        3.0
    );
    assert_eq!(moved("campus_tasks_started_total", &fails), 2.0);
    assert_eq!(
        moved(
            "campus_tasks_finished_total",
            &[
                ("task_type", "always_fails"),
                ("outcome", "failed_will_retry")
            ]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "campus_tasks_finished_total",
            &[("task_type", "always_fails"), ("outcome", "dead")]
        ),
        1.0
    );
    assert_eq!(moved("campus_task_retries_total", &fails), 1.0);
    let durations = |s: &Scrape| histogram_count(s, "campus_task_duration_seconds", &noop);
    assert_eq!(durations(&after) - durations(&before), 3.0);
    let delays = |s: &Scrape| histogram_count(s, "campus_task_start_delay_seconds", &fails);
    assert_eq!(delays(&after) - delays(&before), 2.0);

    // The institution: its events were recorded and dispatched.
    let created = [("event_type", "InstitutionCreated")];
    assert_eq!(moved("campus_events_recorded_total", &created), 1.0);
    assert_eq!(moved("campus_events_dispatched_total", &created), 1.0);

    // Requests by route template and status.
    assert_eq!(
        moved(
            "campus_http_requests_total",
            &[
                ("route", "/health/live"),
                ("status", "200"),
                ("method", "GET")
            ]
        ),
        2.0
    );
    assert_eq!(
        moved(
            "campus_http_requests_total",
            &[("route", "/institutions"), ("status", "201")]
        ),
        1.0
    );
    assert!(
        histogram_count(
            &after,
            "campus_http_request_duration_seconds",
            &[("route", "/health/live")]
        ) >= 2.0
    );
    // The daemon leads (one daemon), and its pools are reported.
    assert_eq!(value(&after, "campus_daemon_leader", &[]), 1.0);
    let pools = campus_tests::eventually("the pool gauges", Duration::from_secs(10), || async {
        let s = scrape(&app).await;
        let open = value(&s, "campus_db_pool_connections", &[("pool", "api")]);
        (open > 0.0).then_some(open)
    })
    .await;
    assert!(pools >= 1.0);
    // The queues' depth: a task due in an hour waits, nothing is due.
    let mut later = task("noop", format!("{run}-later"), 1);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let in_an_hour = i64::try_from(now.unwrap().as_millis()).unwrap() + 3_600_000;
    later.run_at = Some(campus_core::Timestamp(in_an_hour));
    app.store().enqueue(&[later]).await.unwrap();
    let depth = campus_tests::eventually("the queue gauges", Duration::from_secs(15), || async {
        let s = scrape(&app).await;
        let pending = value(&s, "campus_queue_tasks", &[("status", "pending")]);
        (pending == 1.0).then_some(s)
    })
    .await;
    assert_eq!(value(&depth, "campus_queue_due_tasks", &[]), 0.0);
    assert_eq!(
        value(&depth, "campus_queue_tasks", &[("status", "running")]),
        0.0
    );
    assert_eq!(
        value(&depth, "campus_queue_oldest_due_task_age_seconds", &[]),
        0.0
    );
    // Every metric is described (HELP and TYPE), in Prometheus' naming.
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", app.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "campus_tasks_finished_total",
        "campus_task_duration_seconds",
        "campus_http_requests_total",
    ] {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
        assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
    }
    assert!(text.contains("# TYPE campus_task_duration_seconds histogram"));
}

/// The `campus_…` metric names an expression refers to.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("campus_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

#[tokio::test]
async fn every_expression_of_the_grafana_dashboard_refers_to_an_exposed_metric() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/campus.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    assert!(exprs.len() >= 12, "{} expressions", exprs.len());

    // Some of every kind of work, so that every labelled series exists.
    let app = TestApp::spawn_custom(
        |s| s.metrics_token = Some(TOKEN.into()),
        |c| c.default_registry().task("always_fails", AlwaysFails),
    )
    .await;
    let run = uuid::Uuid::now_v7();
    app.store()
        .enqueue(&[
            task("noop", format!("{run}-ok"), 1),
            task("always_fails", format!("{run}-no"), 2),
        ])
        .await
        .unwrap();
    app.create_institution("Dashboard College", "academic@dashboard.test", "password-1")
        .await;
    app.wait_for_idle().await;
    let text = campus_tests::eventually("the gauges", Duration::from_secs(15), || async {
        let text = reqwest::Client::new()
            .get(format!("{}/metrics", app.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text.contains("campus_queue_tasks") && text.contains("campus_db_pool_connections"))
            .then_some(text)
    })
    .await;
    let exposed: std::collections::HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .collect();
    for expr in &exprs {
        for name in metric_names(expr) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|b| exposed.get(b) == Some(&"histogram"))
                })
                .unwrap_or(&name);
            assert!(
                exposed.contains_key(base),
                "the dashboard's `{expr}` refers to {name}, which /metrics does not expose"
            );
        }
    }
}
