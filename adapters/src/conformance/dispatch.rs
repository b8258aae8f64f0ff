//! Conformance of the event store: fan-out (one task per event and handler, whatever
//! happens twice), poison events, dispatch order, and event copies.

use super::*;
use campus_core::engine::{idempotency_key, EventStatus};
use campus_core::ids::EventId;

/// Plans handler `h1` twice for every event (a registry mistake the unique key absorbs).
struct SameHandlerTwice;

impl EventPlanner for SameHandlerTwice {
    fn plan(
        &self,
        event: &EventEnvelope<Payload>,
    ) -> Result<Vec<PlannedTask<Payload>>, PlanFailure> {
        let t = PlannedTask {
            task_type: "t_h1".into(),
            handler: "h1".into(),
            payload: event.payload.clone(),
            max_attempts: Some(7),
            priority: Default::default(),
            ordering_key: None,
        };
        Ok(vec![t.clone(), t])
    }
    fn max_attempts(&self, _: &str) -> u32 {
        3
    }
}

async fn tasks_of(e: &Engine, id: EventId) -> Vec<TaskView> {
    e.log.event(id, None).await.expect("event").tasks
}

pub async fn fan_out_creates_one_task_per_event_and_handler(e: &Engine) {
    let ids = e
        .events
        .append(&[event("Happened"), event("Happened")])
        .await
        .unwrap();
    let r = e
        .events
        .dispatch_pending(100, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    assert_eq!((r.events, r.tasks, r.failed), (2, 4, 0));
    for id in &ids {
        let detail = e.log.event(*id, None).await.unwrap();
        assert_eq!(
            (detail.event.status.as_str(), detail.event.attempts),
            ("dispatched", 1)
        );
        assert!(detail.event.dispatched_at.is_some());
        let mut planned: Vec<_> = detail
            .tasks
            .iter()
            .map(|t| {
                let payload: serde_json::Value = serde_json::from_str(&t.payload).unwrap();
                (
                    t.handler.clone().unwrap_or_default(),
                    t.task_type.clone(),
                    t.status.as_str().to_string(),
                    t.max_attempts,
                    t.correlation_id.clone(),
                    t.event_id,
                    payload,
                )
            })
            .collect();
        planned.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = |h: &str| {
            (
                h.to_string(),
                format!("t_{h}"),
                "pending".to_string(),
                3,
                Some("corr-1".to_string()),
                Some(*id),
                serde_json::json!({"n": 1}),
            )
        };
        assert_eq!(planned, [expected("h1"), expected("h2")]);
    }
    // A dispatched event is not dispatched again.
    let again = e
        .events
        .dispatch_pending(100, Arc::new(TwoHandlers), &quick_policy())
        .await
        .unwrap();
    assert_eq!((again.events, again.tasks), (0, 0));
    // The fan-out's key is the queue's unique key: the same task cannot be enqueued again.
    let mut same = task(Some(&idempotency_key(ids[0], "h1")));
    same.task_type = "t_h1".into();
    assert_eq!(e.tasks.enqueue(&[same]).await.unwrap(), 0);
    assert_eq!(all_tasks(e).await.len(), 4);

    // A planner naming one handler twice for an event still makes one task.
    let id = e.events.append(&[event("Happened")]).await.unwrap()[0];
    let r = e
        .events
        .dispatch_pending(100, Arc::new(SameHandlerTwice), &quick_policy())
        .await
        .unwrap();
    assert_eq!((r.events, r.tasks), (1, 1));
    let tasks = tasks_of(e, id).await;
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].max_attempts, 7, "the plan's own maximum wins");
}

pub async fn a_failed_plan_fails_only_its_event_then_retries_and_dies(e: &Engine) {
    let p = measurable_policy();
    let ids = e
        .events
        .append(&[event("Happened"), event("Poison"), event("Happened")])
        .await
        .unwrap();
    let poison = ids[1];
    let r = e
        .events
        .dispatch_pending(100, Arc::new(TwoHandlers), &p)
        .await
        .unwrap();
    assert_eq!((r.events, r.tasks, r.failed), (3, 4, 1));
    let mut seen = Vec::new();
    loop {
        let view = e.log.event(poison, None).await.unwrap().event;
        seen.push((view.status.as_str(), view.attempts));
        if view.status == EventStatus::Dead || seen.len() > 3 {
            break;
        }
        let attempts = view.attempts;
        eventually(
            e,
            "the poison event's next attempt",
            Duration::from_millis(2),
            || async {
                e.events
                    .dispatch_pending(100, Arc::new(TwoHandlers), &p)
                    .await
                    .unwrap();
                let now = e.log.event(poison, None).await.unwrap().event.attempts;
                (now > attempts).then_some(())
            },
        )
        .await;
    }
    assert_eq!(
        seen,
        [("retrying", 1), ("retrying", 2), ("dead", 3)],
        "one attempt per dispatch, dead after the third"
    );
    let errors = e.log.event(poison, None).await.unwrap().event.errors;
    let numbered: Vec<(u32, bool)> = errors
        .iter()
        .map(|x| {
            let named = x.message.contains("h1") && x.message.contains("cannot plan");
            (x.attempt, named)
        })
        .collect();
    assert_eq!(numbered, [(1, true), (2, true), (3, true)], "{errors:?}");
    // No attempt came before the policy's delay (and, on an exact clock, none much after).
    for attempt in 1..3 {
        let i = attempt as usize - 1;
        let gap = at_ms(&errors[i + 1]) - at_ms(&errors[i]);
        let raw = p.raw_delay(attempt).as_secs_f64() * 1000.0;
        assert!(
            gap >= raw / 2.0 - 1.0,
            "attempt {} ran {gap} ms after attempt {attempt}, before its delay",
            attempt + 1
        );
        if e.harness.exact_time() {
            assert!(
                gap <= raw + 2.0,
                "attempt {} came {gap} ms late",
                attempt + 1
            );
        }
    }
    assert!(
        tasks_of(e, poison).await.is_empty(),
        "the poison event has no task"
    );
    for id in [ids[0], ids[2]] {
        assert_eq!(tasks_of(e, id).await.len(), 2, "its batch was planned");
    }
}

