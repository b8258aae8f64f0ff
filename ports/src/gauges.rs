//! How deep the queues are right now, read cheaply enough to refresh every few seconds: every
//! count walks a partial index of waiting rows, up to a cap, never a whole table.

use crate::PortError;
use std::time::Duration;

/// Waiting work, each count at most the cap it was read with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub tasks_pending: u64,
    pub tasks_retrying: u64,
    pub tasks_running: u64,
    /// Pending or retrying tasks whose `run_at` has come.
    pub tasks_due: u64,
    /// Events waiting for dispatch (pending or retrying).
    pub events_waiting: u64,
    /// How long the oldest due task next in line has been due: of each institution's (and of
    /// the tasks of none) due tasks, the first in claim order (`claim_at`, id); within one
    /// priority that is the one due the longest.
    pub oldest_due_task: Option<Duration>,
    /// How long the oldest due event has been due.
    pub oldest_due_event: Option<Duration>,
}

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait QueueGauges: Send + Sync {
    /// The queues' depth, every count capped at `cap`.
    async fn queue_depth(&self, cap: u32) -> Result<QueueDepth, PortError>;
}
