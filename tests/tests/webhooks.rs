//! Webhooks end to end, against a real local HTTP receiver that verifies every delivery's
//! Standard Webhooks signature: one delivery per subscription and event, retries with one
//! `webhook-id`, 410 Gone, `Retry-After`, secret rotation, the URL safety rule, bad input
//! and institution scoping.

use campus::config::RetrySchedule;
use campus_adapters::webhooks::signature::verify;
use campus_tests::receiver::{Answer, Received, WebhookReceiver};
use campus_tests::TestApp;
use serde_json::{json, Value};
use std::time::Duration;

/// An app whose webhooks may reach the local receiver, retrying after 200 ms each time.
async fn app() -> TestApp {
    TestApp::spawn_custom(
        |s| {
            s.webhook_allowed_hosts = "127.0.0.0/8".into();
            s.webhook_retry_schedule = RetrySchedule(vec![Duration::from_millis(200); 3]);
        },
        |c| c.default_registry(),
    )
    .await
}

/// An institution and its Academic user's token, once its demo data is seeded (the seed
/// records events of its own).
async fn institution(app: &TestApp, name: &str) -> String {
    let email = format!("academic@{name}.test");
    app.create_institution(name, &email, "academic-pass").await;
    app.wait_for_idle().await;
    app.login(&email, "academic-pass").await
}

