//! The HTTP API (poem + poem-openapi): endpoints, the OpenAPI document (served with a
//! Swagger UI at `/docs` by [`crate::routes`]) and the reset-password page. What it shares
//! with the admin screen (state, request context, errors, limits) is in [`crate::web`].

pub mod academic;
pub mod adm;
pub mod adm_read;
pub mod audit;
pub mod auth;
pub mod contract;
pub mod controls;
pub mod listener;
pub mod ops;
pub mod pages;
pub mod public;
pub mod text;
pub mod webhooks;

use campus_ports::PageRequest;
use poem_openapi::OpenApiService;

/// All endpoint groups.
pub type Apis = (
    public::PublicApi,
    academic::AcademicApi,
    academic::TeacherApi,
    academic::StudentApi,
    adm::AdmApi,
    adm_read::AdmViewsApi,
    audit::AuditApi,
    ops::OpsApi,
    controls::AdmControlsApi,
    webhooks::WebhooksApi,
);

/// The OpenAPI service; `server_url` is advertised in the document.
pub fn openapi(server_url: &str) -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (public::PublicApi, academic::AcademicApi, academic::TeacherApi, academic::StudentApi, adm::AdmApi, adm_read::AdmViewsApi, audit::AuditApi, ops::OpsApi, controls::AdmControlsApi, webhooks::WebhooksApi),
        "Campus",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Academic management whose side effects (e-mails, notifications, demo data) run through durable \
         domain events and tasks in PostgreSQL. Every error is JSON `{code, message}`. Send a W3C \
         `traceparent` (its trace id), `X-Correlation-Id` or `X-Request-Id` to trace a request \
         through its events, tasks, notifications and e-mails (else one is made); every response \
         returns it as `X-Correlation-Id`, with a `traceparent` continuing the trace.",
    )
    .server(server_url)
}

/// The OpenAPI document, completed by [`contract::complete`]: what `/openapi.json` serves
/// and `openapi/openapi.json` commits.
pub fn openapi_json() -> String {
    contract::complete(&openapi("/").spec())
}

/// A stored instant as the API shows it.
pub fn at(t: campus_core::Timestamp) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(t.0).unwrap_or_default()
}

/// Page parameters: `limit` within the lists' bounds (see [`campus_ports::clamp_limit`]),
/// `after` an item id.
pub fn page(limit: Option<u32>, after: Option<uuid::Uuid>) -> PageRequest {
    PageRequest {
        limit: campus_ports::clamp_limit(limit),
        after: after.map(|a| a.as_u128()),
    }
}

/// How a value is written on the wire, for the tests of enums' names.
#[cfg(test)]
pub(crate) fn wire(v: impl poem_openapi::types::ToJSON) -> String {
    v.to_json()
        .and_then(|j| j.as_str().map(String::from))
        .unwrap()
}
