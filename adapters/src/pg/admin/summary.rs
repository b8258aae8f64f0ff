//! The overview's counts: by status and type without counting a large table, the last hour
//! per minute, the age of the oldest waiting item, and the due backlog.

use super::filters::{id_floor, ID_TIME_MARGIN_MS};
use super::rows::{status, ts};
use crate::pg::{db_err, PgStore};
use campus_core::engine::{EventStatus, Priority, TaskStatus};
use campus_core::ids::InstitutionId;
use campus_core::Timestamp;
use campus_ports::*;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, Row};

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

/// The summary's type filters, bound as `$2` (events) and `$3` (tasks) after the
/// institution (`$1`).
struct Kinds<'a> {
    institution: Option<uuid::Uuid>,
    event_type: Option<&'a str>,
    task_type: Option<&'a str>,
}

impl PgStore {
    /// The summary of what `q` selects within `institution` (already scoped).
    pub(super) async fn engine_summary(
        &self,
        q: &SummaryQuery,
        institution: Option<InstitutionId>,
    ) -> Result<EngineSummary, PortError> {
        let kinds = Kinds {
            institution: institution.map(|s| uuid::Uuid::from_u128(s.0)),
            event_type: q.event_type.as_deref(),
            task_type: q.task_type.as_deref(),
        };
        let filter = |kind| CountFilter {
            institution: kinds.institution,
            kind,
            from: q.from,
            to: q.to,
        };
        let (events_by_status, _) = self
            .status_counts(&EVENT_COUNTS, &filter(kinds.event_type))
            .await?;
        let (tasks_by_status, tasks_by_type) = self
            .status_counts(&TASK_COUNTS, &filter(kinds.task_type))
            .await?;
        let per_minute = self.per_minute(&kinds).await?;
        let (ok, failed) = per_minute.iter().fold((0, 0), |(o, f), m| {
            (o + m.tasks_succeeded, f + m.tasks_failed)
        });
        let (oldest_event, oldest_task) = self.oldest_pending(&kinds).await?;
        let due_backlog = self.due_backlog(&kinds).await?;
        Ok(EngineSummary {
            events_by_status,
            tasks_by_status,
            tasks_by_type,
            per_minute,
            failure_rate: if ok + failed > 0 {
                failed as f64 / (ok + failed) as f64
            } else {
                0.0
            },
            oldest_pending_event_age_s: oldest_event,
            oldest_pending_task_age_s: oldest_task,
            due_backlog,
        })
    }

    /// Events recorded and tasks created in each minute of the last hour, oldest first.
    async fn per_minute(&self, k: &Kinds<'_>) -> Result<Vec<MinuteCounts>, PortError> {
        // The last hour through the primary key: ids are minted at write time (see id_floor).
        let hour_ago = id_floor(Utc::now().timestamp_millis() - 3_600_000 - ID_TIME_MARGIN_MS);
        let rows: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
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
        .bind(k.institution)
        .bind(k.event_type)
        .bind(k.task_type)
        .bind(hour_ago)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(|(m, events, ok, failed)| MinuteCounts {
                minute: ts(m),
                events,
                tasks_succeeded: ok,
                tasks_failed: failed,
            })
            .collect())
    }

    /// Seconds since the oldest waiting event and task were recorded, when any waits.
    async fn oldest_pending(&self, k: &Kinds<'_>) -> Result<(Option<f64>, Option<f64>), PortError> {
        // Both through the partial "due" indexes: only the backlog is read.
        sqlx::query_as(
            "SELECT (SELECT EXTRACT(EPOCH FROM now() - min(occurred_at))::float8 FROM domain_events
                     WHERE status IN ('pending', 'retrying') AND ($1::uuid IS NULL OR institution_id = $1)
                       AND ($2::text IS NULL OR event_type = $2)),
                    (SELECT EXTRACT(EPOCH FROM now() - min(created_at))::float8 FROM tasks
                     WHERE status IN ('pending', 'retrying') AND ($1::uuid IS NULL OR institution_id = $1)
                       AND ($3::text IS NULL OR task_type = $3))",
        )
        .bind(k.institution)
        .bind(k.event_type)
        .bind(k.task_type)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }
}

