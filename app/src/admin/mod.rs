//! The admin screen at `/admin`, served by the app with no front-end build: server-rendered
//! pages over the operators' read side (`OperationsService`), a login with an HttpOnly,
//! SameSite session cookie, a CSRF token on every state-changing form, and live updates
//! over server-sent events (`live`). An Adm user sees every institution, an Academic user
//! only their own: the scope comes from the session, never from the page.

pub mod live;
pub mod views;

use crate::api::error::ApiError;
use crate::api::limits::Limit;
use crate::api::{event_context, State};
use crate::services::operations::BULK_LIMIT;
use crate::services::AppError;
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::{EventQuery, OperatorSession, SummaryQuery, TaskFilter, TaskQuery};
use poem::http::{header, HeaderValue, StatusCode};
use poem::web::{Data, Form, Html, Path, Query, Redirect};
use poem::{handler, Endpoint, EndpointExt, IntoResponse, Request, Response, Route};
use serde::Deserialize;
use views::{FilterValues, Flash, Names, Section};

const SESSION_COOKIE: &str = "campus_session";
const LOGIN_CSRF_COOKIE: &str = "campus_login_csrf";
/// Institutions offered in the filter of an Adm user.
const INSTITUTION_CHOICES: u32 = 1000;

/// Every page and form of the admin screen, under `/admin`.
pub fn routes() -> impl Endpoint {
    Route::new()
        .at("/", poem::get(overview))
        .at("/login", poem::get(login_form).post(login))
        .at("/logout", poem::post(logout))
        .at("/events", poem::get(event_list))
        .at("/events/:id", poem::get(event_detail))
        .at("/events/:id/reprocess", poem::post(reprocess_event))
        .at("/tasks", poem::get(task_list))
        .at("/tasks/reprocess", poem::post(reprocess_tasks))
        .at("/tasks/:id", poem::get(task_detail))
        .at("/tasks/:id/reprocess", poem::post(reprocess_task))
        .at("/live", poem::get(live_updates))
        .at("/assets/admin.css", poem::get(stylesheet))
        .at("/assets/admin.js", poem::get(script))
        .around(secure_headers)
}

/// Pages are never cached, framed, or allowed to load anything from elsewhere.
async fn secure_headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let mut resp = next.call(req).await?.into_response();
    crate::api::pages::protect_page(
        &mut resp,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        "same-origin",
    );
    Ok(resp)
}

// ---------------------------------------------------------------------------------------
// Sessions, CSRF, errors

/// The value of cookie `name`.
fn cookie<'r>(req: &'r Request, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .find_map(|kv| kv.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
}

