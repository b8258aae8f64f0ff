//! The roster of running daemons on PostgreSQL: one row per daemon in `daemons`, upserted by
//! each heartbeat (which also forgets rows silent for a day) and deleted when it stops.

use super::{db_err, PgStore};
use campus_core::Timestamp;
use campus_ports::{DaemonBeat, DaemonRoster, DaemonSeen, PortError};
use chrono::{DateTime, Utc};
use std::time::Duration;

const BEAT: &str = "
WITH forgotten AS (DELETE FROM daemons WHERE heard_at < now() - interval '1 day')
INSERT INTO daemons (worker_id, version, started_at, concurrency, running, leader, listening, heard_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now())
ON CONFLICT (worker_id) DO UPDATE SET
  version = EXCLUDED.version, started_at = EXCLUDED.started_at,
  concurrency = EXCLUDED.concurrency, running = EXCLUDED.running, leader = EXCLUDED.leader,
  listening = EXCLUDED.listening, heard_at = now()";

const HEARD: &str = "
SELECT worker_id, version, started_at, concurrency, running, leader, listening,
       (extract(epoch FROM now() - heard_at) * 1000)::bigint
  FROM daemons
 WHERE heard_at >= now() - make_interval(secs => $1)
 ORDER BY leader DESC, started_at, worker_id";

fn count(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[async_trait::async_trait]
impl DaemonRoster for PgStore {
    async fn beat(&self, beat: &DaemonBeat) -> Result<(), PortError> {
        let started = DateTime::<Utc>::from_timestamp_millis(beat.started_at.0).unwrap_or_default();
        sqlx::query(BEAT)
            .bind(&beat.worker_id)
            .bind(&beat.version)
            .bind(started)
            .bind(count(beat.concurrency))
            .bind(count(beat.running))
            .bind(beat.leader)
            .bind(beat.listening)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn left(&self, worker_id: &str) -> Result<(), PortError> {
        sqlx::query("DELETE FROM daemons WHERE worker_id = $1")
            .bind(worker_id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn heard_within(&self, within: Duration) -> Result<Vec<DaemonSeen>, PortError> {
        type Row = (String, String, DateTime<Utc>, i32, i32, bool, bool, i64);
        let rows: Vec<Row> = sqlx::query_as(HEARD)
            .bind(within.as_secs_f64())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(rows
            .into_iter()
            .map(
                |(worker_id, version, started, concurrency, running, leader, listening, ms)| {
                    DaemonSeen {
                        beat: DaemonBeat {
                            worker_id,
                            version,
                            started_at: Timestamp(started.timestamp_millis()),
                            concurrency: u32::try_from(concurrency).unwrap_or(0),
                            running: u32::try_from(running).unwrap_or(0),
                            leader,
                            listening,
                        },
                        silent_for: Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
                    }
                },
            )
            .collect())
    }
}
