//! Conformance of reprocessing (copies with lineage, never an edit, and its conflicts) and of
//! scoping by institution.

use super::*;
use campus_core::engine::TaskStatus;
use campus_core::ids::{InstitutionId, TaskId};

async fn claim_all(e: &Engine, worker: &str) -> Vec<ClaimedTask> {
    e.tasks
        .claim(worker, &types(), 100, LONG_LEASE)
        .await
        .expect("claim")
}

/// Claims every due task and fails each permanently.
async fn kill_all(e: &Engine) -> Vec<ClaimedTask> {
    let claimed = claim_all(e, "w").await;
    let dead: Vec<_> = claimed
        .iter()
        .map(|c| completion(c, failed("no", true)))
        .collect();
    let n = e.tasks.complete("w", &dead, &quick_policy()).await.unwrap();
    assert_eq!(n, claimed.len());
    claimed
}

pub async fn reprocessing_a_task_copies_and_never_edits(e: &Engine) {
    let mut original = task(Some("a"));
    original.correlation_id = Some("corr-a".into());
    e.tasks.enqueue(&[original]).await.unwrap();
    let claimed = claim_all(e, "w").await.remove(0);
    let running = e.tasks.reprocess_task(claimed.id, None, None).await;
    assert!(
        matches!(running, Err(PortError::Conflict(ref m)) if m.contains("running")),
        "{running:?}"
    );
    let dead = completion(&claimed, failed("no", true));
    e.tasks
        .complete("w", &[dead], &quick_policy())
        .await
        .unwrap();
    let before = view(e, claimed.id).await;

    let copy = e
        .tasks
        .reprocess_task(claimed.id, None, Some("op-1".into()))
        .await
        .unwrap();
    let c = view(e, copy).await;
    assert_eq!(
        (
            c.reprocessed_from,
            c.lineage_id,
            c.status.as_str(),
            c.attempt
        ),
        (Some(claimed.id), claimed.lineage_id, "pending", 0)
    );
    assert_eq!(
        (c.task_type.as_str(), c.payload.as_str(), c.max_attempts),
        ("t", "{}", 2)
    );
    // The copy keeps the original's correlation id; the operator's request id goes beside it.
    assert_eq!(
        (
            c.correlation_id.as_deref(),
            c.reprocess_request_id.as_deref()
        ),
        (Some("corr-a"), Some("op-1"))
    );
    assert!(c.errors.is_empty());
    assert_eq!(
        view(e, claimed.id).await,
        before,
        "the original never changes"
    );
    assert_eq!(
        e.log.task(claimed.id, None).await.unwrap().copies,
        vec![copy]
    );
    let waiting = e.tasks.reprocess_task(claimed.id, None, None).await;
    assert!(
        matches!(waiting, Err(PortError::Conflict(_))),
        "a copy is waiting"
    );

    // The copy runs as its own task with its lineage, under the original's correlation id.
    let run = claim_all(e, "w").await.remove(0);
    assert_eq!(
        (run.id, run.lineage_id, run.attempt),
        (copy, claimed.lineage_id, 1)
    );
    assert_eq!(run.correlation_id.as_deref(), Some("corr-a"));
    let ok = completion(&run, TaskOutcome::Succeeded);
    e.tasks.complete("w", &[ok], &quick_policy()).await.unwrap();
    // A copy of the copy keeps the first task's lineage and correlation id; the request id
    // is only ever the one of the request that made it.
    let second = e.tasks.reprocess_task(copy, None, None).await.unwrap();
    let s = view(e, second).await;
    assert_eq!(
        (s.lineage_id, s.reprocessed_from),
        (claimed.lineage_id, Some(copy))
    );
    assert_eq!(
        (
            s.correlation_id.as_deref(),
            s.reprocess_request_id.as_deref()
        ),
        (Some("corr-a"), None)
    );
    assert_eq!(view(e, claimed.id).await.reprocess_request_id, None);
    // The lists' correlation filter finds a copy by either id.
    let by = |id: &'static str| async move {
        let q = TaskQuery {
            filter: ListFilter {
                correlation_id: Some(id.into()),
                ..Default::default()
            },
            limit: 50,
            ..Default::default()
        };
        let found = e.log.list_tasks(&q, None).await.unwrap();
        found.into_iter().map(|t| t.id).collect::<Vec<_>>()
    };
    assert_eq!(by("op-1").await, vec![copy]);
    assert_eq!(by("corr-a").await, vec![second, copy, claimed.id]);
    assert!(by("op-2").await.is_empty());
    assert!(matches!(
        e.tasks.reprocess_task(TaskId(1), None, None).await,
        Err(PortError::NotFound(_))
    ));
}

