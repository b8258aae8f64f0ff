//! Invariants of the archive on real PostgreSQL:
//!
//! - a proptest: over random mixes of task and event statuses, ages on both sides of the
//!   retention windows, copies (waiting or not) and task→event links, batches of 3–7 rows move
//!   exactly the rows `campus_core::engine::retention` allows (iterated to a fixed point),
//!   each exactly once and unchanged, and a second run moves nothing;
//! - archiving with zero windows while a daemon drains and writers record events and enqueue
//!   tasks loses, duplicates and moves-too-early nothing;
//! - `campus archive` SIGKILLed mid-run leaves a consistent state (each row once, in one of
//!   the two tables), records no run, and the next run moves the rest.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_adapters::pg::testing::{drop_database, fresh_database, DropOnPanic};
use campus_adapters::pg::{Notifier, PgStore};
use campus_core::engine::retention::{EventFacts, RetentionWindows, TaskFacts};
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::Timestamp;
use campus_ports::{Archive, ArchiveCounts, ClaimedTask, EventStore, NewEvent, NewTask, TaskQueue};
use campus_tests::extra::{campus_command, Process};
use campus_tests::{campus_binary, eventually, TestApp};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

const MINUTE_MS: i64 = 60_000;

/// Ages in minutes before the case's start (negative: in the future), on both sides of every
/// window the cases use (0, 1 h, 1 d, 30 d): one minute is far more than a case takes.
const AGES: [i64; 14] = [
    -10, 0, 1, 59, 60, 61, 1439, 1440, 1441, 43_199, 43_200, 43_201, 100_000, 7,
];

#[derive(Debug, Clone)]
struct TaskSpec {
    status: TaskStatus,
    /// Minutes before the start it finished (`None`: `finished_at` is NULL).
    finished: Option<i64>,
    /// Its origin event: an index into the live events, or into the pre-archived ones.
    event: Option<(Index, bool)>,
    /// The task it is a copy of: an index into the live tasks, or into the pre-archived ones.
    copy_of: Option<(Index, bool)>,
}

#[derive(Debug, Clone)]
struct EventSpec {
    status: EventStatus,
    dispatched: Option<i64>,
    occurred: i64,
    copy_of: Option<(Index, bool)>,
}

#[derive(Debug, Clone)]
struct Case {
    /// Windows in minutes.
    finished: i64,
    dead: i64,
    limit: u32,
    events: Vec<EventSpec>,
    tasks: Vec<TaskSpec>,
    /// Rows already in the archive tables (originals of live copies, origins of live tasks).
    archived_events: usize,
    archived_tasks: usize,
}

fn age() -> impl Strategy<Value = i64> {
    proptest::sample::select(AGES.to_vec())
}

fn link() -> impl Strategy<Value = Option<(Index, bool)>> {
    proptest::option::weighted(0.5, (any::<Index>(), proptest::bool::weighted(0.2)))
}

/// Finished statuses are likelier, so that several batches move.
fn task_status() -> impl Strategy<Value = TaskStatus> {
    prop_oneof![
        4 => Just(TaskStatus::Succeeded),
        2 => Just(TaskStatus::Dead),
        2 => Just(TaskStatus::Cancelled),
        1 => Just(TaskStatus::Pending),
        1 => Just(TaskStatus::Running),
        1 => Just(TaskStatus::Retrying),
    ]
}

fn event_status() -> impl Strategy<Value = EventStatus> {
    prop_oneof![
        4 => Just(EventStatus::Dispatched),
        2 => Just(EventStatus::Dead),
        1 => Just(EventStatus::Pending),
        1 => Just(EventStatus::Retrying),
    ]
}

fn task_spec() -> impl Strategy<Value = TaskSpec> {
    (
        task_status(),
        proptest::option::weighted(0.9, age()),
        link(),
        link(),
    )
        .prop_map(|(status, finished, event, copy_of)| TaskSpec {
            status,
            finished,
            event,
            copy_of,
        })
}

