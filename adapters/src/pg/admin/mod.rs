//! The engine's read side for operators: filtered keyset pages, details with lineage, summary.
//! `rows` reads rows into views, `filters` writes the lists' conditions, `summary` counts.

mod filters;
mod rows;
mod summary;

pub(crate) use filters::contains_pattern;

use super::search::{
    few_pending, indexable, indexed_matches, IndexedMatches, Searchable, EVENTS, TASKS,
};
use super::{db_err, PgStore};
use async_trait::async_trait;
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::*;
use filters::{narrows, push_common, scoped};
use rows::{event_view, task_view, EVENT_COLUMNS, TASK_COLUMNS};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder};

/// The columns a list of events reads and filters on.
const EVENT_FIELDS: &str =
    "id, event_type, aggregate_type, aggregate_id, institution_id, status, attempts, \
    correlation_id, reprocess_request_id, actor_id, occurred_at, dispatched_at, reprocessed_from, errors, \
    payload";
/// The same for tasks.
const TASK_FIELDS: &str = "id, task_type, handler, institution_id, event_id, status, attempt, max_attempts, \
    correlation_id, reprocess_request_id, reprocessed_from, lineage_id, run_at, created_at, started_at, finished_at, duration_ms, \
    errors, payload";

/// Where a list filtered by text finds its candidates (`pg/search.rs`), read before the list.
struct Hits {
    /// The newest indexed rows whose text matches.
    matches: IndexedMatches,
    /// Whether few live rows wait to be indexed (see `Searchable::not_indexed`).
    few_pending: bool,
}

/// How a list filtered by text reads its rows (see [`PgStore::list_rows`]).
enum Plan {
    /// The tables newest first, each row's payload checked.
    Walk,
    /// The rows the text index found, and the rows not indexed yet (see [`push_source`]).
    Hits(Hits),
    /// The newest [`WINDOW_ROWS`] rows that pass the other filters, and the text among them.
    Window,
}

/// The rows a [`Plan::Window`] reads: few enough to check them all in some 20 ms.
pub(in crate::pg) const WINDOW_ROWS: i64 = 10_000;

impl Plan {
    /// Opens the list's statement, reading `columns`.
    fn select(&self, columns: &str) -> QueryBuilder<'static, Postgres> {
        let select = format!("SELECT {columns} FROM ");
        QueryBuilder::new(match self {
            Plan::Window => format!("SELECT * FROM ({select}"),
            _ => select,
        })
    }

    /// The filter the rows are read with: a window's leaves the text to [`push_page`].
    fn filter(&self, f: &ListFilter) -> ListFilter {
        match self {
            Plan::Window => ListFilter {
                text: None,
                ..f.clone()
            },
            _ => f.clone(),
        }
    }

    /// The text a window checks itself (see [`push_page`]).
    fn window_text<'t>(&self, f: &'t ListFilter) -> Option<&'t str> {
        match self {
            Plan::Window => f.text.as_deref(),
            _ => None,
        }
    }

    fn into_hits(self) -> Option<Hits> {
        match self {
            Plan::Hits(hits) => Some(hits),
            _ => None,
        }
    }
}

/// Closes a list's statement: its newest `limit` rows, or, for a window checking
/// `window_text`, the newest [`WINDOW_ROWS`] and then the newest `limit` of them containing it.
fn push_page(qb: &mut QueryBuilder<'static, Postgres>, window_text: Option<&str>, limit: u32) {
    qb.push(" ORDER BY id DESC LIMIT ");
    if let Some(text) = window_text {
        qb.push_bind(WINDOW_ROWS)
            .push(") AS page WHERE payload ILIKE ")
            .push_bind(contains_pattern(text))
            .push(" ORDER BY id DESC LIMIT ");
    }
    qb.push_bind(i64::from(limit));
}

/// Runs a list's statement.
async fn fetch<'c>(
    mut qb: QueryBuilder<'static, Postgres>,
    db: impl sqlx::PgExecutor<'c>,
) -> Result<Vec<PgRow>, PortError> {
    qb.build().fetch_all(db).await.map_err(db_err)
}

/// One part of a list's source: a SELECT, its condition, and the ids it is limited to.
type Branch<'a> = (&'a str, Option<String>, Option<&'a [uuid::Uuid]>);

