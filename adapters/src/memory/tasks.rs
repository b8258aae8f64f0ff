//! The in-memory task queue: enqueue, claims with a lease, fenced completion, rescue of
//! expired leases and reprocess copies (the same rules as `pg::tasks`, fair shares and turns included).

use super::rows::{
    after, error_at, jsonb_text, new_task_row, parse_payload, payload_contains, State, TaskRow,
};
use super::MemoryStore;
use async_trait::async_trait;
use campus_core::engine::{
    fair_shares, Contender, EventStatus, Priority, RetryPolicy, TaskState, TaskStatus,
};
use campus_core::ids::*;
use campus_core::Timestamp;
use campus_ports::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[async_trait]
impl TaskQueue for MemoryStore {
    async fn enqueue(&self, tasks: &[NewTask]) -> Result<usize, PortError> {
        let payloads = tasks
            .iter()
            .map(|t| parse_payload(&t.payload, "task"))
            .collect::<Result<Vec<_>, _>>()?;
        let now = self.now();
        let mut s = self.lock();
        let mut inserted = 0;
        for (t, payload) in tasks.iter().zip(payloads) {
            if let Some(key) = &t.idempotency_key {
                if s.task_keys.contains_key(key) {
                    continue;
                }
            }
            let id = TaskId(s.new_id(now));
            if let Some(key) = &t.idempotency_key {
                s.task_keys.insert(key.clone(), id.0);
            }
            let row = new_task_row(id, t.task_type.clone(), payload, now, |r| TaskRow {
                institution_id: t.institution_id,
                correlation_id: t.correlation_id.clone(),
                max_attempts: t.max_attempts.max(1),
                run_at: t.run_at.unwrap_or(now),
                priority: t.priority,
                ..r
            });
            s.tasks.insert(id.0, row);
            inserted += 1;
        }
        drop(s);
        self.wake();
        Ok(inserted)
    }

    async fn claim(
        &self,
        worker: &str,
        types: &ClaimTypes,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<ClaimedTask>, PortError> {
        let mut quotas: HashMap<&str, u32> =
            types.capped.iter().map(|(t, q)| (t.as_str(), *q)).collect();
        let asked: HashSet<&str> = types
            .any
            .iter()
            .map(String::as_str)
            .chain(quotas.iter().filter(|(_, q)| **q > 0).map(|(t, _)| *t))
            .collect();
        let rooms: HashMap<Option<InstitutionId>, u32> =
            types.institutions.iter().copied().collect();
        let now = self.now();
        let mut s = self.lock();
        // Each institution's claimable tasks by turn (tasks of none are one more group).
        let mut groups: BTreeMap<Option<InstitutionId>, Vec<(Timestamp, TaskId, &str)>> =
            BTreeMap::new();
        for t in s.tasks.values().filter(|t| {
            matches!(t.status, TaskStatus::Pending | TaskStatus::Retrying)
                && t.run_at <= now
                && asked.contains(t.task_type.as_str())
                && !s.paused.contains(&t.task_type)
                && next_in_order(&s, t)
        }) {
            groups.entry(t.institution_id).or_default().push((
                t.claim_at,
                t.id,
                t.task_type.as_str(),
            ));
        }
        let mut contenders = Vec::with_capacity(groups.len());
        for (institution, tasks) in &mut groups {
            tasks.sort();
            contenders.push(Contender {
                head: tasks[0].0,
                room: rooms
                    .get(institution)
                    .copied()
                    .unwrap_or(types.institution_cap.unwrap_or(limit)),
            });
        }
        let shares = fair_shares(limit, &contenders);
        let mut picked: Vec<(Timestamp, TaskId, &str)> = groups
            .into_values()
            .zip(shares)
            .flat_map(|(tasks, share)| tasks.into_iter().take(share as usize))
            .collect();
        // A capped type's quota goes to its earliest turns.
        picked.sort();
        let due: Vec<TaskId> = picked
            .into_iter()
            .filter(|(_, _, task_type)| match quotas.get_mut(task_type) {
                Some(quota) if *quota == 0 => false,
                Some(quota) => {
                    *quota -= 1;
                    true
                }
                None => true,
            })
            .map(|(_, id, _)| id)
            .collect();
        let mut claimed = Vec::with_capacity(due.len());
        for id in due {
            let Some(t) = s.tasks.get_mut(&id.0) else {
                continue;
            };
            t.status = TaskStatus::Running;
            t.attempt += 1;
            t.locked_by = Some(worker.to_string());
            t.locked_until = Some(after(now, lease));
            t.started_at = Some(now);
            t.finished_at = None;
            claimed.push(ClaimedTask {
                id: t.id,
                task_type: t.task_type.clone(),
                payload: jsonb_text(&t.payload),
                institution_id: t.institution_id,
                event_id: t.event_id,
                correlation_id: t.correlation_id.clone(),
                lineage_id: t.lineage_id,
                attempt: t.attempt,
                max_attempts: t.max_attempts,
                created_at: t.created_at,
            });
        }
        Ok(claimed)
    }

    async fn complete(
        &self,
        worker: &str,
        completions: &[Completion],
        retry: &RetryPolicy,
    ) -> Result<usize, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let mut accepted = 0;
        for c in completions {
            let Some(t) = s.tasks.get_mut(&c.id.0) else {
                continue;
            };
            // Fenced: only the worker holding this very attempt.
            if t.attempt != c.attempt || t.locked_by.as_deref() != Some(worker) {
                continue;
            }
            let (failure, message, retry_in) = match &c.outcome {
                TaskOutcome::Succeeded => (None, None, None),
                TaskOutcome::Failed {
                    message,
                    permanent,
                    retry_in,
                } => (Some(*permanent), Some(message.clone()), *retry_in),
            };
            t.status = TaskState::after_attempt(c.attempt, c.max_attempts, failure);
            if t.status == TaskStatus::Retrying {
                let delay = retry_in.unwrap_or_else(|| retry.delay(c.attempt, rand::random()));
                let offset = t.claim_at.0 - t.run_at.0;
                t.run_at = after(now, delay);
                t.claim_at = Timestamp(t.run_at.0 + offset);
            }
            if let Some(message) = message {
                t.errors.push(AttemptError {
                    at: error_at(now),
                    attempt: c.attempt,
                    message,
                });
            }
            t.finished_at = Some(now);
            t.duration_ms = Some(millis(c.duration));
            t.locked_by = None;
            t.locked_until = None;
            accepted += 1;
        }
        Ok(accepted)
    }

