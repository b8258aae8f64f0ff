//! Database resolution: decides which PostgreSQL database Campus uses, with no configuration
//! needed. This module owns the order of preference (the configured `DATABASE_URL`, then a
//! server on `localhost:5432`, then a private cluster started from the PostgreSQL server
//! binaries installed on the machine), the creation of the database when it is missing, and the
//! life cycle of that private cluster.

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

const CONFIGURED_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
const LOCAL_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const EMBEDDED_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLSTATE `invalid_catalog_name`: the database does not exist.
const UNDEFINED_DATABASE: &str = "3D000";
/// SQLSTATE `duplicate_database`: someone else created it first.
const DUPLICATE_DATABASE: &str = "42P04";
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
///    `postgres` system user when running as root); its log goes to `<data_dir>/postgres.log`.
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
/// then makes sure its `campus` database exists.
async fn start_embedded(data_dir: &Path, port: u16) -> Result<ResolvedDatabase, DatabaseError> {
    let tools = ServerTools::find().ok_or(DatabaseError::NoServerBinaries)?;
    let data_dir = std::path::absolute(data_dir).map_err(|source| DatabaseError::Io {
        context: format!("cannot resolve the data directory {}", data_dir.display()),
        source,
    })?;
    let pgdata = data_dir.join("pgdata");
    let log = data_dir.join("postgres.log");
    let run_as = RunAs::detect();
    prepare_directories(&data_dir, &pgdata, &log, &run_as).await?;

    if !pgdata.join("PG_VERSION").is_file() {
        tracing::info!(
            "initialising a private PostgreSQL cluster in {}",
            pgdata.display()
        );
        let args = [
            OsString::from("-D"),
            pgdata.clone().into_os_string(),
            OsString::from("-A"),
            OsString::from("trust"),
            OsString::from("-U"),
            OsString::from(POSTGRES_USER),
            OsString::from("--encoding=UTF8"),
        ];
        run_checked(&run_as, &tools.initdb, &args).await?;
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
    let url = format!("postgres://{POSTGRES_USER}@127.0.0.1:{port}/{EMBEDDED_DATABASE}");
    if let Err(error) = ensure_database(&url, EMBEDDED_CONNECT_TIMEOUT).await {
        embedded.stop();
        return Err(error);
    }
    Ok(ResolvedDatabase {
        url,
        source: DatabaseSource::Embedded { data_dir: pgdata },
        embedded: Some(embedded),
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
}
