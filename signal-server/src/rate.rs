//! A token bucket: `rate` tokens per second, holding at most `burst`. Time is passed in.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket { rate_per_sec: f64::from(rate_per_sec), burst, tokens: burst, last: now }
    }

    /// Take one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate_per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Lets through at most one event per `period` (used to answer floods with one error a second).
#[derive(Debug, Clone)]
pub struct Throttle {
    period: Duration,
    next: Option<Instant>,
}

impl Throttle {
    pub fn new(period: Duration) -> Self {
        Throttle { period, next: None }
    }

    pub fn allow(&mut self, now: Instant) -> bool {
        match self.next {
            Some(next) if now < next => false,
            _ => {
                self.next = Some(now + self.period);
                true
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert_eq!((0..5).filter(|_| b.try_take(t0)).count(), 5);
        assert!(!b.try_take(t0));
        // 10/s refills one token per 100 ms.
        assert!(!b.try_take(t0 + Duration::from_millis(50)));
        assert!(b.try_take(t0 + Duration::from_millis(110)));
        assert!(!b.try_take(t0 + Duration::from_millis(120)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.try_take(later)).count(), 5);
    }

    #[test]
    fn bucket_over_one_second_matches_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(50, 1, t0);
        let passed = (1..=1000).filter(|i| b.try_take(t0 + Duration::from_millis(*i))).count();
        assert!((49..=51).contains(&passed), "{passed}");
    }

    #[test]
    fn throttle_once_per_period() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(1));
        assert!(t.allow(t0));
        assert!(!t.allow(t0 + Duration::from_millis(999)));
        assert!(t.allow(t0 + Duration::from_millis(1000)));
    }
}
