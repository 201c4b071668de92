//! Playout delay that grows only as far as the network makes it useful.
//!
//! [`DelayWindow`] measures how late each unit (a complete video frame, an audio packet)
//! arrives against the fastest arrival seen recently on the same media timeline: the sender's
//! media time and the receiver's clock differ by a constant (clock offset plus the path's
//! one-way delay), so `arrival - media` is that constant for a unit that met no queue, no jitter
//! and no retransmission, and more for one that did.
//!
//! [`VideoPlayout`] uses it to hold complete frames before decoding. A frame that waited for a
//! retransmission blocks every frame after it (each references the one before), so the
//! receiver sees a gap of about a round trip; past 200 ms that is a freeze. Hiding the whole
//! delay (what a classic jitter buffer does) adds a round trip of latency to every frame; the
//! delay here is only what keeps the gap under the freeze threshold: the largest lateness of
//! the last seconds minus [`VideoPlayout::FREEZE_BUDGET`]. On a clean path it stays zero.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Lateness of arrivals against the fastest recent one (see the module docs).
#[derive(Debug, Clone)]
pub struct DelayWindow {
    origin: Option<Instant>,
    base_window: Duration,
    peak_window: Duration,
    /// Offsets (`arrival - media`, µs) with their arrival time, increasing: the front is the
    /// minimum over `base_window`.
    base: VecDeque<(Instant, i64)>,
    /// Delays with their arrival time, decreasing: the front is the maximum over `peak_window`.
    peaks: VecDeque<(Instant, u64)>,
    /// Every delay within `peak_window`, in arrival order (for [`DelayWindow::quantile`]).
    all: VecDeque<(Instant, u64)>,
}

/// A unit later than this against the baseline is not a late unit but a new timeline (the
/// sender restarted its stream, its clock jumped): the window starts over.
const RESET_US: u64 = 3_000_000;

impl DelayWindow {
    /// The baseline is the fastest arrival within `base_window`; [`DelayWindow::peak`] is the
    /// largest lateness within `peak_window`.
    pub fn new(base_window: Duration, peak_window: Duration) -> DelayWindow {
        DelayWindow {
            origin: None,
            base_window,
            peak_window,
            base: VecDeque::new(),
            peaks: VecDeque::new(),
            all: VecDeque::new(),
        }
    }

    /// A unit of media time `media_us` arrived at `now`; returns its lateness in µs.
    pub fn push(&mut self, media_us: u64, now: Instant) -> u64 {
        let origin = *self.origin.get_or_insert(now);
        let arrival = i64::try_from(now.saturating_duration_since(origin).as_micros()).unwrap_or(i64::MAX);
        let offset = arrival.saturating_sub(i64::try_from(media_us).unwrap_or(i64::MAX));
        self.expire(now);
        while self.base.back().is_some_and(|(_, o)| *o >= offset) {
            self.base.pop_back();
        }
        self.base.push_back((now, offset));
        let base = self.base.front().map_or(offset, |(_, o)| *o);
        let mut delay = offset.saturating_sub(base).unsigned_abs();
        if delay > RESET_US {
            self.base.clear();
            self.peaks.clear();
            self.all.clear();
            self.base.push_back((now, offset));
            delay = 0;
        }
        while self.peaks.back().is_some_and(|(_, d)| *d <= delay) {
            self.peaks.pop_back();
        }
        self.peaks.push_back((now, delay));
        self.all.push_back((now, delay));
        delay
    }

    /// The lateness (µs) that a fraction `q` (0..=1) of the arrivals within the peak window did
    /// not exceed: `quantile(0.95, now)` leaves out the latest 5%, where [`DelayWindow::peak`]
    /// follows the single latest one.
    pub fn quantile(&mut self, q: f64, now: Instant) -> u64 {
        self.expire(now);
        if self.all.is_empty() {
            return 0;
        }
        let mut v: Vec<u64> = self.all.iter().map(|(_, d)| *d).collect();
        let rank = ((v.len() as f64 * q.clamp(0.0, 1.0)).ceil() as usize).clamp(1, v.len()) - 1;
        *v.select_nth_unstable(rank).1
    }

    /// The largest lateness (µs) within the peak window before `now`.
    pub fn peak(&mut self, now: Instant) -> u64 {
        self.expire(now);
        self.peaks.front().map_or(0, |(_, d)| *d)
    }

