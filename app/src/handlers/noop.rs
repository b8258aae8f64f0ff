//! `noop`: a task that does nothing but optionally wait `sleep_ms` milliseconds. The probe
//! event of `campus bench` (`BenchmarkEventRecorded`) plans two of them; benchmarks and failure
//! drills also enqueue it directly.

use crate::engine::{Handler, TaskError};
use async_trait::async_trait;
use campus_ports::ClaimedTask;
use std::time::Duration;

/// The task type, for those who enqueue it directly.
pub const TASK_TYPE: &str = Noop::TASK_TYPE;

#[derive(serde::Deserialize, Default)]
pub struct NoopPayload {
    #[serde(default)]
    sleep_ms: u64,
}

pub struct Noop;

#[async_trait]
impl Handler for Noop {
    const TASK_TYPE: &'static str = "noop";
    type Input = NoopPayload;

    async fn handle(&self, p: NoopPayload, _: &ClaimedTask) -> Result<(), TaskError> {
        if p.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(p.sleep_ms.min(60_000))).await;
        }
        Ok(())
    }
}
