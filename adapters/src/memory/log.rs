//! The engine's read side over the in-memory rows: the same filters, keyset pages, details
//! and summary as `pg::admin` (every count is exact here: nothing is large).

use super::rows::{payload_contains, EventRow, TaskRow};
use super::MemoryStore;
use async_trait::async_trait;
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::*;
use std::collections::BTreeMap;

/// The institution filter after scoping: `None` when the caller asks for another
/// institution than their own (the answer is then empty).
fn scoped(
    asked: Option<InstitutionId>,
    scope: Option<InstitutionId>,
) -> Option<Option<InstitutionId>> {
    match (asked, scope) {
        (Some(a), Some(s)) if a != s => None,
        (a, s) => Some(s.or(a)),
    }
}

/// The filters both lists share: the list filter with its institution scoped, and the keyset.
struct Common<'a> {
    institution: Option<InstitutionId>,
    filter: &'a ListFilter,
    before: Option<u128>,
}

impl Common<'_> {
    /// Whether a row passes; `correlation` holds its correlation id and its
    /// `reprocess_request_id` (the filter matches either).
    #[allow(clippy::too_many_arguments)]
    fn accepts(
        &self,
        id: u128,
        institution: Option<InstitutionId>,
        time: Timestamp,
        correlation: [Option<&str>; 2],
        has_errors: bool,
        payload: &serde_json::Value,
    ) -> bool {
        let f = self.filter;
        self.institution.is_none_or(|i| institution == Some(i))
            && f.from.is_none_or(|from| time >= from)
            && f.to.is_none_or(|to| time < to)
            && f.correlation_id
                .as_deref()
                .is_none_or(|c| correlation.contains(&Some(c)))
            && f.has_errors.is_none_or(|h| h == has_errors)
            && f.text
                .as_deref()
                .filter(|t| !t.is_empty())
                .is_none_or(|t| payload_contains(payload, t))
            && self.before.is_none_or(|b| id < b)
    }
}

fn page(limit: u32) -> usize {
    usize::try_from(limit.clamp(1, MAX_PAGE_LIMIT)).unwrap_or(usize::MAX)
}

/// Counts by status, sorted by the status's name, with `(type, status, count)` for every
/// status but `bulk` (as the PostgreSQL summary reports them).
#[allow(clippy::type_complexity)]
fn counts<'a, S: ListStatus>(
    items: impl Iterator<Item = (&'a str, S)>,
    bulk: S,
) -> (Vec<StatusCount<S>>, Vec<(String, S, i64)>) {
    let mut by_status: BTreeMap<&'static str, (S, i64)> = BTreeMap::new();
    let mut by_type: BTreeMap<(String, &'static str), (S, i64)> = BTreeMap::new();
    by_status.insert(bulk.as_str(), (bulk, 0));
    for (kind, status) in items {
        by_status.entry(status.as_str()).or_insert((status, 0)).1 += 1;
        if status != bulk {
            by_type
                .entry((kind.to_string(), status.as_str()))
                .or_insert((status, 0))
                .1 += 1;
        }
    }
    let statuses = by_status
        .into_values()
        .map(|(status, count)| StatusCount {
            status,
            count,
            approximate: false,
        })
        .collect();
    let types = by_type
        .into_iter()
        .map(|((k, _), (s, n))| (k, s, n))
        .collect();
    (statuses, types)
}

const MINUTE_MS: i64 = 60_000;

/// The 60 minutes up to `now`, oldest first: events recorded and tasks created in each, by
/// what became of the tasks so far.
fn last_hour(now: Timestamp, events: &[&EventRow], tasks: &[&TaskRow]) -> Vec<MinuteCounts> {
    let first = now.0 - now.0.rem_euclid(MINUTE_MS) - 59 * MINUTE_MS;
    let mut minutes: Vec<MinuteCounts> = (0..60)
        .map(|i| MinuteCounts {
            minute: Timestamp(first + i * MINUTE_MS),
            events: 0,
            tasks_succeeded: 0,
            tasks_failed: 0,
        })
        .collect();
    let slot = |t: Timestamp| usize::try_from((t.0 - first).div_euclid(MINUTE_MS)).ok();
    for e in events {
        if let Some(m) = slot(e.occurred_at).and_then(|i| minutes.get_mut(i)) {
            m.events += 1;
        }
    }
    for t in tasks {
        if let Some(m) = slot(t.created_at).and_then(|i| minutes.get_mut(i)) {
            match t.status {
                TaskStatus::Succeeded => m.tasks_succeeded += 1,
                TaskStatus::Retrying | TaskStatus::Dead => m.tasks_failed += 1,
                _ => {}
            }
        }
    }
    minutes
}

/// The backlog of `due` tasks, as the PostgreSQL summary reports it.
fn due_backlog<'a>(
    due: impl Iterator<Item = &'a TaskRow>,
    names: &BTreeMap<u128, String>,
) -> DueBacklog {
    let mut total = PriorityCounts::default();
    let mut by_institution: BTreeMap<Option<InstitutionId>, PriorityCounts> = BTreeMap::new();
    for t in due {
        total.add(t.priority, 1);
        by_institution
            .entry(t.institution_id)
            .or_default()
            .add(t.priority, 1);
    }
    let mut institutions: Vec<InstitutionBacklog> = by_institution
        .into_iter()
        .map(|(institution_id, due)| InstitutionBacklog {
            institution_id,
            name: institution_id.and_then(|i| names.get(&i.0).cloned()),
            due,
        })
        .collect();
    // Stable: ties stay by id, no institution first.
    institutions.sort_by_key(|b| std::cmp::Reverse(b.due.total()));
    institutions.truncate(BACKLOG_INSTITUTIONS);
    DueBacklog {
        institutions,
        total,
    }
}