fn event_spec() -> impl Strategy<Value = EventSpec> {
    (
        event_status(),
        proptest::option::weighted(0.9, age()),
        age(),
        proptest::option::weighted(0.3, (any::<Index>(), proptest::bool::weighted(0.2))),
    )
        .prop_map(|(status, dispatched, occurred, copy_of)| EventSpec {
            status,
            dispatched,
            occurred,
            copy_of,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::sample::select(vec![0i64, 60, 1440]),
        proptest::sample::select(vec![0i64, 60, 1440, 43_200]),
        3u32..=7,
        proptest::collection::vec(event_spec(), 0..12),
        proptest::collection::vec(task_spec(), 0..32),
        0usize..3,
        0usize..3,
    )
        .prop_map(
            |(finished, dead, limit, events, tasks, archived_events, archived_tasks)| Case {
                finished,
                dead,
                limit,
                events,
                tasks,
                archived_events,
                archived_tasks,
            },
        )
}

/// A case made concrete: ids, and resolved links (ids of live or archived rows).
struct Rows {
    event_ids: Vec<Uuid>,
    task_ids: Vec<Uuid>,
    archived_event_ids: Vec<Uuid>,
    archived_task_ids: Vec<Uuid>,
    task_event: Vec<Option<Uuid>>,
    task_copy_of: Vec<Option<Uuid>>,
    event_copy_of: Vec<Option<Uuid>>,
}

/// The id a link names: a live row (never the row itself) or a pre-archived one.
fn resolve(
    link: &Option<(Index, bool)>,
    own: Option<usize>,
    live: &[Uuid],
    archived: &[Uuid],
) -> Option<Uuid> {
    let (index, to_archived) = link.as_ref()?;
    if *to_archived && !archived.is_empty() {
        return Some(archived[index.index(archived.len())]);
    }
    if live.is_empty() {
        return None;
    }
    let i = index.index(live.len());
    (Some(i) != own).then(|| live[i])
}

impl Rows {
    fn new(case: &Case) -> Rows {
        let ids = |n: usize| (0..n).map(|_| Uuid::new_v4()).collect::<Vec<_>>();
        let (event_ids, task_ids) = (ids(case.events.len()), ids(case.tasks.len()));
        let (archived_event_ids, archived_task_ids) =
            (ids(case.archived_events), ids(case.archived_tasks));
        let task_event = case
            .tasks
            .iter()
            .map(|t| resolve(&t.event, None, &event_ids, &archived_event_ids))
            .collect();
        let task_copy_of = case
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| resolve(&t.copy_of, Some(i), &task_ids, &archived_task_ids))
            .collect();
        let event_copy_of = case
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| resolve(&e.copy_of, Some(i), &event_ids, &archived_event_ids))
            .collect();
        Rows {
            event_ids,
            task_ids,
            archived_event_ids,
            archived_task_ids,
            task_event,
            task_copy_of,
            event_copy_of,
        }
    }
}

fn at(start: i64, minutes_ago: i64) -> Timestamp {
    Timestamp(start - minutes_ago * MINUTE_MS)
}

