//! The admin screen's Webhooks section against a real receiver: in real headless Chromium an
//! Academic user opens Webhooks, sees their subscription and its health, opens a delivery
//! that failed once before it succeeded, redelivers it and lands on the new delivery, whose
//! request reaches the receiver with the same `webhook-id` (every page checked with axe on
//! the way); and over plain HTTP, scoping (another institution's Academic gets 404 on the
//! pages and the redeliver form), the Adm user's choice of institution, bad filters, CSRF and
//! the refusal to redeliver a delivery still being tried.

use campus::config::RetrySchedule;
use campus_tests::browser::{Browser, AXE_TAGS};
use campus_tests::eventually;
use campus_tests::extra::{hidden, row_ids, WebClient};
use campus_tests::receiver::{Answer, WebhookReceiver};
use campus_tests::TestApp;
use fantoccini::Locator;
use serde_json::json;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

/// An app whose webhooks may reach the local receiver, retrying after 200 ms each time, with
/// the Adm user `root@<domain>` / `root-password`.
async fn app(domain: &str) -> TestApp {
    let adm = format!("root@{domain}");
    TestApp::spawn_custom(
        move |s| {
            s.webhook_allowed_hosts = "127.0.0.0/8".into();
            s.webhook_retry_schedule = RetrySchedule(vec![Duration::from_millis(200); 3]);
            s.admin_email = Some(adm);
            s.admin_password = Some("root-password".into());
        },
        |c| c.default_registry(),
    )
    .await
}

/// An institution (its Academic user `<who>@<domain>` / `password-<who>`), once its demo
/// data is seeded; returns its id and the Academic user's API token.
async fn institution(app: &TestApp, name: &str, who: &str, domain: &str) -> (String, String) {
    let (email, password) = (format!("{who}@{domain}"), format!("password-{who}"));
    let (id, _) = app.create_institution(name, &email, &password).await;
    app.wait_for_idle().await;
    (id, app.login(&email, &password).await)
}

