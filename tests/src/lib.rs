//! End-to-end test harness: the real app (API on a free port + daemon) against a fresh
//! PostgreSQL database and a real SMTP server (aiosmtpd, speaking SMTP over TCP and storing
//! what it receives in a Maildir). `TEST_LOG=1` shows the app's logs.

pub mod browser;
mod client;
pub mod extra;
// Generated code: its doc comments are the spec's descriptions, not written for clippy.
#[allow(clippy::all)]
pub mod generated;
pub mod receiver;
mod smtp;

pub use client::{Client, Reply};
pub use smtp::SmtpServer;

use campus::config::Settings;
use campus::engine::Registry;
use campus::{Application, Campus};
use campus_adapters::pg::testing::{drop_database, fresh_database};
use sqlx::PgPool;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The master key of test apps (processes a test starts beside one need the same).
pub const TEST_SECRET: &str = "test:campus-test-secret-0123456789";

/// Password of the demo users of test apps (`CAMPUS_DEMO_PASSWORD`).
pub const DEMO_PASSWORD: &str = "campus-demo-test";

/// Polls `check` every 25 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits until something accepts TCP connections on `port` of 127.0.0.1.
pub async fn wait_for_port(what: &str, port: u16, timeout: Duration) {
    eventually(
        &format!("{what} to accept connections on port {port}"),
        timeout,
        || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
                .map(|_| ())
        },
    )
    .await;
}

/// The cargo target directory of this build (`target/`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target
    exe.ancestors()
        .nth(3)
        .expect("the target directory")
        .to_path_buf()
}

/// Reads `child`'s standard output until `port_of` finds the port it listens on in a line;
/// `None` when the output ends first (the child failed to bind and exited) or after 20 s.
/// Servers bind the port themselves (port 0 or a port they retry), so no other process can
/// take it between a reservation and its use.
async fn announced_port(
    child: &mut tokio::process::Child,
    port_of: impl Fn(&str) -> Option<u16>,
) -> Option<u16> {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take()?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let port = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(port) = port_of(&line) {
                return Some(port);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()?;
    // Keep draining the output so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Some(port)
}

/// The `campus` binary of this workspace, built once per test process (tests run after the
/// build, so this only waits for cargo's up-to-date check).
pub fn campus_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            // target/<profile>/deps/<test> → target/<profile>
            let profile_dir = exe
                .parent()
                .and_then(|d| d.parent())
                .expect("target profile directory")
                .to_path_buf();
            let target_dir = profile_dir.parent().expect("target directory");
            let mut cmd = std::process::Command::new(env!("CARGO"));
            cmd.args([
                "build",
                "--quiet",
                "-p",
                "campus",
                "--bin",
                "campus",
                "--target-dir",
            ])
            .arg(target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("run cargo build");
            assert!(status.success(), "building the campus binary failed");
            profile_dir.join("campus")
        })
        .clone()
}

/// The reset link of an e-mail.
pub fn reset_link(message: &str) -> String {
    let start = message.find("http").expect("a link in the e-mail");
    message[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The token of a reset link.
pub fn token_of(link: &str) -> String {
    link.split("token=")
        .nth(1)
        .expect("a token in the link")
        .to_string()
}

/// A running Campus: API, daemon, database and SMTP server. Its HTTP helpers are
/// [`Client`]'s.
pub struct TestApp {
    pub client: Client,
    pub db_url: String,
    pub pool: PgPool,
    /// The wired application (e.g. to start more daemons on the same database).
    pub campus: Arc<Campus>,
    shutdown: watch::Sender<bool>,
    /// The application's run (API and daemon), until `shutdown`.
    running: Option<JoinHandle<()>>,
    /// Set once `stop` dropped the database; otherwise (a failed test) `Drop` drops it.
    dropped: bool,
}

impl std::ops::Deref for TestApp {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl std::ops::DerefMut for TestApp {
    fn deref_mut(&mut self) -> &mut Client {
        &mut self.client
    }
}

impl Drop for TestApp {
    /// A test that panicked never reached `stop`: drop its database anyway (on a thread of
    /// its own, as the test's runtime may be unwinding), so failed runs leave nothing behind.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let _ = self.shutdown.send(true);
        let url = self.db_url.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            rt.block_on(drop_database(&url))
        })
        .join();
    }
}

