//! What `campus bench` reads from and does to its scratch database: creating and dropping it,
//! loading history, emptying the engine's tables between phases, and the timestamps its
//! figures come from. A run's own rows are the recent ones (created in the last day); the
//! history is older, so every figure reads only rows of the last day.
//! Behind the `bench` feature. Writes go through the ports (`PgStore`), except the outbox
//! transaction of the end-to-end phases (an entity row and its event, `commit_outbox`).

use super::db_err;
use super::outbox::{insert_rows, EventRow};
use super::scratch::{drop_database, fresh_database_on};
use campus_ports::PortError;
use chrono::{DateTime, Utc};
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

/// A scratch database made for one bench run (`campus_bench_<UUIDv7>`), migrated.
pub struct BenchDatabase {
    url: String,
    pool: PgPool,
    /// History was loaded: phases empty the tables of their own rows only.
    history: bool,
}

/// A run's own rows: created in the last day (history is two to three days old).
const RECENT: &str = "now() - interval '1 day'";

/// One chunk of history: `$1` events, each with two tasks that succeeded, the `$2`-th to
/// the `$2 + $1`-th of `$3` spread evenly over the day that began three days ago (ids are
/// UUIDv7 of their instants and rows are stored in that order, as the engine makes them).
const HISTORY_CHUNK: &str = "
WITH ev AS (
    SELECT g, t, (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                  || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid AS id
    FROM (SELECT g, now() - interval '3 days' + (($2 + g) * interval '1 day') / $3 AS t
          FROM generate_series(1, $1) g) s
), events AS (
    INSERT INTO domain_events (id, event_type, aggregate_type, aggregate_id, payload, correlation_id, status,
                               attempts, occurred_at, dispatched_at, next_attempt_at)
    SELECT id, 'ExamGradeNoteAdded', 'Enrollment', gen_random_uuid(), jsonb_build_object('note', g % 10),
           'history-' || g, 'dispatched', 1, t, t, t FROM ev
)
INSERT INTO tasks (id, lineage_id, task_type, handler, payload, event_id, correlation_id, status, attempt,
                   max_attempts, run_at, created_at, started_at, finished_at, duration_ms)
SELECT tid, tid, 'notify_student_of_grade_note', h, jsonb_build_object('note', g % 10), id, 'history-' || g,
       'succeeded', 1, 5, t, t, t, t, 3.5
FROM (SELECT ev.*, (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
                    || substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid AS tid, h
      FROM ev, (VALUES ('first'), ('second')) AS hs(h)) x";

/// The entities of the bench's outbox transactions: a row like an application's aggregate.
const ENTITIES: &str = "CREATE TABLE bench_entities (
    id uuid PRIMARY KEY, version integer NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())";

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
        sqlx::query(ENTITIES).execute(&pool).await.map_err(db_err)?;
        Ok(BenchDatabase {
            url,
            pool,
            history: false,
        })
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

    /// Loads `tasks` finished tasks (two per event) as history, `progress` called with the
    /// tasks loaded so far after each chunk of 200 000; then vacuums and analyzes, as a
    /// long-lived table would be.
    pub async fn load_history(
        &mut self,
        tasks: u64,
        mut progress: impl FnMut(u64),
    ) -> Result<(), PortError> {
        self.history = true;
        // On a connection of its own that does not log each chunk as a slow statement.
        let options = super::connect_options(&self.url)?.disable_statement_logging();
        let mut conn = sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(db_err)?;
        let total = i64::try_from(tasks / 2).unwrap_or(i64::MAX).max(1);
        let mut loaded = 0;
        while loaded < tasks {
            let events = ((tasks - loaded) / 2).clamp(1, 100_000);
            sqlx::query(HISTORY_CHUNK)
                .bind(i64::try_from(events).unwrap_or(i64::MAX))
                .bind(i64::try_from(loaded / 2).unwrap_or(i64::MAX))
                .bind(total)
                .execute(&mut conn)
                .await
                .map_err(db_err)?;
            loaded += events * 2;
            progress(loaded);
        }
        for sql in ["VACUUM ANALYZE domain_events", "VACUUM ANALYZE tasks"] {
            sqlx::query(sql).execute(&mut conn).await.map_err(db_err)?;
        }
        conn.close().await.map_err(db_err)
    }

    /// Empties the engine's tables (events and tasks) of the run's rows between phases; the
    /// history stays.
    pub async fn truncate_engine_tables(&self) -> Result<(), PortError> {
        let statements = if self.history {
            vec![
                format!("DELETE FROM tasks WHERE created_at > {RECENT}"),
                format!("DELETE FROM domain_events WHERE occurred_at > {RECENT}"),
                "TRUNCATE bench_entities".to_string(),
            ]
        } else {
            vec![
                "TRUNCATE tasks, domain_events, bench_entities, task_texts, event_texts, \
                     task_texts_pending, event_texts_pending CASCADE"
                    .to_string(),
            ]
        };
        for sql in &statements {
            sqlx::query(sql).execute(&self.pool).await.map_err(db_err)?;
        }
        Ok(())
    }

    /// Events awaiting dispatch plus tasks awaiting completion (0: the daemon is idle).
    pub async fn waiting_items(&self) -> Result<i64, PortError> {
        sqlx::query_scalar(
            // Each count on a partial index (`domain_events_due`, `tasks_claim`,
            // `tasks_running_lease`): never a scan of the history, but a read of the backlog.
            "SELECT (SELECT count(*) FROM domain_events WHERE status IN ('pending', 'retrying'))
                  + (SELECT count(*) FROM tasks WHERE status IN ('pending', 'retrying'))
                  + (SELECT count(*) FROM tasks WHERE status = 'running')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    /// Whether `institution` has tasks not yet claimed (the head of its range of
    /// `tasks_claim`: no count of a backlog).
    pub async fn has_waiting_tasks(&self, institution: uuid::Uuid) -> Result<bool, PortError> {
        sqlx::query_scalar(concat!(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE ",
            group!(),
            " = $1 AND status IN ('pending', 'retrying'))"
        ))
        .bind(institution)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    /// Seconds from the first start to the last finish of the tasks of `institution`.
    pub async fn busy_seconds_of(&self, institution: uuid::Uuid) -> Result<f64, PortError> {
        sqlx::query_scalar(
            "SELECT COALESCE(EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8, 0)
             FROM tasks WHERE institution_id = $1",
        )
        .bind(institution)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    /// Seconds from the first task's start to the last task's finish (0 without tasks).
    pub async fn busy_seconds(&self) -> Result<f64, PortError> {
        sqlx::query_scalar(&format!(
            "SELECT COALESCE(EXTRACT(EPOCH FROM max(finished_at) - min(started_at))::float8, 0)
                 FROM tasks WHERE created_at > {RECENT}"
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    /// The tasks planned from events: when the last one finished, and how many there are.
    pub async fn fanned_out_tasks(&self) -> Result<FannedOutTasks, PortError> {
        let (last_finished, count) = sqlx::query_as(&format!(
            "SELECT max(finished_at), count(*) FROM tasks
                 WHERE event_id IS NOT NULL AND created_at > {RECENT}"
        ))
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
        sqlx::query_as(&format!(
            "SELECT event_id, min(started_at) FROM tasks
                 WHERE event_id IS NOT NULL AND created_at > {RECENT} GROUP BY event_id"
        ))
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

impl super::PgStore {
    /// The outbox transaction an API request makes: saves a new entity and `event`, recorded
    /// by it (its aggregate id is the entity's), in one transaction, then wakes the
    /// dispatcher as `append` does. Returns the event's id and when the commit returned.
    pub async fn commit_outbox(
        &self,
        event: &campus_ports::NewEvent,
    ) -> Result<(Uuid, DateTime<Utc>), PortError> {
        let entity = Uuid::now_v7();
        let row = EventRow {
            aggregate_id: entity,
            ..EventRow::from_new(event)?
        };
        let id = row.id;
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("INSERT INTO bench_entities (id, version) VALUES ($1, 1)")
            .bind(entity)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_rows(&mut tx, vec![row]).await?;
        tx.commit().await.map_err(db_err)?;
        self.notifier.poke(super::Channel::Events);
        Ok((id, Utc::now()))
    }
}
