//! A clock that moves only when told to: tests advance it instead of sleeping.

use campus_core::Timestamp;
use campus_ports::Clock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Manual time in milliseconds since the epoch. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            millis: Arc::new(AtomicI64::new(start.0)),
        }
    }

    /// Moves time forward by `d`, rounded up to the next millisecond.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_micros().div_ceil(1000)).unwrap_or(i64::MAX);
        self.millis.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.millis.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_only_when_told_and_rounds_up() {
        let c = ManualClock::new(Timestamp(1_000));
        assert_eq!(c.now(), Timestamp(1_000));
        c.clone().advance(Duration::from_micros(1));
        assert_eq!(c.now(), Timestamp(1_001), "clones share time; rounded up");
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), Timestamp(3_001));
    }
}