pub async fn events_are_dispatched_oldest_first(e: &Engine) {
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.extend(e.events.append(&[event("Happened")]).await.unwrap());
    }
    ids.extend(
        e.events
            .append(&[event("Happened"), event("Happened")])
            .await
            .unwrap(),
    );
    for (i, id) in ids.iter().enumerate() {
        let r = e
            .events
            .dispatch_pending(1, Arc::new(TwoHandlers), &quick_policy())
            .await
            .unwrap();
        assert_eq!(r.events, 1);
        assert_eq!(tasks_of(e, *id).await.len(), 2, "event {i} went {i}th");
        for later in &ids[i + 1..] {
            assert!(
                tasks_of(e, *later).await.is_empty(),
                "a younger event went first"
            );
        }
    }
}

pub async fn reprocessing_an_event_fans_out_again(e: &Engine) {
    let planner = || Arc::new(TwoHandlers);
    let id = e.events.append(&[event("Happened")]).await.unwrap()[0];
    let refused = e.events.reprocess_event(id, None, None).await;
    assert!(
        matches!(refused, Err(PortError::Conflict(_))),
        "still pending: {refused:?}"
    );
    e.events
        .dispatch_pending(10, planner(), &quick_policy())
        .await
        .unwrap();
    let before = e.log.event(id, None).await.unwrap();
    let copy = e
        .events
        .reprocess_event(id, None, Some("op-1".into()))
        .await
        .unwrap();
    let waiting = e.events.reprocess_event(id, None, None).await;
    assert!(
        matches!(waiting, Err(PortError::Conflict(_))),
        "a copy is waiting: {waiting:?}"
    );
    let r = e
        .events
        .dispatch_pending(10, planner(), &quick_policy())
        .await
        .unwrap();
    assert_eq!(
        (r.events, r.tasks),
        (1, 2),
        "the copy creates its own tasks"
    );

    let copied = e.log.event(copy, None).await.unwrap();
    assert_eq!(copied.event.reprocessed_from, Some(id));
    // The copy and its tasks keep the original's correlation id and carry the operator's
    // request id beside it; the original's tasks have none.
    assert_eq!(
        (
            copied.event.correlation_id.as_deref(),
            copied.event.reprocess_request_id.as_deref()
        ),
        (Some("corr-1"), Some("op-1"))
    );
    for t in &copied.tasks {
        assert_eq!(
            (
                t.correlation_id.as_deref(),
                t.reprocess_request_id.as_deref()
            ),
            (Some("corr-1"), Some("op-1"))
        );
    }
    assert!(
        before
            .tasks
            .iter()
            .all(|t| t.reprocess_request_id.is_none()
                && t.correlation_id.as_deref() == Some("corr-1"))
    );
    assert_eq!(before.event.reprocess_request_id, None);
    let by = |id: &'static str| async move {
        let q = EventQuery {
            filter: ListFilter {
                correlation_id: Some(id.into()),
                ..Default::default()
            },
            limit: 50,
            ..Default::default()
        };
        let found = e.log.list_events(&q, None).await.unwrap();
        found.into_iter().map(|v| v.id).collect::<Vec<_>>()
    };
    assert_eq!(by("op-1").await, vec![copy], "found by the request id");
    assert_eq!(
        by("corr-1").await,
        vec![copy, id],
        "found by the correlation id"
    );
    assert_eq!(
        (copied.event.event_type.as_str(), copied.event.aggregate_id),
        ("Happened", 1)
    );
    assert_eq!(copied.event.payload, before.event.payload);
    assert_eq!(copied.tasks.len(), 2);
    let after = e.log.event(id, None).await.unwrap();
    assert_eq!(after.copies, vec![copy]);
    assert_eq!(
        (after.event, after.tasks),
        (before.event, before.tasks),
        "the original never changes"
    );
    assert_eq!(all_tasks(e).await.len(), 4);
    // Once the copy is dispatched, the original may be copied again.
    assert!(e.events.reprocess_event(id, None, None).await.is_ok());
    assert!(matches!(
        e.events.reprocess_event(EventId(1), None, None).await,
        Err(PortError::NotFound(_))
    ));
}
