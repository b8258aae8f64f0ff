//! Retry policy: exponential backoff with jitter, capped, and a maximum number of attempts.

use std::time::Duration;

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay after the first failed attempt (before jitter).
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
    /// Attempts in all, the first one included; then the item is dead.
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(5),
            cap: Duration::from_secs(60 * 60),
            max_attempts: 5,
        }
    }
}

/// What to do after attempt number `attempt` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Try again after this delay.
    RetryAfter(Duration),
    /// Give up: the item is dead and waits for a person.
    Dead,
}

impl RetryPolicy {
    /// Delay before jitter after failed attempt `attempt` (1-based): `base * 2^(attempt-1)`,
    /// never above `cap`.
    pub fn raw_delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let factor = 1u64 << exp;
        let base_ms = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let cap_ms = u64::try_from(self.cap.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(base_ms.saturating_mul(factor).min(cap_ms))
    }

    /// Delay with "equal jitter": between half and all of the raw delay. `jitter` is a random
    /// number in `[0, 1]` supplied by the caller (the core has no randomness of its own).
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let raw = self.raw_delay(attempt);
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        raw.mul_f64(0.5 + 0.5 * j).min(raw)
    }

    /// Decides what happens after attempt `attempt` failed.
    pub fn decide(&self, attempt: u32, permanent: bool, jitter: f64) -> RetryDecision {
        if permanent || attempt >= self.max_attempts {
            RetryDecision::Dead
        } else {
            RetryDecision::RetryAfter(self.delay(attempt, jitter))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy() -> impl Strategy<Value = RetryPolicy> {
        (1u64..10_000, 1u64..10_000_000, 1u32..20).prop_map(|(base, cap, max)| RetryPolicy {
            base: Duration::from_millis(base),
            cap: Duration::from_millis(cap),
            max_attempts: max,
        })
    }

    #[test]
    fn default_doubles_from_five_seconds() {
        let p = RetryPolicy::default();
        assert_eq!(p.raw_delay(1), Duration::from_secs(5));
        assert_eq!(p.raw_delay(2), Duration::from_secs(10));
        assert_eq!(p.raw_delay(3), Duration::from_secs(20));
        assert_eq!(p.decide(5, false, 0.5), RetryDecision::Dead);
    }

    /// The smallest delays the policy allows (a 1 ms base, no jitter) keep the equal-jitter
    /// bounds: at least half the raw delay, at most all of it.
    #[test]
    fn tiny_delays_keep_the_jitter_bounds() {
        let p = RetryPolicy {
            base: Duration::from_millis(1),
            cap: Duration::from_millis(1),
            max_attempts: 3,
        };
        for (jitter, expected) in [(0.0, 500), (1.0, 1000), (f64::NAN, 500)] {
            let d = p.delay(1, jitter);
            assert_eq!(d, Duration::from_micros(expected), "jitter {jitter}");
            assert!(d + Duration::from_micros(1) >= p.raw_delay(1) / 2);
        }
    }

    proptest! {
        #[test]
        fn raw_delay_is_non_decreasing(p in policy(), a in 1u32..100) {
            prop_assert!(p.raw_delay(a) <= p.raw_delay(a + 1));
        }

        #[test]
        fn delay_is_bounded_by_the_cap(p in policy(), a in 1u32..200, j in proptest::num::f64::ANY) {
            let d = p.delay(a, j);
            prop_assert!(d <= p.cap);
            prop_assert!(d <= p.raw_delay(a));
            // Half the raw delay, give or take the rounding of `mul_f64` (no subtraction: a raw
            // delay under 2 ms would underflow).
            prop_assert!(d + Duration::from_micros(1) >= p.raw_delay(a) / 2);
        }

        #[test]
        fn never_more_than_max_attempts(p in policy(), j in 0.0f64..=1.0) {
            let mut attempts = 0;
            loop {
                attempts += 1;
                if p.decide(attempts, false, j) == RetryDecision::Dead { break; }
                prop_assert!(attempts < p.max_attempts);
            }
            prop_assert_eq!(attempts, p.max_attempts);
        }

        #[test]
        fn permanent_failures_are_never_retried(p in policy(), a in 1u32..20) {
            prop_assert_eq!(p.decide(a, true, 0.3), RetryDecision::Dead);
        }
    }
}
