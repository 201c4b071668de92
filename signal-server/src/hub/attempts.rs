//! Wrong-password backoff. After a few free failures a key (a room, an address) is blocked for a
//! delay that doubles with each further failure, up to a cap; while blocked, a join is refused
//! without its password being checked, so guessing gets no answer at all. A success clears the
//! key; a key quiet for long enough is forgotten. Time is passed in.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// How wrong passwords are slowed down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Failures allowed before the first delay.
    pub free_failures: u32,
    /// The delay after the first failure beyond the free ones; it doubles with each further one.
    pub first_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
    /// A key with no failure for this long is forgotten (its count starts again).
    pub forget_after: Duration,
    /// Keys tracked at most (per kind); past it the longest-quiet key is forgotten.
    pub max_tracked: usize,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            free_failures: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            forget_after: Duration::from_secs(600),
            max_tracked: 100_000,
        }
    }
}

impl BackoffPolicy {
    /// The delay after `failures` failures in a row.
    pub fn delay_after(&self, failures: u32) -> Duration {
        match failures.checked_sub(self.free_failures) {
            None => Duration::ZERO,
            Some(beyond) => {
                let factor = 1u32.checked_shl(beyond).unwrap_or(u32::MAX);
                self.first_delay.saturating_mul(factor).min(self.max_delay)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    blocked_until: Instant,
}

/// Failure counts per key.
#[derive(Debug)]
pub(super) struct Attempts<K> {
    policy: BackoffPolicy,
    keys: HashMap<K, Failures>,
}

impl<K: Hash + Eq + Clone> Attempts<K> {
    pub(super) fn new(policy: BackoffPolicy) -> Self {
        Attempts { policy, keys: HashMap::new() }
    }

    /// How long `key` must still wait at `now`, if it is blocked.
    pub(super) fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let f = self.keys.get(key)?;
        (f.blocked_until > now).then(|| f.blocked_until - now)
    }

    /// A wrong password for `key` at `now`.
    pub(super) fn failed(&mut self, key: K, now: Instant) {
        if !self.keys.contains_key(&key) && self.keys.len() >= self.policy.max_tracked {
            self.sweep(now);
            if self.keys.len() >= self.policy.max_tracked
                && let Some(oldest) = self.keys.iter().min_by_key(|(_, f)| f.last).map(|(k, _)| k.clone())
            {
                self.keys.remove(&oldest);
            }
        }
        let policy = self.policy;
        let f = self.keys.entry(key).or_insert(Failures { count: 0, last: now, blocked_until: now });
        // A record quiet for long enough counts as forgotten even before a sweep removes it.
        if now.saturating_duration_since(f.last) >= policy.forget_after {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last = now;
        f.blocked_until = now + policy.delay_after(f.count);
    }

    /// The right password for `key`: start afresh.
    pub(super) fn succeeded(&mut self, key: &K) {
        self.keys.remove(key);
    }

    /// Forget keys whose last failure is older than the policy's `forget_after`.
    pub(super) fn sweep(&mut self, now: Instant) {
        let forget_after = self.policy.forget_after;
        self.keys
            .retain(|_, f| now.saturating_duration_since(f.last) < forget_after || f.blocked_until > now);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delays_double_after_the_free_failures_up_to_the_cap() {
        let p = BackoffPolicy::default();
        let delays: Vec<u64> = (0..=12).map(|n| p.delay_after(n).as_secs()).collect();
        assert_eq!(delays, [0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        assert_eq!(p.delay_after(u32::MAX), p.max_delay);
    }

    #[test]
    fn blocks_after_three_failures_and_success_clears() {
        let t0 = Instant::now();
        let mut a = Attempts::new(BackoffPolicy::default());
        for _ in 0..2 {
            a.failed("r", t0);
            assert_eq!(a.blocked(&"r", t0), None);
        }
        a.failed("r", t0);
        assert_eq!(a.blocked(&"r", t0), Some(S));
        assert_eq!(a.blocked(&"r", t0 + S), None);
        a.failed("r", t0 + S);
        assert_eq!(a.blocked(&"r", t0 + S), Some(2 * S));
        assert_eq!(a.blocked(&"other", t0), None);
        a.succeeded(&"r");
        assert_eq!(a.blocked(&"r", t0 + S), None);
        assert!(a.is_empty());
    }

    #[test]
    fn quiet_keys_are_forgotten_and_the_map_is_bounded() {
        let t0 = Instant::now();
        let policy = BackoffPolicy { max_tracked: 3, ..BackoffPolicy::default() };
        let mut a = Attempts::new(policy);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            a.failed(k, t0 + S * i as u32);
        }
        assert_eq!(a.len(), 3);
        // The longest-quiet key went first.
        assert!(a.keys.contains_key("d") && !a.keys.contains_key("a"));
        a.sweep(t0 + policy.forget_after + 10 * S);
        assert!(a.is_empty());
        // A blocked key is kept while blocked, however long ago its failure.
        let mut a = Attempts::new(BackoffPolicy { forget_after: S, ..policy });
        for _ in 0..9 {
            a.failed("x", t0);
        }
        a.sweep(t0 + 30 * S);
        assert!(a.blocked(&"x", t0 + 30 * S).is_some());
        // A failure after a long quiet spell starts the count afresh, swept or not.
        let mut a = Attempts::new(policy);
        for _ in 0..5 {
            a.failed("y", t0);
        }
        let later = t0 + policy.forget_after;
        a.failed("y", later);
        assert_eq!(a.blocked(&"y", later), None);
    }
}
