//! Conformance of the outbox (a repository write and its events commit together or not at
//! all) and of the read side's summary.

use super::*;
use campus_core::engine::{EventStatus, Priority, TaskStatus};
use campus_core::ids::{InstitutionId, UserId};
use campus_core::user::{Institution, PasswordHash, User};
use campus_core::values::{Email, Name, Role};
use campus_core::Timestamp;

pub(super) fn academic(id: u128, institution: u128) -> User {
    User::register(
        UserId(id),
        Some(InstitutionId(institution)),
        Role::Academic,
        Name::parse("n", "Ana").unwrap(),
        Email::parse("ana@x.org").unwrap(),
        PasswordHash("h".into()),
    )
    .unwrap()
}

async fn all_events(e: &Engine) -> Vec<EventView> {
    let q = EventQuery {
        limit: 200,
        ..Default::default()
    };
    e.log.list_events(&q, None).await.expect("list events")
}

pub async fn a_refused_write_records_no_event(e: &Engine) {
    let ctx = EventContext {
        correlation_id: Some("c".into()),
        actor_id: Some(UserId(99)),
    };
    let mut a = academic(10, 1);
    let mut i =
        Institution::create(InstitutionId(1), Name::parse("n", "One").unwrap(), &a).unwrap();
    e.users
        .create_institution(&mut i, &mut a, &ctx)
        .await
        .unwrap();
    let mut types: Vec<String> = all_events(e)
        .await
        .into_iter()
        .map(|v| v.event_type)
        .collect();
    types.sort();
    assert_eq!(types, ["AcademicCreated", "InstitutionCreated"]);
    assert!(all_events(e)
        .await
        .iter()
        .all(|v| v.correlation_id.as_deref() == Some("c")
            && v.actor_id == Some(UserId(99))
            && v.status == EventStatus::Pending));

    // Same e-mail: nothing is saved, neither the institution nor its events.
    let mut b = academic(20, 2);
    let mut j =
        Institution::create(InstitutionId(2), Name::parse("n", "Two").unwrap(), &b).unwrap();
    let err = e
        .users
        .create_institution(&mut j, &mut b, &ctx)
        .await
        .unwrap_err();
    assert!(matches!(err, PortError::Conflict(_)), "{err:?}");
    assert_eq!(all_events(e).await.len(), 2);
    let names: Vec<String> = e
        .log
        .institutions(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names, ["One"]);
}

pub async fn the_summary_counts_what_the_store_holds(e: &Engine) {
    let mut ev = event("Happened");
    ev.institution_id = Some(InstitutionId(7));
    e.events.append(&[ev, event("Poison")]).await.unwrap();
    e.events
        .dispatch_pending(10, Arc::new(TwoHandlers), &measurable_policy())
        .await
        .unwrap();
    // Of the same institution, so that the claim's shares do not matter here.
    let later = NewTask {
        institution_id: Some(InstitutionId(7)),
        ..task(None)
    };
    e.tasks.enqueue(&[later]).await.unwrap();
    // t_h1 and t_h2 are claimed; t_h1 succeeds and t_h2 fails permanently; `t` waits.
    let claimed = e.tasks.claim("w", &types(), 2, LONG_LEASE).await.unwrap();
    let outcomes: Vec<_> = claimed
        .iter()
        .map(|c| match c.task_type.as_str() {
            "t_h1" => completion(c, TaskOutcome::Succeeded),
            _ => completion(c, failed("no", true)),
        })
        .collect();
    e.tasks
        .complete("w", &outcomes, &quick_policy())
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "the two planned tasks are the oldest");

    let s = e.log.summary(&SummaryQuery::default(), None).await.unwrap();
    let events: Vec<(EventStatus, i64)> = s
        .events_by_status
        .iter()
        .map(|c| (c.status, c.count))
        .collect();
    assert_eq!(
        events,
        [(EventStatus::Dispatched, 1), (EventStatus::Retrying, 1)]
    );
    let tasks: Vec<(TaskStatus, i64)> = s
        .tasks_by_status
        .iter()
        .map(|c| (c.status, c.count))
        .collect();
    assert_eq!(
        tasks,
        [
            (TaskStatus::Dead, 1),
            (TaskStatus::Pending, 1),
            (TaskStatus::Succeeded, 1)
        ]
    );
    assert!(
        s.tasks_by_status.iter().all(|c| !c.approximate),
        "small tables are counted"
    );
    assert_eq!(
        s.tasks_by_type,
        [
            ("t".to_string(), TaskStatus::Pending, 1),
            ("t_h2".to_string(), TaskStatus::Dead, 1)
        ]
    );
    assert_eq!(s.per_minute.len(), 60);
    let last_hour = s.per_minute.iter().fold((0, 0, 0), |(a, b, c), m| {
        (a + m.events, b + m.tasks_succeeded, c + m.tasks_failed)
    });
    assert_eq!(last_hour, (2, 1, 1));
    assert!((s.failure_rate - 0.5).abs() < 1e-9, "{}", s.failure_rate);
    assert!(s.oldest_pending_event_age_s.is_some() && s.oldest_pending_task_age_s.is_some());

    // Scoped to one institution: its event and its tasks only.
    let scoped = e
        .log
        .summary(&SummaryQuery::default(), Some(InstitutionId(7)))
        .await
        .unwrap();
    let n: i64 = scoped.tasks_by_status.iter().map(|c| c.count).sum();
    assert_eq!(n, 3);
    assert_eq!(
        scoped.oldest_pending_event_age_s, None,
        "the waiting event is not theirs"
    );
    // Due: `t` only (of institution 7, which has no row yet, hence no name).
    assert_eq!(backlog(&s), [(Some(7), None, [0, 1, 0])]);
    assert_eq!(s.due_backlog.total, normal(1));
    assert_eq!(scoped.due_backlog, s.due_backlog);

    the_due_backlog_is_counted_per_institution_and_priority(e).await;
}

