//! Operator endpoints that read the engine: list (filtered, keyset-paged), inspect and
//! summarize events and tasks, through the ports' filter model. An Adm user reaches every
//! institution; an Academic user only their own.

use super::adm::ts;
use super::at;
use super::auth::BearerAuth;
use super::public::ApiTags;
use super::text::Text;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::engine::{
    EventStatus as CoreEventStatus, Priority as CorePriority, TaskStatus as CoreTaskStatus,
};
use campus_core::ids::*;
use campus_ports::{clamp_limit, EventQuery, ListFilter, PriorityCounts, SummaryQuery, TaskQuery};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

/// Where a domain event stands in its fan-out to tasks.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum EventStatus {
    /// Recorded; its tasks are not created yet.
    Pending,
    /// Its tasks were created.
    Dispatched,
    /// Fanning it out failed; it will be tried again.
    Retrying,
    /// Fanning it out failed for good (it can be reprocessed).
    Dead,
}

impl From<CoreEventStatus> for EventStatus {
    fn from(s: CoreEventStatus) -> Self {
        match s {
            CoreEventStatus::Pending => EventStatus::Pending,
            CoreEventStatus::Dispatched => EventStatus::Dispatched,
            CoreEventStatus::Retrying => EventStatus::Retrying,
            CoreEventStatus::Dead => EventStatus::Dead,
        }
    }
}

impl From<EventStatus> for CoreEventStatus {
    fn from(s: EventStatus) -> Self {
        match s {
            EventStatus::Pending => CoreEventStatus::Pending,
            EventStatus::Dispatched => CoreEventStatus::Dispatched,
            EventStatus::Retrying => CoreEventStatus::Retrying,
            EventStatus::Dead => CoreEventStatus::Dead,
        }
    }
}

/// Where a task stands.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting to run (possibly until a later `run_at`).
    Pending,
    /// A daemon is running it.
    Running,
    /// Its handler succeeded (final).
    Succeeded,
    /// An attempt failed; it will run again at `run_at`.
    Retrying,
    /// Every attempt failed, or the failure was permanent (final).
    Dead,
    /// An operator cancelled it before it started (final).
    Cancelled,
}

impl From<CoreTaskStatus> for TaskStatus {
    fn from(s: CoreTaskStatus) -> Self {
        match s {
            CoreTaskStatus::Pending => TaskStatus::Pending,
            CoreTaskStatus::Running => TaskStatus::Running,
            CoreTaskStatus::Succeeded => TaskStatus::Succeeded,
            CoreTaskStatus::Retrying => TaskStatus::Retrying,
            CoreTaskStatus::Dead => TaskStatus::Dead,
            CoreTaskStatus::Cancelled => TaskStatus::Cancelled,
        }
    }
}

impl From<TaskStatus> for CoreTaskStatus {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Pending => CoreTaskStatus::Pending,
            TaskStatus::Running => CoreTaskStatus::Running,
            TaskStatus::Succeeded => CoreTaskStatus::Succeeded,
            TaskStatus::Retrying => CoreTaskStatus::Retrying,
            TaskStatus::Dead => CoreTaskStatus::Dead,
            TaskStatus::Cancelled => CoreTaskStatus::Cancelled,
        }
    }
}

/// How urgent a task is: workers take due tasks of a higher priority first, and a task of a
/// lower one ages until it goes first too.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum Priority {
    /// Someone is waiting for it (a password-reset e-mail).
    Interactive,
    /// The default.
    Normal,
    /// Large batches nobody waits for (demo data, bulk reprocessing).
    Bulk,
}

impl From<CorePriority> for Priority {
    fn from(p: CorePriority) -> Self {
        match p {
            CorePriority::Interactive => Priority::Interactive,
            CorePriority::Normal => Priority::Normal,
            CorePriority::Bulk => Priority::Bulk,
        }
    }
}

