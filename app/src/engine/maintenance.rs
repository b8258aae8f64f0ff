//! Maintenance on one leader among all daemons: the leader lock (the `LeaderLock` port; for
//! PostgreSQL an advisory lock held on a dedicated connection, so when the leader dies
//! another daemon takes over) and, while it is held, the rescue of expired leases and the
//! daily jobs (each in a task of its own, so a long archive does not hold up the rescue), and
//! the queue-depth gauges (every [`GAUGES_EVERY`]) and the search index of payload texts (when
//! the daemon has room, [`index_payloads`]). Every daemon, leader or not, records its
//! heartbeat in the daemon roster here (every [`BEAT_EVERY`]).

use super::daemon::DaemonConfig;
use super::daily::Daily;
use super::health::DaemonHealth;
use super::in_flight::InFlight;
use crate::metrics as m;
use campus_core::Timestamp;
use campus_ports::{
    DaemonBeat, DaemonRoster, LeaderLock, Leadership, PayloadIndex, QueueGauges, TaskQueue,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often the leader reads the queues' depth for the gauges.
pub const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// Each count of the gauges stops there (a deeper queue reads as this).
pub const GAUGE_CAP: u32 = 100_000;

/// How often every daemon records its heartbeat in the roster (and at once when its
/// leadership or its LISTEN connection changes).
pub const BEAT_EVERY: Duration = Duration::from_secs(5);
/// A daemon not heard from for this long is silent (stopped, hung or cut off).
pub const ALIVE_WITHIN: Duration = Duration::from_secs(15);

/// What the maintenance loop of one daemon works with.
pub(super) struct Maintenance {
    pub lock: Arc<dyn LeaderLock>,
    pub queue: Arc<dyn TaskQueue>,
    pub daily: Vec<Daily>,
    /// The queues' depth, published as gauges by the leader (`None`: not published).
    pub gauges: Option<Arc<dyn QueueGauges>>,
    /// The search index of payload texts (`None`: not kept by this daemon).
    pub payloads: Option<Arc<dyn PayloadIndex>>,
    pub roster: Arc<dyn DaemonRoster>,
    pub health: DaemonHealth,
    pub in_flight: InFlight,
    /// Whether the worker loop's last claim was short (see `Slots`).
    pub caught_up: Arc<AtomicBool>,
    /// Tasks the worker loop has claimed (see `Slots`).
    pub claimed: Arc<AtomicU64>,
    pub config: Arc<DaemonConfig>,
}

impl Maintenance {
    /// Every `maintenance_interval` until `shutdown`: keeps or tries the leadership, records
    /// this daemon's heartbeat in the roster, and as the leader rescues expired leases,
    /// starts due daily jobs and publishes the gauges. On shutdown it leaves the roster and
    /// gives the leadership up.
    pub(super) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Maintenance {
            lock,
            queue,
            daily,
            gauges,
            payloads,
            roster,
            health,
            in_flight,
            caught_up,
            claimed,
            config,
        } = self;
        let mut claimed_before = 0;
        let mut uncompacted = 0;
        let mut leadership: Option<Box<dyn Leadership>> = None;
        let mut jobs: Vec<Tracked> = daily.into_iter().map(Tracked::new).collect();
        let mut gauges_read: Option<Instant> = None;
        let started_at = Timestamp(chrono::Utc::now().timestamp_millis());
        let mut last_beat: Option<(Instant, bool, bool)> = None;
        while !*shutdown.borrow() {
            leadership = match leadership.take() {
                Some(mut held) => {
                    if held.still_held().await {
                        Some(held)
                    } else {
                        tracing::warn!("lost the maintenance leadership");
                        None
                    }
                }
                None => try_lead(lock.as_ref()).await,
            };
            let leader = leadership.is_some();
            health.set_leader(leader);
            metrics::gauge!(m::LEADER).set(if leader { 1.0 } else { 0.0 });
            let listening = health.listening();
            let changed = last_beat.is_none_or(|(at, was_leader, was_listening)| {
                at.elapsed() >= BEAT_EVERY || was_leader != leader || was_listening != listening
            });
            if changed {
                let beat = DaemonBeat {
                    worker_id: config.worker_id.clone(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    started_at,
                    concurrency: u32::try_from(config.concurrency).unwrap_or(u32::MAX),
                    running: u32::try_from(in_flight.lock().len()).unwrap_or(u32::MAX),
                    leader,
                    listening,
                };
                match roster.beat(&beat).await {
                    Ok(()) => last_beat = Some((Instant::now(), leader, listening)),
                    Err(e) => tracing::debug!(error = %e, "cannot record the daemon's heartbeat"),
                }
            }
            if leader {
                rescue_expired(queue.as_ref(), &config).await;
                for job in &mut jobs {
                    job.start_if_due().await;
                }
                if let Some(g) = gauges.as_deref() {
                    if gauges_read.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
                        publish_depth(g).await;
                        gauges_read = Some(Instant::now());
                    }
                }
                if let Some(p) = payloads.as_deref() {
                    let claimed_now = claimed.load(Ordering::Relaxed);
                    let room = Room {
                        in_flight: &in_flight,
                        caught_up: &caught_up,
                        quiet: claimed_now == claimed_before,
                        concurrency: config.concurrency,
                    };
                    claimed_before = claimed_now;
                    index_payloads(p, &room, &mut uncompacted).await;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(config.maintenance_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
        // A daily run in progress stops between two of its atomic steps: it is recorded only
        // when it went to its end, so the next leader runs it again.
        for job in jobs {
            if let Some(run) = job.running {
                run.abort();
            }
        }
        if let Err(e) = roster.left(&config.worker_id).await {
            tracing::debug!(error = %e, "cannot leave the daemon roster; it forgets silent daemons");
        }
        if let Some(held) = leadership {
            held.release().await;
            metrics::gauge!(m::LEADER).set(0.0);
        }
        health.set_leader(false);
    }
}

/// A daily job as the maintenance loop follows it.
struct Tracked {
    daily: Daily,
    /// When this daemon started looking: a job never run is first due at its next scheduled
    /// time after that.
    since: Timestamp,
    /// No run can be due before this instant (the next scheduled one after the last run
    /// known), so the last run is not read again until then.
    not_before: Timestamp,
    running: Option<JoinHandle<()>>,
}

impl Tracked {
    fn new(daily: Daily) -> Tracked {
        let since = daily.schedule.clock.now();
        Tracked {
            daily,
            since,
            not_before: since,
            running: None,
        }
    }

    /// Starts the job's run when one is due (see `Schedule::due`) and none is under way.
    async fn start_if_due(&mut self) {
        let schedule = &self.daily.schedule;
        let busy = self.running.as_ref().is_some_and(|r| !r.is_finished());
        if busy || schedule.clock.now() < self.not_before {
            return;
        }
        let job = self.daily.job.clone();
        let last = match job.last_due().await {
            Ok(last) => last,
            Err(e) => {
                tracing::warn!(job = job.name(), error = %e, "cannot read the last daily run");
                return;
            }
        };
        let Some(due) = schedule.due(last, self.since) else {
            self.not_before = schedule.next(last.unwrap_or(self.since));
            return;
        };
        tracing::info!(job = job.name(), due = due.0, "daily run started");
        self.running = Some(tokio::spawn(async move {
            if let Err(e) = job.run(due).await {
                tracing::warn!(job = job.name(), error = %e, "daily run failed; the next leader check retries it");
            }
        }));
    }
}

async fn try_lead(lock: &dyn LeaderLock) -> Option<Box<dyn Leadership>> {
    match lock.try_acquire().await {
        Ok(Some(held)) => {
            tracing::info!("this daemon is the maintenance leader");
            Some(held)
        }
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "could not try the maintenance leadership");
            None
        }
    }
}

/// Returns every task whose lease expired to the queue, in batches.
async fn rescue_expired(queue: &dyn TaskQueue, config: &DaemonConfig) {
    loop {
        match queue.rescue_expired(&config.retry, 1000).await {
            Ok(0) => break,
            Ok(n) => {
                metrics::counter!(m::TASKS_RESCUED).increment(n as u64);
                tracing::warn!(
                    rescued = n,
                    "returned tasks with expired leases to the queue"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "rescuing expired leases failed");
                break;
            }
        }
    }
}

/// Rows of each table one pass indexes while the daemon is quiet (passes follow one
/// another until one finds nothing or [`INDEX_ROUND`] is over).
const INDEX_IDLE_ROWS: u32 = 5_000;
/// The same while it runs tasks but fewer than half its slots (one pass a round), leaving the
/// newest [`INDEX_BUSY_KEEP`] of each table for a quiet moment.
const INDEX_BUSY_ROWS: u32 = 1_000;
/// Rows of each table a busy daemon leaves unindexed. Indexing a payload costs about 70 µs
/// of the database's CPU (docs/PERFORMANCE.md): paid while requests come in, it took the
/// cores from them. A search reads the rows not indexed yet one by one, about 2 µs each, so
/// this backlog adds about 40 ms to it.
const INDEX_BUSY_KEEP: u32 = 20_000;
/// Rows indexed between two compactions of what the passes leave behind (`PayloadIndex::compact`).
const COMPACT_EVERY: u64 = 10_000;
/// How long the leader keeps indexing in one maintenance round while quiet.
const INDEX_ROUND: Duration = Duration::from_millis(300);

/// What the daemon has room for besides its tasks.
struct Room<'a> {
    in_flight: &'a InFlight,
    caught_up: &'a AtomicBool,
    /// Whether the daemon claimed nothing since the round before.
    quiet: bool,
    concurrency: usize,
}

impl Room<'_> {
    /// Rows of each table a pass of background indexing may take now, and how many of the
    /// newest it leaves: no pass unless the last claim was short (see `Slots::caught_up`)
    /// and fewer than half the slots are in use (the queue comes first; a list filtered by
    /// text is exact meanwhile, reading the rows not indexed yet one by one, only more
    /// slowly); all of them while the daemon is quiet; the older ones beyond
    /// [`INDEX_BUSY_KEEP`] while it runs tasks.
    fn index_rows(&self) -> Option<(u32, u32)> {
        if !self.caught_up.load(Ordering::Relaxed) {
            return None;
        }
        match self.in_flight.lock().len() {
            0 if self.quiet => Some((INDEX_IDLE_ROWS, 0)),
            n if n < self.concurrency / 2 => Some((INDEX_BUSY_ROWS, INDEX_BUSY_KEEP)),
            _ => None,
        }
    }
}

