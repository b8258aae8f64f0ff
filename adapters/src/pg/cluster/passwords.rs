//! The private cluster's generated passwords (its superuser's and the app's role's), kept in a
//! libpq password file only their owner can read.

use super::{DatabaseError, APP_ROLE, POSTGRES_USER};
use std::fmt;
use std::path::Path;

/// The generated passwords of the private cluster: its superuser's and the app's role's.
/// `Debug` shows neither.
pub(super) struct ClusterPasswords {
    pub(super) superuser: String,
    pub(super) app: String,
}

impl fmt::Debug for ClusterPasswords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterPasswords(***)")
    }
}

impl ClusterPasswords {
    /// The passwords kept in `pgpass`, or `None` when the file does not exist.
    pub(super) fn read(pgpass: &Path) -> Result<Option<ClusterPasswords>, DatabaseError> {
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
    pub(super) fn create(pgpass: &Path) -> Result<ClusterPasswords, DatabaseError> {
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
        let created = crate::files::create_private_once(pgpass, &text).map_err(|source| {
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

/// [`crate::files::write_private`], with the error this module reports.
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), DatabaseError> {
    crate::files::write_private(path, text).map_err(|source| DatabaseError::Io {
        context: format!("cannot write {}", path.display()),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::cluster::PASSWORD_FILE;
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
}
