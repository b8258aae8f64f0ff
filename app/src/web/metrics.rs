//! Around every request: its metrics (by method, route template and status; the template,
//! never the path, so that ids do not multiply the series) and one access-log line (target
//! `campus::access`: method, route, status, duration, the authenticated user's id; the
//! request's span adds its correlation id; never the query string, headers or body, so no
//! token or reset link). And
//! `GET /metrics`, the Prometheus text of [`crate::metrics`], behind `CAMPUS_METRICS_TOKEN`
//! when it is set.

use super::error::ErrorBody;
use super::State;
use crate::metrics as m;
use poem::http::StatusCode;
use poem::web::Data;
use poem::PathPattern;
use poem::{handler, Endpoint, IntoResponse, Request, Response};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use subtle::ConstantTimeEq;

/// The user a request was authenticated as, for its access-log line: set by the bearer
/// check (`api::auth`), read once the response is known.
#[derive(Clone, Default)]
pub struct RequestUser(Arc<OnceLock<uuid::Uuid>>);

impl RequestUser {
    /// Records the authenticated user (the first one set stays).
    pub fn set(&self, user: uuid::Uuid) {
        let _ = self.0.set(user);
    }
}

/// Records the request's metrics and access-log line once its response is known.
pub async fn observe<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let method = req.method().as_str().to_string();
    let user = RequestUser::default();
    req.extensions_mut().insert(user.clone());
    let (result, status, route) = match next.call(req).await {
        Ok(r) => {
            let r = r.into_response();
            let route = r.data::<PathPattern>().map(|p| p.0.to_string());
            let status = r.status();
            (Ok(r), status, route)
        }
        Err(e) => {
            let route = e.data::<PathPattern>().map(|p| p.0.to_string());
            let status = e.status();
            (Err(e), status, route)
        }
    };
    let route = route.unwrap_or_else(|| "unmatched".into());
    let elapsed = started.elapsed();
    let user_id = user.0.get().map(ToString::to_string);
    tracing::info!(
        target: "campus::access",
        method = %method,
        route = %route,
        status = status.as_u16(),
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        user_id = user_id.as_deref(),
        "request"
    );
    metrics::histogram!(m::HTTP_DURATION, "method" => method.clone(), "route" => route.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!(
        m::HTTP_REQUESTS,
        "method" => method,
        "route" => route,
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    result
}

/// `GET /metrics`: 404 when metrics are off, 401 without the configured bearer token.
#[handler]
pub async fn scrape(req: &Request, Data(state): Data<&State>) -> Response {
    if let Some(token) = &state.metrics_token {
        let given = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return json_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "GET /metrics needs `Authorization: Bearer <CAMPUS_METRICS_TOKEN>`",
            );
        }
    }
    match m::render() {
        Some(text) => text
            .with_content_type("text/plain; version=0.0.4; charset=utf-8")
            .into_response(),
        None => json_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are off (CAMPUS_METRICS=off)",
        ),
    }
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    ErrorBody::new(code, message)
        .with_status(status)
        .into_response()
}