/// Keeps the search index of payload texts up to date, as far as the daemon's room allows,
/// and compacts after every [`COMPACT_EVERY`] rows (`uncompacted` counts them across rounds).
async fn index_payloads(index: &dyn PayloadIndex, room: &Room<'_>, uncompacted: &mut u64) {
    let started = Instant::now();
    while let Some((limit, keep)) = room.index_rows() {
        match index.index_payloads(limit, keep).await {
            Ok(done) => {
                metrics::counter!(m::PAYLOADS_INDEXED, "table" => "tasks").increment(done.tasks);
                metrics::counter!(m::PAYLOADS_INDEXED, "table" => "events").increment(done.events);
                *uncompacted += done.tasks + done.events;
                // While tasks run, one pass a round: the queue's work comes first.
                if keep > 0
                    || (done.tasks == 0 && done.events == 0)
                    || started.elapsed() >= INDEX_ROUND
                {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "indexing payload texts failed");
                break;
            }
        }
    }
    if *uncompacted >= COMPACT_EVERY {
        match index.compact().await {
            Ok(()) => *uncompacted = 0,
            Err(e) => tracing::warn!(error = %e, "compacting the search index's lists failed"),
        }
    }
}

/// Reads the queues' depth and sets the gauges.
async fn publish_depth(gauges: &dyn QueueGauges) {
    let d = match gauges.queue_depth(GAUGE_CAP).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the queues' depth");
            return;
        }
    };
    let tasks = |status: &'static str, n: u64| {
        metrics::gauge!(m::QUEUE_TASKS, "status" => status).set(n as f64);
    };
    tasks("pending", d.tasks_pending);
    tasks("retrying", d.tasks_retrying);
    tasks("running", d.tasks_running);
    metrics::gauge!(m::QUEUE_DUE_TASKS).set(d.tasks_due as f64);
    metrics::gauge!(m::QUEUE_EVENTS).set(d.events_waiting as f64);
    let secs = |age: Option<Duration>| age.map_or(0.0, |a| a.as_secs_f64());
    metrics::gauge!(m::OLDEST_DUE_TASK).set(secs(d.oldest_due_task));
    metrics::gauge!(m::OLDEST_DUE_EVENT).set(secs(d.oldest_due_event));
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::TaskId;
    use campus_ports::{ClaimedTask, IndexedPayloads, MockPayloadIndex, PortError};

    fn running(n: u128) -> InFlight {
        let in_flight = InFlight::default();
        for id in 0..n {
            in_flight.insert(&ClaimedTask {
                id: TaskId(id),
                task_type: "t".into(),
                payload: "{}".into(),
                institution_id: None,
                event_id: None,
                correlation_id: None,
                lineage_id: TaskId(id),
                attempt: 1,
                max_attempts: 1,
                created_at: campus_core::Timestamp(0),
            });
        }
        in_flight
    }

    fn room<'a>(in_flight: &'a InFlight, caught_up: &'a AtomicBool, quiet: bool) -> Room<'a> {
        Room {
            in_flight,
            caught_up,
            quiet,
            concurrency: 10,
        }
    }

    fn indexed(tasks: u64, events: u64) -> Result<IndexedPayloads, PortError> {
        Ok(IndexedPayloads { events, tasks })
    }

    #[tokio::test]
    async fn an_idle_daemon_indexes_large_passes_until_caught_up() {
        let mut index = MockPayloadIndex::new();
        let mut seq = mockall::Sequence::new();
        for (tasks, events) in [(INDEX_IDLE_ROWS, 0), (0, 7u32), (3, 0), (0, 0)] {
            index
                .expect_index_payloads()
                .withf(|limit, keep| (*limit, *keep) == (INDEX_IDLE_ROWS, 0))
                .times(1)
                .in_sequence(&mut seq)
                .returning(move |_, _| indexed(u64::from(tasks), u64::from(events)));
        }
        index_payloads(
            &index,
            &room(&running(0), &AtomicBool::new(true), true),
            &mut 0,
        )
        .await;
    }

    #[tokio::test]
    async fn a_busy_daemon_indexes_one_pass_of_the_older_rows_and_a_full_or_behind_one_none() {
        let mut index = MockPayloadIndex::new();
        // One pass leaving the newest rows, though it found a full batch: while tasks run, and
        // when none runs but some were claimed since the round before.
        index
            .expect_index_payloads()
            .withf(|limit, keep| (*limit, *keep) == (INDEX_BUSY_ROWS, INDEX_BUSY_KEEP))
            .times(3)
            .returning(|_, _| indexed(u64::from(INDEX_BUSY_ROWS), 0));
        let caught_up = AtomicBool::new(true);
        index_payloads(&index, &room(&running(4), &caught_up, false), &mut 0).await;
        index_payloads(&index, &room(&running(4), &caught_up, true), &mut 0).await;
        index_payloads(&index, &room(&running(0), &caught_up, false), &mut 0).await;
        // Half its slots or more in use, or due tasks left by the last claim: no pass at all
        // (the mock refuses any call).
        let mut none = MockPayloadIndex::new();
        none.expect_index_payloads().never();
        index_payloads(&none, &room(&running(5), &caught_up, true), &mut 0).await;
        index_payloads(
            &none,
            &room(&running(0), &AtomicBool::new(false), true),
            &mut 0,
        )
        .await;
    }

    /// Compaction follows the rows indexed across rounds; a failed one is tried again after
    /// the next round.
    #[tokio::test]
    async fn the_lists_are_compacted_every_so_many_rows_indexed() {
        let mut index = MockPayloadIndex::new();
        index
            .expect_index_payloads()
            .times(3)
            .returning(|_, _| indexed(1, 0));
        let mut seq = mockall::Sequence::new();
        index
            .expect_compact()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|| Err(PortError::Unavailable("down".into())));
        index
            .expect_compact()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|| Ok(()));
        let caught_up = AtomicBool::new(true);
        let in_flight = running(4);
        let busy = room(&in_flight, &caught_up, false);
        let mut uncompacted = COMPACT_EVERY - 2;
        index_payloads(&index, &busy, &mut uncompacted).await;
        assert_eq!(uncompacted, COMPACT_EVERY - 1, "not yet");
        index_payloads(&index, &busy, &mut uncompacted).await;
        assert_eq!(uncompacted, COMPACT_EVERY, "the compaction failed");
        index_payloads(&index, &busy, &mut uncompacted).await;
        assert_eq!(uncompacted, 0);
    }

    #[tokio::test]
    async fn a_failed_pass_ends_the_round() {
        let mut index = MockPayloadIndex::new();
        index
            .expect_index_payloads()
            .times(1)
            .returning(|_, _| Err(PortError::Unavailable("down".into())));
        index_payloads(
            &index,
            &room(&running(0), &AtomicBool::new(true), true),
            &mut 0,
        )
        .await;
    }
}
