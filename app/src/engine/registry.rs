//! The handler registry. Adding an event type, its handler and its task touches only the
//! registration (see `crate::handlers::register`), never the engine.

use async_trait::async_trait;
use campus_core::engine::{EventEnvelope, PlannedTask};
use campus_ports::{ClaimedTask, EventPlanner, Payload, PlanFailure};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Why a task attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    pub message: String,
    /// A permanent failure is not retried (e.g. the user no longer exists).
    pub permanent: bool,
}

impl TaskError {
    /// A failure that may succeed later (network, database, SMTP down): retried.
    pub fn transient(message: impl fmt::Display) -> Self {
        TaskError {
            message: message.to_string(),
            permanent: false,
        }
    }

    /// A failure that retrying cannot fix: the task is dead at once.
    pub fn permanent(message: impl fmt::Display) -> Self {
        TaskError {
            message: message.to_string(),
            permanent: true,
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

/// Runs the tasks of one task type. Must be idempotent per `task.lineage_id`: a retry after
/// a crash may run it again.
#[async_trait]
pub trait TaskHandler: Send + Sync {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError>;
}

/// Builds a task's payload from an event's envelope; `Err` fails the event's dispatch.
pub type PlanFn = dyn Fn(&EventEnvelope<Payload>) -> Result<Payload, String> + Send + Sync;

struct Route {
    handler: String,
    task_type: String,
    plan: Box<PlanFn>,
}

struct TaskRoute {
    handler: Arc<dyn TaskHandler>,
    max_attempts: Option<u32>,
}

/// Which handlers react to which event types, and which task handler runs each task type.
pub struct Registry {
    routes: HashMap<String, Vec<Route>>,
    tasks: HashMap<String, TaskRoute>,
    default_max_attempts: u32,
}

impl Registry {
    /// An empty registry; tasks get `default_max_attempts` unless their type says otherwise.
    pub fn new(default_max_attempts: u32) -> Self {
        Registry {
            routes: HashMap::new(),
            tasks: HashMap::new(),
            default_max_attempts: default_max_attempts.max(1),
        }
    }

    /// When an event of `event_type` is dispatched, handler `handler` plans one task of
    /// `task_type` whose payload is the event's payload. Several handlers may react to one
    /// event type; handler names must be unique per event type.
    pub fn on_event(self, event_type: &str, handler: &str, task_type: &str) -> Self {
        self.on_event_with(event_type, handler, task_type, |e| Ok(e.payload.clone()))
    }

    /// Like [`Registry::on_event`], with a function that builds the task payload.
    pub fn on_event_with(
        mut self,
        event_type: &str,
        handler: &str,
        task_type: &str,
        plan: impl Fn(&EventEnvelope<Payload>) -> Result<Payload, String> + Send + Sync + 'static,
    ) -> Self {
        let routes = self.routes.entry(event_type.to_string()).or_default();
        assert!(
            routes.iter().all(|r| r.handler != handler),
            "handler {handler} is registered twice for {event_type}"
        );
        routes.push(Route {
            handler: handler.to_string(),
            task_type: task_type.to_string(),
            plan: Box::new(plan),
        });
        self
    }

    /// Registers the handler that runs tasks of `task_type`.
    pub fn task(self, task_type: &str, handler: impl TaskHandler + 'static) -> Self {
        self.task_arc(task_type, Arc::new(handler), None)
    }

    /// Registers a task handler with its own maximum number of attempts.
    pub fn task_arc(
        mut self,
        task_type: &str,
        handler: Arc<dyn TaskHandler>,
        max_attempts: Option<u32>,
    ) -> Self {
        let previous = self.tasks.insert(
            task_type.to_string(),
            TaskRoute {
                handler,
                max_attempts,
            },
        );
        assert!(
            previous.is_none(),
            "task type {task_type} is registered twice"
        );
        self
    }

    /// The handler of a task type.
    pub fn task_handler(&self, task_type: &str) -> Option<Arc<dyn TaskHandler>> {
        self.tasks.get(task_type).map(|t| t.handler.clone())
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
        let Some(routes) = self.routes.get(&event.event_type) else {
            return Ok(Vec::new());
        };
        routes
            .iter()
            .map(|r| {
                let payload = (r.plan)(event).map_err(|message| PlanFailure {
                    handler: r.handler.clone(),
                    message,
                })?;
                Ok(PlannedTask {
                    task_type: r.task_type.clone(),
                    handler: r.handler.clone(),
                    payload,
                    max_attempts: None,
                })
            })
            .collect()
    }

    fn max_attempts(&self, task_type: &str) -> u32 {
        self.tasks
            .get(task_type)
            .and_then(|t| t.max_attempts)
            .unwrap_or(self.default_max_attempts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_core::ids::EventId;
    use campus_core::Timestamp;

    struct Nothing;
    #[async_trait]
    impl TaskHandler for Nothing {
        async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
            Ok(())
        }
    }

    fn event(t: &str) -> EventEnvelope<Payload> {
        EventEnvelope {
            id: EventId(1),
            event_type: t.into(),
            aggregate_type: "A".into(),
            aggregate_id: 1,
            institution_id: None,
            payload: r#"{"x":1}"#.into(),
            occurred_at: Timestamp(0),
            correlation_id: None,
            reprocessed_from: None,
        }
    }

    #[test]
    fn plans_one_task_per_handler() {
        let r = Registry::new(5)
            .on_event("Happened", "first", "do_a")
            .on_event_with("Happened", "second", "do_b", |_| Ok("{}".into()))
            .task_arc("do_a", Arc::new(Nothing), Some(2))
            .task("do_b", Nothing);
        let tasks = r.plan(&event("Happened")).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].payload, r#"{"x":1}"#);
        assert_eq!(tasks[1].task_type, "do_b");
        assert!(r.plan(&event("Other")).unwrap().is_empty());
        assert_eq!(r.max_attempts("do_a"), 2);
        assert_eq!(r.max_attempts("do_b"), 5);
    }

    #[test]
    fn a_failing_plan_names_its_handler() {
        let r =
            Registry::new(5).on_event_with("Happened", "picky", "t", |_| Err("bad payload".into()));
        let err = r.plan(&event("Happened")).unwrap_err();
        assert_eq!(
            err,
            PlanFailure {
                handler: "picky".into(),
                message: "bad payload".into()
            }
        );
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn duplicate_handlers_are_refused() {
        let _ = Registry::new(5)
            .on_event("E", "h", "t")
            .on_event("E", "h", "t");
    }
}
