//! Operator endpoints that act on the engine: reprocess events and tasks (listing and
//! inspecting them is `adm_read`). An Adm user reaches every institution; an Academic user
//! only their own.

use super::academic::IdResponse;
use super::auth::BearerAuth;
use super::public::ApiTags;
use super::text::Text;
use crate::web::error::ApiError;
use crate::web::{event_context, State};
use campus_core::engine::TaskStatus;
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::TaskFilter;
use poem::web::Data;
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};

#[derive(ApiResponse)]
pub enum CopyCreated {
    /// The copy was created; it links to the original through `reprocessed_from`.
    #[oai(status = 201)]
    Created(Json<IdResponse>),
}

/// A final task status.
#[derive(Enum, Clone, Copy, Debug)]
#[oai(rename_all = "lowercase")]
pub enum FinalStatus {
    /// The task's handler succeeded.
    Succeeded,
    /// Every attempt failed, or the failure was permanent.
    Dead,
    /// An operator cancelled it before it started.
    Cancelled,
}

/// Which finished tasks to reprocess: every filter given must match (none given: every
/// `dead` task in reach).
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct BulkReprocessRequest {
    /// Only tasks of this type (e.g. `send_reset_password_email`).
    pub task_type: Option<Text>,
    /// Only tasks of this institution (an Academic user is always limited to theirs).
    pub institution_id: Option<uuid::Uuid>,
    /// Tasks in this final status; default `dead`.
    pub status: Option<FinalStatus>,
    /// Created at or after this instant.
    pub created_from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before this instant.
    pub created_to: Option<chrono::DateTime<chrono::Utc>>,
    /// Only tasks produced by this event.
    pub event_id: Option<uuid::Uuid>,
    /// Tasks with this correlation id, or made by the operator's request with this id.
    pub correlation_id: Option<Text>,
    /// Case-insensitive text searched in the payload.
    pub q: Option<Text>,
    /// At most this many copies (1–1000, default 1000).
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub limit: Option<u32>,
}

impl Example for BulkReprocessRequest {
    fn example() -> Self {
        BulkReprocessRequest {
            task_type: Some("send_reset_password_email".into()),
            institution_id: None,
            status: Some(FinalStatus::Dead),
            created_from: chrono::DateTime::from_timestamp(1_790_000_000, 0),
            created_to: None,
            event_id: None,
            correlation_id: None,
            q: None,
            limit: Some(100),
        }
    }
}

/// What a bulk reprocess did.
#[derive(Object)]
pub struct BulkReprocessResponse {
    /// How many copies were made (tasks with a copy still waiting are skipped).
    pub copies: u64,
}

/// An instant of the wire as the ports count it.
pub(super) fn ts(dt: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp(dt.timestamp_millis())
}

pub struct AdmApi;

#[OpenApi(tag = "ApiTags::Adm")]
impl AdmApi {
    /// Reprocess an event: insert a copy that fans out again
    ///
    /// For Adm users (any event) and Academic users (their institution's events; 404 for
    /// others).
    /// The original never changes; the copy keeps its correlation id, and this request's
    /// correlation id is stored as the copy's (and its tasks') `reprocess_request_id`. 409
    /// when the event is still pending/retrying or a copy is already waiting.
    #[oai(
        path = "/adm/events/:id/reprocess",
        method = "post",
        operation_id = "reprocessEvent"
    )]
    async fn reprocess_event(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        /// The event to copy (dispatched or dead).
        id: Path<uuid::Uuid>,
    ) -> Result<CopyCreated, ApiError> {
        let scope = auth.0.operator_scope()?;
        let copy = state
            .operations
            .reprocess_event(
                EventId(id.0.as_u128()),
                scope,
                event_context(req).correlation_id,
            )
            .await?;
        Ok(CopyCreated::Created(Json(IdResponse {
            id: uuid::Uuid::from_u128(copy.0),
        })))
    }

    /// Reprocess a task: insert a copy that runs again
    ///
    /// For Adm users (any task) and Academic users (their institution's tasks; 404 for
    /// others).
    /// The original never changes; the copy shares its lineage, so effects already done
    /// (an e-mail sent, a notification created) are not repeated. The copy keeps the
    /// original's correlation id; this request's is stored as its `reprocess_request_id`. 409
    /// when the task is not finished or a copy is already waiting.
    #[oai(
        path = "/adm/tasks/:id/reprocess",
        method = "post",
        operation_id = "reprocessTask"
    )]
    async fn reprocess_task(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        /// The task to copy (succeeded, dead or cancelled).
        id: Path<uuid::Uuid>,
    ) -> Result<CopyCreated, ApiError> {
        let scope = auth.0.operator_scope()?;
        let copy = state
            .operations
            .reprocess_task(
                TaskId(id.0.as_u128()),
                scope,
                event_context(req).correlation_id,
            )
            .await?;
        Ok(CopyCreated::Created(Json(IdResponse {
            id: uuid::Uuid::from_u128(copy.0),
        })))
    }

    /// Reprocess every finished task matching a filter (at most 1000 per call)
    ///
    /// For Adm users (any institution) and Academic users (always limited to their
    /// institution; 403 when `institution_id` names another). Tasks that already have a
    /// copy waiting are skipped.
    /// Each copy keeps its original's correlation id and carries this request's as its
    /// `reprocess_request_id`: `GET /adm/tasks?correlation_id=<this request's id>` lists them.
    #[oai(
        path = "/adm/tasks/reprocess",
        method = "post",
        operation_id = "reprocessTasks"
    )]
    async fn reprocess_tasks(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        req: &Request,
        body: Json<BulkReprocessRequest>,
    ) -> Result<Json<BulkReprocessResponse>, ApiError> {
        let scope = auth.0.operator_scope()?;
        let b = body.0;
        let filter = TaskFilter {
            task_type: b.task_type.map(String::from),
            institution_id: b.institution_id.map(|i| InstitutionId(i.as_u128())),
            status: b.status.map(|s| match s {
                FinalStatus::Succeeded => TaskStatus::Succeeded,
                FinalStatus::Dead => TaskStatus::Dead,
                FinalStatus::Cancelled => TaskStatus::Cancelled,
            }),
            created_from: b.created_from.map(ts),
            created_to: b.created_to.map(ts),
            event_id: b.event_id.map(|e| EventId(e.as_u128())),
            correlation_id: b.correlation_id.map(String::from).filter(|c| !c.is_empty()),
            text: b.q.map(String::from).filter(|t| !t.is_empty()),
        };
        let copies = state
            .operations
            .reprocess_tasks(filter, scope, b.limit, event_context(req).correlation_id)
            .await?;
        Ok(Json(BulkReprocessResponse {
            copies: copies as u64,
        }))
    }
}
