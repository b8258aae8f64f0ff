//! The engine's read side for operators: filtered keyset pages, details with lineage, summary.

use super::{db_err, PgStore};
use async_trait::async_trait;
use campus_core::engine::{EventStatus, TaskStatus};
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

/// A status read from the database (its CHECK constraint admits only known ones).
fn status<S: ListStatus>(raw: &str) -> Result<S, PortError> {
    parse_status(Some(raw))
        .ok()
        .flatten()
        .ok_or_else(|| PortError::Unavailable(format!("database: unknown status {raw:?}")))
}

fn event_view(r: &PgRow) -> Result<EventView, PortError> {
    Ok(EventView {
        id: EventId(id(r, "id")),
        event_type: r.get("event_type"),
        aggregate_type: r.get("aggregate_type"),
        aggregate_id: id(r, "aggregate_id"),
        institution_id: opt_id(r, "institution_id").map(InstitutionId),
        status: status(r.get("status"))?,
        attempts: u32::try_from(r.get::<i32, _>("attempts")).unwrap_or(0),
        correlation_id: r.get("correlation_id"),
        occurred_at: ts(r.get("occurred_at")),
        dispatched_at: r.get::<Option<DateTime<Utc>>, _>("dispatched_at").map(ts),
        reprocessed_from: opt_id(r, "reprocessed_from").map(EventId),
        errors: errors(r.get("errors")),
        payload: r.get("payload"),
    })
}

fn task_view(r: &PgRow) -> Result<TaskView, PortError> {
    Ok(TaskView {
        id: TaskId(id(r, "id")),
        task_type: r.get("task_type"),
        handler: r.get("handler"),
        institution_id: opt_id(r, "institution_id").map(InstitutionId),
        event_id: opt_id(r, "event_id").map(EventId),
        status: status(r.get("status"))?,
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
    })
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

/// Ids are UUIDv7, minted when the row is written: their first 48 bits are its time in
/// milliseconds. A time filter therefore also bounds the id, which lets PostgreSQL walk the
/// primary key instead of the whole table. The margin absorbs clock skew between the hosts
/// that mint ids and the database that stamps times; the exact time condition still applies.
const ID_TIME_MARGIN_MS: i64 = 10 * 60 * 1000;

/// The smallest UUIDv7 of millisecond `ms` (clamped to the 48-bit range).
fn id_floor(ms: i64) -> uuid::Uuid {
    let ms = ms.clamp(0, (1 << 48) - 1) as u128;
    uuid::Uuid::from_u128(ms << 80)
}

/// A LIKE pattern matching `text` anywhere, with LIKE's wildcards escaped.
pub(crate) fn contains_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// The conditions of the filters both lists share: `institution` (after scoping), `f`'s
/// others with times on `time_column`, and `before` (the keyset).
fn push_common(
    qb: &mut QueryBuilder<'_, Postgres>,
    institution: Option<InstitutionId>,
    f: &ListFilter,
    time_column: &str,
    before: Option<u128>,
) {
    if let Some(i) = institution {
        qb.push(" AND institution_id = ")
            .push_bind(uuid::Uuid::from_u128(i.0));
    }
    if let Some(from) = f.from {
        qb.push(format!(" AND {time_column} >= "))
            .push_bind(crate::dto::time(from))
            .push(" AND id >= ")
            .push_bind(id_floor(from.0 - ID_TIME_MARGIN_MS));
    }
    if let Some(to) = f.to {
        qb.push(format!(" AND {time_column} < "))
            .push_bind(crate::dto::time(to))
            .push(" AND id < ")
            .push_bind(id_floor(to.0.saturating_add(ID_TIME_MARGIN_MS)));
    }
    if let Some(corr) = &f.correlation_id {
        qb.push(" AND correlation_id = ").push_bind(corr.clone());
    }
    match f.has_errors {
        Some(true) => {
            qb.push(" AND errors <> '[]'::jsonb");
        }
        Some(false) => {
            qb.push(" AND errors = '[]'::jsonb");
        }
        None => {}
    }
    if let Some(text) = f.text.as_deref().filter(|t| !t.is_empty()) {
        qb.push(" AND payload::text ILIKE ")
            .push_bind(contains_pattern(text));
    }
    if let Some(before) = before {
        qb.push(" AND id < ")
            .push_bind(uuid::Uuid::from_u128(before));
    }
}

/// Above this many rows (the planner's estimate) the bulk status of a table is estimated
/// instead of counted: counting it would read the whole table on every load.
const EXACT_COUNT_LIMIT: f64 = 100_000.0;

/// What one table's summary counts differ in.
struct CountedTable<S> {
    table: &'static str,
    type_column: &'static str,
    time_column: &'static str,
    /// The status most rows end in; counted exactly only while the table is small.
    bulk_status: S,
    /// The other statuses, each group served by a partial index.
    indexed_groups: &'static [&'static str],
}

