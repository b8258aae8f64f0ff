//! Provisioning of the private cluster: the superuser's password, the app's non-superuser role
//! owning its database and every object in it, and the end of `trust` in pg_hba.conf.

use super::connect::{close, connect, has_sqlstate, quote_identifier, quote_literal, redact_url};
use super::embedded::socket_dir;
use super::passwords::ClusterPasswords;
use super::{
    DatabaseError, APP_ROLE, EMBEDDED_CONNECT_TIMEOUT, EMBEDDED_DATABASE, INVALID_PASSWORD,
    POSTGRES_USER, PROVISIONING_LOCK, SCRAM_HBA,
};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

/// Makes sure the app can connect to the private cluster as its own role, and returns its URL.
///
/// When the app's role already connects with its password and pg_hba.conf trusts no one, that
/// is all. Otherwise, as the superuser and one process at a time (an advisory lock): set the
/// superuser's password; create (or fix) the role `campus` — LOGIN, CREATEDB (for `campus
/// bench`'s scratch databases), not superuser; make it the owner of the `campus` database and
/// of every object in it (a cluster made by older versions has them owned by `postgres`); and,
/// if pg_hba.conf has `trust` lines, replace it with scram-sha-256 for every connection, reload
/// and wait until the server refuses a connection without a password.
pub(super) async fn provision(
    passwords: &ClusterPasswords,
    pgdata: &Path,
    pgpass: &Path,
    port: u16,
) -> Result<String, DatabaseError> {
    let url = app_url(&passwords.app, pgdata, port);
    let shown = redact_url(&url);
    let app = PgConnectOptions::from_str(&url).map_err(|error| DatabaseError::InvalidUrl {
        url: shown.clone(),
        reason: error.to_string(),
    })?;
    let trusting = hba_trusts(pgdata)?;
    if !trusting {
        match connect(&app, &shown, EMBEDDED_CONNECT_TIMEOUT).await {
            Ok(connection) => {
                close(connection).await;
                return Ok(url);
            }
            Err(error) => {
                tracing::info!("preparing the app's role in the private cluster ({error})")
            }
        }
    }

    let superuser = cluster_options(port, POSTGRES_USER, "postgres").password(&passwords.superuser);
    let superuser_shown = format!("postgres://{POSTGRES_USER}:***@127.0.0.1:{port}/postgres");
    let mut admin = connect(&superuser, &superuser_shown, EMBEDDED_CONNECT_TIMEOUT)
        .await
        .map_err(|error| match error {
            DatabaseError::Connect { source, .. } if has_sqlstate(&source, INVALID_PASSWORD) => {
                DatabaseError::WrongPasswords {
                    pgpass: pgpass.to_path_buf(),
                    detail: source.to_string(),
                }
            }
            other => other,
        })?;
    let prepared = prepare_roles(&mut admin, passwords).await;
    let prepared = match prepared {
        Ok(()) => {
            let database = superuser.clone().database(EMBEDDED_DATABASE);
            match connect(&database, &superuser_shown, EMBEDDED_CONNECT_TIMEOUT).await {
                Ok(mut connection) => {
                    let owned = sqlx::raw_sql(&reassign_objects_sql())
                        .execute(&mut connection)
                        .await
                        .map(drop)
                        .map_err(|source| {
                            provision_error("give the app's role its objects", source)
                        });
                    close(connection).await;
                    owned
                }
                Err(error) => Err(error),
            }
        }
        Err(error) => Err(error),
    };
    let prepared = match prepared {
        Ok(()) if trusting => close_trust(&mut admin, pgdata, port).await,
        other => other,
    };
    close(admin).await;
    prepared?;

    let connection = connect(&app, &shown, EMBEDDED_CONNECT_TIMEOUT).await?;
    close(connection).await;
    Ok(url)
}

