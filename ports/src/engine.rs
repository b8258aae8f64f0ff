//! Ports of the event/task engine: the event store (outbox) and the task queue.
//!
//! Payloads cross these ports as JSON text; the engine never interprets them.

use crate::PortError;
use campus_core::engine::{EventEnvelope, PlannedTask, Priority, RetryPolicy};
use campus_core::ids::*;
use campus_core::Timestamp;
use std::sync::Arc;
use std::time::Duration;

/// A payload as JSON text.
pub type Payload = String;

/// An event to append outside an aggregate (synthetic events, tools, tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub event_type: String,
    pub aggregate_type: String,
    pub aggregate_id: u128,
    pub institution_id: Option<InstitutionId>,
    pub payload: Payload,
    pub correlation_id: Option<String>,
}

/// Why a handler could not plan its task for an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanFailure {
    pub handler: String,
    pub message: String,
}

/// Turns one event into the tasks of every handler registered for its type.
#[cfg_attr(feature = "mocks", mockall::automock)]
pub trait EventPlanner: Send + Sync {
    /// The tasks to create; an error fails the whole event (retried, then dead) without
    /// affecting other events of the batch.
    fn plan(
        &self,
        event: &EventEnvelope<Payload>,
    ) -> Result<Vec<PlannedTask<Payload>>, PlanFailure>;
    /// Default maximum attempts of a task type (when the plan does not override it).
    fn max_attempts(&self, task_type: &str) -> u32;
}

/// What one dispatch round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Events claimed in this round.
    pub events: usize,
    /// Tasks inserted (duplicates of an earlier dispatch are not counted).
    pub tasks: usize,
    /// Events whose planning failed (now retrying or dead).
    pub failed: usize,
}

/// What a dispatch round may claim of the tasks it inserts, for the daemon that runs it: a
/// task it takes then is inserted running instead of waiting for a claim of its own (one row
/// version and one statement less per task).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimOnInsert {
    /// The claiming worker (as in [`TaskQueue::claim`]).
    pub worker: String,
    /// The types it may take, within their caps and the institutions' room.
    pub types: ClaimTypes,
    /// At most this many tasks.
    pub limit: u32,
    /// The lease of each task taken.
    pub lease: Duration,
}

/// The domain events table: appends and fan-out.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events in one transaction and returns their ids.
    async fn append(&self, events: &[NewEvent]) -> Result<Vec<EventId>, PortError>;

    /// Claims up to `limit` due events (`FOR UPDATE SKIP LOCKED`), plans their tasks and, in
    /// ONE transaction, inserts the tasks (unique per event + handler) and marks the events
    /// dispatched. A failed plan sets that event to retrying/dead per `retry`.
    async fn dispatch_pending(
        &self,
        limit: u32,
        planner: Arc<dyn EventPlanner>,
        retry: &RetryPolicy,
    ) -> Result<DispatchReport, PortError>;

    /// [`EventStore::dispatch_pending`], and in the same transaction claims for `claim.worker`
    /// up to `claim.limit` of the tasks it inserts that a claim could take now: of a type in
    /// `claim.types` within its cap and not paused, of an institution with room, kept in no
    /// order. Those are inserted running (attempt 1, leased) and returned, in the order they
    /// were planned; the others wait for a claim. For a daemon with nothing else due: taking
    /// them at once saves the claim. An adapter may take none (the default).
    async fn dispatch_and_claim(
        &self,
        limit: u32,
        planner: Arc<dyn EventPlanner>,
        retry: &RetryPolicy,
        claim: &ClaimOnInsert,
    ) -> Result<(DispatchReport, Vec<ClaimedTask>), PortError> {
        let _ = claim;
        Ok((
            self.dispatch_pending(limit, planner, retry).await?,
            Vec::new(),
        ))
    }

    /// Inserts a copy of a dispatched or dead event (same type, aggregate, payload and
    /// correlation id, `reprocessed_from` = the original), which fans out again; the original
    /// never changes. `request_id` (the operator's request) is stored as the copy's
    /// `reprocess_request_id`, and its tasks inherit it. `scope` limits it to one
    /// institution's events. Errors: `NotFound` (or out of scope), `Conflict` when the event
    /// is still pending/retrying or a copy is waiting.
    async fn reprocess_event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<EventId, PortError>;
}

