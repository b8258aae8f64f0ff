//! The event store: appends, and the dispatcher's claim-plan-insert round.

use super::outbox::{insert_rows, EventRow};
use super::reprocess::{lock_original, Reprocessable};
use super::tasks::take;
use super::{db_err, Channel, PgStore};
use async_trait::async_trait;
use campus_core::engine::{
    idempotency_key, EventEnvelope, EventStatus, PlannedTask, RetryDecision, RetryPolicy,
};
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::{
    ClaimOnInsert, ClaimedTask, DispatchReport, EventPlanner, EventStore, NewEvent, PortError,
};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;

#[async_trait]
impl EventStore for PgStore {
    async fn append(&self, events: &[NewEvent]) -> Result<Vec<EventId>, PortError> {
        let rows = events
            .iter()
            .map(EventRow::from_new)
            .collect::<Result<Vec<_>, _>>()?;
        let ids = rows.iter().map(|r| EventId(r.id.as_u128())).collect();
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        insert_rows(&mut tx, rows).await?;
        tx.commit().await.map_err(db_err)?;
        self.notifier.poke(Channel::Events);
        Ok(ids)
    }

    async fn dispatch_pending(
        &self,
        limit: u32,
        planner: Arc<dyn EventPlanner>,
        retry: &RetryPolicy,
    ) -> Result<DispatchReport, PortError> {
        Ok(self.dispatch(limit, planner, retry, None).await?.0)
    }

    async fn dispatch_and_claim(
        &self,
        limit: u32,
        planner: Arc<dyn EventPlanner>,
        retry: &RetryPolicy,
        claim: &ClaimOnInsert,
    ) -> Result<(DispatchReport, Vec<ClaimedTask>), PortError> {
        self.dispatch(limit, planner, retry, Some(claim)).await
    }

    async fn reprocess_event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<EventId, PortError> {
        let original = uuid::Uuid::from_u128(id.0);
        let tx = self.pool.begin().await.map_err(db_err)?;
        let mut tx = lock_original(tx, &EVENT, original, scope).await?;
        let copy = uuid::Uuid::now_v7();
        // The copy keeps the original's correlation id; the operator's request id goes beside it.
        sqlx::query(
            "INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, institution_id, payload,
                                        correlation_id, reprocess_request_id, actor_id, occurred_at, reprocessed_from)
             SELECT $2, event_type, aggregate_type, aggregate_id, institution_id, payload,
                    correlation_id, $3, actor_id, occurred_at, id
             FROM (SELECT id, event_type, aggregate_type, aggregate_id, institution_id, payload,
                          correlation_id, actor_id, occurred_at FROM domain_events WHERE id = $1
                   UNION ALL
                   SELECT id, event_type, aggregate_type, aggregate_id, institution_id, payload,
                          correlation_id, actor_id, occurred_at FROM domain_events_processed WHERE id = $1) o",
        )
        .bind(original)
        .bind(copy)
        .bind(request_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.notifier.poke(Channel::Events);
        Ok(EventId(copy.as_u128()))
    }
}

impl PgStore {
    /// One dispatch round: claims due events, plans their tasks, inserts them (those `claim`
    /// lets it take already claimed) and marks the events dispatched, in one transaction.
    async fn dispatch(
        &self,
        limit: u32,
        planner: Arc<dyn EventPlanner>,
        retry: &RetryPolicy,
        claim: Option<&ClaimOnInsert>,
    ) -> Result<(DispatchReport, Vec<ClaimedTask>), PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let rows = sqlx::query(
            "SELECT id, event_type, aggregate_type, aggregate_id, institution_id, payload::text AS payload,
                    occurred_at, correlation_id, reprocess_request_id, reprocessed_from, attempts
             FROM domain_events
             WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id
             LIMIT $1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut report = DispatchReport {
            events: rows.len(),
            ..Default::default()
        };
        if rows.is_empty() {
            return Ok((report, Vec::new()));
        }

        let mut tasks = TaskColumns::default();
        let mut dispatched = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: uuid::Uuid = row.get("id");
            let envelope = EventEnvelope {
                id: EventId(id.as_u128()),
                event_type: row.get("event_type"),
                aggregate_type: row.get("aggregate_type"),
                aggregate_id: row.get::<uuid::Uuid, _>("aggregate_id").as_u128(),
                institution_id: row
                    .get::<Option<uuid::Uuid>, _>("institution_id")
                    .map(|i| InstitutionId(i.as_u128())),
                payload: row.get::<String, _>("payload"),
                occurred_at: Timestamp(
                    row.get::<DateTime<Utc>, _>("occurred_at")
                        .timestamp_millis(),
                ),
                correlation_id: row.get("correlation_id"),
                reprocessed_from: row
                    .get::<Option<uuid::Uuid>, _>("reprocessed_from")
                    .map(|i| EventId(i.as_u128())),
            };
            match plan_event(planner.as_ref(), &envelope) {
                Ok(planned) => {
                    for (t, payload) in planned {
                        let max = t
                            .max_attempts
                            .unwrap_or_else(|| planner.max_attempts(&t.task_type));
                        let request = row.get("reprocess_request_id");
                        tasks.push(&envelope, request, t, payload, max);
                    }
                    dispatched.push(id);
                }
                Err(message) => {
                    report.failed += 1;
                    let attempt = u32::try_from(row.get::<i32, _>("attempts")).unwrap_or(0) + 1;
                    let correlation_id = envelope.correlation_id.as_deref().unwrap_or("");
                    tracing::warn!(event_id = %id, attempt, correlation_id, %message, "event dispatch failed");
                    let (status, delay) = match retry.decide(attempt, false, rand::random()) {
                        RetryDecision::RetryAfter(d) => (EventStatus::Retrying, d),
                        RetryDecision::Dead => (EventStatus::Dead, std::time::Duration::ZERO),
                    };
                    sqlx::query(
                        "UPDATE domain_events SET status = $2, attempts = $3,
                            next_attempt_at = now() + $4 * interval '1 millisecond',
                            errors = errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', $3, 'message', $5::text))
                         WHERE id = $1",
                    )
                    .bind(id)
                    .bind(status.as_str())
                    .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
                    .bind(delay.as_secs_f64() * 1000.0)
                    .bind(message)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                }
            }
        }

