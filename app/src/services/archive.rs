//! The archive run: moves every archivable event and task to the archive tables, batch by
//! batch, reporting progress (rows moved, rate, time left) as it goes. Used by
//! `campus archive`; a run stopped half-way (Ctrl-C, a crash) leaves a consistent state and
//! the next run carries on.

use super::AppError;
use campus_core::engine::retention::RetentionWindows;
use campus_ports::{Archive, ArchiveCounts};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows per table per batch: each batch is one short transaction per table.
pub const DEFAULT_BATCH: u32 = 5_000;

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
    /// What was archivable when the run began (rows that become archivable during the run
    /// move too, so `moved` may end above it).
    pub expected: ArchiveCounts,
    pub elapsed: Duration,
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
    /// What would move now.
    pub async fn dry_run(&self) -> Result<ArchiveCounts, AppError> {
        Ok(self.archive.archivable(&self.windows).await?)
    }

    /// Moves every archivable row, calling `progress` after each batch; returns the final
    /// progress.
    pub async fn run(&self, mut progress: impl FnMut(&Progress)) -> Result<Progress, AppError> {
        let started = Instant::now();
        let mut now = Progress {
            moved: ArchiveCounts::default(),
            expected: self.archive.archivable(&self.windows).await?,
            elapsed: Duration::ZERO,
        };
        loop {
            let batch = self
                .archive
                .archive_batch(&self.windows, self.batch.max(1))
                .await?;
            now.moved += batch;
            now.elapsed = started.elapsed();
            progress(&now);
            if batch.total() == 0 {
                return Ok(now);
            }
        }
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
        let service = ArchiveService {
            archive: Arc::new(archive),
            windows: RetentionWindows::default(),
            batch: 4,
        };
        let mut seen = Vec::new();
        let done = service.run(|p| seen.push(p.moved.total())).await.unwrap();
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

    #[test]
    fn time_left_follows_the_rate_so_far() {
        let p = Progress {
            moved: ArchiveCounts {
                events: 0,
                tasks: 1_000,
            },
            expected: ArchiveCounts {
                events: 0,
                tasks: 5_000,
            },
            elapsed: Duration::from_secs(2),
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