/// Which rows a list reads.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum Archived {
    /// The live tables only (the default): recent and unfinished rows.
    Live,
    /// The archive only: finished rows moved out of the live tables.
    Archived,
    /// Both.
    All,
}

impl From<Archived> for campus_ports::Archived {
    fn from(a: Archived) -> Self {
        match a {
            Archived::Live => campus_ports::Archived::Live,
            Archived::Archived => campus_ports::Archived::Archived,
            Archived::All => campus_ports::Archived::All,
        }
    }
}

/// One failed attempt.
#[derive(Object)]
pub struct AttemptErrorItem {
    /// When it failed (RFC 3339).
    pub at: String,
    /// Which attempt it was (the first is 1).
    pub attempt: u32,
    /// What went wrong.
    pub message: String,
}

/// A domain event: a business change recorded in the same transaction as the change, then
/// fanned out to tasks.
#[derive(Object)]
pub struct EventItem {
    /// Its id (time-ordered).
    pub id: uuid::Uuid,
    /// What happened, e.g. `InstitutionCreated`, `ExamGradeNoteAdded`.
    pub event_type: String,
    /// The kind of entity that recorded it, e.g. `Institution`, `User`, `Enrollment` (see
    /// `GET /audit/{aggregate_type}/{aggregate_id}`).
    pub aggregate_type: String,
    /// The id of the entity that recorded it.
    pub aggregate_id: uuid::Uuid,
    /// The institution it belongs to (absent for global facts such as a new Adm user).
    pub institution_id: Option<uuid::Uuid>,
    /// Where its fan-out stands.
    pub status: EventStatus,
    /// Fan-out attempts made so far.
    pub attempts: u32,
    /// The id of the request that caused the event; a reprocessed copy keeps its original's.
    pub correlation_id: Option<String>,
    /// On a reprocessed copy: the correlation id of the operator's request that made it. The
    /// `correlation_id` filter matches either field.
    pub reprocess_request_id: Option<String>,
    /// The user who caused the event (`null`: a system actor such as the demo seed, or an
    /// anonymous request).
    pub actor_id: Option<uuid::Uuid>,
    /// When it was recorded.
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// When its tasks were created; absent until then.
    pub dispatched_at: Option<chrono::DateTime<chrono::Utc>>,
    /// On a reprocessed copy: the event it copies.
    pub reprocessed_from: Option<uuid::Uuid>,
    /// Every failed fan-out attempt, oldest first.
    pub errors: Vec<AttemptErrorItem>,
    /// The event's data (its fields depend on `event_type`).
    pub payload: serde_json::Value,
}

/// A task: one unit of work a daemon runs (send an e-mail, notify a student, …), with
/// retries.
#[derive(Object)]
pub struct TaskItem {
    /// Its id (time-ordered).
    pub id: uuid::Uuid,
    /// What it does, e.g. `send_reset_password_email`, `notify_student_of_grade_note`.
    pub task_type: String,
    /// The handler that ran it, when a task type has several.
    pub handler: Option<String>,
    /// The institution it belongs to, if any.
    pub institution_id: Option<uuid::Uuid>,
    /// The event that produced it, if one did.
    pub event_id: Option<uuid::Uuid>,
    /// Where it stands.
    pub status: TaskStatus,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts it may have in all.
    pub max_attempts: u32,
    /// The correlation id of its event (or of whoever enqueued it); a reprocessed copy keeps
    /// its original's.
    pub correlation_id: Option<String>,
    /// On a reprocessed copy, or a task of a reprocessed event: the correlation id of the
    /// operator's request that made it. The `correlation_id` filter matches either field.
    pub reprocess_request_id: Option<String>,
    /// On a reprocessed copy: the task it copies.
    pub reprocessed_from: Option<uuid::Uuid>,
    /// The id of the first task of its line (itself unless it is a copy): effects already
    /// done by one task of a line are not repeated by another.
    pub lineage_id: uuid::Uuid,
    /// When it may run (next).
    pub run_at: chrono::DateTime<chrono::Utc>,
    /// When it was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When its last attempt started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it finished (succeeded, dead or cancelled).
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How long its last attempt ran, in milliseconds.
    pub duration_ms: Option<f64>,
    /// Every failed attempt, oldest first.
    pub errors: Vec<AttemptErrorItem>,
    /// The task's input (its fields depend on `task_type`).
    pub payload: serde_json::Value,
}