    fn expire(&mut self, now: Instant) {
        // The newest baseline entry always stays, so a long silence keeps its reference.
        while self.base.len() > 1
            && self.base.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.base_window)
        {
            self.base.pop_front();
        }
        while self.peaks.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.peak_window) {
            self.peaks.pop_front();
        }
        while self.all.front().is_some_and(|(t, _)| now.saturating_duration_since(*t) > self.peak_window) {
            self.all.pop_front();
        }
    }
}

/// When complete video frames go to the decoder (see the module docs).
#[derive(Debug, Clone)]
pub struct VideoPlayout {
    window: DelayWindow,
    budget: Duration,
    max: Duration,
    last_release: Option<Instant>,
}

impl Default for VideoPlayout {
    fn default() -> Self {
        VideoPlayout::new(VideoPlayout::FREEZE_BUDGET, VideoPlayout::MAX_DELAY)
    }
}

impl VideoPlayout {
    /// A freeze is a gap over 200 ms between decoded frames; a frame's gap is one frame
    /// interval (33 ms at 30 fps) plus its lateness beyond the playout delay. 150 ms of
    /// lateness stays under the threshold with room for jitter.
    pub const FREEZE_BUDGET: Duration = Duration::from_millis(150);
    /// The playout delay never exceeds this (latency is worth more than one more smooth frame).
    pub const MAX_DELAY: Duration = Duration::from_millis(200);
    /// How far back lateness counts (the delay shrinks again this long after the last late frame).
    pub const PEAK_WINDOW: Duration = Duration::from_secs(10);
    /// How far back the fastest arrival counts (a standing queue that builds up slower than this
    /// is not lateness).
    pub const BASE_WINDOW: Duration = Duration::from_secs(3);

    pub fn new(budget: Duration, max: Duration) -> VideoPlayout {
        VideoPlayout {
            window: DelayWindow::new(Self::BASE_WINDOW, Self::PEAK_WINDOW),
            budget,
            max,
            last_release: None,
        }
    }

    /// A complete frame of media time `media_us` is ready at `now`: when to decode it. Release
    /// times never go backwards (frames decode in order).
    pub fn release_at(&mut self, media_us: u64, now: Instant) -> Instant {
        let late = Duration::from_micros(self.window.push(media_us, now));
        let target = self.delay(now);
        let release = now + target.saturating_sub(late);
        let release = self.last_release.map_or(release, |l| release.max(l));
        self.last_release = Some(release);
        release
    }

