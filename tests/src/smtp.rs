//! The tests' SMTP server: aiosmtpd (installed from PyPI when missing) on a port it picks,
//! storing every message it receives in a Maildir the tests read.

use super::{announced_port, eventually, wait_for_port};
use std::path::PathBuf;
use std::time::Duration;

/// aiosmtpd (its SMTP protocol and Maildir handler) on a socket it binds itself: port 0 picks
/// a free port, announced on the first line of output.
const SMTP_SERVER: &str = r#"
import asyncio, sys
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

async def main():
    handler = Mailbox(sys.argv[2])
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler), "127.0.0.1", int(sys.argv[1]))
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// Installs aiosmtpd from PyPI (once per test process) if `python` lacks it, so the test
/// command works on a fresh machine.
fn ensure_aiosmtpd(python: &str) {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let present = std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            let installed = std::process::Command::new(python)
                .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                installed,
                "aiosmtpd is missing and `{python} -m pip install aiosmtpd` failed"
            );
        }
    });
}

/// A real SMTP server (aiosmtpd from PyPI) writing every message into a Maildir.
pub struct SmtpServer {
    child: Option<tokio::process::Child>,
    pub port: u16,
    pub maildir: PathBuf,
}

impl SmtpServer {
    /// Starts aiosmtpd on a port it picks and waits until it accepts connections.
    pub async fn start() -> SmtpServer {
        let maildir =
            std::env::temp_dir().join(format!("campus-maildir-{}", uuid::Uuid::new_v4().simple()));
        let mut server = SmtpServer {
            child: None,
            port: 0,
            maildir,
        };
        server.spawn().await;
        server
    }

    /// Starts the server on `self.port` (0: any free port). A restart needs the same port
    /// (the app's SMTP URL names it); should another process hold it meanwhile, binding is
    /// retried until it is free again, and never shared.
    async fn spawn(&mut self) {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        ensure_aiosmtpd(&python);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = tokio::process::Command::new(&python)
                .args(["-c", SMTP_SERVER, &self.port.to_string()])
                .arg(&self.maildir)
                .kill_on_drop(true)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start aiosmtpd with {python} (pip install aiosmtpd): {e}")
                });
            if let Some(port) = announced_port(&mut child, |l| l.trim().parse().ok()).await {
                self.port = port;
                self.child = Some(child);
                break;
            }
            let _ = child.kill().await;
            assert!(
                tokio::time::Instant::now() < deadline,
                "aiosmtpd could not listen on port {} of 127.0.0.1",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_for_port("aiosmtpd", self.port, Duration::from_secs(15)).await;
    }

    /// Stops the server (connections are refused until `restart`).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }

    /// Starts it again on the same port and Maildir.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far (raw RFC 5322 text).
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .collect()
    }

    /// Messages addressed to `to`.
    pub fn messages_to(&self, to: &str) -> Vec<String> {
        let header = format!("To: {to}");
        self.messages()
            .into_iter()
            .filter(|m| m.lines().any(|l| l.eq_ignore_ascii_case(&header)))
            .collect()
    }

    /// Waits until at least `n` messages reached `to` and returns them all.
    pub async fn wait_for_messages(&self, to: &str, n: usize) -> Vec<String> {
        eventually(
            &format!("{n} e-mail(s) to {to}"),
            Duration::from_secs(20),
            || async {
                let m = self.messages_to(to);
                (m.len() >= n).then_some(m)
            },
        )
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}
