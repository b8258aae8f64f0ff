//! PostgreSQL adapter (sqlx). `PgStore` implements every repository port plus the event
//! store and the task queue; writes that record events insert them in the same transaction
//! (see `outbox`) and send a debounced NOTIFY after commit (see `notify`). `cluster` decides
//! which database Campus uses (and runs a private cluster if it must); `testing` (feature
//! `testing`) and `bench` (feature `bench`) serve the tests and `campus bench`.

/// The group a task is claimed in: its institution, or the nil uuid for tasks of none.
/// Statements that should read `tasks_claim` by group write exactly this expression, the
/// index's (migration 0017). Defined before the modules so that all of them see it.
macro_rules! group {
    () => {
        "COALESCE(institution_id, '00000000-0000-0000-0000-000000000000'::uuid)"
    };
}

/// A recursive CTE `groups(k)` of the groups with waiting tasks, found by skipping along
/// `tasks_claim` from one group to the next (one index descent each, whatever their backlog),
/// starting after the group of tasks without institution (the nil uuid, the smallest: always
/// listed, so no statement walks that group's finished entries to find it). The last row's
/// `k` is NULL. Write it after `WITH RECURSIVE`.
macro_rules! waiting_groups {
    () => {
        concat!(
            "groups(k) AS (
                SELECT '00000000-0000-0000-0000-000000000000'::uuid
                UNION ALL
                SELECT (SELECT ",
            group!(),
            " FROM tasks
                        WHERE status IN ('pending', 'retrying') AND ",
            group!(),
            " > g.k ORDER BY 1 LIMIT 1)
                FROM groups g WHERE g.k IS NOT NULL
             )"
        )
    };
}

mod academic;
mod admin;
mod archive;
#[cfg(feature = "bench")]
pub mod bench;
pub mod cluster;
mod controls;
mod demo;
#[cfg(test)]
mod engine_tests;
mod events;
mod gauges;
mod leader;
pub mod notify;
mod outbox;
mod reprocess;
mod roster;
#[cfg(any(test, feature = "testing", feature = "bench"))]
mod scratch;
mod search;
mod sessions;
mod tasks;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod users;
mod webhooks;

pub use leader::PgLeaderLock;
pub use notify::{Channel, Notifier, PgWakeUps};

use campus_ports::PortError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// Opens a pool. Errors: `Unavailable` with a readable reason.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, PortError> {
    open_pool(connect_options(url)?, max_connections).await
}

fn connect_options(url: &str) -> Result<PgConnectOptions, PortError> {
    PgConnectOptions::from_str(url)
        .map_err(|e| PortError::Unavailable(format!("invalid DATABASE_URL: {e}")))
}

async fn open_pool(options: PgConnectOptions, max_connections: u32) -> Result<PgPool, PortError> {
    pool_options(max_connections)
        .connect_with(options)
        .await
        .map_err(db_err)
}

fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
}

/// How many connections [`connect_warm`] opens up front and keeps open.
pub const WARM_CONNECTIONS: u32 = 8;

/// Opens a pool like [`connect`] that opens up to [`WARM_CONNECTIONS`] connections before it
/// returns and keeps them open while idle (sqlx's `min_connections`). A pool that opens
/// connections only when asked makes the first requests after a start wait for them: each
/// new connection costs a server process and its setup. Measured in the bench's API phase: the
/// reset-token p99 of the first second went from a median of 82 ms to 15 ms
/// (docs/PERFORMANCE.md).
pub async fn connect_warm(url: &str, max_connections: u32) -> Result<PgPool, PortError> {
    pool_options(max_connections)
        .min_connections(max_connections.min(WARM_CONNECTIONS))
        .connect_with(connect_options(url)?)
        .await
        .map_err(db_err)
}

/// Opens the pool of the admin screen's and `/adm` API's reads: every statement is cancelled
/// after `statement_timeout`, so an expensive filter cannot hold a connection (nor the
/// database) for long, and being a pool of its own, slow reads never take the connections
/// of the API's writes and the handlers.
pub async fn connect_admin(
    url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> Result<PgPool, PortError> {
    let timeout = statement_timeout.as_millis().max(1).to_string();
    let options = connect_options(url)?.options([("statement_timeout", timeout.as_str())]);
    open_pool(options, max_connections).await
}

/// Opens the pool of the engine's own bookkeeping (dispatch, claims, completions, leases)
/// with `synchronous_commit = off`: a crash of PostgreSQL may forget the last few hundred
/// milliseconds of that bookkeeping, which only means some work is done again — dispatch is
/// idempotent (unique task keys), claims come back through lease expiry, and handlers are
/// idempotent per lineage. Entity writes and their events never use this pool.
///
/// Its sessions also run with `enable_sort = off` and `enable_seqscan = off`. A queue's
/// statistics are always stale (autovacuum may last have looked when the backlog was empty or
/// nothing ran), and with them the planner would sort the whole backlog for every claim, or
/// scan the table once per completed batch, instead of reading the index every engine
/// statement is written for (measured: 3 to 5 times slower drains). Both stay possible where
/// no index serves a query; they are only priced out. JIT is off: a priced-out sort would
/// otherwise make a claim's plan look expensive enough to compile (tens of milliseconds).
pub async fn connect_engine(url: &str, max_connections: u32) -> Result<PgPool, PortError> {
    let options = connect_options(url)?.options([
        ("synchronous_commit", "off"),
        ("enable_sort", "off"),
        ("enable_seqscan", "off"),
        ("jit", "off"),
    ]);
    open_pool(options, max_connections).await
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), PortError> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| PortError::Unavailable(format!("migrations failed: {e}")))
}

