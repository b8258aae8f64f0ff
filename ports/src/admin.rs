//! Read side of the engine for operators: filtered, keyset-paginated lists of events and
//! tasks, their details with lineage, and a summary. `scope` limits every query to one
//! institution (`None`: all, for Adm users). Also the operators' browser sessions.

use crate::PortError;
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::ids::*;
use campus_core::Timestamp;

/// Filters of the event list. `None` does not filter. Newest first; `before` is the last id
/// of the previous page (ids are time-ordered, so pages stay stable while rows are inserted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    pub institution_id: Option<InstitutionId>,
    pub event_type: Option<String>,
    pub status: Option<EventStatus>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub correlation_id: Option<String>,
    pub has_errors: Option<bool>,
    /// Case-insensitive text searched in the payload.
    pub text: Option<String>,
    pub before: Option<EventId>,
    pub limit: u32,
}

/// Filters of the task list; see [`EventQuery`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    pub institution_id: Option<InstitutionId>,
    pub task_type: Option<String>,
    pub status: Option<TaskStatus>,
    pub event_id: Option<EventId>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub correlation_id: Option<String>,
    pub has_errors: Option<bool>,
    pub text: Option<String>,
    pub before: Option<TaskId>,
    pub limit: u32,
}

/// One failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptError {
    pub at: String,
    pub attempt: u32,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventView {
    pub id: EventId,
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: u128,
    pub institution_id: Option<InstitutionId>,
    pub status: String,
    pub attempts: u32,
    pub correlation_id: Option<String>,
    pub occurred_at: Timestamp,
    pub dispatched_at: Option<Timestamp>,
    pub reprocessed_from: Option<EventId>,
    pub errors: Vec<AttemptError>,
    /// JSON text.
    pub payload: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    pub id: TaskId,
    pub task_type: String,
    pub handler: Option<String>,
    pub institution_id: Option<InstitutionId>,
    pub event_id: Option<EventId>,
    pub status: String,
    pub attempt: u32,
    pub max_attempts: u32,
    pub correlation_id: Option<String>,
    pub reprocessed_from: Option<TaskId>,
    pub lineage_id: TaskId,
    pub run_at: Timestamp,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub duration_ms: Option<f64>,
    pub errors: Vec<AttemptError>,
    /// JSON text.
    pub payload: String,
}

/// An event with what it produced and its copies.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDetail {
    pub event: EventView,
    pub tasks: Vec<TaskView>,
    pub copies: Vec<EventId>,
}

/// A task with its copies.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskDetail {
    pub task: TaskView,
    pub copies: Vec<TaskId>,
}

/// Filters of the summary. `None` does not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SummaryQuery {
    pub institution_id: Option<InstitutionId>,
    /// Counts of events of this type only.
    pub event_type: Option<String>,
    /// Counts of tasks of this type only.
    pub task_type: Option<String>,
    /// Counts of items recorded (events) or created (tasks) in this range; the per-minute
    /// series always covers the last hour.
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// How many items are in one status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount {
    pub status: String,
    pub count: i64,
    /// The count is the planner's estimate (only for the bulk status of a large table:
    /// `dispatched` events, `succeeded` tasks); every other count is exact.
    pub approximate: bool,
}

/// One minute of the last hour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCounts {
    pub minute: Timestamp,
    /// Events recorded in this minute.
    pub events: i64,
    /// Tasks created in this minute, by what became of them so far.
    pub tasks_succeeded: i64,
    pub tasks_failed: i64,
}

/// Counts for the overview.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineSummary {
    pub events_by_status: Vec<StatusCount>,
    pub tasks_by_status: Vec<StatusCount>,
    /// `(task type, status, count)` for every status but `succeeded` (the bulk), exact.
    pub tasks_by_type: Vec<(String, String, i64)>,
    /// The last hour, oldest minute first.
    pub per_minute: Vec<MinuteCounts>,
    /// Of the tasks created in the last hour that finished or are retrying, the share that
    /// failed (retrying or dead); 0 when idle.
    pub failure_rate: f64,
    pub oldest_pending_event_age_s: Option<f64>,
    pub oldest_pending_task_age_s: Option<f64>,
}

#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait EngineLog: Send + Sync {
    async fn list_events(
        &self,
        query: &EventQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, PortError>;
    /// Errors: `NotFound` (also when out of scope).
    async fn event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
    ) -> Result<EventDetail, PortError>;
    async fn list_tasks(
        &self,
        query: &TaskQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TaskView>, PortError>;
    /// Errors: `NotFound` (also when out of scope).
    async fn task(&self, id: TaskId, scope: Option<InstitutionId>)
        -> Result<TaskDetail, PortError>;
    async fn summary(
        &self,
        query: &SummaryQuery,
        scope: Option<InstitutionId>,
    ) -> Result<EngineSummary, PortError>;
    /// `(id, name)` of the institutions within `scope`, by name, at most `limit`.
    async fn institutions(
        &self,
        scope: Option<InstitutionId>,
        limit: u32,
    ) -> Result<Vec<(InstitutionId, String)>, PortError>;
}

/// A signed-in operator (Adm or Academic) of the admin screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    pub user_id: UserId,
    pub role: campus_core::values::Role,
    pub institution_id: Option<InstitutionId>,
    pub name: String,
    pub email: String,
    /// Must come back with every state-changing form of this session.
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// Browser sessions of operators, stored by the hash of their token.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session (and forgets expired ones).
    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<(), PortError>;
    /// The session with this token hash, unless it expired by `now`.
    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<OperatorSession>, PortError>;
    /// Ends the session (no error when there is none).
    async fn delete_session(&self, token_hash: &str) -> Result<(), PortError>;
}
