//! Database resolution: decides which PostgreSQL database Campus uses, with no configuration
//! needed. This module owns the order of preference (the configured `DATABASE_URL`, then a
//! local server through its Unix-domain socket, then on `localhost:5432`, then a private
//! cluster started from the PostgreSQL server binaries installed on the machine), the creation
//! of the database when it is missing, and the life cycle of that private cluster: its
//! generated passwords (`<data_dir>/pgpass`, mode 0600), scram-sha-256 for every connection,
//! the non-superuser role `campus` that owns its database, and the in-place upgrade of clusters
//! made by older versions with `trust` auth.
//!
//! - `connect`: one-off connections, creating a missing database, quoting, URL redaction;
//! - `embedded`: initialising, starting and stopping the private cluster;
//! - `provision`: the app's role, its ownership of the database, closing `trust`;
//! - `passwords`: the cluster's generated passwords and their file;
//! - `process`: finding the server binaries and running them (as `postgres` under root).

mod connect;
mod embedded;
mod passwords;
mod process;
mod provision;
#[cfg(test)]
mod tests;

pub use connect::redact_url;
pub use embedded::EmbeddedPostgres;

use connect::ensure_database;
use embedded::start_embedded;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The server tried when no database is configured and no local socket answers.
const LOCAL_SERVER_URL: &str = "postgres://postgres@localhost:5432/campus";
/// Where a local server's Unix-domain socket for port 5432 may be (Debian's directory, then the
/// upstream default), tried before TCP: each round trip through a socket costs the machine less
/// than through loopback TCP, which on 2 cores decides the API's tail (docs/PERFORMANCE.md).
const LOCAL_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];
/// The database the private cluster serves.
const EMBEDDED_DATABASE: &str = "campus";
/// The fixed port of the private cluster, away from the usual 5432.
const EMBEDDED_PORT: u16 = 54329;
/// The superuser of the private cluster, and the system user it runs as when Campus runs as root.
const POSTGRES_USER: &str = "postgres";
/// The role the app connects to the private cluster as: it owns the database, nothing more.
const APP_ROLE: &str = "campus";
/// The private cluster's passwords, under the data directory (libpq's password-file format).
const PASSWORD_FILE: &str = "pgpass";
/// The advisory lock that keeps two starting processes from preparing the cluster at once.
const PROVISIONING_LOCK: i64 = 0x4341_4d50_5553_0001;
/// The pg_hba.conf that replaces one trusting every local connection: a password, always.
const SCRAM_HBA: &str = "\
# Written by Campus: every connection needs a password (scram-sha-256); see <data dir>/pgpass.
# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
";

const CONFIGURED_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const EMBEDDED_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLSTATE `invalid_catalog_name`: the database does not exist.
const UNDEFINED_DATABASE: &str = "3D000";
/// SQLSTATE `duplicate_database`: someone else created it first.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE `invalid_password`: password authentication failed.
const INVALID_PASSWORD: &str = "28P01";
/// SQLSTATE `unique_violation`: what a `CREATE DATABASE` racing another one can also report.
const UNIQUE_VIOLATION: &str = "23505";

/// Longest path a Unix-domain socket address can hold (`sun_path` less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How much of the server log a failed start quotes.
const LOG_TAIL_LINES: usize = 15;

/// Where the database came from, for the start-up banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSource {
    /// `DATABASE_URL` was set.
    Configured,
    /// A PostgreSQL server was answering on its local Unix-domain socket or on `localhost:5432`.
    LocalServer,
    /// A private cluster, started by Campus, whose files live in `data_dir`.
    Embedded { data_dir: PathBuf },
}

/// A resolved database: the URL to connect to, and the embedded cluster if one was started.
///
/// The cluster is *not* stopped when this value is dropped: the process that started it stops it
/// explicitly with [`EmbeddedPostgres::stop`] at shutdown.
pub struct ResolvedDatabase {
    pub url: String,
    pub source: DatabaseSource,
    pub embedded: Option<EmbeddedPostgres>,
}

impl fmt::Debug for ResolvedDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResolvedDatabase")
            .field("url", &redact_url(&self.url))
            .field("source", &self.source)
            .field("embedded", &self.embedded)
            .finish()
    }
}

