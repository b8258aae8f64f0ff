//! Database resolution: decides which PostgreSQL database Campus uses, with no configuration
//! needed. This module owns the order of preference (the configured `DATABASE_URL`, then a
//! server on `localhost:5432`, then a private cluster started from the PostgreSQL server
//! binaries installed on the machine), the creation of the database when it is missing, and the
//! life cycle of that private cluster: its generated passwords (`<data_dir>/pgpass`, mode
//! 0600), scram-sha-256 for every connection, the non-superuser role `campus` that owns its
//! database, and the in-place upgrade of clusters made by older versions with `trust` auth.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The server tried when no database is configured.
const LOCAL_SERVER_URL: &str = "postgres://postgres@localhost:5432/campus";
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
    /// A PostgreSQL server was answering on `localhost:5432`.
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
        "no DATABASE_URL is set, no PostgreSQL server answers on localhost:5432, and no PostgreSQL \
         server binaries (initdb, pg_ctl) were found to start a private cluster: install them \
         (e.g. `apt-get install postgresql`) or set DATABASE_URL"
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
/// 2. Otherwise a server on `localhost:5432` (user `postgres`), with a `campus` database created
///    if missing.
/// 3. Otherwise a private cluster in `<data_dir>/pgdata`, initialised once and started on
///    `127.0.0.1:54329` from the PostgreSQL server binaries installed on the machine (as the
///    `postgres` system user when running as root); its log goes to `<data_dir>/postgres.log`,
///    its passwords to `<data_dir>/pgpass`, and the URL is the role `campus`'s, with its password.
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
    match ensure_database(LOCAL_SERVER_URL, LOCAL_CONNECT_TIMEOUT).await {
        Ok(()) => {
            return Ok(ResolvedDatabase {
                url: LOCAL_SERVER_URL.to_string(),
                source: DatabaseSource::LocalServer,
                embedded: None,
            })
        }
        Err(error) => tracing::info!("no usable PostgreSQL server on localhost:5432 ({error})"),
    }
    start_embedded(data_dir, EMBEDDED_PORT).await
}

/// A private PostgreSQL cluster started from the server binaries installed on the machine.
///
/// Dropping it leaves the server running; call [`EmbeddedPostgres::stop`] at shutdown.
#[derive(Debug)]
pub struct EmbeddedPostgres {
    pg_ctl: PathBuf,
    data_dir: PathBuf,
    run_as: RunAs,
    /// Whether this process started the server (rather than finding it already running).
    started_here: bool,
    stopped: AtomicBool,
}

impl EmbeddedPostgres {
    /// The cluster's data directory (`<data_dir>/pgdata`).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Stops the server (`pg_ctl -m fast stop`), synchronously; failures are logged, not returned.
    ///
    /// Only the process that started the server stops it: when the cluster was already running
    /// at resolution (another Campus process uses it), this leaves it running. Calling it more
    /// than once stops the server once.
    pub fn stop(&self) {
        if !self.started_here {
            tracing::info!(
                "leaving the private PostgreSQL cluster in {} running: it was already running when this process started",
                self.data_dir.display()
            );
            return;
        }
        if self.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(
            "stopping the private PostgreSQL cluster in {}",
            self.data_dir.display()
        );
        let args = [
            OsString::from("-D"),
            self.data_dir.clone().into_os_string(),
            OsString::from("-m"),
            OsString::from("fast"),
            OsString::from("stop"),
        ];
        let mut command = self.run_as.command(&self.pg_ctl, &args);
        match command.output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => tracing::warn!(
                "cannot stop the private PostgreSQL cluster: {}",
                failure_detail(&output)
            ),
            Err(error) => tracing::warn!("cannot run {}: {error}", self.pg_ctl.display()),
        }
    }
}

