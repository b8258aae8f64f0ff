//! Operator use cases on the engine: reprocessing events and tasks (history is immutable:
//! every reprocess inserts a copy linked to its original), cancelling tasks that have not
//! started, pausing and resuming task types, and the list of task types with their options.

use super::AppError;
use crate::engine::TaskOptions;
use campus_core::ids::*;
use campus_ports::{
    AuditQuery, EngineLog, EngineSummary, EventDetail, EventQuery, EventStore, EventView,
    SummaryQuery, TaskControl, TaskDetail, TaskFilter, TaskQuery, TaskQueue, TaskView, TypeCounts,
};
use std::sync::Arc;
use std::time::Duration;

/// Most copies one bulk reprocess makes.
pub const BULK_LIMIT: u32 = 1000;

#[derive(Clone)]
pub struct OperationsService {
    pub events: Arc<dyn EventStore>,
    pub tasks: Arc<dyn TaskQueue>,
    pub log: Arc<dyn EngineLog>,
    pub controls: Arc<dyn TaskControl>,
    /// The task types this release runs and their options (from the handler registry).
    pub task_types: Arc<Vec<(String, TaskOptions)>>,
}

/// One task type as operators see it.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskTypeInfo {
    pub task_type: String,
    /// Paused types are not claimed by any daemon.
    pub paused: bool,
    /// Tasks of the type one daemon runs at once at most (`None`: its concurrency).
    pub concurrency: Option<u32>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub counts: TypeCounts,
}

impl OperationsService {
    /// Events matching `query`, newest first, within `scope`.
    pub async fn events(
        &self,
        query: &EventQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, AppError> {
        Ok(self.log.list_events(query, scope).await?)
    }

    pub async fn event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
    ) -> Result<EventDetail, AppError> {
        Ok(self.log.event(id, scope).await?)
    }

