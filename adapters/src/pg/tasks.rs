//! The task queue: enqueue, claim with a lease (`FOR UPDATE SKIP LOCKED`), and fenced,
//! batched completion.

use super::{db_err, Channel, PgStore};
use async_trait::async_trait;
use campus_core::engine::{RetryPolicy, TaskState, TaskStatus, TaskTransition};
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::{ClaimedTask, Completion, NewTask, PortError, TaskOutcome, TaskQueue};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::time::Duration;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[async_trait]
impl TaskQueue for PgStore {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<usize, PortError> {
        if tasks.is_empty() {
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(tasks.len());
        let mut types = Vec::with_capacity(tasks.len());
        let mut payloads = Vec::with_capacity(tasks.len());
        let mut institutions = Vec::with_capacity(tasks.len());
        let mut correlations = Vec::with_capacity(tasks.len());
        let mut max_attempts = Vec::with_capacity(tasks.len());
        let mut keys = Vec::with_capacity(tasks.len());
        for t in tasks {
            let payload: serde_json::Value = serde_json::from_str(&t.payload)
                .map_err(|e| PortError::Conflict(format!("task payload is not JSON: {e}")))?;
            ids.push(uuid::Uuid::now_v7());
            types.push(t.task_type.clone());
            payloads.push(payload);
            institutions.push(t.institution_id.map(|i| uuid::Uuid::from_u128(i.0)));
            correlations.push(t.correlation_id.clone());
            max_attempts.push(to_i32(t.max_attempts.max(1)));
            keys.push(t.idempotency_key.clone());
        }
        let r = sqlx::query(
            "INSERT INTO tasks (id, lineage_id, task_type, payload, institution_id, correlation_id, max_attempts, idempotency_key)
             SELECT id, id, task_type, payload, institution_id, correlation_id, max_attempts, key
             FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[], $4::uuid[], $5::text[], $6::int[], $7::text[])
                  AS t(id, task_type, payload, institution_id, correlation_id, max_attempts, key)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&ids)
        .bind(&types)
        .bind(&payloads)
        .bind(&institutions)
        .bind(&correlations)
        .bind(&max_attempts)
        .bind(&keys)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        self.notifier.poke(Channel::Tasks);
        Ok(usize::try_from(r.rows_affected()).unwrap_or(usize::MAX))
    }

    async fn claim(
        &self,
        worker: &str,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, PortError> {
        let rows = sqlx::query(
            "WITH due AS (
                SELECT id FROM tasks
                WHERE status IN ('pending', 'retrying') AND run_at <= now()
                ORDER BY run_at, id
                LIMIT $2
                FOR UPDATE SKIP LOCKED
             )
             UPDATE tasks t
             SET status = 'running', attempt = t.attempt + 1, locked_by = $1,
                 locked_until = now() + $3 * interval '1 millisecond', started_at = now(), finished_at = NULL
             FROM due WHERE t.id = due.id
             RETURNING t.id, t.task_type, t.payload::text AS payload, t.institution_id, t.event_id, t.correlation_id,
                       t.lineage_id, t.attempt, t.max_attempts, t.created_at",
        )
        .bind(worker)
        .bind(i64::from(limit))
        .bind(millis(lease))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| ClaimedTask {
                id: TaskId(r.get::<uuid::Uuid, _>("id").as_u128()),
                task_type: r.get("task_type"),
                payload: r.get("payload"),
                institution_id: r
                    .get::<Option<uuid::Uuid>, _>("institution_id")
                    .map(|i| InstitutionId(i.as_u128())),
                event_id: r
                    .get::<Option<uuid::Uuid>, _>("event_id")
                    .map(|i| EventId(i.as_u128())),
                correlation_id: r.get("correlation_id"),
                lineage_id: TaskId(r.get::<uuid::Uuid, _>("lineage_id").as_u128()),
                attempt: u32::try_from(r.get::<i32, _>("attempt")).unwrap_or(0),
                max_attempts: u32::try_from(r.get::<i32, _>("max_attempts")).unwrap_or(1),
                created_at: Timestamp(r.get::<DateTime<Utc>, _>("created_at").timestamp_millis()),
            })
            .collect())
    }

    async fn complete(
        &self,
        worker: &str,
        completions: &[Completion],
        retry: &RetryPolicy,
    ) -> Result<usize, PortError> {
        if completions.is_empty() {
            return Ok(0);
        }
        let n = completions.len();
        let mut ids = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut delays = Vec::with_capacity(n);
        let mut messages: Vec<Option<String>> = Vec::with_capacity(n);
        let mut durations = Vec::with_capacity(n);
        for c in completions {
            // The core's lifecycle rules decide the next state.
            let (transition, message) = match &c.outcome {
                TaskOutcome::Succeeded => (TaskTransition::Succeed, None),
                TaskOutcome::Failed { message, permanent } => (
                    TaskTransition::Fail {
                        permanent: *permanent,
                    },
                    Some(message.clone()),
                ),
            };
            let state = TaskState {
                status: TaskStatus::Running,
                attempt: c.attempt,
                max_attempts: c.max_attempts,
            };
            let next = state
                .apply(transition)
                .map_or(TaskStatus::Dead, |s| s.status);
            ids.push(uuid::Uuid::from_u128(c.id.0));
            attempts.push(to_i32(c.attempt));
            statuses.push(next.as_str());
            delays.push(millis(retry.delay(c.attempt, rand::random())));
            messages.push(message);
            durations.push(millis(c.duration));
        }
        let r = sqlx::query(
            "UPDATE tasks t SET
                status = u.status,
                run_at = CASE WHEN u.status = 'retrying' THEN now() + u.delay_ms * interval '1 millisecond' ELSE t.run_at END,
                errors = CASE WHEN u.message IS NULL THEN t.errors
                         ELSE t.errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', u.attempt, 'message', u.message)) END,
                finished_at = now(),
                duration_ms = u.duration_ms,
                locked_by = NULL,
                locked_until = NULL
             FROM UNNEST($1::uuid[], $2::int[], $3::text[], $4::float8[], $5::text[], $6::float8[])
                  AS u(id, attempt, status, delay_ms, message, duration_ms)
             WHERE t.id = u.id AND t.attempt = u.attempt AND t.locked_by = $7 AND t.status = 'running'",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(&statuses)
        .bind(&delays)
        .bind(&messages)
        .bind(&durations)
        .bind(worker)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(usize::try_from(r.rows_affected()).unwrap_or(usize::MAX))
    }
}
