//! The archive: finished events and tasks leave the live tables for their archive tables
//! (`campus_core::engine::retention` decides which), by bounded batches, each atomic.

use crate::PortError;
use campus_core::engine::retention::RetentionWindows;
use campus_core::Timestamp;

/// Rows counted or moved, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArchiveCounts {
    pub events: u64,
    pub tasks: u64,
}

impl ArchiveCounts {
    pub fn total(self) -> u64 {
        self.events + self.tasks
    }
}

impl std::ops::AddAssign for ArchiveCounts {
    fn add_assign(&mut self, other: ArchiveCounts) {
        self.events += other.events;
        self.tasks += other.tasks;
    }
}

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait Archive: Send + Sync {
    /// How many rows would move now under `windows` (a dry run; the store's clock decides
    /// "now").
    async fn archivable(&self, windows: &RetentionWindows) -> Result<ArchiveCounts, PortError>;

    /// Moves up to `limit` archivable tasks, then up to `limit` archivable events, each table
    /// in one atomic step (a crash loses and duplicates nothing; the next batch resumes).
    /// Rows another transaction holds are skipped, not waited for. Returns what moved; zero
    /// of both means nothing is left to move.
    async fn archive_batch(
        &self,
        windows: &RetentionWindows,
        limit: u32,
    ) -> Result<ArchiveCounts, PortError>;

    /// How many tasks are due now (pending or retrying, their time come), counting up to
    /// `cap`: how busy the daemons are, which the archive gives way to.
    async fn due_backlog(&self, cap: u32) -> Result<u32, PortError>;

    /// Events and tasks in the archive tables.
    async fn archived(&self) -> Result<ArchiveCounts, PortError>;

    /// Deletes what has no use any more: reset tokens used or expired longer than the
    /// finished window ago, expired operator sessions, and records of sent e-mails older than
    /// the dead window (after which a reprocessed copy may send its e-mail again).
    async fn purge(&self, windows: &RetentionWindows) -> Result<PurgeCounts, PortError>;
    /// Gives the room of the rows moved out back to the live tables and refreshes their
    /// statistics (PostgreSQL: `VACUUM ANALYZE`), so that the day's work does not pay for the
    /// night's move (a vacuum started by the day's own churn rescans every index).
    async fn reclaim(&self) -> Result<(), PortError>;

    /// Records a run that went to its end: the instant it was due for, what it moved.
    async fn record_run(&self, due: Timestamp, moved: ArchiveCounts) -> Result<(), PortError>;

    /// The last `limit` runs recorded, the latest due first.
    async fn runs(&self, limit: u32) -> Result<Vec<ArchiveRun>, PortError>;
}

/// Rows deleted by [`Archive::purge`], by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeCounts {
    pub reset_tokens: u64,
    pub sessions: u64,
    pub sent_emails: u64,
}

/// One archive run that went to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveRun {
    pub due: Timestamp,
    pub finished: Timestamp,
    pub moved: ArchiveCounts,
}