/// What the core rule moves, iterated to a fixed point the way repeated batches see the
/// tables: facts are read from the rows still live after each round. Returns the indexes of
/// the tasks and events that move.
fn model(case: &Case, rows: &Rows, start: i64) -> (BTreeSet<usize>, BTreeSet<usize>) {
    let windows = RetentionWindows {
        finished: Duration::from_millis((case.finished * MINUTE_MS) as u64),
        dead: Duration::from_millis((case.dead * MINUTE_MS) as u64),
    };
    let now = Timestamp(start);
    let (mut moved_tasks, mut moved_events) = (BTreeSet::new(), BTreeSet::new());
    loop {
        let live_task = |i: &usize| !moved_tasks.contains(i);
        let task_waits = |s: TaskStatus| {
            matches!(
                s,
                TaskStatus::Pending | TaskStatus::Running | TaskStatus::Retrying
            )
        };
        let tasks: Vec<usize> = (0..case.tasks.len())
            .filter(live_task)
            .filter(|&i| {
                let t = &case.tasks[i];
                let copy_waiting = (0..case.tasks.len()).filter(live_task).any(|c| {
                    rows.task_copy_of[c] == Some(rows.task_ids[i])
                        && task_waits(case.tasks[c].status)
                });
                windows.task_archivable(
                    &TaskFacts {
                        status: t.status,
                        finished_at: t.finished.map(|m| at(start, m)),
                        copy_waiting,
                    },
                    now,
                )
            })
            .collect();
        let events: Vec<usize> = (0..case.events.len())
            .filter(|i| !moved_events.contains(i))
            .filter(|&i| {
                let e = &case.events[i];
                let id = rows.event_ids[i];
                let task_unfinished = (0..case.tasks.len())
                    .filter(live_task)
                    .any(|t| rows.task_event[t] == Some(id) && task_waits(case.tasks[t].status));
                let copy_waiting = (0..case.events.len())
                    .filter(|c| !moved_events.contains(c))
                    .any(|c| {
                        rows.event_copy_of[c] == Some(id)
                            && matches!(
                                case.events[c].status,
                                EventStatus::Pending | EventStatus::Retrying
                            )
                    });
                windows.event_archivable(
                    &EventFacts {
                        status: e.status,
                        dispatched_at: e.dispatched.map(|m| at(start, m)),
                        occurred_at: at(start, e.occurred),
                        task_unfinished,
                        copy_waiting,
                    },
                    now,
                )
            })
            .collect();
        if tasks.is_empty() && events.is_empty() {
            return (moved_tasks, moved_events);
        }
        moved_tasks.extend(tasks);
        moved_events.extend(events);
    }
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// `timestamptz` of `start` minus `minutes` (NULL when `None`), exact to the millisecond.
const TS: &str =
    "timestamptz 'epoch' + ($1::bigint - $2::bigint * 60000) * interval '1 millisecond'";

async fn insert_case(pool: &PgPool, case: &Case, rows: &Rows, start: i64) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    for id in &rows.archived_event_ids {
        sqlx::query(&format!(
            "INSERT INTO domain_events_processed (id, event_type, aggregate_type, aggregate_id, payload,
                                                  status, occurred_at, dispatched_at)
             VALUES ($3, 'Old', 'Thing', $3, '{{}}', 'dispatched', {TS}, {TS})"
        ))
        .bind(start)
        .bind(100_000i64)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    for id in &rows.archived_task_ids {
        sqlx::query(&format!(
            "INSERT INTO tasks_processed (id, task_type, payload, lineage_id, status, finished_at)
             VALUES ($3, 'old', '{{}}', $3, 'succeeded', {TS})"
        ))
        .bind(start)
        .bind(100_000i64)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    for (i, e) in case.events.iter().enumerate() {
        sqlx::query(&format!(
            "INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, payload, status,
                                        occurred_at, dispatched_at, reprocessed_from)
             VALUES ($4, 'Case', 'Thing', $4, jsonb_build_object('i', $6::int), $5, {TS},
                     timestamptz 'epoch' + ($1::bigint - $3::bigint * 60000) * interval '1 millisecond', $7)"
        ))
        .bind(start)
        .bind(e.occurred)
        .bind(e.dispatched)
        .bind(rows.event_ids[i])
        .bind(e.status.as_str())
        .bind(i as i32)
        .bind(rows.event_copy_of[i])
        .execute(&mut *tx)
        .await?;
    }
    for (i, t) in case.tasks.iter().enumerate() {
        let running = t.status == TaskStatus::Running;
        sqlx::query(
            "INSERT INTO tasks (id, task_type, payload, event_id, reprocessed_from, lineage_id, status,
                                attempt, locked_by, locked_until, finished_at)
             VALUES ($3, 'case', jsonb_build_object('i', $4::int), $5, $6, COALESCE($6, $3), $7, 1,
                     CASE WHEN $8 THEN 'worker' END, CASE WHEN $8 THEN now() + interval '1 hour' END,
                     timestamptz 'epoch' + ($1::bigint - $2::bigint * 60000) * interval '1 millisecond')",
        )
        .bind(start)
        .bind(t.finished)
        .bind(rows.task_ids[i])
        .bind(i as i32)
        .bind(rows.task_event[i])
        .bind(rows.task_copy_of[i])
        .bind(t.status.as_str())
        .bind(running)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

async fn ids(pool: &PgPool, table: &str) -> sqlx::Result<BTreeSet<Uuid>> {
    let ids: Vec<Uuid> = sqlx::query_scalar(&format!("SELECT id FROM {table}"))
        .fetch_all(pool)
        .await?;
    Ok(ids.into_iter().collect())
}

/// Every row of `table` as JSON, by id (`archived_at` left out).
async fn contents(pool: &PgPool, table: &str) -> sqlx::Result<BTreeMap<Uuid, serde_json::Value>> {
    let rows: Vec<(Uuid, serde_json::Value)> = sqlx::query_as(&format!(
        "SELECT id, to_jsonb(r) - 'archived_at' FROM {table} r"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}

async fn run_case(pool: &PgPool, store: &PgStore, case: Case) -> Result<(), TestCaseError> {
    sqlx::query(
        "TRUNCATE tasks, domain_events, tasks_processed, domain_events_processed, archive_runs",
    )
    .execute(pool)
    .await
    .map_err(fail)?;
    // The database's clock, to the millisecond (floor: never ahead of the archive's now()).
    let start: i64 =
        sqlx::query_scalar("SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint")
            .fetch_one(pool)
            .await
            .map_err(fail)?;
    let rows = Rows::new(&case);
    insert_case(pool, &case, &rows, start).await.map_err(fail)?;
    let (move_tasks, move_events) = model(&case, &rows, start);
    let windows = RetentionWindows {
        finished: Duration::from_millis((case.finished * MINUTE_MS) as u64),
        dead: Duration::from_millis((case.dead * MINUTE_MS) as u64),
    };
    let before_tasks = contents(pool, "tasks").await.map_err(fail)?;
    let before_events = contents(pool, "domain_events").await.map_err(fail)?;
    let expected = ArchiveCounts {
        tasks: move_tasks.len() as u64,
        events: move_events.len() as u64,
    };
    prop_assert_eq!(
        store.archivable(&windows).await.map_err(fail)?,
        expected,
        "the dry-run count is the rule's"
    );

    let mut moved = ArchiveCounts::default();
    let mut batches = 0;
    loop {
        let batch = store
            .archive_batch(&windows, case.limit)
            .await
            .map_err(fail)?;
        prop_assert!(
            batch.tasks <= u64::from(case.limit) && batch.events <= u64::from(case.limit),
            "a batch moves at most {} rows per table: {:?}",
            case.limit,
            batch
        );
        if batch.total() == 0 {
            break;
        }
        moved += batch;
        batches += 1;
        prop_assert!(batches <= 20, "the run ends");
    }
    prop_assert_eq!(moved, expected, "the batches moved what the rule allows");

    let pick = |ids: &[Uuid], which: &BTreeSet<usize>, moved: bool| -> BTreeSet<Uuid> {
        ids.iter()
            .enumerate()
            .filter(|(i, _)| which.contains(i) == moved)
            .map(|(_, id)| *id)
            .collect()
    };
    let live_tasks = ids(pool, "tasks").await.map_err(fail)?;
    let live_events = ids(pool, "domain_events").await.map_err(fail)?;
    let archived_tasks = ids(pool, "tasks_processed").await.map_err(fail)?;
    let archived_events = ids(pool, "domain_events_processed").await.map_err(fail)?;
    prop_assert_eq!(
        &live_tasks,
        &pick(&rows.task_ids, &move_tasks, false),
        "the live tasks are those the rule keeps"
    );
    prop_assert_eq!(
        &live_events,
        &pick(&rows.event_ids, &move_events, false),
        "the live events are those the rule keeps"
    );
    let mut want_archived_tasks = pick(&rows.task_ids, &move_tasks, true);
    want_archived_tasks.extend(rows.archived_task_ids.iter().copied());
    let mut want_archived_events = pick(&rows.event_ids, &move_events, true);
    want_archived_events.extend(rows.archived_event_ids.iter().copied());
    prop_assert_eq!(&archived_tasks, &want_archived_tasks);
    prop_assert_eq!(&archived_events, &want_archived_events);
    prop_assert!(
        live_tasks.is_disjoint(&archived_tasks),
        "a task in both tables"
    );
    prop_assert!(
        live_events.is_disjoint(&archived_events),
        "an event in both tables"
    );
    prop_assert_eq!(
        live_tasks.len() + archived_tasks.len(),
        rows.task_ids.len() + rows.archived_task_ids.len()
    );
    prop_assert_eq!(
        live_events.len() + archived_events.len(),
        rows.event_ids.len() + rows.archived_event_ids.len()
    );

    // What moved is what was there, column by column; `archived_at` is the run's time.
    let after_tasks = contents(pool, "tasks_processed").await.map_err(fail)?;
    let after_events = contents(pool, "domain_events_processed")
        .await
        .map_err(fail)?;
    for (before, after) in [
        (&before_tasks, &after_tasks),
        (&before_events, &after_events),
    ] {
        for (id, row) in before {
            if let Some(archived) = after.get(id) {
                prop_assert_eq!(archived, row, "an archived row differs from its live row");
            }
        }
    }
    let stamped: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT archived_at FROM tasks_processed WHERE task_type = 'case'
                               UNION ALL
                               SELECT archived_at FROM domain_events_processed WHERE event_type = 'Case') a
         WHERE archived_at < timestamptz 'epoch' + $1::bigint * interval '1 millisecond'
            OR archived_at > now()",
    )
    .bind(start)
    .fetch_one(pool)
    .await
    .map_err(fail)?;
    prop_assert_eq!(stamped, 0, "archived_at is the time of the move");

    // A second run finds nothing.
    prop_assert_eq!(
        store.archivable(&windows).await.map_err(fail)?,
        ArchiveCounts::default()
    );
    prop_assert_eq!(
        store
            .archive_batch(&windows, case.limit)
            .await
            .map_err(fail)?,
        ArchiveCounts::default(),
        "a second run moves nothing"
    );
    Ok(())
}

/// Exactly the rows the core rule allows move, batch after batch, each once and unchanged.
#[test]
fn the_archive_moves_exactly_what_the_retention_rule_allows() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let (url, pool) = rt
        .block_on(fresh_database("campus_archive_prop"))
        .expect("a fresh database");
    let url = DropOnPanic(url);
    let store = PgStore::new(pool.clone(), Notifier::disabled());
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| rt.block_on(run_case(&pool, &store, case)));
    rt.block_on(async {
        pool.close().await;
        drop_database(&url).await.expect("drop the database");
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Succeeds at once, counting its runs.
#[derive(Clone, Default)]
struct Pong(Arc<AtomicU64>);

#[async_trait]
impl TaskHandler for Pong {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn ping(i: usize) -> NewEvent {
    NewEvent {
        event_type: "Ping".into(),
        aggregate_type: "Ping".into(),
        aggregate_id: i as u128 + 1,
        institution_id: None,
        payload: format!(r#"{{"i":{i}}}"#),
        correlation_id: None,
    }
}

fn direct(round: usize, i: usize) -> NewTask {
    NewTask {
        task_type: "pong".into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 3,
        idempotency_key: Some(format!("direct-{round}-{i}")),
        run_at: None,
        priority: Default::default(),
    }
}

/// Single-statement checks that hold at every instant, whatever runs: no row in both tables,
/// nothing unfinished archived, no archived event with an unfinished task, no task whose
/// event is in neither table. Returns the violations (0 when all hold).
const INVARIANTS: &str = "
    SELECT (SELECT count(*) FROM tasks t JOIN tasks_processed p USING (id))
         + (SELECT count(*) FROM domain_events e JOIN domain_events_processed p USING (id))
         + (SELECT count(*) FROM tasks_processed WHERE status IN ('pending', 'running', 'retrying'))
         + (SELECT count(*) FROM domain_events_processed WHERE status IN ('pending', 'retrying'))
         + (SELECT count(*) FROM domain_events_processed e JOIN tasks t ON t.event_id = e.id
            WHERE t.status IN ('pending', 'running', 'retrying'))
         + (SELECT count(*) FROM (SELECT event_id FROM tasks UNION ALL SELECT event_id FROM tasks_processed) t
            WHERE t.event_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM domain_events e WHERE e.id = t.event_id)
              AND NOT EXISTS (SELECT 1 FROM domain_events_processed e WHERE e.id = t.event_id))";

/// A describing query for when [`INVARIANTS`] fails.
const INVARIANT_PARTS: &str = "
    SELECT (SELECT count(*) FROM tasks t JOIN tasks_processed p USING (id)),
           (SELECT count(*) FROM domain_events e JOIN domain_events_processed p USING (id)),
           (SELECT count(*) FROM tasks_processed WHERE status IN ('pending', 'running', 'retrying')),
           (SELECT count(*) FROM domain_events_processed WHERE status IN ('pending', 'retrying')),
           (SELECT count(*) FROM domain_events_processed e JOIN tasks t ON t.event_id = e.id
            WHERE t.status IN ('pending', 'running', 'retrying')),
           (SELECT count(*) FROM (SELECT event_id FROM tasks UNION ALL SELECT event_id FROM tasks_processed) t
            WHERE t.event_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM domain_events e WHERE e.id = t.event_id)
              AND NOT EXISTS (SELECT 1 FROM domain_events_processed e WHERE e.id = t.event_id))";

async fn assert_invariants(pool: &PgPool, when: &str) {
    let broken: i64 = sqlx::query_scalar(INVARIANTS)
        .fetch_one(pool)
        .await
        .expect("the invariants query");
    if broken != 0 {
        let parts: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(INVARIANT_PARTS)
            .fetch_one(pool)
            .await
            .expect("the invariants query");
        panic!(
            "{when}: (tasks in both, events in both, unfinished tasks archived, waiting events \
             archived, archived events with an unfinished task, tasks with no event) = {parts:?}"
        );
    }
}

/// Archiving with zero windows, continuously, while the daemon drains and writers record
/// events, enqueue tasks and create institutions: nothing is lost, duplicated or moved
/// before it is finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn archiving_while_the_daemon_drains_loses_and_duplicates_nothing() {
    // Build the binary before anything runs (it is the `campus archive` run alongside).
    campus_binary();
    let runs = Arc::new(AtomicU64::new(0));
    let counter = runs.clone();
    let app = TestApp::spawn_with(move |c| {
        c.default_registry()
            .on_event("Ping", "pong", "pong")
            .on_event("Ping", "ping_log", "ping_log")
            .task("pong", Pong(counter.clone()))
            .task("ping_log", Pong(counter))
    })
    .await;
    let zero = RetentionWindows {
        finished: Duration::ZERO,
        dead: Duration::ZERO,
    };
    const ROUNDS: usize = 50;
    const PINGS: usize = 8;
    const DIRECT: usize = 16;
    const INSTITUTIONS: usize = 3;
    let started = Instant::now();
    let writing = Arc::new(AtomicBool::new(true));

    // Two archivers with different batch sizes, contending for the same rows.
    let archivers: Vec<_> = [3u32, 40]
        .into_iter()
        .map(|limit| {
            let store = app.store();
            let writing = writing.clone();
            tokio::spawn(async move {
                let mut moved = ArchiveCounts::default();
                while writing.load(Ordering::SeqCst) {
                    moved += store.archive_batch(&zero, limit).await.expect("a batch");
                    tokio::task::yield_now().await;
                }
                moved
            })
        })
        .collect();
    // The invariants hold at every instant.
    let checker = {
        let pool = app.pool.clone();
        let writing = writing.clone();
        tokio::spawn(async move {
            let mut checks = 0u32;
            while writing.load(Ordering::SeqCst) {
                assert_invariants(&pool, "while archiving").await;
                checks += 1;
            }
            checks
        })
    };

    // `campus archive` with zero windows (the CLI parses `0s`) runs alongside, once.
    let mut cli = {
        let mut cmd = campus_command(&["archive", "--batch", "10"]);
        cmd.env("DATABASE_URL", &app.db_url)
            .env("CAMPUS_RETENTION_FINISHED", "0s")
            .env("CAMPUS_RETENTION_DEAD", "0s")
            .env("CAMPUS_DATA_DIR", &app.campus.settings.data_dir);
        Process::spawn(cmd)
    };

    for i in 0..INSTITUTIONS {
        app.create_institution(
            &format!("Busy College {i}"),
            &format!("academic{i}@busy-archive.test"),
            "password-1",
        )
        .await;
    }
    let store = app.store();
    for round in 0..ROUNDS {
        let events: Vec<_> = (0..PINGS).map(|i| ping(round * PINGS + i)).collect();
        store.append(&events).await.expect("append pings");
        let tasks: Vec<_> = (0..DIRECT).map(|i| direct(round, i)).collect();
        assert_eq!(store.enqueue(&tasks).await.expect("enqueue"), DIRECT);
        tokio::task::yield_now().await;
    }
    let status = cli.finish(Duration::from_secs(120)).await;
    assert!(status.success(), "campus archive failed: {}", cli.stderr());
    assert!(
        cli.stdout().starts_with("Archived "),
        "campus archive reports: {}",
        cli.stdout()
    );

    // Let the daemon drain with the archivers still running, then stop them.
    app.wait_for_idle().await;
    writing.store(false, Ordering::SeqCst);
    let mut moved_meanwhile = ArchiveCounts::default();
    for a in archivers {
        moved_meanwhile += a.await.expect("an archiver");
    }
    let checks = checker.await.expect("the checker");
    assert!(
        moved_meanwhile.tasks > 0 && moved_meanwhile.events > 0,
        "the archivers ran while the daemon drained: {moved_meanwhile:?}"
    );
    assert!(checks > 0);

    // A last run moves everything (all is finished, the windows are zero).
    app.wait_for_idle().await;
    let archive = app.store();
    while archive
        .archive_batch(&zero, 500)
        .await
        .expect("a batch")
        .total()
        != 0
    {}
    assert_invariants(&app.pool, "at the end").await;
    let count = |sql: &'static str| app.scalar::<i64>(sql);
    assert_eq!(
        count("SELECT count(*) FROM tasks WHERE status IN ('succeeded', 'dead', 'cancelled')")
            .await
            + count("SELECT count(*) FROM domain_events WHERE status IN ('dispatched', 'dead')")
                .await,
        0,
        "every finished row moved at last"
    );
    let pings = (ROUNDS * PINGS) as i64;
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT id FROM domain_events WHERE event_type = 'Ping'
                                   UNION ALL
                                   SELECT id FROM domain_events_processed WHERE event_type = 'Ping') e"
        )
        .await,
        pings,
        "every Ping event is in exactly one table"
    );
    assert_eq!(
        count("SELECT count(*) FROM domain_events_processed WHERE event_type = 'Ping' AND status = 'dispatched'")
            .await,
        pings
    );
    // Each Ping fanned out to exactly its two tasks, wherever they are.
    assert_eq!(
        count(
            "SELECT count(*) FROM domain_events_processed e
             WHERE e.event_type = 'Ping'
               AND (SELECT count(*) FROM tasks_processed t WHERE t.event_id = e.id AND t.status = 'succeeded') = 2
               AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.event_id = e.id)"
        )
        .await,
        pings,
        "each Ping's two tasks succeeded and are archived"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM tasks_processed
             WHERE task_type = 'pong' AND event_id IS NULL AND status = 'succeeded'
               AND idempotency_key LIKE 'direct-%'"
        )
        .await,
        (ROUNDS * DIRECT) as i64,
        "every direct task ran and is archived once"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM (SELECT id FROM domain_events WHERE event_type = 'InstitutionCreated'
                                   UNION ALL
                                   SELECT id FROM domain_events_processed WHERE event_type = 'InstitutionCreated') e"
        )
        .await,
        INSTITUTIONS as i64
    );
    // Every dispatched event of the app's own types has at least one task somewhere: the
    // seeding handler of InstitutionCreated ran.
    assert_eq!(
        count(
            "SELECT count(*) FROM domain_events_processed e WHERE e.event_type = 'InstitutionCreated'
               AND NOT EXISTS (SELECT 1 FROM tasks_processed t WHERE t.event_id = e.id)"
        )
        .await,
        0,
        "InstitutionCreated fanned out"
    );
    assert!(
        runs.load(Ordering::SeqCst) >= (ROUNDS * (2 * PINGS + DIRECT)) as u64,
        "every Ping and direct task ran"
    );
    let again = archive.archive_batch(&zero, 500).await.expect("a batch");
    assert_eq!(again, ArchiveCounts::default(), "nothing is left to move");
    eprintln!(
        "archive_invariants: concurrent archive: {moved_meanwhile:?} moved while draining, \
         {checks} invariant checks, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    app.stop().await;
}