/// Pushes the rows a list reads (the live table, its archive, or both), under the live
/// table's name so that every condition reads the same. Both together are a `UNION ALL` that
/// PostgreSQL reads newest first by merging the two primary keys.
///
/// A filter by correlation id reads the live table as one branch per state in `states`: its
/// correlation index holds settled rows only (migration 0018), and each other branch's
/// condition is the predicate of a queue index, which the planner reads whole (the rows still
/// queued) instead of the table.
///
/// A filter by text with `hits` reads the rows with those ids, and the live rows not indexed
/// yet (archived rows all are); when more rows match than `hits` holds, only rows not older
/// than the oldest of them (`floor`). Without `hits` it reads the tables newest first.
fn push_source(
    qb: &mut QueryBuilder<'_, Postgres>,
    searchable: Searchable,
    fields: &str,
    filter: &ListFilter,
    states: &[&str],
    hits: Option<Hits>,
) {
    let table = searchable.table;
    let live = format!("SELECT {fields} FROM {table}");
    let archive = format!("SELECT {fields} FROM {table}_processed");
    let mut branches: Vec<Branch> = Vec::new();
    if filter.archived != Archived::Archived {
        match &hits {
            _ if filter.correlation_id.is_some() => branches.extend(
                states
                    .iter()
                    .map(|s| (live.as_str(), Some(format!("status IN {s}")), None)),
            ),
            Some(Hits {
                matches,
                few_pending,
            }) => {
                branches.push((&live, None, Some(&matches.ids[..])));
                branches.push((&live, Some(searchable.not_indexed(*few_pending)), None));
            }
            None => branches.push((&live, None, None)),
        }
    }
    if filter.archived != Archived::Live {
        branches.push((&archive, None, hits.as_ref().map(|h| &h.matches.ids[..])));
    }
    let floor = hits.as_ref().and_then(|h| h.matches.floor);
    // A single branch without a condition is the table itself.
    match branches.as_slice() {
        [(only, None, None)] if *only == live => {
            qb.push(table);
        }
        [(only, None, None)] if *only == archive => {
            qb.push(format!("{table}_processed AS {table}"));
        }
        _ => {
            qb.push("(");
            for (i, (select, condition, ids)) in branches.iter().enumerate() {
                if i > 0 {
                    qb.push(" UNION ALL ");
                }
                qb.push(select).push(" WHERE true");
                if let Some(condition) = condition {
                    qb.push(" AND ").push(condition);
                }
                if let Some(ids) = ids {
                    qb.push(" AND id = ANY(").push_bind(ids.to_vec()).push(")");
                }
                if let Some(floor) = floor {
                    qb.push(" AND id >= ").push_bind(floor);
                }
            }
            qb.push(format!(") AS {table}"));
        }
    }
}

/// The states of the live tables, as `push_source` splits them: settled first (what 0018 indexes),
/// then one per queue index.
const EVENT_STATES: &[&str] = &["('dispatched', 'dead')", "('pending', 'retrying')"];
const TASK_STATES: &[&str] = &[
    "('succeeded', 'dead', 'cancelled')",
    "('pending', 'retrying')",
    "('running')",
];

impl PgStore {
    /// Reads the rows of a list of at most `limit` rows that `list` builds by a [`Plan`]. For
    /// a text filter (without a correlation id, whose index narrows the list more):
    /// 1. When other filters `narrowed` the list: the newest rows passing them ([`Plan::Window`]).
    ///    A full page there is the answer: every row outside the window is older.
    /// 2. A text the index can answer is looked up first, in the same snapshot as the list
    ///    (one REPEATABLE READ transaction): a row indexed or archived between the two reads
    ///    is neither missed nor read twice ([`Plan::Hits`]).
    /// 3. When more rows match than the hits hold and those newer than the oldest hit do not
    ///    fill the page, or the index cannot answer the text: [`Plan::Walk`].
    async fn list_rows(
        &self,
        s: Searchable,
        f: &ListFilter,
        narrowed: bool,
        limit: u32,
        list: impl Fn(Plan) -> QueryBuilder<'static, Postgres>,
    ) -> Result<Vec<PgRow>, PortError> {
        let text = f.text.as_deref().filter(|t| !t.is_empty());
        let (Some(text), None) = (text, &f.correlation_id) else {
            return fetch(list(Plan::Walk), &self.pool).await;
        };
        if narrowed {
            let rows = fetch(list(Plan::Window), &self.pool).await?;
            if rows.len() >= limit as usize {
                return Ok(rows);
            }
        }
        if !indexable(text) {
            return fetch(list(Plan::Walk), &self.pool).await;
        }
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let matches = indexed_matches(&mut *tx, s, &contains_pattern(text)).await?;
        let partial = matches.floor.is_some();
        let hits = Hits {
            matches,
            few_pending: few_pending(&mut *tx, s).await?,
        };
        let mut rows = fetch(list(Plan::Hits(hits)), &mut *tx).await?;
        if partial && rows.len() < limit as usize {
            rows = fetch(list(Plan::Walk), &mut *tx).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(rows)
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
        let limit = q.limit.clamp(1, MAX_PAGE_LIMIT);
        let list = |plan: Plan| {
            let mut qb = plan.select(EVENT_COLUMNS);
            let filter = plan.filter(&q.filter);
            let window_text = plan.window_text(&q.filter);
            push_source(
                &mut qb,
                EVENTS,
                EVENT_FIELDS,
                &filter,
                EVENT_STATES,
                plan.into_hits(),
            );
            qb.push(" WHERE true");
            if let Some(t) = &q.event_type {
                qb.push(" AND event_type = ").push_bind(t.clone());
            }
            if let Some(s) = q.status {
                qb.push(" AND status = ").push_bind(s.as_str());
            }
            push_common(
                &mut qb,
                institution,
                &filter,
                "occurred_at",
                q.before.map(|b| b.0),
            );
            push_page(&mut qb, window_text, limit);
            qb
        };
        let narrowed = institution.is_some()
            || q.event_type.is_some()
            || q.status.is_some()
            || narrows(&q.filter);
        let rows = self
            .list_rows(EVENTS, &q.filter, narrowed, limit, list)
            .await?;
        rows.iter().map(event_view).collect()
    }

    async fn event(
        &self,
        event: EventId,
        scope: Option<InstitutionId>,
    ) -> Result<EventDetail, PortError> {
        let key = uuid::Uuid::from_u128(event.0);
        // Links cross into the archive: the event, its tasks and its copies may each be live or
        // archived.
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM domain_events WHERE id = $1
             UNION ALL SELECT {EVENT_COLUMNS} FROM domain_events_processed WHERE id = $1"
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
            "SELECT {TASK_COLUMNS} FROM tasks WHERE event_id = $1
             UNION ALL SELECT {TASK_COLUMNS} FROM tasks_processed WHERE event_id = $1 ORDER BY id"
        ))
        .bind(key)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let copies: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM domain_events WHERE reprocessed_from = $1
             UNION ALL SELECT id FROM domain_events_processed WHERE reprocessed_from = $1 ORDER BY id",
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

