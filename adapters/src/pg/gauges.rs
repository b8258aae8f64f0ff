//! The queues' depth on PostgreSQL: each count walks a partial index of waiting rows
//! (`tasks_due`, `tasks_running_lease`, `domain_events_due`) up to the cap; the oldest due
//! instants are the first entries of the due indexes.

use super::{db_err, PgStore};
use campus_ports::{PortError, QueueDepth, QueueGauges};
use chrono::{DateTime, Utc};
use std::time::Duration;

const DEPTH: &str = "
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'pending' LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'retrying' LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'running' LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status IN ('pending', 'retrying')
                                              AND run_at <= now() LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM domain_events WHERE status IN ('pending', 'retrying') LIMIT $1) x),
  (SELECT min(run_at) FROM tasks WHERE status IN ('pending', 'retrying') AND run_at <= now()),
  (SELECT min(next_attempt_at) FROM domain_events
    WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()),
  now()";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait::async_trait]
impl QueueGauges for PgStore {
    async fn queue_depth(&self, cap: u32) -> Result<QueueDepth, PortError> {
        type Row = (
            i64,
            i64,
            i64,
            i64,
            i64,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
            DateTime<Utc>,
        );
        let (pending, retrying, running, due, events, oldest_task, oldest_event, now): Row =
            sqlx::query_as(DEPTH)
                .bind(i64::from(cap))
                .fetch_one(&self.pool)
                .await
                .map_err(db_err)?;
        let age =
            |t: Option<DateTime<Utc>>| t.map(|t| (now - t).to_std().unwrap_or(Duration::ZERO));
        Ok(QueueDepth {
            tasks_pending: count(pending),
            tasks_retrying: count(retrying),
            tasks_running: count(running),
            tasks_due: count(due),
            events_waiting: count(events),
            oldest_due_task: age(oldest_task),
            oldest_due_event: age(oldest_event),
        })
    }
}
