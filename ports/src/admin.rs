//! Read side of the engine for operators: filtered, keyset-paginated lists of events and
//! tasks, their details with lineage, and a summary. `scope` limits every query to one
//! institution (`None`: all, for Adm users).

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

/// Counts for the overview.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineSummary {
    pub events_by_status: Vec<(String, i64)>,
    pub tasks_by_status: Vec<(String, i64)>,
    /// `(task type, status, count)`.
    pub tasks_by_type: Vec<(String, String, i64)>,
    /// `(minute, events, tasks finished, tasks failed)` over the last hour.
    pub per_minute: Vec<(Timestamp, i64, i64, i64)>,
    /// Failed attempts / finished attempts over the last hour (0 when idle).
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
    async fn summary(&self, scope: Option<InstitutionId>) -> Result<EngineSummary, PortError>;
}
