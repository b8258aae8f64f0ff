//! Operator controls on the engine: cancel a task that has not started (Adm everywhere,
//! Academic in their institution), pause and resume a task type for every daemon and list the
//! task types with their options and counts (Adm only: a type is shared by every
//! institution).

use super::auth::BearerAuth;
use super::public::ApiTags;
use super::text::Text;
use crate::web::error::ApiError;
use crate::web::State;
use campus_core::ids::TaskId;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

#[derive(ApiResponse)]
pub enum Done {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// A task type this release runs.
#[derive(Object)]
pub struct TaskTypeItem {
    /// Its name, e.g. `send_reset_password_email`.
    pub task_type: String,
    /// Paused types are not claimed by any daemon (running tasks finish).
    pub paused: bool,
    /// At most this many tasks of the type run at once in one daemon (absent: no limit
    /// beyond the daemon's concurrency).
    pub concurrency: Option<u32>,
    /// An attempt running longer fails (and is retried per the policy).
    pub timeout_ms: u64,
    /// Attempts a task of the type may have in all.
    pub max_attempts: u32,
    /// Tasks pending or retrying.
    pub waiting: i64,
    /// Tasks running now.
    pub running: i64,
    /// Dead tasks (in the live table).
    pub dead: i64,
}

/// Every task type this release runs.
#[derive(Object)]
pub struct TaskTypeList {
    /// The task types, in the order the release registers them.
    pub items: Vec<TaskTypeItem>,
}

fn adm_only(auth: &BearerAuth) -> Result<(), ApiError> {
    match auth.0.operator_scope()? {
        None => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "task types are shared by every institution: only Adm users control them",
        )),
    }
}

pub struct AdmControlsApi;

#[OpenApi(tag = "ApiTags::Adm")]
impl AdmControlsApi {
    /// Cancel a task that has not started
    ///
    /// For Adm users (any task) and Academic users (their institution's; 404 for others).
    /// A pending or retrying task becomes `cancelled` (final; it can be reprocessed). 409
    /// when the task is running or finished (a claim that comes first wins).
    #[oai(
        path = "/adm/tasks/:id/cancel",
        method = "post",
        operation_id = "cancelTask"
    )]
    async fn cancel_task(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The task's id.
        id: Path<uuid::Uuid>,
    ) -> Result<Done, ApiError> {
        let scope = auth.0.operator_scope()?;
        state
            .operations
            .cancel_task(TaskId(id.0.as_u128()), scope)
            .await?;
        Ok(Done::Done)
    }

    /// Pause a task type: no daemon claims its tasks until it is resumed
    ///
    /// For Adm users only (403 for Academic users: a type is shared by every institution).
    /// Running tasks finish; waiting ones (and new ones) wait. Pausing a paused type
    /// changes nothing. 404 when this release runs no such type.
    #[oai(
        path = "/adm/task-types/:task_type/pause",
        method = "post",
        operation_id = "pauseTaskType"
    )]
    async fn pause(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// A task type this release runs (see `GET /adm/task-types`).
        task_type: Path<Text>,
    ) -> Result<Done, ApiError> {
        adm_only(&auth)?;
        state.operations.set_paused(&task_type.0, true).await?;
        Ok(Done::Done)
    }

    /// Resume a paused task type
    ///
    /// For Adm users only (403 for Academic users). Its waiting tasks are claimed again.
    /// Resuming a type that is not paused changes nothing. 404 when this release runs no
    /// such type.
    #[oai(
        path = "/adm/task-types/:task_type/resume",
        method = "post",
        operation_id = "resumeTaskType"
    )]
    async fn resume(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// A task type this release runs (see `GET /adm/task-types`).
        task_type: Path<Text>,
    ) -> Result<Done, ApiError> {
        adm_only(&auth)?;
        state.operations.set_paused(&task_type.0, false).await?;
        Ok(Done::Done)
    }

    /// Task types: paused flag, concurrency limit, timeout, attempts and counts
    ///
    /// For Adm users only (403 for Academic users). Every task type this release runs, with
    /// its options and how many of its tasks wait, run or are dead. 429 when the caller
    /// already has `CAMPUS_ADMIN_CONCURRENCY` operator reads running.
    #[oai(
        path = "/adm/task-types",
        method = "get",
        operation_id = "listTaskTypes"
    )]
    async fn task_types(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
    ) -> Result<Json<TaskTypeList>, ApiError> {
        adm_only(&auth)?;
        let _slot = state.limiter.admin_read(auth.0.sub.as_u128())?;
        let items = state
            .operations
            .task_types()
            .await?
            .into_iter()
            .map(|t| TaskTypeItem {
                task_type: t.task_type,
                paused: t.paused,
                concurrency: t.concurrency,
                timeout_ms: u64::try_from(t.timeout.as_millis()).unwrap_or(u64::MAX),
                max_attempts: t.max_attempts,
                waiting: t.counts.waiting,
                running: t.counts.running,
                dead: t.counts.dead,
            })
            .collect();
        Ok(Json(TaskTypeList { items }))
    }
}