pub async fn bulk_reprocessing_skips_waiting_and_fixed_tasks(e: &Engine) {
    e.tasks
        .enqueue(&[task(Some("a")), task(Some("b"))])
        .await
        .unwrap();
    let dead = kill_all(e).await;
    let a = dead[0].id;
    let copy = e.tasks.reprocess_task(a, None, None).await.unwrap();
    let filter = TaskFilter {
        task_type: Some("t".into()),
        ..Default::default()
    };
    assert_eq!(
        e.tasks.reprocess_tasks(&filter, 1000, None).await.unwrap(),
        1,
        "only b: a has a copy waiting"
    );
    assert_eq!(
        e.tasks.reprocess_tasks(&filter, 1000, None).await.unwrap(),
        0
    );

    // a's copy succeeds, b's fails and waits for a retry: a bulk reprocess of the dead tasks
    // copies neither original (one is fixed, the other has a copy waiting).
    let copies = claim_all(e, "w").await;
    assert_eq!(copies.len(), 2);
    let outcomes: Vec<_> = copies
        .iter()
        .map(|c| {
            let outcome = if c.id == copy {
                TaskOutcome::Succeeded
            } else {
                failed("again", false)
            };
            completion(c, outcome)
        })
        .collect();
    e.tasks
        .complete("w", &outcomes, &quick_policy())
        .await
        .unwrap();
    let count = all_tasks(e).await.len();
    assert_eq!(
        e.tasks.reprocess_tasks(&filter, 1000, None).await.unwrap(),
        0,
        "a dead task whose copy succeeded is not copied again"
    );
    assert_eq!(all_tasks(e).await.len(), count);
    // Asking for succeeded tasks still copies them (a deliberate re-run).
    let succeeded = TaskFilter {
        status: Some(TaskStatus::Succeeded),
        ..filter.clone()
    };
    assert_eq!(
        e.tasks
            .reprocess_tasks(&succeeded, 1000, None)
            .await
            .unwrap(),
        1
    );
    let newest = all_tasks(e).await.remove(0);
    assert_eq!(
        (newest.reprocessed_from, newest.lineage_id),
        (Some(copy), a),
        "a copy of the copy, in a's lineage"
    );
    let running = TaskFilter {
        status: Some(TaskStatus::Running),
        ..Default::default()
    };
    assert!(matches!(
        e.tasks.reprocess_tasks(&running, 1000, None).await,
        Err(PortError::Conflict(_))
    ));
}

pub async fn scoping_hides_other_institutions(e: &Engine) {
    let (ours, theirs) = (InstitutionId(0xA), InstitutionId(0xB));
    let mut ev = event("Happened");
    ev.institution_id = Some(ours);
    let event_id = e.events.append(&[ev]).await.unwrap()[0];
    e.events
        .dispatch_pending(10, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    let mut other = task(None);
    other.institution_id = Some(theirs);
    e.tasks.enqueue(&[other]).await.unwrap();
    let dead = kill_all(e).await;
    let mine: Vec<TaskId> = dead
        .iter()
        .filter(|t| t.institution_id == Some(ours))
        .map(|t| t.id)
        .collect();
    assert_eq!(mine.len(), 2, "the event's tasks carry its institution");

    let hidden = |r: Result<_, PortError>| matches!(r, Err(PortError::NotFound(_)));
    assert!(hidden(e.log.task(mine[0], Some(theirs)).await.map(|_| ())));
    assert!(hidden(
        e.log.event(event_id, Some(theirs)).await.map(|_| ())
    ));
    assert!(hidden(
        e.tasks
            .reprocess_task(mine[0], Some(theirs), None)
            .await
            .map(|_| ())
    ));
    assert!(hidden(
        e.events
            .reprocess_event(event_id, Some(theirs), None)
            .await
            .map(|_| ())
    ));
    assert!(e.log.task(mine[0], Some(ours)).await.is_ok());

    let listed = |scope, institution_id| async move {
        let q = TaskQuery {
            filter: ListFilter {
                institution_id,
                ..Default::default()
            },
            limit: 50,
            ..Default::default()
        };
        let mut ids: Vec<TaskId> = e
            .log
            .list_tasks(&q, scope)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        ids.sort();
        ids
    };
    let mut expected = mine.clone();
    expected.sort();
    assert_eq!(listed(Some(ours), None).await, expected);
    assert!(
        listed(Some(theirs), Some(ours)).await.is_empty(),
        "asking past the scope"
    );
    assert_eq!(listed(None, None).await.len(), 3);

    // A bulk reprocess for one institution copies only its tasks; a scoped one works.
    let filter = TaskFilter {
        institution_id: Some(ours),
        ..Default::default()
    };
    assert_eq!(
        e.tasks.reprocess_tasks(&filter, 100, None).await.unwrap(),
        2
    );
    assert_eq!(listed(Some(theirs), None).await.len(), 1);
    assert!(e
        .events
        .reprocess_event(event_id, Some(ours), None)
        .await
        .is_ok());
}
