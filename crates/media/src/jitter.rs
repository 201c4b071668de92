//! A reordering buffer for RTP-sequenced items that adds no delay when packets arrive in order.
//!
//! In-order items come out at once. When a sequence number is missing, later items are held for
//! at most `max_wait` (or until `max_held` are waiting) for it to arrive (late or retransmitted);
//! then the gap is given up as lost and playout continues. Items older than what was already
//! released are dropped as late. Time is passed in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What comes out of the buffer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Released<T> {
    Item {
        seq: u64,
        item: T,
    },
    /// `count` sequence numbers starting at `first` were given up as lost.
    Lost {
        first: u64,
        count: u64,
    },
}

/// Counters since creation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    pub received: u64,
    pub released: u64,
    pub lost: u64,
    /// Arrived after a later item, but in time to be released in order.
    pub reordered: u64,
    /// Arrived too late (after its slot was released or given up) or duplicated; dropped.
    pub late: u64,
    /// Sequence numbers jumped so far that the sender must have restarted its stream: the
    /// buffer started over.
    pub resets: u64,
}

#[derive(Debug)]
pub struct ReorderBuffer<T> {
    max_wait: Duration,
    max_held: usize,
    /// Extended (unwrapped) sequence number expected next.
    next: Option<u64>,
    /// Highest extended sequence number seen, for unwrapping.
    highest: Option<u64>,
    /// The stream (RTP SSRC) being ordered, when the caller names it.
    source: Option<u32>,
    held: BTreeMap<u64, (T, Instant)>,
    stats: ReorderStats,
}

/// A jump larger than this (in either direction) restarts the buffer.
const RESET_GAP: u64 = 3000;

impl<T> ReorderBuffer<T> {
    pub fn new(max_wait: Duration, max_held: usize) -> Self {
        ReorderBuffer {
            max_wait,
            max_held: max_held.max(1),
            next: None,
            highest: None,
            source: None,
            held: BTreeMap::new(),
            stats: ReorderStats::default(),
        }
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    /// Change how long a gap is waited for (e.g. as the measured round trip changes); applies
    /// to what is held now too.
    pub fn set_max_wait(&mut self, max_wait: Duration) {
        self.max_wait = max_wait;
    }

    /// Unwrap a 16-bit sequence number next to the highest one seen (the first one is offset
    /// by 2^16 so a step back from it cannot go below zero).
    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                (h as i64 + delta).max(0) as u64
            }
        }
    }

    /// Add an item with its RTP sequence number. Returns true if the buffer restarted (see
    /// [`ReorderBuffer::push_from`]).
    pub fn push(&mut self, seq: u16, item: T, now: Instant) -> bool {
        self.insert(false, seq, item, now)
    }

    /// Add an item of stream `source` (its RTP SSRC). A new source (the sender restarted its
    /// stream on this track), or a jump of thousands of sequence numbers, starts the buffer over
    /// with the new numbering; returns true then, so the caller can drop state tied to the old
    /// stream.
    pub fn push_from(&mut self, source: u32, seq: u16, item: T, now: Instant) -> bool {
        let new_source = self.source.replace(source).is_some_and(|s| s != source);
        self.insert(new_source, seq, item, now)
    }

    fn insert(&mut self, new_source: bool, seq: u16, item: T, now: Instant) -> bool {
        self.stats.received += 1;
        let mut ext = self.extend(seq);
        // No reordering spans thousands of packets: a jump that big is a new numbering.
        let restart = new_source || self.highest.is_some_and(|h| h.abs_diff(ext) > RESET_GAP);
        if restart {
            self.stats.resets += 1;
            self.held.clear();
            self.next = None;
            self.highest = None;
            ext = self.extend(seq);
        }
        let next = *self.next.get_or_insert(ext);
        if ext < next || self.held.contains_key(&ext) {
            self.stats.late += 1;
            return restart;
        }
        if self.highest.is_some_and(|h| ext < h) {
            self.stats.reordered += 1;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.held.insert(ext, (item, now));
        restart
    }

    /// The next released item or gap, if any is ready at `now`.
    pub fn pop(&mut self, now: Instant) -> Option<Released<T>> {
        let next = self.next?;
        if let Some((item, _)) = self.held.remove(&next) {
            self.next = Some(next + 1);
            self.stats.released += 1;
            return Some(Released::Item { seq: next, item });
        }
        let (&first_held, &(_, arrived)) = self.held.iter().next()?;
        let waited_out = now.saturating_duration_since(arrived) >= self.max_wait;
        if waited_out || self.held.len() > self.max_held {
            let count = first_held - next;
            self.stats.lost += count;
            self.next = Some(first_held);
            return Some(Released::Lost { first: next, count });
        }
        None
    }

    /// When a held item will be given up waiting for, if anything is held.
    pub fn deadline(&self) -> Option<Instant> {
        self.held.values().next().map(|(_, arrived)| *arrived + self.max_wait)
    }

    /// The (extended) sequence numbers still waited for: gaps before the highest item held.
    /// At most `limit` of them, oldest first.
    pub fn missing(&self, limit: usize) -> Vec<u64> {
        let (Some(next), Some(&last)) = (self.next, self.held.keys().next_back()) else { return Vec::new() };
        (next..last).filter(|s| !self.held.contains_key(s)).take(limit).collect()
    }
}