const TASKS: i64 = 200_000;
const EVENTS: i64 = 20_000;
/// Events kept live by a pending task each; their tasks are not due for an hour.
const WAITING_EVENTS: i64 = 100;
/// Dead tasks younger than the dead window (30 d).
const RECENT_DEAD: i64 = 500;

/// Rows moved so far, checked to be in one table each and to add up.
async fn consistent_counts(pool: &PgPool) -> (i64, i64) {
    let (tasks, archived_tasks, events, archived_events, tasks_in_both, events_in_both): (
        i64,
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM tasks_processed),
                (SELECT count(*) FROM domain_events), (SELECT count(*) FROM domain_events_processed),
                (SELECT count(*) FROM tasks JOIN tasks_processed USING (id)),
                (SELECT count(*) FROM domain_events JOIN domain_events_processed USING (id))",
    )
    .fetch_one(pool)
    .await
    .expect("the counts");
    assert_eq!(
        (tasks_in_both, events_in_both),
        (0, 0),
        "rows in both tables"
    );
    assert_eq!(
        tasks + archived_tasks,
        TASKS + WAITING_EVENTS + RECENT_DEAD,
        "every task is in one table"
    );
    assert_eq!(
        events + archived_events,
        EVENTS,
        "every event is in one table"
    );
    (archived_tasks, archived_events)
}

