//! Retry delays: exponential with "equal jitter" (half fixed, half random), capped.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(30 * 60),
        }
    }
}

impl Backoff {
    /// The un-jittered delay after the `attempt`-th failed run (1-based).
    pub fn ceiling(&self, attempt: i32) -> Duration {
        let exp = attempt.saturating_sub(1).clamp(0, 30) as u32;
        self.base.saturating_mul(1u32 << exp).min(self.cap)
    }

    /// The delay to wait, in `[ceiling/2, ceiling]`: jitter spreads retries of a burst of
    /// failures so they do not hit a recovering API at the same instant.
    pub fn delay(&self, attempt: i32, unit_random: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + half.mul_f64(unit_random.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps() {
        let b = Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(60),
        };
        assert_eq!(b.ceiling(1), Duration::from_secs(1));
        assert_eq!(b.ceiling(2), Duration::from_secs(2));
        assert_eq!(b.ceiling(5), Duration::from_secs(16));
        assert_eq!(b.ceiling(7), Duration::from_secs(60));
        assert_eq!(b.ceiling(1000), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_half_and_full_ceiling() {
        let b = Backoff::default();
        for attempt in 1..40 {
            for r in [0.0, 0.3, 0.999, 1.0] {
                let d = b.delay(attempt, r);
                assert!(
                    d >= b.ceiling(attempt) / 2 && d <= b.ceiling(attempt),
                    "{attempt} {r}"
                );
            }
        }
        assert!(b.delay(3, 0.0) < b.delay(3, 1.0));
    }
}
