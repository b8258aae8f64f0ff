//! Institutions, users and reset-password tokens.

use super::{db_err, is_unique_violation, PgStore};
use crate::dto::{time, uuid};
use async_trait::async_trait;
use campus_core::events::RecordsEvents;
use campus_core::ids::*;
use campus_core::user::{Institution, PasswordHash, ResetPasswordToken, User};
use campus_core::values::{Email, Name, Role};
use campus_core::Timestamp;
use campus_ports::{EventContext, PageRequest, PortError, UserRepository, UserSummary};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

const USER_COLUMNS: &str = "id, institution_id, role, name, email, password_hash";

fn email_taken(e: sqlx::Error) -> PortError {
    if is_unique_violation(&e, "users_email_key") {
        PortError::Conflict("a user with this e-mail already exists".into())
    } else {
        db_err(e)
    }
}

pub(crate) fn user_from_row(row: &PgRow) -> Result<User, PortError> {
    let corrupt = |what: &str| PortError::Unavailable(format!("stored user has an invalid {what}"));
    let role: String = row.get("role");
    let name: String = row.get("name");
    let email: String = row.get("email");
    Ok(User::restore(
        UserId(row.get::<uuid::Uuid, _>("id").as_u128()),
        row.get::<Option<uuid::Uuid>, _>("institution_id")
            .map(|i| InstitutionId(i.as_u128())),
        Role::parse(&role).ok_or_else(|| corrupt("role"))?,
        Name::parse("name", &name).map_err(|_| corrupt("name"))?,
        Email::parse(&email).map_err(|_| corrupt("e-mail"))?,
        PasswordHash(row.get("password_hash")),
    ))
}

pub(crate) async fn insert_user(
    tx: &mut Transaction<'_, Postgres>,
    user: &User,
) -> Result<(), PortError> {
    sqlx::query(
        "INSERT INTO users (id, institution_id, role, name, email, password_hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(uuid(user.id.0))
    .bind(user.institution_id.map(|i| uuid(i.0)))
    .bind(user.role.as_str())
    .bind(user.name.as_str())
    .bind(user.email.as_str())
    .bind(&user.password_hash.0)
    .execute(&mut **tx)
    .await
    .map_err(email_taken)?;
    Ok(())
}

fn ts(dt: DateTime<Utc>) -> Timestamp {
    Timestamp(dt.timestamp_millis())
}

#[async_trait]
impl UserRepository for PgStore {
    async fn create_institution(
        &self,
        institution: &mut Institution,
        academic: &mut User,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("INSERT INTO institutions (id, name) VALUES ($1, $2)")
            .bind(uuid(institution.id.0))
            .bind(institution.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_user(&mut tx, academic).await?;
        let mut events = institution.take_events();
        events.extend(academic.take_events());
        self.commit_with_events(tx, events, ctx).await
    }

    async fn create_user(&self, user: &mut User, ctx: &EventContext) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        insert_user(&mut tx, user).await?;
        self.commit_with_events(tx, user.take_events(), ctx).await
    }

    async fn find_user(&self, id: UserId) -> Result<Option<User>, PortError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(uuid(id.0))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn find_user_by_email(&self, email: &Email) -> Result<Option<User>, PortError> {
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn list_users(
        &self,
        institution: InstitutionId,
        role: Role,
        page: PageRequest,
    ) -> Result<Vec<UserSummary>, PortError> {
        let rows = sqlx::query(
            "SELECT id, name, email FROM users
             WHERE institution_id = $1 AND role = $2 AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
        )
        .bind(uuid(institution.0))
        .bind(role.as_str())
        .bind(page.after.map(uuid))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| UserSummary {
                id: UserId(r.get::<uuid::Uuid, _>("id").as_u128()),
                name: r.get("name"),
                email: r.get("email"),
            })
            .collect())
    }

    async fn save_reset_token(
        &self,
        token: Option<ResetPasswordToken>,
        not_since: Timestamp,
        ctx: &EventContext,
    ) -> Result<bool, PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let row = token.as_ref().map(|t| {
            (
                uuid(t.id.0),
                uuid(t.user_id.0),
                t.token_hash.clone(),
                time(t.expires_at),
            )
        });
        let inserted = sqlx::query(
            "INSERT INTO reset_password_tokens (id, user_id, token_hash, expires_at)
             SELECT $1, $2, $3, $4
             WHERE $1::uuid IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM reset_password_tokens WHERE user_id = $2 AND created_at > $5)",
        )
        .bind(row.as_ref().map(|r| r.0))
        .bind(row.as_ref().map(|r| r.1))
        .bind(row.as_ref().map(|r| r.2.clone()))
        .bind(row.as_ref().map(|r| r.3))
        .bind(time(not_since))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        let events = match (inserted, token) {
            (true, Some(mut token)) => token.take_events(),
            _ => Vec::new(),
        };
        self.commit_with_events(tx, events, ctx).await?;
        Ok(inserted)
    }

    async fn find_reset_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<ResetPasswordToken>, PortError> {
        let row = sqlx::query("SELECT id, user_id, token_hash, expires_at, used_at FROM reset_password_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| {
            ResetPasswordToken::restore(
                TokenId(r.get::<uuid::Uuid, _>("id").as_u128()),
                UserId(r.get::<uuid::Uuid, _>("user_id").as_u128()),
                r.get("token_hash"),
                ts(r.get("expires_at")),
                r.get::<Option<DateTime<Utc>>, _>("used_at").map(ts),
            )
        }))
    }

    async fn reset_password(
        &self,
        token: &ResetPasswordToken,
        user: &mut User,
        ctx: &EventContext,
    ) -> Result<(), PortError> {
        let used_at = token
            .used_at
            .ok_or_else(|| PortError::Conflict("token was not consumed".into()))?;
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let consumed = sqlx::query(
            "UPDATE reset_password_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
        )
        .bind(uuid(token.id.0))
        .bind(time(used_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if consumed.rows_affected() != 1 {
            return Err(PortError::Conflict("the token was already used".into()));
        }
        update_password(&mut tx, user, used_at).await?;
        self.commit_with_events(tx, user.take_events(), ctx).await
    }

    async fn set_password(&self, user: &mut User, ctx: &EventContext) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let now = Timestamp(chrono::Utc::now().timestamp_millis());
        update_password(&mut tx, user, now).await?;
        self.commit_with_events(tx, user.take_events(), ctx).await
    }

    async fn access_version(&self, user: UserId) -> Result<Option<i64>, PortError> {
        sqlx::query_scalar("SELECT access_version FROM users WHERE id = $1")
            .bind(uuid(user.0))
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }
}

/// Writes a new password hash and revokes everything the old one gave: access tokens (by
/// bumping `access_version`), admin sessions, and reset tokens still unused at `now`.
async fn update_password(
    tx: &mut Transaction<'_, Postgres>,
    user: &User,
    now: Timestamp,
) -> Result<(), PortError> {
    let id = uuid(user.id.0);
    sqlx::query(
        "UPDATE users SET password_hash = $2, access_version = access_version + 1 WHERE id = $1",
    )
    .bind(id)
    .bind(&user.password_hash.0)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("DELETE FROM operator_sessions WHERE user_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    sqlx::query(
        "UPDATE reset_password_tokens SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
    )
    .bind(id)
    .bind(time(now))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}
