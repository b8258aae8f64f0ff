//! In-memory adapter set: one [`MemoryStore`] implements the event store, the task queue, the
//! engine's read side and every repository port with the semantics of the PostgreSQL adapter
//! (idempotent fan-out, exclusive claims, fenced completion, leases and rescue, retries,
//! reprocess copies with lineage, scoping by institution), so that services, handlers and the
//! daemon run in milliseconds without a database. The conformance suite
//! (`crate::conformance`) holds both adapters to the same contract.
//!
//! **State.** Everything lives in one `std::sync::Mutex`-protected [`State`]; every port call
//! takes the lock once, does all its work and releases it before returning (never across an
//! `.await`), so each call is atomic like one PostgreSQL transaction and the store is correct
//! under concurrent tokio tasks. The one exception is the dispatcher's planning, which runs
//! foreign code: the events of a round are marked in flight under the lock (the equivalent of
//! `FOR UPDATE SKIP LOCKED`), planned without it, then written under it.
//!
//! **Time.** PostgreSQL stamps rows with its own `now()`; this store asks a [`Clock`] port.
//! With [`ManualClock`] time moves only when a test says so: leases expire and retries fall
//! due exactly when the clock is advanced past them, with no sleeping. Timestamps have the
//! port's millisecond resolution (PostgreSQL keeps microseconds); delays are rounded up, so
//! nothing is ever due early.

mod academic;
mod archive;
mod clock;
mod controls;
mod events;
mod gauges;
mod log;
mod roster;
mod rows;
mod tasks;
mod users;
mod webhooks;

pub use clock::ManualClock;

use crate::security::SystemClock;
use campus_core::Timestamp;
use campus_ports::Clock;
use rows::State;
use std::sync::{Arc, Mutex, MutexGuard};

/// Every port over one in-memory state. Cloning shares the state.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
    /// Bumped after writes that may make events or tasks due (a wake-up hint, never the
    /// truth); `WakeUps` subscribers watch it.
    wake: tokio::sync::watch::Sender<u64>,
    /// Who holds the maintenance leader lock (a token per `try_acquire`), if anyone.
    leader: Arc<Mutex<Option<u64>>>,
}

impl MemoryStore {
    /// An empty store whose rows are stamped by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                clock,
                wake: tokio::sync::watch::Sender::new(0),
                leader: Arc::default(),
            }),
        }
    }

    /// An empty store on wall-clock time.
    pub fn with_system_clock() -> Self {
        Self::new(Arc::new(SystemClock))
    }

    /// An empty store on a manual clock starting at `start`, and that clock.
    pub fn with_manual_clock(start: Timestamp) -> (Self, ManualClock) {
        let clock = ManualClock::new(start);
        (Self::new(Arc::new(clock.clone())), clock)
    }

    /// The store's current time.
    pub fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    /// Forgets every row (tests reuse one store across cases).
    pub fn clear(&self) {
        *self.lock() = State::default();
    }

    /// The state, for one atomic operation. A panic while the lock was held cannot leave a
    /// half-applied write behind (every writer validates before it mutates), so a poisoned
    /// lock is taken over rather than propagated.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn wake(&self) {
        self.shared.wake.send_modify(|v| *v = v.wrapping_add(1));
    }
}