/// A page of events, newest first.
#[derive(Object)]
pub struct EventPage {
    /// The events of the page.
    pub items: Vec<EventItem>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<uuid::Uuid>,
}

/// A page of tasks, newest first.
#[derive(Object)]
pub struct TaskPage {
    /// The tasks of the page.
    pub items: Vec<TaskItem>,
    /// Pass as `before` for the next (older) page; absent on the last page.
    pub next_before: Option<uuid::Uuid>,
}

/// An event with the tasks it produced and its copies.
#[derive(Object)]
pub struct EventDetailResponse {
    /// The event.
    pub event: EventItem,
    /// The tasks it produced.
    pub tasks: Vec<TaskItem>,
    /// Copies made by reprocessing it.
    pub copies: Vec<uuid::Uuid>,
}

/// A task with its copies.
#[derive(Object)]
pub struct TaskDetailResponse {
    /// The task.
    pub task: TaskItem,
    /// Copies made by reprocessing it.
    pub copies: Vec<uuid::Uuid>,
}

/// How many events are in one status.
#[derive(Object)]
pub struct EventStatusCount {
    /// The status.
    pub status: EventStatus,
    /// How many events are in it.
    pub count: i64,
    /// The planner's estimate rather than an exact count: only for `dispatched` events in a
    /// table past 100 000 rows, so that the summary never counts a whole large table.
    pub approximate: bool,
}

/// How many tasks are in one status.
#[derive(Object)]
pub struct TaskStatusCount {
    /// The status.
    pub status: TaskStatus,
    /// How many tasks are in it.
    pub count: i64,
    /// The planner's estimate rather than an exact count: only for `succeeded` tasks in a
    /// table past 100 000 rows, so that the summary never counts a whole large table.
    pub approximate: bool,
}

/// How many tasks of one type are in one status.
#[derive(Object)]
pub struct TypeStatusCount {
    /// The task type.
    pub task_type: String,
    /// The status.
    pub status: TaskStatus,
    /// How many tasks of the type are in it (exact).
    pub count: i64,
}

/// The activity of one minute.
#[derive(Object)]
pub struct MinuteCounts {
    /// The minute's start.
    pub minute: chrono::DateTime<chrono::Utc>,
    /// Events recorded in this minute.
    pub events: i64,
    /// Tasks created in this minute that succeeded so far.
    pub tasks_succeeded: i64,
    /// Tasks created in this minute that are retrying or dead.
    pub tasks_failed: i64,
}

/// How many due tasks have one priority.
#[derive(Object)]
pub struct PriorityCount {
    /// The priority.
    pub priority: Priority,
    /// How many due tasks have it.
    pub count: i64,
}

/// The due tasks of one institution, or of no institution.
#[derive(Object)]
pub struct InstitutionBacklog {
    /// The institution; `null` for the tasks of no institution.
    pub institution_id: Option<uuid::Uuid>,
    /// Its name; `null` for the tasks of no institution (or of an id that names none).
    pub institution_name: Option<String>,
    /// Its due tasks by priority: every priority, `interactive` first.
    pub by_priority: Vec<PriorityCount>,
    /// All its due tasks.
    pub total: i64,
}

/// The tasks due and waiting for a worker: pending or retrying, their `run_at` passed. Of
/// the summary's institution and task type; `from` and `to` do not apply (it is the backlog
/// now).
#[derive(Object)]
pub struct DueBacklog {
    /// The 20 institutions with the most due tasks, most first (ties by id, the tasks of no
    /// institution first); the others are only in the totals.
    pub institutions: Vec<InstitutionBacklog>,
    /// Every due task by priority, of the institutions listed or not: every priority,
    /// `interactive` first.
    pub by_priority: Vec<PriorityCount>,
    /// Every due task.
    pub total: i64,
}