/// Connects to the database `url` names, creating it first if the server reports it missing.
async fn ensure_database(url: &str, timeout: Duration) -> Result<(), DatabaseError> {
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

async fn connect(
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
async fn close(connection: PgConnection) {
    if let Err(error) = connection.close().await {
        tracing::debug!("closing a one-off database connection: {error}");
    }
}

fn has_sqlstate(error: &sqlx::Error, code: &str) -> bool {
    error
        .as_database_error()
        .and_then(|database_error| database_error.code())
        .is_some_and(|actual| actual == code)
}

/// `name` as a double-quoted SQL identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a single-quoted SQL string literal.
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `url` with any password (in the user info or a `password=` parameter) replaced by `***`,
/// safe to print or log.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let authority_end = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |offset| authority_start + offset);
    let authority = &url[authority_start..authority_end];
    let mut redacted = url[..authority_start].to_string();
    match authority.rfind('@') {
        Some(at) => {
            let user_info = &authority[..at];
            match user_info.find(':') {
                Some(colon) => {
                    redacted.push_str(&user_info[..colon]);
                    redacted.push_str(":***");
                }
                None => redacted.push_str(user_info),
            }
            redacted.push_str(&authority[at..]);
        }
        None => redacted.push_str(authority),
    }
    let rest = &url[authority_end..];
    match rest.find('?') {
        Some(query_start) => {
            redacted.push_str(&rest[..=query_start]);
            let query_and_fragment = &rest[query_start + 1..];
            let (query, fragment) = match query_and_fragment.find('#') {
                Some(hash) => query_and_fragment.split_at(hash),
                None => (query_and_fragment, ""),
            };
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => parameter.to_string(),
                })
                .collect();
            redacted.push_str(&parameters.join("&"));
            redacted.push_str(fragment);
        }
        None => redacted.push_str(rest),
    }
    redacted
}

/// Initialises (once) and starts (unless already running) the private cluster under `data_dir`,
/// then makes sure the app's role and its `campus` database exist (see [`provision`]).
///
/// Every connection to the cluster needs a password (scram-sha-256). The passwords of the
/// superuser `postgres` and of the app's role `campus` are generated at initialisation and kept
/// in `<data_dir>/pgpass` (mode 0600, libpq's password-file format, so
/// `PGPASSFILE=<data_dir>/pgpass psql -h 127.0.0.1 -p 54329 -U campus campus` works); they are
/// never printed or logged. A cluster made by older versions (trust auth, no password file) is
/// upgraded in place.
async fn start_embedded(data_dir: &Path, port: u16) -> Result<ResolvedDatabase, DatabaseError> {
    let tools = ServerTools::find().ok_or(DatabaseError::NoServerBinaries)?;
    let data_dir = std::path::absolute(data_dir).map_err(|source| DatabaseError::Io {
        context: format!("cannot resolve the data directory {}", data_dir.display()),
        source,
    })?;
    let pgdata = data_dir.join("pgdata");
    let log = data_dir.join("postgres.log");
    let pgpass = data_dir.join(PASSWORD_FILE);
    let run_as = RunAs::detect();
    prepare_directories(&data_dir, &pgdata, &log, &run_as).await?;

    let initialised = pgdata.join("PG_VERSION").is_file();
    let passwords = match ClusterPasswords::read(&pgpass)? {
        Some(passwords) => passwords,
        None if initialised && !hba_trusts(&pgdata)? => {
            return Err(DatabaseError::MissingPasswordFile { pgpass, pgdata })
        }
        None => ClusterPasswords::create(&pgpass)?,
    };

    if !initialised {
        tracing::info!(
            "initialising a private PostgreSQL cluster in {}",
            pgdata.display()
        );
        initdb(&tools, &run_as, &data_dir, &pgdata, &passwords).await?;
    }

    let status_args = [
        OsString::from("status"),
        OsString::from("-D"),
        pgdata.clone().into_os_string(),
    ];
    let already_running = run(&run_as, &tools.pg_ctl, &status_args)
        .await?
        .status
        .success();
    if already_running {
        tracing::info!(
            "the private PostgreSQL cluster in {} is already running",
            pgdata.display()
        );
    } else {
        tracing::info!(
            "starting PostgreSQL on 127.0.0.1:{port} (data in {}, log in {})",
            pgdata.display(),
            log.display()
        );
        let start_args = [
            OsString::from("-w"),
            OsString::from("-D"),
            pgdata.clone().into_os_string(),
            OsString::from("-l"),
            log.clone().into_os_string(),
            OsString::from("-o"),
            OsString::from(server_options(&pgdata, port)),
            OsString::from("start"),
        ];
        run_checked(&run_as, &tools.pg_ctl, &start_args)
            .await
            .map_err(|error| match error {
                DatabaseError::Command { command, detail } => DatabaseError::Command {
                    command,
                    detail: format!("{detail}\n{}", log_tail(&log)),
                },
                other => other,
            })?;
    }

    let embedded = EmbeddedPostgres {
        pg_ctl: tools.pg_ctl,
        data_dir: pgdata.clone(),
        run_as,
        started_here: !already_running,
        stopped: AtomicBool::new(false),
    };
    match provision(&passwords, &pgdata, &pgpass, port).await {
        Ok(url) => Ok(ResolvedDatabase {
            url,
            source: DatabaseSource::Embedded { data_dir: pgdata },
            embedded: Some(embedded),
        }),
        Err(error) => {
            embedded.stop();
            Err(error)
        }
    }
}

