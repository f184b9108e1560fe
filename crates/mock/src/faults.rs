//! Faults on command, per store, drawn from a generator seeded from the platform's seed and the
//! store's name: the same seed gives the same sequence of faults.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// Shares are probabilities in [0, 1] per request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Added to every request.
    pub latency_ms: u64,
    /// Answered 503 without being applied.
    pub error_5xx: f64,
    /// Answered 429 with `Retry-After: retry_after_s`.
    pub throttle_429: f64,
    pub retry_after_s: u64,
    /// Never answered: the client's timeout ends it.
    pub hang: f64,
    /// Writes applied, then answered 500: a naive retry makes a duplicate.
    pub applied_then_5xx: f64,
    /// Webhook deliveries sent more than once (same webhook id): twice, or up to
    /// `webhook_copies_max` times; copies after the first leave up to `webhook_hold_ms` later,
    /// so they arrive out of order with other events.
    pub webhook_duplicate: f64,
    /// How many times at most a duplicated delivery is sent (2 when below 2).
    pub webhook_copies_max: u32,
    /// Webhook deliveries held back `webhook_hold_ms` (so later events overtake them).
    pub webhook_hold: f64,
    pub webhook_hold_ms: u64,
    /// Webhook deliveries never sent.
    pub webhook_drop: f64,
}

impl Faults {
    /// No faults but those `set` turns on: `Faults::with(|f| f.error_5xx = 1.0)`.
    pub fn with(set: impl FnOnce(&mut Faults)) -> Faults {
        let mut f = Faults::default();
        set(&mut f);
        f
    }

    pub(crate) fn validate(&self) -> Result<(), crate::MockError> {
        let shares = [
            self.error_5xx,
            self.throttle_429,
            self.hang,
            self.applied_then_5xx,
        ];
        if self.webhook_copies_max > 3 {
            return Err(crate::MockError::BadRequest(
                "webhook_copies_max is at most 3".into(),
            ));
        }
        if shares.iter().any(|s| !(0.0..=1.0).contains(s)) {
            return Err(crate::MockError::BadRequest(
                "fault shares are between 0 and 1".into(),
            ));
        }
        Ok(())
    }
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    Error5xx,
    Throttle { retry_after_s: u64 },
    Hang,
    AppliedThen5xx,
}

/// What happens to one webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WebhookFault {
    None,
    Drop,
    /// Sent this many times: the first at once, the others each held back by the delay.
    Duplicate(u32, [Duration; 2]),
    Hold(Duration),
}

#[derive(Debug)]
pub(crate) struct FaultState {
    pub faults: Faults,
    rng: rand::rngs::StdRng,
}

impl FaultState {
    pub fn new(platform_seed: u64, store: &str) -> FaultState {
        // FNV-1a of the name: a stable per-store stream under one platform seed.
        let h = store.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        FaultState {
            faults: Faults::default(),
            rng: rand::rngs::StdRng::seed_from_u64(platform_seed ^ h),
        }
    }

    /// Draws the fault of the next webhook delivery.
    pub fn draw_webhook(&mut self) -> WebhookFault {
        let f = &self.faults;
        if f.webhook_drop + f.webhook_duplicate + f.webhook_hold == 0.0 {
            return WebhookFault::None;
        }
        let x: f64 = self.rng.random();
        if x < f.webhook_drop {
            WebhookFault::Drop
        } else if x < f.webhook_drop + f.webhook_duplicate {
            let copies = self.rng.random_range(2..=f.webhook_copies_max.clamp(2, 3));
            let mut late = || Duration::from_millis(self.rng.random_range(0..=f.webhook_hold_ms));
            WebhookFault::Duplicate(copies, [late(), late()])
        } else if x < f.webhook_drop + f.webhook_duplicate + f.webhook_hold {
            WebhookFault::Hold(Duration::from_millis(f.webhook_hold_ms))
        } else {
            WebhookFault::None
        }
    }

    /// Draws the fault of the next request (`write`: whether it changes anything).
    pub fn draw(&mut self, write: bool) -> (Duration, Fault) {
        let f = &self.faults;
        let latency = Duration::from_millis(f.latency_ms);
        if f.hang + f.error_5xx + f.throttle_429 + f.applied_then_5xx == 0.0 {
            return (latency, Fault::None);
        }
        let x: f64 = self.rng.random();
        let mut edge = f.hang;
        if x < edge {
            return (latency, Fault::Hang);
        }
        edge += f.error_5xx;
        if x < edge {
            return (latency, Fault::Error5xx);
        }
        edge += f.throttle_429;
        if x < edge {
            return (
                latency,
                Fault::Throttle {
                    retry_after_s: f.retry_after_s.max(1),
                },
            );
        }
        edge += f.applied_then_5xx;
        if x < edge && write {
            return (latency, Fault::AppliedThen5xx);
        }
        (latency, Fault::None)
    }
}
