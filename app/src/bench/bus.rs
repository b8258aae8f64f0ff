//! Phase (6), with `--bus N`: the event bus. With `CAMPUS_BUS_URL` set (the bench's processes
//! then publish every institution event), it measures the broker's publish rate with
//! confirms (this process publishing 64 at a time through `RabbitBus` to a durable queue of
//! its own), then N events
//! committed at once until a consumer in this process has taken every one (events/s) and,
//! at light load, one at a time (commit → consumed). Without it, the same N events committed
//! at once until each is dispatched: the rate with the bus off, to compare with.

use super::report::{summarize, BenchReport};
use super::webhooks::{arrived, event, message_id, Arrivals};
use super::{err, processes::Scratch, progress};
use campus_adapters::bus::consumer::{consume, declare_queue, delete_queue, Delivered, Verdict};
use campus_adapters::bus::RabbitBus;
use campus_core::ids::InstitutionId;
use campus_ports::{BusMessage, EventBus, EventStore};
use futures::StreamExt;
use std::time::{Duration, Instant};

/// Events measured one at a time at light load.
const LIGHT_LOAD_EVENTS: usize = 200;

/// Publishes in flight when measuring the broker alone.
const IN_FLIGHT: usize = 64;

/// Runs the phase for the bench's institution.
pub(super) async fn bus_phase(
    s: &Scratch,
    bus_url: Option<&str>,
    institution: InstitutionId,
    events: usize,
    report: &mut BenchReport,
) -> Result<(), String> {
    report.bus_events = events;
    let Some(url) = bus_url else {
        progress(&format!(
            "[6/6] bus off: {events} events committed at once, until dispatched"
        ));
        let started = Instant::now();
        commit(s, institution, events).await?;
        wait_dispatched(s).await?;
        report.bus_events_per_s = events as f64 / started.elapsed().as_secs_f64();
        return Ok(());
    };
    report.bus_on = true;

    progress(&format!(
        "[6/6] bus: {events} messages published with confirms, {IN_FLIGHT} in flight"
    ));
    let bus = RabbitBus::new(url).map_err(err)?;
    bus.declare().await.map_err(err)?;
    // A durable queue takes them, so each confirm covers a persisted message (the broker
    // confirms an unroutable one at once).
    let probe = format!("campus-bench-probe-{}", uuid::Uuid::new_v4().simple());
    declare_queue(url, &probe, &["bench.BusProbe".to_string()])
        .await
        .map_err(err)?;
    let started = Instant::now();
    let published: Vec<Result<(), campus_ports::PortError>> = futures::stream::iter(0..events)
        .map(|n| {
            let bus = &bus;
            async move {
                bus.publish(&BusMessage {
                    message_id: format!("bench-{n}"),
                    routing_key: "bench.BusProbe".into(),
                    event_type: "BusProbe".into(),
                    correlation_id: None,
                    body: b"{}".to_vec(),
                })
                .await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    report.bus_confirms_per_s = events as f64 / started.elapsed().as_secs_f64();
    delete_queue(url, &probe).await.map_err(err)?;
    published
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map_err(err)?;

    let queue = format!("campus-bench-{}", uuid::Uuid::new_v4().simple());
    let binding = BusMessage::routing_key(
        Some(&uuid::Uuid::from_u128(institution.0).to_string()),
        "DisciplineCreated",
    );
    declare_queue(url, &queue, std::slice::from_ref(&binding))
        .await
        .map_err(err)?;
    let arrivals = Arrivals::default();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let consumer = {
        let (url, queue, seen) = (url.to_string(), queue.clone(), arrivals.clone());
        tokio::spawn(async move {
            consume(
                &url,
                &queue,
                &[binding],
                500,
                shutdown,
                move |m: Delivered| {
                    if let Some(id) = m.message_id {
                        seen.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(id)
                            .or_insert_with(Instant::now);
                    }
                    async { Verdict::Ack }
                },
            )
            .await
        })
    };
    let measured = through_the_engine(s, &arrivals, institution, events, report).await;
    let _ = stop.send(true);
    let consumed = consumer.await.map_err(err)?;
    delete_queue(url, &queue).await.map_err(err)?;
    measured?;
    consumed.map_err(err)
}

/// N events at once, then one at a time, each until the consumer has it.
async fn through_the_engine(
    s: &Scratch,
    arrivals: &Arrivals,
    institution: InstitutionId,
    events: usize,
    report: &mut BenchReport,
) -> Result<(), String> {
    progress(&format!(
        "[6/6] bus: {events} events committed at once, until consumed"
    ));
    let started = Instant::now();
    let ids = commit(s, institution, events).await?;
    let last = arrived(arrivals, &ids, Duration::from_secs(600)).await?;
    report.bus_events_per_s = events as f64 / (last - started).as_secs_f64();

    progress(&format!(
        "[6/6] bus: {LIGHT_LOAD_EVENTS} events one at a time"
    ));
    let mut latencies = Vec::with_capacity(LIGHT_LOAD_EVENTS);
    for _ in 0..LIGHT_LOAD_EVENTS {
        let committed = Instant::now();
        let id = commit(s, institution, 1).await?.remove(0);
        let at = arrived(arrivals, std::slice::from_ref(&id), Duration::from_secs(30)).await?;
        latencies.push(at.saturating_duration_since(committed).as_secs_f64() * 1000.0);
    }
    let l = summarize(latencies);
    (
        report.bus_latency_p50_ms,
        report.bus_latency_p99_ms,
        report.bus_latency_max_ms,
    ) = (l.p50, l.p99, l.max);
    Ok(())
}

/// Commits `events` discipline events in batches of 500; returns their ids.
async fn commit(
    s: &Scratch,
    institution: InstitutionId,
    events: usize,
) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(events);
    for chunk in (0..events).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk.iter().map(|n| event(institution, *n)).collect();
        let appended = s.store.append(&batch).await.map_err(err)?;
        ids.extend(appended.into_iter().map(message_id));
    }
    Ok(ids)
}

/// Waits until no event waits to be dispatched.
async fn wait_dispatched(s: &Scratch) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM domain_events WHERE status IN ('pending', 'retrying')",
        )
        .fetch_one(s.db.pool())
        .await
        .map_err(err)?;
        if waiting == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{waiting} events still waiting after 600 s"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
