//! The in-memory operator controls (cancel, pause/resume, per-type counts) and the daemon's
//! coordination ports: wake-ups from the store's own writes, a leader lock held by one
//! `Leadership` at a time, and a store that is always ready.

use super::MemoryStore;
use async_trait::async_trait;
use campus_core::engine::{TaskState, TaskStatus, TaskTransition};
use campus_core::ids::{InstitutionId, TaskId};
use campus_ports::{
    LeaderLock, Leadership, PortError, Readiness, TaskControl, TypeCounts, WakeStream, WakeUp,
    WakeUps,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[async_trait]
impl TaskControl for MemoryStore {
    async fn cancel_task(&self, id: TaskId, scope: Option<InstitutionId>) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        let t = s
            .tasks
            .get_mut(&id.0)
            .filter(|t| scope.is_none() || t.institution_id == scope)
            .ok_or(PortError::NotFound("task"))?;
        let state = TaskState {
            status: t.status,
            attempt: t.attempt,
            max_attempts: t.max_attempts,
        };
        match state.apply(TaskTransition::Cancel) {
            Ok(next) => {
                t.status = next.status;
                t.finished_at = Some(now);
                drop(s);
                self.wake();
                Ok(())
            }
            Err(e) => Err(PortError::Conflict(format!(
                "{e}: only pending or retrying tasks can be cancelled"
            ))),
        }
    }

    async fn set_paused(&self, task_type: &str, paused: bool) -> Result<(), PortError> {
        let mut s = self.lock();
        if paused {
            s.paused.insert(task_type.to_string());
        } else {
            s.paused.remove(task_type);
        }
        drop(s);
        self.wake();
        Ok(())
    }

    async fn paused_types(&self) -> Result<Vec<String>, PortError> {
        Ok(self.lock().paused.iter().cloned().collect())
    }

    async fn type_counts(&self, types: &[String]) -> Result<Vec<TypeCounts>, PortError> {
        let s = self.lock();
        let mut counts: Vec<TypeCounts> = types
            .iter()
            .map(|t| TypeCounts {
                task_type: t.clone(),
                ..TypeCounts::default()
            })
            .collect();
        for task in s.tasks.values() {
            for c in counts.iter_mut().filter(|c| c.task_type == task.task_type) {
                match task.status {
                    TaskStatus::Pending | TaskStatus::Retrying => c.waiting += 1,
                    TaskStatus::Running => c.running += 1,
                    TaskStatus::Dead => c.dead += 1,
                    TaskStatus::Succeeded | TaskStatus::Cancelled => {}
                }
            }
        }
        Ok(counts)
    }
}

/// Every write that may make work due is a hint to every subscriber (none is lost between
/// two reads: the stream watches a version counter).
impl WakeUps for MemoryStore {
    fn subscribe(&self) -> Box<dyn WakeStream> {
        Box::new(Hints {
            versions: self.shared.wake.subscribe(),
            started: false,
        })
    }
}

struct Hints {
    versions: tokio::sync::watch::Receiver<u64>,
    /// Whether the first hint (`All`, "look at everything") was given.
    started: bool,
}

#[async_trait]
impl WakeStream for Hints {
    async fn next(&mut self) -> Option<WakeUp> {
        if !std::mem::replace(&mut self.started, true) {
            return Some(WakeUp::All);
        }
        self.versions.changed().await.ok().map(|()| WakeUp::All)
    }
}

#[async_trait]
impl LeaderLock for MemoryStore {
    async fn try_acquire(&self) -> Result<Option<Box<dyn Leadership>>, PortError> {
        static TOKENS: AtomicU64 = AtomicU64::new(1);
        let holder = self.shared.leader.clone();
        let mut held = holder.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_some() {
            return Ok(None);
        }
        let token = TOKENS.fetch_add(1, Ordering::Relaxed);
        *held = Some(token);
        drop(held);
        Ok(Some(Box::new(Lead { holder, token })))
    }
}

/// The leader lock while held; dropping it releases it (like a closed connection releases a
/// PostgreSQL advisory lock).
struct Lead {
    holder: Arc<Mutex<Option<u64>>>,
    token: u64,
}

impl Lead {
    fn held(&self) -> bool {
        *self.holder.lock().unwrap_or_else(|p| p.into_inner()) == Some(self.token)
    }
}

#[async_trait]
impl Leadership for Lead {
    async fn still_held(&mut self) -> bool {
        self.held()
    }

    async fn release(self: Box<Self>) {}
}

impl Drop for Lead {
    fn drop(&mut self) {
        let mut held = self.holder.lock().unwrap_or_else(|p| p.into_inner());
        if *held == Some(self.token) {
            *held = None;
        }
    }
}

#[async_trait]
impl Readiness for MemoryStore {
    async fn schema_ready(&self) -> Result<bool, PortError> {
        Ok(true)
    }
}
