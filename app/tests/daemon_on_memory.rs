//! The whole daemon (dispatch, workers, retries, leader, wake-ups, pauses, delayed tasks,
//! health and the roster) on
//! the in-memory adapters: no database, each test in milliseconds. (A test of the app crate
//! rather than a module of `engine`, which knows only the ports.)

use async_trait::async_trait;
use campus::engine::{
    Daemon, DaemonConfig, DaemonHealth, Daily, Registry, Schedule, TaskError, TaskHandler,
};
use campus::handlers::noop;
use campus::services::ArchiveService;
use campus_adapters::memory::MemoryStore;
use campus_core::engine::retention::{RetentionWindows, TimeOfDay};
use campus_core::engine::{EventStatus, RetryPolicy, TaskStatus};
use campus_core::ids::{InstitutionId, TaskId};
use campus_core::Timestamp;
use campus_ports::*;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Fails the first attempt of every task (transiently), succeeds on the next.
struct FailsOnce(Arc<AtomicU32>);

#[async_trait]
impl TaskHandler for FailsOnce {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if task.attempt == 1 {
            return Err(TaskError::transient("first attempts fail"));
        }
        Ok(())
    }
}

/// A daemon over `store` running `registry`, stopped by the returned sender.
fn start(store: &Arc<MemoryStore>, registry: Registry) -> (watch::Sender<bool>, Running) {
    start_with(store, registry, Vec::new())
}

/// The same with daily jobs.
fn start_with(
    store: &Arc<MemoryStore>,
    registry: Registry,
    daily: Vec<Daily>,
) -> (watch::Sender<bool>, Running) {
    let (stop, running, _) = start_watched(store, registry, daily);
    (stop, running)
}

/// The same, with the daemon's health flags.
fn start_watched(
    store: &Arc<MemoryStore>,
    registry: Registry,
    daily: Vec<Daily>,
) -> (watch::Sender<bool>, Running, DaemonHealth) {
    let daemon = daemon_on(store, registry, daily);
    let health = daemon.health.clone();
    let (stop, stopped) = watch::channel(false);
    (stop, tokio::spawn(daemon.run(stopped)), health)
}

/// A daemon whose every port is `store`, with short intervals.
fn daemon_on(store: &Arc<MemoryStore>, registry: Registry, daily: Vec<Daily>) -> Daemon {
    registry.validate().expect("a consistent registry");
    Daemon {
        events: store.clone(),
        tasks: store.clone(),
        leader: store.clone(),
        wake_ups: store.clone(),
        registry: Arc::new(registry),
        config: DaemonConfig {
            poll_interval: Duration::from_millis(200),
            retry: RetryPolicy {
                base: Duration::from_millis(2),
                cap: Duration::from_millis(10),
                max_attempts: 3,
            },
            maintenance_interval: Duration::from_millis(10),
            ..DaemonConfig::default()
        },
        daily,
        gauges: None,
        payloads: None,
        roster: store.clone(),
        health: DaemonHealth::default(),
    }
}

type Running = tokio::task::JoinHandle<()>;

async fn stop(stop: watch::Sender<bool>, running: Running) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the daemon stops")
        .unwrap();
}

/// Polls `check` every few milliseconds until it returns `Some`; panics after 10 s.
async fn until<T, Fut: Future<Output = Option<T>>>(what: &str, check: impl Fn() -> Fut) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn tasks(store: &MemoryStore) -> Vec<TaskView> {
    let q = TaskQuery {
        limit: 200,
        ..Default::default()
    };
    store.list_tasks(&q, None).await.unwrap()
}

fn event() -> NewEvent {
    NewEvent {
        event_type: "ThingHappened".into(),
        aggregate_type: "Thing".into(),
        aggregate_id: 1,
        institution_id: None,
        payload: "{}".into(),
        correlation_id: Some("corr".into()),
    }
}

fn noop_task(run_at: Option<Timestamp>) -> NewTask {
    NewTask {
        task_type: noop::TASK_TYPE.into(),
        payload: "{}".into(),
        institution_id: None,
        correlation_id: None,
        max_attempts: 3,
        idempotency_key: None,
        run_at,
        priority: Default::default(),
    }
}

#[tokio::test]
async fn events_fan_out_and_failed_tasks_are_retried_without_a_database() {
    let store = Arc::new(MemoryStore::with_system_clock());
    let attempts = Arc::new(AtomicU32::new(0));
    let registry = Registry::new(3)
        .external_event("ThingHappened")
        .on_event("ThingHappened", "flaky", "flaky")
        .on_event("ThingHappened", "quiet", noop::TASK_TYPE)
        .task("flaky", FailsOnce(attempts.clone()))
        .handle(noop::Noop);
    let (stopper, running) = start(&store, registry);
    store.append(&vec![event(); 5]).await.unwrap();

    let done = until("ten succeeded tasks", || async {
        let all = tasks(&store).await;
        (all.len() == 10 && all.iter().all(|t| t.status == TaskStatus::Succeeded)).then_some(all)
    })
    .await;
    stop(stopper, running).await;

    for t in &done {
        let flaky = t.task_type == "flaky";
        assert_eq!(t.attempt, if flaky { 2 } else { 1 }, "{t:?}");
        assert_eq!(t.errors.len(), usize::from(flaky), "{t:?}");
        assert_eq!(t.correlation_id.as_deref(), Some("corr"));
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        10,
        "5 failed + 5 succeeded"
    );
    let events = store
        .list_events(&EventQuery::default(), None)
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e.status == EventStatus::Dispatched));
}

