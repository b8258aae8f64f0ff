//! The bus bridge end to end, against the real RabbitMQ on 127.0.0.1:5672 (or
//! `CAMPUS_TEST_AMQP_URL`): every event an institution may receive by webhook is published
//! once, with its id as `message_id`; a reprocessed publish task republishes it under the same
//! id; a broker stopped in the middle of a run loses nothing and keeps each aggregate's events
//! in order; `campus consume` prints what it
//! takes; without `CAMPUS_BUS_URL` nothing is published. These tests run one at a time (the
//! nextest group `rabbitmq`): one of them stops the broker.

use campus_adapters::bus::consumer::{consume, declare_queue, delete_queue, Delivered, Verdict};
use campus_tests::extra::Process;
use campus_tests::{campus_binary, eventually, TestApp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Deletes `queue` and its dead letters.
async fn done_with(queue: &str) {
    delete_queue(&amqp_url(), queue)
        .await
        .expect("deleting the test's queue");
}

fn amqp_url() -> String {
    std::env::var("CAMPUS_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A queue of its own, bound as asked, declared before anything is published (deleted with
/// [`done_with`]).
async fn fresh_queue(bindings: &[&str]) -> String {
    let queue = format!("campus-test-{}", uuid::Uuid::new_v4().simple());
    let bindings: Vec<String> = bindings.iter().map(|b| b.to_string()).collect();
    declare_queue(&amqp_url(), &queue, &bindings)
        .await
        .expect("the bus tests need RabbitMQ on 127.0.0.1:5672 (or CAMPUS_TEST_AMQP_URL)");
    queue
}

/// Campus publishing to the bus, retrying soon after a failure, with an Adm user.
async fn app_with_bus() -> TestApp {
    TestApp::spawn_custom(
        |s| {
            s.bus_url = Some(amqp_url());
            s.retry_base = Duration::from_millis(50);
            s.retry_cap = Duration::from_millis(500);
            s.max_attempts = 100;
            s.admin_email = Some("root@bus.test".into());
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await
}

/// Takes messages of `queue` until `enough` says so (or `timeout` passes), acking each.
async fn take(
    queue: &str,
    timeout: Duration,
    enough: impl Fn(&[Delivered]) -> bool + Send + Sync + 'static,
) -> Vec<Delivered> {
    let taken = Arc::new(Mutex::new(Vec::new()));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let enough = Arc::new(enough);
    let handler = {
        let taken = taken.clone();
        move |m: Delivered| {
            let taken = taken.clone();
            let enough = enough.clone();
            let stop = stop.clone();
            async move {
                let mut all = taken.lock().unwrap();
                all.push(m);
                if enough(&all) {
                    let _ = stop.send(true);
                }
                Verdict::Ack
            }
        }
    };
    let consumed = tokio::time::timeout(
        timeout,
        consume(&amqp_url(), queue, &["#".into()], 50, shutdown, handler),
    )
    .await;
    let all = taken.lock().unwrap().clone();
    match consumed {
        Ok(result) => result.expect("consuming"),
        Err(_) => panic!(
            "{} messages within {timeout:?}: {:?}",
            all.len(),
            all.iter().map(|m| &m.routing_key).collect::<Vec<_>>()
        ),
    }
    all
}

/// The ids of the events the bus carries (every type but the two no institution receives).
async fn published_event_ids(app: &TestApp) -> BTreeSet<String> {
    let rows: Vec<(uuid::Uuid,)> = sqlx::query_as(
        "SELECT id FROM domain_events
          WHERE event_type NOT IN ('AdmCreated', 'ResetPasswordTokenCreated')",
    )
    .fetch_all(&app.postgres().pool)
    .await
    .unwrap();
    rows.into_iter().map(|(id,)| id.to_string()).collect()
}

async fn academic_writes(app: &TestApp, token: &str, tag: &str, count: usize) {
    for i in 0..count {
        let r = app
            .post(
                "/academic/teachers",
                Some(token),
                json!({"name": format!("Teacher {tag} {i}"), "email": format!("t{i}.{tag}@bus.test")}),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
}

fn ids(messages: &[Delivered]) -> Vec<String> {
    messages
        .iter()
        .map(|m| m.message_id.clone().expect("a message_id"))
        .collect()
}

#[tokio::test]
async fn every_event_is_published_once_and_a_reprocess_republishes_it() {
    let queue = fresh_queue(&["#"]).await;
    let app = app_with_bus().await;
    let (institution, _) = app
        .create_institution("Bus College", "academic@bus.test", "academic-pass")
        .await;
    let academic = app.login("academic@bus.test", "academic-pass").await;
    academic_writes(&app, &academic, "once", 3).await;
    app.wait_for_idle().await;
    let expected = published_event_ids(&app).await;
    assert!(
        expected.len() > 10,
        "the demo seed and the writes: {expected:?}"
    );

    let wanted = expected.len();
    let messages = take(&queue, Duration::from_secs(30), move |m| m.len() >= wanted).await;
    let got = ids(&messages);
    let distinct: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), distinct.len(), "each message_id once: {got:?}");
    assert_eq!(distinct, expected, "exactly the events the bus carries");

    let events: BTreeMap<String, (String, Option<String>)> =
        sqlx::query_as::<_, (uuid::Uuid, String, Option<String>)>(
            "SELECT id, event_type, correlation_id FROM domain_events",
        )
        .fetch_all(&app.postgres().pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, t, c)| (id.to_string(), (t, c)))
        .collect();
    for m in &messages {
        let id = m.message_id.clone().unwrap();
        let (event_type, correlation_id) = &events[&id];
        assert_eq!(m.routing_key, format!("{institution}.{event_type}"));
        assert_eq!(m.event_type.as_ref(), Some(event_type));
        assert_eq!(&m.correlation_id, correlation_id);
        let body: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(body["id"], id);
        assert_eq!(body["type"], *event_type);
        assert_eq!(body["institution_id"], institution);
        assert!(body["data"].is_object(), "{body}");
    }

    // A forced republish: reprocessing one publish task sends the same message_id again.
    let (task_id, event_id): (uuid::Uuid, uuid::Uuid) = sqlx::query_as(
        "SELECT t.id, t.event_id FROM tasks t JOIN domain_events e ON e.id = t.event_id
          WHERE t.task_type = 'publish_event' AND e.event_type = 'TeacherCreated' LIMIT 1",
    )
    .fetch_one(&app.postgres().pool)
    .await
    .unwrap();
    let root = app.login("root@bus.test", "root-password").await;
    let copy = app
        .post(
            &format!("/adm/tasks/{task_id}/reprocess"),
            Some(&root),
            json!({}),
        )
        .await;
    assert_eq!(copy.status, 201, "{copy:?}");
    let again = take(&queue, Duration::from_secs(30), |m| !m.is_empty()).await;
    assert_eq!(
        ids(&again),
        [event_id.to_string()],
        "the reprocessed event, by its id"
    );
    done_with(&queue).await;
    app.stop().await;
}

/// Starts the broker again when dropped, whatever happened to the test.
struct BrokerBack;

impl Drop for BrokerBack {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .output();
    }
}

fn rabbitmqctl(action: &str) {
    let out = std::process::Command::new("rabbitmqctl")
        .arg(action)
        .output()
        .expect("rabbitmqctl");
    assert!(out.status.success(), "rabbitmqctl {action}: {out:?}");
}

#[tokio::test]
async fn a_broker_stopped_in_the_middle_of_a_run_loses_no_event() {
    let queue = fresh_queue(&["#"]).await;
    let app = app_with_bus().await;
    app.create_institution("Outage College", "academic@outage.test", "academic-pass")
        .await;
    let academic = app.login("academic@outage.test", "academic-pass").await;
    app.wait_for_idle().await;

    let back = BrokerBack;
    rabbitmqctl("stop_app");
    academic_writes(&app, &academic, "outage", 5).await;
    // Its demo data records many events of one aggregate (a class's enrolments and grades).
    app.create_institution("Seeded College", "academic@seeded.test", "academic-pass")
        .await;
    eventually(
        "the demo data seeded and publish tasks failing while the broker is down",
        Duration::from_secs(30),
        || async {
            let failed: i64 = app
                .scalar(
                    "SELECT count(*) FROM tasks WHERE task_type = 'publish_event' AND errors <> '[]'
                       AND (SELECT count(*) FROM tasks WHERE task_type = 'seed_demo_data'
                              AND status = 'succeeded') = 2
                       AND NOT EXISTS (SELECT 1 FROM domain_events WHERE status <> 'dispatched')",
                )
                .await;
            (failed >= 10).then_some(())
        },
    )
    .await;
    rabbitmqctl("start_app");
    drop(back);

    app.wait_for_idle().await;
    let expected = published_event_ids(&app).await;
    let dead: i64 = app
        .scalar("SELECT count(*) FROM tasks WHERE task_type = 'publish_event' AND status <> 'succeeded'")
        .await;
    assert_eq!(dead, 0, "every publish task succeeded in the end");
    let wanted = expected.clone();
    let messages = take(&queue, Duration::from_secs(60), move |m| {
        let seen: BTreeSet<String> = ids(m).into_iter().collect();
        wanted.is_subset(&seen)
    })
    .await;
    let seen: BTreeSet<String> = ids(&messages).into_iter().collect();
    assert_eq!(
        seen, expected,
        "every event arrived after the recovery, none lost"
    );
    // Retries came due in a jittered order, yet each aggregate's events arrived in theirs.
    let aggregate_of: BTreeMap<String, String> = sqlx::query_as::<_, (uuid::Uuid, String)>(
        "SELECT id, aggregate_type || ':' || aggregate_id FROM domain_events",
    )
    .fetch_all(&app.postgres().pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, aggregate)| (id.to_string(), aggregate))
    .collect();
    let mut arrived: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut first_arrivals = BTreeSet::new();
    for id in ids(&messages) {
        if first_arrivals.insert(id.clone()) {
            arrived.entry(&aggregate_of[&id]).or_default().push(id);
        }
    }
    let longest = arrived.values().map(Vec::len).max().unwrap_or(0);
    assert!(
        longest >= 5,
        "an aggregate with several events: {arrived:?}"
    );
    for (aggregate, events) in &arrived {
        let mut in_order = events.clone();
        in_order.sort(); // uuid v7: the order they were recorded in
        assert_eq!(
            events, &in_order,
            "the events of {aggregate} arrived out of order"
        );
    }
    done_with(&queue).await;
    app.stop().await;
}

#[tokio::test]
async fn campus_consume_prints_each_event_as_a_json_line() {
    let binary = campus_binary();
    let queue = fresh_queue(&["*.TeacherCreated"]).await;
    let app = app_with_bus().await;
    let mut cmd = tokio::process::Command::new(binary);
    cmd.args([
        "consume",
        "--queue",
        &queue,
        "--binding",
        "*.TeacherCreated",
    ])
    .env("CAMPUS_BUS_URL", amqp_url());
    let mut consumer = Process::spawn(cmd);

    app.create_institution("Print College", "academic@print.test", "academic-pass")
        .await;
    let academic = app.login("academic@print.test", "academic-pass").await;
    academic_writes(&app, &academic, "print", 1).await;
    consumer
        .wait_for_stdout("t0.print@bus.test", Duration::from_secs(30))
        .await;
    consumer.terminate();
    assert!(consumer.finish(Duration::from_secs(10)).await.success());

    let (event_id,): (uuid::Uuid,) = sqlx::query_as(
        "SELECT id FROM domain_events WHERE event_type = 'TeacherCreated'
          AND payload->>'email' = 't0.print@bus.test'",
    )
    .fetch_one(&app.postgres().pool)
    .await
    .unwrap();
    let lines: Vec<Value> = consumer
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let line = lines
        .iter()
        .find(|l| l["message_id"] == event_id.to_string())
        .unwrap_or_else(|| panic!("the teacher's event among {lines:?}"));
    assert_eq!(line["event_type"], "TeacherCreated");
    assert_eq!(line["body"]["data"]["email"], "t0.print@bus.test");
    assert!(
        lines.iter().all(|l| l["event_type"] == "TeacherCreated"),
        "only what the binding asks for: {lines:?}"
    );
    assert!(consumer
        .stderr()
        .contains(&format!("consuming queue {queue}")));
    done_with(&queue).await;
    app.stop().await;
}

#[tokio::test]
async fn without_a_bus_url_nothing_is_published() {
    let app = TestApp::spawn().await;
    app.create_institution("Quiet College", "academic@quiet.test", "academic-pass")
        .await;
    app.wait_for_idle().await;
    let events: i64 = app.scalar("SELECT count(*) FROM domain_events").await;
    let publish_tasks: i64 = app
        .scalar("SELECT count(*) FROM tasks WHERE task_type = 'publish_event'")
        .await;
    assert!(events > 0);
    assert_eq!(publish_tasks, 0, "no publish task without CAMPUS_BUS_URL");
    app.stop().await;
}