/// The engine at a glance.
#[derive(Object)]
pub struct SummaryResponse {
    /// Events by status: the statuses that have events (`dispatched` always), by name.
    pub events_by_status: Vec<EventStatusCount>,
    /// Tasks by status: the statuses that have tasks (`succeeded` always), by name.
    pub tasks_by_status: Vec<TaskStatusCount>,
    /// Exact counts by type for every status but `succeeded`.
    pub tasks_by_type: Vec<TypeStatusCount>,
    /// The last 60 minutes, oldest first.
    pub per_minute: Vec<MinuteCounts>,
    /// Of the tasks created in the last hour that finished or are retrying, the share that
    /// failed (retrying or dead), from 0 to 1; 0 when idle.
    pub failure_rate: f64,
    /// Seconds since the oldest event still pending or retrying was recorded; absent when
    /// there is none.
    pub oldest_pending_event_age_s: Option<f64>,
    /// Seconds since the oldest task still pending or retrying was created; absent when
    /// there is none.
    pub oldest_pending_task_age_s: Option<f64>,
    /// The tasks due and waiting for a worker, by institution and priority.
    pub due_backlog: DueBacklog,
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
        status: e.status.into(),
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
        status: t.status.into(),
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
    archived: Option<Archived>,
    institution_id: Option<uuid::Uuid>,
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    correlation_id: Option<String>,
    has_errors: Option<bool>,
    q: Option<String>,
) -> ListFilter {
    ListFilter {
        archived: archived.map_or(campus_ports::Archived::Live, Into::into),
        institution_id: institution_id.map(|i| InstitutionId(i.as_u128())),
        from: from.map(ts),
        to: to.map(ts),
        correlation_id: correlation_id.filter(|c| !c.is_empty()),
        has_errors,
        text: q,
    }
}

pub struct AdmViewsApi;

