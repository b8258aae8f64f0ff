//! `noop`: a task that does nothing but optionally wait `sleep_ms` milliseconds. It is not
//! planned from any event; benchmarks and failure drills enqueue it directly.

use super::payload;
use crate::engine::{TaskError, TaskHandler};
use async_trait::async_trait;
use campus_ports::ClaimedTask;
use std::time::Duration;

pub const TASK_TYPE: &str = "noop";

#[derive(serde::Deserialize, Default)]
struct NoopPayload {
    #[serde(default)]
    sleep_ms: u64,
}

pub struct Noop;

#[async_trait]
impl TaskHandler for Noop {
    async fn run(&self, task: &ClaimedTask) -> Result<(), TaskError> {
        let p: NoopPayload = payload(task)?;
        if p.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(p.sleep_ms.min(60_000))).await;
        }
        Ok(())
    }
}
