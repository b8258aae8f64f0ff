//! The daily archive on real PostgreSQL: three daemons on one database (each with its own
//! pool and leader lock) run it once per midnight, and daemons started after a midnight that
//! nobody was up for run that day's run once. The schedule's clock is a manual one; the
//! database's is real (the archive's windows are zero).

use campus::engine::{Daemon, DaemonConfig, Daily, Registry, Schedule};
use campus::handlers::noop;
use campus::services::ArchiveService;
use campus_adapters::memory::ManualClock;
use campus_adapters::pg::testing::{drop_database, fresh_database, DropOnPanic};
use campus_adapters::pg::{connect, Notifier, PgLeaderLock, PgStore, PgWakeUps};
use campus_core::engine::retention::{RetentionWindows, TimeOfDay};
use campus_core::Timestamp;
use campus_ports::{Archive, ArchiveRun, NewTask, TaskQueue};
use campus_tests::eventually;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const DAY: i64 = 86_400_000;

type Running = (watch::Sender<bool>, tokio::task::JoinHandle<()>);

/// A daemon on its own pool of the database at `url`, archiving at midnight UTC by `clock`.
async fn daemon(url: &str, clock: &ManualClock) -> Running {
    let pool = connect(url, 5).await.unwrap();
    let store = Arc::new(PgStore::new(pool.clone(), Notifier::disabled()));
    let daily = Daily {
        job: Arc::new(ArchiveService {
            archive: store.clone(),
            windows: RetentionWindows {
                finished: Duration::ZERO,
                dead: Duration::ZERO,
            },
            batch: 100,
        }),
        schedule: Schedule {
            at: TimeOfDay::MIDNIGHT,
            offset_ms: Arc::new(|_| 0),
            clock: Arc::new(clock.clone()),
        },
    };
    let daemon = Daemon {
        events: store.clone(),
        tasks: store.clone(),
        leader: Arc::new(PgLeaderLock::new(pool.clone())),
        wake_ups: Arc::new(PgWakeUps::new(pool)),
        registry: Arc::new(Registry::new(4).handle(noop::Noop)),
        config: DaemonConfig {
            poll_interval: Duration::from_millis(100),
            maintenance_interval: Duration::from_millis(20),
            ..DaemonConfig::default()
        },
        daily: vec![daily],
        gauges: None,
        payloads: None,
        roster: store,
        health: Default::default(),
    };
    let (stop, stopped) = watch::channel(false);
    (stop, tokio::spawn(daemon.run(stopped)))
}

async fn stop_all(daemons: Vec<Running>) {
    for (stop, _) in &daemons {
        let _ = stop.send(true);
    }
    for (_, running) in daemons {
        tokio::time::timeout(Duration::from_secs(15), running)
            .await
            .expect("the daemon stops")
            .unwrap();
    }
}

async fn one_task(store: &PgStore, key: &str) {
    let task = NewTask {
        task_type: noop::TASK_TYPE.into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 1,
        idempotency_key: Some(key.into()),
        run_at: None,
        priority: Default::default(),
    };
    assert_eq!(store.enqueue(&[task]).await.unwrap(), 1);
}

async fn runs_until(store: &PgStore, what: &str, n: usize) -> Vec<ArchiveRun> {
    eventually(what, Duration::from_secs(20), || async {
        let runs = store.runs(10).await.unwrap();
        (runs.len() >= n).then_some(runs)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_daemons_archive_once_per_midnight_and_a_new_one_runs_a_missed_day() {
    let (url, pool) = fresh_database("campus_archive_daily").await.unwrap();
    let url = DropOnPanic(url);
    let store = PgStore::new(pool.clone(), Notifier::disabled());
    // The schedule's clock starts an hour before a midnight.
    let midnight = Timestamp(20_000 * DAY);
    let clock = ManualClock::new(Timestamp(midnight.0 - 3_600_000));
    let mut daemons = Vec::new();
    for _ in 0..3 {
        daemons.push(daemon(&url, &clock).await);
    }
    one_task(&store, "first day").await;
    let archived = || async { store.archived().await.unwrap().tasks };
    let all_succeeded = || async {
        eventually("the tasks to succeed", Duration::from_secs(20), || async {
            let unfinished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status <> 'succeeded'")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (unfinished == 0).then_some(())
        })
        .await
    };
    // The task runs; no midnight has passed, so nothing is archived.
    all_succeeded().await;
    assert!(store.runs(10).await.unwrap().is_empty());
    assert_eq!(archived().await, 0);

    clock.advance(Duration::from_secs(2 * 3600));
    let first = runs_until(&store, "the first midnight's run", 1).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].due, midnight);
    assert_eq!(first[0].moved.tasks, 1);
    assert_eq!(archived().await, 1);

    // A task of the second day runs; everyone stops; the next midnight passes with no
    // daemon up; new daemons come.
    one_task(&store, "second day").await;
    all_succeeded().await;
    stop_all(std::mem::take(&mut daemons)).await;
    clock.advance(Duration::from_millis(DAY as u64));
    for _ in 0..3 {
        daemons.push(daemon(&url, &clock).await);
    }
    let both = runs_until(&store, "the missed midnight's run", 2).await;
    assert_eq!(archived().await, 2);
    stop_all(daemons).await;
    let mut dues: Vec<i64> = store
        .runs(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.due.0)
        .collect();
    dues.sort_unstable();
    assert_eq!(
        dues,
        [midnight.0, midnight.0 + DAY],
        "one run per midnight, the missed one included: {both:?}"
    );
    pool.close().await;
    drop_database(&url).await.unwrap();
}
