//! Jobs the maintenance leader runs once a day at a local time (the archive): when the next
//! run is due (`campus_core::engine::retention::next_run`, from the last run recorded) and
//! whether it is due now. A leader that takes over runs a day's run its predecessor missed;
//! several missed days make one run.

use campus_core::engine::retention::{next_run, TimeOfDay};
use campus_core::Timestamp;
use campus_ports::Clock;
use std::sync::Arc;

/// A job the maintenance leader runs once a day.
#[async_trait::async_trait]
pub trait DailyJob: Send + Sync {
    /// For logs.
    fn name(&self) -> &'static str;
    /// The instant the last recorded run was due for, if any run was recorded.
    async fn last_due(&self) -> Result<Option<Timestamp>, String>;
    /// Runs the job for the run due at `due`, recording it when it went to its end.
    async fn run(&self, due: Timestamp) -> Result<(), String>;
}

/// When a daily job runs: `at` on the wall clock of a zone.
#[derive(Clone)]
pub struct Schedule {
    pub at: TimeOfDay,
    /// The zone's UTC offset at an instant, in milliseconds east.
    pub offset_ms: Arc<dyn Fn(Timestamp) -> i64 + Send + Sync>,
    pub clock: Arc<dyn Clock>,
}

impl Schedule {
    /// The run due now, if any: the latest scheduled instant after `last` (the last run
    /// recorded, else `since`) that is not in the future.
    pub fn due(&self, last: Option<Timestamp>, since: Timestamp) -> Option<Timestamp> {
        let now = self.clock.now();
        let mut due = self.next(last.unwrap_or(since));
        if due > now {
            return None;
        }
        loop {
            let later = self.next(due);
            if later > now {
                return Some(due);
            }
            due = later;
        }
    }

    /// The first scheduled instant after `after`.
    pub fn next(&self, after: Timestamp) -> Timestamp {
        next_run(after, self.at, self.offset_ms.as_ref())
    }
}

/// A daily job with its schedule.
#[derive(Clone)]
pub struct Daily {
    pub job: Arc<dyn DailyJob>,
    pub schedule: Schedule,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    struct At(AtomicI64);
    impl Clock for At {
        fn now(&self) -> Timestamp {
            Timestamp(self.0.load(Ordering::SeqCst))
        }
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn a_missed_run_is_due_once_for_the_latest_day() {
        let clock = Arc::new(At(AtomicI64::new(10 * DAY + 3_600_000)));
        let s = Schedule {
            at: TimeOfDay::MIDNIGHT,
            offset_ms: Arc::new(|_| 0),
            clock: clock.clone(),
        };
        // Never ran: nothing is due before the first midnight after `since`.
        assert_eq!(s.due(None, Timestamp(10 * DAY + 60_000)), None);
        assert_eq!(
            s.due(None, Timestamp(10 * DAY - 60_000)),
            Some(Timestamp(10 * DAY))
        );
        // Ran for day 10: nothing more that day; three days later, one run for day 13.
        assert_eq!(s.due(Some(Timestamp(10 * DAY)), Timestamp(0)), None);
        clock.0.store(13 * DAY + 5, Ordering::SeqCst);
        assert_eq!(
            s.due(Some(Timestamp(10 * DAY)), Timestamp(0)),
            Some(Timestamp(13 * DAY))
        );
    }
}
