//! The audit trail: every business change of one entity, as the domain events it recorded,
//! live and archived, oldest first, with who caused each and its correlation id. An Adm user
//! reads every institution's; an Academic user only their own.

use super::adm_read::EventItem;
use super::auth::BearerAuth;
use super::public::ApiTags;
use crate::web::error::{ApiError, ErrorBody};
use crate::web::State;
use campus_core::ids::EventId;
use campus_ports::{AuditQuery, MAX_AUDIT_LIMIT};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};

/// The kinds of entity that record domain events.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateType {
    /// An institution (its creation).
    #[oai(rename = "Institution")]
    Institution,
    /// A user of any role; a student's trail includes their enrolments and grades.
    #[oai(rename = "User")]
    User,
    /// A password reset token (its creation).
    #[oai(rename = "ResetPasswordToken")]
    ResetPasswordToken,
    /// A discipline (its creation).
    #[oai(rename = "Discipline")]
    Discipline,
    /// A class (its creation).
    #[oai(rename = "Class")]
    Class,
    /// A class's enrolments and grades (keyed by the class id).
    #[oai(rename = "Enrollment")]
    Enrollment,
    /// A notification (its creation).
    #[oai(rename = "Notification")]
    Notification,
}

impl AggregateType {
    /// The name events carry in `aggregate_type`.
    fn as_str(self) -> &'static str {
        match self {
            AggregateType::Institution => "Institution",
            AggregateType::User => "User",
            AggregateType::ResetPasswordToken => "ResetPasswordToken",
            AggregateType::Discipline => "Discipline",
            AggregateType::Class => "Class",
            AggregateType::Enrollment => "Enrollment",
            AggregateType::Notification => "Notification",
        }
    }
}

/// One page of an entity's audit trail.
#[derive(Object)]
pub struct AuditTrail {
    /// The kind of entity, as asked.
    pub aggregate_type: AggregateType,
    /// The entity's id, as asked.
    pub aggregate_id: uuid::Uuid,
    /// Oldest first. Each event's `actor_id` is the user who caused it (`null`: a system
    /// actor such as the demo seed, or an anonymous request).
    pub items: Vec<EventItem>,
    /// Pass as `after` for the next (newer) page; absent on the last page.
    pub next_after: Option<uuid::Uuid>,
}

pub struct AuditApi;

#[OpenApi(tag = "ApiTags::Adm")]
impl AuditApi {
    /// The audit trail of one entity
    ///
    /// Every domain event the entity recorded, live and archived, oldest first: type,
    /// payload, when, who (`actor_id`) and the correlation id. Reprocessed copies are left
    /// out (they repeat their original). For Adm users (any entity) and Academic users
    /// (their institution's). 404 when the entity has no events in the caller's scope; 429
    /// when the caller already has `CAMPUS_ADMIN_CONCURRENCY` operator reads running.
    #[oai(
        path = "/audit/:aggregate_type/:aggregate_id",
        method = "get",
        operation_id = "getAuditTrail"
    )]
    async fn trail(
        &self,
        state: Data<&State>,
        auth: BearerAuth,
        /// The kind of entity.
        aggregate_type: Path<AggregateType>,
        /// The entity's id (for `Enrollment`, the class's).
        aggregate_id: Path<uuid::Uuid>,
        /// The `next_after` of the previous page.
        after: Query<Option<uuid::Uuid>>,
        /// At most this many events (1–1000, default 1000).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
    ) -> Result<Json<AuditTrail>, ApiError> {
        let scope = auth.0.operator_scope()?;
        let _slot = state.limiter.admin_read(auth.0.sub.as_u128())?;
        let limit = limit.0.unwrap_or(MAX_AUDIT_LIMIT).clamp(1, MAX_AUDIT_LIMIT);
        let query = AuditQuery {
            aggregate_type: aggregate_type.0.as_str().to_string(),
            aggregate_id: aggregate_id.0.as_u128(),
            after: after.0.map(|a| EventId(a.as_u128())),
            limit,
        };
        let events = state.operations.audit_trail(&query, scope).await?;
        if events.is_empty() && query.after.is_none() {
            return Err(ApiError::NotFound(ErrorBody::new(
                "not_found",
                format!(
                    "no events recorded for {} {}",
                    query.aggregate_type, aggregate_id.0
                ),
            )));
        }
        let full = events.len() == usize::try_from(limit).unwrap_or(usize::MAX);
        let next_after = events
            .last()
            .filter(|_| full)
            .map(|e| uuid::Uuid::from_u128(e.id.0));
        Ok(Json(AuditTrail {
            aggregate_type: aggregate_type.0,
            aggregate_id: aggregate_id.0,
            items: events
                .into_iter()
                .map(super::adm_read::event_item)
                .collect(),
            next_after,
        }))
    }
}
