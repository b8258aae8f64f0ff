//! The queues' depth over the in-memory rows (the same caps as PostgreSQL's).

use super::MemoryStore;
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::Timestamp;
use campus_ports::{PortError, QueueDepth, QueueGauges};
use std::time::Duration;

fn age(now: Timestamp, since: Option<Timestamp>) -> Option<Duration> {
    since.map(|t| Duration::from_millis(u64::try_from(now.0 - t.0).unwrap_or(0)))
}

#[async_trait::async_trait]
impl QueueGauges for MemoryStore {
    async fn queue_depth(&self, cap: u32) -> Result<QueueDepth, PortError> {
        let now = self.now();
        let s = self.lock();
        let capped = |n: usize| u64::try_from(n).unwrap_or(u64::MAX).min(u64::from(cap));
        let tasks_in = |st: TaskStatus| s.tasks.values().filter(|t| t.status == st).count();
        let waiting = |t: &&super::rows::TaskRow| {
            matches!(t.status, TaskStatus::Pending | TaskStatus::Retrying)
        };
        let due: Vec<&super::rows::TaskRow> = s
            .tasks
            .values()
            .filter(waiting)
            .filter(|t| t.run_at <= now)
            .collect();
        // As on PostgreSQL: the oldest among the due tasks next in line of each group.
        let mut heads = std::collections::HashMap::new();
        for t in &due {
            let head = heads.entry(t.institution_id).or_insert(*t);
            if (t.claim_at, t.id) < (head.claim_at, head.id) {
                *head = *t;
            }
        }
        let events: Vec<Timestamp> = s
            .events
            .values()
            .filter(|e| matches!(e.status, EventStatus::Pending | EventStatus::Retrying))
            .map(|e| e.next_attempt_at)
            .collect();
        Ok(QueueDepth {
            tasks_pending: capped(tasks_in(TaskStatus::Pending)),
            tasks_retrying: capped(tasks_in(TaskStatus::Retrying)),
            tasks_running: capped(tasks_in(TaskStatus::Running)),
            tasks_due: capped(due.len()),
            events_waiting: capped(events.len()),
            oldest_due_task: age(now, heads.values().map(|t| t.run_at).min()),
            oldest_due_event: age(now, events.iter().filter(|t| **t <= now).min().copied()),
        })
    }
}
