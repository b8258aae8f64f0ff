//! The handler registry: which event types become which tasks (routes), which handler runs
//! each task type, and each task type's options (attempts, timeout, concurrency limit).
//! Adding an event type, its handler and its task touches only the registration (see
//! `crate::handlers::register`), never the engine. [`Registry::validate`] refuses, before a
//! daemon starts, a route from an event type nobody records and a route to a task type
//! nobody runs.

use super::typed::{Handler, Typed};
use async_trait::async_trait;
use campus_core::engine::{ordering_key, EventEnvelope, PlannedTask, Priority};
use campus_core::events::EventType;
use campus_ports::{ClaimTypes, ClaimedTask, EventPlanner, Payload, PlanFailure};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Why a task attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    pub message: String,
    /// A permanent failure is not retried (e.g. the user no longer exists).
    pub permanent: bool,
    /// When to retry instead of the retry policy's backoff (see [`TaskError::retry_in`]).
    pub retry_in: Option<Duration>,
}

impl TaskError {
    /// A failure that may succeed later (network, database, SMTP down): retried.
    pub fn transient(message: impl fmt::Display) -> Self {
        TaskError {
            message: message.to_string(),
            permanent: false,
            retry_in: None,
        }
    }

    /// A failure to retry after `delay` rather than after the policy's backoff (a
    /// receiver's `Retry-After`, a task type's own schedule); still dead after the last
    /// attempt.
    pub fn retry_in(message: impl fmt::Display, delay: Duration) -> Self {
        TaskError {
            retry_in: Some(delay),
            ..TaskError::transient(message)
        }
    }

    /// A failure that retrying cannot fix: the task is dead at once.
    pub fn permanent(message: impl fmt::Display) -> Self {
        TaskError {
            message: message.to_string(),
            permanent: true,
            retry_in: None,
        }
    }
}

impl From<campus_ports::PortError> for TaskError {
    fn from(e: campus_ports::PortError) -> Self {
        match e {
            campus_ports::PortError::Unavailable(_) | campus_ports::PortError::Busy(_) => {
                TaskError::transient(e)
            }
            _ => TaskError::permanent(e),
        }
    }
}

/// Runs the tasks of one task type from their raw (JSON) payload. Must be idempotent per
/// `task.lineage_id`: a retry after a crash may run it again. Prefer [`Handler`], which
/// receives its input typed.
#[async_trait]
pub trait TaskHandler: Send + Sync {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError>;
}

/// How tasks of one type run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskOptions {
    /// Attempts before a task is dead; `None`: the registry's default.
    pub max_attempts: Option<u32>,
    /// An attempt running longer is stopped and counts as a failed attempt (retried per the
    /// policy); its worker slot is freed.
    pub timeout: Duration,
    /// At most this many tasks of the type run at once in one daemon; `None`: no limit
    /// beyond the daemon's concurrency.
    pub concurrency: Option<u32>,
    /// Its tasks' turn among due tasks (`CAMPUS_TASK_PRIORITIES` overrides it).
    pub priority: Priority,
}

/// The timeout of a task type that does not choose one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            max_attempts: None,
            timeout: DEFAULT_TIMEOUT,
            concurrency: None,
            priority: Priority::Normal,
        }
    }
}

/// Builds a task's payload from an event's envelope (`None`: no task for this event); `Err`
/// fails the event's dispatch.
pub type PlanFn = dyn Fn(&EventEnvelope<Payload>) -> Result<Option<Payload>, String> + Send + Sync;

struct Route {
    handler: String,
    task_type: String,
    plan: Box<PlanFn>,
    /// Its tasks of one aggregate's events run one at a time, in the events' order.
    in_order: bool,
}

struct TaskRoute {
    handler: Arc<dyn TaskHandler>,
    options: TaskOptions,
}

/// A registry that [`Registry::validate`] refused, naming the route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "route {event_type} → {handler} → {task_type}: no aggregate records {event_type} \
         (use an EventType, or declare an event appended by tools with external_event)"
    )]
    UnknownEvent {
        event_type: String,
        handler: String,
        task_type: String,
    },
    #[error(
        "route {event_type} → {handler} → {task_type}: no handler is registered for task \
         type {task_type}"
    )]
    NoTaskHandler {
        event_type: String,
        handler: String,
        task_type: String,
    },
    #[error("a priority is set for task type {0}, which has no handler")]
    UnknownPriorityType(String),
}

/// Which handlers react to which event types, and which task handler runs each task type.
pub struct Registry {
    routes: HashMap<String, Vec<Route>>,
    tasks: HashMap<String, TaskRoute>,
    external: BTreeSet<String>,
    default_max_attempts: u32,
}

