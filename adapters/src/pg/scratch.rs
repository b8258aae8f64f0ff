//! Scratch databases: new, migrated databases named `<prefix>_<UUIDv7>` on a given server,
//! dropped by whoever made them (tests and `campus bench`), and the sweep of those a failed run
//! left behind. Compiled for tests and for the `testing` and `bench` features only.

use super::{connect, db_err, migrate};
use campus_ports::PortError;
use sqlx::PgPool;

/// A new empty database on the server of `server` (any database URL of that server), with
/// every migration applied; returns its URL and a pool of 10 connections.
pub async fn fresh_database_on(server: &str, prefix: &str) -> Result<(String, PgPool), PortError> {
    create_database(server, prefix, 10).await
}

pub(crate) async fn create_database(
    server: &str,
    prefix: &str,
    connections: u32,
) -> Result<(String, PgPool), PortError> {
    let server = server.to_string();
    // A UUIDv7 suffix: the name says when the database was made (see `sweep_stale`).
    let name = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    let admin = connect(&server, 1).await?;
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        sweep_stale(&admin).await;
    }
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await
        .map_err(db_err)?;
    admin.close().await;
    let url = with_database(&server, &name);
    let made = async {
        let pool = connect(&url, connections).await?;
        migrate(&pool).await?;
        Ok(pool)
    }
    .await;
    match made {
        Ok(pool) => Ok((url, pool)),
        Err(e) => {
            let _ = drop_database(&url).await;
            Err(e)
        }
    }
}

/// How old an unused scratch database must be before a later run drops it.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Drops scratch databases that failed runs left behind: named `<prefix>_<UUIDv7>` by
/// [`create_database`], made more than [`STALE_AFTER`] ago (the UUID's timestamp) and with
/// nobody connected. Test processes run concurrently on one server, so a young or used
/// database is never touched, nor any name without a version-7 UUID. Best effort: errors
/// (e.g. a role that may not drop) are ignored.
async fn sweep_stale(admin: &PgPool) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database d
         WHERE datname ~ '^campus_[a-z0-9_]*_[0-9a-f]{32}$'
           AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
    )
    .fetch_all(admin)
    .await
    else {
        return;
    };
    let now = std::time::SystemTime::now();
    for name in names {
        if made_at(&name).is_some_and(|t| now.duration_since(t).unwrap_or_default() > STALE_AFTER) {
            // No FORCE: should someone connect meanwhile, the drop fails and the database stays.
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
                .execute(admin)
                .await;
        }
    }
}

/// When a scratch database named `<prefix>_<UUIDv7>` was made.
fn made_at(name: &str) -> Option<std::time::SystemTime> {
    let suffix = name.rsplit('_').next()?;
    let id = uuid::Uuid::try_parse(suffix).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos))
}

/// Drops a database made by [`create_database`] (closing its connections first).
pub async fn drop_database(url: &str) -> Result<(), PortError> {
    let Some(name) = database_name(url) else {
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

/// The database `url` names, if any.
fn database_name(url: &str) -> Option<&str> {
    split_database(url).1
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    match split_database(url) {
        (server, _, Some(query)) => format!("{server}/{name}?{query}"),
        (server, _, None) => format!("{server}/{name}"),
    }
}

/// `url` split around its database name: what comes before it, the name (none when the path is
/// empty) and the query. The name is read before the query, whose values (a socket directory
/// in `host=`) may hold slashes too.
fn split_database(url: &str) -> (&str, Option<&str>, Option<&str>) {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |j| j + 2) => {
            let name = &base[i + 1..];
            (&base[..i], (!name.is_empty()).then_some(name), query)
        }
        _ => (base, None, query),
    }
}

#[cfg(test)]
mod tests {
    use super::{database_name, made_at, with_database};

    #[test]
    fn scratch_names_say_when_they_were_made() {
        let id = uuid::Uuid::now_v7();
        let made = made_at(&format!("campus_e2e_{}", id.simple())).expect("a v7 name");
        let age = std::time::SystemTime::now()
            .duration_since(made)
            .unwrap_or_default();
        assert!(age < std::time::Duration::from_secs(60), "{age:?}");
        let v4 = uuid::Uuid::new_v4();
        assert_eq!(made_at(&format!("campus_e2e_{}", v4.simple())), None);
        assert_eq!(made_at("campus"), None);
    }

    #[test]
    fn reads_the_database_name_before_the_query() {
        let socket = "postgres://postgres@localhost/campus_bench_1?host=/var/run/postgresql";
        assert_eq!(database_name(socket), Some("campus_bench_1"));
        assert_eq!(
            database_name("postgres://u:p@h:5432/x?sslmode=disable"),
            Some("x")
        );
        assert_eq!(database_name("postgres://u@h:5432/x"), Some("x"));
        assert_eq!(database_name("postgres://u@h:5432"), None);
        assert_eq!(database_name("postgres://u@h:5432/?host=/tmp"), None);
    }

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