#[tokio::test]
async fn paused_types_wait_and_delayed_tasks_run_at_their_time_without_a_database() {
    let store = Arc::new(MemoryStore::with_system_clock());
    let registry = Registry::new(3)
        .task("flaky", FailsOnce(Arc::default()))
        .handle(noop::Noop);
    store.set_paused(noop::TASK_TYPE, true).await.unwrap();
    let (stopper, running) = start(&store, registry);
    let paused = noop_task(None);
    let other = NewTask {
        task_type: "flaky".into(),
        ..noop_task(None)
    };
    store.enqueue(&[paused, other]).await.unwrap();
    // By the time the other type's task succeeded (after a retry), the daemon has claimed
    // several times: the paused type's task is still waiting.
    until("the unpaused task", || async {
        tasks(&store)
            .await
            .into_iter()
            .find(|t| t.task_type == "flaky" && t.status == TaskStatus::Succeeded)
    })
    .await;
    let waiting = tasks(&store).await;
    let noop = waiting.iter().find(|t| t.task_type == noop::TASK_TYPE);
    assert_eq!(noop.map(|t| t.status), Some(TaskStatus::Pending));

    store.set_paused(noop::TASK_TYPE, false).await.unwrap();
    let run_at = Timestamp(store.now().0 + 300);
    store.enqueue(&[noop_task(Some(run_at))]).await.unwrap();
    let ran = until("both noop tasks", || async {
        let all: Vec<_> = tasks(&store)
            .await
            .into_iter()
            .filter(|t| t.task_type == noop::TASK_TYPE && t.status == TaskStatus::Succeeded)
            .collect();
        (all.len() == 2).then_some(all)
    })
    .await;
    stop(stopper, running).await;
    let delayed = ran
        .iter()
        .find(|t| t.run_at == run_at)
        .expect("the delayed task");
    assert!(
        delayed.started_at.is_some_and(|s| s >= run_at),
        "started before its run_at: {delayed:?}"
    );
}