    async fn heartbeat(
        &self,
        worker: &str,
        tasks: &[TaskId],
        lease: Duration,
    ) -> Result<Vec<TaskId>, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let mut held = Vec::new();
        for id in tasks {
            if let Some(t) = s.tasks.get_mut(&id.0) {
                if t.locked_by.as_deref() == Some(worker) {
                    t.locked_until = Some(after(now, lease));
                    held.push(*id);
                }
            }
        }
        Ok(held)
    }

    async fn rescue_expired(&self, retry: &RetryPolicy, limit: u32) -> Result<usize, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let mut expired: Vec<(Timestamp, TaskId)> = s
            .tasks
            .values()
            .filter_map(|t| match t.locked_until {
                Some(until) if t.status == TaskStatus::Running && until < now => {
                    Some((until, t.id))
                }
                _ => None,
            })
            .collect();
        expired.sort();
        expired.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        for (_, id) in &expired {
            let Some(t) = s.tasks.get_mut(&id.0) else {
                continue;
            };
            // An expired lease is a failed attempt, never a permanent one.
            t.status = TaskState::after_attempt(t.attempt, t.max_attempts, Some(false));
            if t.status == TaskStatus::Retrying {
                let offset = t.claim_at.0 - t.run_at.0;
                t.run_at = after(now, retry.delay(t.attempt, rand::random()));
                t.claim_at = Timestamp(t.run_at.0 + offset);
            }
            t.errors.push(AttemptError {
                at: error_at(now),
                attempt: t.attempt,
                message: format!(
                    "lease expired: worker {} stopped responding during attempt {}",
                    t.locked_by.as_deref().unwrap_or("?"),
                    t.attempt
                ),
            });
            t.finished_at = (t.status == TaskStatus::Dead).then_some(now);
            t.locked_by = None;
            t.locked_until = None;
        }
        drop(s);
        if !expired.is_empty() {
            self.wake();
        }
        Ok(expired.len())
    }

    async fn reprocess_task(
        &self,
        id: TaskId,
        scope: Option<InstitutionId>,
        request_id: Option<String>,
    ) -> Result<TaskId, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let original = s
            .task_anywhere(id.0)
            .filter(|t| scope.is_none() || t.institution_id == scope)
            .ok_or(PortError::NotFound("task"))?;
        if !original.status.can_reprocess() {
            return Err(PortError::Conflict(format!(
                "the task is {}; only succeeded, dead or cancelled tasks can be reprocessed",
                original.status.as_str()
            )));
        }
        if copy_waiting(&s, id) {
            return Err(PortError::Conflict(
                "a copy of this task is already waiting to run".into(),
            ));
        }
        let copy = insert_copy(&mut s, id, request_id, None, now);
        drop(s);
        self.wake();
        Ok(copy)
    }

    async fn reprocess_tasks(
        &self,
        filter: &TaskFilter,
        limit: u32,
        request_id: Option<String>,
    ) -> Result<usize, PortError> {
        let status = filter.status.unwrap_or(TaskStatus::Dead);
        if !status.can_reprocess() {
            return Err(PortError::Conflict(format!(
                "{} tasks cannot be reprocessed; choose succeeded, dead or cancelled",
                status.as_str()
            )));
        }
        let now = self.now();
        let mut s = self.lock();
        let mut originals: Vec<(Timestamp, TaskId)> = s
            .tasks
            .values()
            .filter(|t| t.status == status && matches_filter(t, filter))
            .filter(|t| !copy_waiting(&s, t.id))
            .filter(|t| status == TaskStatus::Succeeded || !fixed_later(&s, t))
            .map(|t| (t.created_at, t.id))
            .collect();
        originals.sort();
        originals.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        for (_, id) in &originals {
            insert_copy(&mut s, *id, request_id.clone(), Some(Priority::Bulk), now);
        }
        drop(s);
        if !originals.is_empty() {
            self.wake();
        }
        Ok(originals.len())
    }
}

