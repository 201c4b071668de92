//! A user-space network emulator: what `tc netem` would do, for a kernel without `sch_netem`.
//!
//! The core is sans-IO: a [`Link`] takes packets with the time they arrived and says when each
//! leaves (or that it was lost), following a [`Profile`] (delay, jitter, random loss, a rate cap
//! with a bounded queue, blackouts). The `hearth-netem` binary runs two links (one per
//! direction) between two TUN devices in a middle network namespace; `scripts/netlab.sh` and
//! the lab tests route traffic through it. Profiles are data (JSON), so the same emulator
//! serves the NAT lab and the bandwidth benchmarks.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How a link behaves, in one direction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// One-way delay, ms.
    pub delay_ms: f64,
    /// Added to each packet's delay: uniform in ±jitter_ms (the total never below 0).
    pub jitter_ms: f64,
    /// Let jittered packets overtake each other (netem's default); `false` keeps order, as a
    /// single queue does.
    pub reorder: bool,
    /// Probability of losing each packet, 0..=1.
    pub loss: f64,
    /// Rate cap, kbit/s (`None`: unlimited). Packets are serialized one after another.
    pub rate_kbps: Option<f64>,
    /// With a rate cap: the most queueing delay the bottleneck holds before dropping (tail
    /// drop), ms. Default 200.
    pub queue_ms: Option<f64>,
    /// With a rate cap: it lifts this many seconds after the link's start (`None`: never).
    pub rate_until_s: Option<f64>,
    /// Periods with no connectivity, `[start_s, length_s]` from the link's start: packets
    /// arriving then are lost.
    pub blackouts: Vec<[f64; 2]>,
}

impl Profile {
    pub fn check(&self) -> Result<(), String> {
        let finite = [self.delay_ms, self.jitter_ms, self.loss].iter().all(|v| v.is_finite() && *v >= 0.0);
        if !finite {
            return Err("delay_ms, jitter_ms and loss must be finite and >= 0".into());
        }
        if self.loss > 1.0 {
            return Err(format!("loss {} is more than 1 (it is a probability)", self.loss));
        }
        if self.rate_kbps.is_some_and(|r| !r.is_finite() || r <= 0.0) {
            return Err("rate_kbps must be > 0".into());
        }
        if self.queue_ms.is_some_and(|q| !q.is_finite() || q < 0.0) {
            return Err("queue_ms must be >= 0".into());
        }
        if self.rate_until_s.is_some_and(|u| !u.is_finite() || u < 0.0) {
            return Err("rate_until_s must be >= 0".into());
        }
        if self.blackouts.iter().any(|[s, l]| !s.is_finite() || !l.is_finite() || *s < 0.0 || *l < 0.0) {
            return Err("blackouts are [start_s, length_s] pairs of finite numbers >= 0".into());
        }
        Ok(())
    }
}

/// What happened to a packet offered to a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It leaves at this time (µs, the caller's clock).
    Queued(u64),
    /// Random loss.
    Lost,
    /// Arrived during a blackout.
    Blackout,
    /// The rate-capped queue was full.
    QueueFull,
}

/// Counters of one link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LinkStats {
    pub offered: u64,
    pub delivered: u64,
    pub lost: u64,
    pub blackout: u64,
    pub queue_full: u64,
}

/// One direction of an emulated link.
#[derive(Debug)]
pub struct Link {
    profile: Profile,
    rng: StdRng,
    start_us: Option<u64>,
    /// (release time, arrival order) → packet index in `slots`.
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    slots: std::collections::HashMap<u64, Vec<u8>>,
    next_seq: u64,
    /// When the rate-capped bottleneck is free again.
    busy_until_us: u64,
    /// Latest release time handed out (for in-order links).
    last_release_us: u64,
    pub stats: LinkStats,
}

