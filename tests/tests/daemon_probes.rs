//! `campus daemon` answers on `CAMPUS_DAEMON_ADDR`: `/health/live`, `/health/ready` (which
//! turns 503 while its LISTEN connection is down or its database refuses connections, and
//! back) and `/metrics`.

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

/// Allows or refuses new connections to the database.
async fn allow_connections(admin: &sqlx::PgPool, db: &str, allow: bool) {
    sqlx::query(&format!(
        "ALTER DATABASE \"{db}\" WITH ALLOW_CONNECTIONS {allow}"
    ))
    .execute(admin)
    .await
    .unwrap();
}

/// Ends the database's connections whose last statement is `LIKE like`; returns how many.
async fn end_connections(admin: &sqlx::PgPool, db: &str, like: &str) -> usize {
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND query LIKE $2",
    )
    .bind(db)
    .bind(like)
    .fetch_all(admin)
    .await
    .unwrap();
    ended.into_iter().filter(|e| *e).count()
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
    // Ready once its LISTEN connection is up, moments after start.
    eventually("ready", Duration::from_secs(30), || async {
        (status(&format!("{base}/health/ready")).await == Some(200)).then_some(())
    })
    .await;
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

    // Only the LISTEN connection is cut (and cannot come back while the database refuses new
    // connections); the pool's open connections still answer: not ready, for that reason.
    allow_connections(&admin, &db, false).await;
    assert_eq!(
        end_connections(&admin, &db, "LISTEN%").await,
        1,
        "one LISTEN connection"
    );
    let why = eventually(
        "not ready without LISTEN",
        Duration::from_secs(30),
        || async {
            let resp = reqwest::get(format!("{base}/health/ready")).await.ok()?;
            (resp.status() == 503).then_some(())?;
            resp.text().await.ok()
        },
    )
    .await;
    assert!(why.contains("LISTEN"), "{why}");
    allow_connections(&admin, &db, true).await;
    eventually(
        "ready with LISTEN back",
        Duration::from_secs(30),
        || async { (status(&format!("{base}/health/ready")).await == Some(200)).then_some(()) },
    )
    .await;

    // The database refuses connections: not ready (the process lives on); then ready again.
    allow_connections(&admin, &db, false).await;
    end_connections(&admin, &db, "%").await;
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
