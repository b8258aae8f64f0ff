//! The adapter sets this crate holds to the contract: PostgreSQL on a fresh database, and
//! the in-memory store on a manual clock.

use super::{Engine, Harness};
use crate::memory::{ManualClock, MemoryStore};
use crate::pg::notify::NOTIFY_WINDOW;
use crate::pg::testing::{drop_database, fresh_database, DropOnPanic};
use crate::pg::{Notifier, PgLeaderLock, PgStore, PgWakeUps};
use async_trait::async_trait;
use campus_core::Timestamp;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// PostgreSQL on a new migrated database, dropped by [`Harness::finish`] (or if the test
/// panics).
pub async fn postgres() -> Engine {
    let (url, pool) = fresh_database("campus_conformance")
        .await
        .expect("test database");
    let notifier = Notifier::spawn(pool.clone(), NOTIFY_WINDOW);
    let store = Arc::new(PgStore::new(pool.clone(), notifier));
    Engine {
        events: store.clone(),
        tasks: store.clone(),
        log: store.clone(),
        controls: store.clone(),
        users: store.clone(),
        sessions: store.clone(),
        sent: store.clone(),
        leader: Arc::new(PgLeaderLock::new(pool.clone())),
        wake_ups: Arc::new(PgWakeUps::new(pool.clone())),
        gauges: store.clone(),
        payloads: store.clone(),
        roster: store.clone(),
        webhooks: store.clone(),
        archive: store,
        harness: Box::new(PgHarness {
            url: DropOnPanic(url),
            pool,
        }),
    }
}

struct PgHarness {
    url: DropOnPanic,
    pool: PgPool,
}

#[async_trait]
impl Harness for PgHarness {
    /// Waits until the database's clock (which stamps every row) has moved `d` past the
    /// moment of the call.
    async fn advance(&self, d: Duration) {
        let target: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT clock_timestamp() + $1 * interval '1 microsecond'")
                .bind(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
                .fetch_one(&self.pool)
                .await
                .expect("database clock");
        loop {
            let left: f64 = sqlx::query_scalar(
                "SELECT EXTRACT(EPOCH FROM $1::timestamptz - clock_timestamp())::float8",
            )
            .bind(target)
            .fetch_one(&self.pool)
            .await
            .expect("database clock");
            if left <= 0.0 {
                return;
            }
            tokio::time::sleep(Duration::from_secs_f64(left)).await;
        }
    }

    fn exact_time(&self) -> bool {
        false
    }

    async fn now(&self) -> Timestamp {
        let now: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
            .fetch_one(&self.pool)
            .await
            .expect("database clock");
        Timestamp(now.timestamp_millis())
    }

    async fn reset(&self) {
        sqlx::query("TRUNCATE tasks, domain_events CASCADE")
            .execute(&self.pool)
            .await
            .expect("truncate");
    }

    async fn finish(&self) {
        self.pool.close().await;
        drop_database(&self.url).await.expect("drop test database");
    }
}

/// The in-memory store on a manual clock.
pub async fn memory() -> Engine {
    let (store, clock) = MemoryStore::with_manual_clock(Timestamp(1_700_000_000_000));
    let store = Arc::new(store);
    Engine {
        events: store.clone(),
        tasks: store.clone(),
        log: store.clone(),
        users: store.clone(),
        controls: store.clone(),
        leader: store.clone(),
        wake_ups: store.clone(),
        archive: store.clone(),
        gauges: store.clone(),
        payloads: store.clone(),
        roster: store.clone(),
        webhooks: store.clone(),
        sessions: store.clone(),
        sent: store.clone(),
        harness: Box::new(MemoryHarness { store, clock }),
    }
}

struct MemoryHarness {
    store: Arc<MemoryStore>,
    clock: ManualClock,
}

#[async_trait]
impl Harness for MemoryHarness {
    async fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }

    fn exact_time(&self) -> bool {
        true
    }

    async fn now(&self) -> Timestamp {
        self.store.now()
    }

    async fn reset(&self) {
        self.store.clear();
    }

    async fn finish(&self) {}
}
