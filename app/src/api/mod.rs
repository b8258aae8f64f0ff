//! The HTTP API (poem + poem-openapi): endpoints, the OpenAPI document, Swagger UI at
//! `/docs`, the reset-password page, the admin screen (`crate::admin`), JSON errors and
//! correlation ids.

pub mod academic;
pub mod adm;
pub mod auth;
pub mod controls;
pub mod error;
pub mod limits;
pub mod listener;
pub mod ops;
pub mod pages;
pub mod public;

use crate::admin::live::LiveHub;
use crate::services::{AcademicService, AccountService, OperationsService, SessionService};
use auth::JwtKeys;
use campus_ports::{EventContext, PageRequest};
use poem::{Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Request, Route};
use poem_openapi::OpenApiService;
use std::sync::Arc;
use tracing::Instrument;

/// What every endpoint can reach.
pub struct ApiState {
    pub accounts: AccountService,
    pub academic: AcademicService,
    pub operations: OperationsService,
    /// Browser sessions of the admin screen.
    pub sessions: SessionService,
    /// Live updates of the admin screen.
    pub live: LiveHub,
    /// Whether cookies carry `Secure` (the public URL is https).
    pub secure_cookies: bool,
    pub jwt: JwtKeys,
    /// Abuse limits and the client address.
    pub limiter: limits::Limiter,
    /// The readiness check of `/health/ready`.
    pub readiness: Arc<dyn campus_ports::Readiness>,
}

pub type State = Arc<ApiState>;

/// All endpoint groups.
pub type Apis = (
    public::PublicApi,
    academic::AcademicApi,
    academic::TeacherApi,
    academic::StudentApi,
    adm::AdmApi,
    adm::AdmViewsApi,
    ops::OpsApi,
    controls::AdmControlsApi,
);

/// The OpenAPI service; `server_url` is advertised in the document.
pub fn openapi(server_url: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (public::PublicApi, academic::AcademicApi, academic::TeacherApi, academic::StudentApi, adm::AdmApi, adm::AdmViewsApi, ops::OpsApi, controls::AdmControlsApi),
        "Campus",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Academic management whose side effects (e-mails, notifications, demo data) run through durable \
         domain events and tasks in PostgreSQL. Every error is JSON `{code, message}`. Send \
         `X-Correlation-Id` to trace a request through its events and tasks.",
    )
    .server(server_url)
}

/// The OpenAPI document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    openapi("/").spec()
}

/// The whole HTTP application.
pub fn routes(state: State) -> impl Endpoint {
    let api = openapi("/");
    let docs = api.swagger_ui();
    let spec = api.spec_endpoint();
    Route::new()
        .nest("/", api)
        .nest("/docs", docs)
        .nest("/admin", crate::admin::routes())
        .at("/openapi.json", spec)
        .at(
            "/reset-password",
            poem::get(pages::reset_form)
                .post(pages::reset_submit)
                .around(pages::secure_headers),
        )
        .data(state.jwt.clone())
        .data(state)
        .around(frame)
        .into_endpoint()
}

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
async fn frame<E: Endpoint>(next: E, mut req: Request) -> poem::Result<poem::Response> {
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
    }
}

/// Page parameters: `limit` 1..=200 (default 50), `after` an item id.
pub fn page(limit: Option<u32>, after: Option<uuid::Uuid>) -> PageRequest {
    PageRequest {
        limit: limit.unwrap_or(50).clamp(1, 200),
        after: after.map(|a| a.as_u128()),
    }
}