/// When to ask again for packets that are missing (RTCP NACK, RFC 4585), paced by the round
/// trip: a first request as soon as a gap is seen, another only when the answer to the last
/// one is overdue (a round trip and a margin later), at most `max_tries` times. The receive
/// path gives a gap up on its own schedule (see [`ReorderBuffer`]); a gap no longer listed as
/// missing is forgotten here.
///
/// A generator that repeats every missing packet on a fixed 20 ms tick (webrtc-rs's) asks for
/// each one RTT/20 times before the first answer can arrive, and each request is answered: on
/// a 400 ms bufferbloated path that is 20 copies of every lost packet, a retransmission storm
/// that fills the link and causes the loss it repairs (measured here: 950 kbit/s on a 1 Mbit/s
/// link carrying a 60 kbit/s stream).
#[derive(Debug)]
pub struct NackScheduler {
    max_tries: u8,
    /// Missing sequence number → (requests sent, when the last one was).
    pending: BTreeMap<u64, (u8, Instant)>,
    sent: u64,
}

impl NackScheduler {
    pub fn new(max_tries: u8) -> NackScheduler {
        NackScheduler { max_tries: max_tries.max(1), pending: BTreeMap::new(), sent: 0 }
    }

    /// How long to wait for an answer before asking again.
    fn retry_after(rtt: Duration) -> Duration {
        (rtt + rtt / 4 + Duration::from_millis(10)).max(Duration::from_millis(30))
    }

    /// Given what is missing now, the sequence numbers to request at `now`.
    pub fn poll(&mut self, missing: &[u64], now: Instant, rtt: Duration) -> Vec<u64> {
        self.pending.retain(|s, _| missing.binary_search(s).is_ok());
        let retry = Self::retry_after(rtt);
        let mut out = Vec::new();
        for &s in missing {
            match self.pending.get_mut(&s) {
                None => {
                    self.pending.insert(s, (1, now));
                    out.push(s);
                }
                Some((tries, at)) if *tries < self.max_tries && now.saturating_duration_since(*at) >= retry => {
                    *tries += 1;
                    *at = now;
                    out.push(s);
                }
                Some(_) => {}
            }
        }
        self.sent += out.len() as u64;
        out
    }

    /// When a pending request is next due again, if any is.
    pub fn deadline(&self, rtt: Duration) -> Option<Instant> {
        let retry = Self::retry_after(rtt);
        self.pending.values().filter(|(t, _)| *t < self.max_tries).map(|(_, at)| *at + retry).min()
    }

