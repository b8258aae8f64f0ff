//! A few-second run of `campus bench` so the benchmark keeps working. No timing assertions:
//! it checks that every figure was measured and that the scratch database is gone.

use campus_tests::campus_binary;

#[tokio::test]
async fn bench_runs_and_cleans_up() {
    let server = campus_adapters::pg::testing::server_url();
    let trace = std::env::temp_dir().join(format!("campus-api-trace-{}.csv", std::process::id()));
    let out = tokio::process::Command::new(campus_binary())
        .args([
            "bench",
            "--json",
            "--tasks",
            "500",
            "--seconds",
            "1",
            "--samples",
            "20",
            "--rate",
            "20",
            "--api-seconds",
            "1",
            "--fairness",
            "500",
            "--api-trace",
        ])
        .arg(&trace)
        .env("DATABASE_URL", &server)
        // The bench's `campus daemon` and `campus api` children inherit it: small pools.
        .env("CAMPUS_DB_CONNECTIONS", "6")
        .env("RUST_LOG", "error")
        .output()
        .await
        .expect("run campus bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    for key in [
        "tasks_per_s",
        "e2e_events_per_s",
        "e2e_tasks_per_s",
        "commit_limit_events_per_s",
        "e2e_ratio",
        "task_latency_p50_ms",
        "task_latency_p99_ms",
        "event_latency_p50_ms",
        "event_latency_p99_ms",
        "loaded_task_latency_p99_ms",
        "loaded_event_latency_p99_ms",
        "api_p99_ms",
        "daemon_peak_rss_mb",
        "fairness_drain_per_s",
        "fairness_b_latency_p99_ms",
    ] {
        let v = report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing in {report}"));
        assert!(v > 0.0, "{key} was not measured: {report}");
    }
    assert_eq!(report["api_errors"], 0, "{report}");
    assert!(stderr.contains("[4/4]"), "progress is shown: {stderr}");

    // The trace has every request of the API phase: 20 req/s for 1 s per endpoint, all answered.
    let csv = std::fs::read_to_string(&trace).expect("the API trace is written");
    let _ = std::fs::remove_file(&trace);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("endpoint,scheduled_unix_s,latency_ms,service_ms,ok")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    for endpoint in ["reset-password-token", "notes"] {
        let of: Vec<_> = rows.iter().filter(|r| r[0] == endpoint).collect();
        assert_eq!(of.len(), 20, "{endpoint} in {csv}");
        assert!(of.iter().all(|r| r[4] == "true"), "{csv}");
        let scheduled: Vec<f64> = of.iter().map(|r| r[1].parse().unwrap()).collect();
        assert!(
            scheduled
                .windows(2)
                .all(|w| (w[1] - w[0] - 1.0 / 20.0).abs() < 1e-4),
            "in scheduled order, 1/rate apart: {csv}"
        );
    }

    let scratch = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bench: scratch database "))
        .and_then(|url| url.rsplit('/').next())
        .expect("the scratch database is named")
        .to_string();
    let pool = campus_adapters::pg::connect(&server, 1).await.unwrap();
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&scratch)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(!left, "the scratch database {scratch} was dropped");
}
