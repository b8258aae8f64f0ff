//! The outbox, the event store and the task queue against a real PostgreSQL (one fresh
//! database per test).

use super::testing::{drop_database, fresh_database, DropOnPanic};
use super::{Notifier, PgStore};
use campus_core::engine::{EventEnvelope, PlannedTask, RetryPolicy};
use campus_core::ids::*;
use campus_core::user::{Institution, PasswordHash, User};
use campus_core::values::{Email, Name, Role};
use campus_ports::*;
use std::sync::Arc;
use std::time::Duration;

struct TwoHandlers;

impl EventPlanner for TwoHandlers {
    fn plan(
        &self,
        event: &EventEnvelope<Payload>,
    ) -> Result<Vec<PlannedTask<Payload>>, PlanFailure> {
        if event.event_type == "Poison" {
            return Err(PlanFailure {
                handler: "h1".into(),
                message: "cannot plan".into(),
            });
        }
        Ok(["h1", "h2"]
            .into_iter()
            .map(|h| PlannedTask {
                task_type: format!("t_{h}"),
                handler: h.into(),
                payload: event.payload.clone(),
                max_attempts: None,
            })
            .collect())
    }
    fn max_attempts(&self, _: &str) -> u32 {
        3
    }
}

async fn store() -> (DropOnPanic, PgStore) {
    let (url, pool) = fresh_database("campus_adapter_test")
        .await
        .expect("test database");
    (DropOnPanic(url), PgStore::new(pool, Notifier::disabled()))
}

fn event(t: &str) -> NewEvent {
    NewEvent {
        event_type: t.into(),
        aggregate_type: "Thing".into(),
        aggregate_id: 1,
        institution_id: None,
        payload: r#"{"n":1}"#.into(),
        correlation_id: Some("corr-1".into()),
    }
}

async fn count(store: &PgStore, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

/// Calls `check` every 5 ms until it returns `Some`, or panics after 10 s naming `what`.
async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// An error's `at` in milliseconds since the epoch.
fn at_ms(at: &serde_json::Value) -> f64 {
    let raw = at.as_str().expect("a timestamp");
    chrono::DateTime::parse_from_rfc3339(raw)
        .unwrap_or_else(|e| panic!("{raw}: {e}"))
        .timestamp_micros() as f64
        / 1000.0
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

fn policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        cap: Duration::from_millis(5),
        max_attempts: 3,
    }
}

#[tokio::test]
async fn a_failed_write_leaves_no_event() {
    let (url, s) = store().await;
    let academic = |id: u128, inst: u128| {
        User::register(
            UserId(id),
            Some(InstitutionId(inst)),
            Role::Academic,
            Name::parse("n", "Ana").unwrap(),
            Email::parse("ana@x.org").unwrap(),
            PasswordHash("h".into()),
        )
        .unwrap()
    };
    let ctx = EventContext {
        correlation_id: Some("c".into()),
    };
    let mut a = academic(10, 1);
    let mut i =
        Institution::create(InstitutionId(1), Name::parse("n", "One").unwrap(), &a).unwrap();
    s.create_institution(&mut i, &mut a, &ctx).await.unwrap();
    assert_eq!(
        count(&s, "SELECT count(*) FROM domain_events").await,
        2,
        "InstitutionCreated + AcademicCreated"
    );

    // Same e-mail: the transaction rolls back, the institution row and its events with it.
    let mut b = academic(20, 2);
    let mut j =
        Institution::create(InstitutionId(2), Name::parse("n", "Two").unwrap(), &b).unwrap();
    let err = s
        .create_institution(&mut j, &mut b, &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Conflict(_)), "{err:?}");
    assert_eq!(count(&s, "SELECT count(*) FROM domain_events").await, 2);
    assert_eq!(count(&s, "SELECT count(*) FROM institutions").await, 1);
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn dispatch_fans_out_once_per_handler_even_when_repeated() {
    let (url, s) = store().await;
    s.append(&[event("Happened"), event("Happened")])
        .await
        .unwrap();
    let r = s
        .dispatch_pending(100, Arc::new(TwoHandlers), &policy())
        .await
        .unwrap();
    assert_eq!((r.events, r.tasks, r.failed), (2, 4, 0));
    assert_eq!(
        count(
            &s,
            "SELECT count(*) FROM tasks WHERE correlation_id = 'corr-1' AND event_id IS NOT NULL"
        )
        .await,
        4
    );

    // Pretend the dispatch never got recorded (e.g. a crash after insert): dispatching again
    // must not duplicate any task.
    sqlx::query("UPDATE domain_events SET status = 'pending'")
        .execute(s.pool())
        .await
        .unwrap();
    let again = s
        .dispatch_pending(100, Arc::new(TwoHandlers), &policy())
        .await
        .unwrap();
    assert_eq!((again.events, again.tasks), (2, 0));
    assert_eq!(count(&s, "SELECT count(*) FROM tasks").await, 4);
    assert_eq!(
        count(&s, "SELECT count(*) FROM tasks WHERE max_attempts = 3").await,
        4
    );
    drop_database(&url).await.unwrap();
}