    /// Sequence numbers requested so far (each retry counts).
    pub fn requested(&self) -> u64 {
        self.sent
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drain<T>(b: &mut ReorderBuffer<T>, now: Instant) -> Vec<Released<T>> {
        std::iter::from_fn(|| b.pop(now)).collect()
    }

    #[test]
    fn gaps_are_listed_as_missing_until_filled_or_given_up() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_millis(100), 64);
        b.push(10, (), t);
        drain(&mut b, t);
        assert!(b.missing(10).is_empty());
        b.push(13, (), t);
        b.push(15, (), t);
        let m = b.missing(10);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m.iter().map(|s| (s & 0xffff) as u16).collect::<Vec<_>>(), [11, 12, 14]);
        assert_eq!(b.missing(2).len(), 2, "limited");
        b.push(11, (), t);
        drain(&mut b, t);
        assert_eq!(b.missing(10).iter().map(|s| (s & 0xffff) as u16).collect::<Vec<_>>(), [12, 14]);
        drain(&mut b, t + Duration::from_millis(150));
        assert!(b.missing(10).is_empty(), "given up");
    }

    #[test]
    fn nacks_are_repeated_once_per_round_trip_and_at_most_max_tries() {
        let t = Instant::now();
        let rtt = Duration::from_millis(100);
        let mut n = NackScheduler::new(3);
        assert_eq!(n.poll(&[5, 7], t, rtt), [5, 7], "at once");
        assert_eq!(n.deadline(rtt), Some(t + Duration::from_millis(135)));
        // Nothing again within the round trip, however often it is polled.
        for ms in (5..135).step_by(5) {
            assert!(n.poll(&[5, 7], t + Duration::from_millis(ms), rtt).is_empty(), "{ms} ms");
        }
        // 7 arrived; 5 is asked for again, and a new gap at once.
        assert_eq!(n.poll(&[5, 9], t + Duration::from_millis(140), rtt), [5, 9]);
        assert_eq!(n.poll(&[5, 9], t + Duration::from_millis(280), rtt), [5, 9]);
        // 5 has had its three requests.
        assert_eq!(n.poll(&[5, 9], t + Duration::from_millis(420), rtt), [9]);
        assert!(n.poll(&[5, 9], t + Duration::from_millis(600), rtt).is_empty());
        assert_eq!(n.deadline(rtt), None);
        assert_eq!(n.requested(), 7);
        // A short round trip still leaves 30 ms between requests.
        let mut n = NackScheduler::new(5);
        n.poll(&[1], t, Duration::from_millis(1));
        assert!(n.poll(&[1], t + Duration::from_millis(29), Duration::from_millis(1)).is_empty());
        assert_eq!(n.poll(&[1], t + Duration::from_millis(30), Duration::from_millis(1)), [1]);
    }

    #[test]
    fn in_order_items_come_out_immediately() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_millis(40), 16);
        for s in 65530u16..=65535 {
            b.push(s, s, t);
            assert!(matches!(b.pop(t), Some(Released::Item { item, .. }) if item == s));
        }
        for s in 0u16..3 {
            b.push(s, s, t);
            assert!(matches!(b.pop(t), Some(Released::Item { item, .. }) if item == s), "across the wrap");
        }
        assert_eq!(b.stats().lost, 0);
    }

    #[test]
    fn reordered_within_wait_is_fixed_and_gap_is_lost_after_wait() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_millis(40), 16);
        b.push(10, 'a', t);
        b.push(12, 'c', t);
        assert_eq!(drain(&mut b, t), vec![Released::Item { seq: 65546, item: 'a' }]);
        b.push(11, 'b', t + Duration::from_millis(5));
        let out: Vec<char> = drain(&mut b, t)
            .into_iter()
            .filter_map(|r| match r {
                Released::Item { item, .. } => Some(item),
                _ => None,
            })
            .collect();
        assert_eq!(out, ['b', 'c']);
        assert_eq!(b.stats().reordered, 1);
        // 13 never comes.
        b.push(14, 'e', t);
        assert!(b.pop(t + Duration::from_millis(39)).is_none());
        assert_eq!(b.deadline(), Some(t + Duration::from_millis(40)));
        assert_eq!(b.pop(t + Duration::from_millis(40)), Some(Released::Lost { first: 65549, count: 1 }));
        assert!(matches!(b.pop(t + Duration::from_millis(40)), Some(Released::Item { item: 'e', .. })));
        // 13 finally arrives: late.
        b.push(13, 'd', t);
        assert!(b.pop(t).is_none());
        assert_eq!(b.stats().late, 1);
    }

    #[test]
    fn a_restarted_stream_is_followed_whatever_its_new_numbering() {
        let t = Instant::now();
        for restart_at in [100u16, 40_000, 60_000] {
            let mut b = ReorderBuffer::new(Duration::from_millis(40), 16);
            for s in 20_000u16..20_010 {
                b.push(s, s, t);
                assert!(b.pop(t).is_some());
            }
            for s in restart_at..restart_at + 5 {
                b.push(s, s, t);
                assert!(
                    matches!(b.pop(t), Some(Released::Item { item, .. }) if item == s),
                    "restart at {restart_at}"
                );
            }
            assert_eq!(b.stats().resets, 1);
            assert_eq!(b.stats().lost, 0);
        }
    }

    #[test]
    fn a_new_source_restarts_even_with_nearby_numbers() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_millis(40), 16);
        assert!(!b.push_from(7, 100, 'a', t));
        assert!(matches!(b.pop(t), Some(Released::Item { item: 'a', .. })));
        // Another SSRC whose numbers happen to sit just behind: not "late", a new stream.
        assert!(b.push_from(8, 90, 'b', t));
        assert!(matches!(b.pop(t), Some(Released::Item { item: 'b', .. })));
        assert!(!b.push_from(8, 91, 'c', t));
        assert_eq!(b.stats().late, 0);
        assert_eq!(b.stats().resets, 1);
    }

    #[test]
    fn too_many_held_forces_progress() {
        let t = Instant::now();
        let mut b = ReorderBuffer::new(Duration::from_secs(10), 2);
        b.push(0, 0, t);
        b.pop(t);
        for s in 2..6u16 {
            b.push(s, s, t);
        }
        assert_eq!(b.pop(t), Some(Released::Lost { first: 65537, count: 1 }));
    }

    proptest! {
        /// Whatever the arrival order, released items are strictly increasing and every item is
        /// either released, reported lost, or counted late.
        #[test]
        fn releases_in_order(order in proptest::sample::subsequence((0u16..200).collect::<Vec<_>>(), 100..200).prop_shuffle(), start in any::<u16>()) {
            let t = Instant::now();
            let mut b = ReorderBuffer::new(Duration::from_millis(30), 64);
            let mut out = Vec::new();
            for (i, s) in order.iter().enumerate() {
                b.push(start.wrapping_add(*s), *s, t + Duration::from_millis(i as u64));
                out.extend(drain(&mut b, t + Duration::from_millis(i as u64)));
            }
            out.extend(drain(&mut b, t + Duration::from_secs(5)));
            let mut last = None;
            for r in &out {
                if let Released::Item { seq, .. } = r {
                    prop_assert!(last.is_none_or(|l| *seq > l));
                    last = Some(*seq);
                }
            }
            let st = b.stats();
            prop_assert_eq!(st.received, order.len() as u64);
            prop_assert_eq!(st.released + st.late, st.received);
        }
    }
}