/// `initdb` with scram-sha-256 for every connection and the superuser's password, handed over
/// in a file only the cluster's user can read, removed right after.
async fn initdb(
    tools: &ServerTools,
    run_as: &RunAs,
    data_dir: &Path,
    pgdata: &Path,
    passwords: &ClusterPasswords,
) -> Result<(), DatabaseError> {
    let pwfile = data_dir.join(format!(".initdb-pw.{}", uuid::Uuid::new_v4().simple()));
    write_private(&pwfile, &format!("{}\n", passwords.superuser))?;
    let initialised = async {
        if matches!(run_as, RunAs::Postgres { .. }) {
            let chown = [
                OsString::from(format!("{POSTGRES_USER}:{POSTGRES_USER}")),
                pwfile.clone().into_os_string(),
            ];
            run_checked(&RunAs::CurrentUser, Path::new("chown"), &chown).await?;
        }
        let args = [
            OsString::from("-D"),
            pgdata.to_path_buf().into_os_string(),
            OsString::from("--auth=scram-sha-256"),
            OsString::from(format!("--pwfile={}", pwfile.display())),
            OsString::from("-U"),
            OsString::from(POSTGRES_USER),
            OsString::from("--encoding=UTF8"),
        ];
        run_checked(run_as, &tools.initdb, &args).await
    }
    .await;
    if let Err(error) = std::fs::remove_file(&pwfile) {
        tracing::warn!("cannot remove {}: {error}", pwfile.display());
    }
    initialised
}

/// Makes sure the app can connect to the private cluster as its own role, and returns its URL.
///
/// When the app's role already connects with its password and pg_hba.conf trusts no one, that
/// is all. Otherwise, as the superuser and one process at a time (an advisory lock): set the
/// superuser's password; create (or fix) the role `campus` — LOGIN, CREATEDB (for `campus
/// bench`'s scratch databases), not superuser; make it the owner of the `campus` database and
/// of every object in it (a cluster made by older versions has them owned by `postgres`); and,
/// if pg_hba.conf has `trust` lines, replace it with scram-sha-256 for every connection, reload
/// and wait until the server refuses a connection without a password.
async fn provision(
    passwords: &ClusterPasswords,
    pgdata: &Path,
    pgpass: &Path,
    port: u16,
) -> Result<String, DatabaseError> {
    let url = format!(
        "postgres://{APP_ROLE}:{}@127.0.0.1:{port}/{EMBEDDED_DATABASE}",
        passwords.app
    );
    let shown = redact_url(&url);
    let app = cluster_options(port, APP_ROLE, EMBEDDED_DATABASE).password(&passwords.app);
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
fn hba_trusts(pgdata: &Path) -> Result<bool, DatabaseError> {
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

/// Connection options for `user` on the private cluster, without a password.
fn cluster_options(port: u16, user: &str, database: &str) -> PgConnectOptions {
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

/// The generated passwords of the private cluster: its superuser's and the app's role's.
/// `Debug` shows neither.
struct ClusterPasswords {
    superuser: String,
    app: String,
}

impl fmt::Debug for ClusterPasswords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterPasswords(***)")
    }
}

impl ClusterPasswords {
    /// The passwords kept in `pgpass`, or `None` when the file does not exist.
    fn read(pgpass: &Path) -> Result<Option<ClusterPasswords>, DatabaseError> {
        let text = match std::fs::read_to_string(pgpass) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(DatabaseError::Io {
                    context: format!("cannot read {}", pgpass.display()),
                    source,
                })
            }
        };
        // hostname:port:database:username:password; ours need no escapes.
        let password_of = |user: &str| {
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .filter_map(|line| {
                    let fields: Vec<&str> = line.splitn(5, ':').collect();
                    (fields.len() == 5 && fields[3] == user).then(|| fields[4].to_string())
                })
                .find(|password| !password.is_empty())
        };
        match (password_of(POSTGRES_USER), password_of(APP_ROLE)) {
            (Some(superuser), Some(app)) => Ok(Some(ClusterPasswords { superuser, app })),
            _ => Err(DatabaseError::Io {
                context: format!(
                    "{} lacks the password of \"{POSTGRES_USER}\" or \"{APP_ROLE}\"",
                    pgpass.display()
                ),
                source: std::io::ErrorKind::InvalidData.into(),
            }),
        }
    }

    /// Generates both passwords and writes them to `pgpass` (mode 0600), unless another process
    /// wrote that file first: then its passwords are the ones.
    fn create(pgpass: &Path) -> Result<ClusterPasswords, DatabaseError> {
        let passwords = ClusterPasswords {
            superuser: random_password(),
            app: random_password(),
        };
        let text = format!(
            "# Passwords of Campus's private PostgreSQL cluster (libpq password file; keep it private)\n\
             *:*:*:{POSTGRES_USER}:{}\n*:*:*:{APP_ROLE}:{}\n",
            passwords.superuser, passwords.app
        );
        // A concurrent start that wrote the file first wins: its passwords are the ones.
        let created =
            campus_adapters::files::create_private_once(pgpass, &text).map_err(|source| {
                DatabaseError::Io {
                    context: format!("cannot create {}", pgpass.display()),
                    source,
                }
            })?;
        if created {
            return Ok(passwords);
        }
        ClusterPasswords::read(pgpass)?.ok_or_else(|| DatabaseError::Io {
            context: format!("{} vanished", pgpass.display()),
            source: std::io::ErrorKind::NotFound.into(),
        })
    }
}