/// Subscribes the institution of `token` to `url`; returns the subscription's id.
async fn subscribe(app: &TestApp, token: &str, url: &str) -> String {
    let r = app
        .post(
            "/academic/webhooks",
            Some(token),
            json!({"url": url, "event_types": ["StudentEnrolled"], "description": "screen test"}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

/// Queues the test ping to subscription `id`; returns its `webhook-id`.
async fn ping(app: &TestApp, token: &str, id: &str) -> String {
    let r = app
        .post(
            &format!("/academic/webhooks/{id}/test"),
            Some(token),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    r.body["message_id"].as_str().unwrap().to_string()
}

/// The subscription's deliveries as the API lists them, newest first.
async fn deliveries(app: &TestApp, token: &str, id: &str) -> Vec<serde_json::Value> {
    let r = app
        .get(&format!("/academic/webhooks/{id}/deliveries"), Some(token))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["items"].as_array().unwrap().clone()
}

/// Runs `script` in the page (arguments: `args`) and returns what it returns.
async fn run(
    c: &fantoccini::Client,
    script: &str,
    args: Vec<serde_json::Value>,
) -> serde_json::Value {
    c.execute(script, args).await.unwrap()
}

/// Clicks the first element matching `css` once there is one, in one script call (live
/// updates may replace the page's content between a find and a click).
async fn click(c: &fantoccini::Client, css: &str) {
    eventually(&format!("{css} to click"), WAIT, || async {
        let clicked = c.execute(
            "const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;",
            vec![json!(css)],
        );
        clicked.await.ok()?.as_bool().filter(|b| *b)
    })
    .await;
}

async fn wait_for(c: &fantoccini::Client, css: &str) {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} on the page: {e}"));
}

/// The axe violations of the current page, each prefixed with `page`.
async fn axe(browser: &Browser, page: &str, found: &mut Vec<String>) {
    browser.screenshot(&format!("admin-webhooks-{page}")).await;
    for v in browser.accessibility_violations(&AXE_TAGS).await {
        found.push(format!("{page}: {v}"));
    }
}

#[tokio::test]
async fn an_academic_follows_a_failed_then_succeeded_delivery_and_redelivers_it() {
    let domain = "hooks-screen.test";
    let app = app(domain).await;
    let receiver = WebhookReceiver::start().await;
    let (_, token) = institution(&app, "Alpha Hooks", "alpha", domain).await;
    // The receiver fails the first attempt, then answers 204 (its default).
    receiver.script(
        "/flaky",
        &[Answer {
            status: 500,
            retry_after: None,
        }],
    );
    let url = receiver.url("/flaky");
    let sub = subscribe(&app, &token, &url).await;
    let message = ping(&app, &token, &sub).await;
    receiver.wait_for("/flaky", 2).await;
    app.wait_for_idle().await;
    let original = deliveries(&app, &token, &sub).await;
    assert_eq!(original.len(), 1, "{original:?}");
    let original = original[0]["delivery_id"].as_str().unwrap().to_string();

    let browser = Browser::start().await;
    let c = &browser.client;
    let mut violations = Vec::new();
    c.goto(&format!("{}/admin", app.base)).await.unwrap();
    browser
        .log_in(&format!("alpha@{domain}"), "password-alpha", WAIT)
        .await;
    wait_for(c, "header nav a[href='/admin/webhooks']").await;

    // Webhooks, from the navigation: the subscription and its health (1 of 2 attempts got
    // a 2xx), with what the number means.
    click(c, "header nav a[href='/admin/webhooks']").await;
    wait_for(c, "#webhooks tbody tr").await;
    let listed = run(
        c,
        "const text = css => document.querySelector(css)?.textContent?.trim() ?? null;
         return {
           current: text('header nav a.current'),
           rows: [...document.querySelectorAll('#webhooks tbody tr')].map(r => [
             r.dataset.id, r.querySelector('td a').textContent, r.cells[1].textContent,
             r.cells[2].textContent.trim(), r.cells[3].textContent.trim()]),
           note: text('#health-note'),
           choice: !!document.querySelector('select[name=institution_id]'),
         };",
        vec![],
    )
    .await;
    assert_eq!(listed["current"], "Webhooks", "{listed}");
    assert_eq!(
        listed["rows"],
        json!([[
            sub,
            url,
            "StudentEnrolled",
            "enabled",
            "50.0% (1 of 2 attempts)"
        ]]),
        "{listed}"
    );
    assert!(
        listed["note"].as_str().unwrap().contains("last 24 hours"),
        "{listed}"
    );
    assert_eq!(
        listed["choice"], false,
        "an Academic chooses no institution"
    );
    axe(&browser, "list", &mut violations).await;

    // The subscription: its deliveries, the one delivery succeeded after two attempts.
    click(c, &format!("#webhooks tr[data-id='{sub}'] td a")).await;
    wait_for(c, "#deliveries tbody tr").await;
    let rows = run(
        c,
        "return [...document.querySelectorAll('#deliveries tbody tr')]
             .map(r => [r.dataset.id, r.dataset.status, r.cells[2].textContent, r.cells[3].textContent]);",
        vec![],
    )
    .await;
    assert_eq!(rows, json!([[original, "succeeded", "2", "204"]]));
    let facts = run(
        c,
        "return document.querySelector('dl.facts').textContent;",
        vec![],
    )
    .await;
    assert!(facts.as_str().unwrap().contains("50.0%"), "{facts}");
    axe(&browser, "subscription", &mut violations).await;

    // The delivery: both attempts, their statuses and the receiver's answer, its task.
    click(c, &format!("#deliveries tr[data-id='{original}'] td a")).await;
    wait_for(c, "#attempts tbody tr").await;
    let page = run(
        c,
        "return {
           title: document.querySelector('h1').textContent,
           attempts: [...document.querySelectorAll('#attempts tbody tr')]
             .map(r => [r.dataset.attempt, r.dataset.status, r.querySelector('pre')?.textContent ?? null]),
           message: document.getElementById('message-id').textContent,
           task: document.getElementById('delivery-task').getAttribute('href'),
         };",
        vec![],
    )
    .await;
    assert!(
        page["title"].as_str().unwrap().contains(&original),
        "{page}"
    );
    assert_eq!(
        page["attempts"],
        // A 204 carries no body: its excerpt is empty.
        json!([["1", "500", "received"], ["2", "204", null]]),
        "{page}"
    );
    assert_eq!(page["message"], message.as_str());
    assert_eq!(page["task"], format!("/admin/tasks/{original}"));
    axe(&browser, "delivery", &mut violations).await;

    // Redeliver: the new delivery's page, whose request reaches the receiver with the same
    // webhook-id.
    click(c, "form#redeliver button").await;
    let copy = eventually("the new delivery's page", WAIT, || async {
        let url = c.current_url().await.ok()?;
        let copy = url
            .path()
            .rsplit_once("/deliveries/")
            .map(|(_, id)| id.to_string())?;
        (copy != original && url.query().is_some_and(|q| q.contains("redelivered_from")))
            .then_some(copy)
    })
    .await;
    let got = receiver.wait_for("/flaky", 3).await;
    assert_eq!(got[2].header("webhook-id"), got[0].header("webhook-id"));
    assert_eq!(got[2].header("webhook-id"), message);
    // The page follows the delivery live (the test reloads it should an update be missed).
    let mut polls = 0;
    let attempts = eventually("the new delivery's attempt on its page", WAIT, || {
        polls += 1;
        let reload = polls % 80 == 0;
        async move {
            if reload {
                let _ = c.refresh().await;
            }
            let rows = c
                .execute(
                    "return [...document.querySelectorAll('#attempts tbody tr')]
                         .map(r => [r.dataset.attempt, r.dataset.status]);",
                    vec![],
                )
                .await
                .ok()?;
            (rows.as_array()?.len() == 1).then_some(rows)
        }
    })
    .await;
    assert_eq!(attempts, json!([["1", "204"]]));
    let page = run(
        c,
        "return [document.querySelector('h1').textContent,
                 document.getElementById('message-id').textContent,
                 document.getElementById('flash').textContent];",
        vec![],
    )
    .await;
    assert!(page[0].as_str().unwrap().contains(&copy), "{page}");
    assert_eq!(page[1], message.as_str());
    assert!(page[2].as_str().unwrap().contains("Redelivered"), "{page}");
    axe(&browser, "redelivered", &mut violations).await;
    // The new delivery is a copy of the original task, made by this operator's request.
    let (from, request): (String, Option<String>) = sqlx::query_as(
        "SELECT reprocessed_from::text, reprocess_request_id FROM tasks WHERE id = $1::uuid",
    )
    .bind(&copy)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(from, original);
    assert!(request.is_some_and(|r| !r.is_empty()));

    browser.stop().await;
    app.wait_for_idle().await;
    app.stop().await;
    assert!(
        violations.is_empty(),
        "{} accessibility violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}

#[tokio::test]
async fn the_webhook_pages_keep_to_the_operators_institution() {
    let domain = "hooks-scope.test";
    let app = app(domain).await;
    let receiver = WebhookReceiver::start().await;
    let (a, token_a) = institution(&app, "Alpha Hooks", "alpha", domain).await;
    let (b, _) = institution(&app, "Beta Hooks", "beta", domain).await;
    let sub = subscribe(&app, &token_a, &receiver.url("/ok")).await;
    let message = ping(&app, &token_a, &sub).await;
    receiver.wait_for("/ok", 1).await;
    app.wait_for_idle().await;
    let delivery = deliveries(&app, &token_a, &sub).await[0]["delivery_id"]
        .as_str()
        .unwrap()
        .to_string();
    let (sub_page, delivery_page) = (
        format!("/admin/webhooks/{sub}"),
        format!("/admin/webhooks/{sub}/deliveries/{delivery}"),
    );
    let redeliver = format!("{delivery_page}/redeliver");
    let deliver_tasks = || async {
        app.scalar::<i64>("SELECT count(*) FROM tasks WHERE task_type = 'deliver_webhook'")
            .await
    };

    // Academic B: their own (empty) list whatever the URL asks for, and A's pages and
    // redeliver form are not found.
    let (beta, status) =
        WebClient::login(&app.base, &format!("beta@{domain}"), "password-beta").await;
    assert_eq!(status, 303);
    for list in [
        "/admin/webhooks".to_string(),
        format!("/admin/webhooks?institution_id={a}"),
    ] {
        let (status, html) = beta.get(&list).await;
        assert_eq!(status, 200, "{list}");
        assert!(
            html.contains("Beta Hooks has no webhook subscription."),
            "{list}: {html}"
        );
        assert!(
            !html.contains(&sub) && !html.contains("/ok"),
            "{list}: {html}"
        );
    }
    for path in [
        &sub_page,
        &delivery_page,
        &format!("/admin/tasks/{delivery}"),
    ] {
        let (status, html) = beta.get(path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            !html.contains("/ok") && !html.contains("Alpha Hooks"),
            "{path}: {html}"
        );
    }
    let (_, own) = beta.get("/admin/webhooks").await;
    let csrf = hidden(&own, "csrf");
    let before = deliver_tasks().await;
    assert_eq!(beta.post(&redeliver, &[("csrf", &csrf)]).await.0, 404);
    assert_eq!(
        deliver_tasks().await,
        before,
        "the refused redelivery wrote a task"
    );
    assert_eq!(receiver.received("/ok").len(), 1);

    // Academic A: the same pages open, and the form needs the session's CSRF token.
    let (alpha, _) =
        WebClient::login(&app.base, &format!("alpha@{domain}"), "password-alpha").await;
    let (status, html) = alpha.get("/admin/webhooks").await;
    assert_eq!((status, row_ids(&html)), (200, vec![sub.clone()]));
    assert!(
        html.contains("100.0%") && html.contains("(1 of 1 attempts)"),
        "{html}"
    );
    let (status, html) = alpha.get(&sub_page).await;
    assert_eq!((status, row_ids(&html)), (200, vec![delivery.clone()]));
    let (status, html) = alpha.get(&format!("{sub_page}?status=failed")).await;
    assert_eq!((status, row_ids(&html).len()), (200, 0), "{html}");
    assert!(html.contains("No delivery matches these filters."));
    let (status, html) = alpha.get(&delivery_page).await;
    assert_eq!(status, 200);
    assert!(html.contains(&message) && html.contains(&format!("/admin/tasks/{delivery}")));
    let csrf = hidden(&html, "csrf");
    assert_eq!(alpha.post(&redeliver, &[]).await.0, 403);
    assert_eq!(alpha.post(&redeliver, &[("csrf", "forged")]).await.0, 403);
    assert_eq!(
        deliver_tasks().await,
        before,
        "a refused form changes nothing"
    );
    let r = alpha
        .http
        .post(format!("{}{redeliver}", app.base))
        .header("cookie", &alpha.cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let prefix = format!("/admin/webhooks/{sub}/deliveries/");
    let suffix = format!("?redelivered_from={delivery}");
    assert!(
        location.starts_with(&prefix) && location.ends_with(&suffix),
        "{location}"
    );
    let got = receiver.wait_for("/ok", 2).await;
    assert_eq!(got[1].header("webhook-id"), message);
    app.wait_for_idle().await;
    let (status, html) = alpha.get(&location).await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-status="204""#), "{html}");

    // The Adm user chooses the institution, then sees its subscriptions and their pages.
    let (adm, _) = WebClient::login(&app.base, &format!("root@{domain}"), "root-password").await;
    let (status, html) = adm.get("/admin/webhooks").await;
    assert_eq!(status, 200);
    assert!(html.contains("Choose an institution") && html.contains(r#"name="institution_id""#));
    assert!(row_ids(&html).is_empty());
    let (status, html) = adm
        .get(&format!("/admin/webhooks?institution_id={a}"))
        .await;
    assert_eq!((status, row_ids(&html)), (200, vec![sub.clone()]));
    let (status, html) = adm
        .get(&format!("/admin/webhooks?institution_id={b}"))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("Beta Hooks has no webhook subscription."));
    assert_eq!(adm.get(&sub_page).await.0, 200);
    assert_eq!(adm.get(&delivery_page).await.0, 200);
    // Bad input is a clear 400; unknown ids are not found.
    let (status, html) = adm.get("/admin/webhooks?institution_id=nope").await;
    assert_eq!(status, 400);
    assert!(html.contains("institution_id"));
    let (status, html) = adm.get(&format!("{sub_page}?status=exploded")).await;
    assert_eq!(status, 400);
    assert!(html.contains("status"));
    assert_eq!(adm.get(&format!("{sub_page}?before=nope")).await.0, 400);
    let unknown = "00000000-0000-0000-0000-000000000000";
    assert_eq!(adm.get(&format!("/admin/webhooks/{unknown}")).await.0, 404);
    assert_eq!(
        adm.get(&format!("{sub_page}/deliveries/{unknown}")).await.0,
        404
    );
    assert_eq!(adm.get("/admin/webhooks/not-an-id").await.0, 404);

    // A delivery still being tried (the receiver asked for 30 s) cannot be redelivered yet:
    // its page offers no button, and the form is refused with the reason on the page.
    receiver.script(
        "/busy",
        &[Answer {
            status: 503,
            retry_after: Some(30),
        }],
    );
    let busy = subscribe(&app, &token_a, &receiver.url("/busy")).await;
    ping(&app, &token_a, &busy).await;
    let retrying = eventually("the delivery logged as retrying", WAIT, || async {
        let items = deliveries(&app, &token_a, &busy).await;
        items
            .first()
            .filter(|d| d["status"] == "retrying")
            .map(|d| d["delivery_id"].as_str().unwrap().to_string())
    })
    .await;
    let page = format!("/admin/webhooks/{busy}/deliveries/{retrying}");
    let (status, html) = alpha.get(&page).await;
    assert_eq!(status, 200);
    assert!(!html.contains(r#"id="redeliver""#) && html.contains("once it has succeeded"));
    let (status, html) = alpha
        .post(&format!("{page}/redeliver"), &[("csrf", &csrf)])
        .await;
    assert_eq!(status, 409, "{html}");
    assert!(html.contains(r#"role="alert""#), "{html}");
    assert_eq!(receiver.received("/busy").len(), 1);
    app.stop().await;
}
