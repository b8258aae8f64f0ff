//! The queues' depth on PostgreSQL: each count walks a partial index of waiting rows
//! (`tasks_claim`, `tasks_running_lease`, `domain_events_due`) up to the cap. The oldest due
//! event is the first entry of `domain_events_due`; the oldest due task is the oldest among
//! the tasks next in line in each group (`waiting_groups!`; within a group and priority, the
//! next in line is the one due the longest).

use super::{db_err, PgStore};
use campus_ports::{PortError, QueueDepth, QueueGauges};
use chrono::{DateTime, Utc};
use std::time::Duration;

const DEPTH: &str = concat!(
    "WITH RECURSIVE ",
    waiting_groups!(),
    "
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'pending' LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'retrying' LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status = 'running' LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM tasks WHERE status IN ('pending', 'retrying')
                                              AND run_at <= now() LIMIT $1) x),
  (SELECT count(*) FROM (SELECT 1 FROM domain_events WHERE status IN ('pending', 'retrying') LIMIT $1) x),
  (SELECT min(h.run_at) FROM groups g CROSS JOIN LATERAL (
      SELECT run_at FROM tasks
      WHERE ", group!(), " = g.k AND status IN ('pending', 'retrying') AND run_at <= now()
      ORDER BY claim_at, id LIMIT 1) h),
  (SELECT min(next_attempt_at) FROM domain_events
    WHERE status IN ('pending', 'retrying') AND next_attempt_at <= now()),
  now()"
);

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
