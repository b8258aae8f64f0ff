//! What `campus bench` reads from and does to its scratch database: creating and dropping it,
//! emptying the engine's tables between phases, and the timestamps its figures come from.
//! Behind the `bench` feature; writes go through the ports (`PgStore`), not through here.

use super::db_err;
use super::scratch::{drop_database, fresh_database_on};
use campus_ports::PortError;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// A scratch database made for one bench run (`campus_bench_<UUIDv7>`), migrated.
pub struct BenchDatabase {
    url: String,
    pool: PgPool,
}

/// When the tasks planned from events finished, and how many there were.
#[derive(Debug, Clone, Copy)]
pub struct FannedOutTasks {
    pub last_finished: Option<DateTime<Utc>>,
    pub count: i64,
}

/// A class of the demo data with one of its students, and the class's teacher.
#[derive(Debug, Clone)]
pub struct DemoEnrollment {
    pub teacher_email: String,
    pub class_id: Uuid,
    pub student_id: Uuid,
}

impl BenchDatabase {
    /// Makes and migrates a scratch database on the server of `server` (any database URL of
    /// that server).
    pub async fn create(server: &str) -> Result<BenchDatabase, PortError> {
        let (url, pool) = fresh_database_on(server, "campus_bench").await?;
        Ok(BenchDatabase { url, pool })
    }

    /// Its URL (with the server's credentials: redact it before showing it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its pool (10 connections).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes the pool and drops the database.
    pub async fn drop_database(self) -> Result<(), PortError> {
        self.pool.close().await;
        drop_database(&self.url).await
    }

    /// Empties the engine's tables (events and tasks) between phases.
    pub async fn truncate_engine_tables(&self) -> Result<(), PortError> {
        sqlx::query("TRUNCATE tasks, domain_events CASCADE")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Events awaiting dispatch plus tasks awaiting completion (0: the daemon is idle).
    pub async fn waiting_items(&self) -> Result<i64, PortError> {
        sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM domain_events WHERE status IN ('pending', 'retrying'))
                  + (SELECT count(*) FROM tasks WHERE status IN ('pending', 'running', 'retrying'))",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    /// Seconds from the first task's start to the last task's finish (0 without tasks).
    pub async fn busy_seconds(&self) -> Result<f64, PortError> {
        sqlx::query_scalar(
            "SELECT COALESCE(EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8, 0)
             FROM tasks",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    /// The tasks planned from events: when the last one finished, and how many there are.
    pub async fn fanned_out_tasks(&self) -> Result<FannedOutTasks, PortError> {
        let (last_finished, count) = sqlx::query_as(
            "SELECT max(finished_at), count(*) FROM tasks WHERE event_id IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(FannedOutTasks {
            last_finished,
            count,
        })
    }

    /// For each event that produced tasks, when the first of them started.
    pub async fn first_task_start_per_event(
        &self,
    ) -> Result<Vec<(Uuid, DateTime<Utc>)>, PortError> {
        sqlx::query_as(
            "SELECT event_id, min(started_at) FROM tasks WHERE event_id IS NOT NULL
             GROUP BY event_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    /// When each started task with an idempotency key started, by key.
    pub async fn task_starts_by_key(&self) -> Result<Vec<(String, DateTime<Utc>)>, PortError> {
        sqlx::query_as(
            "SELECT idempotency_key, started_at FROM tasks
             WHERE idempotency_key IS NOT NULL AND started_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    /// Every enrollment of the demo data, ordered by teacher, class and student (empty until
    /// the demo-seed task has run).
    pub async fn demo_enrollments(&self) -> Result<Vec<DemoEnrollment>, PortError> {
        let rows: Vec<(String, Uuid, Uuid)> = sqlx::query_as(
            "SELECT u.email, c.id, e.student_id FROM classes c JOIN users u ON u.id = c.teacher_id
             JOIN enrollments e ON e.class_id = c.id ORDER BY u.email, c.id, e.student_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(teacher_email, class_id, student_id)| DemoEnrollment {
                teacher_email,
                class_id,
                student_id,
            })
            .collect())
    }
}
