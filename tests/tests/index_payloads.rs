//! `campus index-payloads` after a bulk load: it indexes every payload text not indexed yet,
//! says how many, empties the list of rows to index and leaves the texts analyzed (a search's
//! plan follows their statistics).

use campus_adapters::pg::testing::{drop_database, fresh_database, DropOnPanic};
use campus_tests::extra::{campus_command, Process};
use std::time::Duration;

#[tokio::test]
async fn index_payloads_indexes_a_bulk_load_and_analyzes_the_texts() {
    let (url, pool) = fresh_database("campus_index_payloads").await.unwrap();
    let _guard = DropOnPanic(url.clone());
    sqlx::query(
        "INSERT INTO tasks (id, lineage_id, task_type, payload)
         SELECT u, u, 'noop', jsonb_build_object('Student', 'S-' || g)
         FROM (SELECT gen_random_uuid() AS u, g FROM generate_series(1, 1500) g) r",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut cmd = campus_command(&["index-payloads"]);
    cmd.env("DATABASE_URL", &url);
    let mut run = Process::spawn(cmd);
    let status = run.finish(Duration::from_secs(60)).await;
    assert!(
        status.success(),
        "campus index-payloads failed: {}",
        run.stderr()
    );
    assert!(
        run.stdout()
            .contains("Indexed the payload texts of 1500 tasks and 0 events"),
        "{}",
        run.stdout()
    );
    let (texts, pending, found): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM task_texts), (SELECT count(*) FROM task_texts_pending),
                (SELECT count(*) FROM task_texts WHERE body LIKE '%\"s-1499\"%')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((texts, pending, found), (1500, 0, 1), "indexed, lowercased");
    let analyzed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stats WHERE tablename = 'task_texts' AND attname = 'body'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(analyzed, 1, "the texts have statistics");
    pool.close().await;
    drop_database(&url).await.unwrap();
}
