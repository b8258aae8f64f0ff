//! Operator endpoints that read the engine: list (filtered, keyset-paged), inspect and
//! summarize events and tasks, through the ports' filter model. An Adm user reaches every
//! institution; an Academic user only their own.

use super::adm::ts;
use super::at;
use super::auth::BearerAuth;
use super::public::ApiTags;
use crate::services::AppError;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::ids::*;
use campus_ports::{
    clamp_limit, parse_status, Archived, EventQuery, ListFilter, ListStatus, SummaryQuery,
    TaskQuery,
};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

/// One failed attempt.
#[derive(Object)]
pub struct AttemptErrorItem {
    pub at: String,
    pub attempt: u32,
    pub message: String,
}

#[derive(Object)]
pub struct EventItem {
    pub id: uuid::Uuid,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: uuid::Uuid,
    pub institution_id: Option<uuid::Uuid>,
    /// `pending`, `dispatched`, `retrying` or `dead`.
    pub status: String,
    pub attempts: u32,
    /// The id of the request that caused the event; a reprocessed copy keeps its original's.
    pub correlation_id: Option<String>,
    /// On a reprocessed copy: the correlation id of the operator's request that made it. The
    /// `correlation_id` filter matches either field.
    pub reprocess_request_id: Option<String>,
    /// The user who caused the event (`null`: a system actor such as the demo seed, or an
    /// anonymous request).
    pub actor_id: Option<uuid::Uuid>,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    pub dispatched_at: Option<chrono::DateTime<chrono::Utc>>,
    pub reprocessed_from: Option<uuid::Uuid>,
    pub errors: Vec<AttemptErrorItem>,
    pub payload: serde_json::Value,
}

#[derive(Object)]
pub struct TaskItem {
    pub id: uuid::Uuid,
    pub task_type: String,
    pub handler: Option<String>,
    pub institution_id: Option<uuid::Uuid>,
    pub event_id: Option<uuid::Uuid>,
    /// `pending`, `running`, `succeeded`, `retrying`, `dead` or `cancelled`.
    pub status: String,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The correlation id of its event (or of whoever enqueued it); a reprocessed copy keeps
    /// its original's.
    pub correlation_id: Option<String>,
    /// On a reprocessed copy, or a task of a reprocessed event: the correlation id of the
    /// operator's request that made it. The `correlation_id` filter matches either field.
    pub reprocess_request_id: Option<String>,
    pub reprocessed_from: Option<uuid::Uuid>,
    pub lineage_id: uuid::Uuid,
    pub run_at: chrono::DateTime<chrono::Utc>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    pub duration_ms: Option<f64>,
    pub errors: Vec<AttemptErrorItem>,
    pub payload: serde_json::Value,
}

#[derive(Object)]
pub struct EventPage {
    pub items: Vec<EventItem>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<uuid::Uuid>,
}

#[derive(Object)]
pub struct TaskPage {
    pub items: Vec<TaskItem>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<uuid::Uuid>,
}

#[derive(Object)]
pub struct EventDetailResponse {
    pub event: EventItem,
    /// The tasks it produced.
    pub tasks: Vec<TaskItem>,
    /// Copies made by reprocessing it.
    pub copies: Vec<uuid::Uuid>,
}

#[derive(Object)]
pub struct TaskDetailResponse {
    pub task: TaskItem,
    /// Copies made by reprocessing it.
    pub copies: Vec<uuid::Uuid>,
}

#[derive(Object)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
    /// The planner's estimate rather than an exact count: only for the bulk status
    /// (`dispatched` events, `succeeded` tasks) of a table past 100 000 rows, so that the
    /// summary never counts a whole large table.
    pub approximate: bool,
}

#[derive(Object)]
pub struct TypeStatusCount {
    pub task_type: String,
    pub status: String,
    pub count: i64,
}

#[derive(Object)]
pub struct MinuteCounts {
    pub minute: chrono::DateTime<chrono::Utc>,
    /// Events recorded in this minute.
    pub events: i64,
    /// Tasks created in this minute that succeeded so far.
    pub tasks_succeeded: i64,
    /// Tasks created in this minute that are retrying or dead.
    pub tasks_failed: i64,
}

#[derive(Object)]
pub struct SummaryResponse {
    pub events_by_status: Vec<StatusCount>,
    pub tasks_by_status: Vec<StatusCount>,
    /// Exact counts by type for every status but `succeeded`.
    pub tasks_by_type: Vec<TypeStatusCount>,
    /// The last 60 minutes, oldest first.
    pub per_minute: Vec<MinuteCounts>,
    /// Of the tasks created in the last hour that finished or are retrying, the share that
    /// failed (retrying or dead).
    pub failure_rate: f64,
    pub oldest_pending_event_age_s: Option<f64>,
    pub oldest_pending_task_age_s: Option<f64>,
}

