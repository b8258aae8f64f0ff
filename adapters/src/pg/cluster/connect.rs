//! One-off connections to a server: connecting with a timeout, creating the database a URL
//! names when it is missing, quoting SQL names and literals, and hiding passwords in URLs.

use super::{DatabaseError, DUPLICATE_DATABASE, UNDEFINED_DATABASE, UNIQUE_VIOLATION};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use std::str::FromStr;
use std::time::Duration;

/// Connects to the database `url` names, creating it first if the server reports it missing.
pub(super) async fn ensure_database(url: &str, timeout: Duration) -> Result<(), DatabaseError> {
    let shown = redact_url(url);
    let options = PgConnectOptions::from_str(url).map_err(|error| DatabaseError::InvalidUrl {
        url: shown.clone(),
        reason: error.to_string(),
    })?;
    match connect(&options, &shown, timeout).await {
        Ok(connection) => {
            close(connection).await;
            return Ok(());
        }
        Err(DatabaseError::Connect { source, .. }) if has_sqlstate(&source, UNDEFINED_DATABASE) => {
        }
        Err(error) => return Err(error),
    }
    // Without a database in the URL, PostgreSQL uses the one named after the user.
    let name = options
        .get_database()
        .unwrap_or(options.get_username())
        .to_string();
    create_database(&options, &name, &shown, timeout).await?;
    let connection = connect(&options, &shown, timeout).await?;
    close(connection).await;
    Ok(())
}

/// Creates the database `name` from a maintenance database of the same server, with the same
/// credentials. A concurrent creation counts as success.
async fn create_database(
    options: &PgConnectOptions,
    name: &str,
    shown: &str,
    timeout: Duration,
) -> Result<(), DatabaseError> {
    let mut admin = connect(&options.clone().database("postgres"), shown, timeout).await;
    if matches!(&admin, Err(DatabaseError::Connect { source, .. }) if has_sqlstate(source, UNDEFINED_DATABASE))
    {
        admin = connect(&options.clone().database("template1"), shown, timeout).await;
    }
    let mut admin = admin?;
    let statement = format!("CREATE DATABASE {}", quote_identifier(name));
    let created = sqlx::raw_sql(&statement).execute(&mut admin).await;
    close(admin).await;
    match created {
        Ok(_) => {
            tracing::info!("created the database \"{name}\" on {shown}");
            Ok(())
        }
        Err(error)
            if has_sqlstate(&error, DUPLICATE_DATABASE)
                || has_sqlstate(&error, UNIQUE_VIOLATION) =>
        {
            Ok(())
        }
        Err(source) => Err(DatabaseError::CreateDatabase {
            name: name.to_string(),
            url: shown.to_string(),
            source,
        }),
    }
}

pub(super) async fn connect(
    options: &PgConnectOptions,
    shown: &str,
    timeout: Duration,
) -> Result<PgConnection, DatabaseError> {
    match tokio::time::timeout(timeout, PgConnection::connect_with(options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(DatabaseError::Connect {
            url: shown.to_string(),
            source,
        }),
        Err(_) => Err(DatabaseError::ConnectTimeout {
            url: shown.to_string(),
            timeout,
        }),
    }
}

/// Closes gracefully, so the server forgets the session before anyone drops the database.
pub(super) async fn close(connection: PgConnection) {
    if let Err(error) = connection.close().await {
        tracing::debug!("closing a one-off database connection: {error}");
    }
}

pub(super) fn has_sqlstate(error: &sqlx::Error, code: &str) -> bool {
    error
        .as_database_error()
        .and_then(|database_error| database_error.code())
        .is_some_and(|actual| actual == code)
}

/// `name` as a double-quoted SQL identifier.
pub(super) fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a single-quoted SQL string literal.
pub(super) fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `raw` with any password (in the user info or a `password=` parameter) replaced by `***`,
/// safe to print or log. Text that is no URL is returned as it is, unless it could hold
/// credentials (an `@` or the word "password"): then it is hidden whole.
pub fn redact_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        let suspicious = raw.contains('@') || raw.to_ascii_lowercase().contains("password");
        return if suspicious {
            "<unparsable URL, hidden>".to_string()
        } else {
            raw.to_string()
        };
    };
    if url.password().is_some() {
        // Only URLs that cannot have a password refuse one; this one has one.
        let _ = url.set_password(Some("***"));
    }
    if let Some(query) = url.query() {
        let redacted: Vec<String> = query
            .split('&')
            .map(|parameter| {
                let key = url::form_urlencoded::parse(parameter.as_bytes()).next();
                match key {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                        let raw_key = parameter.split('=').next().unwrap_or_default();
                        format!("{raw_key}=***")
                    }
                    _ => parameter.to_string(),
                }
            })
            .collect();
        url.set_query(Some(&redacted.join("&")));
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::{resolve, DatabaseSource};
    #[test]
    fn redact_url_hides_passwords() {
        assert_eq!(
            redact_url("postgres://campus:s3cret@db.example:5432/campus"),
            "postgres://campus:***@db.example:5432/campus"
        );
        assert_eq!(
            redact_url("postgres://campus:p@ss@db/campus"),
            "postgres://campus:***@db/campus"
        );
        assert_eq!(
            redact_url("postgres://db/campus?sslmode=require&password=s3cret#x"),
            "postgres://db/campus?sslmode=require&password=***#x"
        );
        assert_eq!(
            redact_url("postgres://campus@localhost/campus"),
            "postgres://campus@localhost/campus"
        );
        assert_eq!(redact_url("postgres://localhost"), "postgres://localhost");
        assert_eq!(redact_url("not a url"), "not a url");
        assert_eq!(
            redact_url("smtps://user:pass@smtp.example"),
            "smtps://user:***@smtp.example"
        );
        assert_eq!(
            redact_url("postgres://db/campus?PassWord=s3cret"),
            "postgres://db/campus?PassWord=***"
        );
        // Unparsable text that may carry credentials is hidden whole.
        assert_eq!(
            redact_url("postgres://campus:s3cret@db:no-port/campus"),
            "<unparsable URL, hidden>"
        );
    }

    #[test]
    fn quoting_escapes_embedded_quotes() {
        assert_eq!(quote_identifier("campus"), "\"campus\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }

    /// Needs the test server (`CAMPUS_TEST_DATABASE_URL`, default 127.0.0.1:5432, user
    /// postgres, trust auth).
    #[tokio::test]
    async fn resolve_creates_the_configured_database() {
        let name = format!("campus_dbtest_{}", uuid::Uuid::new_v4().simple());
        let server = crate::pg::testing::server_url();
        let url = crate::pg::testing::with_database(&server, &name);
        let data_dir = std::env::temp_dir().join(&name);

        let resolved = resolve(Some(&url), &data_dir)
            .await
            .expect("resolve creates the database");
        assert_eq!(resolved.url, url);
        assert_eq!(resolved.source, DatabaseSource::Configured);
        assert!(resolved.embedded.is_none());
        resolve(Some(&url), &data_dir)
            .await
            .expect("resolve accepts an existing database");
        assert!(
            !data_dir.exists(),
            "a configured database needs no data directory"
        );

        let mut admin = PgConnection::connect(&server)
            .await
            .expect("connect to the postgres database");
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut admin)
                .await
                .expect("query pg_database");
        let dropped = sqlx::raw_sql(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            quote_identifier(&name)
        ))
        .execute(&mut admin)
        .await;
        admin.close().await.expect("close");
        assert!(exists, "database {name} was not created");
        dropped.expect("drop the test database");
    }
}