    async fn type_stats(
        &self,
        since: Timestamp,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TypeStats>, PortError> {
        self.stats_by_type(since, scope).await
    }

    async fn audit_trail(
        &self,
        q: &AuditQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, PortError> {
        let own = |table: &str| {
            format!(
                "SELECT {EVENT_FIELDS} FROM {table}
                 WHERE aggregate_id = $2 AND aggregate_type = $1 AND reprocessed_from IS NULL"
            )
        };
        let named = |table: &str| {
            format!(
                "SELECT {EVENT_FIELDS} FROM {table}
                 WHERE $1 = 'User' AND payload ? 'student_id' AND payload ->> 'student_id' = $2::text
                   AND reprocessed_from IS NULL"
            )
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ({} UNION ALL {} UNION ALL {} UNION ALL {}) AS domain_events
             WHERE ($3::uuid IS NULL OR id > $3) AND ($4::uuid IS NULL OR institution_id = $4)
             ORDER BY id LIMIT $5",
            own("domain_events"),
            own("domain_events_processed"),
            named("domain_events"),
            named("domain_events_processed"),
        );
        let rows = sqlx::query(&sql)
            .bind(&q.aggregate_type)
            .bind(uuid::Uuid::from_u128(q.aggregate_id))
            .bind(q.after.map(|a| uuid::Uuid::from_u128(a.0)))
            .bind(scope.map(|s| uuid::Uuid::from_u128(s.0)))
            .bind(i64::from(q.limit.clamp(1, MAX_AUDIT_LIMIT)))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(event_view).collect()
    }

    async fn list_tasks(
        &self,
        q: &TaskQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TaskView>, PortError> {
        let Ok(institution) = scoped(q.filter.institution_id, scope) else {
            return Ok(Vec::new());
        };
        let limit = q.limit.clamp(1, MAX_PAGE_LIMIT);
        let list = |plan: Plan| {
            let mut qb = plan.select(TASK_COLUMNS);
            let filter = plan.filter(&q.filter);
            let window_text = plan.window_text(&q.filter);
            push_source(
                &mut qb,
                TASKS,
                TASK_FIELDS,
                &filter,
                TASK_STATES,
                plan.into_hits(),
            );
            qb.push(" WHERE true");
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
                &filter,
                "created_at",
                q.before.map(|b| b.0),
            );
            push_page(&mut qb, window_text, limit);
            qb
        };
        let narrowed = institution.is_some()
            || q.task_type.is_some()
            || q.status.is_some()
            || q.event_id.is_some()
            || narrows(&q.filter);
        let rows = self
            .list_rows(TASKS, &q.filter, narrowed, limit, list)
            .await?;
        rows.iter().map(task_view).collect()
    }

    async fn task(
        &self,
        task: TaskId,
        scope: Option<InstitutionId>,
    ) -> Result<TaskDetail, PortError> {
        let key = uuid::Uuid::from_u128(task.0);
        let row = sqlx::query(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1
             UNION ALL SELECT {TASK_COLUMNS} FROM tasks_processed WHERE id = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .ok_or(PortError::NotFound("task"))?;
        let task = task_view(&row)?;
        if scope.is_some() && task.institution_id != scope {
            return Err(PortError::NotFound("task"));
        }
        let copies: Vec<uuid::Uuid> = sqlx::query_scalar(
            "SELECT id FROM tasks WHERE reprocessed_from = $1
                 UNION ALL SELECT id FROM tasks_processed WHERE reprocessed_from = $1 ORDER BY id",
        )
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
        match scoped(q.institution_id, scope) {
            Ok(institution) => self.engine_summary(q, institution).await,
            Err(()) => Ok(EngineSummary::default()),
        }
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