async fn subscribe(app: &TestApp, token: &str, url: &str, types: &[&str]) -> (String, String) {
    let r = app
        .post(
            "/academic/webhooks",
            Some(token),
            json!({"url": url, "event_types": types, "description": "test receiver"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let secret = r.body["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (r.body["id"].as_str().unwrap().to_string(), secret)
}

/// Verifies a delivery as a receiver would, with `secret`.
fn verified(r: &Received, secret: &str) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    verify(
        secret,
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
        &r.body,
        now,
        300,
    )
    .is_ok()
}

/// The id of the subscription whose URL ends with `path`.
async fn subscription_id(app: &TestApp, token: &str, path: &str) -> String {
    let all = app.get("/academic/webhooks", Some(token)).await;
    all.body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["url"].as_str().unwrap().ends_with(path))
        .map(|s| s["id"].as_str().unwrap().to_string())
        .unwrap()
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

async fn create_discipline(app: &TestApp, token: &str, name: &str) {
    let r = app
        .post("/academic/disciplines", Some(token), json!({"name": name}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
}

#[tokio::test]
async fn each_subscription_gets_one_signed_delivery_per_event_of_its_types() {
    let app = app().await;
    let receiver = WebhookReceiver::start().await;
    let token = institution(&app, "hooks").await;
    let (_, secret_a) = subscribe(&app, &token, &receiver.url("/a"), &["DisciplineCreated"]).await;
    let (_, secret_b) = subscribe(
        &app,
        &token,
        &receiver.url("/b"),
        &["DisciplineCreated", "ClassCreated"],
    )
    .await;
    create_discipline(&app, &token, "Webhook Theory").await;
    receiver.wait_for("/a", 1).await;
    receiver.wait_for("/b", 1).await;
    app.wait_for_idle().await;
    let (a, b) = (receiver.received("/a"), receiver.received("/b"));
    assert_eq!((a.len(), b.len()), (1, 1), "exactly one delivery each");
    assert!(verified(&a[0], &secret_a), "{a:?}");
    assert!(verified(&b[0], &secret_b), "{b:?}");
    assert!(
        !verified(&a[0], &secret_b),
        "not with another subscription's secret"
    );
    let msg = body(&a[0]);
    assert_eq!(msg["type"], "DisciplineCreated");
    assert_eq!(msg["data"]["name"], "Webhook Theory");
    assert_eq!(a[0].header("webhook-id"), msg["id"].as_str().unwrap());
    assert_eq!(a[0].header("content-type"), "application/json");
    assert_eq!(a[0].header("webhook-id"), b[0].header("webhook-id"));
    assert!(!a[0].header("x-correlation-id").is_empty());
    assert_eq!(
        a[0].header("x-correlation-id"),
        msg["correlation_id"].as_str().unwrap()
    );
    // Events nobody subscribed to (the institution's creation, its demo data) cost no
    // fan-out task and deliver nothing.
    let fan_outs: i64 = app
        .scalar("SELECT count(*) FROM tasks WHERE task_type = 'fan_out_webhooks'")
        .await;
    assert_eq!(fan_outs, 1);
    app.stop().await;
}

#[tokio::test]
async fn failures_are_retried_with_one_webhook_id_gone_disables_and_retry_after_waits() {
    let app = app().await;
    let receiver = WebhookReceiver::start().await;
    let token = institution(&app, "retries").await;
    let fail = Answer {
        status: 500,
        retry_after: None,
    };
    receiver.script("/flaky", &[fail, fail]);
    receiver.script(
        "/gone",
        &[Answer {
            status: 410,
            retry_after: None,
        }],
    );
    receiver.script(
        "/busy",
        &[Answer {
            status: 503,
            retry_after: Some(2),
        }],
    );
    let (_, flaky_secret) = subscribe(
        &app,
        &token,
        &receiver.url("/flaky"),
        &["DisciplineCreated"],
    )
    .await;
    let (gone, _) = subscribe(&app, &token, &receiver.url("/gone"), &["DisciplineCreated"]).await;
    subscribe(&app, &token, &receiver.url("/busy"), &["DisciplineCreated"]).await;
    create_discipline(&app, &token, "Hook Studies I").await;

    let flaky = receiver.wait_for("/flaky", 3).await;
    let ids: Vec<&str> = flaky.iter().map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids, [ids[0]; 3], "one webhook-id on every attempt");
    assert!(flaky.iter().all(|r| verified(r, &flaky_secret)));
    let busy = receiver.wait_for("/busy", 2).await;
    let waited = busy[1].at - busy[0].at;
    assert!(
        waited >= Duration::from_millis(1800),
        "Retry-After: 2 honoured, waited {waited:?}"
    );
    app.wait_for_idle().await;
    assert_eq!(
        receiver.received("/flaky").len(),
        3,
        "no attempt after the success"
    );
    assert_eq!(receiver.received("/gone").len(), 1, "410 is not retried");
    let g = app
        .get(&format!("/academic/webhooks/{gone}"), Some(&token))
        .await;
    assert_eq!(g.body["enabled"], false, "{g:?}");
    assert!(g.body["disabled_reason"].as_str().unwrap().contains("410"));
    // Every attempt is logged with its status.
    let statuses: Vec<Option<i32>> = sqlx::query_scalar(
        "SELECT a.status FROM webhook_attempts a
           JOIN webhook_subscriptions s ON s.id = a.subscription_id
          WHERE s.url LIKE '%/flaky' ORDER BY a.attempt",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(statuses, [Some(500), Some(500), Some(204)]);
    // A disabled subscription gets nothing more.
    create_discipline(&app, &token, "Hook Studies II").await;
    receiver.wait_for("/flaky", 4).await;
    app.wait_for_idle().await;
    assert_eq!(receiver.received("/gone").len(), 1);
    // The delivery log: both deliveries to /flaky succeeded, the first after three attempts.
    let flaky_id = subscription_id(&app, &token, "/flaky").await;
    let log = app
        .get(
            &format!("/academic/webhooks/{flaky_id}/deliveries"),
            Some(&token),
        )
        .await;
    let items = log.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log:?}");
    assert!(items.iter().all(|d| d["status"] == "succeeded"), "{log:?}");
    let first = &items[1];
    assert_eq!(first["attempts"], 3);
    let first_id = first["delivery_id"].as_str().unwrap();
    let detail = app
        .get(
            &format!("/academic/webhooks/{flaky_id}/deliveries/{first_id}"),
            Some(&token),
        )
        .await;
    let statuses: Vec<&Value> = detail.body["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert_eq!(
        statuses,
        [&json!(500), &json!(500), &json!(204)],
        "{detail:?}"
    );
    assert_eq!(
        detail.body["attempt_log"][0]["response_excerpt"],
        "received"
    );
    let failed = app
        .get(
            &format!("/academic/webhooks/{gone}/deliveries?status=failed"),
            Some(&token),
        )
        .await;
    assert_eq!(
        failed.body["items"].as_array().unwrap().len(),
        1,
        "{failed:?}"
    );
    // A redelivery is a new delivery of the same message (same webhook-id).
    let again = app
        .post(
            &format!("/academic/webhooks/{flaky_id}/deliveries/{first_id}/redeliver"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_ne!(again.body["delivery_id"].as_str().unwrap(), first_id);
    let all = receiver.wait_for("/flaky", 5).await;
    assert_eq!(all[4].header("webhook-id"), all[0].header("webhook-id"));
    assert!(verified(&all[4], &flaky_secret));
    app.wait_for_idle().await;

    // The attempts by outcome, as /metrics counts them: /flaky 500, 500, 204, 204 later and
    // 204 redelivered; /busy 503 then 204 twice; /gone 410.
    let metrics = reqwest::get(format!("{}/metrics", app.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count = |outcome: &str| {
        let prefix = format!("campus_webhook_deliveries_total{{outcome=\"{outcome}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0.0, |v| v.parse::<f64>().unwrap())
    };
    assert_eq!(
        (
            count("succeeded"),
            count("failed_will_retry"),
            count("failed_permanently")
        ),
        (5.0, 3.0, 1.0),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one_and_the_test_ping_is_delivered() {
    let app = app().await;
    let receiver = WebhookReceiver::start().await;
    let token = institution(&app, "rotation").await;
    let (id, old) = subscribe(&app, &token, &receiver.url("/r"), &["ClassCreated"]).await;
    let r = app
        .post(
            &format!("/academic/webhooks/{id}/rotate-secret"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let new = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let ping = app
        .post(
            &format!("/academic/webhooks/{id}/test"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(ping.status, 202, "{ping:?}");
    let got = receiver.wait_for("/r", 1).await;
    assert_eq!(body(&got[0])["type"], "WebhookTest");
    assert_eq!(
        got[0].header("webhook-id"),
        ping.body["message_id"].as_str().unwrap()
    );
    let signatures: Vec<&str> = got[0].header("webhook-signature").split(' ').collect();
    assert_eq!(signatures.len(), 2, "both secrets sign during the overlap");
    assert!(verified(&got[0], &old) && verified(&got[0], &new));
    // The secret is never shown again, nor stored in the clear.
    let listed = app.get("/academic/webhooks", Some(&token)).await;
    assert!(!listed.body.to_string().contains("whsec_"), "{listed:?}");
    let stored: String = sqlx::query_scalar("SELECT secret_sealed FROM webhook_subscriptions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!stored.contains(new.trim_start_matches("whsec_")));
    app.stop().await;
}

#[tokio::test]
async fn bad_or_unsafe_subscriptions_are_refused_and_institutions_see_only_their_own() {
    let app = app().await;
    let receiver = WebhookReceiver::start().await;
    let token = institution(&app, "checks").await;
    let other = institution(&app, "others").await;
    let (id, _) = subscribe(&app, &token, &receiver.url("/ok"), &["StudentEnrolled"]).await;
    let refused = |body: Value| {
        let app = &app;
        let token = token.clone();
        async move {
            let r = app.post("/academic/webhooks", Some(&token), body).await;
            assert_eq!(r.status, 400, "{r:?}");
            r.body["message"].as_str().unwrap().to_string()
        }
    };
    let why = refused(json!({"url": "not a url", "event_types": ["StudentEnrolled"]})).await;
    assert!(why.contains("url"), "{why}");
    let why = refused(json!({"url": receiver.url("/x"), "event_types": ["NoSuchEvent"]})).await;
    assert!(why.contains("NoSuchEvent"), "{why}");
    let why = refused(json!({"url": receiver.url("/x"), "event_types": []})).await;
    assert!(why.contains("event_types"), "{why}");
    let why = refused(json!({"url": receiver.url("/ok"), "event_types": ["ClassCreated"]})).await;
    assert!(why.contains("already"), "duplicate URL: {why}");
    let why =
        refused(json!({"url": receiver.url("/x"), "event_types": ["ResetPasswordTokenCreated"]}))
            .await;
    assert!(why.contains("ResetPasswordTokenCreated"), "{why}");
    let listed = app.get("/academic/webhooks", Some(&token)).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "nothing stored");

    // Another institution's Academic sees and touches nothing of it.
    let ping = app
        .post(
            &format!("/academic/webhooks/{id}/test"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(ping.status, 202);
    receiver.wait_for("/ok", 1).await;
    app.wait_for_idle().await;
    let log = app
        .get(&format!("/academic/webhooks/{id}/deliveries"), Some(&token))
        .await;
    let delivery = log.body["items"][0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    for path in [
        format!("/academic/webhooks/{id}"),
        format!("/academic/webhooks/{id}/deliveries"),
        format!("/academic/webhooks/{id}/deliveries/{delivery}"),
    ] {
        let seen = app.get(&path, Some(&other)).await;
        assert_eq!(seen.status, 404, "{path}: {seen:?}");
    }
    let r = app
        .post(
            &format!("/academic/webhooks/{id}/deliveries/{delivery}/redeliver"),
            Some(&other),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");
    let put = app
        .put(
            &format!("/academic/webhooks/{id}"),
            &other,
            json!({"url": receiver.url("/steal"), "event_types": ["StudentEnrolled"]}),
        )
        .await;
    assert_eq!(put.status, 404, "{put:?}");
    for action in ["rotate-secret", "test"] {
        let r = app
            .post(
                &format!("/academic/webhooks/{id}/{action}"),
                Some(&other),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 404, "{action}: {r:?}");
    }
    assert_eq!(
        app.get("/academic/webhooks", Some(&other)).await.body,
        json!([])
    );
    app.stop().await;

    // Without the allow-list, a local receiver is refused, and why is said.
    let strict = TestApp::spawn().await;
    let token = institution(&strict, "strict").await;
    let r = strict
        .post(
            "/academic/webhooks",
            Some(&token),
            json!({"url": receiver.url("/ok"), "event_types": ["StudentEnrolled"]}),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let why = r.body["message"].as_str().unwrap();
    assert!(why.contains("CAMPUS_WEBHOOK_ALLOWED_HOSTS"), "{why}");
    let stored: i64 = strict
        .scalar("SELECT count(*) FROM webhook_subscriptions")
        .await;
    assert_eq!(stored, 0);
    strict.stop().await;
}

#[tokio::test]
async fn a_subscription_failing_for_too_long_is_disabled_and_its_academics_are_told() {
    let app = TestApp::spawn_custom(
        |s| {
            s.webhook_allowed_hosts = "127.0.0.0/8".into();
            s.webhook_retry_schedule = RetrySchedule(vec![Duration::from_millis(200); 20]);
            s.webhook_disable_after = Duration::from_millis(500);
        },
        |c| c.default_registry(),
    )
    .await;
    let receiver = WebhookReceiver::start().await;
    let token = institution(&app, "failing").await;
    let down = Answer {
        status: 500,
        retry_after: None,
    };
    receiver.script("/down", &[down; 50]);
    let (id, _) = subscribe(&app, &token, &receiver.url("/down"), &["DisciplineCreated"]).await;
    create_discipline(&app, &token, "Hook Studies III").await;
    app.wait_for_idle().await;
    let s = app
        .get(&format!("/academic/webhooks/{id}"), Some(&token))
        .await;
    assert_eq!(s.body["enabled"], false, "{s:?}");
    let why = s.body["disabled_reason"].as_str().unwrap();
    assert!(why.contains("every delivery failed"), "{why}");
    let attempts = receiver.received("/down");
    assert!(
        (3..20).contains(&attempts.len()),
        "disabled after about half a second of failures, not after every retry: {}",
        attempts.len()
    );
    let told: Vec<String> = sqlx::query_scalar(
        "SELECT n.message FROM notifications n JOIN users u ON u.id = n.user_id
          WHERE n.kind = 'webhook_disabled' AND u.role = 'academic'",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        told.len(),
        1,
        "the institution's one Academic user: {told:?}"
    );
    assert!(told[0].contains(&receiver.url("/down")), "{told:?}");
    // Enabled again, it delivers again.
    let r = app
        .put(
            &format!("/academic/webhooks/{id}"),
            &token,
            json!({"url": receiver.url("/up"), "event_types": ["DisciplineCreated"]}),
        )
        .await;
    assert_eq!((r.status, &r.body["enabled"]), (200, &json!(true)), "{r:?}");
    assert!(r.body["disabled_reason"].is_null());
    create_discipline(&app, &token, "Hook Studies IV").await;
    receiver.wait_for("/up", 1).await;
    app.stop().await;
}