/// A task to enqueue directly (not planned from an event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTask {
    pub task_type: String,
    pub payload: Payload,
    pub institution_id: Option<InstitutionId>,
    pub correlation_id: Option<String>,
    pub max_attempts: u32,
    /// Unique key; a second task with the same key is not inserted.
    pub idempotency_key: Option<String>,
    /// When the task becomes due; `None` (or a past instant) means now.
    pub run_at: Option<Timestamp>,
    /// Its turn among due tasks (normally its type's priority).
    pub priority: Priority,
}

/// Which task types one claim may take, and how many of each institution. A daemon claims
/// only the types it has a handler for, so a daemon of an older release running next to a
/// newer one never takes (and dead-letters) a type it does not know; paused types are never
/// claimed.
///
/// Within these bounds every adapter's claim splits the limit between the institutions with
/// due work by [`campus_core::engine::fair_shares`] (tasks of no institution are one more
/// group) and takes each group's tasks by turn ([`Priority::turn`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimTypes {
    /// Types claimed without a per-type cap.
    pub any: Vec<String>,
    /// Types capped on this claim: at most this many tasks of the type (a per-type
    /// concurrency limit minus what the daemon already runs of it). A type at 0 is left out.
    pub capped: Vec<(String, u32)>,
    /// The per-institution cap: at most this many tasks of an institution not listed in
    /// `institutions` (`None`: no cap).
    pub institution_cap: Option<u32>,
    /// What is left of the cap for the institutions the daemon runs tasks of: at most this
    /// many of their tasks (`None` is the group of tasks without an institution).
    pub institutions: Vec<(Option<InstitutionId>, u32)>,
}

impl ClaimTypes {
    /// Every type in `types`, uncapped.
    pub fn of<S: Into<String>>(types: impl IntoIterator<Item = S>) -> Self {
        ClaimTypes {
            any: types.into_iter().map(Into::into).collect(),
            ..ClaimTypes::default()
        }
    }

    pub fn is_empty(&self) -> bool {
        self.any.is_empty() && self.capped.iter().all(|(_, n)| *n == 0)
    }
}

/// A task claimed by a worker for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTask {
    pub id: TaskId,
    pub task_type: String,
    pub payload: Payload,
    pub institution_id: Option<InstitutionId>,
    pub event_id: Option<EventId>,
    pub correlation_id: Option<String>,
    /// The first task of this task's reprocessing lineage (itself for an original task):
    /// side effects are deduplicated per lineage.
    pub lineage_id: TaskId,
    /// This attempt's number, 1-based.
    pub attempt: u32,
    pub max_attempts: u32,
    pub created_at: Timestamp,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    Succeeded,
    Failed {
        message: String,
        permanent: bool,
        /// When to retry, instead of the retry policy's backoff (e.g. a receiver's
        /// `Retry-After`, or a task type's own schedule).
        retry_in: Option<Duration>,
    },
}

/// The result of one attempt, reported by the worker that claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub id: TaskId,
    pub attempt: u32,
    /// The claimed task's `max_attempts` (decides retrying vs dead).
    pub max_attempts: u32,
    pub outcome: TaskOutcome,
    pub duration: Duration,
}