/// 32 random letters and digits (about 190 bits) from the operating system's generator.
fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::rngs::OsRng, 32)
}

/// [`campus_adapters::files::write_private`], with the error this module reports.
fn write_private(path: &Path, text: &str) -> Result<(), DatabaseError> {
    campus_adapters::files::write_private(path, text).map_err(|source| DatabaseError::Io {
        context: format!("cannot write {}", path.display()),
        source,
    })
}

/// Creates the data directories and, when the cluster runs as `postgres`, hands them over.
async fn prepare_directories(
    data_dir: &Path,
    pgdata: &Path,
    log: &Path,
    run_as: &RunAs,
) -> Result<(), DatabaseError> {
    tokio::fs::create_dir_all(pgdata)
        .await
        .map_err(|source| DatabaseError::Io {
            context: format!("cannot create {}", pgdata.display()),
            source,
        })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(pgdata, std::fs::Permissions::from_mode(0o700))
            .await
            .map_err(|source| DatabaseError::Io {
                context: format!("cannot restrict the permissions of {}", pgdata.display()),
                source,
            })?;
    }
    if matches!(run_as, RunAs::CurrentUser) {
        return Ok(());
    }
    let owner = OsString::from(format!("{POSTGRES_USER}:{POSTGRES_USER}"));
    let chown = Path::new("chown");
    let recursive = [
        OsString::from("-R"),
        owner.clone(),
        pgdata.as_os_str().to_owned(),
    ];
    run_checked(&RunAs::CurrentUser, chown, &recursive).await?;
    let mut owned = vec![owner, data_dir.as_os_str().to_owned()];
    if log.exists() {
        owned.push(log.as_os_str().to_owned());
    }
    run_checked(&RunAs::CurrentUser, chown, &owned).await?;
    let writable = [OsString::from("-w"), data_dir.as_os_str().to_owned()];
    if !run(run_as, Path::new("test"), &writable)
        .await?
        .status
        .success()
    {
        return Err(DatabaseError::DataDirNotAccessible {
            data_dir: data_dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The `-o` options of `pg_ctl start`, which pg_ctl hands to a shell.
fn server_options(pgdata: &Path, port: u16) -> String {
    let socket = format!("{}/.s.PGSQL.{port}", pgdata.display());
    // A socket path too long for the kernel would stop the server; TCP is enough for Campus.
    let socket_dir = if socket.len() <= MAX_SOCKET_PATH {
        shell_quote(&pgdata.to_string_lossy())
    } else {
        "''".to_string()
    };
    format!("-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1")
}

/// The last lines of the server log, to explain a failed start.
fn log_tail(log: &Path) -> String {
    match std::fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
            format!("last lines of {}:\n{tail}", log.display())
        }
        Err(error) => format!("(cannot read {}: {error})", log.display()),
    }
}

/// `initdb` and `pg_ctl` of the newest PostgreSQL installed.
struct ServerTools {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl ServerTools {
    /// Looks in `/usr/lib/postgresql/<version>/bin` (newest version first), then on `PATH`.
    fn find() -> Option<ServerTools> {
        let mut installed: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                (
                    version_key(&entry.file_name().to_string_lossy()),
                    entry.path().join("bin"),
                )
            })
            .filter(|(_, bin)| {
                is_executable(&bin.join("initdb")) && is_executable(&bin.join("pg_ctl"))
            })
            .collect();
        installed.sort();
        if let Some((_, bin)) = installed.pop() {
            return Some(ServerTools {
                initdb: bin.join("initdb"),
                pg_ctl: bin.join("pg_ctl"),
            });
        }
        let initdb = find_program("initdb", &[])?;
        let pg_ctl = initdb
            .parent()
            .map(|bin| bin.join("pg_ctl"))
            .filter(|candidate| is_executable(candidate))
            .or_else(|| find_program("pg_ctl", &[]))?;
        Some(ServerTools { initdb, pg_ctl })
    }
}