/// Whether every embedded migration is applied (for readiness checks).
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, PortError> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
            .map_err(db_err)?;
    Ok(MIGRATOR.iter().all(|m| applied.contains(&m.version)))
}

#[async_trait::async_trait]
impl campus_ports::Readiness for PgStore {
    async fn schema_ready(&self) -> Result<bool, PortError> {
        migrations_applied(&self.pool).await
    }
}

/// Maps sqlx errors to the port error at the adapter boundary.
pub(crate) fn db_err(e: sqlx::Error) -> PortError {
    if let Some(db) = e.as_database_error() {
        if db.code().as_deref() == Some("23505") {
            return PortError::Conflict(format!(
                "duplicate value ({})",
                db.constraint().unwrap_or("unique")
            ));
        }
    }
    PortError::Unavailable(format!("database: {e}"))
}

/// Whether the error is a unique violation of `constraint`.
pub(crate) fn is_unique_violation(e: &sqlx::Error, constraint: &str) -> bool {
    e.as_database_error().is_some_and(|db| {
        db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
    })
}

/// Repositories, event store and task queue over one pool.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    notifier: Notifier,
    /// What one priority level is worth in waiting (`campus_core::engine::scheduling`).
    priority_lag: Duration,
    /// Where each worker's next claim starts.
    claim_cursors: std::sync::Arc<tasks::ClaimCursors>,
}

impl PgStore {
    pub fn new(pool: PgPool, notifier: Notifier) -> Self {
        PgStore {
            pool,
            notifier,
            priority_lag: campus_core::engine::DEFAULT_PRIORITY_LAG,
            claim_cursors: Default::default(),
        }
    }

    /// The same store, giving tasks it inserts their turn with `lag` per priority level.
    pub fn with_priority_lag(self, lag: Duration) -> Self {
        PgStore {
            priority_lag: lag,
            ..self
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }
}

impl PgStore {
    /// Makes sure this process's master keys agree with those of the processes that used
    /// this database before: it records each key's fingerprint (never the key) on first
    /// sight, and refuses a key id whose secret differs, or a set of keys sharing no key with
    /// the recorded ones. Safe when several processes start at once.
    /// Errors: `Conflict` saying which keys differ; `Unavailable`.
    pub async fn check_key_fingerprints(
        &self,
        fingerprints: &[(String, String)],
    ) -> Result<(), PortError> {
        let known: Vec<(String, String)> = sqlx::query_as(
            "SELECT substr(key, 17), value FROM settings WHERE key LIKE 'key_fingerprint:%'",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        if !known.is_empty()
            && !fingerprints
                .iter()
                .any(|(kid, _)| known.iter().any(|(k, _)| k == kid))
        {
            let known: Vec<_> = known.iter().map(|(k, _)| k.as_str()).collect();
            let ours: Vec<_> = fingerprints.iter().map(|(k, _)| k.as_str()).collect();
            return Err(PortError::Conflict(format!(
                "this database was used with the key(s) {} and this process has {}: start every \
                 API and daemon with the same CAMPUS_JWT_SECRET (to rotate, list the new key \
                 first and keep the old one after it: new:…,old:…)",
                known.join(", "),
                ours.join(", ")
            )));
        }
        for (kid, fingerprint) in fingerprints {
            let stored: String = sqlx::query_scalar(
                "INSERT INTO settings (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET key = EXCLUDED.key RETURNING value",
            )
            .bind(format!("key_fingerprint:{kid}"))
            .bind(fingerprint)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
            if stored != *fingerprint {
                return Err(PortError::Conflict(format!(
                    "the key {kid} of CAMPUS_JWT_SECRET is not the one the other processes on \
                     this database use (its fingerprint differs): start every API and daemon \
                     with the same CAMPUS_JWT_SECRET"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::testing::{drop_database, fresh_database};

    async fn server_connections(pool: &PgPool) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    }

    /// A warm pool has its connections open before the first request asks for one, and at
    /// most as many as it may have; a plain pool opens one.
    #[tokio::test]
    async fn a_warm_pool_opens_its_connections_up_front() {
        let (url, observer) = fresh_database("campus_warm").await.unwrap();
        let plain = connect(&url, 20).await.unwrap();
        assert_eq!(plain.size(), 1);
        plain.close().await;

        let warm = connect_warm(&url, 20).await.unwrap();
        assert_eq!(warm.size(), WARM_CONNECTIONS);
        assert_eq!(
            server_connections(&observer).await,
            i64::from(WARM_CONNECTIONS),
            "the server sees the warm connections (the observer's own excluded)"
        );
        warm.close().await;

        let small = connect_warm(&url, 3).await.unwrap();
        assert_eq!(small.size(), 3, "never more than the pool may have");
        small.close().await;
        observer.close().await;
        drop_database(&url).await.unwrap();
    }
}
