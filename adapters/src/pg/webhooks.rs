//! Webhook subscriptions (`webhook_subscriptions`) and the delivery log (`webhook_attempts`)
//! on PostgreSQL. Every read and write of a subscription is scoped by its institution.

use super::{db_err, is_unique_violation, PgStore};
use crate::dto::{time, uuid};
use campus_core::events::SealedSecret;
use campus_core::ids::{InstitutionId, WebhookId};
use campus_core::Timestamp;
use campus_ports::{
    DeliveryAttempt, DeliveryTarget, NewSubscription, PortError, SubscriptionChange, WebhookStore,
    WebhookSubscription,
};
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

const COLUMNS: &str = "id, institution_id, url, event_types, description, enabled, \
                       disabled_reason, created_at, updated_at";

fn ts(t: DateTime<Utc>) -> Timestamp {
    Timestamp(t.timestamp_millis())
}

fn subscription(row: &PgRow) -> WebhookSubscription {
    WebhookSubscription {
        id: WebhookId(row.get::<uuid::Uuid, _>("id").as_u128()),
        institution_id: InstitutionId(row.get::<uuid::Uuid, _>("institution_id").as_u128()),
        url: row.get("url"),
        event_types: row.get("event_types"),
        description: row.get("description"),
        enabled: row.get("enabled"),
        disabled_reason: row.get("disabled_reason"),
        created_at: ts(row.get("created_at")),
        updated_at: ts(row.get("updated_at")),
    }
}

const UNIQUE_URL: &str = "webhook_subscriptions_institution_id_url_key";

fn duplicate_url(e: sqlx::Error) -> PortError {
    if is_unique_violation(&e, UNIQUE_URL) {
        PortError::Conflict("the institution already has a subscription to this URL".into())
    } else {
        db_err(e)
    }
}