impl Registry {
    /// An empty registry; tasks get `default_max_attempts` unless their type says otherwise.
    pub fn new(default_max_attempts: u32) -> Self {
        Registry {
            routes: HashMap::new(),
            tasks: HashMap::new(),
            external: BTreeSet::new(),
            default_max_attempts: default_max_attempts.max(1),
        }
    }

    /// When an event of type `event` is dispatched, handler `handler` plans one task of
    /// `task_type` whose payload is the event's payload. Several handlers may react to one
    /// event type; handler names must be unique per event type.
    pub fn route(self, event: EventType, handler: &str, task_type: &str) -> Self {
        self.on_event(event.as_str(), handler, task_type)
    }

    /// Declares an event type that no aggregate records but tools append through
    /// `EventStore::append` (e.g. the bench's probe), so that routes from it validate.
    pub fn external_event(mut self, event_type: &str) -> Self {
        self.external.insert(event_type.to_string());
        self
    }

    /// Like [`Registry::route`] with the event type as a string (events appended by tools
    /// and tests). [`Registry::validate`] refuses it unless an aggregate records the type or
    /// it is declared with [`Registry::external_event`].
    pub fn on_event(self, event_type: &str, handler: &str, task_type: &str) -> Self {
        self.on_event_with(event_type, handler, task_type, |e| Ok(e.payload.clone()))
    }

    /// Like [`Registry::on_event`], with a function that builds the task payload.
    pub fn on_event_with(
        self,
        event_type: &str,
        handler: &str,
        task_type: &str,
        plan: impl Fn(&EventEnvelope<Payload>) -> Result<Payload, String> + Send + Sync + 'static,
    ) -> Self {
        self.on_event_when(event_type, handler, task_type, move |e| plan(e).map(Some))
    }

    /// Like [`Registry::on_event_with`], where the plan may also decide that this event
    /// needs no task of this handler (`Ok(None)`).
    pub fn on_event_when(
        self,
        event_type: &str,
        handler: &str,
        task_type: &str,
        plan: impl Fn(&EventEnvelope<Payload>) -> Result<Option<Payload>, String>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.add_route(event_type, handler, task_type, Box::new(plan), false)
    }

    /// Like [`Registry::on_event_with`], and this handler's tasks of one aggregate's events
    /// run one at a time in the order the events were recorded: a task waits while the task of
    /// an earlier event of its aggregate waits, runs or retries, and while an earlier event of
    /// its aggregate waits for dispatch (a dead one no longer holds the rest back).
    pub fn on_event_in_order(
        self,
        event_type: &str,
        handler: &str,
        task_type: &str,
        plan: impl Fn(&EventEnvelope<Payload>) -> Result<Payload, String> + Send + Sync + 'static,
    ) -> Self {
        let plan = move |e: &EventEnvelope<Payload>| plan(e).map(Some);
        self.add_route(event_type, handler, task_type, Box::new(plan), true)
    }

    fn add_route(
        mut self,
        event_type: &str,
        handler: &str,
        task_type: &str,
        plan: Box<PlanFn>,
        in_order: bool,
    ) -> Self {
        let routes = self.routes.entry(event_type.to_string()).or_default();
        assert!(
            routes.iter().all(|r| r.handler != handler),
            "handler {handler} is registered twice for {event_type}"
        );
        routes.push(Route {
            handler: handler.to_string(),
            task_type: task_type.to_string(),
            plan,
            in_order,
        });
        self
    }

    /// Registers a typed handler under its task type, with its options.
    pub fn handle<H: Handler>(self, handler: H) -> Self {
        let options = handler.options();
        self.task_with(H::TASK_TYPE, Arc::new(Typed(handler)), options)
    }

    /// Registers the handler that runs tasks of `task_type` (raw payload, default options).
    pub fn task(self, task_type: &str, handler: impl TaskHandler + 'static) -> Self {
        self.task_arc(task_type, Arc::new(handler), None)
    }

    /// Registers a task handler with its own maximum number of attempts.
    pub fn task_arc(
        self,
        task_type: &str,
        handler: Arc<dyn TaskHandler>,
        max_attempts: Option<u32>,
    ) -> Self {
        let options = TaskOptions {
            max_attempts,
            ..TaskOptions::default()
        };
        self.task_with(task_type, handler, options)
    }

    /// Registers a task handler with its options.
    pub fn task_with(
        mut self,
        task_type: &str,
        handler: Arc<dyn TaskHandler>,
        options: TaskOptions,
    ) -> Self {
        let previous = self
            .tasks
            .insert(task_type.to_string(), TaskRoute { handler, options });
        assert!(
            previous.is_none(),
            "task type {task_type} is registered twice"
        );
        self
    }