fn archive_command(url: &str, data_dir: &std::path::Path) -> tokio::process::Command {
    let mut cmd = campus_command(&["archive", "--batch", "1000"]);
    cmd.env("DATABASE_URL", url)
        .env("CAMPUS_DATA_DIR", data_dir);
    cmd
}

/// `campus archive` killed with SIGKILL half-way: each row is in exactly one table, the run
/// is not recorded, and the next run moves the rest.
#[tokio::test]
async fn a_killed_archive_run_leaves_a_consistent_state_and_the_next_run_finishes() {
    campus_binary();
    let (url, pool) = fresh_database("campus_archive_kill")
        .await
        .expect("a fresh database");
    let url = DropOnPanic(url);
    pool.close().await;
    // One connection: the test's own backend is then the only one besides the archive's.
    let pool = campus_adapters::pg::connect(&url, 1).await.expect("a pool");
    let data_dir =
        std::env::temp_dir().join(format!("campus-archive-kill-{}", Uuid::new_v4().simple()));
    let started = Instant::now();
    for sql in [
        // Old dispatched events; the last WAITING_EVENTS keep a pending task each.
        format!(
            "INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, payload, status,
                                        occurred_at, dispatched_at)
             SELECT md5('e' || i)::uuid, 'Bulk', 'Bulk', md5('e' || i)::uuid, '{{}}', 'dispatched',
                    now() - interval '3 days', now() - interval '2 days'
             FROM generate_series(1, {EVENTS}) i"
        ),
        format!(
            "INSERT INTO tasks (id, task_type, payload, event_id, lineage_id, status, attempt, finished_at)
             SELECT md5('t' || i)::uuid, 'bulk', '{{}}', md5('e' || (1 + i % {}))::uuid, md5('t' || i)::uuid,
                    'succeeded', 1, now() - interval '2 days'
             FROM generate_series(1, {TASKS}) i",
            EVENTS - WAITING_EVENTS
        ),
        format!(
            "INSERT INTO tasks (id, task_type, payload, event_id, lineage_id, status, run_at)
             SELECT md5('w' || i)::uuid, 'bulk', '{{}}', md5('e' || i)::uuid, md5('w' || i)::uuid,
                    'pending', now() + interval '1 hour'
             FROM generate_series({}, {EVENTS}) i",
            EVENTS - WAITING_EVENTS + 1
        ),
        format!(
            "INSERT INTO tasks (id, task_type, payload, lineage_id, status, attempt, finished_at)
             SELECT md5('d' || i)::uuid, 'bulk', '{{}}', md5('d' || i)::uuid, 'dead', 1, now() - interval '1 day'
             FROM generate_series(1, {RECENT_DEAD}) i"
        ),
        "ANALYZE tasks".to_string(),
        "ANALYZE domain_events".to_string(),
    ] {
        sqlx::query(&sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let filled = started.elapsed();
    assert_eq!(consistent_counts(&pool).await, (0, 0));

    let mut first = Process::spawn(archive_command(&url, &data_dir));
    let pid = first.pid();
    // Wait for a batch or two to commit, then kill the process at once.
    let moved_when_seen = eventually(
        "the first batches of the archive",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            async move {
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks_processed")
                    .fetch_one(&pool)
                    .await
                    .expect("count");
                (n > 0).then_some(n)
            }
        },
    )
    .await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success(), "SIGKILL was delivered");
    let status = first.wait_exit(Duration::from_secs(30)).await;
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the archive was killed, it had not finished: {status}\n{}",
            first.stdout()
        );
    }
    // Consistent at once, while the killed run's statement may still be running in its
    // backend; then wait for that backend to go.
    consistent_counts(&pool).await;
    eventually(
        "the killed run's backends to end",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                let others: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE datname = current_database() AND pid <> pg_backend_pid()
                       AND backend_type = 'client backend'",
                )
                .fetch_one(&pool)
                .await
                .expect("count");
                (others == 0).then_some(())
            }
        },
    )
    .await;
    let (tasks_before, events_before) = consistent_counts(&pool).await;
    assert!(
        tasks_before >= moved_when_seen && tasks_before < TASKS,
        "the run stopped half-way: {tasks_before} of {TASKS} tasks moved"
    );
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM archive_runs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(runs, 0, "a run stopped half-way is not recorded");
    let killed_after = started.elapsed() - filled;

    let mut second = Process::spawn(archive_command(&url, &data_dir));
    let status = second.finish(Duration::from_secs(300)).await;
    assert!(
        status.success(),
        "the second run failed: {}",
        second.stderr()
    );
    let (tasks_moved, events_moved) = (
        TASKS - tasks_before,
        (EVENTS - WAITING_EVENTS) - events_before,
    );
    assert!(
        second.stdout().starts_with(&format!(
            "Archived {tasks_moved} tasks and {events_moved} events"
        )),
        "the second run moved the rest: {}",
        second.stdout()
    );
    assert_eq!(
        consistent_counts(&pool).await,
        (TASKS, EVENTS - WAITING_EVENTS),
        "everything eligible moved"
    );
    let left: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tasks WHERE status = 'pending'),
                (SELECT count(*) FROM tasks WHERE status = 'dead'),
                (SELECT count(*) FROM domain_events e WHERE EXISTS
                    (SELECT 1 FROM tasks t WHERE t.event_id = e.id AND t.status = 'pending'))",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        left,
        (WAITING_EVENTS, RECENT_DEAD, WAITING_EVENTS),
        "what must stay stayed"
    );
    let recorded: Vec<(i64, i64)> = sqlx::query_as("SELECT tasks, events FROM archive_runs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        recorded,
        [(tasks_moved, events_moved)],
        "the finished run is recorded with what it moved"
    );
    eprintln!(
        "archive_invariants: killed run: filled in {:.1} s, killed after {:.1} s with \
         {tasks_before} tasks and {events_before} events moved, the rest in {:.1} s",
        filled.as_secs_f64(),
        killed_after.as_secs_f64(),
        (started.elapsed() - filled - killed_after).as_secs_f64()
    );
    pool.close().await;
    let _ = std::fs::remove_dir_all(&data_dir);
    drop_database(&url).await.expect("drop the database");
}
