//! The engine's read side for operators: filtered keyset pages, details with lineage, summary.

use super::{db_err, PgStore};
use async_trait::async_trait;
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::*;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

const EVENT_COLUMNS: &str = "id, event_type, aggregate_type, aggregate_id, institution_id, status, attempts, correlation_id,
    occurred_at, dispatched_at, reprocessed_from, errors::text AS errors, payload::text AS payload";
const TASK_COLUMNS: &str = "id, task_type, handler, institution_id, event_id, status, attempt, max_attempts, correlation_id,
    reprocessed_from, lineage_id, run_at, created_at, started_at, finished_at, duration_ms, errors::text AS errors,
    payload::text AS payload";

fn ts(dt: DateTime<Utc>) -> Timestamp {
    Timestamp(dt.timestamp_millis())
}

fn id(row: &PgRow, col: &str) -> u128 {
    row.get::<uuid::Uuid, _>(col).as_u128()
}

fn opt_id(row: &PgRow, col: &str) -> Option<u128> {
    row.get::<Option<uuid::Uuid>, _>(col).map(|u| u.as_u128())
}

fn errors(raw: &str) -> Vec<AttemptError> {
    let parsed: serde_json::Value = serde_json::from_str(raw).unwrap_or_default();
    parsed
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| AttemptError {
                    at: e["at"].as_str().unwrap_or_default().to_string(),
                    attempt: e["attempt"]
                        .as_u64()
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or(0),
                    message: e["message"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn event_view(r: &PgRow) -> EventView {
    EventView {
        id: EventId(id(r, "id")),
        event_type: r.get("event_type"),
        aggregate_type: r.get("aggregate_type"),
        aggregate_id: id(r, "aggregate_id"),
        institution_id: opt_id(r, "institution_id").map(InstitutionId),
        status: r.get("status"),
        attempts: u32::try_from(r.get::<i32, _>("attempts")).unwrap_or(0),
        correlation_id: r.get("correlation_id"),
        occurred_at: ts(r.get("occurred_at")),
        dispatched_at: r.get::<Option<DateTime<Utc>>, _>("dispatched_at").map(ts),
        reprocessed_from: opt_id(r, "reprocessed_from").map(EventId),
        errors: errors(r.get("errors")),
        payload: r.get("payload"),
    }
}

fn task_view(r: &PgRow) -> TaskView {
    TaskView {
        id: TaskId(id(r, "id")),
        task_type: r.get("task_type"),
        handler: r.get("handler"),
        institution_id: opt_id(r, "institution_id").map(InstitutionId),
        event_id: opt_id(r, "event_id").map(EventId),
        status: r.get("status"),
        attempt: u32::try_from(r.get::<i32, _>("attempt")).unwrap_or(0),
        max_attempts: u32::try_from(r.get::<i32, _>("max_attempts")).unwrap_or(0),
        correlation_id: r.get("correlation_id"),
        reprocessed_from: opt_id(r, "reprocessed_from").map(TaskId),
        lineage_id: TaskId(id(r, "lineage_id")),
        run_at: ts(r.get("run_at")),
        created_at: ts(r.get("created_at")),
        started_at: r.get::<Option<DateTime<Utc>>, _>("started_at").map(ts),
        finished_at: r.get::<Option<DateTime<Utc>>, _>("finished_at").map(ts),
        duration_ms: r.get("duration_ms"),
        errors: errors(r.get("errors")),
        payload: r.get("payload"),
    }
}

/// The institution filter after scoping: `Err(())` when the caller asks for another
/// institution than their own (the answer is then empty / not found).
fn scoped(
    asked: Option<InstitutionId>,
    scope: Option<InstitutionId>,
) -> Result<Option<InstitutionId>, ()> {
    match (asked, scope) {
        (Some(a), Some(s)) if a != s => Err(()),
        (a, s) => Ok(s.or(a)),
    }
}

/// The common filters of both lists.
struct Common<'a> {
    institution: Option<InstitutionId>,
    time_column: &'static str,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    correlation_id: Option<&'a str>,
    has_errors: Option<bool>,
    text: Option<&'a str>,
    before: Option<u128>,
}

fn push_common(qb: &mut QueryBuilder<'_, Postgres>, c: Common<'_>) {
    if let Some(i) = c.institution {
        qb.push(" AND institution_id = ")
            .push_bind(uuid::Uuid::from_u128(i.0));
    }
    if let Some(from) = c.from {
        qb.push(format!(" AND {} >= ", c.time_column))
            .push_bind(crate::dto::time(from));
    }
    if let Some(to) = c.to {
        qb.push(format!(" AND {} < ", c.time_column))
            .push_bind(crate::dto::time(to));
    }
    if let Some(corr) = c.correlation_id {
        qb.push(" AND correlation_id = ")
            .push_bind(corr.to_string());
    }
    match c.has_errors {
        Some(true) => {
            qb.push(" AND errors <> '[]'::jsonb");
        }
        Some(false) => {
            qb.push(" AND errors = '[]'::jsonb");
        }
        None => {}
    }
    if let Some(text) = c.text.filter(|t| !t.is_empty()) {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        qb.push(" AND payload::text ILIKE ")
            .push_bind(format!("%{escaped}%"));
    }
    if let Some(before) = c.before {
        qb.push(" AND id < ")
            .push_bind(uuid::Uuid::from_u128(before));
    }
}

#[async_trait]
impl EngineLog for PgStore {
    async fn list_events(
        &self,
        q: &EventQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, PortError> {
        let Ok(institution) = scoped(q.institution_id, scope) else {
            return Ok(Vec::new());
        };
        let mut qb = QueryBuilder::new(format!(
            "SELECT {EVENT_COLUMNS} FROM domain_events WHERE true"
        ));
        if let Some(t) = &q.event_type {
            qb.push(" AND event_type = ").push_bind(t.clone());
        }
        if let Some(s) = q.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        push_common(
            &mut qb,
            Common {
                institution,
                time_column: "occurred_at",
                from: q.from,
                to: q.to,
                correlation_id: q.correlation_id.as_deref(),
                has_errors: q.has_errors,
                text: q.text.as_deref(),
                before: q.before.map(|b| b.0),
            },
        );
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, 200)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        Ok(rows.iter().map(event_view).collect())
    }

    async fn event(
        &self,
        event: EventId,
        scope: Option<InstitutionId>,
    ) -> Result<EventDetail, PortError> {
        let key = uuid::Uuid::from_u128(event.0);
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM domain_events WHERE id = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or(PortError::NotFound("event"))?;
        let event = event_view(&row);
        if scope.is_some() && event.institution_id != scope {
            return Err(PortError::NotFound("event"));
        }
        let tasks = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE event_id = $1 ORDER BY id"
        ))
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let copies: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM domain_events WHERE reprocessed_from = $1 ORDER BY id",
        )
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(EventDetail {
            event,
            tasks: tasks.iter().map(task_view).collect(),
            copies: copies.into_iter().map(|c| EventId(c.as_u128())).collect(),
        })
    }

    async fn list_tasks(
        &self,
        q: &TaskQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TaskView>, PortError> {
        let Ok(institution) = scoped(q.institution_id, scope) else {
            return Ok(Vec::new());
        };
        let mut qb = QueryBuilder::new(format!("SELECT {TASK_COLUMNS} FROM tasks WHERE true"));
        if let Some(t) = &q.task_type {
            qb.push(" AND task_type = ").push_bind(t.clone());
        }
        if let Some(s) = q.status {
            qb.push(" AND status = ").push_bind(s.as_str());
        }
        if let Some(e) = q.event_id {
            qb.push(" AND event_id = ")
                .push_bind(uuid::Uuid::from_u128(e.0));
        }
        push_common(
            &mut qb,
            Common {
                institution,
                time_column: "created_at",
                from: q.from,
                to: q.to,
                correlation_id: q.correlation_id.as_deref(),
                has_errors: q.has_errors,
                text: q.text.as_deref(),
                before: q.before.map(|b| b.0),
            },
        );
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, 200)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        Ok(rows.iter().map(task_view).collect())
    }

    async fn task(
        &self,
        task: TaskId,
        scope: Option<InstitutionId>,
    ) -> Result<TaskDetail, PortError> {
        let key = uuid::Uuid::from_u128(task.0);
        let row = sqlx::query(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?
            .ok_or(PortError::NotFound("task"))?;
        let task = task_view(&row);
        if scope.is_some() && task.institution_id != scope {
            return Err(PortError::NotFound("task"));
        }
        let copies: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM tasks WHERE reprocessed_from = $1 ORDER BY id")
                .bind(key)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        Ok(TaskDetail {
            task,
            copies: copies.into_iter().map(|c| TaskId(c.as_u128())).collect(),
        })
    }

    async fn summary(&self, scope: Option<InstitutionId>) -> Result<EngineSummary, PortError> {
        let inst = scope.map(|s| uuid::Uuid::from_u128(s.0));
        let by_status = |table: &str| {
            format!("SELECT status, count(*) FROM {table} WHERE ($1::uuid IS NULL OR institution_id = $1) GROUP BY status ORDER BY status")
        };
        let events_by_status: Vec<(String, i64)> = sqlx::query_as(&by_status("domain_events"))
            .bind(inst)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let tasks_by_status: Vec<(String, i64)> = sqlx::query_as(&by_status("tasks"))
            .bind(inst)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let tasks_by_type: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT task_type, status, count(*) FROM tasks WHERE ($1::uuid IS NULL OR institution_id = $1)
             GROUP BY task_type, status ORDER BY task_type, status",
        )
        .bind(inst)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let per_minute: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
            "WITH minutes AS (
                SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()), interval '1 minute') AS m
             ),
             ev AS (
                SELECT date_trunc('minute', occurred_at) AS m, count(*) AS n FROM domain_events
                WHERE occurred_at > now() - interval '1 hour' AND ($1::uuid IS NULL OR institution_id = $1) GROUP BY 1
             ),
             tk AS (
                SELECT date_trunc('minute', finished_at) AS m,
                       count(*) FILTER (WHERE status = 'succeeded') AS ok,
                       count(*) FILTER (WHERE status IN ('retrying', 'dead')) AS failed
                FROM tasks WHERE finished_at > now() - interval '1 hour' AND ($1::uuid IS NULL OR institution_id = $1) GROUP BY 1
             )
             SELECT minutes.m, COALESCE(ev.n, 0), COALESCE(tk.ok, 0), COALESCE(tk.failed, 0)
             FROM minutes LEFT JOIN ev USING (m) LEFT JOIN tk USING (m) ORDER BY minutes.m",
        )
        .bind(inst)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let (ok, failed) = per_minute
            .iter()
            .fold((0, 0), |(o, f), (_, _, ok, failed)| (o + ok, f + failed));
        let (oldest_event, oldest_task): (Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT (SELECT EXTRACT(EPOCH FROM now() - min(occurred_at))::float8 FROM domain_events
                     WHERE status IN ('pending', 'retrying') AND ($1::uuid IS NULL OR institution_id = $1)),
                    (SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM tasks
                     WHERE status IN ('pending', 'retrying') AND ($1::uuid IS NULL OR institution_id = $1))",
        )
        .bind(inst)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(EngineSummary {
            events_by_status,
            tasks_by_status,
            tasks_by_type,
            per_minute: per_minute
                .into_iter()
                .map(|(m, e, o, f)| (ts(m), e, o, f))
                .collect(),
            failure_rate: if ok + failed > 0 {
                failed as f64 / (ok + failed) as f64
            } else {
                0.0
            },
            oldest_pending_event_age_s: oldest_event,
            oldest_pending_task_age_s: oldest_task,
        })
    }
}
