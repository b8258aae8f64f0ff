//! Start-up of the real `campus` binary: the default Adm user is created (and its password
//! printed once) on the first start and only named on later starts; and with no database
//! configured and no local server answering, `serve` starts a private PostgreSQL cluster,
//! creates its database, serves on it and stops the cluster when it stops.
//!
//! The private-cluster test needs the PostgreSQL server binaries (`/usr/lib/postgresql/*/bin`)
//! and root, as CI has: it runs `campus serve` in network and mount namespaces of its own
//! (`unshare --net --mount`, so that no server answers on localhost:5432 there, and an empty
//! `/var/run/postgresql` hides the local server's socket) and talks to it through `nsenter` +
//! `curl`.

use campus_adapters::pg::testing::{drop_database, fresh_database};
use campus_tests::extra::{campus_command, free_addr, Process};
use campus_tests::{eventually, wait_for_port, SmtpServer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_ADM: &str = "admin@campus.localhost";

/// `campus serve` on `db_url`, listening on a free port; returns it once it answers.
async fn serve(
    db_url: &str,
    smtp: &SmtpServer,
    data_dir: &Path,
    extra_env: &[(&str, &str)],
) -> (Process, String) {
    let addr = free_addr();
    let mut cmd = campus_command(&["serve"]);
    cmd.env("DATABASE_URL", db_url)
        .env("CAMPUS_ADDR", addr.to_string())
        .env("SMTP_URL", smtp.url())
        .env("CAMPUS_DATA_DIR", data_dir);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut process = Process::spawn(cmd);
    process
        .wait_for_stdout("Campus is running", Duration::from_secs(120))
        .await;
    wait_for_port("campus serve", addr.port(), Duration::from_secs(20)).await;
    (process, format!("http://{addr}"))
}

async fn stop(mut process: Process) {
    process.terminate();
    let exit = process.wait_exit(Duration::from_secs(30)).await;
    assert!(exit.success(), "{exit:?}\n{}", process.stderr());
}

/// Logs in; returns the status and the access token (if any).
async fn login(base: &str, email: &str, password: &str) -> (u16, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{base}/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    (status, body["access_token"].as_str().map(str::to_string))
}

/// The password a first start handed over: standard output is a pipe here, not a
/// terminal, so it is not printed but written to a file only its owner can read, which the
/// banner names.
fn handed_over_password(stdout: &str, data_dir: &Path) -> String {
    let file = data_dir.join("admin-password");
    assert!(
        stdout.contains(&format!("written to {}", file.display())),
        "the banner names the password file:\n{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "only its owner reads the password file"
        );
    }
    let content = std::fs::read_to_string(&file).unwrap();
    let password = content
        .strip_prefix(&format!("{DEFAULT_ADM} "))
        .unwrap_or_else(|| panic!("e-mail and password in {}", file.display()))
        .trim()
        .to_string();
    assert!(
        !stdout.contains(&password),
        "the password never reaches the log"
    );
    password
}

