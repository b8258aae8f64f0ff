//! `campus daemon` answers on `CAMPUS_DAEMON_ADDR`: `/health/live`, `/health/ready` (which
//! turns 503 while its database refuses connections, and back) and `/metrics`.

use campus_adapters::pg::testing::{drop_database, fresh_database, DropOnPanic};
use campus_tests::eventually;
use campus_tests::extra::{campus_command, free_addr, Process};
use std::time::Duration;

async fn status(url: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Allows or refuses new connections to the database, and ends the daemon's open ones.
async fn allow_connections(admin: &sqlx::PgPool, db: &str, allow: bool) {
    sqlx::query(&format!(
        "ALTER DATABASE \"{db}\" WITH ALLOW_CONNECTIONS {allow}"
    ))
    .execute(admin)
    .await
    .unwrap();
    if !allow {
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
            .bind(db)
            .execute(admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_daemon_reports_health_readiness_and_metrics() {
    let (url, pool) = fresh_database("campus_probes").await.unwrap();
    pool.close().await;
    let url = DropOnPanic(url);
    let db = url.rsplit('/').next().unwrap().to_string();
    let admin = campus_adapters::pg::connect(&url.replace(&db, "postgres"), 1)
        .await
        .unwrap();
    let addr = free_addr();
    let data = std::env::temp_dir().join(format!("campus-probes-{}", uuid::Uuid::now_v7()));
    let mut cmd = campus_command(&["daemon"]);
    cmd.env("DATABASE_URL", &*url)
        .env("CAMPUS_DAEMON_ADDR", addr.to_string())
        .env("CAMPUS_DATA_DIR", &data);
    let mut daemon = Process::spawn(cmd);
    let base = format!("http://{addr}");

    let live = eventually("the daemon's listener", Duration::from_secs(60), || async {
        status(&format!("{base}/health/live"))
            .await
            .filter(|s| *s == 200)
    })
    .await;
    assert_eq!(live, 200);
    assert_eq!(status(&format!("{base}/health/ready")).await, Some(200));
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("# TYPE campus_daemon_leader gauge"),
        "{metrics}"
    );
    assert_eq!(status(&format!("{base}/nothing-here")).await, Some(404));

    // The database refuses connections: not ready (the process lives on); then ready again.
    allow_connections(&admin, &db, false).await;
    eventually("not ready", Duration::from_secs(30), || async {
        (status(&format!("{base}/health/ready")).await == Some(503)).then_some(())
    })
    .await;
    assert_eq!(status(&format!("{base}/health/live")).await, Some(200));
    allow_connections(&admin, &db, true).await;
    eventually("ready again", Duration::from_secs(30), || async {
        (status(&format!("{base}/health/ready")).await == Some(200)).then_some(())
    })
    .await;

    daemon.terminate();
    let exit = daemon.finish(Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit:?}: {}", daemon.stderr());
    let _ = std::fs::remove_dir_all(&data);
    admin.close().await;
    drop_database(&url).await.unwrap();
}
