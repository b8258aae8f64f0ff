//! The context of every request: its correlation id (from `X-Correlation-Id` when
//! well-formed, else new) in the request, the logs and the response; the body size limit;
//! JSON for every error that escaped the typed responses; and the event context the use
//! cases record with what the request changes.

use super::error;
use campus_ports::EventContext;
use poem::{Endpoint, IntoResponse, Request};
use tracing::Instrument;

/// The request's correlation id (from `X-Correlation-Id` when well-formed, else new).
#[derive(Debug, Clone)]
pub struct CorrelationId(pub String);

const CORRELATION_HEADER: &str = "x-correlation-id";

fn valid_correlation(raw: &str) -> bool {
    !raw.is_empty()
        && raw.len() <= 64
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Around every request: a correlation id (from `X-Correlation-Id` when well-formed, else
/// new) in the request, the logs and the response; a body size limit; and JSON for every
/// error that escaped the typed responses.
pub async fn frame<E: Endpoint>(next: E, mut req: Request) -> poem::Result<poem::Response> {
    let id = req
        .headers()
        .get(CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_correlation(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), correlation_id = %id);
    let mut resp = async {
        let body = req.take_body();
        if !body.is_empty() {
            match body.into_bytes_limit(MAX_BODY).await {
                Ok(bytes) => req.set_body(bytes),
                Err(e) => return error::json_error(e.into()).await,
            }
        }
        match next.call(req).await {
            Ok(r) => r.into_response(),
            // Typed API errors already carry their JSON response.
            Err(e) if e.is_from_response() => e.into_response(),
            Err(e) => error::json_error(e).await,
        }
    }
    .instrument(span)
    .await;
    if let Ok(v) = poem::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert(CORRELATION_HEADER, v);
    }
    Ok(resp)
}

/// The event context of a request.
pub fn event_context(req: &Request) -> EventContext {
    EventContext {
        correlation_id: req.extensions().get::<CorrelationId>().map(|c| c.0.clone()),
        // Anonymous; see `BearerAuth::context` for a logged-in user's requests.
        actor_id: None,
    }
}