#[async_trait]
impl EngineLog for MemoryStore {
    async fn list_events(
        &self,
        q: &EventQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, PortError> {
        let Some(institution) = scoped(q.filter.institution_id, scope) else {
            return Ok(Vec::new());
        };
        let common = Common {
            institution,
            filter: &q.filter,
            before: q.before.map(|b| b.0),
        };
        let s = self.lock();
        Ok(s.list_events(q.filter.archived)
            .into_iter()
            .filter(|e| q.event_type.as_ref().is_none_or(|t| &e.event_type == t))
            .filter(|e| q.status.is_none_or(|st| e.status == st))
            .filter(|e| {
                common.accepts(
                    e.id.0,
                    e.institution_id,
                    e.occurred_at,
                    [
                        e.correlation_id.as_deref(),
                        e.reprocess_request_id.as_deref(),
                    ],
                    !e.errors.is_empty(),
                    &e.payload,
                )
            })
            .take(page(q.limit))
            .map(EventRow::view)
            .collect())
    }

    async fn event(
        &self,
        id: EventId,
        scope: Option<InstitutionId>,
    ) -> Result<EventDetail, PortError> {
        let s = self.lock();
        // Links cross into the archive, as in PostgreSQL.
        let event = s
            .event_anywhere(id.0)
            .filter(|e| scope.is_none() || e.institution_id == scope)
            .ok_or(PortError::NotFound("event"))?
            .view();
        let mut tasks: Vec<TaskView> = s
            .every_task()
            .filter(|t| t.event_id == Some(id))
            .map(TaskRow::view)
            .collect();
        tasks.sort_by_key(|t| t.id);
        let mut copies: Vec<EventId> = s
            .every_event()
            .filter(|e| e.reprocessed_from == Some(id))
            .map(|e| e.id)
            .collect();
        copies.sort();
        Ok(EventDetail {
            event,
            tasks,
            copies,
        })
    }

    async fn type_stats(
        &self,
        since: Timestamp,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TypeStats>, PortError> {
        let s = self.lock();
        let mut by_type: BTreeMap<String, (i64, i64, Vec<f64>)> = BTreeMap::new();
        for t in s.tasks.values() {
            if t.created_at < since || (scope.is_some() && t.institution_id != scope) {
                continue;
            }
            let entry = by_type.entry(t.task_type.clone()).or_default();
            match t.status {
                TaskStatus::Succeeded => entry.0 += 1,
                TaskStatus::Dead | TaskStatus::Retrying => entry.1 += 1,
                _ => {}
            }
            if matches!(t.status, TaskStatus::Succeeded | TaskStatus::Dead) {
                entry.2.extend(t.duration_ms);
            }
        }
        Ok(by_type
            .into_iter()
            .map(|(task_type, (succeeded, failed, mut ms))| {
                ms.sort_by(f64::total_cmp);
                TypeStats {
                    task_type,
                    succeeded,
                    failed,
                    p50_ms: percentile(&ms, 0.5),
                    p95_ms: percentile(&ms, 0.95),
                }
            })
            .collect())
    }

    async fn audit_trail(
        &self,
        q: &AuditQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<EventView>, PortError> {
        let student = uuid::Uuid::from_u128(q.aggregate_id).to_string();
        let s = self.lock();
        let mut trail: Vec<&EventRow> = s
            .every_event()
            .filter(|e| e.reprocessed_from.is_none())
            .filter(|e| {
                (e.aggregate_type == q.aggregate_type && e.aggregate_id == q.aggregate_id)
                    || (q.aggregate_type == "User"
                        && e.payload.get("student_id").and_then(|v| v.as_str())
                            == Some(student.as_str()))
            })
            .filter(|e| scope.is_none() || e.institution_id == scope)
            .filter(|e| q.after.is_none_or(|a| e.id > a))
            .collect();
        trail.sort_by_key(|e| e.id);
        let limit = usize::try_from(q.limit.clamp(1, MAX_AUDIT_LIMIT)).unwrap_or(usize::MAX);
        Ok(trail.into_iter().take(limit).map(EventRow::view).collect())
    }

    async fn list_tasks(
        &self,
        q: &TaskQuery,
        scope: Option<InstitutionId>,
    ) -> Result<Vec<TaskView>, PortError> {
        let Some(institution) = scoped(q.filter.institution_id, scope) else {
            return Ok(Vec::new());
        };
        let common = Common {
            institution,
            filter: &q.filter,
            before: q.before.map(|b| b.0),
        };
        let s = self.lock();
        Ok(s.list_tasks(q.filter.archived)
            .into_iter()
            .filter(|t| q.task_type.as_ref().is_none_or(|x| &t.task_type == x))
            .filter(|t| q.status.is_none_or(|st| t.status == st))
            .filter(|t| q.event_id.is_none_or(|e| t.event_id == Some(e)))
            .filter(|t| {
                common.accepts(
                    t.id.0,
                    t.institution_id,
                    t.created_at,
                    [
                        t.correlation_id.as_deref(),
                        t.reprocess_request_id.as_deref(),
                    ],
                    !t.errors.is_empty(),
                    &t.payload,
                )
            })
            .take(page(q.limit))
            .map(TaskRow::view)
            .collect())
    }

    async fn task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
    ) -> Result<TaskDetail, PortError> {
        let s = self.lock();
        let task = s
            .task_anywhere(id.0)
            .filter(|t| scope.is_none() || t.institution_id == scope)
            .ok_or(PortError::NotFound("task"))?
            .view();
        let mut copies: Vec<TaskId> = s
            .every_task()
            .filter(|t| t.reprocessed_from == Some(id))
            .map(|t| t.id)
            .collect();
        copies.sort();
        Ok(TaskDetail { task, copies })
    }

    async fn summary(
        &self,
        q: &SummaryQuery,
        scope: Option<InstitutionId>,
    ) -> Result<EngineSummary, PortError> {
        let Some(institution) = scoped(q.institution_id, scope) else {
            return Ok(EngineSummary::default());
        };
        let now = self.now();
        let s = self.lock();
        let in_range = |t: Timestamp| q.from.is_none_or(|f| t >= f) && q.to.is_none_or(|x| t < x);
        let mine = |i: Option<InstitutionId>| institution.is_none_or(|s| i == Some(s));
        let events: Vec<&EventRow> = s
            .events
            .values()
            .filter(|e| mine(e.institution_id))
            .filter(|e| q.event_type.as_ref().is_none_or(|t| &e.event_type == t))
            .collect();
        let tasks: Vec<&TaskRow> = s
            .tasks
            .values()
            .filter(|t| mine(t.institution_id))
            .filter(|t| q.task_type.as_ref().is_none_or(|x| &t.task_type == x))
            .collect();
        let (events_by_status, _) = counts(
            events
                .iter()
                .filter(|e| in_range(e.occurred_at))
                .map(|e| (e.event_type.as_str(), e.status)),
            EventStatus::Dispatched,
        );
        let (tasks_by_status, tasks_by_type) = counts(
            tasks
                .iter()
                .filter(|t| in_range(t.created_at))
                .map(|t| (t.task_type.as_str(), t.status)),
            TaskStatus::Succeeded,
        );
        let per_minute = last_hour(now, &events, &tasks);
        let (ok, failed) = per_minute.iter().fold((0, 0), |(o, f), m| {
            (o + m.tasks_succeeded, f + m.tasks_failed)
        });
        let age = |oldest: Option<Timestamp>| oldest.map(|t| (now.0 - t.0) as f64 / 1000.0);
        let waiting_event = events
            .iter()
            .filter(|e| matches!(e.status, EventStatus::Pending | EventStatus::Retrying))
            .map(|e| e.occurred_at)
            .min();
        let waiting_task = tasks
            .iter()
            .filter(|t| matches!(t.status, TaskStatus::Pending | TaskStatus::Retrying))
            .map(|t| t.created_at)
            .min();
        let due_backlog = due_backlog(
            tasks
                .iter()
                .filter(|t| matches!(t.status, TaskStatus::Pending | TaskStatus::Retrying))
                .filter(|t| t.run_at <= now)
                .copied(),
            &s.institutions,
        );
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
            oldest_pending_event_age_s: age(waiting_event),
            oldest_pending_task_age_s: age(waiting_task),
            due_backlog,
        })
    }

    async fn institutions(
        &self,
        scope: Option<InstitutionId>,
        limit: u32,
    ) -> Result<Vec<(InstitutionId, String)>, PortError> {
        let s = self.lock();
        let mut all: Vec<(InstitutionId, String)> = s
            .institutions
            .iter()
            .filter(|(id, _)| scope.is_none_or(|s| s.0 == **id))
            .map(|(id, name)| (InstitutionId(*id), name.clone()))
            .collect();
        all.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(all)
    }
}

/// PostgreSQL's `percentile_cont` of sorted samples (linear between the nearest two).
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let at = p * last as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64))
}

/// Nothing to keep: the in-memory lists search every row's payload.
#[async_trait]
impl PayloadIndex for MemoryStore {
    async fn index_payloads(&self, _limit: u32, _keep: u32) -> Result<IndexedPayloads, PortError> {
        Ok(IndexedPayloads::default())
    }

    async fn compact(&self) -> Result<(), PortError> {
        Ok(())
    }
}
