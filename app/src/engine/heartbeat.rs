//! Heartbeats: the leases of the attempts this daemon holds are extended every third of a
//! lease, so long tasks are not mistaken for abandoned ones; the handlers of attempts whose
//! lease was lost anyway (the leader rescued them) are stopped.

use super::daemon::DaemonConfig;
use super::in_flight::Slots;
use campus_core::ids::TaskId;
use campus_ports::TaskQueue;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn heartbeat_loop(
    queue: Arc<dyn TaskQueue>,
    config: Arc<DaemonConfig>,
    slots: Slots,
) {
    let every = (config.lease / 3).max(Duration::from_millis(50));
    let in_flight = &slots.in_flight;
    loop {
        tokio::time::sleep(every).await;
        let asked = in_flight.snapshot();
        if asked.is_empty() {
            continue;
        }
        let ids: Vec<TaskId> = asked.iter().map(|(id, _)| *id).collect();
        match queue.heartbeat(&config.worker_id, &ids, config.lease).await {
            Ok(held) => {
                let lost = in_flight.stop_lost(&asked, &held);
                if lost > 0 {
                    tracing::warn!(
                        lost,
                        "leases lost (rescued by the leader): their handlers were stopped"
                    );
                    // Their slots came back with the stopped handlers.
                    slots.freed.notify_one();
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}