fn set_cookie(
    resp: &mut Response,
    state: &State,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let raw =
        format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    if let Ok(v) = HeaderValue::from_str(&raw) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Compares secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn wants_json(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"))
}

/// An error as a page (or `{code, message}` JSON for clients that ask for JSON).
fn error_page(req: &Request, status: StatusCode, code: &str, message: &str) -> Response {
    if wants_json(req) {
        let body = serde_json::json!({ "code": code, "message": message });
        return poem::web::Json(body).with_status(status).into_response();
    }
    let title = status.canonical_reason().unwrap_or("Error");
    Html(views::message(title, message))
        .with_status(status)
        .into_response()
}

fn failure(req: &Request, e: AppError) -> Response {
    let (status, code) = match &e {
        AppError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_input"),
        AppError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        AppError::Unavailable(detail) => {
            tracing::error!(%detail, "admin page failed on infrastructure");
            (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
        }
        AppError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
    };
    let message = match e {
        AppError::Unavailable(_) => "the service is temporarily unavailable; try again".into(),
        other => other.to_string(),
    };
    error_page(req, status, code, &message)
}

/// A refusal of the abuse limits (429 with `Retry-After`) as a page or JSON.
fn limited(req: &Request, refusal: ApiError) -> Response {
    match refusal {
        ApiError::TooManyRequests(body, seconds) => {
            let mut resp = error_page(
                req,
                StatusCode::TOO_MANY_REQUESTS,
                &body.code,
                &body.message,
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            resp
        }
        other => other.into_response(),
    }
}

fn bad_input(req: &Request, message: &str) -> Response {
    error_page(req, StatusCode::BAD_REQUEST, "invalid_input", message)
}

/// The signed-in operator, or the response to send instead (the login page for pages).
async fn operator(req: &Request, state: &State) -> Result<OperatorSession, Response> {
    let token = cookie(req, SESSION_COOKIE).unwrap_or_default();
    match state.sessions.find(token).await {
        Ok(Some(session)) => Ok(session),
        Ok(None) => {
            // The full path: under the nest, `uri()` lacks the `/admin` prefix.
            let here = req
                .original_uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/admin");
            let next = if req.method() == poem::http::Method::GET {
                here
            } else {
                "/admin"
            };
            Err(
                Redirect::see_other(views::link("/admin/login", &[("next", next.into())]))
                    .into_response(),
            )
        }
        Err(e) => Err(failure(req, e)),
    }
}

fn scope_of(op: &OperatorSession) -> Option<InstitutionId> {
    op.institution_id
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The refusal of a form whose CSRF token is not the session's.
fn csrf_refusal(req: &Request, op: &OperatorSession, given: &str) -> Option<Response> {
    if same_secret(&op.csrf_token, given) {
        None
    } else {
        Some(error_page(
            req,
            StatusCode::FORBIDDEN,
            "csrf",
            "This form is out of date or did not come from the admin screen. Reload the page and try again.",
        ))
    }
}

/// Institution names for display and for the Adm's filter.
async fn names(state: &State, op: &OperatorSession) -> Result<Names, AppError> {
    Ok(state
        .operations
        .institutions(scope_of(op), INSTITUTION_CHOICES)
        .await?
        .into_iter()
        .collect())
}

fn page(
    title: &str,
    section: Section,
    op: &OperatorSession,
    names: &Names,
    flash: &Flash,
    body: &maud::Markup,
) -> Response {
    Html(views::layout(title, section, op, names, flash, body)).into_response()
}

// ---------------------------------------------------------------------------------------
// Parsing the filters of the URL

fn text(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parse_uuid(field: &str, v: &Option<String>) -> Result<Option<u128>, String> {
    text(v)
        .map(|s| {
            uuid::Uuid::parse_str(&s)
                .map(|u| u.as_u128())
                .map_err(|_| format!("{field}: {s:?} is not an id"))
        })
        .transpose()
}

/// `2026-11-24T10:30`, `2026-11-24T10:30:15` (UTC, as a datetime-local field sends them) or
/// RFC 3339.
fn parse_time(field: &str, v: &Option<String>) -> Result<Option<Timestamp>, String> {
    let Some(s) = text(v) else { return Ok(None) };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&s) {
        return Ok(Some(Timestamp(t.timestamp_millis())));
    }
    [
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(&s, f).ok())
    .map(|t| Some(Timestamp(t.and_utc().timestamp_millis())))
    .ok_or_else(|| format!("{field}: {s:?} is not a time like 2026-11-24T10:30 (UTC)"))
}

fn parse_bool(field: &str, v: &Option<String>) -> Result<Option<bool>, String> {
    match text(v).as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(format!("{field}: {other:?} must be true or false")),
    }
}

fn parse_limit(v: &Option<String>, default: u32, max: u32) -> Result<u32, String> {
    match text(v) {
        None => Ok(default),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| format!("limit: {s:?} must be a number from 1 to {max}")),
    }
}

fn parse_status<S>(
    v: &Option<String>,
    parse: fn(&str) -> Option<S>,
    all: &[&str],
) -> Result<Option<S>, String> {
    text(v)
        .map(|s| {
            parse(&s).ok_or_else(|| format!("status: {s:?} must be one of {}", all.join(", ")))
        })
        .transpose()
}

fn event_query(f: &FilterValues) -> Result<EventQuery, String> {
    Ok(EventQuery {
        institution_id: parse_uuid("institution_id", &f.institution_id)?.map(InstitutionId),
        event_type: text(&f.event_type),
        status: parse_status(&f.status, EventStatus::parse, &views::EVENT_STATUSES)?,
        from: parse_time("from", &f.from)?,
        to: parse_time("to", &f.to)?,
        correlation_id: text(&f.correlation_id),
        has_errors: parse_bool("has_errors", &f.has_errors)?,
        text: text(&f.q),
        before: parse_uuid("before", &f.before)?.map(EventId),
        limit: parse_limit(&f.limit, 50, 200)?,
    })
}

fn task_query(f: &FilterValues) -> Result<TaskQuery, String> {
    Ok(TaskQuery {
        institution_id: parse_uuid("institution_id", &f.institution_id)?.map(InstitutionId),
        task_type: text(&f.task_type),
        status: parse_status(&f.status, TaskStatus::parse, &views::TASK_STATUSES)?,
        event_id: parse_uuid("event_id", &f.event_id)?.map(EventId),
        from: parse_time("from", &f.from)?,
        to: parse_time("to", &f.to)?,
        correlation_id: text(&f.correlation_id),
        has_errors: parse_bool("has_errors", &f.has_errors)?,
        text: text(&f.q),
        before: parse_uuid("before", &f.before)?.map(TaskId),
        limit: parse_limit(&f.limit, 50, 200)?,
    })
}

/// What the last action said, carried in the URL it redirected to.
#[derive(Deserialize, Default)]
struct FlashParams {
    copied: Option<String>,
    copies: Option<u32>,
}

impl FlashParams {
    fn flash(&self) -> Flash {
        if let Some(copy) = self
            .copied
            .as_deref()
            .and_then(|c| uuid::Uuid::parse_str(c).ok())
        {
            return Flash::Done(format!(
                "Reprocessing: copy {copy} created; it appears under Copies."
            ));
        }
        match self.copies {
            Some(0) => Flash::Done(
                "No dead task matched (or every one already has a copy waiting).".into(),
            ),
            Some(n) => Flash::Done(format!(
                "{n} copies created; they are listed below as they run."
            )),
            None => Flash::None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Pages

#[handler]
async fn overview(
    req: &Request,
    Data(state): Data<&State>,
    Query(f): Query<FilterValues>,
) -> Response {
    let op = match operator(req, state).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    // One slot of the operator's few concurrent reads, held until the page is rendered.
    let _slot = match state.limiter.admin_read(op.user_id.0) {
        Ok(slot) => slot,
        Err(refusal) => return limited(req, refusal),
    };
    let query = (|| {
        Ok::<_, String>(SummaryQuery {
            institution_id: parse_uuid("institution_id", &f.institution_id)?.map(InstitutionId),
            event_type: text(&f.event_type),
            task_type: text(&f.task_type),
            from: parse_time("from", &f.from)?,
            to: parse_time("to", &f.to)?,
        })
    })();
    let query = match query {
        Ok(q) => q,
        Err(m) => return bad_input(req, &m),
    };
    let loaded = async {
        let summary = state.operations.summary(&query, scope_of(&op)).await?;
        Ok::<_, AppError>((summary, names(state, &op).await?))
    };
    match loaded.await {
        Ok((summary, names)) => page(
            "Overview",
            Section::Overview,
            &op,
            &names,
            &Flash::None,
            &views::overview(&f, &summary, &names, &op),
        ),
        Err(e) => failure(req, e),
    }
}

/// The next page's `before`: the last id when the page is full.
fn next_before(
    ids: impl DoubleEndedIterator<Item = u128> + ExactSizeIterator,
    limit: u32,
) -> Option<u128> {
    let full = ids.len() as u32 >= limit;
    ids.last().filter(|_| full)
}

#[handler]
async fn event_list(
    req: &Request,
    Data(state): Data<&State>,
    Query(f): Query<FilterValues>,
) -> Response {
    let op = match operator(req, state).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    // One slot of the operator's few concurrent reads, held until the page is rendered.
    let _slot = match state.limiter.admin_read(op.user_id.0) {
        Ok(slot) => slot,
        Err(refusal) => return limited(req, refusal),
    };
    let query = match event_query(&f) {
        Ok(q) => q,
        Err(m) => return bad_input(req, &m),
    };
    let loaded = async {
        let events = state.operations.events(&query, scope_of(&op)).await?;
        Ok::<_, AppError>((events, names(state, &op).await?))
    };
    match loaded.await {
        Ok((events, names)) => {
            let next = next_before(events.iter().map(|e| e.id.0), query.limit);
            page(
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
async fn task_list(
    req: &Request,
    Data(state): Data<&State>,
    Query(f): Query<FilterValues>,
    Query(flash): Query<FlashParams>,
) -> Response {
    let op = match operator(req, state).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    // One slot of the operator's few concurrent reads, held until the page is rendered.
    let _slot = match state.limiter.admin_read(op.user_id.0) {
        Ok(slot) => slot,
        Err(refusal) => return limited(req, refusal),
    };
    let query = match task_query(&f) {
        Ok(q) => q,
        Err(m) => return bad_input(req, &m),
    };
    let loaded = async {
        let tasks = state.operations.tasks(&query, scope_of(&op)).await?;
        Ok::<_, AppError>((tasks, names(state, &op).await?))
    };
    match loaded.await {
        Ok((tasks, names)) => {
            let next = next_before(tasks.iter().map(|t| t.id.0), query.limit);
            page(
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

fn path_id(raw: &str) -> Result<u128, AppError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.as_u128())
        .map_err(|_| AppError::NotFound("page"))
}

/// What a detail page shows.
#[derive(Clone, Copy)]
enum Item {
    Event,
    Task,
}

impl Item {
    /// Its part of the URL: `/admin/{path}/{id}`.
    fn path(self) -> &'static str {
        match self {
            Item::Event => "events",
            Item::Task => "tasks",
        }
    }
}

/// The page of an event or task (with its copies), with `flash` on top and `status`.
async fn detail_page(
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
        Ok((title, section, body, names)) => page(title, section, op, &names, &flash, &body)
            .with_status(status)
            .into_response(),
        Err(e) => failure(req, e),
    }
}

async fn show(req: &Request, state: &State, item: Item, id: &str, flash: Flash) -> Response {
    match operator(req, state).await {
        Ok(op) => detail_page(req, state, &op, item, id, flash, StatusCode::OK).await,
        Err(r) => r,
    }
}

#[handler]
async fn task_detail(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Query(flash): Query<FlashParams>,
) -> Response {
    show(req, state, Item::Task, &id, flash.flash()).await
}

#[handler]
async fn event_detail(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Query(flash): Query<FlashParams>,
) -> Response {
    show(req, state, Item::Event, &id, flash.flash()).await
}

/// Inserts a copy of an event or task; on success goes back to its page, which lists the copy.
async fn reprocess(req: &Request, state: &State, item: Item, id: &str, csrf: &str) -> Response {
    let op = match operator(req, state).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if let Some(r) = csrf_refusal(req, &op, csrf) {
        return r;
    }
    let (scope, correlation) = (scope_of(&op), event_context(req).correlation_id);
    let copy = match (path_id(id), item) {
        (Err(e), _) => Err(e),
        (Ok(original), Item::Task) => state
            .operations
            .reprocess_task(TaskId(original), scope, correlation)
            .await
            .map(|c| c.0),
        (Ok(original), Item::Event) => state
            .operations
            .reprocess_event(EventId(original), scope, correlation)
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
async fn reprocess_task(
    req: &Request,
    Data(state): Data<&State>,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    reprocess(req, state, Item::Task, &id, &form.csrf).await
}

#[handler]
async fn reprocess_event(
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
async fn reprocess_tasks(
    req: &Request,
    Data(state): Data<&State>,
    Form(form): Form<BulkForm>,
) -> Response {
    let op = match operator(req, state).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if let Some(r) = csrf_refusal(req, &op, &form.csrf) {
        return r;
    }
    if form.confirm.as_deref() != Some("yes") {
        return bad_input(req, "Tick the confirmation box to reprocess tasks in bulk.");
    }
    let f = &form.filters;
    let filter = (|| {
        Ok::<_, String>(TaskFilter {
            task_type: text(&f.task_type),
            institution_id: parse_uuid("institution_id", &f.institution_id)?.map(InstitutionId),
            status: Some(TaskStatus::Dead),
            created_from: parse_time("from", &f.from)?,
            created_to: parse_time("to", &f.to)?,
            event_id: parse_uuid("event_id", &f.event_id)?.map(EventId),
            correlation_id: text(&f.correlation_id),
            text: text(&f.q),
        })
    })();
    let (filter, limit) = match (filter, parse_limit(&form.limit, 100, BULK_LIMIT)) {
        (Ok(filter), Ok(limit)) => (filter, limit),
        (Err(m), _) | (_, Err(m)) => return bad_input(req, &m),
    };
    let correlation = event_context(req).correlation_id.unwrap_or_default();
    match state
        .operations
        .reprocess_tasks(
            filter,
            scope_of(&op),
            Some(limit),
            Some(correlation.clone()),
        )
        .await
    {
        Ok(n) => Redirect::see_other(format!(
            "{}&copies={n}",
            views::link("/admin/tasks", &[("correlation_id", correlation)])
        ))
        .into_response(),
        Err(e) => failure(req, e),
    }
}

#[handler]
async fn live_updates(req: &Request, Data(state): Data<&State>) -> Response {
    let token = cookie(req, SESSION_COOKIE).unwrap_or_default();
    match state.sessions.find(token).await {
        Ok(Some(_)) => state.live.stream().into_response(),
        Ok(None) => error_page(
            req,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in first",
        ),
        Err(e) => failure(req, e),
    }
}

// ---------------------------------------------------------------------------------------
// Log in and out

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

/// Where to go after logging in: only pages of the admin screen.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/admin")
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.starts_with("/admin/login") =>
        {
            n.to_string()
        }
        _ => "/admin".into(),
    }
}

fn login_page(
    state: &State,
    csrf: &str,
    next: &str,
    email: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let mut resp = Html(views::login(csrf, next, email, error))
        .with_status(status)
        .into_response();
    set_cookie(
        &mut resp,
        state,
        LOGIN_CSRF_COOKIE,
        csrf,
        "/admin/login",
        3600,
    );
    resp
}

#[handler]
async fn login_form(
    req: &Request,
    Data(state): Data<&State>,
    Query(q): Query<NextParam>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let token = cookie(req, SESSION_COOKIE).unwrap_or_default();
    if let Ok(Some(_)) = state.sessions.find(token).await {
        return Redirect::see_other(next).into_response();
    }
    let csrf = state.sessions.vault.mint().plain;
    login_page(state, &csrf, &next, "", None, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

#[handler]
async fn login(req: &Request, Data(state): Data<&State>, Form(form): Form<LoginForm>) -> Response {
    let next = safe_next(form.next.as_deref());
    let expected = cookie(req, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_secret(expected, &form.csrf) {
        let csrf = state.sessions.vault.mint().plain;
        return login_page(
            state,
            &csrf,
            &next,
            &form.email,
            Some("The login form expired. Please try again."),
            StatusCode::FORBIDDEN,
        );
    }
    if let Err(refusal) =
        state
            .limiter
            .check_both(req, Limit::LoginIp, Limit::LoginAccount, &form.email)
    {
        let mut resp = login_page(
            state,
            expected,
            &next,
            &form.email,
            Some("Too many log-in attempts. Please wait a few minutes and try again."),
            StatusCode::TOO_MANY_REQUESTS,
        );
        if let ApiError::TooManyRequests(_, seconds) = refusal {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        return resp;
    }
    match state.sessions.open(&form.email, &form.password).await {
        Ok((token, _)) => {
            let mut resp = Redirect::see_other(next).into_response();
            let ttl = crate::services::sessions::SESSION_TTL.as_secs();
            set_cookie(&mut resp, state, SESSION_COOKIE, &token, "/admin", ttl);
            set_cookie(&mut resp, state, LOGIN_CSRF_COOKIE, "", "/admin/login", 0);
            resp
        }
        Err(AppError::Unauthorized(_)) => login_page(
            state,
            expected,
            &next,
            &form.email,
            Some("Invalid e-mail or password."),
            StatusCode::UNAUTHORIZED,
        ),
        Err(AppError::Forbidden(m)) => login_page(
            state,
            expected,
            &next,
            &form.email,
            Some(&m),
            StatusCode::FORBIDDEN,
        ),
        Err(e) => failure(req, e),
    }
}

#[handler]
async fn logout(req: &Request, Data(state): Data<&State>, Form(form): Form<CsrfForm>) -> Response {
    let op = match operator(req, state).await {
        Ok(op) => op,
        Err(r) => return r,
    };
    if let Some(r) = csrf_refusal(req, &op, &form.csrf) {
        return r;
    }
    if let Err(e) = state
        .sessions
        .close(cookie(req, SESSION_COOKIE).unwrap_or_default())
        .await
    {
        return failure(req, e);
    }
    let mut resp = Redirect::see_other("/admin/login").into_response();
    set_cookie(&mut resp, state, SESSION_COOKIE, "", "/admin", 0);
    resp
}

// ---------------------------------------------------------------------------------------
// Assets

fn asset(body: &'static str, content_type: &'static str) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(body)
}

#[handler]
fn stylesheet() -> Response {
    asset(include_str!("assets/admin.css"), "text/css; charset=utf-8")
}

#[handler]
fn script() -> Response {
    asset(
        include_str!("assets/admin.js"),
        "text/javascript; charset=utf-8",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_admin_pages_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/admin/tasks?status=dead")),
            "/admin/tasks?status=dead"
        );
        assert_eq!(safe_next(Some("https://evil.example/admin")), "/admin");
        assert_eq!(safe_next(Some("//evil.example")), "/admin");
        assert_eq!(safe_next(Some("/admin/login")), "/admin");
        assert_eq!(safe_next(None), "/admin");
    }

    #[test]
    fn filters_are_validated_with_clear_messages() {
        let f = FilterValues {
            status: Some("exploded".into()),
            ..Default::default()
        };
        assert!(task_query(&f).unwrap_err().contains("status"));
        let f = FilterValues {
            from: Some("2026-11-24T10:30".into()),
            institution_id: Some(" ".into()),
            ..Default::default()
        };
        let q = task_query(&f).unwrap();
        assert_eq!(q.from, Some(Timestamp(1_795_516_200_000)));
        assert_eq!(q.institution_id, None, "blank fields do not filter");
        let f = FilterValues {
            limit: Some("5000".into()),
            ..Default::default()
        };
        assert!(event_query(&f).unwrap_err().contains("limit"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