        let mut claimed = Vec::new();
        if !dispatched.is_empty() {
            if let Some(claim) = claim {
                tasks.choose_claimed(claim);
            }
            let inserted = tasks
                .insert_dispatching(&dispatched, self.priority_lag, claim, &mut tx)
                .await?;
            report.tasks = inserted.count;
            claimed = inserted.claimed;
        }
        tx.commit().await.map_err(db_err)?;
        if report.tasks > claimed.len() {
            self.notifier.poke(Channel::Tasks);
        }
        if report.events > 0 {
            self.notifier.poke(Channel::Changes);
        }
        Ok((report, claimed))
    }
}

const EVENT: Reprocessable = Reprocessable {
    table: "domain_events",
    noun: "event",
    waiting: "('pending', 'retrying')",
    can_reprocess: |s| EventStatus::parse(s).is_some_and(EventStatus::can_reprocess),
    refusal:
        "it will be dispatched without help (only dispatched or dead events can be reprocessed)",
    copy_waiting: "a copy of this event is already waiting for dispatch",
};

/// Plans the tasks of one event and parses their payloads; any failure fails the event
/// (and only this event) with a message for its error history.
fn plan_event(
    planner: &dyn EventPlanner,
    event: &EventEnvelope<String>,
) -> Result<Vec<(PlannedTask<String>, serde_json::Value)>, String> {
    let planned = planner
        .plan(event)
        .map_err(|f| format!("handler {}: {}", f.handler, f.message))?;
    planned
        .into_iter()
        .map(|t| match serde_json::from_str(&t.payload) {
            Ok(v) => Ok((t, v)),
            Err(e) => Err(format!(
                "handler {}: task payload is not JSON: {e}",
                t.handler
            )),
        })
        .collect()
}

/// Column arrays of tasks to insert with one `UNNEST` statement.
#[derive(Default)]
struct TaskColumns {
    ids: Vec<uuid::Uuid>,
    types: Vec<String>,
    handlers: Vec<String>,
    payloads: Vec<serde_json::Value>,
    institutions: Vec<Option<uuid::Uuid>>,
    events: Vec<uuid::Uuid>,
    correlations: Vec<Option<String>>,
    /// The event's `reprocess_request_id`: the tasks of a reprocessed event inherit it.
    requests: Vec<Option<String>>,
    keys: Vec<String>,
    max_attempts: Vec<i32>,
    priorities: Vec<i16>,
    ordering_keys: Vec<Option<String>>,
    /// Whether the dispatching daemon takes the task as it is inserted.
    claimed: Vec<bool>,
}

/// What [`TaskColumns::insert_dispatching`] inserted.
struct Inserted {
    count: usize,
    /// The tasks inserted running, in planned order.
    claimed: Vec<ClaimedTask>,
}

impl TaskColumns {
    fn push(
        &mut self,
        event: &EventEnvelope<String>,
        reprocess_request_id: Option<String>,
        task: PlannedTask<String>,
        payload: serde_json::Value,
        max_attempts: u32,
    ) {
        let PlannedTask {
            task_type,
            handler,
            priority,
            ordering_key,
            ..
        } = task;
        self.ids.push(uuid::Uuid::now_v7());
        self.priorities.push(priority.level());
        self.ordering_keys.push(ordering_key);
        self.keys.push(idempotency_key(event.id, &handler));
        self.types.push(task_type);
        self.handlers.push(handler);
        self.payloads.push(payload);
        self.institutions
            .push(event.institution_id.map(|i| uuid::Uuid::from_u128(i.0)));
        self.events.push(uuid::Uuid::from_u128(event.id.0));
        self.correlations.push(event.correlation_id.clone());
        self.requests.push(reprocess_request_id);
        self.max_attempts
            .push(i32::try_from(max_attempts.max(1)).unwrap_or(i32::MAX));
        self.claimed.push(false);
    }

