//! Helpers of tests: the test server, fresh migrated databases on it (one per test, dropped by
//! the caller) and a guard that drops one when a test panics. Behind the `testing` feature
//! (the `tests` crate enables it; the `campus` binary does not).

pub use super::scratch::{drop_database, fresh_database_on, with_database};

use super::scratch::create_database;
use campus_ports::PortError;
use sqlx::PgPool;

/// The one variable naming the server every test uses (any database URL of that server).
pub const TEST_SERVER_VAR: &str = "CAMPUS_TEST_DATABASE_URL";

/// The server tests use: `CAMPUS_TEST_DATABASE_URL`, else the local PostgreSQL on
/// 127.0.0.1:5432 with the `postgres` user.
pub fn server_url() -> String {
    std::env::var(TEST_SERVER_VAR)
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Connections of a test's own pool: tests run in parallel against one server, whose
/// `max_connections` (100 by default) they share.
const TEST_POOL: u32 = 4;

/// A new empty database on the test server, with every migration applied. Returns its URL
/// and a small pool.
pub async fn fresh_database(prefix: &str) -> Result<(String, PgPool), PortError> {
    create_database(&server_url(), prefix, TEST_POOL).await
}

/// The URL of a scratch database that is dropped should the test panic before it drops the
/// database itself (derefs to the URL, so `drop_database(&guard)` works).
pub struct DropOnPanic(pub String);

impl std::ops::Deref for DropOnPanic {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for DropOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let url = self.0.clone();
        // On a thread of its own: the test's runtime may be the one unwinding.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(drop_database(&url)).ok()
        })
        .join();
    }
}
