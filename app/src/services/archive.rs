//! The archive run: moves every archivable event and task to the archive tables, batch by
//! batch, reporting progress (rows moved, rate, time left) as it goes, then purges spent reset
//! tokens, expired sessions and old sent-e-mail records, and after a large move vacuums the
//! live tables. Used by `campus archive` and the
//! daily run; a run stopped half-way (Ctrl-C, a crash) leaves a consistent state and the next
//! run carries on.

use super::AppError;
use crate::engine::DailyJob;
use campus_core::engine::retention::RetentionWindows;
use campus_core::Timestamp;
use campus_ports::{Archive, ArchiveCounts, PurgeCounts};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows per table per batch: each batch is one short transaction per table.
pub const DEFAULT_BATCH: u32 = 5_000;

/// The daemons are busy when this many tasks are due: the archive then waits between its
/// batches, [`BUSY_PAUSE`] at a time and at most [`MOST_PAUSE`] per batch (so that a backlog
/// that never drains slows the archive down without stopping it).
pub const BUSY_BACKLOG: u32 = 1_000;
pub const BUSY_PAUSE: Duration = Duration::from_millis(200);
pub const MOST_PAUSE: Duration = Duration::from_secs(5);

/// A run that moved at least this many rows ends by giving their room back to the live tables
/// ([`Archive::reclaim`]) instead of leaving it to the day's autovacuum.
pub const RECLAIM_AFTER: u64 = 100_000;

#[derive(Clone)]
pub struct ArchiveService {
    pub archive: Arc<dyn Archive>,
    pub windows: RetentionWindows,
    pub batch: u32,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub moved: ArchiveCounts,
    /// What the purge deleted (at the end of the run).
    pub purged: PurgeCounts,
    /// What was archivable when the run began (rows that become archivable during the run
    /// move too, so `moved` may end above it).
    pub expected: ArchiveCounts,
    pub elapsed: Duration,
    /// The live tables are being vacuumed (the last step of a large run).
    pub reclaiming: bool,
    /// How long that vacuum took, once done (`elapsed` and the rate leave it out).
    pub reclaimed_in: Option<Duration>,
}

impl Progress {
    /// Rows moved per second so far.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.moved.total() as f64 / secs
        } else {
            0.0
        }
    }

    /// The time the rest of the expected rows should take at the rate so far.
    pub fn left(&self) -> Option<Duration> {
        let rest = self.expected.total().saturating_sub(self.moved.total());
        let rate = self.rate();
        (rate > 0.0).then(|| Duration::from_secs_f64(rest as f64 / rate))
    }

    /// One line: `12 000 of 50 000 rows (9 000 tasks, 3 000 events), 48 000 rows/s, about 1 s left`.
    pub fn line(&self) -> String {
        if self.reclaiming {
            return format!(
                "{} rows moved; vacuuming the live tables to reuse their room",
                self.moved.total()
            );
        }
        let left = match self.left() {
            Some(d) if self.moved.total() < self.expected.total() => {
                format!(", about {} s left", d.as_secs() + 1)
            }
            _ => String::new(),
        };
        format!(
            "{} of {} rows ({} tasks, {} events), {:.0} rows/s{left}",
            self.moved.total(),
            self.expected.total(),
            self.moved.tasks,
            self.moved.events,
            self.rate()
        )
    }
}

impl ArchiveService {
    /// Waits while the daemons are busy (see [`BUSY_BACKLOG`]).
    async fn give_way(&self) -> Result<(), AppError> {
        let mut waited = Duration::ZERO;
        while waited < MOST_PAUSE && self.archive.due_backlog(BUSY_BACKLOG).await? >= BUSY_BACKLOG {
            tokio::time::sleep(BUSY_PAUSE).await;
            waited += BUSY_PAUSE;
        }
        Ok(())
    }

    /// What would move now.
    pub async fn dry_run(&self) -> Result<ArchiveCounts, AppError> {
        Ok(self.archive.archivable(&self.windows).await?)
    }

    /// Moves every archivable row, calling `progress` after each batch, and records the run
    /// as the one due at `due`; returns the final progress.
    pub async fn run(
        &self,
        due: Timestamp,
        mut progress: impl FnMut(&Progress),
    ) -> Result<Progress, AppError> {
        let started = Instant::now();
        // The count reads every candidate: not while the daemons are busy either.
        self.give_way().await?;
        let mut now = Progress {
            moved: ArchiveCounts::default(),
            purged: PurgeCounts::default(),
            expected: self.archive.archivable(&self.windows).await?,
            elapsed: Duration::ZERO,
            reclaiming: false,
            reclaimed_in: None,
        };
        loop {
            let batch = self
                .archive
                .archive_batch(&self.windows, self.batch.max(1))
                .await?;
            now.moved += batch;
            now.elapsed = started.elapsed();
            progress(&now);
            if batch.total() != 0 {
                self.give_way().await?;
            }
            if batch.total() == 0 {
                now.purged = self.archive.purge(&self.windows).await?;
                now.elapsed = started.elapsed();
                if now.moved.total() >= RECLAIM_AFTER {
                    now.reclaiming = true;
                    progress(&now);
                    let vacuum = Instant::now();
                    self.archive.reclaim().await?;
                    now.reclaiming = false;
                    now.reclaimed_in = Some(vacuum.elapsed());
                }
                self.archive.record_run(due, now.moved).await?;
                return Ok(now);
            }
        }
    }
}

