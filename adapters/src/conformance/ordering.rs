//! Conformance of tasks kept in order (`PlannedTask::ordering_key`): one aggregate's tasks of
//! an ordered route run one at a time in their events' order, across retries, and an earlier
//! event still waiting for dispatch holds the later ones back.

use super::*;
use campus_core::engine::{ordering_key, EventStatus};

/// Plans one `t_ordered` task per event, kept in order per aggregate; fails to plan `Poison`.
struct InOrder;

impl EventPlanner for InOrder {
    fn plan(
        &self,
        event: &EventEnvelope<Payload>,
    ) -> Result<Vec<PlannedTask<Payload>>, PlanFailure> {
        if event.event_type == "Poison" {
            return Err(PlanFailure {
                handler: "o".into(),
                message: "cannot plan".into(),
            });
        }
        Ok(vec![PlannedTask {
            task_type: "t_ordered".into(),
            handler: "o".into(),
            payload: event.payload.clone(),
            max_attempts: None,
            priority: Default::default(),
            ordering_key: Some(ordering_key("o", &event.aggregate_type, event.aggregate_id)),
        }])
    }
    fn max_attempts(&self, _: &str) -> u32 {
        3
    }
}

/// Appends an event of `event_type` on aggregate `aggregate` (one statement each: in order).
async fn append(e: &Engine, event_type: &str, aggregate: u128) -> campus_core::ids::EventId {
    let ev = NewEvent {
        aggregate_id: aggregate,
        ..event(event_type)
    };
    e.events.append(&[ev]).await.unwrap()[0]
}

/// Claims every claimable `t_ordered` task; returns (event, task) pairs.
async fn claim_ordered(e: &Engine) -> Vec<(campus_core::ids::EventId, ClaimedTask)> {
    let mut got: Vec<_> = e
        .tasks
        .claim("w", &ClaimTypes::of(["t_ordered"]), 10, LONG_LEASE)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.event_id.expect("planned from an event"), t))
        .collect();
    got.sort_by_key(|(event, _)| event.0);
    got
}

pub async fn an_ordered_route_runs_one_aggregates_tasks_one_at_a_time(e: &Engine) {
    let first = append(e, "Happened", 1).await;
    let second = append(e, "Happened", 1).await;
    let other = append(e, "Happened", 2).await;
    let policy = measurable_policy();
    e.events
        .dispatch_pending(10, Arc::new(InOrder), &policy)
        .await
        .unwrap();
    let claimed = claim_ordered(e).await;
    let events: Vec<_> = claimed.iter().map(|(ev, _)| *ev).collect();
    assert_eq!(events, [first, other], "the second of aggregate 1 waits");
    // The first fails and retries later: the second still waits behind it.
    let failing = completion(&claimed[0].1, failed("broker down", false));
    e.tasks.complete("w", &[failing], &policy).await.unwrap();
    assert!(claim_ordered(e).await.is_empty(), "held back by the retry");
    let retried = eventually(
        e,
        "the first's retry",
        Duration::from_millis(20),
        || async { claim_ordered(e).await.pop() },
    )
    .await;
    assert_eq!((retried.0, retried.1.attempt), (first, 2));
    let ok = completion(&retried.1, TaskOutcome::Succeeded);
    e.tasks.complete("w", &[ok], &policy).await.unwrap();
    let next: Vec<_> = claim_ordered(e)
        .await
        .into_iter()
        .map(|(ev, _)| ev)
        .collect();
    assert_eq!(next, [second], "then the second");
}

pub async fn an_event_waiting_for_dispatch_holds_back_later_ones(e: &Engine) {
    let poison = append(e, "Poison", 5).await;
    append(e, "Happened", 5).await;
    let policy = quick_policy();
    let r = e
        .events
        .dispatch_pending(10, Arc::new(InOrder), &policy)
        .await
        .unwrap();
    assert_eq!((r.events, r.tasks, r.failed), (2, 1, 1));
    assert!(
        claim_ordered(e).await.is_empty(),
        "the earlier event may still plan a task"
    );
    eventually(
        e,
        "the poison event to die",
        Duration::from_millis(2),
        || async {
            e.events
                .dispatch_pending(10, Arc::new(InOrder), &policy)
                .await
                .unwrap();
            let view = e.log.event(poison, None).await.unwrap().event;
            (view.status == EventStatus::Dead).then_some(())
        },
    )
    .await;
    assert_eq!(
        claim_ordered(e).await.len(),
        1,
        "a dead event no longer holds it"
    );
}