const EVENT_COUNTS: CountedTable<EventStatus> = CountedTable {
    table: "domain_events",
    type_column: "event_type",
    time_column: "occurred_at",
    bulk_status: EventStatus::Dispatched,
    indexed_groups: &["('pending', 'retrying')", "('dead')"],
};

const TASK_COUNTS: CountedTable<TaskStatus> = CountedTable {
    table: "tasks",
    type_column: "task_type",
    time_column: "created_at",
    bulk_status: TaskStatus::Succeeded,
    indexed_groups: &[
        "('pending', 'retrying')",
        "('running')",
        "('dead', 'cancelled')",
    ],
};

/// `AND` conditions of the summary filters, bound by [`CountFilter::bind`].
const SUMMARY_FILTER: &str =
    "($1::uuid IS NULL OR institution_id = $1) AND ($2::text IS NULL OR {type} = $2)
    AND ($3::timestamptz IS NULL OR {time} >= $3) AND ($4::timestamptz IS NULL OR {time} < $4)
    AND id >= $5 AND id < $6";

/// The summary's filters of one table, as bind values.
struct CountFilter<'a> {
    institution: Option<uuid::Uuid>,
    kind: Option<&'a str>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

impl CountFilter<'_> {
    /// [`SUMMARY_FILTER`] for table `t`.
    fn sql<S>(t: &CountedTable<S>) -> String {
        SUMMARY_FILTER
            .replace("{type}", t.type_column)
            .replace("{time}", t.time_column)
    }

    /// Binds `$1`–`$6`; a time range also bounds the id (see [`id_floor`]).
    fn bind<'q>(&self, q: PgQuery<'q>) -> PgQuery<'q> {
        q.bind(self.institution)
            .bind(self.kind.map(str::to_string))
            .bind(self.from.map(crate::dto::time))
            .bind(self.to.map(crate::dto::time))
            .bind(
                self.from
                    .map_or(uuid::Uuid::nil(), |f| id_floor(f.0 - ID_TIME_MARGIN_MS)),
            )
            .bind(self.to.map_or(uuid::Uuid::max(), |t| {
                id_floor(t.0.saturating_add(ID_TIME_MARGIN_MS))
            }))
    }
}

