//! Logs of `campus serve` with `CAMPUS_LOG_FORMAT=json`: one JSON object per line, and one
//! access-log line per request (method, route template, status, duration, the request's
//! correlation id) that never carries the request's secrets; a bad format stops start-up.

use campus_adapters::pg::testing::{drop_database, fresh_database, DropOnPanic};
use campus_tests::eventually;
use campus_tests::extra::{campus_command, free_addr, Process};
use std::time::Duration;

#[tokio::test]
async fn json_logs_have_one_access_line_per_request_without_secrets() {
    let (url, pool) = fresh_database("campus_logs").await.unwrap();
    pool.close().await;
    let url = DropOnPanic(url);
    let addr = free_addr();
    let data = std::env::temp_dir().join(format!("campus-logs-{}", uuid::Uuid::now_v7()));
    let mut cmd = campus_command(&["serve"]);
    cmd.env("DATABASE_URL", &*url)
        .env("CAMPUS_ADDR", addr.to_string())
        .env("CAMPUS_DATA_DIR", &data)
        .env("CAMPUS_LOG_FORMAT", "json");
    let mut serve = Process::spawn(cmd);
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    eventually(
        "campus serve to answer",
        Duration::from_secs(60),
        || async {
            let r = http.get(format!("{base}/health/live")).send().await.ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    let secret = "p4ssw0rd-never-logged";
    let refused = http
        .post(format!("{base}/auth/login?token=query-secret"))
        .header("x-correlation-id", "corr-logs-1")
        .json(&serde_json::json!({"email": "nobody@logs.test", "password": secret}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let line = eventually("the access-log line", Duration::from_secs(10), || async {
        serve
            .stderr()
            .lines()
            .find(|l| l.contains("campus::access") && l.contains("corr-logs-1"))
            .map(str::to_string)
    })
    .await;
    let entry: serde_json::Value = serde_json::from_str(&line).expect("a JSON object per line");
    assert_eq!(entry["target"], "campus::access");
    assert_eq!(entry["fields"]["method"], "POST");
    assert_eq!(entry["fields"]["route"], "/auth/login");
    assert_eq!(entry["fields"]["status"], 401);
    assert!(entry["fields"]["duration_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(entry["span"]["correlation_id"], "corr-logs-1");
    assert!(
        entry["fields"].get("user_id").is_none(),
        "nobody logged in: {line}"
    );

    // A logged-in user's request names them.
    let created = http
        .post(format!("{base}/institutions"))
        .json(&serde_json::json!({"name": "Log College", "academic": {"name": "Ana", "email": "ana@logs.test", "password": "password-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let user_id = created.json::<serde_json::Value>().await.unwrap()["user_id"]
        .as_str()
        .unwrap()
        .to_string();
    let login: serde_json::Value = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"email": "ana@logs.test", "password": "password-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    let listed = http
        .get(format!("{base}/academic/teachers"))
        .header("x-correlation-id", "corr-logs-2")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let line = eventually(
        "the logged-in access line",
        Duration::from_secs(10),
        || async {
            serve
                .stderr()
                .lines()
                .find(|l| l.contains("campus::access") && l.contains("corr-logs-2"))
                .map(str::to_string)
        },
    )
    .await;
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["fields"]["user_id"], user_id.as_str());
    assert_eq!(entry["fields"]["route"], "/academic/teachers");

    serve.terminate();
    let exit = serve.finish(Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit:?}");
    let all = serve.stderr();
    for l in all.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(l)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
    }
    assert!(!all.contains(secret) && !all.contains("query-secret"));
    assert!(!all.contains(&token), "no access token in the logs");
    let _ = std::fs::remove_dir_all(&data);
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn an_unknown_log_format_stops_start_up_with_its_name() {
    let mut cmd = campus_command(&["serve"]);
    cmd.env("CAMPUS_LOG_FORMAT", "xml");
    let mut run = Process::spawn(cmd);
    let exit = run.finish(Duration::from_secs(60)).await;
    assert!(!exit.success());
    assert!(
        run.stderr().contains("CAMPUS_LOG_FORMAT"),
        "{}",
        run.stderr()
    );
}
