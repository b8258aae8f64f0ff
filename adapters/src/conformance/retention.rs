//! Conformance of the archive: exactly the rows the core retention rule allows move, in
//! bounded batches, each once; what is left in the live tables is what must stay.

use super::*;
use campus_core::engine::retention::RetentionWindows;
use campus_core::engine::TaskStatus;
use campus_core::ids::InstitutionId;

/// Succeeded rows move after 300 ms; dead and cancelled ones would wait an hour.
const WINDOWS: RetentionWindows = RetentionWindows {
    finished: Duration::from_millis(300),
    dead: Duration::from_secs(3600),
};

async fn finish(e: &Engine, claimed: &ClaimedTask, outcome: TaskOutcome) {
    let n = e
        .tasks
        .complete("w", &[completion(claimed, outcome)], &quick_policy())
        .await
        .unwrap();
    assert_eq!(n, 1);
}

async fn live_ids(e: &Engine) -> Vec<campus_core::ids::TaskId> {
    let mut ids: Vec<_> = all_tasks(e).await.into_iter().map(|t| t.id).collect();
    ids.sort();
    ids
}

pub async fn the_archive_moves_exactly_the_archivable_rows(e: &Engine) {
    // Event "Done": both its tasks succeed. Event "Half": one of its tasks stays pending.
    e.events
        .append(&[event("Done"), event("Half")])
        .await
        .unwrap();
    e.events
        .dispatch_pending(10, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    // Direct tasks: one succeeds, one dies, one is reprocessed after succeeding (its copy
    // waits), one stays pending.
    for key in ["ok", "dies", "copied", "waits"] {
        e.tasks.enqueue(&[task(Some(key))]).await.unwrap();
    }
    let claimed = e.tasks.claim("w", &types(), 100, LONG_LEASE).await.unwrap();
    assert_eq!(claimed.len(), 8);
    let (mut keep, mut expected_moves) = (Vec::new(), Vec::new());
    // Claim order is oldest first: Done's two tasks, Half's two, then ok, dies, copied, waits.
    for (i, c) in claimed.iter().enumerate() {
        match i {
            3 => keep.push(c.id),
            5 => {
                finish(e, c, failed("no", true)).await;
                keep.push(c.id);
            }
            7 => keep.push(c.id),
            6 => {
                finish(e, c, TaskOutcome::Succeeded).await;
                keep.push(c.id);
            }
            _ => {
                finish(e, c, TaskOutcome::Succeeded).await;
                expected_moves.push(c.id);
            }
        }
    }
    let copy = e
        .tasks
        .reprocess_task(claimed[6].id, None, None)
        .await
        .unwrap();
    keep.push(copy);

    assert_eq!(
        e.archive.archivable(&WINDOWS).await.unwrap(),
        ArchiveCounts::default(),
        "nothing is old enough yet"
    );
    e.harness.advance(Duration::from_millis(400)).await;
    let due = e.archive.archivable(&WINDOWS).await.unwrap();
    assert_eq!(
        due,
        ArchiveCounts {
            events: 1,
            tasks: expected_moves.len() as u64
        },
        "Done and its tasks, Half's finished task, `ok`"
    );

    // Batches of 2 until nothing moves: every archivable row moves once.
    let mut moved = ArchiveCounts::default();
    loop {
        let batch = e.archive.archive_batch(&WINDOWS, 2).await.unwrap();
        assert!(batch.events <= 2 && batch.tasks <= 2, "{batch:?}");
        if batch.total() == 0 {
            break;
        }
        moved += batch;
    }
    assert_eq!(moved, due);
    assert_eq!(e.archive.archived().await.unwrap(), due);
    assert_eq!(
        e.archive.archivable(&WINDOWS).await.unwrap(),
        ArchiveCounts::default()
    );
    keep.sort();
    assert_eq!(live_ids(e).await, keep, "what must stay stays");
    let events = e
        .log
        .list_events(&EventQuery::default(), None)
        .await
        .unwrap();
    let types_left: Vec<_> = events.iter().map(|v| v.event_type.as_str()).collect();
    assert_eq!(types_left, ["Half"]);

    // Links survive: an archived event shows its archived tasks; a live event its tasks
    // wherever they are; archived rows are reprocessed into live copies.
    let done_tasks: Vec<_> = claimed[..2].iter().map(|c| c.id).collect();
    let done_event = e
        .log
        .task(done_tasks[0], None)
        .await
        .unwrap()
        .task
        .event_id
        .unwrap();
    let done = e.log.event(done_event, None).await.unwrap();
    assert_eq!(done.event.event_type, "Done");
    let mut shown: Vec<_> = done.tasks.iter().map(|t| t.id).collect();
    shown.sort();
    assert_eq!(
        shown, done_tasks,
        "an archived event lists its archived tasks"
    );
    let half = e.log.event(events[0].id, None).await.unwrap();
    assert_eq!(half.tasks.len(), 2, "one live, one archived");
    let copy = e
        .tasks
        .reprocess_task(done_tasks[0], None, None)
        .await
        .unwrap();
    assert_eq!(view(e, copy).await.status, TaskStatus::Pending);
    assert!(
        all_tasks(e).await.iter().any(|t| t.id == copy),
        "the copy is live"
    );
    let original = e.log.task(done_tasks[0], None).await.unwrap();
    assert_eq!(original.copies, [copy]);
    let event_copy = e
        .events
        .reprocess_event(done_event, None, None)
        .await
        .unwrap();
    let listed = e
        .log
        .list_events(&EventQuery::default(), None)
        .await
        .unwrap();
    assert!(listed.iter().any(|v| v.id == event_copy));
    assert_eq!(
        e.log.event(done_event, None).await.unwrap().copies,
        [event_copy]
    );

    // Once the dead window passes, the dead task moves too; the waiting copy keeps its
    // original, and pending work stays.
    let later = RetentionWindows {
        dead: Duration::from_millis(300),
        ..WINDOWS
    };
    let dead = e.archive.archive_batch(&later, 100).await.unwrap();
    assert_eq!(
        dead,
        ArchiveCounts {
            events: 0,
            tasks: 1
        }
    );
    let statuses: Vec<TaskStatus> = all_tasks(e).await.into_iter().map(|t| t.status).collect();
    assert!(
        statuses.iter().all(|s| *s != TaskStatus::Dead),
        "{statuses:?}"
    );
}

pub async fn the_purge_deletes_only_what_has_no_use(e: &Engine) {
    use campus_core::events::SealedSecret;
    use campus_core::ids::{InstitutionId, TaskId, TokenId};
    use campus_core::user::{Institution, ResetPasswordToken};
    use campus_core::values::Name;
    let ctx = EventContext::default();
    let mut user = super::outbox::academic(10, 1);
    let mut institution =
        Institution::create(InstitutionId(1), Name::parse("n", "One").unwrap(), &user).unwrap();
    e.users
        .create_institution(&mut institution, &mut user, &ctx)
        .await
        .unwrap();
    let now = e.harness.now().await;
    let token = |id: u128, ttl: Duration| {
        let hash = format!("hash-{id}");
        ResetPasswordToken::issue(TokenId(id), &user, hash, SealedSecret("s".into()), now, ttl)
    };
    for (id, ttl) in [
        (1, Duration::from_millis(1)),
        (2, Duration::from_secs(3600)),
    ] {
        // No cooldown: a token issued "after" a far-future instant would be refused.
        let no_cooldown = now.plus(Duration::from_secs(3600));
        let saved = e
            .users
            .save_reset_token(Some(token(id, ttl)), no_cooldown, &ctx);
        assert!(saved.await.unwrap(), "token {id}");
    }
    let (gone, stays) = (
        now.plus(Duration::from_millis(1)),
        now.plus(Duration::from_secs(3600)),
    );
    // (PostgreSQL also drops expired sessions when it creates one: create the valid first.)
    e.sessions
        .create_session("valid", user.id, "c", stays)
        .await
        .unwrap();
    e.sessions
        .create_session("expired", user.id, "c", gone)
        .await
        .unwrap();
    e.sent
        .record_sent(TaskId(100), "<old@x>", "a@x.org")
        .await
        .unwrap();

    e.harness.advance(Duration::from_millis(400)).await;
    e.sent
        .record_sent(TaskId(200), "<new@x>", "a@x.org")
        .await
        .unwrap();
    let windows = RetentionWindows {
        finished: Duration::from_millis(300),
        dead: Duration::from_millis(300),
    };
    let purged = e.archive.purge(&windows).await.unwrap();
    assert_eq!(
        purged,
        PurgeCounts {
            reset_tokens: 1,
            sessions: 1,
            sent_emails: 1
        }
    );
    assert!(e.users.find_reset_token("hash-1").await.unwrap().is_none());
    assert!(e.users.find_reset_token("hash-2").await.unwrap().is_some());
    let at = e.harness.now().await;
    assert!(e
        .sessions
        .find_session("valid", at)
        .await
        .unwrap()
        .is_some());
    assert!(!e.sent.was_sent(TaskId(100)).await.unwrap());
    assert!(e.sent.was_sent(TaskId(200)).await.unwrap());
    assert_eq!(
        e.archive.purge(&windows).await.unwrap(),
        PurgeCounts::default()
    );
}

pub async fn the_audit_trail_follows_an_entity_into_the_archive(e: &Engine) {
    const STUDENT: u128 = 5;
    let about = |event_type: &str, aggregate_type: &str, id: u128, payload: String| NewEvent {
        aggregate_type: aggregate_type.into(),
        aggregate_id: id,
        institution_id: Some(InstitutionId(1)),
        payload,
        ..event(event_type)
    };
    let student_json = format!(r#"{{"student_id":"{}"}}"#, uuid::Uuid::from_u128(STUDENT));
    e.events
        .append(&[
            about("StudentCreated", "User", STUDENT, "{}".into()),
            about("StudentCreated", "User", 6, "{}".into()),
            about("ExamGradeNoteAdded", "Enrollment", 9, student_json.clone()),
        ])
        .await
        .unwrap();
    // All three are dispatched, their tasks succeed, and they move to the archive.
    e.events
        .dispatch_pending(10, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    for c in e.tasks.claim("w", &types(), 100, LONG_LEASE).await.unwrap() {
        finish(e, &c, TaskOutcome::Succeeded).await;
    }
    e.harness.advance(Duration::from_millis(400)).await;
    let moved = e.archive.archive_batch(&WINDOWS, 100).await.unwrap();
    assert_eq!(moved.events, 3, "{moved:?}");
    // A later grade stays live; a copy of the first event is not a second change.
    e.events
        .append(&[about("ExamGradeNoteAdded", "Enrollment", 9, student_json)])
        .await
        .unwrap();
    let all = e
        .log
        .list_events(
            &EventQuery {
                filter: ListFilter {
                    archived: Archived::All,
                    ..Default::default()
                },
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let first = all.iter().map(|v| v.id).min().unwrap();
    e.events.reprocess_event(first, None, None).await.unwrap();

    let trail = |aggregate_type: &str, id: u128, scope: Option<InstitutionId>| {
        let query = AuditQuery {
            aggregate_type: aggregate_type.into(),
            aggregate_id: id,
            after: None,
            limit: 100,
        };
        async move { e.log.audit_trail(&query, scope).await.unwrap() }
    };
    let student = trail("User", STUDENT, None).await;
    let types: Vec<_> = student.iter().map(|v| v.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["StudentCreated", "ExamGradeNoteAdded", "ExamGradeNoteAdded"],
        "oldest first, archived and live, with the grades that name the student"
    );
    assert!(student.windows(2).all(|w| w[0].id < w[1].id));
    assert!(student.iter().all(|v| v.reprocessed_from.is_none()));
    assert_eq!(trail("Enrollment", 9, None).await.len(), 2);
    assert_eq!(trail("User", 6, None).await.len(), 1);
    assert!(trail("Class", STUDENT, None).await.is_empty());
    assert!(
        trail("User", STUDENT, Some(InstitutionId(2)))
            .await
            .is_empty(),
        "another institution sees nothing"
    );
    let page = e
        .log
        .audit_trail(
            &AuditQuery {
                aggregate_type: "User".into(),
                aggregate_id: STUDENT,
                after: Some(student[0].id),
                limit: 1,
            },
            Some(InstitutionId(1)),
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        page[0].id, student[1].id,
        "keyset pages continue after `after`"
    );
}
