//! The roster of running daemons over the in-memory rows (the same rules as PostgreSQL's).

use super::MemoryStore;
use campus_ports::{DaemonBeat, DaemonRoster, DaemonSeen, PortError};
use std::time::Duration;

const FORGET_AFTER_MS: i64 = 24 * 3_600_000;

#[async_trait::async_trait]
impl DaemonRoster for MemoryStore {
    async fn beat(&self, beat: &DaemonBeat) -> Result<(), PortError> {
        let now = self.now();
        let mut s = self.lock();
        s.daemons
            .retain(|_, (_, heard)| now.0 - heard.0 <= FORGET_AFTER_MS);
        s.daemons
            .insert(beat.worker_id.clone(), (beat.clone(), now));
        Ok(())
    }

    async fn left(&self, worker_id: &str) -> Result<(), PortError> {
        self.lock().daemons.remove(worker_id);
        Ok(())
    }

    async fn heard_within(&self, within: Duration) -> Result<Vec<DaemonSeen>, PortError> {
        let now = self.now();
        let within = i64::try_from(within.as_millis()).unwrap_or(i64::MAX);
        let mut seen: Vec<DaemonSeen> = self
            .lock()
            .daemons
            .values()
            .filter(|(_, heard)| now.0 - heard.0 <= within)
            .map(|(beat, heard)| DaemonSeen {
                beat: beat.clone(),
                silent_for: Duration::from_millis(u64::try_from(now.0 - heard.0).unwrap_or(0)),
            })
            .collect();
        seen.sort_by(|a, b| {
            (!a.beat.leader, a.beat.started_at, &a.beat.worker_id).cmp(&(
                !b.beat.leader,
                b.beat.started_at,
                &b.beat.worker_id,
            ))
        });
        Ok(seen)
    }
}