fn u(v: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(v)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

fn error_items(errors: Vec<campus_ports::AttemptError>) -> Vec<AttemptErrorItem> {
    errors
        .into_iter()
        .map(|e| AttemptErrorItem {
            at: e.at,
            attempt: e.attempt,
            message: e.message,
        })
        .collect()
}

pub(super) fn event_item(e: campus_ports::EventView) -> EventItem {
    EventItem {
        id: u(e.id.0),
        payload: json(&e.payload),
        event_type: e.event_type,
        aggregate_type: e.aggregate_type,
        aggregate_id: u(e.aggregate_id),
        institution_id: e.institution_id.map(|i| u(i.0)),
        status: e.status.as_str().to_string(),
        attempts: e.attempts,
        correlation_id: e.correlation_id,
        reprocess_request_id: e.reprocess_request_id,
        actor_id: e.actor_id.map(|a| u(a.0)),
        occurred_at: at(e.occurred_at),
        dispatched_at: e.dispatched_at.map(at),
        reprocessed_from: e.reprocessed_from.map(|i| u(i.0)),
        errors: error_items(e.errors),
    }
}

fn task_item(t: campus_ports::TaskView) -> TaskItem {
    TaskItem {
        id: u(t.id.0),
        payload: json(&t.payload),
        task_type: t.task_type,
        handler: t.handler,
        institution_id: t.institution_id.map(|i| u(i.0)),
        event_id: t.event_id.map(|i| u(i.0)),
        status: t.status.as_str().to_string(),
        attempt: t.attempt,
        max_attempts: t.max_attempts,
        correlation_id: t.correlation_id,
        reprocess_request_id: t.reprocess_request_id,
        reprocessed_from: t.reprocessed_from.map(|i| u(i.0)),
        lineage_id: u(t.lineage_id.0),
        run_at: at(t.run_at),
        created_at: at(t.created_at),
        started_at: t.started_at.map(at),
        finished_at: t.finished_at.map(at),
        duration_ms: t.duration_ms,
        errors: error_items(t.errors),
    }
}

/// The filters both lists share, from the typed query parameters.
fn list_filter(
    archived: Option<String>,
    institution_id: Option<uuid::Uuid>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    correlation_id: Option<String>,
    has_errors: Option<bool>,
    q: Option<String>,
) -> Result<ListFilter, AppError> {
    Ok(ListFilter {
        archived: Archived::parse(archived.as_deref())?,
        institution_id: institution_id.map(|i| InstitutionId(i.as_u128())),
        from: from.map(ts),
        to: to.map(ts),
        correlation_id: correlation_id.filter(|c| !c.is_empty()),
        has_errors,
        text: q,
    })
}

pub struct AdmViewsApi;

#[OpenApi(tag = "ApiTags::Adm")]
impl AdmViewsApi {
    /// Domain events, newest first, filtered
    #[oai(path = "/adm/events", method = "get", operation_id = "listEvents")]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// `live` (default), `archived` or `all`: the live table, the archive, or both.
        archived: Query<Option<String>>,
        institution_id: Query<Option<uuid::Uuid>>,
        event_type: Query<Option<String>>,
        /// `pending`, `dispatched`, `retrying` or `dead`.
        status: Query<Option<String>>,
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Rows with this correlation id, or made by the operator's request with this id
        /// (`reprocess_request_id`).
        correlation_id: Query<Option<String>>,
        has_errors: Query<Option<bool>>,
        /// Case-insensitive text searched in the payload.
        q: Query<Option<String>>,
        /// The `next_before` of the previous page.
        before: Query<Option<uuid::Uuid>>,
        /// 1–200, default 50.
        limit: Query<Option<u32>>,
    ) -> Result<Json<EventPage>, ApiError> {
        let scope = auth.0.operator_scope()?;
        let _slot = state.limiter.admin_read(auth.0.sub.as_u128())?;
        let query = EventQuery {
            event_type: event_type.0.filter(|t| !t.is_empty()),
            status: parse_status(status.0.as_deref()).map_err(AppError::from)?,
            filter: list_filter(
                archived.0,
                institution_id.0,
                from.0,
                to.0,
                correlation_id.0,
                has_errors.0,
                q.0,
            )?,
            before: before.0.map(|b| EventId(b.as_u128())),
            limit: clamp_limit(limit.0),
        };
        let events = state.operations.events(&query, scope).await?;
        Ok(Json(EventPage {
            next_before: query.next_before(&events).map(|b| u(b.0)),
            items: events.into_iter().map(event_item).collect(),
        }))
    }

    /// One event: payload, status, errors, the tasks it produced, its copies
    #[oai(path = "/adm/events/:id", method = "get", operation_id = "getEvent")]
    async fn event(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
    ) -> Result<Json<EventDetailResponse>, ApiError> {
        let d = state
            .operations
            .event(EventId(id.0.as_u128()), auth.0.operator_scope()?)
            .await?;
        Ok(Json(EventDetailResponse {
            event: event_item(d.event),
            tasks: d.tasks.into_iter().map(task_item).collect(),
            copies: d.copies.into_iter().map(|c| u(c.0)).collect(),
        }))
    }

    /// Tasks, newest first, filtered
    #[oai(path = "/adm/tasks", method = "get", operation_id = "listTasks")]
    #[allow(clippy::too_many_arguments)]
    async fn tasks(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// `live` (default), `archived` or `all`: the live table, the archive, or both.
        archived: Query<Option<String>>,
        institution_id: Query<Option<uuid::Uuid>>,
        task_type: Query<Option<String>>,
        /// `pending`, `running`, `succeeded`, `retrying`, `dead` or `cancelled`.
        status: Query<Option<String>>,
        /// Only tasks produced by this event.
        event_id: Query<Option<uuid::Uuid>>,
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Rows with this correlation id, or made by the operator's request with this id
        /// (`reprocess_request_id`).
        correlation_id: Query<Option<String>>,
        has_errors: Query<Option<bool>>,
        /// Case-insensitive text searched in the payload.
        q: Query<Option<String>>,
        /// The `next_before` of the previous page.
        before: Query<Option<uuid::Uuid>>,
        /// 1–200, default 50.
        limit: Query<Option<u32>>,
    ) -> Result<Json<TaskPage>, ApiError> {
        let scope = auth.0.operator_scope()?;
        let _slot = state.limiter.admin_read(auth.0.sub.as_u128())?;
        let query = TaskQuery {
            task_type: task_type.0.filter(|t| !t.is_empty()),
            status: parse_status(status.0.as_deref()).map_err(AppError::from)?,
            event_id: event_id.0.map(|e| EventId(e.as_u128())),
            filter: list_filter(
                archived.0,
                institution_id.0,
                from.0,
                to.0,
                correlation_id.0,
                has_errors.0,
                q.0,
            )?,
            before: before.0.map(|b| TaskId(b.as_u128())),
            limit: clamp_limit(limit.0),
        };
        let tasks = state.operations.tasks(&query, scope).await?;
        Ok(Json(TaskPage {
            next_before: query.next_before(&tasks).map(|b| u(b.0)),
            items: tasks.into_iter().map(task_item).collect(),
        }))
    }

    /// One task: payload, every attempt's error, origin event, lineage
    #[oai(path = "/adm/tasks/:id", method = "get", operation_id = "getTask")]
    async fn task(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        id: Path<uuid::Uuid>,
    ) -> Result<Json<TaskDetailResponse>, ApiError> {
        let d = state
            .operations
            .task(TaskId(id.0.as_u128()), auth.0.operator_scope()?)
            .await?;
        Ok(Json(TaskDetailResponse {
            task: task_item(d.task),
            copies: d.copies.into_iter().map(|c| u(c.0)).collect(),
        }))
    }

    /// Counts by status and type, the last hour per minute, failure rate, oldest pending age
    ///
    /// Never counts a whole large table: every status is counted exactly through its own
    /// index except the bulk one (`dispatched`, `succeeded`), which is estimated once the
    /// table is past 100 000 rows (`approximate: true`).
    #[oai(path = "/adm/summary", method = "get", operation_id = "getSummary")]
    #[allow(clippy::too_many_arguments)]
    async fn summary(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        institution_id: Query<Option<uuid::Uuid>>,
        /// Counts of events of this type only.
        event_type: Query<Option<String>>,
        /// Counts of tasks of this type only.
        task_type: Query<Option<String>>,
        /// Counts of events recorded / tasks created at or after this instant (the
        /// per-minute series always covers the last hour).
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// … and before this instant.
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
    ) -> Result<Json<SummaryResponse>, ApiError> {
        let scope = auth.0.operator_scope()?;
        let _slot = state.limiter.admin_read(auth.0.sub.as_u128())?;
        let query = SummaryQuery {
            institution_id: institution_id.0.map(|i| InstitutionId(i.as_u128())),
            event_type: event_type.0.filter(|t| !t.is_empty()),
            task_type: task_type.0.filter(|t| !t.is_empty()),
            from: from.0.map(ts),
            to: to.0.map(ts),
        };
        let s = state.operations.summary(&query, scope).await?;
        Ok(Json(summary_response(s)))
    }
}

/// The wire form of a summary.
fn summary_response(s: campus_ports::EngineSummary) -> SummaryResponse {
    fn counts<S: ListStatus>(v: Vec<campus_ports::StatusCount<S>>) -> Vec<StatusCount> {
        v.into_iter()
            .map(|c| StatusCount {
                status: c.status.as_str().to_string(),
                count: c.count,
                approximate: c.approximate,
            })
            .collect()
    }
    SummaryResponse {
        events_by_status: counts(s.events_by_status),
        tasks_by_status: counts(s.tasks_by_status),
        tasks_by_type: s
            .tasks_by_type
            .into_iter()
            .map(|(task_type, status, count)| TypeStatusCount {
                task_type,
                status: status.as_str().to_string(),
                count,
            })
            .collect(),
        per_minute: s
            .per_minute
            .into_iter()
            .map(|m| MinuteCounts {
                minute: at(m.minute),
                events: m.events,
                tasks_succeeded: m.tasks_succeeded,
                tasks_failed: m.tasks_failed,
            })
            .collect(),
        failure_rate: s.failure_rate,
        oldest_pending_event_age_s: s.oldest_pending_event_age_s,
        oldest_pending_task_age_s: s.oldest_pending_task_age_s,
    }
}
