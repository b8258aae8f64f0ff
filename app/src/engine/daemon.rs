//! The daemon: its configuration and its loops, wired over the ports only — wake-ups
//! (`wake`), the dispatch loop (events → tasks, `dispatch`), the worker loop (claim due tasks,
//! run them with bounded concurrency, `workers`), heartbeats (`heartbeat`), the batched
//! completer (`completer`), the maintenance leader and the roster heartbeats (`maintenance`),
//! and the health flags its probes read (`health`).
//!
//! A wake-up only shortens a wait; every loop also polls, so nothing depends on a
//! notification arriving. Many daemons can share one store: claims are exclusive and
//! completions are fenced by worker id and attempt.

use super::completer::complete_loop;
use super::daily::Daily;
use super::dispatch::{dispatch_loop, Handoff};
use super::health::DaemonHealth;
use super::in_flight::Slots;
use super::maintenance::Maintenance;
use super::registry::Registry;
use super::wake::Wakers;
use super::workers::Workers;
use campus_core::engine::RetryPolicy;
use campus_ports::{
    DaemonRoster, EventStore, LeaderLock, PayloadIndex, QueueGauges, TaskQueue, WakeUps,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Tuning of a daemon. Defaults suit a small deployment.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Identifies this daemon in `locked_by` (host:pid:random by default).
    pub worker_id: String,
    /// Tasks running at once.
    pub concurrency: usize,
    /// Events claimed per dispatch round.
    pub dispatch_batch: u32,
    /// Longest wait between two looks at the tables when no notification arrives.
    pub poll_interval: Duration,
    /// How long a claim holds a task.
    pub lease: Duration,
    /// Retry policy of failed tasks and events.
    pub retry: RetryPolicy,
    /// How long shutdown waits for running tasks.
    pub shutdown_timeout: Duration,
    /// How often the maintenance leader rescues expired leases.
    pub maintenance_interval: Duration,
    /// At most this many tasks of one institution run at once in this daemon (`None`: no
    /// cap beyond the fair share of each claim).
    pub max_running_per_institution: Option<u32>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            worker_id: default_worker_id(),
            concurrency: 16,
            dispatch_batch: 500,
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            shutdown_timeout: Duration::from_secs(10),
            maintenance_interval: Duration::from_secs(1),
            max_running_per_institution: None,
        }
    }
}

/// `host:pid:random`, unique per process.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "campus".into());
    format!(
        "{host}:{}:{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// A running daemon's dependencies: ports and the registry.
pub struct Daemon {
    pub events: Arc<dyn EventStore>,
    pub tasks: Arc<dyn TaskQueue>,
    pub leader: Arc<dyn LeaderLock>,
    pub wake_ups: Arc<dyn WakeUps>,
    pub registry: Arc<Registry>,
    pub config: DaemonConfig,
    /// Jobs the maintenance leader runs once a day (the archive).
    pub daily: Vec<Daily>,
    /// The queues' depth, which the maintenance leader publishes as gauges (`None`: not
    /// published).
    pub gauges: Option<Arc<dyn QueueGauges>>,
    /// The search index of payload texts, which the maintenance leader keeps up to date when
    /// the daemon has room (`None`: not kept by this daemon).
    pub payloads: Option<Arc<dyn PayloadIndex>>,
    /// Where it records its heartbeats for operators.
    pub roster: Arc<dyn DaemonRoster>,
    /// Its health flags, shared with whoever probes it.
    pub health: DaemonHealth,
}

impl Daemon {
    /// Runs until `shutdown` turns true, then stops claiming, lets running tasks finish
    /// (up to `shutdown_timeout`) and flushes their outcomes.
    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let wakers = Wakers::default();
        let config = Arc::new(self.config);
        tracing::info!(worker = %config.worker_id, concurrency = config.concurrency, "daemon started");
        self.health.set_running(true);
        // The LISTEN connection closes once the worker loop has stopped claiming (not at the
        // signal, while a claim may still be under way): from outside, its closing says that
        // this daemon claims nothing more.
        let (stopped_claiming, claims_over) = watch::channel(false);
        let listener = tokio::spawn(wakers.clone().run(
            self.wake_ups,
            Some(self.health.clone()),
            claims_over,
        ));
        let slots = Slots::new(config.concurrency);
        let (handed_tx, handed) = mpsc::unbounded_channel();
        let dispatcher = tokio::spawn(dispatch_loop(
            self.events.clone(),
            self.registry.clone(),
            config.clone(),
            wakers.events.clone(),
            Handoff {
                slots: slots.clone(),
                workers: handed_tx,
            },
            shutdown.clone(),
        ));
        let maintenance = Maintenance {
            lock: self.leader,
            queue: self.tasks.clone(),
            daily: self.daily,
            gauges: self.gauges,
            payloads: self.payloads,
            roster: self.roster,
            health: self.health.clone(),
            in_flight: slots.in_flight.clone(),
            caught_up: slots.caught_up.clone(),
            claimed: slots.claimed.clone(),
            config: config.clone(),
        };
        let maintenance = tokio::spawn(maintenance.run(shutdown.clone()));
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let completer = tokio::spawn(complete_loop(
            self.tasks.clone(),
            config.clone(),
            slots.clone(),
            done_rx,
        ));
        let workers = Workers {
            queue: self.tasks.clone(),
            registry: self.registry.clone(),
            config: config.clone(),
            wake: wakers.tasks.clone(),
            slots,
            done: done_tx,
            handed,
            stopped_claiming,
        };
        workers.run(shutdown).await;
        // The worker loop returned after its tasks finished; the completer ends when the last
        // sender (held by those tasks) is gone.
        let _ = completer.await;
        let _ = dispatcher.await;
        let _ = maintenance.await;
        let _ = listener.await;
        self.health.set_running(false);
        tracing::info!(worker = %config.worker_id, "daemon stopped");
    }
}