#[tokio::test]
async fn three_daemons_archive_once_a_day_at_midnight() {
    const DAY: i64 = 86_400_000;
    let midnight = Timestamp(20_000 * DAY);
    // Three days before the first midnight of the test, a task runs and succeeds.
    let (store, clock) = MemoryStore::with_manual_clock(Timestamp(midnight.0 - 3 * DAY));
    let store = Arc::new(store);
    let daily = || Daily {
        job: Arc::new(ArchiveService {
            archive: store.clone(),
            windows: RetentionWindows::default(),
            batch: 100,
        }),
        schedule: Schedule {
            at: TimeOfDay::MIDNIGHT,
            offset_ms: Arc::new(|_| 0),
            clock: Arc::new(clock.clone()),
        },
    };
    let daemons: Vec<_> = (0..3)
        .map(|_| start_with(&store, Registry::new(3).handle(noop::Noop), vec![daily()]))
        .collect();
    store.enqueue(&[noop_task(None)]).await.unwrap();
    until("the task to succeed", || async {
        let all = tasks(&store).await;
        (all.len() == 1 && all[0].status == TaskStatus::Succeeded).then_some(())
    })
    .await;
    let runs = || async { store.runs(10).await.unwrap() };
    assert!(runs().await.is_empty(), "no midnight has passed");

    // Past midnight: one leader runs the archive for it; the old task moves.
    clock.advance(Duration::from_millis((3 * DAY + 60_000) as u64));
    let first = until("the first daily run", || async {
        let r = runs().await;
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(first[0].due, midnight);
    assert_eq!(first[0].moved.tasks, 1);
    assert!(tasks(&store).await.is_empty(), "archived");

    // A day later: the next run, for the next midnight. Had two daemons run a day's archive,
    // two runs would share a due instant.
    clock.advance(Duration::from_millis(DAY as u64));
    let both = until("the second daily run", || async {
        let r = runs().await;
        (r.len() >= 2).then_some(r)
    })
    .await;
    for (stopper, running) in daemons {
        stop(stopper, running).await;
    }
    let mut dues: Vec<i64> = store
        .runs(10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.due.0)
        .collect();
    dues.sort();
    assert_eq!(
        dues,
        [midnight.0, midnight.0 + DAY],
        "one run per midnight: {both:?}"
    );
}

#[tokio::test]
async fn daemons_report_their_health_and_heartbeats_and_leave_the_roster_when_they_stop() {
    let store = Arc::new(MemoryStore::with_system_clock());
    let daemons: Vec<_> = (0..2)
        .map(|_| start_watched(&store, Registry::new(3).handle(noop::Noop), Vec::new()))
        .collect();
    let heard = until("both daemons' heartbeats, one leading", || async {
        let heard = store.heard_within(Duration::from_secs(60)).await.unwrap();
        let ready = heard.len() == 2
            && heard.iter().filter(|d| d.beat.leader).count() == 1
            && heard.iter().all(|d| d.beat.listening);
        ready.then_some(heard)
    })
    .await;
    assert!(heard[0].beat.leader, "the leader first");
    assert_eq!(heard[0].beat.concurrency, 16);
    let leaders = daemons.iter().filter(|(_, _, h)| h.leader()).count();
    assert_eq!(leaders, 1);
    for (_, _, health) in &daemons {
        assert!(health.running() && health.listening());
        assert_eq!(health.not_ready(), None);
    }
    let mut healths = Vec::new();
    for (stopper, running, health) in daemons {
        stop(stopper, running).await;
        healths.push(health);
    }
    assert!(store
        .heard_within(Duration::from_secs(60))
        .await
        .unwrap()
        .is_empty());
    for health in healths {
        assert!(!health.running() && !health.listening() && !health.leader());
    }
}

/// The task queue of `store`, whose claims wait for `release` while `hold` is set (a claim
/// under way when the daemon is told to stop).
struct HeldClaims {
    store: Arc<MemoryStore>,
    hold: std::sync::atomic::AtomicBool,
    claiming: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait]
impl TaskQueue for HeldClaims {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<usize, PortError> {
        self.store.enqueue(tasks).await
    }
    async fn claim(
        &self,
        worker: &str,
        types: &ClaimTypes,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, PortError> {
        if self.hold.swap(false, Ordering::SeqCst) {
            self.claiming.notify_one();
            self.release.notified().await;
        }
        self.store.claim(worker, types, limit, lease).await
    }
    async fn complete(
        &self,
        worker: &str,
        completions: &[Completion],
        retry: &RetryPolicy,
    ) -> Result<usize, PortError> {
        self.store.complete(worker, completions, retry).await
    }
    async fn heartbeat(
        &self,
        worker: &str,
        tasks: &[TaskId],
        lease: Duration,
    ) -> Result<Vec<TaskId>, PortError> {
        self.store.heartbeat(worker, tasks, lease).await
    }
    async fn rescue_expired(&self, retry: &RetryPolicy, limit: u32) -> Result<usize, PortError> {
        self.store.rescue_expired(retry, limit).await
    }
    async fn reprocess_task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<TaskId, PortError> {
        self.store.reprocess_task(id, scope, request_id).await
    }
    async fn reprocess_tasks(
        &self,
        filter: &TaskFilter,
        limit: u32,
        request_id: Option<String>,
    ) -> Result<usize, PortError> {
        self.store.reprocess_tasks(filter, limit, request_id).await
    }
}

/// A daemon told to stop while a claim is under way keeps its wake-up subscription (for the
/// PostgreSQL adapter: its LISTEN connection) until that claim has returned, so from outside
/// "it stopped listening" means "it claims nothing more": work arriving after that waits.
#[tokio::test]
async fn a_stopping_daemon_stops_listening_only_after_its_last_claim() {
    let store = Arc::new(MemoryStore::with_system_clock());
    let queue = Arc::new(HeldClaims {
        store: store.clone(),
        hold: true.into(),
        claiming: Default::default(),
        release: Default::default(),
    });
    let daemon = Daemon {
        tasks: queue.clone(),
        ..daemon_on(&store, Registry::new(3).handle(noop::Noop), Vec::new())
    };
    let health = daemon.health.clone();
    let (stopper, stopped) = watch::channel(false);
    let running = tokio::spawn(daemon.run(stopped));
    // Its first claim is held; it has joined the roster and listens.
    queue.claiming.notified().await;
    until("the daemon to beat and listen", || async {
        let heard = store.heard_within(Duration::from_secs(60)).await.unwrap();
        (heard.len() == 1 && health.listening()).then_some(())
    })
    .await;
    stopper.send(true).unwrap();
    // The rest of the daemon has taken the signal (it left the roster)...
    until("the daemon to leave the roster", || async {
        let heard = store.heard_within(Duration::from_secs(60)).await.unwrap();
        heard.is_empty().then_some(())
    })
    .await;
    // ...but the claim under way may still take what is due, so it still listens.
    assert!(
        health.listening(),
        "a daemon stopped listening while a claim was under way"
    );
    queue.release.notify_one();
    until("the daemon to stop listening", || async {
        (!health.listening()).then_some(())
    })
    .await;
    store.enqueue(&[noop_task(None)]).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the daemon stops")
        .unwrap();
    let waiting = tasks(&store).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(
        (waiting[0].status, waiting[0].attempt),
        (TaskStatus::Pending, 0),
        "work arriving after the daemon stopped listening waits for another daemon"
    );
}