/// The due backlog (`EngineSummary::due_backlog`) of the institutions `{institution}` selects
/// (`$1`) and of task type `$2` (`NULL`: any): a row per priority for each of the top `$3`
/// institutions (`place` 1, 2, …), then a row per priority of every due task (`place`
/// `NULL`). The due tasks are read once, through `tasks_claim`, the partial index of the
/// waiting tasks (for one institution, only its range: `{institution}` is then the index's
/// expression).
const DUE_BACKLOG: &str = concat!(
    "WITH due AS (
        SELECT ",
    group!(),
    " AS k,
               institution_id, priority, count(*) AS n
        FROM tasks
        WHERE status IN ('pending', 'retrying') AND run_at <= now() AND {institution}
          AND ($2::text IS NULL OR task_type = $2)
        GROUP BY institution_id, priority
     ),
     top AS (
        SELECT k, institution_id, row_number() OVER (ORDER BY sum(n) DESC, k) AS place
        FROM due GROUP BY k, institution_id ORDER BY place LIMIT $3
     )
     SELECT top.place, top.institution_id, i.name, d.priority, d.n
     FROM top JOIN due d ON d.k = top.k LEFT JOIN institutions i ON i.id = top.institution_id
     UNION ALL
     SELECT NULL, NULL, NULL, priority, sum(n)::bigint FROM due GROUP BY priority
     ORDER BY 1 NULLS LAST, 4"
);

/// A row of [`DUE_BACKLOG`]: place, institution, its name, priority level, count.
type BacklogRow = (Option<i64>, Option<uuid::Uuid>, Option<String>, i16, i64);

/// The backlog from the rows of [`DUE_BACKLOG`], in their order.
fn due_backlog(rows: Vec<BacklogRow>) -> Result<DueBacklog, PortError> {
    let mut backlog = DueBacklog::default();
    let mut last_place = None;
    for (place, institution, name, level, n) in rows {
        let priority = Priority::from_level(level)
            .ok_or_else(|| PortError::Unavailable(format!("database: unknown priority {level}")))?;
        if place.is_none() {
            backlog.total.add(priority, n);
            continue;
        }
        if place != last_place {
            last_place = place;
            backlog.institutions.push(InstitutionBacklog {
                institution_id: institution.map(|i| InstitutionId(i.as_u128())),
                name,
                due: PriorityCounts::default(),
            });
        }
        if let Some(listed) = backlog.institutions.last_mut() {
            listed.due.add(priority, n);
        }
    }
    Ok(backlog)
}

impl PgStore {
    /// See [`DUE_BACKLOG`]. Read in a transaction of its own that prices sequential scans out,
    /// as the engine's pool does (`connect_engine`): with statistics taken while the backlog
    /// was large, the planner would read the whole table on every load, however few tasks
    /// wait by then.
    async fn due_backlog(&self, k: &Kinds<'_>) -> Result<DueBacklog, PortError> {
        let institution = match k.institution {
            Some(_) => concat!(group!(), " = $1"),
            None => "$1::uuid IS NULL",
        };
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query(
            "SELECT set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        let rows = sqlx::query_as(&DUE_BACKLOG.replace("{institution}", institution))
            .bind(k.institution)
            .bind(k.task_type)
            .bind(i64::try_from(BACKLOG_INSTITUTIONS).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        due_backlog(rows)
    }
}

impl PgStore {
    /// See `EngineLog::type_stats`: the period's tasks are found by their time-ordered ids
    /// (primary key), never by scanning the table.
    pub(super) async fn stats_by_type(
        &self,
        since: Timestamp,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TypeStats>, PortError> {
        let rows = sqlx::query(
            "SELECT task_type,
                    count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                    count(*) FILTER (WHERE status IN ('dead', 'retrying')) AS failed,
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms)
                        FILTER (WHERE status IN ('succeeded', 'dead')) AS p50,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
                        FILTER (WHERE status IN ('succeeded', 'dead')) AS p95
             FROM tasks
             WHERE id >= $1 AND created_at >= $2 AND ($3::uuid IS NULL OR institution_id = $3)
             GROUP BY task_type ORDER BY task_type",
        )
        .bind(id_floor(since.0 - ID_TIME_MARGIN_MS))
        .bind(DateTime::<Utc>::from_timestamp_millis(since.0).unwrap_or_default())
        .bind(scope.map(|s| uuid::Uuid::from_u128(s.0)))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| TypeStats {
                task_type: r.get("task_type"),
                succeeded: r.get("succeeded"),
                failed: r.get("failed"),
                p50_ms: r.get("p50"),
                p95_ms: r.get("p95"),
            })
            .collect())
    }
}
