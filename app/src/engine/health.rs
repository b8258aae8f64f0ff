//! What a running daemon knows of its own health, shared with its probes (`/health/ready`)
//! and its heartbeats in the roster: whether it runs, whether its wake-up source (LISTEN)
//! is connected, whether it leads maintenance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One daemon's health flags; clones share them. All false until the daemon runs.
#[derive(Clone, Default)]
pub struct DaemonHealth(Arc<Flags>);

#[derive(Default)]
struct Flags {
    running: AtomicBool,
    listening: AtomicBool,
    leader: AtomicBool,
}

impl DaemonHealth {
    pub fn running(&self) -> bool {
        self.0.running.load(Ordering::Relaxed)
    }

    pub fn listening(&self) -> bool {
        self.0.listening.load(Ordering::Relaxed)
    }

    pub fn leader(&self) -> bool {
        self.0.leader.load(Ordering::Relaxed)
    }

    /// Why the daemon is not ready, if it runs and is not: without its LISTEN connection it
    /// still works, but only by polling, which an operator should hear about.
    pub fn not_ready(&self) -> Option<&'static str> {
        (self.running() && !self.listening())
            .then_some("the daemon's wake-up connection (LISTEN) is down; it is polling only")
    }

    pub(super) fn set_running(&self, running: bool) {
        self.0.running.store(running, Ordering::Relaxed);
        if !running {
            self.set_listening(false);
            self.set_leader(false);
        }
    }

    pub(super) fn set_listening(&self, listening: bool) {
        self.0.listening.store(listening, Ordering::Relaxed);
    }

    pub(super) fn set_leader(&self, leader: bool) {
        self.0.leader.store(leader, Ordering::Relaxed);
    }
}
