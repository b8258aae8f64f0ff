//! The private cluster's life cycle: initialising it once (`initdb`, scram-sha-256), starting
//! it unless it already runs, and stopping it at shutdown (only the process that started it).

use super::passwords::{write_private, ClusterPasswords};
use super::process::{failure_detail, run, run_checked, shell_quote, RunAs, ServerTools};
use super::provision::{hba_trusts, provision};
use super::{
    DatabaseError, DatabaseSource, ResolvedDatabase, LOG_TAIL_LINES, MAX_SOCKET_PATH,
    PASSWORD_FILE, POSTGRES_USER,
};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Initialises (once) and starts (unless already running) the private cluster under `data_dir`,
/// then makes sure the app's role and its `campus` database exist (see [`provision`]).
///
/// Every connection to the cluster needs a password (scram-sha-256). The passwords of the
/// superuser `postgres` and of the app's role `campus` are generated at initialisation and kept
/// in `<data_dir>/pgpass` (mode 0600, libpq's password-file format, so
/// `PGPASSFILE=<data_dir>/pgpass psql -h 127.0.0.1 -p 54329 -U campus campus` works); they are
/// never printed or logged. A cluster made by older versions (trust auth, no password file) is
/// upgraded in place.
pub(super) async fn start_embedded(
    data_dir: &Path,
    port: u16,
) -> Result<ResolvedDatabase, DatabaseError> {
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

    let already_running = start_unless_running(&tools, &run_as, &pgdata, &log, port).await?;

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

/// Starts the server on `port` unless it already runs; returns whether it was running.
/// A failed start quotes the end of the server log.
async fn start_unless_running(
    tools: &ServerTools,
    run_as: &RunAs,
    pgdata: &Path,
    log: &Path,
    port: u16,
) -> Result<bool, DatabaseError> {
    let status_args = [
        OsString::from("status"),
        OsString::from("-D"),
        pgdata.as_os_str().to_owned(),
    ];
    let already_running = run(run_as, &tools.pg_ctl, &status_args)
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
            pgdata.as_os_str().to_owned(),
            OsString::from("-l"),
            log.as_os_str().to_owned(),
            OsString::from("-o"),
            OsString::from(server_options(pgdata, port)),
            OsString::from("start"),
        ];
        run_checked(run_as, &tools.pg_ctl, &start_args)
            .await
            .map_err(|error| match error {
                DatabaseError::Command { command, detail } => DatabaseError::Command {
                    command,
                    detail: format!("{detail}\n{}", log_tail(log)),
                },
                other => other,
            })?;
    }

    Ok(already_running)
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

/// Creates the data directories and, when the cluster runs as `postgres`, hands them over.
pub(super) async fn prepare_directories(
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
pub(super) fn server_options(pgdata: &Path, port: u16) -> String {
    let socket_dir = match socket_dir(pgdata, port) {
        Some(dir) => shell_quote(&dir.to_string_lossy()),
        None => "''".to_string(),
    };
    format!("-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1")
}

/// Where the private cluster puts its Unix-domain socket: its data directory, unless the
/// socket's path there would be too long for the kernel (which would stop the server); then it
/// has none and TCP serves.
pub(super) fn socket_dir(pgdata: &Path, port: u16) -> Option<&Path> {
    let socket = pgdata.join(format!(".s.PGSQL.{port}"));
    (socket.as_os_str().len() <= MAX_SOCKET_PATH).then_some(pgdata)
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
