//! A real headless Chromium driven over WebDriver (chromedriver + fantoccini), for the admin
//! screen's end-to-end tests. Needs Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them). Screenshots go to `target/screenshots/`.

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// Chromium under chromedriver, each with a fresh profile, stopped on `stop` (or drop).
pub struct Browser {
    pub client: Client,
    driver: tokio::process::Child,
    profile: PathBuf,
}

fn program(name: &str, fallback: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fallback.to_string())
}

impl Browser {
    /// Starts chromedriver on a port it picks and opens a headless Chromium session.
    pub async fn start() -> Browser {
        let chromedriver = program("CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = program("CHROMIUM", "/usr/bin/chromium");
        // Port 0: chromedriver binds a free port itself and says which.
        let mut driver = tokio::process::Command::new(&chromedriver)
            .arg("--port=0")
            .kill_on_drop(true)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {chromedriver} (apt-get install chromium chromium-driver): {e}"
                )
            });
        let port = super::announced_port(&mut driver, |line| {
            line.split("started successfully on port ")
                .nth(1)?
                .trim_end_matches('.')
                .trim()
                .parse()
                .ok()
        })
        .await
        .expect("chromedriver to say which port it listens on");
        super::wait_for_port("chromedriver", port, Duration::from_secs(20)).await;
        let profile =
            std::env::temp_dir().join(format!("campus-chromium-{}", uuid::Uuid::new_v4().simple()));
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        });
        // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps.as_object().cloned().unwrap_or_default());
        let client = builder
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session from chromedriver");
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png` and returns its path.
    /// Fills and sends the admin screen's login form, which the current page must be (or lead
    /// to within `wait`).
    pub async fn log_in(&self, email: &str, password: &str, wait: std::time::Duration) {
        let c = &self.client;
        c.wait()
            .at_most(wait)
            .for_element(fantoccini::Locator::Css("form.login"))
            .await
            .expect("the login page");
        for (field, value) in [("#email", email), ("#password", password)] {
            c.find(fantoccini::Locator::Css(field))
                .await
                .unwrap()
                .send_keys(value)
                .await
                .unwrap();
        }
        c.find(fantoccini::Locator::Css("form.login button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = super::target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the session and stops chromedriver.
    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