#[async_trait::async_trait]
impl WebhookStore for PgStore {
    async fn create_subscription(
        &self,
        new: &NewSubscription,
        max_per_institution: u32,
    ) -> Result<WebhookSubscription, PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        // Serializes creations per institution, so the cap holds under concurrency.
        sqlx::query("SELECT 1 FROM institutions WHERE id = $1 FOR UPDATE")
            .bind(uuid(new.institution_id.0))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM webhook_subscriptions WHERE institution_id = $1",
        )
        .bind(uuid(new.institution_id.0))
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if count >= i64::from(max_per_institution) {
            return Err(PortError::Conflict(format!(
                "the institution already has {count} subscriptions, the most allowed"
            )));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO webhook_subscriptions
               (id, institution_id, url, event_types, description, enabled, secret_sealed)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        ))
        .bind(uuid::Uuid::now_v7())
        .bind(uuid(new.institution_id.0))
        .bind(&new.url)
        .bind(&new.event_types)
        .bind(&new.description)
        .bind(new.enabled)
        .bind(&new.secret.0)
        .fetch_one(&mut *tx)
        .await
        .map_err(duplicate_url)?;
        tx.commit().await.map_err(db_err)?;
        Ok(subscription(&row))
    }

    async fn subscriptions(
        &self,
        institution: InstitutionId,
    ) -> Result<Vec<WebhookSubscription>, PortError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE institution_id = $1 ORDER BY id"
        ))
        .bind(uuid(institution.0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows.iter().map(subscription).collect())
    }

    async fn subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<WebhookSubscription, PortError> {
        sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE institution_id = $1 AND id = $2"
        ))
        .bind(uuid(institution.0))
        .bind(uuid(id.0))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|r| subscription(&r))
        .ok_or(PortError::NotFound("webhook subscription"))
    }

    async fn update_subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        change: &SubscriptionChange,
    ) -> Result<WebhookSubscription, PortError> {
        sqlx::query(&format!(
            "UPDATE webhook_subscriptions
                SET url = $3, event_types = $4, description = $5, enabled = $6,
                    disabled_reason = CASE WHEN $6 THEN NULL ELSE disabled_reason END,
                    updated_at = now()
              WHERE institution_id = $1 AND id = $2
          RETURNING {COLUMNS}"
        ))
        .bind(uuid(institution.0))
        .bind(uuid(id.0))
        .bind(&change.url)
        .bind(&change.event_types)
        .bind(&change.description)
        .bind(change.enabled)
        .fetch_optional(&self.pool)
        .await
        .map_err(duplicate_url)?
        .map(|r| subscription(&r))
        .ok_or(PortError::NotFound("webhook subscription"))
    }

    async fn delete_subscription(
        &self,
        institution: InstitutionId,
        id: WebhookId,
    ) -> Result<(), PortError> {
        let r =
            sqlx::query("DELETE FROM webhook_subscriptions WHERE institution_id = $1 AND id = $2")
                .bind(uuid(institution.0))
                .bind(uuid(id.0))
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(PortError::NotFound("webhook subscription"));
        }
        Ok(())
    }

    async fn rotate_secret(
        &self,
        institution: InstitutionId,
        id: WebhookId,
        secret: &SealedSecret,
        previous_until: Timestamp,
    ) -> Result<(), PortError> {
        let r = sqlx::query(
            "UPDATE webhook_subscriptions
                SET previous_sealed = secret_sealed, previous_until = $4, secret_sealed = $3,
                    updated_at = now()
              WHERE institution_id = $1 AND id = $2",
        )
        .bind(uuid(institution.0))
        .bind(uuid(id.0))
        .bind(&secret.0)
        .bind(time(previous_until))
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if r.rows_affected() == 0 {
            return Err(PortError::NotFound("webhook subscription"));
        }
        Ok(())
    }

    async fn matching(
        &self,
        institution: InstitutionId,
        event_type: &str,
    ) -> Result<Vec<WebhookId>, PortError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM webhook_subscriptions
              WHERE institution_id = $1 AND enabled AND $2 = ANY (event_types)
              ORDER BY id",
        )
        .bind(uuid(institution.0))
        .bind(event_type)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(|id| WebhookId(id.as_u128())).collect())
    }

    async fn subscribed_types(&self) -> Result<Vec<(InstitutionId, String)>, PortError> {
        let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT DISTINCT institution_id, unnest(event_types)
               FROM webhook_subscriptions WHERE enabled",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(i, t)| (InstitutionId(i.as_u128()), t))
            .collect())
    }

    async fn target(&self, id: WebhookId) -> Result<Option<DeliveryTarget>, PortError> {
        let row = sqlx::query(
            "SELECT id, institution_id, url, enabled, secret_sealed, previous_sealed,
                    previous_until
               FROM webhook_subscriptions WHERE id = $1",
        )
        .bind(uuid(id.0))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(row.map(|row| {
            let previous: Option<String> = row.get("previous_sealed");
            let until: Option<DateTime<Utc>> = row.get("previous_until");
            DeliveryTarget {
                id,
                institution_id: InstitutionId(row.get::<uuid::Uuid, _>("institution_id").as_u128()),
                url: row.get("url"),
                enabled: row.get("enabled"),
                secret: SealedSecret(row.get("secret_sealed")),
                previous_secret: previous.zip(until).map(|(p, u)| (SealedSecret(p), ts(u))),
            }
        }))
    }

    async fn disable(&self, id: WebhookId, reason: &str) -> Result<(), PortError> {
        sqlx::query(
            "UPDATE webhook_subscriptions SET enabled = false, disabled_reason = $2,
                    updated_at = now()
              WHERE id = $1",
        )
        .bind(uuid(id.0))
        .bind(reason)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn record_attempt(&self, a: &DeliveryAttempt) -> Result<(), PortError> {
        sqlx::query(
            "INSERT INTO webhook_attempts
               (id, task_id, subscription_id, institution_id, message_id, event_type, attempt,
                status, duration_ms, response_excerpt, error)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(uuid(a.task_id.0))
        .bind(uuid(a.subscription_id.0))
        .bind(uuid(a.institution_id.0))
        .bind(&a.message_id)
        .bind(&a.event_type)
        .bind(i32::try_from(a.attempt).unwrap_or(i32::MAX))
        .bind(a.status.map(i32::from))
        .bind(a.duration.as_secs_f64() * 1000.0)
        .bind(&a.response_excerpt)
        .bind(&a.error)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }
}
