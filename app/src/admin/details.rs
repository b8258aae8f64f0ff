//! The page of one event or task, with its copies.

use super::filters::FlashParams;
use super::respond::{failure, names, page};
use super::session::{operator, scope_of};
use super::views::{self, Flash, Section};
use crate::services::AppError;
use crate::web::State;
use campus_core::ids::*;
use campus_ports::{AuditQuery, OperatorSession, MAX_AUDIT_LIMIT};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{handler, IntoResponse, Request, Response};

pub(super) fn path_id(raw: &str) -> Result<u128, AppError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.as_u128())
        .map_err(|_| AppError::NotFound("page"))
}

/// What a detail page shows.
#[derive(Clone, Copy)]
pub(super) enum Item {
    Event,
    Task,
}

impl Item {
    /// Its part of the URL: `/admin/{path}/{id}`.
    pub(super) fn path(self) -> &'static str {
        match self {
            Item::Event => "events",
            Item::Task => "tasks",
        }
    }
}

/// The page of an event or task (with its copies), with `flash` on top and `status`.
pub(super) async fn detail_page(
    req: &Request,
    state: &State,
    op: &OperatorSession,
    item: Item,
    raw_id: &str,
    flash: Flash,
    status: StatusCode,
) -> Response {
    let scope = scope_of(op);
    let loaded = async {
        let id = path_id(raw_id)?;
        let names = names(state, op).await?;
        let (title, section, body) = match item {
            Item::Task => {
                let d = state.operations.task(TaskId(id), scope).await?;
                let mut copies = Vec::with_capacity(d.copies.len());
                for copy in &d.copies {
                    copies.push(state.operations.task(*copy, scope).await?.task);
                }
                let body = views::task_detail(&d.task, &copies, &names, op);
                ("Task", Section::Tasks, body)
            }
            Item::Event => {
                let d = state.operations.event(EventId(id), scope).await?;
                let mut copies = Vec::with_capacity(d.copies.len());
                for copy in &d.copies {
                    copies.push(state.operations.event(*copy, scope).await?.event);
                }
                let body = views::event_detail(&d, &copies, &names, op);
                ("Event", Section::Events, body)
            }
        };
        Ok::<_, AppError>((title, section, body, names))
    };
    match loaded.await {
        Ok((title, section, body, names)) => page(state, title, section, op, &names, &flash, &body)
            .with_status(status)
            .into_response(),
        Err(e) => failure(req, e),
    }
}

pub(super) async fn show(
    req: &Request,
    state: &State,
    item: Item,
    id: &str,
    flash: Flash,
) -> Response {
    match operator(req, state).await {
        Ok(op) => detail_page(req, state, &op, item, id, flash, StatusCode::OK).await,
        Err(r) => r,
    }
}

#[handler]
pub(super) async fn task_detail(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Query(flash): Query<FlashParams>,
) -> Response {
    show(req, state, Item::Task, &id, flash.flash()).await
}

#[handler]
pub(super) async fn event_detail(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Query(flash): Query<FlashParams>,
) -> Response {
    show(req, state, Item::Event, &id, flash.flash()).await
}

/// The audit trail of one entity (the first page of it; the API pages on).
#[handler]
pub(super) async fn audit_trail(
    req: &Request,
    Data(state): Data<&State>,
    Path((aggregate_type, raw_id)): Path<(String, String)>,
) -> Response {
    let op = match operator(req, state).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    let loaded = async {
        let known = !aggregate_type.is_empty()
            && aggregate_type.len() <= 64
            && aggregate_type.chars().all(|c| c.is_ascii_alphanumeric());
        if !known {
            return Err(AppError::NotFound("page"));
        }
        let query = AuditQuery {
            aggregate_type: aggregate_type.clone(),
            aggregate_id: path_id(&raw_id)?,
            after: None,
            limit: MAX_AUDIT_LIMIT,
        };
        let trail = state.operations.audit_trail(&query, scope_of(&op)).await?;
        let more = trail.len() == MAX_AUDIT_LIMIT as usize;
        let body = views::audit_trail(&aggregate_type, query.aggregate_id, &trail, more);
        Ok::<_, AppError>((body, names(state, &op).await?))
    };
    match loaded.await {
        Ok((body, names)) => page(
            state,
            "Audit trail",
            Section::Events,
            &op,
            &names,
            &Flash::None,
            &body,
        ),
        Err(e) => failure(req, e),
    }
}
