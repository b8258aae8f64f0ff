use super::*;
use proptest::prelude::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn at(raw: &str) -> TimeOfDay {
    TimeOfDay::parse(raw).unwrap()
}

/// A zone whose offset is `before` until `change` and `after` from then on.
fn zone(before: i64, change: i64, after: i64) -> impl Fn(Timestamp) -> i64 {
    move |t: Timestamp| if t.0 < change { before } else { after }
}

#[test]
fn times_of_day_parse_strictly() {
    assert_eq!(at("00:00"), TimeOfDay::MIDNIGHT);
    assert_eq!(at("7:05").to_string(), "07:05");
    assert_eq!(at("23:59").millis(), (23 * 60 + 59) * MINUTE);
    for bad in [
        "24:00", "12:60", "12:5", "1200", "ab:cd", "", ":", "-1:00", "12:00:00",
    ] {
        assert_eq!(TimeOfDay::parse(bad), None, "{bad:?}");
    }
}

#[test]
fn in_utc_the_run_is_the_next_midnight() {
    let day = 20_000 * DAY_MS;
    let utc = |_: Timestamp| 0;
    assert_eq!(
        next_run(Timestamp(day + 10 * HOUR), at("00:00"), utc).0,
        day + DAY_MS
    );
    assert_eq!(
        next_run(Timestamp(day), at("00:00"), utc).0,
        day + DAY_MS,
        "strictly after"
    );
    assert_eq!(next_run(Timestamp(day - 1), at("00:00"), utc).0, day);
    // São Paulo (UTC−3, no DST): midnight there is 03:00 UTC.
    let sp = |_: Timestamp| -3 * HOUR;
    assert_eq!(
        next_run(Timestamp(day + HOUR), at("00:00"), sp).0,
        day + 3 * HOUR
    );
}

#[test]
fn a_skipped_time_runs_when_the_clock_jumps_and_a_repeated_one_runs_once() {
    let day = 20_000 * DAY_MS;
    // Spring forward at 01:00 UTC: 02:00 local (UTC+1) becomes 03:00 (UTC+2).
    let spring = zone(HOUR, day + HOUR, 2 * HOUR);
    let run = next_run(Timestamp(day - 6 * HOUR), at("02:30"), &spring);
    assert_eq!(run.0, day + HOUR, "at the jump: 03:00 local");
    let next = next_run(run, at("02:30"), &spring);
    assert_eq!(
        next.0,
        day + DAY_MS + 30 * MINUTE,
        "02:30 at UTC+2 the next day"
    );
    // Fall back at 01:00 UTC: 03:00 local (UTC+2) becomes 02:00 (UTC+1); 02:30 happens twice.
    let fall = zone(2 * HOUR, day + HOUR, HOUR);
    let first = next_run(Timestamp(day - 6 * HOUR), at("02:30"), &fall);
    assert_eq!(first.0, day + 30 * MINUTE, "the first 02:30");
    let then = next_run(first, at("02:30"), &fall);
    assert_eq!(
        then.0,
        day + DAY_MS + 90 * MINUTE,
        "not the second 02:30: the next day's"
    );
}

/// The first whole minute after `after` at which the daily run is due, by scanning minutes:
/// the wall clock reads `at` there for the first time that day, or the clock jumped over it.
fn scanned(after: i64, at: TimeOfDay, before: i64, change: i64, offset_after: i64) -> i64 {
    let offset = |t: i64| if t < change { before } else { offset_after };
    let local = |t: i64| t + offset(t);
    let mut u = (after.div_euclid(MINUTE) + 1) * MINUTE;
    loop {
        let reads_at = local(u).rem_euclid(DAY_MS) == at.millis();
        // A second reading of the same time (the clock went back) is not a run.
        let repeated = u >= change && local(u) - before < change;
        let jumped_over = u == change && {
            let first = ((local(u - 1) - at.millis()).div_euclid(DAY_MS) + 1) * DAY_MS;
            first + at.millis() <= local(u)
        };
        if (reads_at && !repeated) || jumped_over {
            return u;
        }
        u += MINUTE;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_next_run_matches_a_minute_by_minute_scan(
        after in 0i64..10 * DAY_MS,
        hour in 0u8..24,
        minute in 0u8..60,
        before in -56i64..=56,
        after_quarters in -56i64..=56,
        change_minute in 0i64..(12 * 24 * 60),
    ) {
        let at = TimeOfDay { hour, minute };
        let (before, offset_after) = (before * 15 * MINUTE, after_quarters * 15 * MINUTE);
        let change = change_minute * MINUTE;
        let run = next_run(Timestamp(after), at, zone(before, change, offset_after));
        prop_assert!(run.0 > after);
        prop_assert_eq!(run.0, scanned(after, at, before, change, offset_after));
    }

    #[test]
    fn only_finished_old_rows_without_waiting_work_are_archivable(
        status in prop::sample::select(TaskStatus::ALL.to_vec()),
        finished_ago_s in prop::option::of(0u64..100 * 86_400),
        copy_waiting in any::<bool>(),
        later_s in 0u64..86_400,
    ) {
        let w = RetentionWindows::default();
        let now = Timestamp(1_800_000_000_000);
        let t = TaskFacts {
            status,
            finished_at: finished_ago_s.map(|s| Timestamp(now.0 - s as i64 * 1000)),
            copy_waiting,
        };
        let moves = w.task_archivable(&t, now);
        if moves {
            prop_assert!(status.is_final() && !copy_waiting);
            let window = if status == TaskStatus::Succeeded { w.finished } else { w.dead };
            prop_assert!(t.finished_at.unwrap().plus(window) <= now);
            // Once archivable, it stays so.
            prop_assert!(w.task_archivable(&t, now.plus(Duration::from_secs(later_s))));
        } else if status.is_final() && !copy_waiting {
            let window = if status == TaskStatus::Succeeded { w.finished } else { w.dead };
            prop_assert!(t.finished_at.is_none_or(|f| f.plus(window) > now));
        }
    }

    #[test]
    fn an_event_waits_for_its_tasks_and_copies(
        status in prop::sample::select(EventStatus::ALL.to_vec()),
        age_s in 0u64..100 * 86_400,
        task_unfinished in any::<bool>(),
        copy_waiting in any::<bool>(),
    ) {
        let w = RetentionWindows::default();
        let now = Timestamp(1_800_000_000_000);
        let then = Timestamp(now.0 - age_s as i64 * 1000);
        let e = EventFacts {
            status,
            dispatched_at: (status == EventStatus::Dispatched).then_some(then),
            occurred_at: then,
            task_unfinished,
            copy_waiting,
        };
        let window = match status {
            EventStatus::Dispatched => Some(w.finished),
            EventStatus::Dead => Some(w.dead),
            _ => None,
        };
        let expected = window.is_some_and(|w| then.plus(w) <= now) && !task_unfinished && !copy_waiting;
        prop_assert_eq!(w.event_archivable(&e, now), expected);
    }
}