    /// The playout delay now.
    pub fn delay(&mut self, now: Instant) -> Duration {
        let peak = Duration::from_micros(self.window.peak(now));
        peak.saturating_sub(self.budget).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn lateness_is_measured_against_the_fastest_recent_arrival() {
        let t0 = Instant::now();
        let mut w = DelayWindow::new(Duration::from_secs(3), Duration::from_secs(10));
        // Media time 1000 s (any sender clock) arrives with a constant offset: lateness 0.
        assert_eq!(w.push(1_000_000 * MS, at(t0, 0)), 0);
        assert_eq!(w.push(1_000_033 * MS, at(t0, 33)), 0);
        // 40 ms late, then 5 ms early against the first: the baseline moves to the early one.
        assert_eq!(w.push(1_000_066 * MS, at(t0, 106)), 40 * MS);
        assert_eq!(w.push(1_000_100 * MS, at(t0, 95)), 0);
        assert_eq!(w.push(1_000_133 * MS, at(t0, 133)), 5 * MS);
        assert_eq!(w.peak(at(t0, 200)), 40 * MS);
        // Ten seconds later the late one no longer counts.
        assert_eq!(w.push(1_010_300 * MS, at(t0, 10_295)), 0);
        assert_eq!(w.peak(at(t0, 10_300)), 0);
        // A stream that starts over on another timeline is not 'late' by hours.
        assert_eq!(w.push(5 * MS, at(t0, 10_400)), 0);
        assert_eq!(w.push(3_600_000_000 * MS, at(t0, 10_433)), 0);
        assert_eq!(w.push(3_600_000_033 * MS, at(t0, 10_466)), 0);
    }

    #[test]
    fn a_quantile_leaves_out_the_rare_late_arrivals_that_the_peak_follows() {
        let t0 = Instant::now();
        let mut w = DelayWindow::new(Duration::from_secs(3), Duration::from_secs(10));
        assert_eq!(w.quantile(0.95, t0), 0, "nothing measured yet");
        // 100 audio packets 20 ms apart: most within 4 ms, three held 40 ms by a stall.
        for k in 0..100u64 {
            let late = if [20, 50, 80].contains(&k) { 40 } else { k % 5 };
            w.push(k * 20 * MS, at(t0, k * 20 + late));
        }
        let now = at(t0, 2_000);
        assert_eq!(w.peak(now), 40 * MS);
        assert_eq!(w.quantile(0.95, now), 4 * MS);
        assert_eq!(w.quantile(1.0, now), 40 * MS);
        assert_eq!(w.quantile(0.0, now), 0);
        // Ten seconds on, the window has only the newest arrival.
        w.push(600_000 * MS, at(t0, 600_000 + 1));
        assert_eq!(w.quantile(0.95, at(t0, 600_001)), 0);
    }

    #[test]
    fn a_slowly_building_queue_is_not_lateness() {
        // The path's delay grows by 100 ms over 10 s (a queue filling): every frame is a little
        // later than the one before, but never more than the 3 s baseline window allows.
        let t0 = Instant::now();
        let mut w = DelayWindow::new(Duration::from_secs(3), Duration::from_secs(10));
        let mut worst = 0;
        for k in 0..300u64 {
            let media = k * 33 * MS;
            worst = worst.max(w.push(media, at(t0, k * 33 + k / 3)));
        }
        assert!(worst <= 31 * MS, "{worst}");
    }

    /// Decode times of a 30 fps stream where frame 30 waited `retransmit_ms` for a
    /// retransmission (and the frames behind it with it); returns the longest gap between
    /// decodes after the first late frame, and the playout delay at the end.
    fn gaps(playout: &mut VideoPlayout, t0: Instant, losses: &[u64], retransmit_ms: u64) -> (u64, Duration) {
        let mut longest = 0;
        let mut last: Option<Instant> = None;
        let n = 300u64;
        let mut held_until = 0;
        for k in 0..n {
            let sent = k * 33;
            // A lost frame is complete a retransmission later; the frames behind it wait for it.
            let mut ready = sent + 20;
            if losses.contains(&k) {
                held_until = ready + retransmit_ms;
            }
            ready = ready.max(held_until);
            let release = playout.release_at(sent * MS, at(t0, ready));
            if let Some(l) = last
                && k > losses[0] + 1
            {
                longest = longest.max(release.duration_since(l).as_millis() as u64);
            }
            last = Some(release);
        }
        (longest, playout.delay(at(t0, n * 33 + 20)))
    }

    #[test]
    fn a_clean_path_gets_no_delay() {
        let t0 = Instant::now();
        let mut p = VideoPlayout::default();
        for k in 0..100u64 {
            let now = at(t0, k * 33 + (k % 3) * 7);
            assert_eq!(p.release_at(k * 33 * MS, now), now);
        }
        assert_eq!(p.delay(at(t0, 3_400)), Duration::ZERO);
    }

    #[test]
    fn retransmissions_over_a_long_round_trip_do_not_freeze_after_the_first() {
        // 200 ms RTT: a retransmitted frame is complete ~260 ms late. The first loss freezes
        // (nothing is known yet); from then on the delay holds later frames enough that the
        // next losses leave gaps under 200 ms, and no more delay than that.
        let t0 = Instant::now();
        let mut p = VideoPlayout::default();
        let (longest, delay) = gaps(&mut p, t0, &[30, 90, 150, 210, 270], 260);
        assert!(longest < 200, "longest gap after the first loss: {longest} ms");
        assert!(delay >= Duration::from_millis(100) && delay <= Duration::from_millis(120), "{delay:?}");
        // Without the delay the same stream freezes at every loss.
        let mut none = VideoPlayout::new(Duration::from_secs(10), Duration::ZERO);
        let (longest, _) = gaps(&mut none, t0, &[30, 90, 150, 210, 270], 260);
        assert!(longest > 250, "{longest}");
    }

    #[test]
    fn the_delay_is_capped_and_shrinks_back() {
        let t0 = Instant::now();
        let mut p = VideoPlayout::default();
        p.release_at(0, at(t0, 0));
        p.release_at(33 * MS, at(t0, 2_000));
        assert_eq!(p.delay(at(t0, 2_000)), VideoPlayout::MAX_DELAY);
        // Release times never go backwards.
        let a = p.release_at(66 * MS, at(t0, 2_001));
        let b = p.release_at(2_000 * MS, at(t0, 2_002));
        assert!(b >= a);
        assert_eq!(p.delay(at(t0, 12_100)), Duration::ZERO);
    }
}