impl PgStore {
    /// `(type, status, count)` of every status but the bulk one, exact; each status group is
    /// read through its partial index.
    async fn counts_by_type<S: ListStatus>(
        &self,
        t: &CountedTable<S>,
        f: &CountFilter<'_>,
    ) -> Result<Vec<(String, S, i64)>, PortError> {
        let filter = CountFilter::sql(t);
        let parts: Vec<String> = t
            .indexed_groups
            .iter()
            .map(|group| {
                format!(
                    "SELECT {} AS kind, status FROM {} WHERE status IN {group} AND {filter}",
                    t.type_column, t.table
                )
            })
            .collect();
        let sql = format!(
            "SELECT kind, status, count(*) AS n FROM ({}) s GROUP BY kind, status ORDER BY kind, status",
            parts.join(" UNION ALL ")
        );
        let rows = f
            .bind(sqlx::query(&sql))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| Ok((r.get("kind"), status(r.get("status"))?, r.get("n"))))
            .collect()
    }

    /// The bulk status's count: exact while the table is small, else the planner's estimate
    /// for the same filters (from the statistics ANALYZE keeps).
    async fn bulk_count<S: ListStatus>(
        &self,
        t: &CountedTable<S>,
        f: &CountFilter<'_>,
    ) -> Result<StatusCount<S>, PortError> {
        let rows: f64 = sqlx::query_scalar(
            "SELECT GREATEST(reltuples, 0)::float8 FROM pg_class WHERE oid = $1::regclass",
        )
        .bind(t.table)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        let select = format!(
            "SELECT 1 FROM {} WHERE status = '{}' AND {}",
            t.table,
            t.bulk_status.as_str(),
            CountFilter::sql(t)
        );
        let (count, approximate) = if rows < EXACT_COUNT_LIMIT {
            let sql = format!("SELECT count(*) FROM ({select}) s");
            let row = f
                .bind(sqlx::query(&sql))
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
            (row.get::<i64, _>(0), false)
        } else {
            // An unnamed statement is planned with the bound values, like a literal query.
            let sql = format!("EXPLAIN (FORMAT JSON) {select}");
            let row = f
                .bind(sqlx::query(&sql))
                .persistent(false)
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
            let plan: serde_json::Value = row.get(0);
            let estimate = plan[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0);
            (estimate.round() as i64, true)
        };
        Ok(StatusCount {
            status: t.bulk_status,
            count,
            approximate,
        })
    }

    /// Counts by status (the bulk one estimated when large) and by type.
    async fn status_counts<S: ListStatus>(
        &self,
        t: &CountedTable<S>,
        f: &CountFilter<'_>,
    ) -> Result<(Vec<StatusCount<S>>, Vec<(String, S, i64)>), PortError> {
        let by_type = self.counts_by_type(t, f).await?;
        let mut by_status = vec![self.bulk_count(t, f).await?];
        for (_, status, n) in &by_type {
            match by_status.iter_mut().find(|c| c.status == *status) {
                Some(c) => c.count += n,
                None => by_status.push(StatusCount {
                    status: *status,
                    count: *n,
                    approximate: false,
                }),
            }
        }
        by_status.sort_by_key(|c| c.status.as_str());
        Ok((by_status, by_type))
    }
}

