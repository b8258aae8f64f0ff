//! Retention: which finished events and tasks may leave the live tables for the archive, and
//! when the daily archive run is due in a time zone. Pure: the zone's offsets are passed in.

use super::{EventStatus, TaskStatus};
use crate::time::Timestamp;
use std::time::Duration;

/// How long finished rows stay in the live tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionWindows {
    /// Succeeded tasks and dispatched events.
    pub finished: Duration,
    /// Dead and cancelled tasks, dead events (kept longer: operators reprocess them).
    pub dead: Duration,
}

impl Default for RetentionWindows {
    fn default() -> Self {
        RetentionWindows {
            finished: Duration::from_secs(24 * 3600),
            dead: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What the rule needs to know about a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskFacts {
    pub status: TaskStatus,
    pub finished_at: Option<Timestamp>,
    /// A copy of it (`reprocessed_from` = it) is pending, running or retrying.
    pub copy_waiting: bool,
}

/// What the rule needs to know about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventFacts {
    pub status: EventStatus,
    /// When it was dispatched (dispatched events).
    pub dispatched_at: Option<Timestamp>,
    /// When it was recorded (dead events age from there).
    pub occurred_at: Timestamp,
    /// One of the tasks it produced is not finished (pending, running or retrying).
    pub task_unfinished: bool,
    /// A copy of it is pending or retrying.
    pub copy_waiting: bool,
}

/// Whether `age_from` is at least `window` before `now`.
fn older_than(age_from: Timestamp, window: Duration, now: Timestamp) -> bool {
    age_from.plus(window) <= now
}

impl RetentionWindows {
    /// A task moves when it is finished, older than its window (succeeded: `finished`; dead
    /// or cancelled: `dead`) and no copy of it still waits to run.
    pub fn task_archivable(&self, t: &TaskFacts, now: Timestamp) -> bool {
        let window = match t.status {
            TaskStatus::Succeeded => self.finished,
            TaskStatus::Dead | TaskStatus::Cancelled => self.dead,
            TaskStatus::Pending | TaskStatus::Running | TaskStatus::Retrying => return false,
        };
        !t.copy_waiting && t.finished_at.is_some_and(|f| older_than(f, window, now))
    }

    /// An event moves when it is dispatched (or dead) and older than its window, none of its
    /// tasks is unfinished and no copy of it waits to be dispatched.
    pub fn event_archivable(&self, e: &EventFacts, now: Timestamp) -> bool {
        let old = match e.status {
            EventStatus::Dispatched => e
                .dispatched_at
                .is_some_and(|d| older_than(d, self.finished, now)),
            EventStatus::Dead => older_than(e.occurred_at, self.dead, now),
            EventStatus::Pending | EventStatus::Retrying => return false,
        };
        old && !e.task_unfinished && !e.copy_waiting
    }
}

/// A local time of day, `HH:MM` (24-hour clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
}

impl TimeOfDay {
    pub const MIDNIGHT: TimeOfDay = TimeOfDay { hour: 0, minute: 0 };

    /// `HH:MM` with `00 ≤ HH ≤ 23` and `00 ≤ MM ≤ 59` (one-digit hours accepted).
    pub fn parse(raw: &str) -> Option<TimeOfDay> {
        let (h, m) = raw.trim().split_once(':')?;
        let digits = |s: &str, max: u8| {
            (!s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u8>().ok())
                .flatten()
                .filter(|v| *v <= max)
        };
        let (hour, minute) = (digits(h, 23)?, digits(m, 59)?);
        (m.len() == 2).then_some(TimeOfDay { hour, minute })
    }

    /// Milliseconds since local midnight.
    pub fn millis(self) -> i64 {
        (i64::from(self.hour) * 60 + i64::from(self.minute)) * 60_000
    }
}

impl std::fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The first instant after `after` at which a zone's wall clock reads `at`. `offset_ms` gives
/// the zone's UTC offset (milliseconds east) in force at an instant. On a day whose `at`
/// does not exist (the clock jumps over it), the run is at the jump: the first instant after
/// the skipped time. On a day where `at` happens twice (the clock goes back), only the first
/// counts.
pub fn next_run(
    after: Timestamp,
    at: TimeOfDay,
    offset_ms: impl Fn(Timestamp) -> i64,
) -> Timestamp {
    let local_day = (after.0 + offset_ms(after)).div_euclid(DAY_MS);
    // Offsets lie within ±1 day, so the answer is on one of these local days.
    for day in local_day - 1..=local_day + 2 {
        if let Some(run) = run_on(day * DAY_MS + at.millis(), &offset_ms) {
            if run > after {
                return run;
            }
        }
    }
    // Unreachable with offsets within ±1 day; a day later is a safe answer.
    Timestamp(after.0 + DAY_MS)
}

/// The instant of local wall time `local` (ms since the epoch, read on the zone's clock): the
/// earliest instant whose local time it is, or the end of the jump that skipped it.
fn run_on(local: i64, offset_ms: &impl Fn(Timestamp) -> i64) -> Option<Timestamp> {
    // Any instant whose local time is `local` lies within a day of `local` read as UTC; its
    // offset is one of the offsets in force around there.
    let candidates = [-DAY_MS, 0, DAY_MS].map(|shift| offset_ms(Timestamp(local + shift)));
    let exact = candidates
        .iter()
        .map(|o| Timestamp(local - o))
        .filter(|u| u.0 + offset_ms(*u) == local)
        .min();
    if exact.is_some() {
        return exact;
    }
    // Skipped: before the jump the clock read less than `local`, after it more. The jump is
    // where the offset changes between those two instants.
    let (lo_offset, hi_offset) = (
        candidates.iter().copied().max()?,
        candidates.iter().copied().min()?,
    );
    let (mut before, mut after) = (local - lo_offset, local - hi_offset);
    let reads = |u: i64| u + offset_ms(Timestamp(u));
    if reads(before) >= local || reads(after) < local {
        return None;
    }
    // Invariant: reads(before) < local ≤ reads(after).
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if reads(mid) < local {
            before = mid;
        } else {
            after = mid;
        }
    }
    Some(Timestamp(after))
}

#[cfg(test)]
mod tests;
