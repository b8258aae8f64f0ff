//! HTTP errors: every error is JSON `{code, message}` with the right status.

use crate::services::AppError;
use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// The body of every error response.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct ErrorBody {
    /// Stable machine-readable code: `invalid_request` (400: malformed, or outside the
    /// declared schema), `invalid_input` (400: breaks a business rule), `unauthorized`
    /// (401), `forbidden` (403), `not_found` (404), `method_not_allowed` (405), `conflict`
    /// (409), `payload_too_large` (413), `unsupported_media_type` (415), `rate_limited`
    /// (429), `unavailable`, `overloaded` or `not_ready` (503), `internal_error` (500).
    pub code: String,
    /// Human-readable explanation (its wording may change; match on `code`).
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            code: code.into(),
            message: message.into(),
        })
    }
}

#[derive(Debug, ApiResponse)]
#[oai(bad_request_handler = "bad_request")]
pub enum ApiError {
    /// The input is malformed or breaks a rule.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Authenticated but not allowed.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// Not found, or not visible to the caller.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Conflicts with existing data.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Too many requests from this client or for this account; try again after
    /// `Retry-After` seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        /// Seconds to wait before trying again.
        #[oai(header = "Retry-After")]
        u64,
    ),
    /// A dependency (the database) is unavailable or the server is saturated; try again
    /// (after `Retry-After` seconds when given).
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorBody>,
        /// Seconds to wait before trying again, when the server is saturated.
        #[oai(header = "Retry-After")]
        Option<u64>,
    ),
}

fn bad_request(err: poem::Error) -> ApiError {
    ApiError::BadRequest(ErrorBody::new("invalid_request", err.to_string()))
}

impl ApiError {
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::Forbidden(ErrorBody::new("forbidden", message))
    }

    /// 503 `unavailable` without a `Retry-After`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable(ErrorBody::new("unavailable", message), None)
    }

    /// 429 `rate_limited`, to retry after `retry_after` (at least one second).
    pub fn too_many(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        ApiError::TooManyRequests(ErrorBody::new("rate_limited", message), seconds.max(1))
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Invalid(d) => {
                ApiError::BadRequest(ErrorBody::new("invalid_input", d.to_string()))
            }
            AppError::Unauthorized(m) => ApiError::Unauthorized(ErrorBody::new("unauthorized", m)),
            AppError::Forbidden(m) => ApiError::forbidden(m),
            AppError::NotFound(what) => {
                ApiError::NotFound(ErrorBody::new("not_found", format!("{what} not found")))
            }
            AppError::Conflict(m) => ApiError::Conflict(ErrorBody::new("conflict", m)),
            AppError::Unavailable(detail) => {
                tracing::error!(%detail, "request failed on infrastructure");
                ApiError::unavailable("the service is temporarily unavailable; try again")
            }
            AppError::Busy(detail) => ApiError::Unavailable(
                ErrorBody::new("overloaded", format!("{detail}; try again in a second")),
                Some(1),
            ),
        }
    }
}

/// Turns any error that escaped the typed responses (unknown route, wrong method, failed
/// authentication, body too large, …) into the same JSON shape.
pub async fn json_error(err: poem::Error) -> poem::Response {
    let status = err.status();
    let code = match status {
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        s if s.is_client_error() => "invalid_request",
        _ => "internal_error",
    };
    let message = match status {
        StatusCode::UNAUTHORIZED => "a valid bearer token is required".to_string(),
        StatusCode::NOT_FOUND => "no such resource".to_string(),
        s if s.is_server_error() => {
            tracing::error!(error = %err, "unhandled error");
            "internal error".to_string()
        }
        _ => err.to_string(),
    };
    let body = serde_json::to_string(&ErrorBody {
        code: code.into(),
        message,
    })
    .unwrap_or_default();
    poem::Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body)
}
