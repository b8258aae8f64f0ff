//! Health checks.

use super::public::ApiTags;
use crate::web::error::{ApiError, ErrorBody};
use crate::web::State;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

#[derive(Object)]
pub struct Health {
    /// `ok`
    pub status: String,
}

pub struct OpsApi;

#[OpenApi(tag = "ApiTags::Ops")]
impl OpsApi {
    /// The process is alive
    #[oai(path = "/health/live", method = "get", operation_id = "checkLiveness")]
    async fn live(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// The database is reachable, every migration is applied and, where this process runs
    /// a daemon, its wake-up (LISTEN) connection is up
    #[oai(
        path = "/health/ready",
        method = "get",
        operation_id = "checkReadiness"
    )]
    async fn ready(&self, state: Data<&State>) -> Result<Json<Health>, ApiError> {
        match state.readiness.schema_ready().await {
            Ok(true) => match state.daemon.not_ready() {
                None => Ok(Json(Health {
                    status: "ok".into(),
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
