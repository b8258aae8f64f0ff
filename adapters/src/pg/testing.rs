//! Fresh, migrated databases for tests and benchmarks (one per test or run, dropped by the
//! caller).

use super::{connect, db_err, migrate};
use campus_ports::PortError;
use sqlx::PgPool;

/// The server tests use: `CAMPUS_TEST_DATABASE_URL`, else `DATABASE_URL`, else the local
/// PostgreSQL with the `postgres` user.
pub fn server_url() -> String {
    std::env::var("CAMPUS_TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new empty database on the test server, with every migration applied. Returns its URL
/// and a pool.
pub async fn fresh_database(prefix: &str) -> Result<(String, PgPool), PortError> {
    fresh_database_on(&server_url(), prefix).await
}

/// Like [`fresh_database`], on the server of `server` (any database URL of that server).
pub async fn fresh_database_on(server: &str, prefix: &str) -> Result<(String, PgPool), PortError> {
    let server = server.to_string();
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(&server, 1).await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await
        .map_err(db_err)?;
    admin.close().await;
    let url = with_database(&server, &name);
    let pool = connect(&url, 10).await?;
    migrate(&pool).await?;
    Ok((url, pool))
}

/// Drops a database made by [`fresh_database`] (closing its connections first).
pub async fn drop_database(url: &str) -> Result<(), PortError> {
    let Some(name) = url
        .rsplit('/')
        .next()
        .map(|n| n.split('?').next().unwrap_or(n).to_string())
    else {
        return Ok(());
    };
    let admin = connect(&with_database(url, "postgres"), 1).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&admin)
        .await
        .map_err(db_err)?;
    admin.close().await;
    Ok(())
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |j| j + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://u@h:5432/postgres", "x"),
            "postgres://u@h:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://u@h:5432", "x"),
            "postgres://u@h:5432/x"
        );
    }
}
