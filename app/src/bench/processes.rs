//! The bench's scratch resources: its database, the `campus daemon` and `campus api` child
//! processes it starts on it (configured like production, with the bench's SMTP sink), their
//! memory, and the removal of everything at the end.

use super::smtp_sink::SmtpSink;
use super::{err, progress};
use campus_adapters::pg::bench::BenchDatabase;
use campus_adapters::pg::{notify::NOTIFY_WINDOW, Notifier, PgStore};
use std::path::PathBuf;
use std::time::Duration;
use tokio::process::{Child, Command};

/// Password of the demo users in the bench's scratch database (the API phase logs in as a
/// demo teacher).
pub(super) const DEMO_PASSWORD: &str = "bench-demo-password";

/// Child processes and the scratch database; everything is removed by `cleanup`.
pub(super) struct Scratch {
    pub(super) db: BenchDatabase,
    /// The PostgreSQL adapter on the scratch database (events and tasks go in through it).
    pub(super) store: PgStore,
    dir: PathBuf,
    pub(super) smtp: SmtpSink,
    /// The master key every process of the run shares.
    secret: String,
    children: Vec<Child>,
    /// `CAMPUS_BUS_URL`, given to every process of the run (phase 6).
    pub(super) bus_url: Option<String>,
}

impl Scratch {
    /// A scratch database on the server of `server_url`, a data directory and an SMTP sink.
    pub(super) async fn create(server_url: &str) -> Result<Scratch, String> {
        let db = BenchDatabase::create(server_url).await.map_err(err)?;
        let pool = db.pool().clone();
        let store = PgStore::new(pool.clone(), Notifier::spawn(pool, NOTIFY_WINDOW));
        let dir =
            std::env::temp_dir().join(format!("campus-bench-{}", uuid::Uuid::new_v4().simple()));
        let smtp = match SmtpSink::start().await {
            Ok(smtp) => smtp,
            Err(e) => {
                let _ = db.drop_database().await;
                return Err(format!("cannot start the SMTP sink: {e}"));
            }
        };
        Ok(Scratch {
            db,
            store,
            dir,
            smtp,
            secret: campus_adapters::keys::KeyRing::generate(),
            children: Vec::new(),
            bus_url: None,
        })
    }

    /// `campus <sub>` on the scratch database, running `concurrency` tasks at once.
    pub(super) fn command(&self, sub: &str, concurrency: usize) -> Result<Command, String> {
        let exe = std::env::current_exe().map_err(err)?;
        let mut cmd = Command::new(exe);
        if let Some(url) = &self.bus_url {
            cmd.env("CAMPUS_BUS_URL", url);
        }
        cmd.arg(sub)
            .env("DATABASE_URL", self.db.url())
            .env("CAMPUS_DATA_DIR", &self.dir)
            .env("CAMPUS_CONCURRENCY", concurrency.to_string())
            .env("RUST_LOG", "warn")
            .env("SMTP_URL", &self.smtp.url)
            .env("CAMPUS_JWT_SECRET", &self.secret)
            .env("CAMPUS_DEMO_PASSWORD", DEMO_PASSWORD)
            // The bench's client is one address standing for many users: 500 requests a
            // second, many connections, reset links for the same account again and again.
            .env("CAMPUS_RATE_LIMITS", "off")
            .env("CAMPUS_MAX_CONNECTIONS_PER_CLIENT", "100000")
            .env("CAMPUS_RESET_COOLDOWN", "0s")
            // Phase 5's receiver listens on 127.0.0.1.
            .env("CAMPUS_WEBHOOK_ALLOWED_HOSTS", "127.0.0.0/8")
            .env_remove("CAMPUS_ADMIN_EMAIL")
            .env_remove("CAMPUS_ADMIN_PASSWORD")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true);
        Ok(cmd)
    }

    /// Starts `command` as a child of the run (`what` names it in errors); returns its pid.
    pub(super) fn spawn(&mut self, mut command: Command, what: &str) -> Result<u32, String> {
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start the {what}: {e}"))?;
        let pid = child.id().unwrap_or(0);
        self.children.push(child);
        Ok(pid)
    }

    /// Starts `command` as a child the caller waits for (see [`Scratch::wait_for`]).
    pub(super) fn start(&self, mut command: Command, what: &str) -> Result<Child, String> {
        command
            .spawn()
            .map_err(|e| format!("cannot start the {what}: {e}"))
    }

    /// Waits for a child started by [`Scratch::start`] to exit; an error unless it succeeded.
    pub(super) async fn wait_for(mut child: Child, what: &str) -> Result<(), String> {
        let status = child.wait().await.map_err(err)?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the {what} failed: {status}"))
        }
    }

    /// Runs `command` to its end.
    pub(super) async fn run_to_end(&self, command: Command, what: &str) -> Result<(), String> {
        Scratch::wait_for(self.start(command, what)?, what).await
    }

    /// Stops the children (SIGTERM, then a kill after 15 s), drops the database and removes
    /// the data directory.
    pub(super) async fn cleanup(mut self) {
        for c in &mut self.children {
            if let Some(pid) = c.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(15), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
        self.store.pool().close().await;
        if let Err(e) = self.db.drop_database().await {
            progress(&format!("could not drop the scratch database: {e}"));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Peak resident set (VmHWM) of a process, in MB.
pub(super) fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
