//! Notifications, demo data seeded for a new institution, and the log of sent e-mails.

use super::academic::{insert_class, insert_discipline, insert_enrollment};
use super::users::insert_user;
use super::{db_err, PgStore};
use crate::dto::{time, uuid};
use async_trait::async_trait;
use campus_core::events::RecordsEvents;
use campus_core::ids::*;
use campus_core::notification::Notification;
use campus_core::Timestamp;
use campus_ports::{
    DemoData, DemoDataRepository, EventContext, NotificationRepository, NotificationView,
    PageRequest, PortError, SentEmailLog,
};
use chrono::{DateTime, Utc};
use sqlx::Row;

#[async_trait]
impl NotificationRepository for PgStore {
    async fn create_once(
        &self,
        n: &mut Notification,
        dedup_key: &str,
        ctx: &EventContext,
    ) -> Result<bool, PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let inserted = sqlx::query(
            "INSERT INTO notifications (id, institution_id, user_id, kind, message, dedup_key, created_at, correlation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (dedup_key) DO NOTHING",
        )
        .bind(uuid(n.id.0))
        .bind(uuid(n.institution_id.0))
        .bind(uuid(n.user_id.0))
        .bind(&n.kind)
        .bind(&n.message)
        .bind(dedup_key)
        .bind(time(n.created_at))
        .bind(ctx.correlation_id.as_deref())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected()
            == 1;
        if !inserted {
            return Ok(false);
        }
        self.commit_with_events(tx, n.take_events(), ctx).await?;
        Ok(true)
    }

    async fn list_for_user(
        &self,
        user: UserId,
        page: PageRequest,
    ) -> Result<Vec<NotificationView>, PortError> {
        let rows = sqlx::query(
            "SELECT id, kind, message, created_at, read_at, correlation_id FROM notifications
             WHERE user_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(uuid(user.0))
        .bind(page.after.map(uuid))
        .bind(i64::from(page.limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let ts = |dt: DateTime<Utc>| Timestamp(dt.timestamp_millis());
        Ok(rows
            .iter()
            .map(|r| NotificationView {
                id: NotificationId(r.get::<uuid::Uuid, _>("id").as_u128()),
                kind: r.get("kind"),
                message: r.get("message"),
                created_at: ts(r.get("created_at")),
                read_at: r.get::<Option<DateTime<Utc>>, _>("read_at").map(ts),
                correlation_id: r.get("correlation_id"),
            })
            .collect())
    }
}

#[async_trait]
impl DemoDataRepository for PgStore {
    async fn save_demo_data(
        &self,
        institution: InstitutionId,
        task: TaskId,
        mut data: DemoData,
        ctx: &EventContext,
    ) -> Result<bool, PortError> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let claimed = sqlx::query("INSERT INTO demo_seeds (institution_id, task_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(uuid(institution.0))
            .bind(uuid(task.0))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 1;
        if !claimed {
            return Ok(false);
        }
        let mut events = Vec::new();
        for u in &mut data.users {
            insert_user(&mut tx, u).await?;
            events.extend(u.take_events());
        }
        for d in &mut data.disciplines {
            insert_discipline(&mut tx, d).await?;
            events.extend(d.take_events());
        }
        for c in &mut data.classes {
            insert_class(&mut tx, c).await?;
            events.extend(c.take_events());
        }
        for e in &mut data.enrollments {
            insert_enrollment(&mut tx, e).await?;
            events.extend(e.take_events());
        }
        self.commit_with_events(tx, events, ctx).await?;
        Ok(true)
    }
}

#[async_trait]
impl SentEmailLog for PgStore {
    async fn record_sent(
        &self,
        lineage: TaskId,
        message_id: &str,
        recipient: &str,
    ) -> Result<bool, PortError> {
        let r = sqlx::query("INSERT INTO sent_emails (lineage_id, message_id, recipient) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(uuid(lineage.0))
            .bind(message_id)
            .bind(recipient)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(r.rows_affected() == 1)
    }

    async fn was_sent(&self, lineage: TaskId) -> Result<bool, PortError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM sent_emails WHERE lineage_id = $1)")
            .bind(uuid(lineage.0))
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}
