//! The in-memory event store: appends, and the dispatcher's claim-plan-insert round (the
//! same rules as `pg::events`; see `memory` for how atomicity and time work here).

use super::rows::{
    after, error_at, jsonb_text, new_task_row, parse_payload, EventRow, State, TaskRow,
};
use super::MemoryStore;
use async_trait::async_trait;
use campus_core::engine::{
    idempotency_key, EventEnvelope, EventStatus, PlannedTask, RetryDecision, RetryPolicy,
};
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::*;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Clears the in-flight marks of a dispatch round however it ends (a planner may panic).
struct InFlight<'a> {
    store: &'a MemoryStore,
    ids: Vec<u128>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut s = self.store.lock();
        for id in &self.ids {
            s.dispatching.remove(id);
        }
    }
}

/// What planning decided for one event.
type Plan = Result<Vec<(PlannedTask<Payload>, Value, u32)>, String>;

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, events: &[NewEvent]) -> Result<Vec<EventId>, PortError> {
        let payloads = events
            .iter()
            .map(|e| parse_payload(&e.payload, "event"))
            .collect::<Result<Vec<_>, _>>()?;
        crate::telemetry::events_recorded(events.iter().map(|e| e.event_type.as_str()));
        let now = self.now();
        let mut s = self.lock();
        let mut ids = Vec::with_capacity(events.len());
        for (e, payload) in events.iter().zip(payloads) {
            let id = EventId(s.new_id(now));
            s.events.insert(
                id.0,
                EventRow {
                    id,
                    event_type: e.event_type.clone(),
                    aggregate_type: e.aggregate_type.clone(),
                    aggregate_id: e.aggregate_id,
                    institution_id: e.institution_id,
                    payload,
                    correlation_id: e.correlation_id.clone(),
                    reprocess_request_id: None,
                    actor_id: None,
                    status: EventStatus::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    occurred_at: now,
                    dispatched_at: None,
                    reprocessed_from: None,
                    errors: Vec::new(),
                },
            );
            ids.push(id);
        }
        drop(s);
        self.wake();
        Ok(ids)
    }

    async fn dispatch_pending(
        &self,
        limit: u32,
        planner: Arc<dyn EventPlanner>,
        retry: &RetryPolicy,
    ) -> Result<DispatchReport, PortError> {
        let claimed = self.claim_events(limit);
        let _in_flight = InFlight {
            store: self,
            ids: claimed.iter().map(|(e, _)| e.id.0).collect(),
        };
        let plans: Vec<(EventEnvelope<Payload>, u32, Plan)> = claimed
            .into_iter()
            .map(|(e, attempts)| {
                let plan = plan_event(planner.as_ref(), &e);
                (e, attempts, plan)
            })
            .collect();
        let now = self.now();
        let mut report = DispatchReport {
            events: plans.len(),
            ..Default::default()
        };
        let mut s = self.lock();
        for (envelope, attempts, plan) in plans {
            match plan {
                Ok(tasks) => {
                    for (planned, payload, max) in tasks {
                        report.tasks += usize::from(insert_planned(
                            &mut s, &envelope, planned, payload, max, now,
                        ));
                    }
                    if let Some(e) = s.events.get_mut(&envelope.id.0) {
                        e.status = EventStatus::Dispatched;
                        e.dispatched_at = Some(now);
                        e.attempts += 1;
                    }
                }
                Err(message) => {
                    report.failed += 1;
                    let attempt = attempts + 1;
                    let correlation_id = envelope.correlation_id.as_deref().unwrap_or("");
                    tracing::warn!(event_id = envelope.id.0, attempt, correlation_id, %message, "event dispatch failed");
                    let (status, delay) = match retry.decide(attempt, false, rand::random()) {
                        RetryDecision::RetryAfter(d) => (EventStatus::Retrying, d),
                        RetryDecision::Dead => (EventStatus::Dead, Duration::ZERO),
                    };
                    if let Some(e) = s.events.get_mut(&envelope.id.0) {
                        e.status = status;
                        e.attempts = attempt;
                        e.next_attempt_at = after(now, delay);
                        e.errors.push(AttemptError {
                            at: error_at(now),
                            attempt,
                            message,
                        });
                    }
                }
            }
        }
        drop(s);
        if report.tasks > 0 {
            self.wake();
        }
        Ok(report)
    }

    async fn reprocess_event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<EventId, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let original = s
            .event_anywhere(id.0)
            .filter(|e| scope.is_none() || e.institution_id == scope)
            .ok_or(PortError::NotFound("event"))?
            .clone();
        if !original.status.can_reprocess() {
            return Err(PortError::Conflict(format!(
                "the event is {}; it will be dispatched without help (only dispatched or dead \
                 events can be reprocessed)",
                original.status.as_str()
            )));
        }
        let waiting = s.events.values().any(|e| {
            e.reprocessed_from == Some(id)
                && matches!(e.status, EventStatus::Pending | EventStatus::Retrying)
        });
        if waiting {
            return Err(PortError::Conflict(
                "a copy of this event is already waiting for dispatch".into(),
            ));
        }
        let copy = EventId(s.new_id(now));
        s.events.insert(
            copy.0,
            EventRow {
                id: copy,
                // The original's correlation id stays; the operator's request id goes beside it.
                reprocess_request_id: request_id,
                status: EventStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                dispatched_at: None,
                reprocessed_from: Some(id),
                errors: Vec::new(),
                ..original
            },
        );
        drop(s);
        self.wake();
        Ok(copy)
    }
}