/// A policy whose delays are long enough to measure and short enough not to wait for:
/// 20–40 ms, 40–80 ms, then dead.
fn measurable_policy() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(40),
        cap: Duration::from_secs(1),
        max_attempts: 3,
    }
}

const POISON: &str = "SELECT status, attempts, errors,
        (extract(epoch FROM next_attempt_at - (errors->-1->>'at')::timestamptz) * 1000)::float8
     FROM domain_events WHERE event_type = 'Poison'";

#[tokio::test]
async fn a_poison_event_does_not_block_its_batch() {
    let (url, s) = store().await;
    let p = measurable_policy();
    s.append(&[event("Happened"), event("Poison"), event("Happened")])
        .await
        .unwrap();
    let r = s
        .dispatch_pending(100, Arc::new(TwoHandlers), &p)
        .await
        .unwrap();
    assert_eq!((r.events, r.tasks, r.failed), (3, 4, 1));
    // Each failure is recorded, then retried after the policy's delay, until dead after
    // max_attempts = 3.
    let mut seen = Vec::new();
    loop {
        let row: (String, i32, serde_json::Value, f64) =
            sqlx::query_as(POISON).fetch_one(s.pool()).await.unwrap();
        seen.push(row.clone());
        if row.0 == "dead" || seen.len() > 3 {
            break;
        }
        let attempts = row.1;
        until("the poison event's next attempt", || async {
            s.dispatch_pending(100, Arc::new(TwoHandlers), &p)
                .await
                .unwrap();
            let now: i32 = sqlx::query_scalar(
                "SELECT attempts FROM domain_events WHERE event_type = 'Poison'",
            )
            .fetch_one(s.pool())
            .await
            .unwrap();
            (now > attempts).then_some(())
        })
        .await;
    }
    let statuses: Vec<(&str, i32)> = seen.iter().map(|r| (r.0.as_str(), r.1)).collect();
    assert_eq!(
        statuses,
        [("retrying", 1), ("retrying", 2), ("dead", 3)],
        "one attempt per dispatch, dead after the third"
    );
    let errors = seen[2].2.as_array().unwrap().clone();
    let numbered: Vec<(i64, bool)> = errors
        .iter()
        .map(|e| {
            let m = e["message"].as_str().unwrap();
            (
                e["attempt"].as_i64().unwrap(),
                m.contains("h1") && m.contains("cannot plan"),
            )
        })
        .collect();
    assert_eq!(numbered, [(1, true), (2, true), (3, true)], "{errors:?}");
    // The delays grow as the policy says: each in its window, and no attempt came early.
    let at = |i: usize| at_ms(&errors[i]["at"]);
    for (i, row) in seen.iter().take(2).enumerate() {
        let attempt = i as u32 + 1;
        assert_in_window(&p, attempt, row.3);
        assert!(
            at(i + 1) - at(i) >= row.3 - 0.001,
            "attempt {} ran {} ms after attempt {attempt}, before its delay of {} ms",
            attempt + 1,
            at(i + 1) - at(i),
            row.3
        );
    }
    assert_eq!(
        count(&s, "SELECT count(*) FROM tasks").await,
        4,
        "the other events planned their tasks; the poison one none"
    );
    drop_database(&url).await.unwrap();
}

fn task(key: Option<&str>) -> NewTask {
    NewTask {
        task_type: "t".into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 2,
        idempotency_key: key.map(str::to_string),
        run_at: None,
    }
}

