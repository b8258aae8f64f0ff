//! Phase (5), with `--webhooks N`: webhook deliveries to a receiver in this process that
//! answers 204 at once. The bench's institution subscribes to `DisciplineCreated` through the
//! API; then N events are committed at once (deliveries per second, from the first commit to
//! the last delivery received) and, at light load, one at a time (commit → delivery received).

use super::api::{login, ACADEMIC_EMAIL, ACADEMIC_PASSWORD};
use super::processes::Scratch;
use super::report::{summarize, BenchReport, Summary};
use super::{err, progress};
use campus_core::ids::InstitutionId;
use campus_ports::{EventStore, NewEvent};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Events measured one at a time at light load.
const LIGHT_LOAD_EVENTS: usize = 200;

/// When each message id arrived (a webhook-id, a bus message_id).
pub(super) type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// A receiver on 127.0.0.1 answering 204 to every delivery, until the returned task ends.
fn start_receiver() -> Result<(String, Arrivals, tokio::task::JoinHandle<()>), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    let url = format!("http://{}/hook", listener.local_addr().map_err(err)?);
    let acceptor = poem::listener::TcpAcceptor::from_std(listener).map_err(err)?;
    let arrivals: Arrivals = Arc::default();
    let seen = arrivals.clone();
    let endpoint = poem::endpoint::make_sync(move |req: poem::Request| {
        if let Some(id) = req.header("webhook-id") {
            seen.lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(id.to_string())
                .or_insert_with(Instant::now);
        }
        poem::http::StatusCode::NO_CONTENT
    });
    let server = tokio::spawn(async move {
        let _ = poem::Server::new_with_acceptor(acceptor)
            .run(endpoint)
            .await;
    });
    Ok((url, arrivals, server))
}

fn event(institution: InstitutionId, n: usize) -> NewEvent {
    let id = uuid::Uuid::now_v7();
    NewEvent {
        event_type: "DisciplineCreated".into(),
        aggregate_type: "Discipline".into(),
        aggregate_id: id.as_u128(),
        institution_id: Some(institution),
        payload: serde_json::json!({
            "discipline_id": id,
            "institution_id": uuid::Uuid::from_u128(institution.0),
            "name": format!("Bench discipline {n}"),
        })
        .to_string(),
        correlation_id: None,
    }
}

fn message_id(id: campus_core::ids::EventId) -> String {
    uuid::Uuid::from_u128(id.0).to_string()
}

/// Waits until every id of `ids` arrived; returns the last arrival.
pub(super) async fn arrived(
    arrivals: &Arrivals,
    ids: &[String],
    timeout: Duration,
) -> Result<Instant, String> {
    let deadline = Instant::now() + timeout;
    loop {
        {
            let got = arrivals.lock().unwrap_or_else(|e| e.into_inner());
            let times: Option<Vec<Instant>> = ids.iter().map(|id| got.get(id).copied()).collect();
            if let Some(times) = times {
                return Ok(times.into_iter().max().unwrap_or_else(Instant::now));
            }
        }
        if Instant::now() > deadline {
            let got = arrivals.lock().unwrap_or_else(|e| e.into_inner()).len();
            return Err(format!(
                "the messages did not all arrive within {timeout:?} ({got} received so far)"
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs the phase against the API at `base`, as the bench institution's Academic user.
pub(super) async fn webhook_phase(
    s: &Scratch,
    base: &str,
    institution: InstitutionId,
    events: usize,
    report: &mut BenchReport,
) -> Result<(), String> {
    let http = reqwest::Client::new();
    let (url, arrivals, receiver) = start_receiver()?;
    let token = login(&http, base, ACADEMIC_EMAIL, ACADEMIC_PASSWORD).await?;
    let r = http
        .post(format!("{base}/academic/webhooks"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"url": url, "event_types": ["DisciplineCreated"]}))
        .send()
        .await
        .map_err(err)?;
    if r.status().as_u16() != 201 {
        return Err(format!(
            "subscribing failed: {}",
            r.text().await.map_err(err)?
        ));
    }
    // The daemon sees a subscription made through the API within a second: warm up until an
    // event is delivered.
    progress("[5/5] webhooks: waiting for the daemon to see the subscription");
    let warm = Instant::now();
    loop {
        let ids = commit(s, institution, 1).await?;
        if arrived(&arrivals, &ids, Duration::from_secs(2))
            .await
            .is_ok()
        {
            break;
        }
        if warm.elapsed() > Duration::from_secs(30) {
            return Err("no webhook delivery arrived within 30 s".into());
        }
    }

    let (rate, latency) =
        committed_to_arrived(s, &arrivals, institution, events, "[5/5] webhooks").await?;
    report.webhook_events = events;
    report.webhook_deliveries_per_s = rate;
    (
        report.webhook_latency_p50_ms,
        report.webhook_latency_p99_ms,
        report.webhook_latency_max_ms,
    ) = (latency.p50, latency.p99, latency.max);
    receiver.abort();
    Ok(())
}

/// Commits `events` discipline events in batches of 500; returns their message ids.
pub(super) async fn commit(
    s: &Scratch,
    institution: InstitutionId,
    events: usize,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(events);
    for chunk in (0..events).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<NewEvent> = chunk.iter().map(|n| event(institution, *n)).collect();
        let appended = s.store.append(&batch).await.map_err(err)?;
        ids.extend(appended.into_iter().map(message_id));
    }
    Ok(ids)
}

/// `events` committed at once until every one arrived (events per second, from the first
/// commit to the last arrival), then [`LIGHT_LOAD_EVENTS`] one at a time (commit → arrival).
pub(super) async fn committed_to_arrived(
    s: &Scratch,
    arrivals: &Arrivals,
    institution: InstitutionId,
    events: usize,
    phase: &str,
) -> Result<(f64, Summary), String> {
    progress(&format!("{phase}: {events} events committed at once"));
    let started = Instant::now();
    let ids = commit(s, institution, events).await?;
    let last = arrived(arrivals, &ids, Duration::from_secs(600)).await?;
    let rate = events as f64 / (last - started).as_secs_f64();

    progress(&format!(
        "{phase}: {LIGHT_LOAD_EVENTS} events one at a time"
    ));
    let mut latencies = Vec::with_capacity(LIGHT_LOAD_EVENTS);
    for _ in 0..LIGHT_LOAD_EVENTS {
        // From just before the insert: the message may arrive before `append` returns.
        let committed = Instant::now();
        let id = commit(s, institution, 1).await?;
        let at = arrived(arrivals, &id, Duration::from_secs(30)).await?;
        latencies.push(at.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    Ok((rate, summarize(latencies)))
}