    /// Marks the tasks `claim` takes: in planned order, up to its limit, those kept in no order
    /// whose type and institution have room left (a paused type is left in the statement).
    fn choose_claimed(&mut self, claim: &ClaimOnInsert) {
        let mut room = claim.types.clone();
        let mut left = claim.limit;
        for i in 0..self.ids.len() {
            if left == 0 {
                break;
            }
            let institution = self.institutions[i].map(|u| InstitutionId(u.as_u128()));
            if self.ordering_keys[i].is_none() && take(&mut room, &self.types[i], institution) {
                self.claimed[i] = true;
                left -= 1;
            }
        }
    }

    /// Marks `events` dispatched and inserts every task, in one statement (one round trip per
    /// dispatch round); a task whose idempotency key exists is skipped. A task's turn is now
    /// plus its priority's delay (`lag` per level). The tasks marked claimed are inserted
    /// running for `claim`'s worker unless their type is paused.
    async fn insert_dispatching(
        self,
        events: &[uuid::Uuid],
        lag: std::time::Duration,
        claim: Option<&ClaimOnInsert>,
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> Result<Inserted, PortError> {
        let rows = sqlx::query(
            "WITH dispatched AS (
                 UPDATE domain_events SET status = 'dispatched', dispatched_at = now(), attempts = attempts + 1
                 WHERE id = ANY($10)
             ),
             paused AS (SELECT ARRAY(SELECT task_type FROM task_type_controls WHERE paused) AS types)
             INSERT INTO tasks (id, lineage_id, task_type, handler, payload, institution_id, event_id, correlation_id,
                                idempotency_key, max_attempts, reprocess_request_id, priority, claim_at, ordering_key,
                                status, attempt, locked_by, locked_until, started_at)
             SELECT id, id, task_type, handler, payload, institution_id, event_id, correlation_id, key, max_attempts,
                    reprocess_request_id, priority, now() + priority * $13 * interval '1 millisecond', ordering_key,
                    CASE WHEN r.run THEN 'running' ELSE 'pending' END, CASE WHEN r.run THEN 1 ELSE 0 END,
                    CASE WHEN r.run THEN $16 END, CASE WHEN r.run THEN now() + $17 * interval '1 millisecond' END,
                    CASE WHEN r.run THEN now() END
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::uuid[], $6::uuid[], $7::text[], $8::text[], $9::int[],
                         $11::text[], $12::smallint[], $14::text[], $15::bool[])
                  AS t(id, task_type, handler, payload, institution_id, event_id, correlation_id, key, max_attempts,
                       reprocess_request_id, priority, ordering_key, claim)
             CROSS JOIN paused p
             CROSS JOIN LATERAL (SELECT t.claim AND t.task_type <> ALL(p.types) AS run) r
             ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING id, status = 'running' AS running, payload::text AS payload, created_at",
        )
        .bind(&self.ids)
        .bind(&self.types)
        .bind(&self.handlers)
        .bind(&self.payloads)
        .bind(&self.institutions)
        .bind(&self.events)
        .bind(&self.correlations)
        .bind(&self.keys)
        .bind(&self.max_attempts)
        .bind(events)
        .bind(&self.requests)
        .bind(&self.priorities)
        .bind(lag.as_secs_f64() * 1000.0)
        .bind(&self.ordering_keys)
        .bind(&self.claimed)
        .bind(claim.map(|c| c.worker.as_str()))
        .bind(claim.map_or(0.0, |c| c.lease.as_secs_f64() * 1000.0))
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
        let count = rows.len();
        let planned: HashMap<uuid::Uuid, usize> = (0..self.ids.len())
            .filter(|i| self.claimed[*i])
            .map(|i| (self.ids[i], i))
            .collect();
        let mut claimed: Vec<(usize, ClaimedTask)> = rows
            .iter()
            .filter(|r| r.get::<bool, _>("running"))
            .filter_map(|r| {
                let id: uuid::Uuid = r.get("id");
                let i = *planned.get(&id)?;
                Some((
                    i,
                    ClaimedTask {
                        id: TaskId(id.as_u128()),
                        task_type: self.types[i].clone(),
                        payload: r.get("payload"),
                        institution_id: self.institutions[i].map(|u| InstitutionId(u.as_u128())),
                        event_id: Some(EventId(self.events[i].as_u128())),
                        correlation_id: self.correlations[i].clone(),
                        lineage_id: TaskId(id.as_u128()),
                        attempt: 1,
                        max_attempts: u32::try_from(self.max_attempts[i]).unwrap_or(1),
                        created_at: Timestamp(
                            r.get::<DateTime<Utc>, _>("created_at").timestamp_millis(),
                        ),
                    },
                ))
            })
            .collect();
        claimed.sort_by_key(|(i, _)| *i);
        Ok(Inserted {
            count,
            claimed: claimed.into_iter().map(|(_, t)| t).collect(),
        })
    }
}
