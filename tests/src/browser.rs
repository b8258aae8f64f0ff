//! A real headless Chromium driven over WebDriver (chromedriver + fantoccini), for the admin
//! screen's end-to-end tests. Needs Debian's `chromium` and `chromium-driver` (`.ci/run`
//! installs them). Screenshots go to `target/screenshots/`. Accessibility is checked with
//! axe-core (`tests/assets/axe.min.js`, vendored), injected into the page under test.

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::path::PathBuf;
use std::time::Duration;

/// axe-core, run inside the page under test (MPL-2.0; see `tests/assets/README.md`).
const AXE: &str = include_str!("../assets/axe.min.js");

/// The rules axe applies: WCAG 2.0 and 2.1 at levels A and AA, and axe's best practices
/// (landmarks, regions, heading order).
pub const AXE_TAGS: [&str; 5] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];

/// Runs axe over the document and lists every violating node as
/// `[rule, impact, target selectors, help, what fails]`. Collapsed `<details>` are opened
/// first so that what they hide is checked too.
const AXE_RUN: &str = "
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const tags = arguments[0];
  const options = tags.length ? { runOnly: { type: 'tag', values: tags } } : {};
  options.resultTypes = ['violations'];
  return axe.run(document, options).then(r => r.violations.flatMap(v => v.nodes.map(n => [
    v.id, v.impact || '',
    n.target.map(t => Array.isArray(t) ? t.join(' >>> ') : String(t)).join(', '),
    v.help, (n.failureSummary || '').replace(/\\s+/g, ' '),
  ])));";

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

    /// Fills and sends the admin screen's login form, which the current page must be (or lead
    /// to within `wait`).
    pub async fn log_in(&self, email: &str, password: &str, wait: std::time::Duration) {
        let c = &self.client;
        c.wait()
            .at_most(wait)
            .for_element(fantoccini::Locator::Css("form.login"))
            .await
            .expect("the login page");
        // A refused login comes back with the e-mail filled in: replace it.
        for (field, value) in [("#email", email), ("#password", password)] {
            let input = c.find(fantoccini::Locator::Css(field)).await.unwrap();
            input.clear().await.unwrap();
            input.send_keys(value).await.unwrap();
        }
        c.find(fantoccini::Locator::Css("form.login button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = super::target_dir().join("screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Every node of the current page that breaks an axe rule with one of `tags` (all rules
    /// when empty), one line each: rule id, impact, target selectors, what fails.
    pub async fn accessibility_violations(&self, tags: &[&str]) -> Vec<String> {
        let c = &self.client;
        c.execute(&format!("{AXE}\nreturn typeof axe;"), vec![])
            .await
            .expect("axe-core injected into the page");
        let found = c
            .execute(AXE_RUN, vec![json!(tags)])
            .await
            .expect("axe.run to finish");
        let nodes: Vec<[String; 5]> =
            serde_json::from_value(found).expect("axe's violations as [rule, impact, …] rows");
        nodes
            .into_iter()
            .map(|[rule, impact, target, help, summary]| {
                format!("{rule} ({impact}) at {target}: {help}. {summary}")
            })
            .collect()
    }

    /// Ends the session and stops chromedriver.
    pub async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill().await;
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