/// Sets the superuser's password, creates or fixes the app's role, and gives it the database.
/// Statements carrying passwords are kept out of the server log.
async fn prepare_roles(
    admin: &mut PgConnection,
    passwords: &ClusterPasswords,
) -> Result<(), DatabaseError> {
    sqlx::raw_sql(
        "SET log_statement = 'none';
         SET log_min_error_statement = 'panic';
         SET log_min_duration_statement = -1;
         SET password_encryption = 'scram-sha-256';",
    )
    .execute(&mut *admin)
    .await
    .map_err(|source| provision_error("configure the session", source))?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(PROVISIONING_LOCK)
        .execute(&mut *admin)
        .await
        .map_err(|source| provision_error("wait for other Campus processes", source))?;
    let statement = format!(
        "ALTER ROLE {} PASSWORD {}",
        quote_identifier(POSTGRES_USER),
        quote_literal(&passwords.superuser)
    );
    sqlx::raw_sql(&statement)
        .execute(&mut *admin)
        .await
        .map_err(|source| provision_error("set the superuser's password", source))?;
    let role_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(APP_ROLE)
            .fetch_one(&mut *admin)
            .await
            .map_err(|source| provision_error("look for the app's role", source))?;
    let statement = format!(
        "{} ROLE {} LOGIN NOSUPERUSER NOCREATEROLE CREATEDB NOREPLICATION NOBYPASSRLS PASSWORD {}",
        if role_exists { "ALTER" } else { "CREATE" },
        quote_identifier(APP_ROLE),
        quote_literal(&passwords.app)
    );
    sqlx::raw_sql(&statement)
        .execute(&mut *admin)
        .await
        .map_err(|source| provision_error("create the app's role", source))?;
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(EMBEDDED_DATABASE)
    .fetch_optional(&mut *admin)
    .await
    .map_err(|source| provision_error("look for the database", source))?;
    let statement = match owner {
        None => format!(
            "CREATE DATABASE {} OWNER {}",
            quote_identifier(EMBEDDED_DATABASE),
            quote_identifier(APP_ROLE)
        ),
        Some(owner) if owner != APP_ROLE => format!(
            "ALTER DATABASE {} OWNER TO {}",
            quote_identifier(EMBEDDED_DATABASE),
            quote_identifier(APP_ROLE)
        ),
        Some(_) => return Ok(()),
    };
    sqlx::raw_sql(&statement)
        .execute(&mut *admin)
        .await
        .map_err(|source| provision_error("give the database to the app's role", source))?;
    tracing::info!("the database \"{EMBEDDED_DATABASE}\" of the private cluster belongs to the role \"{APP_ROLE}\"");
    Ok(())
}

