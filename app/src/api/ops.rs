//! Health checks.

use super::public::ApiTags;
use crate::web::error::{ApiError, ErrorBody};
use crate::web::State;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

/// A healthy answer's status.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Healthy (an unhealthy process answers 503 with an error body instead).
    Ok,
}

/// A health check that passed.
#[derive(Object)]
pub struct Health {
    /// Always `ok`.
    pub status: HealthStatus,
}

pub struct OpsApi;

#[OpenApi(tag = "ApiTags::Ops")]
impl OpsApi {
    /// The process is alive
    ///
    /// Anyone may call it. 200 as long as the process answers HTTP; for a liveness probe.
    #[oai(path = "/health/live", method = "get", operation_id = "checkLiveness")]
    async fn live(&self) -> Json<Health> {
        Json(Health {
            status: HealthStatus::Ok,
        })
    }

    /// The process can serve: database, migrations and daemon wake-up connection are ready
    ///
    /// Anyone may call it; for a readiness probe. 200 when the database is reachable, every
    /// migration is applied and, where this process runs a daemon, its wake-up (LISTEN)
    /// connection is up; else 503 with code `not_ready` and the reason.
    #[oai(
        path = "/health/ready",
        method = "get",
        operation_id = "checkReadiness"
    )]
    async fn ready(&self, state: Data<&State>) -> Result<Json<Health>, ApiError> {
        match state.readiness.schema_ready().await {
            Ok(true) => match state.daemon.not_ready() {
                None => Ok(Json(Health {
                    status: HealthStatus::Ok,
                })),
                Some(why) => Err(ApiError::Unavailable(
                    ErrorBody::new("not_ready", why),
                    None,
                )),
            },
            Ok(false) => Err(ApiError::Unavailable(
                ErrorBody::new("not_ready", "migrations are not applied"),
                None,
            )),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                Err(ApiError::Unavailable(
                    ErrorBody::new("not_ready", "the database is not reachable"),
                    None,
                ))
            }
        }
    }
}
