//! A leaky bucket, as Shopify meters its REST API (40 requests, leaking 2 per second) and its
//! GraphQL API (points, restored per second).

/// Capacity `size`, draining `leak_per_s`; times are epoch milliseconds from the caller's clock.
#[derive(Debug, Clone)]
pub struct LeakyBucket {
    pub size: f64,
    pub leak_per_s: f64,
    level: f64,
    at_ms: i64,
}

impl LeakyBucket {
    pub fn new(size: f64, leak_per_s: f64, now_ms: i64) -> Self {
        LeakyBucket {
            size,
            leak_per_s,
            level: 0.0,
            at_ms: now_ms,
        }
    }

    fn drain(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        self.level = (self.level - elapsed * self.leak_per_s).max(0.0);
        self.at_ms = now_ms.max(self.at_ms);
    }

    /// Adds `amount` if it fits; otherwise the milliseconds until it would.
    pub fn take(&mut self, amount: f64, now_ms: i64) -> Result<(), i64> {
        self.drain(now_ms);
        if self.level + amount <= self.size {
            self.level += amount;
            Ok(())
        } else {
            let excess = self.level + amount - self.size;
            Err((excess / self.leak_per_s * 1000.0).ceil() as i64)
        }
    }

    /// Gives back `amount` (a request charged more than it used).
    pub fn refund(&mut self, amount: f64, now_ms: i64) {
        self.drain(now_ms);
        self.level = (self.level - amount).max(0.0);
    }

    /// How full the bucket is now.
    pub fn level(&mut self, now_ms: i64) -> f64 {
        self.drain(now_ms);
        self.level
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_then_leaks() {
        let mut b = LeakyBucket::new(40.0, 2.0, 0);
        for _ in 0..40 {
            assert!(b.take(1.0, 0).is_ok());
        }
        assert_eq!(b.take(1.0, 0), Err(500), "one slot leaks in half a second");
        assert_eq!(b.take(1.0, 499), Err(2));
        assert!(b.take(1.0, 500).is_ok());
        assert_eq!(
            b.level(10_500),
            20.0,
            "full at 0.5 s, then 10 s at 2 per second"
        );
        b.refund(100.0, 10_500);
        assert_eq!(b.level(10_500), 0.0);
    }
}
