//! Phase (4): API latency at a fixed request rate, measured by this process's HTTP client
//! against a `campus api` child: reset-link requests (each e-mailed through the SMTP sink by
//! the daemon) and grade notes written by a demo teacher.

use super::load::{open_loop, OpenLoop};
use super::phases::wait_until_idle;
use super::processes::{Scratch, DEMO_PASSWORD};
use super::report::BenchReport;
use super::{err, progress};
use crate::cli::BenchArgs;
use campus_core::ids::InstitutionId;
use std::time::{Duration, Instant};

/// The Academic user of the bench's institution (its reset links are what phase 4 requests).
pub(super) const ACADEMIC_EMAIL: &str = "bench-academic@campus.test";
pub(super) const ACADEMIC_PASSWORD: &str = "bench-password";

/// A demo teacher, logged in, with the (class, student) pairs it may grade.
struct Teacher {
    token: String,
    pairs: Vec<(uuid::Uuid, uuid::Uuid)>,
    institution: InstitutionId,
}

/// Runs the phase; returns the API's base URL and the bench institution (the API keeps
/// running for phase 5).
pub(super) async fn api_phase(
    s: &mut Scratch,
    args: &BenchArgs,
    report: &mut BenchReport,
) -> Result<(String, InstitutionId), String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(err)?;
    progress("[4/4] starting `campus api` and an institution with demo data");
    let base = start_api(s, &http).await?;
    let teacher = institution_with_demo_teacher(s, &http, &base).await?;
    let institution = teacher.institution;

    progress(&format!(
        "[4/4] POST /auth/reset-password-token at {} req/s for {} s",
        args.rate, args.api_seconds
    ));
    let reset = open_loop(args.rate, args.api_seconds, {
        let http = http.clone();
        let url = format!("{base}/auth/reset-password-token");
        move |_| {
            http.post(url.clone())
                .json(&serde_json::json!({"email": ACADEMIC_EMAIL}))
        }
    })
    .await;
    progress(&format!(
        "[4/4] PUT …/notes at {} req/s for {} s",
        args.rate, args.api_seconds
    ));
    let notes = open_loop(args.rate, args.api_seconds, {
        let http = http.clone();
        let base = base.clone();
        let Teacher { token, pairs, .. } = teacher;
        move |i| {
            let (class, student) = pairs[i % pairs.len()];
            http.put(format!(
                "{base}/teacher/classes/{class}/students/{student}/notes"
            ))
            .bearer_auth(&token)
            .json(&serde_json::json!({"exam": "N3", "note": (i % 21) as f64 / 2.0}))
        }
    })
    .await;
    if let Some(path) = &args.api_trace {
        write_trace(path, &[("reset-password-token", &reset), ("notes", &notes)])?;
    }
    report.api_errors = reset.errors + notes.errors;
    (report.api_reset_token_p50_ms, report.api_reset_token_p99_ms) =
        (reset.latency.p50, reset.latency.p99);
    (report.api_grade_note_p50_ms, report.api_grade_note_p99_ms) =
        (notes.latency.p50, notes.latency.p99);
    report.api_p99_ms = reset.latency.p99.max(notes.latency.p99);
    report.api_service_p99_ms = reset.service.p99.max(notes.service.p99);
    report.api_send_lag_p99_ms = reset.send_lag.p99.max(notes.send_lag.p99);
    report.api_send_lag_max_ms = reset.send_lag.max.max(notes.send_lag.max);
    wait_until_idle(&s.db, Duration::from_secs(120), false).await?;
    report.emails_received = s.smtp.received();
    Ok((base, institution))
}

/// Writes the requests of the API phase as CSV (see `BenchArgs::api_trace`).
fn write_trace(path: &std::path::Path, runs: &[(&str, &OpenLoop)]) -> Result<(), String> {
    let mut csv = String::from("endpoint,scheduled_unix_s,latency_ms,service_ms,ok\n");
    for (endpoint, run) in runs {
        for r in &run.requests {
            csv.push_str(&format!(
                "{endpoint},{:.6},{:.3},{:.3},{}\n",
                r.scheduled_unix_s, r.latency_ms, r.service_ms, r.ok
            ));
        }
    }
    std::fs::write(path, csv).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Logs `email` in through the API; returns the access token.
pub(super) async fn login(
    http: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> Result<String, String> {
    let login: serde_json::Value = http
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .map_err(err)?
        .json()
        .await
        .map_err(err)?;
    login["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("the login of {email} failed"))
}

/// Starts `campus api` on a free port and waits until it is ready; returns its base URL.
async fn start_api(s: &mut Scratch, http: &reqwest::Client) -> Result<String, String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(err)?
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut api = s.command("api", 1)?;
    api.env("CAMPUS_ADDR", format!("127.0.0.1:{port}"));
    s.spawn(api, "API")?;
    let ready = Instant::now();
    while http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        if ready.elapsed() > Duration::from_secs(60) {
            return Err("the API did not become ready".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(base)
}

/// Creates an institution, waits for its demo data (seeded by a task) and logs in as the
/// first demo teacher with enrolled students.
async fn institution_with_demo_teacher(
    s: &Scratch,
    http: &reqwest::Client,
    base: &str,
) -> Result<Teacher, String> {
    let r = http
        .post(format!("{base}/institutions"))
        .json(&serde_json::json!({"name": "Bench College", "academic": {"name": "Bench", "email": ACADEMIC_EMAIL, "password": ACADEMIC_PASSWORD}}))
        .send()
        .await
        .map_err(err)?;
    if r.status().as_u16() != 201 {
        return Err(format!("creating the institution failed: {}", r.status()));
    }
    let created: serde_json::Value = r.json().await.map_err(err)?;
    let institution = created["institution_id"]
        .as_str()
        .and_then(|i| uuid::Uuid::parse_str(i).ok())
        .map(|i| InstitutionId(i.as_u128()))
        .ok_or("the new institution has no id")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (teacher_email, pairs) = loop {
        let enrollments = s.db.demo_enrollments().await.map_err(err)?;
        if let Some(first) = enrollments.first() {
            let email = first.teacher_email.clone();
            let pairs: Vec<_> = enrollments
                .into_iter()
                .filter(|e| e.teacher_email == email)
                .map(|e| (e.class_id, e.student_id))
                .collect();
            break (email, pairs);
        }
        if Instant::now() > deadline {
            return Err("the demo data did not appear".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let token = login(http, base, &teacher_email, DEMO_PASSWORD).await?;
    Ok(Teacher {
        token,
        pairs,
        institution,
    })
}
