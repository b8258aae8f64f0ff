//! Measures event commit → task start latency through the real daemon (LISTEN/NOTIFY wake-up,
//! dispatch, claim) at light load: one event at a time, each waited for.
//!
//! `cargo run --release -p campus-tests --example event_latency -- [samples]`

use async_trait::async_trait;
use campus::engine::{TaskError, TaskHandler};
use campus_ports::{ClaimedTask, EventStore, NewEvent};
use campus_tests::TestApp;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Started(mpsc::UnboundedSender<Instant>);

#[async_trait]
impl TaskHandler for Started {
    async fn run(&self, _: &ClaimedTask) -> Result<(), TaskError> {
        let _ = self.0.send(Instant::now());
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    let samples: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let app = TestApp::spawn_with(move |c| {
        c.default_registry()
            .on_event("Pinged", "pong", "pong")
            .task("pong", Started(tx))
    })
    .await;
    let store = campus_adapters::pg::PgStore::new(
        app.pool.clone(),
        campus_adapters::pg::Notifier::spawn(
            app.pool.clone(),
            campus_adapters::pg::notify::NOTIFY_WINDOW,
        ),
    );
    let event = NewEvent {
        event_type: "Pinged".into(),
        aggregate_type: "Ping".into(),
        aggregate_id: 1,
        institution_id: None,
        payload: "{}".into(),
        correlation_id: None,
    };
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples + 20 {
        store
            .append(std::slice::from_ref(&event))
            .await
            .expect("append");
        let committed = Instant::now();
        let started = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("task started")
            .expect("channel");
        if i >= 20 {
            latencies.push(started.saturating_duration_since(committed));
        }
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "event commit -> task start over {samples} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(*latencies.last().unwrap())
    );
    app.stop().await;
}
