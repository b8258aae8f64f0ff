//! Read side of the engine for operators: filtered, keyset-paginated lists of events and
//! tasks (their filters in [`filter`]), their details with lineage, and a summary. `scope`
//! limits every query to one institution (`None`: all, for Adm users). The operators'
//! browser sessions are in [`sessions`].

pub mod filter;
pub mod sessions;

pub use filter::*;
pub use sessions::*;

use crate::PortError;
use campus_core::engine::{EventStatus, Priority, TaskStatus};
use campus_core::ids::*;
use campus_core::Timestamp;

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
    pub status: EventStatus,
    pub attempts: u32,
    /// The id of the request that caused the event (a copy keeps its original's).
    pub correlation_id: Option<String>,
    /// On a reprocessed copy: the id of the operator's request that made it.
    pub reprocess_request_id: Option<String>,
    /// The user who caused the event (`None`: a system actor or an anonymous request).
    pub actor_id: Option<UserId>,
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
    pub status: TaskStatus,
    pub attempt: u32,
    pub max_attempts: u32,
    /// The correlation id of its event or of whoever enqueued it (a copy keeps its
    /// original's).
    pub correlation_id: Option<String>,
    /// On a reprocessed copy (or a task of a reprocessed event): the id of the operator's
    /// request that made it.
    pub reprocess_request_id: Option<String>,
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

/// How many items are in one status (`S`: [`EventStatus`] or [`TaskStatus`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCount<S> {
    pub status: S,
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
    pub events_by_status: Vec<StatusCount<EventStatus>>,
    pub tasks_by_status: Vec<StatusCount<TaskStatus>>,
    /// `(task type, status, count)` for every status but `succeeded` (the bulk), exact.
    pub tasks_by_type: Vec<(String, TaskStatus, i64)>,
    /// The last hour, oldest minute first.
    pub per_minute: Vec<MinuteCounts>,
    /// Of the tasks created in the last hour that finished or are retrying, the share that
    /// failed (retrying or dead); 0 when idle.
    pub failure_rate: f64,
    pub oldest_pending_event_age_s: Option<f64>,
    pub oldest_pending_task_age_s: Option<f64>,
    pub due_backlog: DueBacklog,
}

/// How many tasks there are of each priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PriorityCounts {
    pub interactive: i64,
    pub normal: i64,
    pub bulk: i64,
}

impl PriorityCounts {
    pub fn get(&self, p: Priority) -> i64 {
        match p {
            Priority::Interactive => self.interactive,
            Priority::Normal => self.normal,
            Priority::Bulk => self.bulk,
        }
    }

    pub fn add(&mut self, p: Priority, n: i64) {
        match p {
            Priority::Interactive => self.interactive += n,
            Priority::Normal => self.normal += n,
            Priority::Bulk => self.bulk += n,
        }
    }

    pub fn total(&self) -> i64 {
        self.interactive + self.normal + self.bulk
    }
}

/// Most institutions a [`DueBacklog`] lists.
pub const BACKLOG_INSTITUTIONS: usize = 20;

/// The due tasks of one institution, or of no institution (`institution_id: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstitutionBacklog {
    pub institution_id: Option<InstitutionId>,
    /// The institution's name (`None` for tasks of no institution, or of an id that names no
    /// institution).
    pub name: Option<String>,
    pub due: PriorityCounts,
}

/// The tasks due now and waiting for a worker: pending or retrying, their `run_at` passed
/// (of the summary's institution and task type; its time range does not apply).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DueBacklog {
    /// The top [`BACKLOG_INSTITUTIONS`] (20) institutions by due tasks, most first (ties by
    /// id, tasks of no institution first); the others are left out.
    pub institutions: Vec<InstitutionBacklog>,
    /// Every due task, by priority (the institutions left out included).
    pub total: PriorityCounts,
}

/// How one task type fared over a period: its attempts' outcome and handler latency.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeStats {
    pub task_type: String,
    /// Tasks of the period that succeeded.
    pub succeeded: i64,
    /// Tasks of the period that are dead, or retrying after a failed attempt.
    pub failed: i64,
    /// Handler duration of the finished ones (succeeded or dead), in milliseconds.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

impl TypeStats {
    /// `failed / (succeeded + failed)`, 0 without either.
    pub fn failure_rate(&self) -> f64 {
        let all = self.succeeded + self.failed;
        if all == 0 {
            0.0
        } else {
            self.failed as f64 / all as f64
        }
    }
}

/// Most events one page of an audit trail holds.
pub const MAX_AUDIT_LIMIT: u32 = 1000;

/// One page of an entity's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    /// An aggregate type as `DomainEvent::aggregate` names it (`User`, `Class`, …).
    pub aggregate_type: String,
    pub aggregate_id: u128,
    /// Only events after this one (ids are time-ordered).
    pub after: Option<EventId>,
    pub limit: u32,
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
    /// An entity's audit trail: the events it recorded, live and archived, oldest first
    /// (originals only: a reprocessed copy repeats its original's business change). A
    /// `User`'s trail also has the events that name the user as `student_id` (enrolments and
    /// grades, whose aggregate is the class).
    async fn audit_trail(
        &self,
        query: &AuditQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, PortError>;
    /// Per task type, the tasks created at or after `since` (within `scope`): outcomes and
    /// handler latency, by type name.
    async fn type_stats(
        &self,
        since: Timestamp,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TypeStats>, PortError>;
    /// `(id, name)` of the institutions within `scope`, by name, at most `limit`.
    async fn institutions(
        &self,
        scope: Option<InstitutionId>,
        limit: u32,
    ) -> Result<Vec<(InstitutionId, String)>, PortError>;
}