impl MemoryStore {
    /// Takes up to `limit` due events not being planned by another round, oldest due first,
    /// and marks them in flight. Returns each with its attempts so far.
    fn claim_events(&self, limit: u32) -> Vec<(EventEnvelope<Payload>, u32)> {
        let now = self.now();
        let mut s = self.lock();
        let mut due: Vec<&EventRow> = s
            .events
            .values()
            .filter(|e| {
                matches!(e.status, EventStatus::Pending | EventStatus::Retrying)
                    && e.next_attempt_at <= now
                    && !s.dispatching.contains(&e.id.0)
            })
            .collect();
        due.sort_by_key(|e| (e.next_attempt_at, e.id));
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let claimed: Vec<_> = due
            .into_iter()
            .map(|e| {
                let envelope = EventEnvelope {
                    id: e.id,
                    event_type: e.event_type.clone(),
                    aggregate_type: e.aggregate_type.clone(),
                    aggregate_id: e.aggregate_id,
                    institution_id: e.institution_id,
                    payload: jsonb_text(&e.payload),
                    occurred_at: e.occurred_at,
                    correlation_id: e.correlation_id.clone(),
                    reprocessed_from: e.reprocessed_from,
                };
                (envelope, e.attempts)
            })
            .collect();
        for (e, _) in &claimed {
            s.dispatching.insert(e.id.0);
        }
        claimed
    }
}

/// Plans one event's tasks and parses their payloads; any failure fails only this event.
fn plan_event(planner: &dyn EventPlanner, event: &EventEnvelope<Payload>) -> Plan {
    let planned = planner
        .plan(event)
        .map_err(|f| format!("handler {}: {}", f.handler, f.message))?;
    planned
        .into_iter()
        .map(|t| match serde_json::from_str(&t.payload) {
            Ok(v) => {
                let max = t
                    .max_attempts
                    .unwrap_or_else(|| planner.max_attempts(&t.task_type));
                Ok((t, v, max.max(1)))
            }
            Err(e) => Err(format!(
                "handler {}: task payload is not JSON: {e}",
                t.handler
            )),
        })
        .collect()
}

/// Inserts a planned task unless its idempotency key exists; returns whether it did.
fn insert_planned(
    s: &mut State,
    event: &EventEnvelope<Payload>,
    planned: PlannedTask<Payload>,
    payload: Value,
    max_attempts: u32,
    now: Timestamp,
) -> bool {
    let key = idempotency_key(event.id, &planned.handler);
    if s.task_keys.contains_key(&key) {
        return false;
    }
    let id = TaskId(s.new_id(now));
    s.task_keys.insert(key, id.0);
    // The tasks of a reprocessed event inherit the operator's request id.
    let reprocess_request_id = s
        .events
        .get(&event.id.0)
        .and_then(|e| e.reprocess_request_id.clone());
    s.tasks.insert(
        id.0,
        new_task_row(id, planned.task_type, payload, now, |t| TaskRow {
            handler: Some(planned.handler),
            institution_id: event.institution_id,
            event_id: Some(event.id),
            correlation_id: event.correlation_id.clone(),
            reprocess_request_id,
            max_attempts,
            priority: planned.priority,
            ordering_key: planned.ordering_key,
            ..t
        }),
    );
    true
}