impl TestApp {
    /// Campus with the built-in handlers.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(|c| c.default_registry()).await
    }

    /// Campus whose daemon uses the registry `registry` builds.
    pub async fn spawn_with(registry: impl FnOnce(&Campus) -> Registry) -> TestApp {
        Self::spawn_custom(|_| {}, registry).await
    }

    /// Campus with settings adjusted by `configure` (after the test defaults) and the
    /// registry `registry` builds.
    pub async fn spawn_custom(
        configure: impl FnOnce(&mut Settings),
        registry: impl FnOnce(&Campus) -> Registry,
    ) -> TestApp {
        let (db_url, pool) = fresh_database("campus_e2e")
            .await
            .expect("a fresh test database");
        Self::start(db_url, pool, configure, registry).await
    }

    /// Campus (API + daemon + SMTP server) on the existing database `db_url`, which start-up
    /// migrates like a real start would; `stop` drops it afterwards.
    pub async fn spawn_on(
        db_url: &str,
        configure: impl FnOnce(&mut Settings),
        registry: impl FnOnce(&Campus) -> Registry,
    ) -> TestApp {
        let pool = campus_adapters::pg::connect(db_url, 4)
            .await
            .expect("a pool on the test database");
        Self::start(db_url.to_string(), pool, configure, registry).await
    }

    async fn start(
        db_url: String,
        pool: PgPool,
        configure: impl FnOnce(&mut Settings),
        registry: impl FnOnce(&Campus) -> Registry,
    ) -> TestApp {
        let (smtp, listener, mut settings) = test_settings().await;
        settings.database_url = Some(db_url.clone());
        configure(&mut settings);
        let app = Application::build_with_listener(settings, listener, registry)
            .await
            .expect("Campus starts");
        let (client, campus, shutdown, running) = run(app, smtp).await;
        TestApp {
            client,
            db_url,
            pool,
            campus,
            shutdown,
            running: Some(running),
            dropped: false,
        }
    }

    /// A shutdown signal that fires when the app stops (for extra daemons).
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The PostgreSQL side of the app.
    pub fn postgres(&self) -> &campus::runtime::Postgres {
        self.campus
            .postgres
            .as_ref()
            .expect("a TestApp runs on PostgreSQL")
    }

    /// The PostgreSQL adapter on the test database (NOTIFY after writes, like the app).
    pub fn store(&self) -> campus_adapters::pg::PgStore {
        self.postgres().store.clone()
    }

    /// Stops the app and the daemon and drops the database.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        // The daemon lets running tasks finish, the API its requests (each up to 10 s).
        if let Some(running) = self.running.take() {
            let _ = tokio::time::timeout(Duration::from_secs(25), running).await;
        }
        self.pool.close().await;
        self.postgres().pool.close().await;
        self.postgres().engine_store.pool().close().await;
        drop_database(&self.db_url)
            .await
            .expect("drop the test database");
        self.dropped = true;
    }

    /// A single value from the database.
    pub async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Waits until every task is finished (none pending, running or retrying) and returns
    /// the number of tasks.
    pub async fn wait_for_idle(&self) -> i64 {
        eventually("all events dispatched and tasks finished", Duration::from_secs(30), || async {
            let busy: i64 = self
                .scalar(
                    "SELECT (SELECT count(*) FROM domain_events WHERE status IN ('pending', 'retrying'))
                          + (SELECT count(*) FROM tasks WHERE status IN ('pending', 'running', 'retrying'))",
                )
                .await;
            if busy == 0 {
                Some(self.scalar::<i64>("SELECT count(*) FROM tasks").await)
            } else {
                None
            }
        })
        .await
    }
}

/// Settings of a test app on a free port of this machine, sending mail to a new SMTP server:
/// fast polling and retries, no rate limits, the test secret and demo password.
async fn test_settings() -> (SmtpServer, std::net::TcpListener, Settings) {
    campus::telemetry::init_for_tests();
    let smtp = SmtpServer::start().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    let mut settings = Settings::defaults();
    settings.addr = addr;
    settings.public_url = Some(format!("http://{addr}"));
    settings.smtp_url = Some(smtp.url());
    settings.data_dir =
        std::env::temp_dir().join(format!("campus-e2e-{}", uuid::Uuid::new_v4().simple()));
    settings.poll_interval = Duration::from_millis(200);
    settings.retry_base = Duration::from_millis(200);
    settings.retry_cap = Duration::from_secs(1);
    // 6 + 3 pooled connections, plus LISTEN, leader and live-page connections: with the
    // test's own pool about 16 per app (see .config/nextest.toml).
    settings.db_connections = 6;
    settings.admin_email = None;
    settings.admin_password = None;
    settings.jwt_secret = Some(TEST_SECRET.into());
    settings.demo_password = Some(DEMO_PASSWORD.into());
    // Tests log in and sign up far faster than people; the hostile-input suite sets them.
    settings.rate_limits = campus::web::limits::RateLimits::off();
    (smtp, listener, settings)
}

/// Runs `app` (API and daemon) until the returned sender says stop.
/// Runs `app` and waits until it is ready (`/health/ready`: its database, and its daemon's
/// LISTEN connection, are up).
async fn run(
    app: Application,
    smtp: SmtpServer,
) -> (Client, Arc<Campus>, watch::Sender<bool>, JoinHandle<()>) {
    let client = Client {
        base: format!("http://{}", app.campus().settings.addr),
        http: reqwest::Client::new(),
        smtp,
    };
    let campus = app.campus().clone();
    let (shutdown, rx) = watch::channel(false);
    let running = tokio::spawn(async move {
        let _ = app.run(rx).await;
    });
    eventually("the app is ready", Duration::from_secs(30), || async {
        (client.get("/health/ready", None).await.status == 200).then_some(())
    })
    .await;
    (client, campus, shutdown, running)
}

/// A running Campus on the in-memory adapters: API, daemon and SMTP server, no database.
pub struct MemoryApp {
    pub client: Client,
    pub campus: Arc<Campus>,
    shutdown: watch::Sender<bool>,
    running: JoinHandle<()>,
}

impl std::ops::Deref for MemoryApp {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl MemoryApp {
    /// Campus with the built-in handlers and settings adjusted by `configure`.
    pub async fn spawn(configure: impl FnOnce(&mut Settings)) -> MemoryApp {
        let (smtp, listener, mut settings) = test_settings().await;
        configure(&mut settings);
        let app = Application::build_in_memory(settings, listener, |c| c.default_registry())
            .await
            .expect("Campus starts in memory");
        let (client, campus, shutdown, running) = run(app, smtp).await;
        MemoryApp {
            client,
            campus,
            shutdown,
            running,
        }
    }

    /// Stops the API and the daemon.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(25), self.running).await;
    }
}