/// A DO block that makes the app's role the owner of every schema, relation, routine and type
/// of the current database that a superuser or another role owns (system schemas aside).
/// Sequences owned by a column follow their table.
fn reassign_objects_sql() -> String {
    let role = quote_identifier(APP_ROLE);
    format!(
        r#"DO $campus$
DECLARE
    app oid := {role_literal}::regrole;
    item record;
BEGIN
    FOR item IN
        SELECT n.oid::regnamespace AS name FROM pg_namespace n
        WHERE n.nspowner <> app AND n.nspowner <> 'pg_database_owner'::regrole
          AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER SCHEMA %s OWNER TO {role}', item.name);
    END LOOP;
    FOR item IN
        SELECT c.oid::regclass AS name FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relowner <> app AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
          AND NOT (c.relkind = 'S' AND EXISTS (
              SELECT 1 FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO {role}', item.name);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS name FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.proowner <> app
          AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO {role}', item.name);
    END LOOP;
    FOR item IN
        SELECT t.oid::regtype AS name, t.typtype FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace
        LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typowner <> app AND t.typtype IN ('e', 'd', 'r', 'c')
          AND (t.typtype <> 'c' OR c.relkind = 'c')
          AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
    LOOP
        IF item.typtype = 'd' THEN
            EXECUTE format('ALTER DOMAIN %s OWNER TO {role}', item.name);
        ELSE
            EXECUTE format('ALTER TYPE %s OWNER TO {role}', item.name);
        END IF;
    END LOOP;
END
$campus$"#,
        role_literal = quote_literal(APP_ROLE),
    )
}

/// Replaces a pg_hba.conf that trusts connections with one that asks every connection for a
/// password, reloads the server and waits until it refuses the app's role without one.
async fn close_trust(
    admin: &mut PgConnection,
    pgdata: &Path,
    port: u16,
) -> Result<(), DatabaseError> {
    let hba = pgdata.join("pg_hba.conf");
    tracing::info!(
        "the private cluster trusted every local connection: {} now asks for passwords",
        hba.display()
    );
    // Writing into the existing file keeps its owner and mode.
    std::fs::write(&hba, SCRAM_HBA).map_err(|source| DatabaseError::Io {
        context: format!("cannot rewrite {}", hba.display()),
        source,
    })?;
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut *admin)
        .await
        .map_err(|source| provision_error("reload the configuration", source))?;
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT error FROM pg_hba_file_rules WHERE error IS NOT NULL")
            .fetch_all(&mut *admin)
            .await
            .map_err(|source| provision_error("check pg_hba.conf", source))?;
    if !errors.is_empty() {
        return Err(DatabaseError::Command {
            command: format!("reload {}", hba.display()),
            detail: errors.join("; "),
        });
    }
    // The postmaster applies a reload asynchronously: wait until it asks for a password.
    let without_password = cluster_options(port, APP_ROLE, EMBEDDED_DATABASE);
    let deadline = tokio::time::Instant::now() + EMBEDDED_CONNECT_TIMEOUT;
    loop {
        match PgConnection::connect_with(&without_password).await {
            Err(error) if error.as_database_error().is_some() => return Ok(()),
            Ok(connection) => close(connection).await,
            Err(_) => {}
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DatabaseError::Command {
                command: format!("reload {}", hba.display()),
                detail: "the server still accepts connections without a password".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether an active line of the cluster's pg_hba.conf uses the `trust` method.
pub(super) fn hba_trusts(pgdata: &Path) -> Result<bool, DatabaseError> {
    let hba = pgdata.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).map_err(|source| DatabaseError::Io {
        context: format!("cannot read {}", hba.display()),
        source,
    })?;
    Ok(text.lines().any(|line| {
        let line = line.split('#').next().unwrap_or_default();
        // local DATABASE USER METHOD …, host DATABASE USER ADDRESS [MASK] METHOD …
        line.split_whitespace().skip(3).any(|word| word == "trust")
    }))
}

/// The app's URL on the private cluster: through the cluster's socket when it has one whose
/// directory is absolute and needs no escaping in a URL (a socket costs each query less than
/// TCP), else on 127.0.0.1.
pub(super) fn app_url(password: &str, pgdata: &Path, port: u16) -> String {
    let plain = |dir: &&str| {
        dir.starts_with('/')
            && dir
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    };
    match socket_dir(pgdata, port)
        .and_then(Path::to_str)
        .filter(plain)
    {
        Some(dir) => format!(
            "postgres://{APP_ROLE}:{password}@localhost:{port}/{EMBEDDED_DATABASE}?host={dir}"
        ),
        None => format!("postgres://{APP_ROLE}:{password}@127.0.0.1:{port}/{EMBEDDED_DATABASE}"),
    }
}

/// Connection options for `user` on the private cluster, without a password.
pub(super) fn cluster_options(port: u16, user: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username(user)
        .database(database)
}

fn provision_error(step: &str, source: sqlx::Error) -> DatabaseError {
    DatabaseError::Provision {
        step: step.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::SCRAM_HBA;
    #[test]
    fn trust_is_found_only_in_active_lines() {
        let dir =
            std::env::temp_dir().join(format!("campus_hba_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create a directory");
        let hba = dir.join("pg_hba.conf");
        let cases = [
            (SCRAM_HBA, false),
            (
                "# trust nobody\nlocal all all scram-sha-256 # not trust\n",
                false,
            ),
            ("local all all trust\n", true),
            (
                "local all all scram-sha-256\nhost all all 127.0.0.1/32 trust\n",
                true,
            ),
            ("host all all 127.0.0.1 255.255.255.255 trust\n", true),
        ];
        let found: Vec<bool> = cases
            .iter()
            .map(|(text, _)| {
                std::fs::write(&hba, text).expect("write pg_hba.conf");
                hba_trusts(&dir).expect("read pg_hba.conf")
            })
            .collect();
        let _ = std::fs::remove_dir_all(&dir);
        let expected: Vec<bool> = cases.iter().map(|(_, trusts)| *trusts).collect();
        assert_eq!(found, expected);
    }
}