#[OpenApi(tag = "ApiTags::Adm")]
impl AdmViewsApi {
    /// Domain events, newest first, filtered
    ///
    /// For Adm users (every institution's events, and global ones) and Academic users (their
    /// institution's only, whatever `institution_id` says). Keyset pages: pass the
    /// `next_before` of a page as `before` for the next one. 429 when the caller already has
    /// `CAMPUS_ADMIN_CONCURRENCY` operator reads running.
    #[oai(path = "/adm/events", method = "get", operation_id = "listEvents")]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The live table (default), the archive, or both.
        archived: Query<Option<Archived>>,
        /// Only events of this institution.
        institution_id: Query<Option<uuid::Uuid>>,
        /// Only events of this type, e.g. `ExamGradeNoteAdded` (empty: any).
        event_type: Query<Option<Text>>,
        /// Only events in this status.
        status: Query<Option<EventStatus>>,
        /// Only events recorded at or after this instant.
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Only events recorded before this instant.
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Rows with this correlation id, or made by the operator's request with this id
        /// (`reprocess_request_id`).
        correlation_id: Query<Option<Text>>,
        /// Only events with (`true`) or without (`false`) a failed attempt.
        has_errors: Query<Option<bool>>,
        /// Case-insensitive text searched in the payload.
        q: Query<Option<Text>>,
        /// The `next_before` of the previous page.
        before: Query<Option<uuid::Uuid>>,
        /// At most this many items (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<EventPage>, ApiError> {
        let scope = auth.0.operator_scope()?;
        let _slot = state.limiter.admin_read(auth.0.sub.as_u128())?;
        let query = EventQuery {
            event_type: event_type.0.map(String::from).filter(|t| !t.is_empty()),
            status: status.0.map(Into::into),
            filter: list_filter(
                archived.0,
                institution_id.0,
                from.0,
                to.0,
                correlation_id.0.map(String::from),
                has_errors.0,
                q.0.map(String::from),
            ),
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
    ///
    /// For Adm users (any event) and Academic users (their institution's; 404 for others).
    /// Archived events are found too.
    #[oai(path = "/adm/events/:id", method = "get", operation_id = "getEvent")]
    async fn event(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The event's id.
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
    ///
    /// For Adm users (every institution's tasks, and global ones) and Academic users (their
    /// institution's only, whatever `institution_id` says). Keyset pages: pass the
    /// `next_before` of a page as `before` for the next one. 429 when the caller already has
    /// `CAMPUS_ADMIN_CONCURRENCY` operator reads running.
    #[oai(path = "/adm/tasks", method = "get", operation_id = "listTasks")]
    #[allow(clippy::too_many_arguments)]
    async fn tasks(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The live table (default), the archive, or both.
        archived: Query<Option<Archived>>,
        /// Only tasks of this institution.
        institution_id: Query<Option<uuid::Uuid>>,
        /// Only tasks of this type, e.g. `send_reset_password_email` (empty: any).
        task_type: Query<Option<Text>>,
        /// Only tasks in this status.
        status: Query<Option<TaskStatus>>,
        /// Only tasks produced by this event.
        event_id: Query<Option<uuid::Uuid>>,
        /// Only tasks created at or after this instant.
        from: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Only tasks created before this instant.
        to: Query<Option<chrono::DateTime<chrono::Utc>>>,
        /// Rows with this correlation id, or made by the operator's request with this id
        /// (`reprocess_request_id`).
        correlation_id: Query<Option<Text>>,
        /// Only tasks with (`true`) or without (`false`) a failed attempt.
        has_errors: Query<Option<bool>>,
        /// Case-insensitive text searched in the payload.
        q: Query<Option<Text>>,
        /// The `next_before` of the previous page.
        before: Query<Option<uuid::Uuid>>,
        /// At most this many items (1–200, default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<TaskPage>, ApiError> {
        let scope = auth.0.operator_scope()?;
        let _slot = state.limiter.admin_read(auth.0.sub.as_u128())?;
        let query = TaskQuery {
            task_type: task_type.0.map(String::from).filter(|t| !t.is_empty()),
            status: status.0.map(Into::into),
            event_id: event_id.0.map(|e| EventId(e.as_u128())),
            filter: list_filter(
                archived.0,
                institution_id.0,
                from.0,
                to.0,
                correlation_id.0.map(String::from),
                has_errors.0,
                q.0.map(String::from),
            ),
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
    ///
    /// For Adm users (any task) and Academic users (their institution's; 404 for others).
    /// Archived tasks are found too.
    #[oai(path = "/adm/tasks/:id", method = "get", operation_id = "getTask")]
    async fn task(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The task's id.
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
    /// For Adm users (every institution, or one with `institution_id`) and Academic users
    /// (their institution only). Never counts a whole large table: every status is counted
    /// exactly through its own index except the bulk one (`dispatched`, `succeeded`), which
    /// is estimated once the table is past 100 000 rows (`approximate: true`). The due
    /// backlog counts the tasks waiting for a worker by institution and priority. 429 when
    /// the caller already has `CAMPUS_ADMIN_CONCURRENCY` operator reads running.
    #[oai(path = "/adm/summary", method = "get", operation_id = "getSummary")]
    #[allow(clippy::too_many_arguments)]
    async fn summary(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// Counts of this institution only.
        institution_id: Query<Option<uuid::Uuid>>,
        /// Counts of events of this type only.
        event_type: Query<Option<Text>>,
        /// Counts of tasks of this type only.
        task_type: Query<Option<Text>>,
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
            event_type: event_type.0.map(String::from).filter(|t| !t.is_empty()),
            task_type: task_type.0.map(String::from).filter(|t| !t.is_empty()),
            from: from.0.map(ts),
            to: to.0.map(ts),
        };
        let s = state.operations.summary(&query, scope).await?;
        Ok(Json(summary_response(s)))
    }
}

/// Every priority's count, `interactive` first.
fn priority_counts(counts: &PriorityCounts) -> Vec<PriorityCount> {
    CorePriority::ALL
        .into_iter()
        .map(|p| PriorityCount {
            priority: p.into(),
            count: counts.get(p),
        })
        .collect()
}

fn due_backlog(b: campus_ports::DueBacklog) -> DueBacklog {
    DueBacklog {
        institutions: b
            .institutions
            .into_iter()
            .map(|i| InstitutionBacklog {
                institution_id: i.institution_id.map(|id| u(id.0)),
                institution_name: i.name,
                by_priority: priority_counts(&i.due),
                total: i.due.total(),
            })
            .collect(),
        by_priority: priority_counts(&b.total),
        total: b.total.total(),
    }
}

/// The wire form of a summary.
fn summary_response(s: campus_ports::EngineSummary) -> SummaryResponse {
    SummaryResponse {
        events_by_status: s
            .events_by_status
            .into_iter()
            .map(|c| EventStatusCount {
                status: c.status.into(),
                count: c.count,
                approximate: c.approximate,
            })
            .collect(),
        tasks_by_status: s
            .tasks_by_status
            .into_iter()
            .map(|c| TaskStatusCount {
                status: c.status.into(),
                count: c.count,
                approximate: c.approximate,
            })
            .collect(),
        tasks_by_type: s
            .tasks_by_type
            .into_iter()
            .map(|(task_type, status, count)| TypeStatusCount {
                task_type,
                status: status.into(),
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
        due_backlog: due_backlog(s.due_backlog),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire;
    use campus_ports::ListStatus;

    /// The wire names are the ones the filters parsed and the lists showed before the
    /// enums: the core's.
    #[test]
    fn status_enums_carry_the_core_names_both_ways() {
        for s in <CoreEventStatus as ListStatus>::ALL.iter().copied() {
            assert_eq!(wire(EventStatus::from(s)), s.as_str());
            assert_eq!(CoreEventStatus::from(EventStatus::from(s)), s);
        }
        for s in <CoreTaskStatus as ListStatus>::ALL.iter().copied() {
            assert_eq!(wire(TaskStatus::from(s)), s.as_str());
            assert_eq!(CoreTaskStatus::from(TaskStatus::from(s)), s);
        }
        for (ours, theirs) in [Archived::Live, Archived::Archived, Archived::All]
            .into_iter()
            .zip(campus_ports::Archived::ALL)
        {
            assert_eq!(wire(ours), theirs.as_str());
            assert_eq!(campus_ports::Archived::from(ours), theirs);
        }
    }

    /// The wire names are the core's, as `CAMPUS_TASK_PRIORITIES` spells them.
    #[test]
    fn the_priority_enum_carries_the_core_names() {
        for p in CorePriority::ALL {
            assert_eq!(wire(Priority::from(p)), p.as_str());
        }
    }

    #[test]
    fn the_backlog_counts_every_priority_interactive_first() {
        use poem_openapi::types::ToJSON;
        let counts = |interactive, normal, bulk| PriorityCounts {
            interactive,
            normal,
            bulk,
        };
        let backlog = campus_ports::DueBacklog {
            institutions: vec![campus_ports::InstitutionBacklog {
                institution_id: None,
                name: None,
                due: counts(0, 2, 5),
            }],
            total: counts(1, 2, 5),
        };
        let by_priority = |i, n, b| {
            serde_json::json!([
                {"priority": "interactive", "count": i},
                {"priority": "normal", "count": n},
                {"priority": "bulk", "count": b},
            ])
        };
        assert_eq!(
            due_backlog(backlog).to_json(),
            Some(serde_json::json!({
                "institutions": [{
                    "institution_id": null,
                    "institution_name": null,
                    "by_priority": by_priority(0, 2, 5),
                    "total": 7,
                }],
                "by_priority": by_priority(1, 2, 5),
                "total": 8,
            }))
        );
    }
}