fn normal(n: i64) -> PriorityCounts {
    PriorityCounts {
        normal: n,
        ..PriorityCounts::default()
    }
}

/// `(institution, name, [interactive, normal, bulk])` of each institution listed.
fn backlog(s: &EngineSummary) -> Vec<(Option<u128>, Option<&str>, [i64; 3])> {
    s.due_backlog
        .institutions
        .iter()
        .map(|b| {
            let counts = Priority::ALL.map(|p| b.due.get(p));
            (b.institution_id.map(|i| i.0), b.name.as_deref(), counts)
        })
        .collect()
}

/// Continues the summary case, whose store holds one due `normal` task of institution 7.
async fn the_due_backlog_is_counted_per_institution_and_priority(e: &Engine) {
    let mut a = academic(10, 7);
    let mut seven =
        Institution::create(InstitutionId(7), Name::parse("n", "Seven").unwrap(), &a).unwrap();
    e.users
        .create_institution(&mut seven, &mut a, &EventContext::default())
        .await
        .unwrap();
    let of = |institution: Option<u128>, priority| NewTask {
        institution_id: institution.map(InstitutionId),
        priority,
        ..task(None)
    };
    let later = Timestamp(e.harness.now().await.0 + 3_600_000);
    let mut tasks = vec![
        of(Some(7), Priority::Interactive),
        of(None, Priority::Normal),
        // Not due yet: not in the backlog.
        NewTask {
            run_at: Some(later),
            ..of(Some(8), Priority::Interactive)
        },
    ];
    tasks.extend((0..3).map(|_| of(Some(8), Priority::Bulk)));
    // 21 institutions with one task each: the list stops at 20 institutions, the totals do not.
    tasks.extend((100..121).map(|i| of(Some(i), Priority::Bulk)));
    e.tasks.enqueue(&tasks).await.unwrap();

    let s = e.log.summary(&SummaryQuery::default(), None).await.unwrap();
    let listed = backlog(&s);
    assert_eq!(listed.len(), BACKLOG_INSTITUTIONS);
    assert_eq!(
        listed[..4],
        [
            (Some(8), None, [0, 0, 3]),
            (Some(7), Some("Seven"), [1, 1, 0]),
            (None, None, [0, 1, 0]),
            (Some(100), None, [0, 0, 1]),
        ],
        "most due tasks first, ties by id (no institution first)"
    );
    assert_eq!(listed[19].0, Some(116));
    assert_eq!(
        s.due_backlog.total,
        PriorityCounts {
            interactive: 1,
            normal: 2,
            bulk: 24
        }
    );

    // Scoped, or filtered to one institution: its backlog only.
    let scoped = e
        .log
        .summary(&SummaryQuery::default(), Some(InstitutionId(7)))
        .await
        .unwrap();
    assert_eq!(backlog(&scoped), [(Some(7), Some("Seven"), [1, 1, 0])]);
    assert_eq!(scoped.due_backlog.total.total(), 2);
    let eight = SummaryQuery {
        institution_id: Some(InstitutionId(8)),
        ..SummaryQuery::default()
    };
    let filtered = e.log.summary(&eight, None).await.unwrap();
    assert_eq!(backlog(&filtered), [(Some(8), None, [0, 0, 3])]);
    assert_eq!(filtered.due_backlog.total.total(), 3);
}