#[async_trait]
impl EngineLog for PgStore {
    async fn list_events(
        &self,
        q: &EventQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, PortError> {
        let Ok(institution) = scoped(q.filter.institution_id, scope) else {
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
            institution,
            &q.filter,
            "occurred_at",
            q.before.map(|b| b.0),
        );
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, MAX_PAGE_LIMIT)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(event_view).collect()
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
        let event = event_view(&row)?;
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
            tasks: tasks.iter().map(task_view).collect::<Result<_, _>>()?,
            copies: copies.into_iter().map(|c| EventId(c.as_u128())).collect(),
        })
    }

    async fn list_tasks(
        &self,
        q: &TaskQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TaskView>, PortError> {
        let Ok(institution) = scoped(q.filter.institution_id, scope) else {
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
            institution,
            &q.filter,
            "created_at",
            q.before.map(|b| b.0),
        );
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.clamp(1, MAX_PAGE_LIMIT)));
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(task_view).collect()
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
        let task = task_view(&row)?;
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

    async fn summary(
        &self,
        q: &SummaryQuery,
        scope: Option<InstitutionId>,
    ) -> Result<EngineSummary, PortError> {
        let Ok(institution) = scoped(q.institution_id, scope) else {
            return Ok(EngineSummary::default());
        };
        let inst = institution.map(|s| uuid::Uuid::from_u128(s.0));
        let event_type = q.event_type.as_deref();
        let task_type = q.task_type.as_deref();
        let filter = |kind| CountFilter {
            institution: inst,
            kind,
            from: q.from,
            to: q.to,
        };
        let (events_by_status, _) = self
            .status_counts(&EVENT_COUNTS, &filter(event_type))
            .await?;
        let (tasks_by_status, tasks_by_type) =
            self.status_counts(&TASK_COUNTS, &filter(task_type)).await?;
        // The last hour through the primary key: ids are minted at write time (see id_floor).
        let hour_ago = id_floor(Utc::now().timestamp_millis() - 3_600_000 - ID_TIME_MARGIN_MS);
        let per_minute: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
            "WITH minutes AS (
                SELECT generate_series(date_trunc('minute', now()) - interval '59 minutes', date_trunc('minute', now()), interval '1 minute') AS m
             ),
             ev AS (
                SELECT date_trunc('minute', occurred_at) AS m, count(*) AS n FROM domain_events
                WHERE id >= $4 AND occurred_at >= date_trunc('minute', now()) - interval '59 minutes'
                  AND ($1::uuid IS NULL OR institution_id = $1) AND ($2::text IS NULL OR event_type = $2)
                GROUP BY 1
             ),
             tk AS (
                SELECT date_trunc('minute', created_at) AS m,
                       count(*) FILTER (WHERE status = 'succeeded') AS ok,
                       count(*) FILTER (WHERE status IN ('retrying', 'dead')) AS failed
                FROM tasks
                WHERE id >= $4 AND created_at >= date_trunc('minute', now()) - interval '59 minutes'
                  AND ($1::uuid IS NULL OR institution_id = $1) AND ($3::text IS NULL OR task_type = $3)
                GROUP BY 1
             )
             SELECT minutes.m, COALESCE(ev.n, 0), COALESCE(tk.ok, 0), COALESCE(tk.failed, 0)
             FROM minutes LEFT JOIN ev USING (m) LEFT JOIN tk USING (m) ORDER BY minutes.m",
        )
        .bind(inst)
        .bind(event_type)
        .bind(task_type)
        .bind(hour_ago)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let (ok, failed) = per_minute
            .iter()
            .fold((0, 0), |(o, f), (_, _, ok, failed)| (o + ok, f + failed));
        // Both through the partial "due" indexes: only the backlog is read.
        let (oldest_event, oldest_task): (Option<f64>, Option<f64>) = sqlx::query_as(
            "SELECT (SELECT EXTRACT(EPOCH FROM now() - min(occurred_at))::float8 FROM domain_events
                     WHERE status IN ('pending', 'retrying') AND ($1::uuid IS NULL OR institution_id = $1)
                       AND ($2::text IS NULL OR event_type = $2)),
                    (SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM tasks
                     WHERE status IN ('pending', 'retrying') AND ($1::uuid IS NULL OR institution_id = $1)
                       AND ($3::text IS NULL OR task_type = $3))",
        )
        .bind(inst)
        .bind(event_type)
        .bind(task_type)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(EngineSummary {
            events_by_status,
            tasks_by_status,
            tasks_by_type,
            per_minute: per_minute
                .into_iter()
                .map(|(m, events, ok, failed)| MinuteCounts {
                    minute: ts(m),
                    events,
                    tasks_succeeded: ok,
                    tasks_failed: failed,
                })
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

    async fn institutions(
        &self,
        scope: Option<InstitutionId>,
        limit: u32,
    ) -> Result<Vec<(InstitutionId, String)>, PortError> {
        let rows: Vec<(uuid::Uuid, String)> = sqlx::query_as(
            "SELECT id, name FROM institutions WHERE ($1::uuid IS NULL OR id = $1) ORDER BY name, id LIMIT $2",
        )
        .bind(scope.map(|s| uuid::Uuid::from_u128(s.0)))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| (InstitutionId(id.as_u128()), name))
            .collect())
    }
}