impl Link {
    /// `seed` makes loss and jitter reproducible.
    pub fn new(profile: Profile, seed: u64) -> Link {
        Link {
            profile,
            rng: StdRng::seed_from_u64(seed),
            start_us: None,
            heap: BinaryHeap::new(),
            slots: Default::default(),
            next_seq: 0,
            busy_until_us: 0,
            last_release_us: 0,
            stats: LinkStats::default(),
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Offer a packet that arrived at `now_us`.
    pub fn push(&mut self, now_us: u64, packet: Vec<u8>) -> Verdict {
        let start = *self.start_us.get_or_insert(now_us);
        self.stats.offered += 1;
        let t_s = now_us.saturating_sub(start) as f64 / 1e6;
        if self.profile.blackouts.iter().any(|[s, l]| t_s >= *s && t_s < s + l) {
            self.stats.blackout += 1;
            return Verdict::Blackout;
        }
        if self.profile.loss > 0.0 && self.rng.random::<f64>() < self.profile.loss {
            self.stats.lost += 1;
            return Verdict::Lost;
        }
        // The bottleneck: serialize at the rate, drop what would wait longer than the queue.
        let mut leaves_bottleneck = now_us;
        let capped = self.profile.rate_until_s.is_none_or(|until| t_s < until);
        if let Some(kbps) = self.profile.rate_kbps.filter(|_| capped) {
            let begin = self.busy_until_us.max(now_us);
            let queue_us = (self.profile.queue_ms.unwrap_or(200.0) * 1000.0) as u64;
            if begin - now_us > queue_us {
                self.stats.queue_full += 1;
                return Verdict::QueueFull;
            }
            let tx_us = (packet.len() as f64 * 8.0 / kbps * 1000.0).ceil() as u64;
            self.busy_until_us = begin + tx_us;
            leaves_bottleneck = self.busy_until_us;
        }
        let jitter = if self.profile.jitter_ms > 0.0 {
            self.rng.random_range(-self.profile.jitter_ms..=self.profile.jitter_ms)
        } else {
            0.0
        };
        let delay_us = ((self.profile.delay_ms + jitter).max(0.0) * 1000.0) as u64;
        let mut release = leaves_bottleneck + delay_us;
        if !self.profile.reorder {
            release = release.max(self.last_release_us);
        }
        self.last_release_us = self.last_release_us.max(release);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((release, seq)));
        self.slots.insert(seq, packet);
        Verdict::Queued(release)
    }

    /// When the next packet is due, if any is queued.
    pub fn next_due(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((t, _))| *t)
    }

    /// A packet due at or before `now_us`, in release order.
    pub fn pop_due(&mut self, now_us: u64) -> Option<Vec<u8>> {
        let Reverse((t, seq)) = *self.heap.peek()?;
        if t > now_us {
            return None;
        }
        self.heap.pop();
        self.stats.delivered += 1;
        self.slots.remove(&seq)
    }

    pub fn queued(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn drain(link: &mut Link) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(t) = link.next_due() {
            out.push((t, link.pop_due(t).unwrap()));
        }
        out
    }

    #[test]
    fn delay_holds_each_packet_and_keeps_order() {
        let mut l = Link::new(Profile { delay_ms: 40.0, ..Profile::default() }, 1);
        assert_eq!(l.push(1_000, vec![1]), Verdict::Queued(41_000));
        assert_eq!(l.push(2_000, vec![2]), Verdict::Queued(42_000));
        assert_eq!(l.pop_due(40_999), None, "not before its time");
        assert_eq!(l.pop_due(41_000), Some(vec![1]));
        assert_eq!(drain(&mut l), vec![(42_000, vec![2])]);
        assert_eq!(l.stats.delivered, 2);
    }

    #[test]
    fn jitter_stays_in_bounds_and_reorders_only_when_asked() {
        for reorder in [false, true] {
            let p = Profile { delay_ms: 50.0, jitter_ms: 20.0, reorder, ..Profile::default() };
            let mut l = Link::new(p, 7);
            let mut releases = Vec::new();
            for i in 0..2000u64 {
                let Verdict::Queued(t) = l.push(i * 1000, vec![]) else { panic!() };
                releases.push(t - i * 1000);
            }
            let (min, max) = (releases.iter().min().unwrap(), releases.iter().max().unwrap());
            if reorder {
                assert!(*min >= 30_000 && *max <= 70_000, "{min}..{max}");
                assert!(*min < 32_000 && *max > 68_000, "the whole range is used: {min}..{max}");
            } else {
                assert!(*min >= 30_000, "{min}");
            }
            let order: Vec<_> = drain(&mut l).into_iter().map(|(t, _)| t).collect();
            let sorted = order.windows(2).all(|w| w[0] <= w[1]);
            assert!(sorted, "released in time order");
            let mut l2 = Link::new(Profile { delay_ms: 50.0, jitter_ms: 20.0, reorder, ..Profile::default() }, 7);
            let mut ids = Vec::new();
            for i in 0..2000u64 {
                l2.push(i * 1000, i.to_le_bytes().to_vec());
            }
            while let Some(t) = l2.next_due() {
                ids.push(u64::from_le_bytes(l2.pop_due(t).unwrap().try_into().unwrap()));
            }
            let in_order = ids.windows(2).all(|w| w[0] < w[1]);
            assert_eq!(in_order, !reorder, "reorder={reorder}");
        }
    }

