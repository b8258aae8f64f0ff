//! Operator use cases on the engine: reprocessing events and tasks. History is immutable:
//! every reprocess inserts a copy linked to its original.

use super::AppError;
use campus_core::ids::*;
use campus_ports::{
    EngineLog, EngineSummary, EventDetail, EventQuery, EventStore, EventView, SummaryQuery,
    TaskDetail, TaskFilter, TaskQuery, TaskQueue, TaskView,
};
use std::sync::Arc;

/// Most copies one bulk reprocess makes.
pub const BULK_LIMIT: u32 = 1000;

#[derive(Clone)]
pub struct OperationsService {
    pub events: Arc<dyn EventStore>,
    pub tasks: Arc<dyn TaskQueue>,
    pub log: Arc<dyn EngineLog>,
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
    /// to one institution.
    pub async fn reprocess_event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
        correlation_id: Option<String>,
    ) -> Result<EventId, AppError> {
        Ok(self
            .events
            .reprocess_event(id, scope, correlation_id)
            .await?)
    }

    /// Copies a finished task; the copy runs again.
    pub async fn reprocess_task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
        correlation_id: Option<String>,
    ) -> Result<TaskId, AppError> {
        Ok(self.tasks.reprocess_task(id, scope, correlation_id).await?)
    }

    /// Copies up to `limit` (at most [`BULK_LIMIT`]) finished tasks matching `filter`; a
    /// scoped caller only reaches their institution.
    pub async fn reprocess_tasks(
        &self,
        mut filter: TaskFilter,
        scope: Option<InstitutionId>,
        limit: Option<u32>,
        correlation_id: Option<String>,
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
            .reprocess_tasks(&filter, limit, correlation_id)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use campus_ports::{MockEngineLog, MockEventStore, MockTaskQueue};

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
