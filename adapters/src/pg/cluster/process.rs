//! Running the PostgreSQL server programs: finding the newest installed `initdb` and `pg_ctl`,
//! running them as the `postgres` system user when Campus runs as root, and quoting for shells.

use super::{DatabaseError, POSTGRES_USER};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `initdb` and `pg_ctl` of the newest PostgreSQL installed.
pub(super) struct ServerTools {
    pub(super) initdb: PathBuf,
    pub(super) pg_ctl: PathBuf,
}

impl ServerTools {
    /// Looks in `/usr/lib/postgresql/<version>/bin` (newest version first), then on `PATH`.
    pub(super) fn find() -> Option<ServerTools> {
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
pub(super) fn find_program(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
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
pub(super) enum RunAs {
    CurrentUser,
    /// The `postgres` system user, through `runuser` when present, else `su`.
    Postgres {
        runuser: Option<PathBuf>,
    },
}

impl RunAs {
    pub(super) fn detect() -> RunAs {
        if nix::unistd::geteuid().is_root() {
            RunAs::Postgres {
                runuser: find_program("runuser", &["/usr/sbin", "/sbin"]),
            }
        } else {
            RunAs::CurrentUser
        }
    }

    pub(super) fn command(&self, program: &Path, args: &[OsString]) -> Command {
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

pub(super) async fn run(
    run_as: &RunAs,
    program: &Path,
    args: &[OsString],
) -> Result<Output, DatabaseError> {
    tokio::process::Command::from(run_as.command(program, args))
        .output()
        .await
        .map_err(|source| DatabaseError::Io {
            context: format!("cannot run {}", program.display()),
            source,
        })
}

/// Runs `program` and turns a non-zero exit into an error quoting its output.
pub(super) async fn run_checked(
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
pub(super) fn failure_detail(output: &Output) -> String {
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
pub(super) fn shell_command(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(|word| shell_quote(&word.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `word` quoted for a POSIX shell (left bare when it has nothing special).
pub(super) fn shell_quote(word: &str) -> String {
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
    fn shell_quoting_escapes_embedded_quotes() {
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
}
