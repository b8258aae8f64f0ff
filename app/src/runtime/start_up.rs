//! The first start as a person meets it: the default Adm user and where its generated password
//! goes (a terminal, else an owner-only file), and the banner saying where everything is.

use super::{Campus, MailTarget};
use campus_adapters::pg::cluster::{redact_url, DatabaseSource};

impl Campus {
    /// Without a configured Adm user (`CAMPUS_ADMIN_EMAIL`), makes sure the default one
    /// ([`DEFAULT_ADM_EMAIL`]) exists; returns its generated password when it was just
    /// created by this process (to hand over once: only its hash is stored). Of two
    /// processes starting together, only the one whose user was saved returns a password.
    pub async fn ensure_default_adm(&self) -> Result<Option<String>, String> {
        if self.settings.admin_email.is_some() {
            return Ok(None);
        }
        let email =
            campus_core::values::Email::parse(DEFAULT_ADM_EMAIL).map_err(|e| e.to_string())?;
        let users = &self.state.accounts.users;
        if users
            .find_user_by_email(&email)
            .await
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(None);
        }
        let password = random_password();
        let created = self
            .state
            .accounts
            .create_adm(DEFAULT_ADM_EMAIL, &password)
            .await
            .map_err(|e| format!("cannot create the default Adm user: {e}"))?;
        Ok(created.then_some(password))
    }

    /// What a person needs to start using Campus; `new_adm_password` says where the password
    /// of a default Adm user created by this start went (see `hand_over_adm_password`).
    pub fn banner(
        &self,
        with_api: bool,
        with_daemon: bool,
        new_adm_password: Option<&AdmPassword<'_>>,
    ) -> String {
        let url = format!("http://{}", self.settings.addr);
        let db = self.postgres.as_ref().map(|pg| {
            let source = match &pg.database.source {
                DatabaseSource::Configured => "DATABASE_URL".to_string(),
                DatabaseSource::LocalServer => "local PostgreSQL server".to_string(),
                DatabaseSource::Embedded { data_dir } => {
                    format!("private cluster in {}", data_dir.display())
                }
            };
            format!("{} ({source})", redact_url(&pg.database.url))
        });
        let mut out = String::from("\nCampus is running.\n");
        if with_api {
            out += &format!(
                "  API:       {url}\n  API docs:  {url}/docs   (OpenAPI: {url}/openapi.json)\n"
            );
        }
        out += &format!(
            "  Database:  {}\n",
            db.as_deref().unwrap_or("none: in memory, nothing is kept")
        );
        match &self.mail {
            MailTarget::Smtp(u) => out += &format!("  Mail:      SMTP {u}\n"),
            MailTarget::DevMailbox(d) => {
                out += &format!(
                    "  Mail:      dev mailbox {} (one .eml file per e-mail)\n",
                    d.display()
                )
            }
        }
        out += &format!(
            "  Daemon:    {}\n",
            if with_daemon {
                "running in this process"
            } else {
                "not in this process (run `campus daemon`)"
            }
        );
        if with_api {
            out += &format!(
                "\n  Log in: create an institution and its Academic user, then log in with them:\n    \
                 curl -s -X POST {url}/institutions -H 'content-type: application/json' \\\n      \
                 -d '{{\"name\":\"My College\",\"academic\":{{\"name\":\"Ana\",\"email\":\"ana@example.org\",\"password\":\"change-me-now\"}}}}'\n    \
                 curl -s -X POST {url}/auth/login -H 'content-type: application/json' \\\n      \
                 -d '{{\"email\":\"ana@example.org\",\"password\":\"change-me-now\"}}'\n  {}\n",
                if self.settings.demo_password.is_some() {
                    "Demo users of a new institution log in with the password in CAMPUS_DEMO_PASSWORD."
                } else {
                    "Demo users of a new institution cannot log in (set CAMPUS_DEMO_PASSWORD to let them)."
                }
            );
            out += &format!("\n  Admin screen: {url}/admin\n");
            out += &match (&self.settings.admin_email, new_adm_password) {
                (Some(email), _) => format!("    log in as {email} (password from CAMPUS_ADMIN_PASSWORD)\n"),
                (None, Some(password)) => match password {
                    AdmPassword::Shown(password) => format!(
                        "    log in as {DEFAULT_ADM_EMAIL} with the password {password}\n    \
                         (created now and shown only this once; only its hash is stored)\n"
                    ),
                    AdmPassword::Saved(path) => format!(
                        "    log in as {DEFAULT_ADM_EMAIL} with the password created now and written to \
                         {} (readable only by this user;\n    delete it once you have read it; only its hash is stored)\n",
                        path.display()
                    ),
                    AdmPassword::Lost(why) => format!(
                        "    log in as {DEFAULT_ADM_EMAIL}: its password was created now, but it could not be shown \
                         nor saved ({why});\n    set CAMPUS_ADMIN_EMAIL and CAMPUS_ADMIN_PASSWORD to choose one\n"
                    ),
                },
                (None, None) => format!(
                    "    log in as {DEFAULT_ADM_EMAIL} (its password was printed when it was created; \
                     set CAMPUS_ADMIN_EMAIL and CAMPUS_ADMIN_PASSWORD to choose one)\n"
                ),
            };
        }
        out
    }
}

/// Where the generated password of the default Adm user went.
pub enum AdmPassword<'a> {
    /// To the terminal (standard output is one).
    Shown(&'a str),
    /// Into this file (mode 0600): standard output goes to a log or a pipe.
    Saved(std::path::PathBuf),
    /// Nowhere, for this reason.
    Lost(String),
}

impl Campus {
    /// A password belongs on a person's terminal, never in a log: shown when standard output
    /// is a terminal, else written to `<data dir>/admin-password` for its owner only.
    /// A file left by an earlier creation is replaced.
    pub fn hand_over_adm_password<'a>(&self, password: &'a str) -> AdmPassword<'a> {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() {
            return AdmPassword::Shown(password);
        }
        let path = self.settings.data_dir.join("admin-password");
        let written = std::fs::create_dir_all(&self.settings.data_dir)
            .and_then(|()| match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            })
            .and_then(|()| {
                campus_adapters::files::write_private(
                    &path,
                    &format!("{DEFAULT_ADM_EMAIL} {password}\n"),
                )
            });
        match written {
            Ok(()) => AdmPassword::Saved(path),
            Err(e) => AdmPassword::Lost(format!("{}: {e}", path.display())),
        }
    }
}

/// The Adm user created on a first start without `CAMPUS_ADMIN_EMAIL`.
pub const DEFAULT_ADM_EMAIL: &str = "admin@campus.localhost";

fn random_password() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}