#[tokio::test]
async fn the_first_start_creates_the_default_adm_and_later_starts_only_name_it() {
    let (url, pool) = fresh_database("campus_e2e_first_start").await.unwrap();
    let smtp = SmtpServer::start().await;
    let data_dir =
        std::env::temp_dir().join(format!("campus-start-{}", uuid::Uuid::new_v4().simple()));
    let adm_users = || async {
        sqlx::query_as::<_, (String, String)>(
            "SELECT role, password_hash FROM users WHERE email = $1",
        )
        .bind(DEFAULT_ADM)
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    assert!(adm_users().await.is_empty());

    // First start: the user is created and its generated password handed over once.
    let (first, base) = serve(&url, &smtp, &data_dir, &[]).await;
    let password = handed_over_password(&first.stdout(), &data_dir);
    assert!(password.len() >= 16, "a strong generated password");
    let users = adm_users().await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].0, "adm");
    assert!(
        !users[0].1.contains(&password),
        "only the password's hash is stored"
    );
    let (status, token) = login(&base, DEFAULT_ADM, &password).await;
    assert_eq!(status, 200, "the printed password logs in");
    let summary = reqwest::Client::new()
        .get(format!("{base}/adm/summary"))
        .bearer_auth(token.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(summary.status().as_u16(), 200, "as an Adm user");
    stop(first).await;

    // Later start: no new user, no password printed, the user is named.
    let (second, base) = serve(&url, &smtp, &data_dir, &[]).await;
    let out = second.stdout();
    assert!(
        out.contains(&format!(
            "log in as {DEFAULT_ADM} (its password was printed when it was created"
        )),
        "{out}"
    );
    assert!(
        !out.contains(&password),
        "the password is never printed again"
    );
    assert!(
        !out.contains(&format!("log in as {DEFAULT_ADM} with the password")),
        "{out}"
    );
    let again = adm_users().await;
    assert_eq!(again, users, "the user is neither duplicated nor changed");
    assert_eq!(login(&base, DEFAULT_ADM, &password).await.0, 200);
    stop(second).await;

    // With CAMPUS_ADMIN_EMAIL/PASSWORD on another fresh database: that user, no default one.
    let (url2, pool2) = fresh_database("campus_e2e_first_start").await.unwrap();
    let (third, base) = serve(
        &url2,
        &smtp,
        &data_dir,
        &[
            ("CAMPUS_ADMIN_EMAIL", "chosen@campus.test"),
            ("CAMPUS_ADMIN_PASSWORD", "chosen-password"),
        ],
    )
    .await;
    assert!(third
        .stdout()
        .contains("log in as chosen@campus.test (password from CAMPUS_ADMIN_PASSWORD)"));
    assert_eq!(
        login(&base, "chosen@campus.test", "chosen-password")
            .await
            .0,
        200
    );
    let defaults: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = $1")
        .bind(DEFAULT_ADM)
        .fetch_one(&pool2)
        .await
        .unwrap();
    assert_eq!(defaults, 0, "no default Adm user when one is configured");
    stop(third).await;

    pool.close().await;
    pool2.close().await;
    drop_database(&url).await.unwrap();
    drop_database(&url2).await.unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// `initdb` of an installed PostgreSQL server (Debian's layout).
fn server_binaries() -> Option<PathBuf> {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .find(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
}

/// Stops a cluster left running by a failed test (SIGQUIT: immediate shutdown) and removes
/// its files.
struct ClusterGuard(PathBuf);

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        if let Some(pid) = postmaster_pid(&self.0.join("pgdata")) {
            let _ = std::process::Command::new("kill")
                .args(["-QUIT", &pid.to_string()])
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn postmaster_pid(pgdata: &Path) -> Option<u32> {
    std::fs::read_to_string(pgdata.join("postmaster.pid"))
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Runs `curl` inside the network namespace of `pid`; returns (HTTP status, body).
fn curl_in(pid: u32, args: &[&str]) -> (u16, String) {
    let out = std::process::Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-n",
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .output()
        .expect("run nsenter + curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

#[tokio::test]
async fn serve_without_a_database_runs_on_a_private_cluster_and_stops_it() {
    let bin = server_binaries().expect(
        "this test needs the PostgreSQL server binaries in /usr/lib/postgresql/*/bin (initdb, pg_ctl)",
    );
    println!("server binaries: {}", bin.display());
    let data_dir =
        std::env::temp_dir().join(format!("campus-private-{}", uuid::Uuid::new_v4().simple()));
    let guard = ClusterGuard(data_dir.clone());
    let pgdata = data_dir.join("pgdata");

    // Namespaces of its own: no server answers on localhost:5432 there nor through the local
    // socket (so `serve` falls back to the private cluster), and the cluster's fixed port is
    // free.
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args([
        "--net",
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs -o mode=1777 campus-no-socket /var/run/postgresql \
         && ip link set lo up && exec \"$0\" serve",
    ])
    .arg(campus_tests::campus_binary())
    .env("CAMPUS_DATA_DIR", &data_dir)
    .env("CAMPUS_ADDR", "127.0.0.1:8080")
    .env("RUST_LOG", "info,sqlx=warn,poem=warn")
    .env_remove("DATABASE_URL")
    .env_remove("SMTP_URL")
    .env_remove("CAMPUS_ADMIN_EMAIL")
    .env_remove("CAMPUS_ADMIN_PASSWORD");
    let mut serve = Process::spawn(cmd);
    let banner = serve
        .wait_for_stdout("Campus is running", Duration::from_secs(180))
        .await;
    assert!(banner.contains("private cluster in"), "{banner}");
    assert!(
        pgdata.join("PG_VERSION").is_file(),
        "the cluster was initialised in the data directory"
    );
    let pid = serve.pid();
    // Ready once its daemon's LISTEN connection is up, moments after the API answers.
    eventually(
        "ready on the private cluster",
        Duration::from_secs(30),
        || async {
            let r = curl_in(pid, &["http://127.0.0.1:8080/health/ready"]);
            (r.0 == 200).then_some(r)
        },
    )
    .await;
    // The database it created is writable: an institution is created and its demo data seeded.
    let (status, body) = curl_in(
        pid,
        &[
            "-X",
            "POST",
            "http://127.0.0.1:8080/institutions",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"name":"Private College","academic":{"name":"Ana","email":"ana@private.test","password":"ana-password"}}"#,
        ],
    );
    assert_eq!(status, 201, "{body}");
    let postmaster = postmaster_pid(&pgdata).expect("the cluster runs (postmaster.pid)");
    assert!(Path::new(&format!("/proc/{postmaster}")).exists());

    // Stopping the process stops the cluster.
    serve.terminate();
    let exit = serve.wait_exit(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}\n{}", serve.stderr());
    eventually("the cluster to stop", Duration::from_secs(30), || async {
        (!Path::new(&format!("/proc/{postmaster}")).exists()
            && !pgdata.join("postmaster.pid").exists())
        .then_some(())
    })
    .await;
    drop(guard);
}