/// `"9.6"` → `[9, 6]`, `"16"` → `[16]`: orders version directories numerically.
fn version_key(name: &str) -> Vec<u32> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// An absolute path to the executable `name` on `PATH` or in one of `extra_dirs`.
fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
        .and_then(|candidate| std::path::absolute(candidate).ok())
}

fn is_executable(path: &Path) -> bool {
    match std::fs::metadata(path) {
        #[cfg(unix)]
        Ok(metadata) => {
            use std::os::unix::fs::PermissionsExt;
            metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
        }
        #[cfg(not(unix))]
        Ok(metadata) => metadata.is_file(),
        Err(_) => false,
    }
}

/// Who runs the cluster's programs: initdb and postgres refuse to run as root.
#[derive(Debug, Clone)]
enum RunAs {
    CurrentUser,
    /// The `postgres` system user, through `runuser` when present, else `su`.
    Postgres {
        runuser: Option<PathBuf>,
    },
}

impl RunAs {
    fn detect() -> RunAs {
        if effective_uid() == Some(0) {
            RunAs::Postgres {
                runuser: find_program("runuser", &["/usr/sbin", "/sbin"]),
            }
        } else {
            RunAs::CurrentUser
        }
    }

    fn command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut command = match self {
            RunAs::CurrentUser => {
                let mut command = Command::new(program);
                command.args(args);
                command
            }
            RunAs::Postgres {
                runuser: Some(runuser),
            } => {
                let mut command = Command::new(runuser);
                command
                    .args(["-u", POSTGRES_USER, "--"])
                    .arg(program)
                    .args(args);
                command
            }
            RunAs::Postgres { runuser: None } => {
                let mut command = Command::new("su");
                command
                    .args(["-s", "/bin/sh", POSTGRES_USER, "-c"])
                    .arg(shell_command(program, args));
                command
            }
        };
        // Every path passed is absolute; `/` is a directory the postgres user can always enter.
        command.current_dir("/").stdin(Stdio::null());
        command
    }
}

/// The effective uid, from `/proc/self/status` or else `id -u`.
fn effective_uid() -> Option<u32> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(ids) = status.lines().find_map(|line| line.strip_prefix("Uid:")) {
            // Real, effective, saved and filesystem uids, in that order.
            return ids
                .split_whitespace()
                .nth(1)
                .and_then(|uid| uid.parse().ok());
        }
    }
    let output = Command::new("id")
        .arg("-u")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

async fn run(run_as: &RunAs, program: &Path, args: &[OsString]) -> Result<Output, DatabaseError> {
    tokio::process::Command::from(run_as.command(program, args))
        .output()
        .await
        .map_err(|source| DatabaseError::Io {
            context: format!("cannot run {}", program.display()),
            source,
        })
}

/// Runs `program` and turns a non-zero exit into an error quoting its output.
async fn run_checked(
    run_as: &RunAs,
    program: &Path,
    args: &[OsString],
) -> Result<(), DatabaseError> {
    let output = run(run_as, program, args).await?;
    if output.status.success() {
        return Ok(());
    }
    Err(DatabaseError::Command {
        command: shell_command(program, args),
        detail: failure_detail(&output),
    })
}

/// What a failed program said (its standard error, else its standard output), else its status.
fn failure_detail(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let said = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    if said.is_empty() {
        format!("exited with {}", output.status)
    } else {
        format!("{said} ({})", output.status)
    }
}

