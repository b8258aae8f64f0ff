//! Wake-ups inside one daemon: the hints of the `WakeUps` port, fanned out to the loop each
//! one concerns. A hint only shortens a wait; every loop also polls.

use super::health::DaemonHealth;
use campus_ports::{WakeUp, WakeUps};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// How often a daemon looks whether its wake-up source is connected.
pub const CONNECTION_LOOK: Duration = Duration::from_millis(250);

/// What a hint wakes: the dispatcher (events), the workers (tasks), live views (changes).
#[derive(Clone, Default)]
pub struct Wakers {
    pub events: Arc<Notify>,
    pub tasks: Arc<Notify>,
    pub changes: Arc<Notify>,
}

impl Wakers {
    pub fn wake(&self, hint: WakeUp) {
        match hint {
            WakeUp::Events => self.events.notify_one(),
            WakeUp::Tasks => self.tasks.notify_one(),
            WakeUp::Changes => self.changes.notify_one(),
            WakeUp::All => {
                self.events.notify_one();
                self.tasks.notify_one();
                self.changes.notify_one();
            }
        }
    }

    /// Subscribes to `source` and wakes the loops until `shutdown` turns true (dropping the
    /// subscription, which stops its listener); a daemon's `health` hears whether the source
    /// is connected (within [`CONNECTION_LOOK`]).
    pub async fn run(
        self,
        source: Arc<dyn WakeUps>,
        health: Option<DaemonHealth>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut hints = source.subscribe();
        let mut look = tokio::time::interval(CONNECTION_LOOK);
        loop {
            tokio::select! {
                hint = hints.next() => match hint {
                    Some(hint) => self.wake(hint),
                    // The source stopped for good: polling alone from now on.
                    None => break,
                },
                _ = look.tick() => {
                    if let Some(health) = &health {
                        health.set_listening(hints.connected());
                    }
                }
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
        if let Some(health) = &health {
            health.set_listening(false);
        }
    }
}
