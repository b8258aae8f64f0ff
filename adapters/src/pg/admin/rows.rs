//! Reading the rows of `domain_events` and `tasks` into the operators' views.

use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::*;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

pub(super) const EVENT_COLUMNS: &str = "id, event_type, aggregate_type, aggregate_id, institution_id, status, attempts, correlation_id,
    reprocess_request_id, actor_id, occurred_at, dispatched_at, reprocessed_from, errors::text AS errors, payload::text AS payload";
pub(super) const TASK_COLUMNS: &str = "id, task_type, handler, institution_id, event_id, status, attempt, max_attempts, correlation_id,
    reprocess_request_id, reprocessed_from, lineage_id, run_at, created_at, started_at, finished_at, duration_ms, errors::text AS errors,
    payload::text AS payload";

pub(super) fn ts(dt: DateTime<Utc>) -> Timestamp {
    Timestamp(dt.timestamp_millis())
}

fn id(row: &PgRow, col: &str) -> u128 {
    row.get::<uuid::Uuid, _>(col).as_u128()
}

fn opt_id(row: &PgRow, col: &str) -> Option<u128> {
    row.get::<Option<uuid::Uuid>, _>(col).map(|u| u.as_u128())
}

fn errors(raw: &str) -> Vec<AttemptError> {
    let parsed: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
    parsed
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| AttemptError {
                    at: e["at"].as_str().unwrap_or_default().to_string(),
                    attempt: e["attempt"]
                        .as_u64()
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    message: e["message"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A status read from the database (its CHECK constraint admits only known ones).
pub(super) fn status<S: ListStatus>(raw: &str) -> Result<S, PortError> {
    parse_status(Some(raw))
        .ok()
        .flatten()
        .ok_or_else(|| PortError::Unavailable(format!("database: unknown status {raw:?}")))
}

pub(super) fn event_view(r: &PgRow) -> Result<EventView, PortError> {
    Ok(EventView {
        id: EventId(id(r, "id")),
        event_type: r.get("event_type"),
        aggregate_type: r.get("aggregate_type"),
        aggregate_id: id(r, "aggregate_id"),
        institution_id: opt_id(r, "institution_id").map(InstitutionId),
        status: status(r.get("status"))?,
        attempts: u32::try_from(r.get::<i32, _>("attempts")).unwrap_or(0),
        correlation_id: r.get("correlation_id"),
        reprocess_request_id: r.get("reprocess_request_id"),
        actor_id: opt_id(r, "actor_id").map(UserId),
        occurred_at: ts(r.get("occurred_at")),
        dispatched_at: r.get::<Option<DateTime<Utc>>, _>("dispatched_at").map(ts),
        reprocessed_from: opt_id(r, "reprocessed_from").map(EventId),
        errors: errors(r.get("errors")),
        payload: r.get("payload"),
    })
}

pub(super) fn task_view(r: &PgRow) -> Result<TaskView, PortError> {
    Ok(TaskView {
        id: TaskId(id(r, "id")),
        task_type: r.get("task_type"),
        handler: r.get("handler"),
        institution_id: opt_id(r, "institution_id").map(InstitutionId),
        event_id: opt_id(r, "event_id").map(EventId),
        status: status(r.get("status"))?,
        attempt: u32::try_from(r.get::<i32, _>("attempt")).unwrap_or(0),
        max_attempts: u32::try_from(r.get::<i32, _>("max_attempts")).unwrap_or(0),
        correlation_id: r.get("correlation_id"),
        reprocess_request_id: r.get("reprocess_request_id"),
        reprocessed_from: opt_id(r, "reprocessed_from").map(TaskId),
        lineage_id: TaskId(id(r, "lineage_id")),
        run_at: ts(r.get("run_at")),
        created_at: ts(r.get("created_at")),
        started_at: r.get::<Option<DateTime<Utc>>, _>("started_at").map(ts),
        finished_at: r.get::<Option<DateTime<Utc>>, _>("finished_at").map(ts),
        duration_ms: r.get("duration_ms"),
        errors: errors(r.get("errors")),
        payload: r.get("payload"),
    })
}
