//! Webhook subscriptions (`webhook_subscriptions`) and the delivery log (`webhook_attempts`)
//! on PostgreSQL. Every read and write of a subscription is scoped by its institution.

use super::{db_err, is_unique_violation, PgStore};
use crate::dto::{time, uuid};
use campus_core::events::SealedSecret;
use campus_core::ids::{InstitutionId, TaskId, WebhookId};
use campus_core::Timestamp;
use campus_ports::{
    DeliveryAttempt, DeliveryQuery, DeliveryState, DeliverySummary, DeliveryTarget, LoggedAttempt,
    NewSubscription, PortError, SubscriptionChange, WebhookStore, WebhookSubscription,
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

/// One row per delivery of a subscription, from its attempts; its state from the last
/// attempt and its task (live or archived).
const DELIVERIES: &str = "
SELECT * FROM (
  SELECT d.*,
         CASE WHEN d.last_status BETWEEN 200 AND 299 THEN 'succeeded'
              WHEN coalesce(t.status, tp.status) IN ('pending', 'running', 'retrying')
                THEN 'retrying'
              ELSE 'failed' END AS state
    FROM (SELECT task_id, min(message_id) AS message_id, min(event_type) AS event_type,
                 count(*) AS attempts, min(at) AS first_at, max(at) AS last_at,
                 (array_agg(status ORDER BY attempt DESC, id DESC))[1] AS last_status,
                 (array_agg(error ORDER BY attempt DESC, id DESC))[1] AS last_error
            FROM webhook_attempts
           WHERE institution_id = $1 AND subscription_id = $2
             AND ($3::text IS NULL OR event_type = $3)
             AND ($4::timestamptz IS NULL OR at >= $4)
             AND ($5::timestamptz IS NULL OR at < $5)
             AND ($6::uuid IS NULL OR task_id < $6)
           GROUP BY task_id) d
    LEFT JOIN tasks t ON t.id = d.task_id
    LEFT JOIN tasks_processed tp ON tp.id = d.task_id
) x
WHERE ($7::text IS NULL OR state = $7)
ORDER BY task_id DESC
LIMIT $8";

fn logged(row: &PgRow) -> LoggedAttempt {
    LoggedAttempt {
        attempt: DeliveryAttempt {
            task_id: TaskId(row.get::<uuid::Uuid, _>("task_id").as_u128()),
            subscription_id: WebhookId(row.get::<uuid::Uuid, _>("subscription_id").as_u128()),
            institution_id: InstitutionId(row.get::<uuid::Uuid, _>("institution_id").as_u128()),
            message_id: row.get("message_id"),
            event_type: row.get("event_type"),
            attempt: u32::try_from(row.get::<i32, _>("attempt")).unwrap_or(0),
            status: row
                .get::<Option<i32>, _>("status")
                .and_then(|s| u16::try_from(s).ok()),
            duration: std::time::Duration::from_secs_f64(
                row.get::<f64, _>("duration_ms").max(0.0) / 1000.0,
            ),
            response_excerpt: row.get("response_excerpt"),
            error: row.get("error"),
        },
        at: ts(row.get("at")),
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
                    failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
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
        one_subscription(r)
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
        one_subscription(r)
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

    async fn deliveries(
        &self,
        institution: InstitutionId,
        subscription: WebhookId,
        q: &DeliveryQuery,
    ) -> Result<Vec<DeliverySummary>, PortError> {
        let rows = sqlx::query(DELIVERIES)
            .bind(uuid(institution.0))
            .bind(uuid(subscription.0))
            .bind(&q.event_type)
            .bind(q.since.map(time))
            .bind(q.until.map(time))
            .bind(q.before.map(|t| uuid(t.0)))
            .bind(q.state.map(DeliveryState::as_str))
            .bind(i64::from(q.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|row| DeliverySummary {
                task_id: TaskId(row.get::<uuid::Uuid, _>("task_id").as_u128()),
                message_id: row.get("message_id"),
                event_type: row.get("event_type"),
                attempts: u32::try_from(row.get::<i64, _>("attempts")).unwrap_or(0),
                last_status: row
                    .get::<Option<i32>, _>("last_status")
                    .and_then(|s| u16::try_from(s).ok()),
                last_error: row.get("last_error"),
                first_at: ts(row.get("first_at")),
                last_at: ts(row.get("last_at")),
                state: DeliveryState::parse(row.get("state")).unwrap_or(DeliveryState::Failed),
            })
            .collect())
    }

    async fn delivery_attempts(
        &self,
        institution: InstitutionId,
        subscription: WebhookId,
        delivery: TaskId,
    ) -> Result<Vec<LoggedAttempt>, PortError> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_attempts
              WHERE institution_id = $1 AND subscription_id = $2 AND task_id = $3
              ORDER BY attempt, id",
        )
        .bind(uuid(institution.0))
        .bind(uuid(subscription.0))
        .bind(uuid(delivery.0))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        if rows.is_empty() {
            return Err(PortError::NotFound("webhook delivery"));
        }
        Ok(rows.iter().map(logged).collect())
    }

    async fn record_attempt(&self, a: &DeliveryAttempt) -> Result<Option<Timestamp>, PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
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
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        // The subscription's row is written only when its streak starts or ends: every
        // delivery to one receiver writing it would queue them all on its row lock.
        let succeeded = a.status.is_some_and(|s| (200..300).contains(&s));
        let since: Option<DateTime<Utc>> = if succeeded {
            sqlx::query(
                "UPDATE webhook_subscriptions SET failing_since = NULL
                  WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(uuid(a.subscription_id.0))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            None
        } else {
            sqlx::query_scalar(
                "WITH started AS (
                   UPDATE webhook_subscriptions SET failing_since = now()
                    WHERE id = $1 AND failing_since IS NULL
                RETURNING failing_since)
                 SELECT failing_since FROM started
                 UNION ALL
                 SELECT failing_since FROM webhook_subscriptions
                  WHERE id = $1 AND failing_since IS NOT NULL",
            )
            .bind(uuid(a.subscription_id.0))
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
        };
        tx.commit().await.map_err(db_err)?;
        Ok(since.map(ts))
    }
}

/// A write that names one subscription of an institution: `NotFound` when it touched none.
fn one_subscription(r: sqlx::postgres::PgQueryResult) -> Result<(), PortError> {
    if r.rows_affected() == 0 {
        return Err(PortError::NotFound("webhook subscription"));
    }
    Ok(())
}