    #[test]
    fn loss_rate_matches_the_profile() {
        let mut l = Link::new(Profile { loss: 0.05, ..Profile::default() }, 3);
        for i in 0..20_000 {
            l.push(i, vec![]);
        }
        let rate = l.stats.lost as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&rate), "{rate}");
        assert_eq!(l.stats.lost + l.queued() as u64, 20_000);
    }

    #[test]
    fn rate_cap_serializes_and_drops_beyond_the_queue() {
        // 1000 kbit/s: a 1250-byte packet takes 10 ms on the wire.
        let p = Profile { rate_kbps: Some(1000.0), queue_ms: Some(50.0), ..Profile::default() };
        let mut l = Link::new(p, 1);
        let v: Vec<_> = (0..10).map(|_| l.push(0, vec![0; 1250])).collect();
        assert_eq!(v[0], Verdict::Queued(10_000));
        assert_eq!(v[1], Verdict::Queued(20_000));
        // The 7th would start after 60 ms of queue: dropped, and so are the rest.
        assert_eq!(v[5], Verdict::Queued(60_000));
        assert_eq!(v[6], Verdict::QueueFull);
        assert_eq!(l.stats.queue_full, 4);
        // Offered at the cap's pace, nothing is dropped and throughput is the rate.
        let mut l = Link::new(Profile { rate_kbps: Some(1000.0), ..Profile::default() }, 1);
        for i in 0..100u64 {
            assert!(matches!(l.push(i * 10_000, vec![0; 1250]), Verdict::Queued(_)));
        }
        assert_eq!(l.next_due(), Some(10_000));
    }

    #[test]
    fn a_cap_can_lift() {
        let p = Profile { rate_kbps: Some(100.0), queue_ms: Some(150.0), rate_until_s: Some(1.0), ..Profile::default() };
        let mut l = Link::new(p, 1);
        // 1250-byte packets: 100 ms each at 100 kbit/s; 150 ms of queue holds one more.
        assert!(matches!(l.push(0, vec![0; 1250]), Verdict::Queued(100_000)));
        assert!(matches!(l.push(0, vec![0; 1250]), Verdict::Queued(_)));
        assert_eq!(l.push(0, vec![0; 1250]), Verdict::QueueFull);
        // After a second the link is uncapped: no serialization delay.
        assert_eq!(l.push(1_000_000, vec![0; 1250]), Verdict::Queued(1_000_000));
    }

    #[test]
    fn blackouts_drop_what_arrives_during_them() {
        let p = Profile { blackouts: vec![[1.0, 0.5]], ..Profile::default() };
        let mut l = Link::new(p, 1);
        assert!(matches!(l.push(0, vec![]), Verdict::Queued(_)), "the first packet starts the clock");
        assert!(matches!(l.push(999_999, vec![]), Verdict::Queued(_)));
        assert_eq!(l.push(1_000_000, vec![]), Verdict::Blackout);
        assert_eq!(l.push(1_499_999, vec![]), Verdict::Blackout);
        assert!(matches!(l.push(1_500_000, vec![]), Verdict::Queued(_)));
        assert_eq!(l.stats.blackout, 2);
    }

    #[test]
    fn profiles_are_checked_and_read_from_json() {
        let p: Profile = serde_json::from_str(r#"{"delay_ms": 50, "jitter_ms": 10, "loss": 0.01, "rate_kbps": 1000}"#).unwrap();
        assert!(p.check().is_ok());
        assert!(serde_json::from_str::<Profile>(r#"{"dealy_ms": 5}"#).is_err(), "typos are refused");
        assert!(Profile { loss: 1.5, ..Profile::default() }.check().is_err());
        assert!(Profile { delay_ms: f64::NAN, ..Profile::default() }.check().is_err());
        assert!(Profile { rate_kbps: Some(0.0), ..Profile::default() }.check().is_err());
        assert!(Profile { blackouts: vec![[-1.0, 1.0]], ..Profile::default() }.check().is_err());
    }
}