/// `program args…` as one shell command line.
fn shell_command(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|word| shell_quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` quoted for a POSIX shell (left bare when it has nothing special).
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | '=' | ':' | ',')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn quoting_escapes_embedded_quotes() {
        assert_eq!(quote_identifier("campus"), "\"campus\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
        assert_eq!(shell_quote("/srv/campus/pgdata"), "/srv/campus/pgdata");
        assert_eq!(shell_quote("/my data/it's"), "'/my data/it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn versions_order_numerically() {
        let mut versions = vec![version_key("16"), version_key("9.6"), version_key("15")];
        versions.sort();
        assert_eq!(versions, vec![vec![9, 6], vec![15], vec![16]]);
    }

    /// Needs the test server (`CAMPUS_TEST_DATABASE_URL`, default 127.0.0.1:5432, user
    /// postgres, trust auth).
    #[tokio::test]
    async fn resolve_creates_the_configured_database() {
        let name = format!("campus_dbtest_{}", uuid::Uuid::new_v4().simple());
        let server = campus_adapters::pg::testing::server_url();
        let url = campus_adapters::pg::testing::with_database(&server, &name);
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

    #[test]
    fn the_password_file_is_private_and_written_once() {
        let dir =
            std::env::temp_dir().join(format!("campus_pgpass_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create a directory");
        let pgpass = dir.join(PASSWORD_FILE);
        let absent = ClusterPasswords::read(&pgpass).expect("read a missing file");
        let first = ClusterPasswords::create(&pgpass).expect("create the file");
        let second = ClusterPasswords::create(&pgpass).expect("create it again");
        let read = ClusterPasswords::read(&pgpass)
            .expect("read the file")
            .expect("the file exists");
        let mode = std::fs::metadata(&pgpass)
            .expect("stat the file")
            .permissions();
        let leftovers = std::fs::read_dir(&dir).expect("list the directory").count();
        let _ = std::fs::remove_dir_all(&dir);

        assert!(absent.is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(mode.mode() & 0o777, 0o600);
        }
        assert_eq!(leftovers, 1, "temporary files were left behind");
        assert_eq!(first.app.len(), 32);
        assert_ne!(first.app, first.superuser);
        assert!(first.app.chars().all(|c| c.is_ascii_alphanumeric()));
        // A second creation (a concurrent start) keeps the first file's passwords.
        assert_eq!(
            (&second.superuser, &second.app),
            (&first.superuser, &first.app)
        );
        assert_eq!((&read.superuser, &read.app), (&first.superuser, &first.app));
        let shown = format!("{first:?}");
        assert!(!shown.contains(&first.app) && !shown.contains(&first.superuser));
    }

    /// A free TCP port on 127.0.0.1 for a scratch cluster.
    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port()
    }

    /// A scratch data directory whose cluster is stopped (immediately) and whose files are
    /// removed when the test ends, pass or fail.
    struct ScratchCluster {
        data_dir: PathBuf,
        tools: ServerTools,
    }

    impl ScratchCluster {
        fn new(prefix: &str) -> ScratchCluster {
            let tools = ServerTools::find().expect(
                "these tests need the PostgreSQL server binaries (initdb, pg_ctl) of this machine",
            );
            let data_dir =
                std::env::temp_dir().join(format!("{prefix}_{}", uuid::Uuid::new_v4().simple()));
            ScratchCluster { data_dir, tools }
        }

        fn pgdata(&self) -> PathBuf {
            self.data_dir.join("pgdata")
        }
    }

    impl Drop for ScratchCluster {
        fn drop(&mut self) {
            let args = [
                OsString::from("-D"),
                self.pgdata().into_os_string(),
                OsString::from("-m"),
                OsString::from("immediate"),
                OsString::from("stop"),
            ];
            let _ = RunAs::detect().command(&self.tools.pg_ctl, &args).output();
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }

    /// Options for `user` on the scratch cluster at `port`, without a password.
    fn passwordless(port: u16, user: &str, database: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(port)
            .username(user)
            .database(database)
    }

    /// Asserts that the server refuses `user` without a password (SQLSTATE 28P01 or 28000).
    async fn assert_refused_without_password(port: u16, user: &str, database: &str) {
        match PgConnection::connect_with(&passwordless(port, user, database)).await {
            Ok(connection) => {
                close(connection).await;
                panic!("{user} connected to {database} without a password");
            }
            Err(error) => assert!(
                has_sqlstate(&error, INVALID_PASSWORD) || has_sqlstate(&error, "28000"),
                "{user} without a password: expected an authentication failure, got {error}"
            ),
        }
    }

    /// Checks what the app's URL gives: a role that is not superuser, owns the database and
    /// every table in it, and can run the migrations; and a banner that hides the password.
    async fn assert_app_role_is_least_privileged(url: &str) -> PgConnection {
        assert!(
            !redact_url(url).contains(&password_of(url)),
            "the banner would show the password"
        );
        let mut connection = PgConnection::connect(url)
            .await
            .expect("connect as the app");
        let (user, superuser, owner): (String, bool, String) = sqlx::query_as(
            "SELECT current_user::text, r.rolsuper, pg_get_userbyid(d.datdba)::text
             FROM pg_roles r, pg_database d
             WHERE r.rolname = current_user AND d.datname = current_database()",
        )
        .fetch_one(&mut connection)
        .await
        .expect("read the role and the database owner");
        assert_eq!(user, "campus", "the app does not connect as its own role");
        assert!(!superuser, "the app's role is a superuser");
        assert_eq!(owner, "campus", "the app's role does not own the database");
        let foreign: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relowner <> current_user::regrole",
        )
        .fetch_all(&mut connection)
        .await
        .expect("list the tables");
        assert!(
            foreign.is_empty(),
            "tables not owned by the app: {foreign:?}"
        );
        connection
    }

    /// Asserts that the superuser's password in the password file opens the cluster, and that
    /// neither password appears in the server log.
    async fn assert_passwords_kept_private(data_dir: &Path, port: u16) {
        let passwords = ClusterPasswords::read(&data_dir.join("pgpass"))
            .expect("read the password file")
            .expect("the password file exists");
        let superuser =
            cluster_options(port, POSTGRES_USER, "postgres").password(&passwords.superuser);
        let connection = PgConnection::connect_with(&superuser)
            .await
            .expect("the superuser's password in the file opens the cluster");
        close(connection).await;
        let log = std::fs::read_to_string(data_dir.join("postgres.log")).expect("read the log");
        assert!(!log.is_empty(), "the server log is empty");
        assert!(
            !log.contains(&passwords.superuser) && !log.contains(&passwords.app),
            "a password is in the server log"
        );
    }

    /// The password in the user info of `url`.
    fn password_of(url: &str) -> String {
        url.split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(user_info, _)| user_info.split_once(':'))
            .map(|(_, password)| password.to_string())
            .filter(|password| !password.is_empty())
            .expect("the app's URL carries a password")
    }

    /// A new private cluster: scram-sha-256 for everyone, a password file only its owner can
    /// read, and the app connecting as `campus`, which owns its database and is no superuser.
    #[tokio::test]
    async fn a_new_private_cluster_needs_passwords_and_serves_a_non_superuser() {
        let scratch = ScratchCluster::new("campus_pgtest_new");
        let port = free_port();
        let resolved = start_embedded(&scratch.data_dir, port)
            .await
            .expect("start the private cluster");

        let pgpass = scratch.data_dir.join("pgpass");
        let mode = std::fs::metadata(&pgpass)
            .expect("the password file exists")
            .permissions();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(mode.mode() & 0o777, 0o600, "the password file is not 0600");
        }
        let password = password_of(&resolved.url);
        let contents = std::fs::read_to_string(&pgpass).expect("read the password file");
        assert!(
            contents.contains(&format!(":campus:{password}")),
            "the password file does not hold the app's password"
        );

        assert_refused_without_password(port, "campus", "campus").await;
        assert_refused_without_password(port, "postgres", "postgres").await;
        let connection = assert_app_role_is_least_privileged(&resolved.url).await;
        close(connection).await;

        let pool = campus_adapters::pg::connect(&resolved.url, 2)
            .await
            .expect("pool as the app");
        campus_adapters::pg::migrate(&pool)
            .await
            .expect("the migrations run as the app's role");
        pool.close().await;
        let connection = assert_app_role_is_least_privileged(&resolved.url).await;
        close(connection).await;

        // `campus bench` makes and drops scratch databases on the cluster it resolves.
        let (scratch_url, scratch_pool) =
            campus_adapters::pg::testing::fresh_database_on(&resolved.url, "campus_scratch")
                .await
                .expect("the app's role creates and migrates a scratch database");
        scratch_pool.close().await;
        campus_adapters::pg::testing::drop_database(&scratch_url)
            .await
            .expect("the app's role drops its scratch database");

        // A second start finds the cluster running and the same credentials.
        let again = start_embedded(&scratch.data_dir, port)
            .await
            .expect("resolve the running cluster again");
        assert_eq!(again.url, resolved.url);
        assert_passwords_kept_private(&scratch.data_dir, port).await;

        // Without its password file, a cluster that asks for passwords is refused, clearly.
        let moved = scratch.data_dir.join("pgpass.moved");
        std::fs::rename(&pgpass, &moved).expect("move the password file away");
        let refused = start_embedded(&scratch.data_dir, port).await;
        std::fs::rename(&moved, &pgpass).expect("put the password file back");
        match refused {
            Err(DatabaseError::MissingPasswordFile { .. }) => {}
            other => panic!("expected a missing password file error, got {other:?}"),
        }
        // With another cluster's password file, it says the passwords are wrong.
        std::fs::rename(&pgpass, &moved).expect("move the password file away");
        ClusterPasswords::create(&pgpass).expect("write other passwords");
        let refused = start_embedded(&scratch.data_dir, port).await;
        std::fs::rename(&moved, &pgpass).expect("put the password file back");
        match refused {
            Err(DatabaseError::WrongPasswords { .. }) => {}
            other => panic!("expected a wrong passwords error, got {other:?}"),
        }
        resolved.embedded.expect("a cluster").stop();
    }

    /// A data directory made by the old code (`initdb -A trust`, the app connecting as
    /// superuser, tables owned by `postgres`) is upgraded in place: passwords set, the app's
    /// role made owner of the database and its tables, and trust removed from pg_hba.conf.
    #[tokio::test]
    async fn an_old_trust_cluster_is_upgraded_in_place() {
        let scratch = ScratchCluster::new("campus_pgtest_old");
        let port = free_port();
        let pgdata = scratch.pgdata();
        let run_as = RunAs::detect();
        let log = scratch.data_dir.join("postgres.log");
        prepare_directories(&scratch.data_dir, &pgdata, &log, &run_as)
            .await
            .expect("prepare the directories");
        let initdb = [
            OsString::from("-D"),
            pgdata.clone().into_os_string(),
            OsString::from("-A"),
            OsString::from("trust"),
            OsString::from("-U"),
            OsString::from(POSTGRES_USER),
            OsString::from("--encoding=UTF8"),
        ];
        run_checked(&run_as, &scratch.tools.initdb, &initdb)
            .await
            .expect("initdb the old way");
        let start = [
            OsString::from("-w"),
            OsString::from("-D"),
            pgdata.clone().into_os_string(),
            OsString::from("-l"),
            log.clone().into_os_string(),
            OsString::from("-o"),
            OsString::from(server_options(&pgdata, port)),
            OsString::from("start"),
        ];
        run_checked(&run_as, &scratch.tools.pg_ctl, &start)
            .await
            .expect("start the old cluster");
        // What the old code left behind: a campus database whose tables postgres owns.
        let old_url = format!("postgres://postgres@127.0.0.1:{port}/campus");
        ensure_database(&old_url, EMBEDDED_CONNECT_TIMEOUT)
            .await
            .expect("create the old database");
        let pool = campus_adapters::pg::connect(&old_url, 2)
            .await
            .expect("old pool");
        campus_adapters::pg::migrate(&pool)
            .await
            .expect("old migrations");
        sqlx::query("INSERT INTO settings (key, value) VALUES ('kept', 'yes')")
            .execute(&pool)
            .await
            .expect("old data");
        pool.close().await;
        let stop = [
            OsString::from("-D"),
            pgdata.clone().into_os_string(),
            OsString::from("-m"),
            OsString::from("fast"),
            OsString::from("stop"),
        ];
        run_checked(&run_as, &scratch.tools.pg_ctl, &stop)
            .await
            .expect("stop the old cluster");

        let resolved = start_embedded(&scratch.data_dir, port)
            .await
            .expect("start and upgrade the old cluster");
        assert_refused_without_password(port, "postgres", "campus").await;
        assert_refused_without_password(port, "campus", "campus").await;
        let mut connection = assert_app_role_is_least_privileged(&resolved.url).await;
        let kept: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'kept'")
            .fetch_one(&mut connection)
            .await
            .expect("the old data is readable by the app");
        assert_eq!(kept, "yes");
        close(connection).await;
        let pool = campus_adapters::pg::connect(&resolved.url, 2)
            .await
            .expect("pool as the app");
        campus_adapters::pg::migrate(&pool)
            .await
            .expect("the migrations still run as the app's role");
        sqlx::query("UPDATE settings SET value = 'still' WHERE key = 'kept'")
            .execute(&pool)
            .await
            .expect("the app writes the old tables");
        pool.close().await;
        assert_passwords_kept_private(&scratch.data_dir, port).await;
        resolved.embedded.expect("a cluster").stop();
    }
}