/// The daily run on the maintenance leader.
#[async_trait::async_trait]
impl DailyJob for ArchiveService {
    fn name(&self) -> &'static str {
        "archive"
    }

    async fn last_due(&self) -> Result<Option<Timestamp>, String> {
        let runs = self.archive.runs(1).await.map_err(|e| e.to_string())?;
        Ok(runs.first().map(|r| r.due))
    }

    async fn run(&self, due: Timestamp) -> Result<(), String> {
        let done = ArchiveService::run(self, due, |_| {})
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            tasks = done.moved.tasks,
            events = done.moved.events,
            reset_tokens_purged = done.purged.reset_tokens,
            sessions_purged = done.purged.sessions,
            sent_emails_purged = done.purged.sent_emails,
            seconds = done.elapsed.as_secs_f64(),
            "daily archive run finished"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_ports::MockArchive;

    #[tokio::test]
    async fn a_run_moves_batches_until_none_is_left_and_reports_each() {
        let mut archive = MockArchive::new();
        archive.expect_archivable().times(1).returning(|_| {
            Ok(ArchiveCounts {
                events: 2,
                tasks: 5,
            })
        });
        let mut batches = vec![
            ArchiveCounts::default(),
            ArchiveCounts {
                events: 2,
                tasks: 1,
            },
            ArchiveCounts {
                events: 0,
                tasks: 4,
            },
        ];
        archive
            .expect_archive_batch()
            .withf(|_, limit| *limit == 4)
            .times(3)
            .returning(move |_, _| Ok(batches.pop().unwrap()));
        // Before the count the daemons are idle; after the first batch busy (one pause),
        // then idle; after the second, idle. Popped from the end.
        let mut backlogs = vec![0, 0, BUSY_BACKLOG, 0];
        archive
            .expect_due_backlog()
            .times(4)
            .returning(move |_| Ok(backlogs.pop().unwrap()));
        archive
            .expect_purge()
            .times(1)
            .returning(|_| Ok(PurgeCounts::default()));
        archive
            .expect_record_run()
            .withf(|due, moved| due.0 == 42 && moved.total() == 7)
            .times(1)
            .returning(|_, _| Ok(()));
        let service = ArchiveService {
            archive: Arc::new(archive),
            windows: RetentionWindows::default(),
            batch: 4,
        };
        let mut seen = Vec::new();
        let done = service
            .run(Timestamp(42), |p| seen.push(p.moved.total()))
            .await
            .unwrap();
        assert_eq!(seen, [4, 7, 7]);
        assert_eq!(
            done.moved,
            ArchiveCounts {
                events: 2,
                tasks: 5
            }
        );
        assert!(
            done.line().starts_with("7 of 7 rows (5 tasks, 2 events), "),
            "{}",
            done.line()
        );
        assert!(!done.line().contains("left"));
    }

    #[tokio::test]
    async fn a_large_run_ends_by_vacuuming_the_live_tables() {
        let mut archive = MockArchive::new();
        archive
            .expect_archivable()
            .returning(|_| Ok(ArchiveCounts::default()));
        let mut batches = vec![
            ArchiveCounts::default(),
            ArchiveCounts {
                events: 0,
                tasks: RECLAIM_AFTER,
            },
        ];
        archive
            .expect_archive_batch()
            .returning(move |_, _| Ok(batches.pop().unwrap()));
        archive.expect_due_backlog().returning(|_| Ok(0));
        archive
            .expect_purge()
            .returning(|_| Ok(PurgeCounts::default()));
        archive.expect_reclaim().times(1).returning(|| Ok(()));
        archive
            .expect_record_run()
            .times(1)
            .returning(|_, _| Ok(()));
        let service = ArchiveService {
            archive: Arc::new(archive),
            windows: RetentionWindows::default(),
            batch: 4,
        };
        let mut lines = Vec::new();
        let done = service
            .run(Timestamp(1), |p| lines.push(p.line()))
            .await
            .unwrap();
        assert!(!done.reclaiming && done.reclaimed_in.is_some());
        assert_eq!(
            lines.last().unwrap(),
            "100000 rows moved; vacuuming the live tables to reuse their room"
        );
    }

    #[test]
    fn time_left_follows_the_rate_so_far() {
        let p = Progress {
            purged: PurgeCounts::default(),
            moved: ArchiveCounts {
                events: 0,
                tasks: 1_000,
            },
            expected: ArchiveCounts {
                events: 0,
                tasks: 5_000,
            },
            elapsed: Duration::from_secs(2),
            reclaiming: false,
            reclaimed_in: None,
        };
        assert_eq!(p.rate(), 500.0);
        assert_eq!(p.left(), Some(Duration::from_secs(8)));
        assert!(
            p.line().ends_with("500 rows/s, about 9 s left"),
            "{}",
            p.line()
        );
    }
}