    /// Overrides the priority of task types (operators' configuration); a type without a
    /// handler is refused, naming it.
    pub fn prioritize(mut self, priorities: &[(String, Priority)]) -> Result<Self, RegistryError> {
        for (task_type, priority) in priorities {
            let route = self
                .tasks
                .get_mut(task_type)
                .ok_or_else(|| RegistryError::UnknownPriorityType(task_type.clone()))?;
            route.options.priority = *priority;
        }
        Ok(self)
    }

    /// Checks every route: its event type is recorded by an aggregate (or declared external)
    /// and its task type has a handler. The first refusal names the route.
    pub fn validate(&self) -> Result<(), RegistryError> {
        for (event_type, handler, task_type) in self.routes() {
            let known =
                EventType::parse(&event_type).is_some() || self.external.contains(&event_type);
            if !known {
                return Err(RegistryError::UnknownEvent {
                    event_type,
                    handler,
                    task_type,
                });
            }
            if !self.tasks.contains_key(&task_type) {
                return Err(RegistryError::NoTaskHandler {
                    event_type,
                    handler,
                    task_type,
                });
            }
        }
        Ok(())
    }

    /// The handler of a task type.
    pub fn task_handler(&self, task_type: &str) -> Option<Arc<dyn TaskHandler>> {
        self.tasks.get(task_type).map(|t| t.handler.clone())
    }

    /// The options of a task type (the defaults for a type without a handler).
    pub fn options(&self, task_type: &str) -> TaskOptions {
        self.tasks
            .get(task_type)
            .map(|t| t.options)
            .unwrap_or_default()
    }

    /// Every task type with a handler, sorted, with its options (attempts resolved).
    pub fn task_types(&self) -> Vec<(String, TaskOptions)> {
        let sorted: BTreeMap<_, _> = self.tasks.iter().collect();
        sorted
            .into_iter()
            .map(|(t, r)| {
                let options = TaskOptions {
                    max_attempts: Some(r.options.max_attempts.unwrap_or(self.default_max_attempts)),
                    ..r.options
                };
                (t.clone(), options)
            })
            .collect()
    }

    /// What one claim may take: every type this registry runs, the types with a concurrency
    /// limit capped at what `running(type)` leaves of it (left out at 0).
    pub fn claim_types(&self, running: impl Fn(&str) -> usize) -> ClaimTypes {
        let mut types = ClaimTypes::default();
        for (task_type, route) in &self.tasks {
            match route.options.concurrency {
                None => types.any.push(task_type.clone()),
                Some(limit) => {
                    let used = u32::try_from(running(task_type)).unwrap_or(u32::MAX);
                    let left = limit.saturating_sub(used);
                    if left > 0 {
                        types.capped.push((task_type.clone(), left));
                    }
                }
            }
        }
        types.any.sort();
        types.capped.sort();
        types
    }

    /// Whether a task type with a concurrency limit has tasks running (`running(type)` > 0):
    /// then a finished one may let the next claim take more of it.
    pub fn throttled(&self, running: impl Fn(&str) -> usize) -> bool {
        self.tasks
            .iter()
            .any(|(t, r)| r.options.concurrency.is_some() && running(t) > 0)
    }

    /// `(event type, handler, task type)` of every route, sorted, for docs and diagnostics.
    pub fn routes(&self) -> Vec<(String, String, String)> {
        let mut all: Vec<_> = self
            .routes
            .iter()
            .flat_map(|(e, rs)| {
                rs.iter()
                    .map(move |r| (e.clone(), r.handler.clone(), r.task_type.clone()))
            })
            .collect();
        all.sort();
        all
    }
}

impl EventPlanner for Registry {
    fn plan(
        &self,
        event: &EventEnvelope<Payload>,
    ) -> Result<Vec<PlannedTask<Payload>>, PlanFailure> {
        metrics::counter!(crate::metrics::EVENTS_DISPATCHED, "event_type" => event.event_type.clone())
            .increment(1);
        let Some(routes) = self.routes.get(&event.event_type) else {
            return Ok(Vec::new());
        };
        routes
            .iter()
            .filter_map(|r| {
                let payload = match (r.plan)(event) {
                    Ok(payload) => payload?,
                    Err(message) => {
                        return Some(Err(PlanFailure {
                            handler: r.handler.clone(),
                            message,
                        }))
                    }
                };
                Some(Ok(PlannedTask {
                    task_type: r.task_type.clone(),
                    handler: r.handler.clone(),
                    payload,
                    max_attempts: None,
                    priority: self.options(&r.task_type).priority,
                    ordering_key: r.in_order.then(|| {
                        ordering_key(&r.handler, &event.aggregate_type, event.aggregate_id)
                    }),
                }))
            })
            .collect()
    }

    fn max_attempts(&self, task_type: &str) -> u32 {
        self.tasks
            .get(task_type)
            .and_then(|t| t.options.max_attempts)
            .unwrap_or(self.default_max_attempts)
    }
}

#[cfg(test)]
mod tests;
