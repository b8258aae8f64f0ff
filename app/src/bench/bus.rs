//! Phase (6), with `--bus N`: the event bus. With `CAMPUS_BUS_URL` set (the bench's processes
//! then publish every institution event), it measures the broker's publish rate with
//! confirms (this process publishing 64 at a time through `RabbitBus` to a durable queue of
//! its own), then N events
//! committed at once until a consumer in this process has taken every one (events/s) and,
//! at light load, one at a time (commit → consumed). Without it, the same N events committed
//! at once until each is dispatched: the rate with the bus off, to compare with.

use super::report::BenchReport;
use super::webhooks::{commit, committed_to_arrived, Arrivals};
use super::{err, processes::Scratch, progress};
use campus_adapters::bus::consumer::{consume, declare_queue, delete_queue, Delivered, Verdict};
use campus_adapters::bus::RabbitBus;
use campus_core::ids::InstitutionId;
use campus_ports::{BusMessage, EventBus};
use futures::StreamExt;
use std::time::{Duration, Instant};

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
    let measured = committed_to_arrived(s, &arrivals, institution, events, "[6/6] bus").await;
    let _ = stop.send(true);
    let consumed = consumer.await.map_err(err)?;
    delete_queue(url, &queue).await.map_err(err)?;
    let (rate, latency) = measured?;
    report.bus_events_per_s = rate;
    (
        report.bus_latency_p50_ms,
        report.bus_latency_p99_ms,
        report.bus_latency_max_ms,
    ) = (latency.p50, latency.p99, latency.max);
    consumed.map_err(err)
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
