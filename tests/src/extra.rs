//! Helpers for the tests of behaviours end to end: a cookie-keeping client of the admin screen, the `campus` binary as a child process
//! (its output captured, stopped with SIGTERM) and a task handler the test holds and releases.

use crate::{campus_binary, eventually, TestApp};
use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_ports::ClaimedTask;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

/// A browser-less client of the admin screen (`/admin`) that keeps its session cookie.
pub struct WebClient {
    pub base: String,
    pub http: reqwest::Client,
    /// `campus_session=…`, empty when the login was refused.
    pub cookie: String,
    /// The `Retry-After` of a refused login.
    pub retry_after: Option<u64>,
}

/// The value of the cookie `name` set by `resp`.
pub fn cookie_value(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(str::to_string)
        })
}

/// The value of the hidden form field `name` in `html`.
pub fn hidden(html: &str, name: &str) -> String {
    let key = format!(r#"name="{name}" value=""#);
    let start = html.find(&key).expect("the hidden field") + key.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// The `data-id` of every table row of an admin page.
pub fn row_ids(html: &str) -> Vec<String> {
    html.split(r#"<tr data-id=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

impl WebClient {
    /// Logs in through the login form (with its CSRF cookie); returns the client and the
    /// status of the login.
    pub async fn login(base: &str, email: &str, password: &str) -> (WebClient, u16) {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let form = http
            .get(format!("{base}/admin/login"))
            .send()
            .await
            .unwrap();
        let login_csrf = cookie_value(&form, "campus_login_csrf").expect("a login CSRF cookie");
        let csrf = hidden(&form.text().await.unwrap(), "csrf");
        let resp = http
            .post(format!("{base}/admin/login"))
            .header("cookie", format!("campus_login_csrf={login_csrf}"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("email", email),
                ("password", password),
            ])
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let cookie = cookie_value(&resp, "campus_session")
            .map(|c| format!("campus_session={c}"))
            .unwrap_or_default();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let client = WebClient {
            base: base.to_string(),
            http,
            cookie,
            retry_after,
        };
        (client, status)
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// A child process (the `campus` binary, possibly behind a wrapper) whose standard output and
/// error are collected while it runs. Killed on drop.
pub struct Process {
    pub child: tokio::process::Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The tasks collecting the output; they end when the pipes close.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// `campus <args>` with the test defaults of a child process; add `env` and spawn with
/// [`Process::spawn`].
pub fn campus_command(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(campus_binary());
    cmd.args(args)
        .env("RUST_LOG", "info,sqlx=warn,poem=warn")
        .env_remove("DATABASE_URL")
        .env_remove("SMTP_URL")
        .env_remove("CAMPUS_ADMIN_EMAIL")
        .env_remove("CAMPUS_ADMIN_PASSWORD")
        .env_remove("CAMPUS_JWT_SECRET");
    cmd
}

fn collect(
    pipe: Option<impl tokio::io::AsyncRead + Unpin + Send + 'static>,
    into: Arc<Mutex<String>>,
) -> Option<tokio::task::JoinHandle<()>> {
    let pipe = pipe?;
    Some(tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(pipe).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let mut out = into.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    }))
}

impl Process {
    pub fn spawn(mut cmd: tokio::process::Command) -> Process {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the process");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let readers = [
            collect(child.stdout.take(), stdout.clone()),
            collect(child.stderr.take(), stderr.clone()),
        ];
        Process {
            child,
            stdout,
            stderr,
            readers: readers.into_iter().flatten().collect(),
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is running")
    }

    /// Waits until the standard output contains `text` (failing early if the process exits).
    pub async fn wait_for_stdout(&mut self, text: &str, timeout: Duration) -> String {
        let what = format!("{text:?} on the standard output");
        let child = &mut self.child;
        let stdout = self.stdout.clone();
        let stderr = self.stderr.clone();
        eventually(&what, timeout, || {
            let exited = child.try_wait().ok().flatten();
            let out = stdout.lock().unwrap().clone();
            if let Some(status) = exited.filter(|_| !out.contains(text)) {
                panic!(
                    "the process exited ({status}) before printing {text:?}\nstdout:\n{out}\nstderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
            async move { out.contains(text).then_some(out) }
        })
        .await
    }

    /// Waits for the exit and for the end of the output (every line the process printed is
    /// then in `stdout` and `stderr`), at most `timeout` each.
    pub async fn finish(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let status = self.wait_exit(timeout).await;
        for reader in self.readers.drain(..) {
            tokio::time::timeout(timeout, reader)
                .await
                .expect("the process's output ends")
                .expect("collect the output");
        }
        status
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "SIGTERM was delivered");
    }

    /// Waits for the exit (at most `timeout`: a hang is a failure) and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status.expect("wait for the process"),
            Err(_) => panic!(
                "the process did not exit within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            ),
        }
    }
}

/// Whether something accepts TCP connections on `addr` right now.
pub async fn accepts(addr: std::net::SocketAddr) -> bool {
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// A free loopback address (for a child process to listen on).
pub fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Fails every attempt (transiently: retried until its attempts are spent).
pub struct AlwaysFails;

#[async_trait]
impl TaskHandler for AlwaysFails {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        Err(TaskError::transient("the printer is on fire"))
    }
}

/// A task handler the test controls: every run is counted, and a run blocks until the test
/// calls [`Gate::open`] (runs after that return at once), unless its attempt number is at
/// least the one given to [`Gate::blocking_before_attempt`].
#[derive(Clone)]
pub struct Gate {
    runs: Arc<AtomicU32>,
    open: Arc<watch::Sender<bool>>,
    blocks_before_attempt: u32,
}

impl Gate {
    /// Blocks every attempt until opened.
    pub fn new() -> Gate {
        Gate::blocking_before_attempt(u32::MAX)
    }

    /// Blocks attempts numbered below `attempt` (e.g. 2: only the first attempt hangs).
    pub fn blocking_before_attempt(attempt: u32) -> Gate {
        Gate {
            runs: Arc::new(AtomicU32::new(0)),
            open: Arc::new(watch::channel(false).0),
            blocks_before_attempt: attempt,
        }
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// How many times a handler started.
    pub fn runs(&self) -> u32 {
        self.runs.load(Ordering::SeqCst)
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

#[async_trait]
impl TaskHandler for Gate {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if task.attempt < self.blocks_before_attempt {
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|o| *o).await;
        }
        Ok(())
    }
}

/// Fails permanently while `broken` is set (the "printer" of the tenant-scoping tests).
pub struct Printer {
    pub broken: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl TaskHandler for Printer {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(TaskError::permanent("printer on fire"))
        } else {
            Ok(())
        }
    }
}

/// A `ReportRequested` event of `institution` (one `print_report` task each in [`Tenants`]).
pub fn report(institution: &str, what: &str) -> campus_ports::NewEvent {
    campus_ports::NewEvent {
        event_type: "ReportRequested".into(),
        aggregate_type: "Report".into(),
        aggregate_id: 1,
        institution_id: Some(campus_core::ids::InstitutionId(
            uuid::Uuid::parse_str(institution).unwrap().as_u128(),
        )),
        payload: format!(r#"{{"report":"{what}"}}"#),
        correlation_id: None,
    }
}

/// Two institutions, each with dead `print_report` tasks, and an Adm user.
pub struct Tenants {
    pub app: TestApp,
    /// Set: `print_report` fails permanently; clear: it succeeds.
    pub broken: Arc<std::sync::atomic::AtomicBool>,
    /// Institution A ("Alpha College", Academic `alpha@<domain>` / `password-a`): two dead
    /// `print_report` tasks.
    pub a: String,
    /// Institution B ("Beta College", Academic `beta@<domain>` / `password-b`): one.
    pub b: String,
}

impl Tenants {
    /// `domain` keeps e-mail addresses apart between tests; the Adm user is `root@<domain>`
    /// with the password `root-password`.
    pub async fn spawn(domain: &str) -> Tenants {
        use campus_ports::EventStore;
        let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let printer = broken.clone();
        let adm = format!("root@{domain}");
        let app = TestApp::spawn_custom(
            move |s| {
                s.admin_email = Some(adm);
                s.admin_password = Some("root-password".into());
            },
            move |c| {
                c.default_registry()
                    .on_event("ReportRequested", "print_report", "print_report")
                    .task("print_report", Printer { broken: printer })
            },
        )
        .await;
        let (a, _) = app
            .create_institution("Alpha College", &format!("alpha@{domain}"), "password-a")
            .await;
        let (b, _) = app
            .create_institution("Beta College", &format!("beta@{domain}"), "password-b")
            .await;
        app.store()
            .append(&[
                report(&a, "grades"),
                report(&a, "attendance"),
                report(&b, "grades"),
            ])
            .await
            .unwrap();
        app.wait_for_idle().await;
        Tenants { app, broken, a, b }
    }

    /// Ids (text) of the rows `sql` selects (one uuid column, bound to `$1` = institution).
    pub async fn ids(&self, sql: &str, institution: &str) -> Vec<String> {
        sqlx::query_scalar(sql)
            .bind(institution)
            .fetch_all(&self.app.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The dead `print_report` tasks of `institution`, oldest first.
    pub async fn dead_reports(&self, institution: &str) -> Vec<String> {
        self.ids(
            "SELECT id::text FROM tasks WHERE task_type = 'print_report' AND status = 'dead'
             AND institution_id = $1::uuid ORDER BY id",
            institution,
        )
        .await
    }

    /// The `ReportRequested` events of `institution`, oldest first.
    pub async fn report_events(&self, institution: &str) -> Vec<String> {
        self.ids(
            "SELECT id::text FROM domain_events WHERE event_type = 'ReportRequested'
             AND institution_id = $1::uuid ORDER BY id",
            institution,
        )
        .await
    }

    /// Rows in `domain_events` plus rows in `tasks`: any write by a refused request shows here.
    pub async fn rows(&self) -> i64 {
        self.app
            .scalar("SELECT (SELECT count(*) FROM domain_events) + (SELECT count(*) FROM tasks)")
            .await
    }

    /// E-mail and password of a demo user of `institution` with `role` (seeded by the
    /// institution's demo-data task).
    pub async fn demo_user(&self, institution: &str, role: &str) -> (String, String) {
        let email: String = sqlx::query_scalar(
            "SELECT email FROM users WHERE institution_id = $1::uuid AND role = $2 ORDER BY email LIMIT 1",
        )
        .bind(institution)
        .bind(role)
        .fetch_one(&self.app.pool)
        .await
        .unwrap_or_else(|e| panic!("a demo {role} of {institution}: {e}"));
        (email, crate::DEMO_PASSWORD.to_string())
    }
}
