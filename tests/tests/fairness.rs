//! Fair and prioritized claiming end to end on PostgreSQL, with the whole daemon: one
//! institution's backlog does not delay another's task, an interactive task goes before bulk
//! ones due earlier, a bulk task still runs while interactive work keeps arriving (aging), and
//! `CAMPUS_MAX_RUNNING_PER_INSTITUTION` caps what one institution runs at once.

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_core::engine::Priority;
use campus_core::ids::InstitutionId;
use campus_ports::{ClaimedTask, NewTask, TaskQueue};
use campus_tests::{eventually, TestApp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const A: InstitutionId = InstitutionId(0xa);
const B: InstitutionId = InstitutionId(0xb);

/// Per institution: how many of its tasks run now, and the most seen at once.
type Running = HashMap<Option<InstitutionId>, (usize, usize)>;

/// Sleeps `ms` per task; counts what runs at once per institution and the most seen.
#[derive(Clone, Default)]
struct Work {
    ms: u64,
    running: Arc<Mutex<Running>>,
}

impl Work {
    fn of(ms: u64) -> Work {
        Work {
            ms,
            ..Work::default()
        }
    }

    fn most(&self, institution: Option<InstitutionId>) -> usize {
        self.running
            .lock()
            .unwrap()
            .get(&institution)
            .map_or(0, |c| c.1)
    }
}

#[async_trait]
impl TaskHandler for Work {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        {
            let mut map = self.running.lock().unwrap();
            let (now, most) = map.entry(task.institution_id).or_default();
            *now += 1;
            *most = (*most).max(*now);
        }
        tokio::time::sleep(Duration::from_millis(self.ms)).await;
        if let Some(c) = self.running.lock().unwrap().get_mut(&task.institution_id) {
            c.0 -= 1;
        }
        Ok(())
    }
}

fn work(institution: Option<InstitutionId>, priority: Priority, key: String) -> NewTask {
    NewTask {
        task_type: "work".into(),
        payload: "{}".into(),
        institution_id: institution,
        correlation_id: None,
        max_attempts: 3,
        idempotency_key: Some(key),
        run_at: None,
        priority,
    }
}

async fn started(app: &TestApp, key: &str) -> bool {
    app.scalar::<bool>(&format!(
        "SELECT started_at IS NOT NULL FROM tasks WHERE idempotency_key = '{key}'"
    ))
    .await
}

#[tokio::test]
async fn a_backlog_of_one_institution_does_not_delay_another() {
    let app = TestApp::spawn_custom(
        |s| s.concurrency = 8,
        |c| c.default_registry().task("work", Work::of(5)),
    )
    .await;
    // A's backlog: 4 000 tasks of 5 ms on 8 slots, about 2.5 s of work.
    let backlog: Vec<_> = (0..4_000)
        .map(|i| work(Some(A), Priority::Normal, format!("a-{i}")))
        .collect();
    app.store().enqueue(&backlog).await.unwrap();
    eventually(
        "A's backlog to be running",
        Duration::from_secs(10),
        || async { started(&app, "a-100").await.then_some(()) },
    )
    .await;
    app.store()
        .enqueue(&[work(Some(B), Priority::Normal, "b".into())])
        .await
        .unwrap();
    eventually("B's task to start", Duration::from_secs(30), || async {
        started(&app, "b").await.then_some(())
    })
    .await;
    let waited_ms: f64 = app
        .scalar(
            "SELECT extract(epoch FROM started_at - created_at)::float8 * 1000 FROM tasks
             WHERE idempotency_key = 'b'",
        )
        .await;
    let a_after_b: i64 = app
        .scalar(
            "SELECT count(*) FROM tasks WHERE institution_id IS NOT DISTINCT FROM
                    '00000000-0000-0000-0000-00000000000a'
               AND (started_at IS NULL
                    OR started_at > (SELECT started_at FROM tasks WHERE idempotency_key = 'b'))",
        )
        .await;
    // Claimed strictly by due time, B would have waited for all of A's backlog.
    assert!(
        a_after_b >= 1_000,
        "B started before A's backlog was through (only {a_after_b} of A's tasks started later)"
    );
    assert!(
        waited_ms < 1_000.0,
        "B's task waited {waited_ms:.0} ms behind A's backlog (bound: 1 s)"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_interactive_task_goes_first_and_a_bulk_one_is_never_starved() {
    let app = TestApp::spawn_custom(
        |s| {
            s.concurrency = 1;
            s.priority_lag = Duration::from_millis(300);
        },
        |c| c.default_registry().task("work", Work::of(20)),
    )
    .await;
    // Due together (one statement), the bulk ones first: the interactive task still starts
    // first, then the normal one.
    let store = app.store();
    let mut first = vec![
        work(None, Priority::Bulk, "bulk-0".into()),
        work(None, Priority::Bulk, "bulk-1".into()),
        work(None, Priority::Normal, "normal".into()),
        work(None, Priority::Interactive, "interactive".into()),
    ];
    for t in &mut first {
        t.run_at = Some(campus_core::Timestamp(
            chrono::Utc::now().timestamp_millis() - 100,
        ));
    }
    store.enqueue(&first).await.unwrap();
    app.wait_for_idle().await;
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT idempotency_key FROM tasks ORDER BY started_at, idempotency_key",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(order, ["interactive", "normal", "bulk-0", "bulk-1"]);

    // Interactive work arrives faster than the one slot runs it (every 10 ms, 20 ms each):
    // with strict priorities the bulk task would never start. With aging it starts once
    // its turn (600 ms after it became due) comes, while interactive tasks still wait.
    let arriving = Arc::new(AtomicBool::new(true));
    let producer = tokio::spawn({
        let (store, arriving) = (store.clone(), arriving.clone());
        async move {
            let mut i = 0;
            while arriving.load(Ordering::SeqCst) {
                let t = work(None, Priority::Interactive, format!("i-{i}"));
                store.enqueue(&[t]).await.unwrap();
                i += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .enqueue(&[work(None, Priority::Bulk, "aged".into())])
        .await
        .unwrap();
    eventually(
        "the bulk task to start among interactive work",
        Duration::from_secs(20),
        || async { started(&app, "aged").await.then_some(()) },
    )
    .await;
    arriving.store(false, Ordering::SeqCst);
    producer.await.unwrap();
    let passed: i64 = app
        .scalar(
            "SELECT count(*) FROM tasks WHERE idempotency_key LIKE 'i-%'
               AND created_at < (SELECT started_at FROM tasks WHERE idempotency_key = 'aged')
               AND (started_at IS NULL
                    OR started_at > (SELECT started_at FROM tasks WHERE idempotency_key = 'aged'))",
        )
        .await;
    assert!(
        passed > 0,
        "the bulk task started only when no interactive task was waiting (no aging shown)"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_institution_never_runs_more_than_its_cap() {
    let slow = Work::of(100);
    let app = TestApp::spawn_custom(
        |s| {
            s.concurrency = 8;
            s.max_running_per_institution = Some(2);
        },
        {
            let slow = slow.clone();
            move |c| c.default_registry().task("work", slow)
        },
    )
    .await;
    let mut tasks: Vec<_> = (0..12)
        .map(|i| work(Some(A), Priority::Normal, format!("a-{i}")))
        .collect();
    tasks.extend((0..4).map(|i| work(Some(B), Priority::Normal, format!("b-{i}"))));
    app.store().enqueue(&tasks).await.unwrap();
    assert_eq!(app.wait_for_idle().await, 16);
    assert_eq!(slow.most(Some(A)), 2, "A ran at most its cap at once");
    assert_eq!(slow.most(Some(B)), 2);
    app.stop().await;
}
