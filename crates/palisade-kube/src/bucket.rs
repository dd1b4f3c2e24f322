//! A token bucket: at most `rate` per second on average, `burst` at once (policy action records,
//! Kubernetes Events).

use std::time::{Duration, SystemTime};

/// Admits at most `rate` per second with bursts of `burst`.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<SystemTime>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: u32, burst: u32) -> Self {
        TokenBucket {
            rate: rate as f64,
            burst: burst as f64,
            tokens: burst as f64,
            last: None,
        }
    }

    /// Takes one token at `now`; false when none is left.
    pub fn take(&mut self, now: SystemTime) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.duration_since(last).unwrap_or(Duration::ZERO);
            self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        }
        // A clock that steps back refills nothing and does not move `last` back.
        self.last = Some(self.last.map_or(now, |last| last.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn burst_then_rate() {
        let mut b = TokenBucket::new(500, 500);
        let t0 = UNIX_EPOCH + Duration::from_secs(100);
        let admitted = (0..5000).filter(|_| b.take(t0)).count();
        assert_eq!(admitted, 500);
        // 5,000 attempts spread over the next second: 500 more get through.
        let admitted = (1..=5000)
            .filter(|i| b.take(t0 + Duration::from_micros(200 * i)))
            .count();
        assert!((499..=501).contains(&admitted), "{admitted}");
        // A clock stepping back neither refills nor panics.
        assert!(!b.take(t0));
    }
}
