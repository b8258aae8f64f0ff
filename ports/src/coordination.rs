//! Ports the daemon and the API need beside the tables: wake-up hints, the maintenance
//! leader's lock, the roster of running daemons and the readiness of the store.
//!
//! None of them is a source of truth: a wake-up only shortens a wait (the daemon polls
//! anyway), losing the leader lock only moves maintenance to another daemon, and the roster
//! only tells operators who is running.

use crate::PortError;
use campus_core::Timestamp;
use std::time::Duration;

/// A hint that work may be waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeUp {
    /// Events may be due for dispatch.
    Events,
    /// Tasks may be due.
    Tasks,
    /// Events or tasks changed status (for live views).
    Changes,
    /// Hints may have been lost (the source reconnected): look at everything.
    All,
}

/// One subscriber's stream of hints. Dropping it unsubscribes.
#[async_trait::async_trait]
pub trait WakeStream: Send {
    /// The next hint; `None` once the source has stopped for good. Never an error: a source
    /// that loses its connection reconnects by itself and then sends [`WakeUp::All`].
    async fn next(&mut self) -> Option<WakeUp>;

    /// Whether hints can arrive right now: false while a source that needs a connection has
    /// lost it and not yet reconnected. Sources without a connection are always connected.
    fn connected(&self) -> bool {
        true
    }
}

/// Where wake-up hints come from (LISTEN/NOTIFY for PostgreSQL).
#[async_trait::async_trait]
pub trait WakeUps: Send + Sync {
    /// Starts a stream of hints for one subscriber (needs a tokio runtime). Its first hint is
    /// [`WakeUp::All`], once it hears writes: what was written before may have been missed.
    fn subscribe(&self) -> Box<dyn WakeStream>;
}

/// The lock one daemon holds while it is the maintenance leader.
#[async_trait::async_trait]
pub trait Leadership: Send {
    /// Whether the lock is still held; false once it was lost (e.g. the connection holding
    /// it closed), after which another daemon may lead.
    async fn still_held(&mut self) -> bool;
    /// Gives the lock up.
    async fn release(self: Box<Self>);
}

/// Elects one maintenance leader among the daemons sharing a store.
#[async_trait::async_trait]
pub trait LeaderLock: Send + Sync {
    /// Tries to take the lock without waiting: `Ok(None)` while another daemon holds it.
    /// Errors: `Unavailable`.
    async fn try_acquire(&self) -> Result<Option<Box<dyn Leadership>>, PortError>;
}

/// Whether the store can serve requests.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    /// True when the store is reachable and its schema is current (every migration applied).
    /// Errors: `Unavailable` when it cannot be reached.
    async fn schema_ready(&self) -> Result<bool, PortError>;
}

/// What a running daemon says about itself on each of its heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonBeat {
    /// The daemon's worker id (its `locked_by` on the tasks it runs).
    pub worker_id: String,
    /// The version of Campus it runs.
    pub version: String,
    pub started_at: Timestamp,
    /// Tasks it may run at once, and runs now.
    pub concurrency: u32,
    pub running: u32,
    /// Whether it holds the maintenance leader's lock.
    pub leader: bool,
    /// Whether its wake-up source is connected (LISTEN, on PostgreSQL).
    pub listening: bool,
}

/// A daemon as the roster last heard from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSeen {
    pub beat: DaemonBeat,
    /// How long ago its last heartbeat arrived, by the store's clock (daemons on several
    /// hosts never compare their own clocks).
    pub silent_for: Duration,
}

/// The running daemons, from their heartbeats: a daemon records one every few seconds and
/// leaves when it stops; one that died without leaving falls silent and is forgotten a day
/// later.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait DaemonRoster: Send + Sync {
    /// Records `beat` as its daemon's latest heartbeat, heard now. Errors: `Unavailable`.
    async fn beat(&self, beat: &DaemonBeat) -> Result<(), PortError>;
    /// Removes a daemon that stopped. Errors: `Unavailable`.
    async fn left(&self, worker_id: &str) -> Result<(), PortError>;
    /// Daemons heard from within `within`, the leader first, then by start (oldest first).
    /// Errors: `Unavailable`.
    async fn heard_within(&self, within: Duration) -> Result<Vec<DaemonSeen>, PortError>;
}