fn matches_filter(t: &TaskRow, f: &TaskFilter) -> bool {
    f.task_type.as_ref().is_none_or(|x| &t.task_type == x)
        && f.institution_id.is_none_or(|i| t.institution_id == Some(i))
        && f.created_from.is_none_or(|from| t.created_at >= from)
        && f.created_to.is_none_or(|to| t.created_at < to)
        && f.event_id.is_none_or(|e| t.event_id == Some(e))
        && f.correlation_id.as_ref().is_none_or(|c| {
            t.correlation_id.as_ref() == Some(c) || t.reprocess_request_id.as_ref() == Some(c)
        })
        && f.text
            .as_deref()
            .filter(|x| !x.is_empty())
            .is_none_or(|x| payload_contains(&t.payload, x))
}

/// Whether `t` may run as to its order (see `pg::tasks`, `next_in_order!`): without an ordering
/// key always; with one, when no task of an earlier event with its key waits, runs or retries
/// and no earlier event of its aggregate waits for dispatch.
fn next_in_order(s: &State, t: &TaskRow) -> bool {
    let (Some(key), Some(event)) = (&t.ordering_key, t.event_id) else {
        return true;
    };
    let earlier_task = s.tasks.values().any(|p| {
        p.ordering_key.as_ref() == Some(key)
            && p.event_id.is_some_and(|e| e.0 < event.0)
            && !p.status.is_final()
    });
    let earlier_event = s.events.get(&event.0).is_some_and(|o| {
        s.events.values().any(|e| {
            e.aggregate_type == o.aggregate_type
                && e.aggregate_id == o.aggregate_id
                && e.id.0 < event.0
                && matches!(e.status, EventStatus::Pending | EventStatus::Retrying)
        })
    });
    !earlier_task && !earlier_event
}

/// Whether a copy of `id` is still waiting to run (pending, running or retrying).
fn copy_waiting(s: &State, id: TaskId) -> bool {
    s.tasks
        .values()
        .any(|c| c.reprocessed_from == Some(id) && !c.status.is_final())
}

/// Whether a later copy in `t`'s lineage succeeded (then `t` needs no new copy). Ids are
/// minted in creation order, so "later" compares ids (PostgreSQL compares `created_at`).
fn fixed_later(s: &State, t: &TaskRow) -> bool {
    s.tasks.values().any(|c| {
        c.reprocessed_from.is_some()
            && c.lineage_id == t.lineage_id
            && c.status == TaskStatus::Succeeded
            && c.id.0 > t.id.0
    })
}

/// Inserts a pending copy of task `original` (same lineage and correlation id, no idempotency
/// key), made by the operator's request `request_id`.
fn insert_copy(
    s: &mut State,
    original: TaskId,
    request_id: Option<String>,
    priority: Option<Priority>,
    now: Timestamp,
) -> TaskId {
    let id = TaskId(s.new_id(now));
    let Some(o) = s.task_anywhere(original.0).cloned() else {
        return id;
    };
    let row = new_task_row(id, o.task_type, o.payload, now, |r| TaskRow {
        lineage_id: o.lineage_id,
        handler: o.handler,
        institution_id: o.institution_id,
        event_id: o.event_id,
        correlation_id: o.correlation_id,
        reprocess_request_id: request_id,
        reprocessed_from: Some(original),
        max_attempts: o.max_attempts,
        priority: priority.unwrap_or(o.priority),
        ..r
    });
    s.tasks.insert(id.0, row);
    id
}