/// Every task type these tests enqueue or plan.
fn types() -> ClaimTypes {
    ClaimTypes::of(["t", "t_h1", "t_h2"])
}

#[tokio::test]
async fn completion_is_fenced_and_failures_retry_then_die() {
    let (url, s) = store().await;
    assert_eq!(
        s.enqueue(&[task(Some("k")), task(Some("k"))])
            .await
            .unwrap(),
        1,
        "unique key"
    );
    let claimed = s
        .claim("w1", &types(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let t = &claimed[0];
    assert_eq!(t.attempt, 1);
    assert_eq!(t.lineage_id, t.id);
    assert!(
        s.claim("w2", &types(), 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "claimed tasks are not claimed twice"
    );

    let fail = |attempt| Completion {
        id: t.id,
        attempt,
        max_attempts: t.max_attempts,
        outcome: TaskOutcome::Failed {
            message: "boom".into(),
            permanent: false,
        },
        duration: Duration::from_millis(3),
    };
    assert_eq!(
        s.complete("w2", &[fail(1)], &policy()).await.unwrap(),
        0,
        "a stranger cannot complete it"
    );
    let p = measurable_policy();
    assert_eq!(s.complete("w1", &[fail(1)], &p).await.unwrap(), 1);
    assert_eq!(
        s.complete("w1", &[fail(1)], &p).await.unwrap(),
        0,
        "the same attempt completes once"
    );
    let (status, attempt, delay): (String, i32, f64) = sqlx::query_as(
        "SELECT status, attempt,
                (extract(epoch FROM run_at - (errors->-1->>'at')::timestamptz) * 1000)::float8
         FROM tasks",
    )
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!((status.as_str(), attempt), ("retrying", 1));
    assert_in_window(&p, 1, delay);
    assert!(
        s.claim("w1", &types(), 10, Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty(),
        "a retrying task waits for its delay"
    );

    let again = until("the retry to be due", || async {
        let got = s
            .claim("w1", &types(), 10, Duration::from_secs(30))
            .await
            .unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(again[0].attempt, 2);
    assert_eq!(s.complete("w1", &[fail(2)], &p).await.unwrap(), 1);
    let (status, attempt, errors, started): (String, i32, serde_json::Value, f64) =
        sqlx::query_as(
            "SELECT status, attempt, errors, (extract(epoch FROM started_at) * 1000)::float8 FROM tasks",
        )
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!((status.as_str(), attempt), ("dead", 2), "max_attempts = 2");
    let attempts: Vec<(i64, &str)> = errors
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["attempt"].as_i64().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(attempts, [(1, "boom"), (2, "boom")]);
    assert!(
        started - at_ms(&errors[0]["at"]) >= delay - 0.001,
        "the second attempt started {} ms after the first failed, before its delay of {delay} ms",
        started - at_ms(&errors[0]["at"])
    );
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn concurrent_claims_never_overlap() {
    let (url, s) = store().await;
    let tasks: Vec<_> = (0..300).map(|_| task(None)).collect();
    s.enqueue(&tasks).await.unwrap();
    let claimers = (0..6).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim(&format!("w{i}"), &types(), 7, Duration::from_secs(30))
                    .await
                    .unwrap();
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got.into_iter().map(|t| t.id));
            }
        })
    });
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (300, 300));
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

#[tokio::test]
async fn expired_leases_are_rescued_and_heartbeats_keep_them() {
    let (url, s) = store().await;
    s.enqueue(&[task(None), task(None)]).await.unwrap();
    let claimed = s
        .claim("w1", &types(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    // One lease expires (its daemon died); the other is kept alive by a heartbeat.
    sqlx::query("UPDATE tasks SET locked_until = now() - interval '1 second'")
        .execute(s.pool())
        .await
        .unwrap();
    assert_eq!(
        s.heartbeat("w1", &[claimed[1].id], Duration::from_secs(30))
            .await
            .unwrap(),
        vec![claimed[1].id]
    );
    assert_eq!(
        s.heartbeat("w2", &[claimed[1].id], Duration::from_secs(30))
            .await
            .unwrap(),
        Vec::<TaskId>::new(),
        "only the holder"
    );
    assert_eq!(s.rescue_expired(&policy(), 100).await.unwrap(), 1);
    let (status, errors): (String, serde_json::Value) =
        sqlx::query_as("SELECT status, errors FROM tasks WHERE id = $1")
            .bind(uuid::Uuid::from_u128(claimed[0].id.0))
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(status, "retrying");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("lease expired"),
        "{errors}"
    );
    // The dead worker's late completion is refused; the task runs again under a new attempt.
    let late = Completion {
        id: claimed[0].id,
        attempt: 1,
        max_attempts: 2,
        outcome: TaskOutcome::Succeeded,
        duration: Duration::from_millis(1),
    };
    assert_eq!(s.complete("w1", &[late], &policy()).await.unwrap(), 0);
    let again = until("the rescued task to be due", || async {
        let got = s
            .claim("w2", &types(), 10, Duration::from_secs(30))
            .await
            .unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!((again.len(), again[0].attempt), (1, 2));
    // Expired on its last attempt: dead.
    sqlx::query(
        "UPDATE tasks SET locked_until = now() - interval '1 second' WHERE locked_by = 'w2'",
    )
    .execute(s.pool())
    .await
    .unwrap();
    assert_eq!(s.rescue_expired(&policy(), 100).await.unwrap(), 1);
    let status: String = sqlx::query_scalar("SELECT status FROM tasks WHERE id = $1")
        .bind(uuid::Uuid::from_u128(claimed[0].id.0))
        .fetch_one(s.pool())
        .await
        .unwrap();
    assert_eq!(status, "dead");
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn reprocessing_copies_and_never_edits() {
    let (url, s) = store().await;
    s.enqueue(&[task(Some("a")), task(Some("b"))])
        .await
        .unwrap();
    let claimed = s
        .claim("w", &types(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    let pending_copy = s
        .reprocess_task(claimed[0].id, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(pending_copy, PortError::Conflict(ref m) if m.contains("running")),
        "{pending_copy:?}"
    );
    let dead = |c: &ClaimedTask| Completion {
        id: c.id,
        attempt: c.attempt,
        max_attempts: c.max_attempts,
        outcome: TaskOutcome::Failed {
            message: "no".into(),
            permanent: true,
        },
        duration: Duration::ZERO,
    };
    s.complete("w", &[dead(&claimed[0]), dead(&claimed[1])], &policy())
        .await
        .unwrap();
    let before: serde_json::Value =
        sqlx::query_scalar("SELECT to_jsonb(t) FROM tasks t WHERE id = $1")
            .bind(uuid::Uuid::from_u128(claimed[0].id.0))
            .fetch_one(s.pool())
            .await
            .unwrap();

    let copy = s
        .reprocess_task(claimed[0].id, None, Some("op-1".into()))
        .await
        .unwrap();
    let (from, lineage, status, key, corr): (uuid::Uuid, uuid::Uuid, String, Option<String>, String) = sqlx::query_as(
        "SELECT reprocessed_from, lineage_id, status, idempotency_key, correlation_id FROM tasks WHERE id = $1",
    )
    .bind(uuid::Uuid::from_u128(copy.0))
    .fetch_one(s.pool())
    .await
    .unwrap();
    assert_eq!(
        (from.as_u128(), lineage.as_u128()),
        (claimed[0].id.0, claimed[0].lineage_id.0)
    );
    assert_eq!(
        (status.as_str(), key, corr.as_str()),
        ("pending", None, "op-1")
    );
    let after: serde_json::Value =
        sqlx::query_scalar("SELECT to_jsonb(t) FROM tasks t WHERE id = $1")
            .bind(uuid::Uuid::from_u128(claimed[0].id.0))
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(before, after, "the original row never changes");
    assert!(
        matches!(
            s.reprocess_task(claimed[0].id, None, None).await,
            Err(PortError::Conflict(_))
        ),
        "a copy is waiting"
    );
    assert!(matches!(
        s.reprocess_task(TaskId(1), None, None).await,
        Err(PortError::NotFound(_))
    ));
    assert!(
        matches!(
            s.reprocess_task(claimed[1].id, Some(InstitutionId(9)), None)
                .await,
            Err(PortError::NotFound(_))
        ),
        "out of scope"
    );

    // Bulk: the other dead task only (the first one has a waiting copy).
    let filter = TaskFilter {
        task_type: Some("t".into()),
        ..Default::default()
    };
    assert_eq!(s.reprocess_tasks(&filter, 1000, None).await.unwrap(), 1);
    assert_eq!(s.reprocess_tasks(&filter, 1000, None).await.unwrap(), 0);

    // The first copy succeeds, the second fails and waits for a retry: a bulk reprocess of
    // the dead tasks copies neither original (one is fixed, the other has a copy waiting).
    let copies = s
        .claim("w", &types(), 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(copies.len(), 2);
    let outcome = |c: &ClaimedTask, outcome| Completion {
        id: c.id,
        attempt: c.attempt,
        max_attempts: c.max_attempts,
        outcome,
        duration: Duration::ZERO,
    };
    let (fixed, failing) = if copies[0].id == copy {
        (&copies[0], &copies[1])
    } else {
        (&copies[1], &copies[0])
    };
    s.complete(
        "w",
        &[
            outcome(fixed, TaskOutcome::Succeeded),
            outcome(
                failing,
                TaskOutcome::Failed {
                    message: "again".into(),
                    permanent: false,
                },
            ),
        ],
        &policy(),
    )
    .await
    .unwrap();
    let tasks_before = count(&s, "SELECT count(*) FROM tasks").await;
    assert_eq!(
        s.reprocess_tasks(&filter, 1000, None).await.unwrap(),
        0,
        "a dead task whose copy succeeded is not copied again"
    );
    assert_eq!(count(&s, "SELECT count(*) FROM tasks").await, tasks_before);
    // Asking for succeeded tasks still copies them (a deliberate re-run).
    let succeeded = TaskFilter {
        task_type: Some("t".into()),
        status: Some(campus_core::engine::TaskStatus::Succeeded),
        ..Default::default()
    };
    assert_eq!(s.reprocess_tasks(&succeeded, 1000, None).await.unwrap(), 1);
    let running = TaskFilter {
        status: Some(campus_core::engine::TaskStatus::Running),
        ..Default::default()
    };
    assert!(matches!(
        s.reprocess_tasks(&running, 1000, None).await,
        Err(PortError::Conflict(_))
    ));
    drop_database(&url).await.unwrap();
}

#[tokio::test]
async fn reprocessing_an_event_fans_out_again() {
    let (url, s) = store().await;
    let ids = s.append(&[event("Happened")]).await.unwrap();
    assert!(
        matches!(
            s.reprocess_event(ids[0], None, None).await,
            Err(PortError::Conflict(_))
        ),
        "still pending"
    );
    s.dispatch_pending(10, Arc::new(TwoHandlers), &policy())
        .await
        .unwrap();
    let copy = s.reprocess_event(ids[0], None, None).await.unwrap();
    let r = s
        .dispatch_pending(10, Arc::new(TwoHandlers), &policy())
        .await
        .unwrap();
    assert_eq!(
        (r.events, r.tasks),
        (1, 2),
        "the copy creates its own tasks"
    );
    let from: uuid::Uuid =
        sqlx::query_scalar("SELECT reprocessed_from FROM domain_events WHERE id = $1")
            .bind(uuid::Uuid::from_u128(copy.0))
            .fetch_one(s.pool())
            .await
            .unwrap();
    assert_eq!(from.as_u128(), ids[0].0);
    assert_eq!(count(&s, "SELECT count(*) FROM tasks").await, 4);
    drop_database(&url).await.unwrap();
}

/// The plans of the engine's hot statements, as the engine's pool makes them (generic and
/// custom), when the statistics were taken while the backlog was nearly empty and nothing
/// ran: the situation autovacuum leaves behind before a burst. A claim must read `tasks_due` in order
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
        "PREPARE claim(text, bigint, float8, text[]) AS {}",
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
        let claim =
            sqlx::query_scalar::<_, String>("EXPLAIN EXECUTE claim('w', 256, 30000, '{burst}')")
                .fetch_all(&mut *conn)
                .await
                .unwrap()
                .join("\n");
        assert!(
            claim.contains("Index Scan using tasks_due") && !claim.contains("Sort"),
            "{mode}: the claim reads tasks_due in order:\n{claim}"
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
