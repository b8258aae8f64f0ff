//! The overview and the event and task lists, and their live updates.

use super::filters::FlashParams;
use super::respond::{bad_input, error_page, failure, limited, names, page};
use super::session::{cookie, operator, scope_of, SESSION_COOKIE};
use super::views::{self, FilterValues, Flash, Section};
use crate::services::operations::BULK_LIMIT;
use crate::services::AppError;
use crate::web::limits::AdminReadSlot;
use crate::web::State;
use campus_ports::{EventQuery, OperatorSession, SummaryQuery, TaskQuery};
use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{handler, IntoResponse, Request, Response};

/// What a page's live-update stream says about the page: the version it was rendered at.
#[derive(serde::Deserialize)]
pub(super) struct LivePage {
    since: Option<u64>,
}

/// The signed-in operator with one slot of their few concurrent reads, to hold until the
/// page is rendered; or the response to send instead.
pub(super) async fn reader(
    req: &Request,
    state: &State,
) -> Result<(OperatorSession, AdminReadSlot), Response> {
    let op = operator(req, state).await?;
    match state.limiter.admin_read(op.user_id.0) {
        Ok(slot) => Ok((op, slot)),
        Err(refusal) => Err(limited(req, refusal)),
    }
}

#[handler]
pub(super) async fn overview(
    req: &Request,
    Data(state): Data<&State>,
    Query(f): Query<FilterValues>,
) -> Response {
    let (op, _slot) = match reader(req, state).await {
        Ok(reader) => reader,
        Err(r) => return r,
    };
    let query = match SummaryQuery::parse(&f) {
        Ok(q) => q,
        Err(e) => return bad_input(req, &e.to_string()),
    };
    let loaded = async {
        let summary = state.operations.summary(&query, scope_of(&op)).await?;
        let hour_ago = campus_core::Timestamp(chrono::Utc::now().timestamp_millis() - 3_600_000);
        let types = state.operations.type_stats(hour_ago, scope_of(&op)).await?;
        Ok::<_, AppError>((summary, types, names(state, &op).await?))
    };
    match loaded.await {
        Ok((summary, types, names)) => page(
            state,
            "Overview",
            Section::Overview,
            &op,
            &names,
            &Flash::None,
            &views::overview(&f, &summary, &types, &names, &op),
        ),
        Err(e) => failure(req, e),
    }
}

#[handler]
pub(super) async fn event_list(
    req: &Request,
    Data(state): Data<&State>,
    Query(f): Query<FilterValues>,
) -> Response {
    let (op, _slot) = match reader(req, state).await {
        Ok(reader) => reader,
        Err(r) => return r,
    };
    let query = match EventQuery::parse(&f) {
        Ok(q) => q,
        Err(e) => return bad_input(req, &e.to_string()),
    };
    let loaded = async {
        let events = state.operations.events(&query, scope_of(&op)).await?;
        Ok::<_, AppError>((events, names(state, &op).await?))
    };
    match loaded.await {
        Ok((events, names)) => {
            let next = query.next_before(&events).map(|e| e.0);
            page(
                state,
                "Events",
                Section::Events,
                &op,
                &names,
                &Flash::None,
                &views::event_list(&f, &events, next, &names, &op),
            )
        }
        Err(e) => failure(req, e),
    }
}

#[handler]
pub(super) async fn task_list(
    req: &Request,
    Data(state): Data<&State>,
    Query(f): Query<FilterValues>,
    Query(flash): Query<FlashParams>,
) -> Response {
    let (op, _slot) = match reader(req, state).await {
        Ok(reader) => reader,
        Err(r) => return r,
    };
    let query = match TaskQuery::parse(&f) {
        Ok(q) => q,
        Err(e) => return bad_input(req, &e.to_string()),
    };
    let loaded = async {
        let tasks = state.operations.tasks(&query, scope_of(&op)).await?;
        Ok::<_, AppError>((tasks, names(state, &op).await?))
    };
    match loaded.await {
        Ok((tasks, names)) => {
            let next = query.next_before(&tasks).map(|t| t.0);
            page(
                state,
                "Tasks",
                Section::Tasks,
                &op,
                &names,
                &flash.flash(),
                &views::task_list(&f, &tasks, next, &names, &op, BULK_LIMIT),
            )
        }
        Err(e) => failure(req, e),
    }
}

#[handler]
pub(super) async fn live_updates(
    req: &Request,
    Data(state): Data<&State>,
    Query(page): Query<LivePage>,
) -> Response {
    match state.sessions.find(&cookie(req, SESSION_COOKIE)).await {
        Ok(Some(_)) => state.live.stream(page.since).into_response(),
        Ok(None) => error_page(
            req,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first",
        ),
        Err(e) => failure(req, e),
    }
}

/// The task types with their options, counts and pause state.
#[handler]
pub(super) async fn task_types(
    req: &Request,
    Data(state): Data<&State>,
    Query(flash): Query<FlashParams>,
) -> Response {
    let (op, _slot) = match reader(req, state).await {
        Ok(reader) => reader,
        Err(r) => return r,
    };
    let loaded = async {
        let types = state.operations.task_types().await?;
        Ok::<_, AppError>((types, names(state, &op).await?))
    };
    match loaded.await {
        Ok((types, names)) => page(
            state,
            "Task types",
            Section::TaskTypes,
            &op,
            &names,
            &flash.flash(),
            &views::task_types(&types, &op),
        ),
        Err(e) => failure(req, e),
    }
}
