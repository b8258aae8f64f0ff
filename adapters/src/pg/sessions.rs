//! Operators' browser sessions (`operator_sessions`), keyed by the hash of their token.

use super::{db_err, PgStore};
use crate::dto::{time, uuid};
use async_trait::async_trait;
use campus_core::ids::*;
use campus_core::values::Role;
use campus_core::Timestamp;
use campus_ports::{OperatorSession, PortError, SessionStore};
use chrono::{DateTime, Utc};
use sqlx::Row;

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(
        &self,
        token_hash: &str,
        user: UserId,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> Result<(), PortError> {
        sqlx::query("DELETE FROM operator_sessions WHERE expires_at < now()")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO operator_sessions (token_hash, user_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(uuid(user.0))
        .bind(csrf_token)
        .bind(time(expires_at))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn find_session(
        &self,
        token_hash: &str,
        now: Timestamp,
    ) -> Result<Option<OperatorSession>, PortError> {
        let row = sqlx::query(
            "SELECT u.id, u.role, u.institution_id, u.name, u.email, s.csrf_token, s.expires_at
             FROM operator_sessions s JOIN users u ON u.id = s.user_id
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(time(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let role: String = row.get("role");
        Ok(Some(OperatorSession {
            user_id: UserId(row.get::<uuid::Uuid, _>("id").as_u128()),
            role: Role::parse(&role)
                .ok_or_else(|| PortError::Unavailable(format!("stored role {role:?}")))?,
            institution_id: row
                .get::<Option<uuid::Uuid>, _>("institution_id")
                .map(|i| InstitutionId(i.as_u128())),
            name: row.get("name"),
            email: row.get("email"),
            csrf_token: row.get("csrf_token"),
            expires_at: Timestamp(row.get::<DateTime<Utc>, _>("expires_at").timestamp_millis()),
        }))
    }

    async fn delete_session(&self, token_hash: &str) -> Result<(), PortError> {
        sqlx::query("DELETE FROM operator_sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
}