/// The tasks table: enqueue, claim with a lease, and fenced completion.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait TaskQueue: Send + Sync {
    /// Enqueues tasks; returns how many were inserted (idempotency-key duplicates are not).
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<usize, PortError>;

    /// Claims up to `limit` due tasks of `types` (never a paused type) for `worker`, holding
    /// each for `lease`; the oldest due first.
    async fn claim(
        &self,
        worker: &str,
        types: &ClaimTypes,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, PortError>;

    /// Records outcomes. Fenced: an outcome is accepted only while `worker` still holds that
    /// attempt. Failures become retrying (per `retry`) or dead. Returns how many were accepted.
    async fn complete(
        &self,
        worker: &str,
        completions: &[Completion],
        retry: &RetryPolicy,
    ) -> Result<usize, PortError>;

    /// Extends the lease of tasks `worker` still holds; returns the ones it still holds.
    async fn heartbeat(
        &self,
        worker: &str,
        tasks: &[TaskId],
        lease: Duration,
    ) -> Result<Vec<TaskId>, PortError>;

    /// Returns up to `limit` running tasks whose lease expired to `retrying` (or `dead` when
    /// no attempt is left): the attempt counts as failed. Returns how many it rescued.
    async fn rescue_expired(&self, retry: &RetryPolicy, limit: u32) -> Result<usize, PortError>;

    /// Inserts a copy of a finished task (same type, payload, origin and correlation id;
    /// `reprocessed_from` = the original; same lineage, so idempotent effects are not
    /// repeated); `request_id` (the operator's request) is stored as its
    /// `reprocess_request_id`. The original never changes. Errors: `NotFound` (or out of
    /// `scope`), `Conflict` when the task is not finished or a copy of it is still waiting
    /// to run.
    async fn reprocess_task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<TaskId, PortError>;

    /// Copies up to `limit` finished tasks matching `filter` (oldest first), skipping those
    /// with a copy still waiting to run and, unless the filter asks for succeeded tasks, those
    /// a later copy of their lineage already fixed (it succeeded); each copy as
    /// [`TaskQueue::reprocess_task`] makes it, with `request_id`. Returns how many copies it
    /// made. Errors: `Conflict` when the filter's status is not final.
    async fn reprocess_tasks(
        &self,
        filter: &TaskFilter,
        limit: u32,
        request_id: Option<String>,
    ) -> Result<usize, PortError>;
}

/// Which tasks a bulk operation selects. `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub task_type: Option<String>,
    pub institution_id: Option<InstitutionId>,
    /// A final status (`succeeded`, `dead`, `cancelled`); `None` means `dead`.
    pub status: Option<campus_core::engine::TaskStatus>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    /// Only tasks produced by this event.
    pub event_id: Option<EventId>,
    /// Tasks with this correlation id or this `reprocess_request_id` (as the lists match).
    pub correlation_id: Option<String>,
    /// Case-insensitive text searched in the payload.
    pub text: Option<String>,
}

/// Operator controls over tasks and task types.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait::async_trait]
pub trait TaskControl: Send + Sync {
    /// Cancels a task that has not started: a pending or retrying task becomes `cancelled`
    /// (final, reprocessable). Fenced against a concurrent claim: whichever comes first wins.
    /// Errors: `NotFound` (or out of `scope`); `Conflict` when the task is running or finished.
    async fn cancel_task(&self, id: TaskId, scope: Option<InstitutionId>) -> Result<(), PortError>;

    /// Pauses (`true`) or resumes a task type for every daemon of the store: a paused type is
    /// not claimed (running tasks finish). Idempotent.
    async fn set_paused(&self, task_type: &str, paused: bool) -> Result<(), PortError>;

    /// The paused task types.
    async fn paused_types(&self) -> Result<Vec<String>, PortError>;

    /// Tasks waiting (pending or retrying), running and dead, by type, for `types` (every
    /// type given gets a row, in the same order).
    async fn type_counts(&self, types: &[String]) -> Result<Vec<TypeCounts>, PortError>;
}

/// How many tasks of one type are in the active states, and dead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeCounts {
    pub task_type: String,
    pub waiting: i64,
    pub running: i64,
    pub dead: i64,
}
