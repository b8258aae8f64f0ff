//! The in-memory archive: the core retention rule applied to the rows, which move into the
//! archive maps in one step under the store's lock.

use super::rows::State;
use super::MemoryStore;
use async_trait::async_trait;
use campus_core::engine::retention::{EventFacts, RetentionWindows, TaskFacts};
use campus_core::engine::{EventStatus, TaskStatus};
use campus_core::Timestamp;
use campus_ports::{Archive, ArchiveCounts, ArchiveRun, PortError, PurgeCounts};

/// Archivable task ids, oldest first.
fn tasks(s: &State, w: &RetentionWindows, now: Timestamp) -> Vec<u128> {
    s.tasks
        .values()
        .filter(|t| {
            let copy_waiting = s
                .tasks
                .values()
                .any(|c| c.reprocessed_from == Some(t.id) && !c.status.is_final());
            let facts = TaskFacts {
                status: t.status,
                finished_at: t.finished_at,
                copy_waiting,
            };
            w.task_archivable(&facts, now)
        })
        .map(|t| t.id.0)
        .collect()
}

/// Archivable event ids, oldest first.
fn events(s: &State, w: &RetentionWindows, now: Timestamp) -> Vec<u128> {
    s.events
        .values()
        .filter(|e| {
            let facts = EventFacts {
                status: e.status,
                dispatched_at: e.dispatched_at,
                occurred_at: e.occurred_at,
                task_unfinished: s
                    .tasks
                    .values()
                    .any(|t| t.event_id == Some(e.id) && !t.status.is_final()),
                copy_waiting: s.events.values().any(|c| {
                    c.reprocessed_from == Some(e.id)
                        && matches!(c.status, EventStatus::Pending | EventStatus::Retrying)
                }),
            };
            w.event_archivable(&facts, now)
        })
        .map(|e| e.id.0)
        .collect()
}

#[async_trait]
impl Archive for MemoryStore {
    async fn archivable(&self, w: &RetentionWindows) -> Result<ArchiveCounts, PortError> {
        let now = self.now();
        let s = self.lock();
        Ok(ArchiveCounts {
            events: events(&s, w, now).len() as u64,
            tasks: tasks(&s, w, now).len() as u64,
        })
    }

    async fn archive_batch(
        &self,
        w: &RetentionWindows,
        limit: u32,
    ) -> Result<ArchiveCounts, PortError> {
        let now = self.now();
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut s = self.lock();
        let mut moved = ArchiveCounts::default();
        for id in tasks(&s, w, now).into_iter().take(limit) {
            if let Some(t) = s.tasks.remove(&id) {
                s.archived_tasks.insert(id, (t, now));
                moved.tasks += 1;
            }
        }
        for id in events(&s, w, now).into_iter().take(limit) {
            if let Some(e) = s.events.remove(&id) {
                s.archived_events.insert(id, (e, now));
                moved.events += 1;
            }
        }
        Ok(moved)
    }

    async fn due_backlog(&self, cap: u32) -> Result<u32, PortError> {
        let now = self.now();
        let due = self
            .lock()
            .tasks
            .values()
            .filter(|t| {
                matches!(t.status, TaskStatus::Pending | TaskStatus::Retrying) && t.run_at <= now
            })
            .take(usize::try_from(cap).unwrap_or(usize::MAX))
            .count();
        Ok(u32::try_from(due).unwrap_or(cap))
    }

    async fn archived(&self) -> Result<ArchiveCounts, PortError> {
        let s = self.lock();
        Ok(ArchiveCounts {
            events: s.archived_events.len() as u64,
            tasks: s.archived_tasks.len() as u64,
        })
    }

    async fn reclaim(&self) -> Result<(), PortError> {
        // Nothing to give back: removed rows are gone.
        Ok(())
    }

    async fn purge(&self, w: &RetentionWindows) -> Result<PurgeCounts, PortError> {
        let now = self.now();
        let mut s = self.lock();
        let before = (s.tokens.len(), s.sessions.len(), s.sent_emails.len());
        let spent = |t: Timestamp| t.plus(w.finished) <= now;
        s.tokens
            .retain(|_, t| !(spent(t.token.expires_at) || t.token.used_at.is_some_and(spent)));
        s.sessions.retain(|_, session| session.expires_at > now);
        s.sent_emails.retain(|_, sent| sent.2.plus(w.dead) > now);
        Ok(PurgeCounts {
            reset_tokens: (before.0 - s.tokens.len()) as u64,
            sessions: (before.1 - s.sessions.len()) as u64,
            sent_emails: (before.2 - s.sent_emails.len()) as u64,
        })
    }

    async fn record_run(&self, due: Timestamp, moved: ArchiveCounts) -> Result<(), PortError> {
        let finished = self.now();
        self.lock().archive_runs.push(ArchiveRun {
            due,
            finished,
            moved,
        });
        Ok(())
    }

    async fn runs(&self, limit: u32) -> Result<Vec<ArchiveRun>, PortError> {
        let mut runs = self.lock().archive_runs.clone();
        runs.sort_by_key(|r| std::cmp::Reverse((r.due, r.finished)));
        runs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(runs)
    }
}
