//! The maintenance leader's lock: a session-level advisory lock held on a dedicated
//! connection. When the leader dies its connection closes, PostgreSQL drops the lock, and
//! another daemon's next try takes it.

use super::db_err;
use campus_ports::{LeaderLock, Leadership, PortError};
use sqlx::{Connection, PgConnection, PgPool};

/// The advisory-lock key of the maintenance leader ("campus" in ASCII).
const LEADER_LOCK: i64 = 0x6361_6d70_7573;

/// The `LeaderLock` port over a pool: each try detaches one connection from it.
#[derive(Clone)]
pub struct PgLeaderLock {
    pool: PgPool,
}

impl PgLeaderLock {
    pub fn new(pool: PgPool) -> Self {
        PgLeaderLock { pool }
    }
}

#[async_trait::async_trait]
impl LeaderLock for PgLeaderLock {
    async fn try_acquire(&self) -> Result<Option<Box<dyn Leadership>>, PortError> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?.detach();
        let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await
            .map_err(db_err)?;
        if won {
            Ok(Some(Box::new(PgLeadership(conn))))
        } else {
            let _ = conn.close().await;
            Ok(None)
        }
    }
}

/// The connection holding the lock.
struct PgLeadership(PgConnection);

#[async_trait::async_trait]
impl Leadership for PgLeadership {
    async fn still_held(&mut self) -> bool {
        match sqlx::query("SELECT 1").execute(&mut self.0).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "the maintenance leader's connection failed");
                false
            }
        }
    }

    async fn release(self: Box<Self>) {
        // Closing the session releases its advisory locks.
        let _ = self.0.close().await;
    }
}
