//! How the screen answers: pages in the layout, and errors as pages (or `{code, message}`
//! JSON for clients that ask for JSON), abuse-limit refusals included.

use super::session::scope_of;
use super::views::{self, Flash, Names, Section};
use crate::services::AppError;
use crate::web::error::ApiError;
use crate::web::State;
use campus_ports::OperatorSession;
use poem::http::{header, HeaderValue, StatusCode};
use poem::web::Html;
use poem::{IntoResponse, Request, Response};

/// Institutions offered in the filter of an Adm user.
const INSTITUTION_CHOICES: u32 = 1000;

pub(super) fn wants_json(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json") && !v.contains("text/html"))
}

/// An error as a page (or `{code, message}` JSON for clients that ask for JSON).
pub(super) fn error_page(req: &Request, status: StatusCode, code: &str, message: &str) -> Response {
    if wants_json(req) {
        let body = serde_json::json!({ "code": code, "message": message });
        return poem::web::Json(body).with_status(status).into_response();
    }
    let title = status.canonical_reason().unwrap_or("Error");
    Html(views::message(title, message))
        .with_status(status)
        .into_response()
}

pub(super) fn failure(req: &Request, e: AppError) -> Response {
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
pub(super) fn limited(req: &Request, refusal: ApiError) -> Response {
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

pub(super) fn bad_input(req: &Request, message: &str) -> Response {
    error_page(req, StatusCode::BAD_REQUEST, "invalid_input", message)
}

/// Institution names for display and for the Adm's filter.
pub(super) async fn names(state: &State, op: &OperatorSession) -> Result<Names, AppError> {
    Ok(state
        .operations
        .institutions(scope_of(op), INSTITUTION_CHOICES)
        .await?
        .into_iter()
        .collect())
}

pub(super) fn page(
    state: &State,
    title: &str,
    section: Section,
    op: &OperatorSession,
    names: &Names,
    flash: &Flash,
    body: &maud::Markup,
) -> Response {
    let version = state.live.version();
    Html(views::layout(
        title, section, op, names, flash, body, version,
    ))
    .into_response()
}
