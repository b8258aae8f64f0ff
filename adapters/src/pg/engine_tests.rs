//! What only the PostgreSQL adapter must get right: crash windows simulated in SQL, row locks, query plans and table constraints (one fresh database
//! per test). The rules every adapter shares are the conformance suite (`crate::conformance`).

use super::testing::{drop_database, fresh_database, DropOnPanic};
use super::{Notifier, PgStore};
use crate::conformance::{
    completion, event, measurable_policy, quick_policy, task, types, TwoHandlers, LONG_LEASE,
};
use campus_core::engine::RetryPolicy;
use campus_ports::*;
use std::sync::Arc;
use std::time::Duration;

async fn store() -> (DropOnPanic, PgStore) {
    let (url, pool) = fresh_database("campus_adapter_test")
        .await
        .expect("test database");
    (DropOnPanic(url), PgStore::new(pool, Notifier::disabled()))
}

async fn count(store: &PgStore, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Asserts that `delay_ms`, chosen after failed attempt `attempt`, lies in the policy's
/// equal-jitter window `[raw / 2, raw]` (1 µs of rounding allowed).
fn assert_in_window(p: &RetryPolicy, attempt: u32, delay_ms: f64) {
    let raw = p.raw_delay(attempt).as_secs_f64() * 1000.0;
    assert!(
        delay_ms >= raw / 2.0 - 0.001 && delay_ms <= raw + 0.001,
        "the delay after attempt {attempt} was {delay_ms} ms, outside [{}, {raw}] ms",
        raw / 2.0
    );
}

/// A crash after the tasks were inserted but before the events were marked dispatched
/// (simulated in SQL: the port cannot do it) never duplicates a task: the unique index on
/// the idempotency key absorbs the second fan-out. The port-level rules of fan-out are in
/// `crate::conformance`.
#[tokio::test]
async fn a_lost_dispatch_record_never_duplicates_tasks() {
    let (url, s) = store().await;
    s.append(&[event("Happened"), event("Happened")])
        .await
        .unwrap();
    let r = s
        .dispatch_pending(100, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    assert_eq!((r.events, r.tasks, r.failed), (2, 4, 0));
    sqlx::query("UPDATE domain_events SET status = 'pending'")
        .execute(s.pool())
        .await
        .unwrap();
    let again = s
        .dispatch_pending(100, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    assert_eq!((again.events, again.tasks), (2, 0));
    assert_eq!(count(&s, "SELECT count(*) FROM tasks").await, 4);
    drop_database(&url).await.unwrap();
}

/// The delay before a failed event's next attempt, as stored (`next_attempt_at`, which no
/// port shows: the conformance suite checks that no attempt comes early), lies in the
/// policy's window.
#[tokio::test]
async fn a_failed_event_is_retried_within_the_policy_window() {
    let (url, s) = store().await;
    let p = measurable_policy();
    s.append(&[event("Poison")]).await.unwrap();
    s.dispatch_pending(100, Arc::new(TwoHandlers), &p)
        .await
        .unwrap();
    let (status, delay): (String, f64) = sqlx::query_as(
        "SELECT status,
            (extract(epoch FROM next_attempt_at - (errors->-1->>'at')::timestamptz) * 1000)::float8
         FROM domain_events",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!(status, "retrying");
    assert_in_window(&p, 1, delay);
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn a_heartbeat_skips_rows_being_written_instead_of_waiting_for_them() {
    let (url, s) = store().await;
    s.enqueue(&[task(None), task(None)]).await.unwrap();
    let claimed = s
        .claim("w1", &types(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // A completion of the first task is being written (its row is locked, not committed).
    let mut writing = s.pool().begin().await.unwrap();
    sqlx::query("UPDATE tasks SET duration_ms = 1 WHERE id = $1")
        .bind(uuid::Uuid::from_u128(claimed[0].id.0))
        .execute(&mut *writing)
        .await
        .unwrap();
    let ids = [claimed[0].id, claimed[1].id];
    let held = tokio::time::timeout(
        Duration::from_secs(10),
        s.heartbeat("w1", &ids, Duration::from_secs(30)),
    )
    .await
    .expect("the heartbeat waited for the locked row")
    .unwrap();
    assert_eq!(held, vec![claimed[1].id]);
    writing.rollback().await.unwrap();
    drop_database(&url).await.unwrap();
}

/// The plans of the engine's hot statements, as the engine's pool makes them (generic and
/// custom), when the statistics were taken while the backlog was nearly empty and nothing
/// ran: the situation autovacuum leaves behind before a burst. A claim must read `tasks_claim` in order
/// (not sort the backlog) and a completion must look rows up by primary key (not walk
/// `tasks_running_lease` once per row): either mistake made the drain 3–5 times slower.
#[tokio::test]
async fn hot_statements_keep_their_plans_when_statistics_are_stale() {
    let (url, s) = store().await;
    sqlx::query(
        "INSERT INTO tasks (id, lineage_id, task_type, payload, status, finished_at)
         SELECT u, u, 'old', '{}', 'succeeded', now() FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, 20000)) r",
    )
    .execute(s.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE tasks")
        .execute(s.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO tasks (id, lineage_id, task_type, payload)
         SELECT u, u, 'burst', '{}' FROM (SELECT gen_random_uuid() AS u FROM generate_series(1, 20000)) r",
    )
    .execute(s.pool())
    .await
    .unwrap();

    let burst: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT id FROM tasks WHERE task_type = 'burst' LIMIT 256")
            .fetch_all(s.pool())
            .await
            .unwrap();
    let ids = burst
        .iter()
        .map(uuid::Uuid::to_string)
        .collect::<Vec<_>>()
        .join(",");

    let engine = super::connect_engine(&url, 1).await.unwrap();
    let mut conn = engine.acquire().await.unwrap();
    sqlx::query(&format!(
        "PREPARE claim(text, bigint, float8, text[], uuid[], bigint[], text[], bigint[], float8, bigint,
                        uuid[], timestamptz[], uuid[]) AS {}",
        super::tasks::CLAIM
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query(&format!(
        "PREPARE complete(uuid[], int[], text[], float8[], text[], float8[], text) AS {}",
        super::tasks::COMPLETE
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    for mode in ["force_generic_plan", "force_custom_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        let claim = sqlx::query_scalar::<_, String>(
            "EXPLAIN EXECUTE claim('w', 256, 30000, '{burst}', '{}', '{}', '{}', '{}', 20000, 256,
                                   '{}', '{}', '{}')",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .join("\n");
        // Sorts are fine over the groups or the claimed rows, never straight over the table.
        let lines: Vec<&str> = claim.lines().collect();
        let sorts_the_table = lines.iter().enumerate().any(|(i, l)| {
            l.contains("->  Sort")
                && lines[i + 1..]
                    .iter()
                    .find(|n| n.contains("->"))
                    .is_some_and(|n| n.contains(" on tasks"))
        });
        assert!(
            claim.contains("Index Scan using tasks_claim")
                && !claim.contains("Seq Scan on tasks")
                && !claim.contains("Bitmap Heap Scan on tasks ")
                && !sorts_the_table,
            "{mode}: the claim reads tasks_claim in order:\n{claim}"
        );
        let complete = sqlx::query_scalar::<_, String>(&format!(
            "EXPLAIN EXECUTE complete('{{{ids}}}', array_fill(1, ARRAY[256]),
                 array_fill('succeeded'::text, ARRAY[256]), array_fill(0::float8, ARRAY[256]),
                 array_fill(NULL::text, ARRAY[256]), array_fill(0::float8, ARRAY[256]), 'w')"
        ))
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .join("\n");
        assert!(
            complete.contains("tasks_pkey") && !complete.contains("tasks_running_lease"),
            "{mode}: the completion looks rows up by primary key:\n{complete}"
        );
    }
    drop(conn);
    engine.close().await;
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn a_task_holds_a_lock_exactly_while_it_runs() {
    let (url, s) = store().await;
    for (status, locked_by) in [
        ("running", None),
        ("pending", Some("w")),
        ("succeeded", Some("w")),
    ] {
        let r = sqlx::query(
            "INSERT INTO tasks (id, lineage_id, task_type, payload, status, locked_by)
             SELECT u, u, 't', '{}', $1, $2 FROM gen_random_uuid() AS u",
        )
        .bind(status)
        .bind(locked_by)
        .execute(s.pool())
        .await;
        let e = r.expect_err("the row breaks the lock invariant");
        assert_eq!(
            e.as_database_error().and_then(|d| d.constraint()),
            Some("tasks_locked_while_running"),
            "{status} with locked_by {locked_by:?}"
        );
    }
    drop_database(&url).await.unwrap();
}

/// A claim starts after the last task the worker's previous full claim took; when it comes
/// back short, it looks for the rest from the head at once, so a task due before that
/// position (here a new interactive one, whose turn is earlier) is not left behind and a short
/// claim still means nothing more is due.
#[tokio::test]
async fn a_short_claim_after_a_position_looks_from_the_head_for_the_rest() {
    let (url, s) = store().await;
    let normal: Vec<NewTask> = (0..4).map(|_| task(None)).collect();
    s.enqueue(&normal).await.unwrap();
    let first = s.claim("w", &types(), 2, LONG_LEASE).await.unwrap();
    assert_eq!(first.len(), 2, "a full claim: the next one starts after it");
    s.enqueue(&[NewTask {
        payload: r#"{"urgent":true}"#.into(),
        priority: campus_core::engine::Priority::Interactive,
        ..task(None)
    }])
    .await
    .unwrap();
    let rest = s.claim("w", &types(), 10, LONG_LEASE).await.unwrap();
    assert_eq!(rest.len(), 3, "the two left and the urgent one: {rest:?}");
    assert_eq!(
        rest[0].payload, r#"{"urgent": true}"#,
        "started first, by its turn"
    );
    assert!(first.iter().all(|f| rest.iter().all(|r| r.id != f.id)));
    drop_database(&url).await.unwrap();
}

/// A dispatch round may claim the tasks it inserts: in planned order, up to its limit, of the
/// types it may take within their caps, never a paused one. Those are stored running for its
/// worker (attempt 1, leased) and complete like any claimed task; the rest wait for a claim.
#[tokio::test]
async fn a_dispatch_round_claims_what_it_may_of_the_tasks_it_inserts() {
    let (url, s) = store().await;
    let planner = Arc::new(TwoHandlers);
    s.append(&[event("Happened"), event("Happened"), event("Happened")])
        .await
        .unwrap();
    let claim = ClaimOnInsert {
        worker: "w".into(),
        types: ClaimTypes {
            any: vec!["t_h2".into()],
            capped: vec![("t_h1".into(), 1)],
            ..ClaimTypes::default()
        },
        limit: 3,
        lease: LONG_LEASE,
    };
    let (report, claimed) = s
        .dispatch_and_claim(100, planner.clone(), &quick_policy(), &claim)
        .await
        .unwrap();
    assert_eq!((report.events, report.tasks), (3, 6));
    let taken: Vec<&str> = claimed.iter().map(|t| t.task_type.as_str()).collect();
    assert_eq!(
        taken,
        ["t_h1", "t_h2", "t_h2"],
        "t_h1 capped at one, three in all"
    );
    assert!(claimed
        .iter()
        .all(|t| t.attempt == 1 && t.max_attempts == 3 && t.event_id.is_some()));
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM tasks WHERE status = 'running' AND locked_by = 'w' AND attempt = 1
               AND started_at IS NOT NULL AND locked_until > now() + interval '50 seconds'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&s, "SELECT count(*) FROM tasks WHERE status = 'pending' AND locked_by IS NULL AND attempt = 0").await,
        3
    );
    let done: Vec<Completion> = claimed
        .iter()
        .map(|t| completion(t, TaskOutcome::Succeeded))
        .collect();
    assert_eq!(s.complete("w", &done, &quick_policy()).await.unwrap(), 3);
    let rest = s.claim("v", &types(), 10, LONG_LEASE).await.unwrap();
    assert_eq!(rest.len(), 3, "the others are claimed the usual way");

    s.set_paused("t_h2", true).await.unwrap();
    s.append(&[event("Happened")]).await.unwrap();
    let claim = ClaimOnInsert {
        types: types(),
        limit: 10,
        ..claim
    };
    let (_, claimed) = s
        .dispatch_and_claim(100, planner, &quick_policy(), &claim)
        .await
        .unwrap();
    let taken: Vec<&str> = claimed.iter().map(|t| t.task_type.as_str()).collect();
    assert_eq!(taken, ["t_h1"], "a paused type waits");
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM tasks WHERE task_type = 't_h2' AND status = 'pending'"
        )
        .await,
        1
    );
    drop_database(&url).await.unwrap();
}
