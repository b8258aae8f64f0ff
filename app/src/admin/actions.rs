//! The screen's state-changing forms on the engine: reprocess one event or task, or the dead
//! tasks matching the list's filters; cancel a task; pause or resume a task type.

use super::details::{detail_page, path_id, Item};
use super::respond::{bad_input, failure};
use super::session::{form_operator, scope_of, CsrfForm};
use super::views::{self, FilterValues, Flash};
use crate::services::operations::BULK_LIMIT;
use crate::services::AppError;
use crate::web::{event_context, State};
use campus_core::engine::TaskStatus;
use campus_core::ids::*;
use campus_core::values::Role;
use campus_ports::{parse_limit, TaskQuery};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Redirect};
use poem::{handler, IntoResponse, Request, Response};
use serde::Deserialize;

/// Inserts a copy of an event or task; on success goes back to its page, which lists the copy.
async fn reprocess(req: &Request, state: &State, item: Item, id: &str, csrf: &str) -> Response {
    let op = match form_operator(req, state, csrf).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    // The copy keeps the original's correlation id; this request's id is recorded beside it.
    let (scope, request_id) = (scope_of(&op), event_context(req).correlation_id);
    let copy = match (path_id(id), item) {
        (Err(e), _) => Err(e),
        (Ok(original), Item::Task) => state
            .operations
            .reprocess_task(TaskId(original), scope, request_id)
            .await
            .map(|c| c.0),
        (Ok(original), Item::Event) => state
            .operations
            .reprocess_event(EventId(original), scope, request_id)
            .await
            .map(|c| c.0),
    };
    match copy {
        Ok(copy) => Redirect::see_other(format!(
            "/admin/{}/{id}?copied={}",
            item.path(),
            views::uuid(copy)
        ))
        .into_response(),
        // Refused (e.g. still running, or a copy is waiting): the page says why.
        Err(e @ (AppError::Conflict(_) | AppError::Invalid(_))) => {
            let status = if matches!(e, AppError::Conflict(_)) {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            let flash = Flash::Error(e.to_string());
            detail_page(req, state, &op, item, id, flash, status).await
        }
        Err(e) => failure(req, e),
    }
}

#[handler]
pub(super) async fn reprocess_task(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    reprocess(req, state, Item::Task, &id, &form.csrf).await
}

#[handler]
pub(super) async fn reprocess_event(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    reprocess(req, state, Item::Event, &id, &form.csrf).await
}

#[derive(Deserialize)]
struct BulkForm {
    #[serde(default)]
    csrf: String,
    confirm: Option<String>,
    limit: Option<String>,
    #[serde(flatten)]
    filters: FilterValues,
}

#[handler]
pub(super) async fn reprocess_tasks(
    req: &Request,
    Data(state): Data<&State>,
    Form(form): Form<BulkForm>,
) -> Response {
    let op = match form_operator(req, state, &form.csrf).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if form.confirm.as_deref() != Some("yes") {
        return bad_input(req, "Tick the confirmation box to reprocess tasks in bulk.");
    }
    // The list's filters select the dead tasks; its status, paging and `has_errors` do not
    // apply (the form does not send them).
    let filters = FilterValues {
        status: None,
        has_errors: None,
        before: None,
        limit: None,
        ..form.filters
    };
    let filter = TaskQuery::parse(&filters).map(|q| q.bulk_filter(TaskStatus::Dead));
    let limit = parse_limit(form.limit.as_deref(), 100, BULK_LIMIT);
    let (filter, limit) = match (filter, limit) {
        (Ok(filter), Ok(limit)) => (filter, limit),
        (Err(e), _) | (_, Err(e)) => return bad_input(req, &e.to_string()),
    };
    // The copies carry this request's id (`reprocess_request_id`): the list filtered by it
    // shows them.
    let request_id = event_context(req).correlation_id.unwrap_or_default();
    match state
        .operations
        .reprocess_tasks(filter, scope_of(&op), Some(limit), Some(request_id.clone()))
        .await
    {
        Ok(n) => Redirect::see_other(format!(
            "{}&copies={n}",
            views::link("/admin/tasks", &[("correlation_id", request_id)])
        ))
        .into_response(),
        Err(e) => failure(req, e),
    }
}

/// Cancels a task that has not started; on success goes back to its page, which says so.
#[handler]
pub(super) async fn cancel_task(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let op = match form_operator(req, state, &form.csrf).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let cancelled = match path_id(&id) {
        Ok(task) => {
            state
                .operations
                .cancel_task(TaskId(task), scope_of(&op))
                .await
        }
        Err(e) => Err(e),
    };
    match cancelled {
        Ok(()) => Redirect::see_other(format!("/admin/tasks/{id}?cancelled=1")).into_response(),
        // Refused (it started or finished meanwhile): the page says why.
        Err(e @ AppError::Conflict(_)) => {
            let flash = Flash::Error(e.to_string());
            detail_page(
                req,
                state,
                &op,
                Item::Task,
                &id,
                flash,
                StatusCode::CONFLICT,
            )
            .await
        }
        Err(e) => failure(req, e),
    }
}

/// Pauses (`pause`) or resumes (`resume`) a task type for every daemon (Adm only).
#[handler]
pub(super) async fn pause_or_resume(
    req: &Request,
    Data(state): Data<&State>,
    Path((task_type, action)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let op = match form_operator(req, state, &form.csrf).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if op.role != Role::Adm {
        let refusal = AppError::Forbidden("only an Adm user pauses or resumes task types".into());
        return failure(req, refusal);
    }
    let paused = match action.as_str() {
        "pause" => true,
        "resume" => false,
        _ => return failure(req, AppError::NotFound("page")),
    };
    match state.operations.set_paused(&task_type, paused).await {
        Ok(()) => {
            let flash = if paused { "paused" } else { "resumed" };
            let to = views::link("/admin/task-types", &[(flash, task_type)]);
            Redirect::see_other(to).into_response()
        }
        Err(e) => failure(req, e),
    }
}