/// Why no database could be resolved. URLs in messages never carry passwords.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot connect to {url}: no answer within {} s", .timeout.as_secs())]
    ConnectTimeout { url: String, timeout: Duration },
    #[error("cannot create the database \"{name}\" on {url}: {source}")]
    CreateDatabase {
        name: String,
        url: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "no DATABASE_URL is set, no local PostgreSQL server answers (socket or localhost:5432), \
         and no PostgreSQL server binaries (initdb, pg_ctl) were found to start a private \
         cluster: install them (e.g. `apt-get install postgresql`) or set DATABASE_URL"
    )]
    NoServerBinaries,
    #[error(
        "the postgres system user cannot write to {}: initdb and postgres refuse to run as root, \
         so the private cluster runs as postgres; make that directory and its parents reachable \
         by postgres, choose another data directory, or set DATABASE_URL",
        .data_dir.display()
    )]
    DataDirNotAccessible { data_dir: PathBuf },
    #[error(
        "the private PostgreSQL cluster in {} asks for passwords, but their file {} is missing: \
         restore it, or move the cluster away to start a new one, or set DATABASE_URL",
        .pgdata.display(), .pgpass.display()
    )]
    MissingPasswordFile { pgpass: PathBuf, pgdata: PathBuf },
    #[error(
        "the private PostgreSQL cluster refuses the superuser password kept in {} ({detail}): \
         restore the file that belongs to this cluster, or set DATABASE_URL",
        .pgpass.display()
    )]
    WrongPasswords { pgpass: PathBuf, detail: String },
    #[error("cannot prepare the private PostgreSQL cluster ({step}): {source}")]
    Provision {
        step: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

/// Resolves the database Campus uses:
///
/// 1. `configured` (`DATABASE_URL`), if any: the database it names is created if missing.
/// 2. Otherwise a local server (user `postgres`), through its Unix-domain socket for port 5432
///    when one is there (see [`LOCAL_SOCKET_DIRS`]), else on `localhost:5432`, with a `campus`
///    database created if missing.
/// 3. Otherwise a private cluster in `<data_dir>/pgdata`, initialised once and started on
///    `127.0.0.1:54329` from the PostgreSQL server binaries installed on the machine (as the
///    `postgres` system user when running as root); its log goes to `<data_dir>/postgres.log`,
///    its passwords to `<data_dir>/pgpass`, and the URL is the role `campus`'s, with its password,
///    through the cluster's socket in `pgdata` when it has one there.
pub async fn resolve(
    configured: Option<&str>,
    data_dir: &Path,
) -> Result<ResolvedDatabase, DatabaseError> {
    if let Some(url) = configured.map(str::trim).filter(|url| !url.is_empty()) {
        ensure_database(url, CONFIGURED_CONNECT_TIMEOUT).await?;
        return Ok(ResolvedDatabase {
            url: url.to_string(),
            source: DatabaseSource::Configured,
            embedded: None,
        });
    }
    for (url, place) in local_server_urls(&LOCAL_SOCKET_DIRS) {
        match ensure_database(&url, LOCAL_CONNECT_TIMEOUT).await {
            Ok(()) => {
                return Ok(ResolvedDatabase {
                    url,
                    source: DatabaseSource::LocalServer,
                    embedded: None,
                })
            }
            Err(error) => tracing::info!("no usable PostgreSQL server on {place} ({error})"),
        }
    }
    start_embedded(data_dir, EMBEDDED_PORT).await
}

/// The URLs (and where each goes, for messages) that a start without configuration tries for
/// a local server, in order: the socket in each of `socket_dirs` that holds one, then TCP.
fn local_server_urls(socket_dirs: &[&str]) -> Vec<(String, String)> {
    socket_dirs
        .iter()
        .filter(|dir| Path::new(dir).join(".s.PGSQL.5432").exists())
        .map(|dir| {
            let url = format!("postgres://postgres@localhost/{EMBEDDED_DATABASE}?host={dir}");
            (url, format!("the socket in {dir}"))
        })
        .chain([(LOCAL_SERVER_URL.to_string(), "localhost:5432".to_string())])
        .collect()
}