    /// Per task type, outcomes and handler latency of the tasks created since `since`.
    pub async fn type_stats(
        &self,
        since: campus_core::Timestamp,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<campus_ports::TypeStats>, AppError> {
        Ok(self.log.type_stats(since, scope).await?)
    }

    /// An entity's audit trail, oldest first, within `scope`.
    pub async fn audit_trail(
        &self,
        query: &AuditQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, AppError> {
        Ok(self.log.audit_trail(query, scope).await?)
    }

    /// Tasks matching `query`, newest first, within `scope`.
    pub async fn tasks(
        &self,
        query: &TaskQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TaskView>, AppError> {
        Ok(self.log.list_tasks(query, scope).await?)
    }

    pub async fn task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
    ) -> Result<TaskDetail, AppError> {
        Ok(self.log.task(id, scope).await?)
    }

    pub async fn summary(
        &self,
        query: &SummaryQuery,
        scope: Option<InstitutionId>,
    ) -> Result<EngineSummary, AppError> {
        Ok(self.log.summary(query, scope).await?)
    }

    /// Institutions an operator may filter by: all for Adm (by name, at most `limit`), their
    /// own for Academic users.
    pub async fn institutions(
        &self,
        scope: Option<InstitutionId>,
        limit: u32,
    ) -> Result<Vec<(InstitutionId, String)>, AppError> {
        Ok(self.log.institutions(scope, limit).await?)
    }

    /// Copies a dispatched or dead event; the copy fans out again. `scope` limits the caller
    /// to one institution. The copy keeps the original's correlation id; `request_id` (the
    /// operator's request) is recorded beside it.
    pub async fn reprocess_event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<EventId, AppError> {
        Ok(self.events.reprocess_event(id, scope, request_id).await?)
    }

    /// Copies a finished task; the copy runs again (correlation ids as for events).
    pub async fn reprocess_task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<TaskId, AppError> {
        Ok(self.tasks.reprocess_task(id, scope, request_id).await?)
    }

    /// Copies up to `limit` (at most [`BULK_LIMIT`]) finished tasks matching `filter`; a
    /// scoped caller only reaches their institution.
    pub async fn reprocess_tasks(
        &self,
        mut filter: TaskFilter,
        scope: Option<InstitutionId>,
        limit: Option<u32>,
        request_id: Option<String>,
    ) -> Result<usize, AppError> {
        if let Some(inst) = scope {
            if filter.institution_id.is_some_and(|i| i != inst) {
                return Err(AppError::Forbidden(
                    "you can only reprocess your institution's tasks".into(),
                ));
            }
            filter.institution_id = Some(inst);
        }
        let limit = limit.unwrap_or(BULK_LIMIT).clamp(1, BULK_LIMIT);
        Ok(self
            .tasks
            .reprocess_tasks(&filter, limit, request_id)
            .await?)
    }
}

impl OperationsService {
    /// Cancels a pending or retrying task (`Conflict` once it runs or finished).
    pub async fn cancel_task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
    ) -> Result<(), AppError> {
        self.controls.cancel_task(id, scope).await?;
        metrics::counter!(crate::metrics::TASKS_CANCELLED).increment(1);
        Ok(())
    }

    /// Pauses or resumes a task type this release knows, for every daemon.
    pub async fn set_paused(&self, task_type: &str, paused: bool) -> Result<(), AppError> {
        if !self.task_types.iter().any(|(t, _)| t == task_type) {
            return Err(AppError::NotFound("task type"));
        }
        Ok(self.controls.set_paused(task_type, paused).await?)
    }

    /// Every task type this release runs: options, paused flag, counts.
    pub async fn task_types(&self) -> Result<Vec<TaskTypeInfo>, AppError> {
        let names: Vec<String> = self.task_types.iter().map(|(t, _)| t.clone()).collect();
        let paused = self.controls.paused_types().await?;
        let counts = self.controls.type_counts(&names).await?;
        Ok(self
            .task_types
            .iter()
            .zip(counts)
            .map(|((task_type, options), counts)| TaskTypeInfo {
                task_type: task_type.clone(),
                paused: paused.contains(task_type),
                concurrency: options.concurrency,
                timeout: options.timeout,
                max_attempts: options.max_attempts.unwrap_or(1),
                counts,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_ports::{MockEngineLog, MockEventStore, MockTaskControl, MockTaskQueue};

    #[tokio::test]
    async fn a_scoped_caller_is_confined_to_their_institution() {
        let mut tasks = MockTaskQueue::new();
        tasks
            .expect_reprocess_tasks()
            .withf(|f, limit, _| f.institution_id == Some(InstitutionId(7)) && *limit == BULK_LIMIT)
            .times(1)
            .returning(|_, _, _| Ok(3));
        let ops = OperationsService {
            events: Arc::new(MockEventStore::new()),
            tasks: Arc::new(tasks),
            log: Arc::new(MockEngineLog::new()),
            controls: Arc::new(MockTaskControl::new()),
            task_types: Arc::new(Vec::new()),
        };
        let n = ops
            .reprocess_tasks(
                TaskFilter::default(),
                Some(InstitutionId(7)),
                Some(50_000),
                None,
            )
            .await
            .unwrap();
        assert_eq!(n, 3);
        let other = TaskFilter {
            institution_id: Some(InstitutionId(8)),
            ..Default::default()
        };
        assert!(matches!(
            ops.reprocess_tasks(other, Some(InstitutionId(7)), None, None)
                .await,
            Err(AppError::Forbidden(_))
        ));
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;
    use campus_ports::{MockEngineLog, MockEventStore, MockTaskControl, MockTaskQueue};

    fn ops(controls: MockTaskControl) -> OperationsService {
        let slow = TaskOptions {
            max_attempts: Some(3),
            concurrency: Some(2),
            ..TaskOptions::default()
        };
        OperationsService {
            events: Arc::new(MockEventStore::new()),
            tasks: Arc::new(MockTaskQueue::new()),
            log: Arc::new(MockEngineLog::new()),
            controls: Arc::new(controls),
            task_types: Arc::new(vec![("slow".into(), slow)]),
        }
    }

    #[tokio::test]
    async fn only_known_task_types_are_paused() {
        let mut controls = MockTaskControl::new();
        controls
            .expect_set_paused()
            .withf(|t, p| t == "slow" && *p)
            .times(1)
            .returning(|_, _| Ok(()));
        let ops = ops(controls);
        ops.set_paused("slow", true).await.unwrap();
        assert!(matches!(
            ops.set_paused("sloow", true).await,
            Err(AppError::NotFound("task type"))
        ));
    }

    #[tokio::test]
    async fn task_types_carry_options_paused_flag_and_counts() {
        let mut controls = MockTaskControl::new();
        controls
            .expect_paused_types()
            .returning(|| Ok(vec!["slow".into()]));
        controls.expect_type_counts().returning(|types| {
            Ok(types
                .iter()
                .map(|t| TypeCounts {
                    task_type: t.clone(),
                    waiting: 4,
                    ..TypeCounts::default()
                })
                .collect())
        });
        let listed = ops(controls).task_types().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].paused);
        assert_eq!(listed[0].concurrency, Some(2));
        assert_eq!(listed[0].max_attempts, 3);
        assert_eq!(listed[0].counts.waiting, 4);
    }
}
