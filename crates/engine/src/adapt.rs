//! Video rate adaptation (sans-IO): from what the paths carry to the encoder's bitrate and
//! resolution.
//!
//! Each link's congestion controller (GCC, see `rtc_setup`) estimates what its path carries. A
//! video stream's budget is the lowest estimate among the peers it is sent to, less headroom
//! for packet headers, retransmissions and keyframe overshoot, less audio, times the stream's
//! share (a screen share takes most of it from the camera). The encoder runs at
//! `min(budget, what the current resolution needs)`; when the budget stays under half of what
//! the resolution needs, the resolution steps down (eighths of the source's sides down to a
//! quarter, frame rate kept: people notice a choppy picture more than a softer one); when it
//! stays above 60% of what the next step up needs, it steps back up. Down is quick
//! (0.5 s), up is slow (3 s), so a path near a boundary does not flap.

use crate::config::TrackKind;
use hearth_codec::VideoEncoderConfig;
use hearth_media::VideoKind;
use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Scales of the source's sides, as (numerator, denominator), largest first: eighths, so each
/// step needs ~25-35% less than the one above and a budget between two sizes is used.
const SCALES: [(u32, u32); 7] = [(1, 1), (7, 8), (3, 4), (5, 8), (1, 2), (3, 8), (1, 4)];
/// Never encode smaller than this many pixels wide (a smaller picture shows too little, and
/// the synthetic sources' stamps need 240 px to be read back).
const MIN_WIDTH: u32 = 240;
/// Of an estimate, what the encoder may use: the rest covers RTP/SRTP/UDP headers (~5% at
/// these packet sizes), NACK retransmissions, keyframes above the average rate, and the
/// estimate's saw-tooth around a cap. 0.75 before the back-off on queuing delay (at 0.85 a
/// 1 Mbit/s link was then kept full and each keyframe froze video); with it, two runs each at a
/// 1 Mbit/s cap: 0.75 used 56-64% of it, 0.8 58-63% with freezes of 202-746 ms in all, 0.85
/// 61-64% with up to 1 s of freezes and the lifted cap back in 4 and 12 s.
const HEADROOM: f64 = 0.8;
/// Reserved for the audio stream on the same path (Opus at 32 kbit/s plus headers).
pub const AUDIO_RESERVE_BPS: f64 = 45_000.0;
/// The lowest bitrate the encoder is given.
const MIN_BITRATE_BPS: u32 = 60_000;
const DOWN_AFTER: Duration = Duration::from_millis(500);
/// A step up needs a budget of this share of the larger size's need. GCC does not raise its
/// estimate beyond ~1.3-1.5x what it sees arriving, so a sender held by its current size's need
/// must step up before the estimate can grow further (at 70% a 720p source stayed at 640x360
/// on a freed 1 Mbit/s link); 0.6 still leaves a step up well above the 0.5 that steps down.
/// Scaled by what the content takes (`content_ratio`), but never under [`UP_SHARE_MIN`].
const UP_SHARE: f64 = 0.6;
/// A step up always lands above the 0.5 of the larger size's need that steps down again:
/// with the content ratio at 0.5, a budget of 0.3-0.5 of it stepped up and, 500 ms later,
/// down, a keyframe each way (found in review, 2026-12-05).
const UP_SHARE_MIN: f64 = 0.55;
const UP_AFTER: Duration = Duration::from_secs(3);
/// The wait before a step up when the budget is ample for two (see `VideoAdapter::up_wait`).
const UP_AFTER_FAST: Duration = Duration::from_secs(1);
/// How long the encoder's output is measured at one bitrate (see `VideoAdapter::observe_output`).
const CONTENT_WINDOW: Duration = Duration::from_secs(2);
/// An encoder below its size's full rate that sends less than this share of its bitrate is held
/// by its content (a synthetic pattern at 960x540 given 875 kbit/s sent ~700, and the sender
/// never stepped up to 1120 wide on a freed 1 Mbit/s link while the ratio was measured only at
/// full rate). Held by its budget, it sent 0.87-1.0x of it in the runs looked at (under the cap).
const CONTENT_LIMITED: f64 = 0.85;
/// The content ratio never counts for less than this (a still picture's few bytes must not make
/// a step up look free).
const CONTENT_RATIO_MIN: f64 = 0.5;
/// A step up undone sooner than this was premature; one that lasts resets the wait.
const UP_HELD: Duration = Duration::from_secs(15);
const UP_AFTER_MAX: Duration = Duration::from_secs(60);
/// A budget this much above the one a step up failed at, that has not fallen for
/// `UP_RESET_STEADY`, starts the waits over: a cap that lifted. Under a steady cap GCC's
/// estimate saw-tooths (falls every few seconds), so it does not.
const UP_RESET_GAIN: f64 = 1.3;
const UP_RESET_STEADY: Duration = Duration::from_secs(6);
/// A new bitrate is applied when it differs by more than this fraction (each change costs the
/// encoder's rate control a little settling).
const BITRATE_STEP: f64 = 0.05;

/// What the encoder should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeTarget {
    pub width: u32,
    pub height: u32,
    pub bitrate_bps: u32,
}

/// The adaptation state of one video stream.
#[derive(Debug, Clone)]
pub struct VideoAdapter {
    source: (u32, u32),
    fps: f32,
    kind: VideoKind,
    step: usize,
    /// Since when the budget has been under what the current step needs.
    short_since: Option<Instant>,
    /// Since when the budget has been enough for the step above.
    ample_since: Option<Instant>,
    bitrate: u32,
    /// A budget was seen: the first one picks the size at once, later ones with hysteresis.
    seen_budget: bool,
    /// How long the budget must stay ample before a step up: doubles (to a minute) when a step
    /// up is undone within `UP_HELD`, so a path near a boundary (GCC's estimate saw-tooths
    /// around a cap) does not pay a keyframe at a larger size every few seconds.
    up_after: Duration,
    last_up: Option<Instant>,
    /// The budget the last step up was taken at.
    up_budget: f64,
    /// The step (size) a step up went to and was then undone.
    failed_step: Option<usize>,
    /// The budget a step up that was then undone had been taken at: a budget well above it
    /// that has not fallen for a while (a cap lifted, a better path) resets the wait.
    undone_at: Option<f64>,
    /// The highest budget since it last fell by 10%, and when it fell.
    peak: f64,
    fell_at: Option<Instant>,
    /// Since when, and how many bytes were encoded, while the encoder ran at one bitrate (the
    /// third field; what the content takes, see [`VideoAdapter::observe_output`]).
    output: Option<(Instant, u64, u32)>,
    /// What the content takes at full rate, as a share of the full rate (1 until measured).
    content_ratio: f64,
}

/// The budget of a video stream from its peers' estimates (bits per second; `None` for a peer
/// without an estimate yet) and its share of the video budget (0..=1). `None`: no estimate at
/// all, the stream runs at what its resolution needs.
pub fn video_budget(estimates: impl IntoIterator<Item = Option<u64>>, share: f64) -> Option<f64> {
    let lowest = estimates.into_iter().flatten().min()?;
    Some(((lowest as f64 * HEADROOM - AUDIO_RESERVE_BPS) * share.clamp(0.0, 1.0)).max(0.0))
}

/// The share of the video budget a stream of `kind` gets when `screen_and_camera` both send:
/// the screen (text must stay readable) 70%, the camera 30%.
pub fn video_share(kind: TrackKind, screen_and_camera: bool) -> f64 {
    match (kind, screen_and_camera) {
        (_, false) => 1.0,
        (TrackKind::Screen, true) => 0.7,
        (_, true) => 0.3,
    }
}

impl VideoAdapter {
    pub fn new(width: u32, height: u32, fps: f32, kind: VideoKind) -> VideoAdapter {
        let mut a = VideoAdapter {
            source: (width, height),
            fps,
            kind,
            step: 0,
            short_since: None,
            ample_since: None,
            bitrate: 0,
            seen_budget: false,
            up_after: UP_AFTER,
            last_up: None,
            up_budget: 0.0,
            failed_step: None,
            undone_at: None,
            peak: 0.0,
            fell_at: None,
            output: None,
            content_ratio: 1.0,
        };
        a.bitrate = a.needs(0);
        a
    }

    /// The size of step `i` (even sides, aspect kept).
    fn size(&self, i: usize) -> (u32, u32) {
        let (n, d) = SCALES[i];
        let even = |v: u32| ((v * n / d) & !1).max(16);
        (even(self.source.0), even(self.source.1))
    }

    /// The steps usable for this source (none below `MIN_WIDTH` except the source itself).
    fn steps(&self) -> usize {
        (1..SCALES.len()).take_while(|&i| self.size(i).0 >= MIN_WIDTH).count() + 1
    }

    /// What step `i` needs for full quality.
    fn needs(&self, i: usize) -> u32 {
        let (w, h) = self.size(i);
        VideoEncoderConfig::for_source(w, h, self.fps, self.kind).bitrate_bps
    }

    /// A frame of `bytes` was encoded at `now` with the target last returned. While the encoder
    /// runs at its size's full rate, simple content (a still room, a synthetic pattern) takes
    /// less than that rate; what it takes, measured over `CONTENT_WINDOW`, scales what a step
    /// up is expected to need, so a sender held at a smaller size by the estimate's bound (at
    /// most 1.3-1.5x what the path was seen to carry) can still step up to the size its content
    /// and path allow. Below the full rate, an encoder that does not use what it is given
    /// (under [`CONTENT_LIMITED`] of it) is held by its content, not by the budget, and its
    /// output against the full rate is the ratio too; one that uses its budget says nothing.
    pub fn observe_output(&mut self, bytes: usize, now: Instant) {
        if self.output.is_some_and(|(_, _, at)| at != self.bitrate) {
            self.output = None;
        }
        let (since, total, _) = self.output.get_or_insert((now, 0, self.bitrate));
        *total += bytes as u64;
        let span = now.saturating_duration_since(*since);
        if span >= CONTENT_WINDOW {
            let bps = *total as f64 * 8.0 / span.as_secs_f64();
            let full = f64::from(self.needs(self.step));
            let ratio = (bps / full).clamp(CONTENT_RATIO_MIN, 1.0);
            if self.bitrate == self.needs(self.step) || bps < CONTENT_LIMITED * f64::from(self.bitrate) {
                self.content_ratio = ratio;
            } else {
                // Held by its budget: the content takes at least this much.
                self.content_ratio = self.content_ratio.max(ratio);
            }
            self.output = None;
        }
    }

    /// The target for `budget` (see [`video_budget`]) at `now`.
    pub fn update(&mut self, budget: Option<f64>, now: Instant) -> EncodeTarget {
        let Some(budget) = budget else {
            self.short_since = None;
            self.ample_since = None;
            self.bitrate = self.needs(self.step);
            return self.target();
        };
        let short = budget < 0.5 * f64::from(self.needs(self.step)) && self.step + 1 < self.steps();
        let step_before = self.step;
        // The first budget (the estimate a link starts from) picks the starting size at once:
        // the first keyframe is then sized for the path.
        let first = !std::mem::replace(&mut self.seen_budget, true);
        self.short_since = if short { self.short_since.or(Some(now)) } else { None };
        let ample = self.step > 0 && budget >= self.up_share() * f64::from(self.needs(self.step - 1));
        self.ample_since = if ample { self.ample_since.or(Some(now)) } else { None };
        if short && (first || self.short_since.is_some_and(|t| now.duration_since(t) >= DOWN_AFTER)) {
            // Straight to the step the budget fits (a cap can be far below).
            while self.step + 1 < self.steps() && budget < 0.5 * f64::from(self.needs(self.step)) {
                self.step += 1;
            }
            self.short_since = None;
            if self.last_up.take().is_some_and(|t| now.duration_since(t) < UP_HELD) {
                self.up_after = (self.up_after * 2).min(UP_AFTER_MAX);
                self.undone_at = Some(self.up_budget);
                self.failed_step = Some(step_before);
            }
        } else if self.ample_since.is_some_and(|t| now.duration_since(t) >= self.up_wait(budget)) {
            self.step -= 1;
            self.ample_since = None;
            self.last_up = Some(now);
            self.up_budget = budget;
        }
        if budget < self.peak * 0.9 {
            self.fell_at = Some(now);
            self.peak = budget;
        }
        self.peak = self.peak.max(budget);
        let steady_rise = self.undone_at.is_some_and(|b| budget >= b * UP_RESET_GAIN)
            && self.fell_at.is_none_or(|t| now.duration_since(t) >= UP_RESET_STEADY);
        if self.last_up.is_some_and(|t| now.duration_since(t) >= UP_HELD) || steady_rise {
            self.up_after = UP_AFTER;
            self.undone_at = None;
            self.failed_step = None;
        }
        if self.step != step_before {
            self.output = None;
        }
        let want = budget.min(f64::from(self.needs(self.step))).max(f64::from(MIN_BITRATE_BPS)) as u32;
        if (f64::from(want) - f64::from(self.bitrate)).abs() > f64::from(self.bitrate) * BITRATE_STEP
            || want == self.needs(self.step)
        {
            self.bitrate = want;
        }
        self.target()
    }

    /// How long the budget must stay ample before a step up. The longer `up_after` (doubled
    /// by each step up that was undone) holds only a step up to the size that failed or
    /// larger, while the budget stays under 1.3x the one it failed at; smaller sizes climb as
    /// usual (after a drop under a cap they waited 6-12 s each, at a quarter of the picture),
    /// and in [`UP_AFTER_FAST`] while the budget is ample for two steps up (a cap lifted:
    /// climbing one size every 3 s from a quarter took 18 s).
    fn up_wait(&self, budget: f64) -> Duration {
        let to = self.step.saturating_sub(1);
        let free = self.failed_step.is_none_or(|f| to > f)
            || self.undone_at.is_some_and(|b| budget >= b * UP_RESET_GAIN);
        let two_up = self.step > 1 && budget >= self.up_share() * f64::from(self.needs(self.step - 2));
        match (free, two_up) {
            (true, true) => UP_AFTER_FAST,
            (true, false) => UP_AFTER,
            (false, _) => self.up_after,
        }
    }

    /// The share of a larger size's need a step up to it needs.
    fn up_share(&self) -> f64 {
        (UP_SHARE * self.content_ratio).max(UP_SHARE_MIN)
    }

    pub fn target(&self) -> EncodeTarget {
        let (width, height) = self.size(self.step);
        EncodeTarget { width, height, bitrate_bps: self.bitrate }
    }
}

/// GCC (rtc's), with four changes (the last two: see `QueueDelay` and `Recovery`):
/// - **held to what the path has shown it carries**: at most 1.5x the rate acknowledged over
///   the last second plus 100 kbit/s, and 1.3x plus 60 kbit/s within 30 s of a back-off on a
///   queue. GCC's delay-based half only learns of a limit by hitting it; while the encoder
///   sends less than the estimate (a small picture, a still screen) the stock estimate kept
///   growing by 8% a second (measured here: 2 Mbit/s on a 1 Mbit/s link after 9 s at 370
///   kbit/s), and the next step up in resolution then overshot the link by half. libwebrtc
///   holds its estimate the same way. 1.5x + 100 kbit/s alone did while a bug in the
///   encoder's bitrate change put a keyframe in every raise (each a queue and a cut);
///   without those, it let the estimate reach 1.4 Mbit/s on a 1 Mbit/s link and a step up's
///   keyframe overflowed the queue (1.5 s frozen in two runs of three); 1.25x + 50 kbit/s held
///   a sender at 480 wide for a whole call; 1.35x + 75 kbit/s froze 0.8 and 1.7 s in two of
///   four runs; 1.3x + 60 kbit/s: 59-67% of the cap used, longest freeze 267 ms, in three,
///   but on loopback (no bottleneck) the desktop benchmark's capture -> painted p95 rose from
///   53-59 to 78-90 ms (two runs each), hence 1.3x only once the path has shown a queue.
/// - **a startup ramp**: from a modest start (so the first keyframe is small and a slow link
///   is not flooded before the first feedback), the estimate grows 30% a second for as long as
///   nothing is lost and GCC does not lower its own estimate; then GCC takes over, restarted at
///   what the path was seen to carry. Stock GCC's +8% a second took ~20 s to reach 720p.
/// - **a back-off on queuing delay**, measured from the feedback's arrival times: rtc's delay
///   half did not detect the queue of a 1 Mbit/s bottleneck here, only loss did, once the queue
///   had overflowed (a keyframe lost, seconds of freeze).
/// - **rapid recovery** to 85% of what the path carried, once the queue behind a drop drained.
pub struct CappedGcc {
    gcc: Gcc,
    min: f64,
    max: f64,
    /// (arrival on the far end's clock, bytes) of packets reported arrived, the last second.
    acked: VecDeque<(Duration, usize)>,
    first: Option<Duration>,
    /// The latest arrival reported.
    newest: Option<Duration>,
    /// While starting: since when, and from what rate.
    startup: Option<(Option<Instant>, f64)>,
    last_gcc: f64,
    target: f64,
    logged: Option<Instant>,
    recovery: Recovery,
    queue: QueueDelay,
    /// The last back-off on a queue (one per [`QUEUE_CUT_SPACING`]).
    queue_cut_at: Option<Instant>,
    /// When a feedback batch last showed packets waiting at a bottleneck (see
    /// [`QUEUE_STANDING`]).
    queue_standing_at: Option<Instant>,
    /// The last batch's queue was over [`QUEUE_OVERUSE`].
    queue_over: bool,
    /// The link's shared estimate, where its sender notes each keyframe it sends.
    hints: Option<std::sync::Arc<crate::rtc_setup::SendEstimate>>,
    /// Batches over [`QUEUE_OVERUSE`] not counted (compressed), for the debug log.
    queue_compressed: u64,
}

impl std::fmt::Debug for CappedGcc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CappedGcc")
            .field("target", &self.target)
            .field("starting", &self.startup.is_some())
            .finish_non_exhaustive()
    }
}

/// The estimate is held to at most (gain x the acknowledged rate + bit/s)...
const ACKED_BOUND: (f64, f64) = (1.5, 100_000.0);
/// ...or, within [`BOTTLENECK_MEMORY`] of a back-off on a queue, this, while the path still
/// shows a standing queue (within [`QUEUE_DRAINED_AFTER`]).
const ACKED_BOUND_BOTTLENECK: (f64, f64) = (1.3, 60_000.0);
const BOTTLENECK_MEMORY: Duration = Duration::from_secs(30);
/// A batch whose every packet waited longer than this (µs) shows a standing queue: the
/// bottleneck never emptied while they went through. Not the median: at a 1 Mbit/s bottleneck
/// a frame's second packet waits ~10 ms behind its first however empty the link (each takes
/// that long to go through), and a median over 3 ms held the closer bound on a sender using
/// 58-66% of the link.
const QUEUE_STANDING: i64 = 3_000;
/// A path that shows no standing queue for this long has lost its bottleneck (a cap that
/// lifted): the estimate's closer bound ends there, not 30 s after the last back-off. Under
/// the closer bound, a sender sending what its budget allows grows by ~1.04x per round of
/// feedback less what its encoder undershoots: it stayed at 800 wide for the 15 s after a
/// 1 Mbit/s cap lifted (netem-bench, 2026-12-05).
const QUEUE_DRAINED_AFTER: Duration = Duration::from_secs(3);
/// The window the acknowledged rate is measured over.
const ACKED_WINDOW: Duration = Duration::from_secs(1);
/// Growth per second during the startup ramp.
const STARTUP_GROWTH: f64 = 1.3;
/// A feedback batch losing more than this ends the startup ramp.
const STARTUP_LOSS: f64 = 0.05;

impl CappedGcc {
    pub fn new(start: f64, min: f64, max: f64) -> CappedGcc {
        CappedGcc {
            gcc: Gcc::new(start, min, max),
            min,
            max,
            acked: VecDeque::new(),
            first: None,
            newest: None,
            startup: Some((None, start)),
            last_gcc: start,
            target: start,
            logged: None,
            recovery: Recovery::default(),
            queue: QueueDelay::default(),
            queue_cut_at: None,
            queue_standing_at: None,
            queue_over: false,
            hints: None,
            queue_compressed: 0,
        }
    }

    /// Reads when the link's sender last sent a keyframe from `hints` (the link's estimate).
    pub fn with_keyframe_hints(mut self, hints: std::sync::Arc<crate::rtc_setup::SendEstimate>) -> CappedGcc {
        self.hints = Some(hints);
        self
    }

    /// Bits per second acknowledged over the second before the latest arrival reported
    /// (`None` before a second of history). Anchored there, not at `now`: the packets of the
    /// last round trip and feedback interval are not reported yet, and a window ending at `now`
    /// counted 10-15% less than the path carried (the bound then held a sender under what it
    /// could send).
    fn acked_bps(&self) -> Option<f64> {
        let newest = self.newest?;
        if self.first.is_none_or(|f| newest.saturating_sub(f) < ACKED_WINDOW) {
            return None;
        }
        let bytes: usize = self.acked.iter().map(|(_, b)| b).sum();
        Some(bytes as f64 * 8.0 / ACKED_WINDOW.as_secs_f64())
    }

    /// The path has shown a bottleneck: a back-off on its queue within [`BOTTLENECK_MEMORY`],
    /// and a standing queue within [`QUEUE_DRAINED_AFTER`].
    fn bottleneck(&self, now: Instant) -> bool {
        let within =
            |at: Option<Instant>, d: Duration| at.is_some_and(|t| now.saturating_duration_since(t) < d);
        within(self.queue_cut_at, BOTTLENECK_MEMORY) && within(self.queue_standing_at, QUEUE_DRAINED_AFTER)
    }

    /// Still in the startup ramp.
    pub fn starting(&self) -> bool {
        self.startup.is_some()
    }
}

impl BandwidthEstimator for CappedGcc {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        if reports.is_empty() {
            return;
        }
        self.gcc.on_reports(now, reports);
        for r in reports.iter().filter(|r| r.arrived) {
            // By arrival (the far end's clock): what arrived within a second cannot exceed what
            // the path drains, where departures in a second include a keyframe's burst that
            // queued and arrived later.
            let Some(arrival) = r.arrival else { continue };
            self.first.get_or_insert(arrival);
            self.newest = Some(self.newest.map_or(arrival, |n| n.max(arrival)));
            self.acked.push_back((arrival, r.size));
        }
        if let Some(newest) = self.newest {
            while self.acked.front().is_some_and(|(t, _)| newest.saturating_sub(*t) >= ACKED_WINDOW) {
                self.acked.pop_front();
            }
        }
        let acked = self.acked_bps();
        let mut gcc = self.gcc.target_bitrate();
        let lost = reports.iter().filter(|r| !r.arrived).count() as f64 / reports.len() as f64;
        let resume = self.recovery.update(now, acked, gcc, self.gcc.delay_based_bitrate(), lost);
        if let Some(resume) = resume
            && self.startup.is_none()
            && resume > gcc
        {
            self.gcc = Gcc::new(resume, self.min, self.max);
            gcc = self.gcc.target_bitrate();
        }
        // A queue building on the path: back off to under what arrives before it overflows
        // (rtc's delay half did not react here: it kept rising while the round trip went from
        // 50 to 400 ms and only loss brought the estimate down, from a full queue).
        // A first cut is gentle (a keyframe's burst queues for a moment, and a sender held by
        // its content sends far less than the path carries); a queue still there at the next
        // cut goes to under what arrives.
        let queue = self.queue.update(reports);
        // Two batches in a row (~100 ms): one alone is as likely a stall of this machine's
        // scheduler (every packet of the batch stamped late) as a queue.
        let high = queue.is_some_and(|q| q.median > QUEUE_OVERUSE);
        let compressed = queue.is_some_and(|q| q.compressed);
        if high && compressed {
            self.queue_compressed += 1;
        }
        let over = high && !compressed;
        // (Not from a batch read at once after a stall of the far end's machine.)
        if queue.is_some_and(|q| q.least > QUEUE_STANDING && !q.compressed) {
            self.queue_standing_at = Some(now);
        }
        let queue = queue.map(|q| q.median);
        // Not the queue of a keyframe we just sent (one of a size step queued 100-130 ms at
        // 1 Mbit/s, and each brought a back-off: ~30% of the rate for seconds), unless it is
        // deep enough to overflow a short buffer.
        let after_keyframe = self
            .hints
            .as_ref()
            .and_then(|h| h.last_keyframe())
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_QUEUE_GRACE);
        let deep = queue.is_some_and(|q| q > QUEUE_DEEP);
        let queued = over && self.queue_over && (!after_keyframe || deep);
        self.queue_over = over;
        let since_cut = self.queue_cut_at.map(|t| now.saturating_duration_since(t));
        if queued && since_cut.is_none_or(|d| d >= QUEUE_CUT_SPACING) {
            let again = since_cut.is_some_and(|d| d < QUEUE_CUT_SPACING * 2);
            let mut cut = gcc * QUEUE_CUT;
            if again {
                cut = cut.min(acked.unwrap_or(cut) * 0.9);
            }
            tracing::debug!(
                target: "hearth_engine::bwe",
                from_kbps = gcc / 1000.0,
                to_kbps = cut / 1000.0,
                queue_ms = queue.map(|q| q as f64 / 1000.0),
                again,
                starting = self.startup.is_some(),
                "queue cut"
            );
            self.queue_cut_at = Some(now);
            self.gcc = Gcc::new(cut.max(self.min), self.min, self.max);
            self.startup = None;
            gcc = self.gcc.target_bitrate();
        }
        let mut target = gcc;
        if let Some((since, start)) = &mut self.startup {
            if gcc < self.last_gcc * 0.99 || lost > STARTUP_LOSS {
                // The path pushed back: GCC from here, restarted at what it carried.
                let carried = acked.unwrap_or(gcc).max(self.min) * 0.85;
                tracing::debug!(
                    target: "hearth_engine::bwe",
                    gcc_kbps = gcc / 1000.0,
                    last_gcc_kbps = self.last_gcc / 1000.0,
                    lost,
                    acked_kbps = acked.map(|a| a / 1000.0),
                    to_kbps = carried / 1000.0,
                    "startup ended"
                );
                self.gcc = Gcc::new(carried, self.min, self.max);
                self.startup = None;
                target = self.gcc.target_bitrate();
            } else {
                let t0 = *since.get_or_insert(now);
                let ramp = *start * STARTUP_GROWTH.powf(now.saturating_duration_since(t0).as_secs_f64());
                target = gcc.max(ramp).min(self.max);
            }
        }
        self.last_gcc = self.gcc.target_bitrate();
        self.target = match acked {
            // A recovery resumes at a rate the path was seen to carry before the drop, above
            // what it carries during the drop.
            Some(acked) => {
                // Closer once the path has shown a bottleneck (a back-off on its queue lately,
                // and packets still waiting in it).
                let bottleneck = self.bottleneck(now);
                let (gain, plus) = if bottleneck { ACKED_BOUND_BOTTLENECK } else { ACKED_BOUND };
                target.min((acked * gain + plus).max(self.recovery.floor(now)))
            }
            None => target,
        }
        .max(self.min);
        if self.logged.is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1)) {
            self.logged = Some(now);
            tracing::debug!(
                target: "hearth_engine::bwe",
                delay_kbps = self.gcc.delay_based_bitrate() / 1000.0,
                loss_kbps = self.gcc.loss_based_bitrate() / 1000.0,
                acked_kbps = acked.map(|a| a / 1000.0),
                lost,
                queue_ms = queue.map(|q| q as f64 / 1000.0),
                compressed = self.queue_compressed,
                starting = self.startup.is_some(),
                target_kbps = self.target / 1000.0,
                "estimate"
            );
        }
    }

    fn target_bitrate(&self) -> f64 {
        self.target
    }

    fn stats(&self) -> EstimatorStats {
        self.gcc.stats()
    }
}

/// Queuing delay on the path, from transport-wide feedback: each arrived packet's arrival
/// (far end's clock) minus its departure (ours) is the path's delay plus a constant clock
/// offset; against the least of the last [`QUEUE_BASE_WINDOW`] it is the time the packet spent
/// queued. A batch's median is its queue.
#[derive(Debug, Default)]
struct QueueDelay {
    t_ref: Option<Instant>,
    /// (arrival, offset µs), offsets increasing: the front is the least within the window.
    base: VecDeque<(Duration, i64)>,
}

/// The least delay counts for this long (a route change or a clock drift moves it).
const QUEUE_BASE_WINDOW: Duration = Duration::from_secs(10);
/// A batch whose median packet queued longer than this (µs) means a queue is building: more
/// than the jitter of the paths measured here (±10 ms) and of this 2-core machine's scheduling.
const QUEUE_OVERUSE: i64 = 40_000;
/// Back off to this share of the estimate.
const QUEUE_CUT: f64 = 0.85;
/// See [`BatchQueue::compressed`].
const QUEUE_COMPRESSED: f64 = 2.0;
/// A queue within this long after a keyframe left is that keyframe's (a 25 KB keyframe takes
/// 1 s to drain from a 1 Mbit/s link carrying 800 kbit/s)...
const KEYFRAME_QUEUE_GRACE: Duration = Duration::from_secs(1);
/// ...unless it is this deep (µs).
const QUEUE_DEEP: i64 = 150_000;
/// At most one back-off per this (a round trip or two, for the cut to show).
const QUEUE_CUT_SPACING: Duration = Duration::from_millis(300);

/// What one feedback batch says of the queue.
#[derive(Debug, Clone, Copy)]
struct BatchQueue {
    /// The median packet's queuing delay, µs.
    median: i64,
    /// The least packet's queuing delay, µs: over zero only when the bottleneck was never idle
    /// while the batch's packets went through it (a packet that found it idle did not wait).
    least: i64,
    /// The packets arrived in less than 1/[`QUEUE_COMPRESSED`] of the time they took to leave:
    /// a queue emptying, or the far end stamping at once packets it read late after a stall of
    /// its own (a loaded machine's scheduler); not a queue building.
    compressed: bool,
}

impl QueueDelay {
    /// The queuing delay of the arrived packets of `reports`.
    fn update(&mut self, reports: &[PacketReport]) -> Option<BatchQueue> {
        let mut batch = Vec::new();
        let mut departures: Option<(Instant, Instant)> = None;
        let mut arrivals: Option<(Duration, Duration)> = None;
        for r in reports.iter().filter(|r| r.arrived) {
            let Some(arrival) = r.arrival else { continue };
            departures = Some(
                departures
                    .map_or((r.departure, r.departure), |(a, b)| (a.min(r.departure), b.max(r.departure))),
            );
            arrivals = Some(arrivals.map_or((arrival, arrival), |(a, b)| (a.min(arrival), b.max(arrival))));
            let t_ref = *self.t_ref.get_or_insert(r.departure);
            let departed = r.departure.saturating_duration_since(t_ref);
            let offset = arrival.as_micros() as i64 - departed.as_micros() as i64;
            while self.base.back().is_some_and(|(_, o)| *o >= offset) {
                self.base.pop_back();
            }
            self.base.push_back((arrival, offset));
            while self.base.len() > 1
                && self.base.front().is_some_and(|(t, _)| arrival.saturating_sub(*t) > QUEUE_BASE_WINDOW)
            {
                self.base.pop_front();
            }
            let least = self.base.front().map_or(offset, |(_, o)| *o);
            batch.push(offset - least);
        }
        if batch.is_empty() {
            return None;
        }
        batch.sort_unstable();
        let left = departures.map_or(Duration::ZERO, |(a, b)| b.saturating_duration_since(a));
        let came = arrivals.map_or(Duration::ZERO, |(a, b)| b.saturating_sub(a));
        let compressed = batch.len() >= 4 && came.as_secs_f64() * QUEUE_COMPRESSED < left.as_secs_f64();
        let median = batch[batch.len() / 2];
        tracing::trace!(
            target: "hearth_engine::bwe",
            n = batch.len(),
            median_ms = median as f64 / 1000.0,
            max_ms = batch[batch.len() - 1] as f64 / 1000.0,
            left_ms = left.as_secs_f64() * 1000.0,
            came_ms = came.as_secs_f64() * 1000.0,
            "batch"
        );
        Some(BatchQueue { median, least: batch[0], compressed })
    }
}

/// Rapid recovery after a drop (libwebrtc probes for the same after a large drop). GCC backs
/// off to 85% of what arrived while the queue was full and the link stalled, often a small
/// fraction of what the path carries (measured: from ~850 to 100 kbit/s on a 1 Mbit/s link
/// after one overflow), then climbed 8% a second under the bound of 1.5x what it saw arriving:
/// 10-15 s at a quarter of the picture. Here, when the estimate falls under 2/3 of what the path
/// carried in the 3 s before (the median acknowledged rate, so not above its capacity), and
/// then for a second nothing is lost and GCC's delay half stops backing off (the queue
/// drained), the estimate resumes at 85% of that. Once per 10 s: a path whose capacity really
/// fell gets one try, then GCC alone.
#[derive(Debug, Default)]
struct Recovery {
    /// Acknowledged rates of the last seconds.
    carried: VecDeque<(Instant, f64)>,
    /// A drop under way: when, and what the path carried before it.
    drop: Option<(Instant, f64)>,
    /// Since when nothing was lost and the delay half did not back off.
    calm_since: Option<Instant>,
    last_delay: f64,
    /// The last recovery: when, and the rate it resumed at.
    recovered: Option<(Instant, f64)>,
}

const RECOVERY_DROP: f64 = 2.0 / 3.0;
const RECOVERY_CARRIED_WINDOW: Duration = Duration::from_secs(3);
const RECOVERY_CALM: Duration = Duration::from_secs(1);
const RECOVERY_GIVE_UP: Duration = Duration::from_secs(10);
const RECOVERY_SPACING: Duration = Duration::from_secs(10);
/// The bound on the estimate stays at least the resumed rate this long after a recovery.
const RECOVERY_FLOOR_FOR: Duration = Duration::from_secs(4);
/// A batch of feedback losing more than this is not calm.
const RECOVERY_LOSS: f64 = 0.02;

impl Recovery {
    /// Folds in one feedback batch; returns the rate to resume at when a recovery is due.
    fn update(&mut self, now: Instant, acked: Option<f64>, gcc: f64, delay: f64, lost: f64) -> Option<f64> {
        let pushed_back = delay < self.last_delay * 0.99 || lost > RECOVERY_LOSS;
        self.last_delay = delay;
        self.calm_since = if pushed_back { None } else { self.calm_since.or(Some(now)) };
        if self.drop.is_none() {
            if let Some(a) = acked {
                self.carried.push_back((now, a));
            }
            while self
                .carried
                .front()
                .is_some_and(|(t, _)| now.saturating_duration_since(*t) > RECOVERY_CARRIED_WINDOW)
            {
                self.carried.pop_front();
            }
            // The median: a keyframe's burst counts above what the link drains (its packets
            // leave within the window and arrive after queueing), a stall's seconds below.
            let mut rates: Vec<f64> = self.carried.iter().map(|(_, a)| *a).collect();
            rates.sort_by(f64::total_cmp);
            let carried = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
            let spaced =
                self.recovered.is_none_or(|(t, _)| now.saturating_duration_since(t) >= RECOVERY_SPACING);
            if spaced && carried > 0.0 && gcc < carried * RECOVERY_DROP {
                self.drop = Some((now, carried));
                self.calm_since = None;
            }
            return None;
        }
        let (at, carried) = self.drop?;
        let since = now.saturating_duration_since(at);
        if since > RECOVERY_GIVE_UP {
            self.drop = None;
            self.carried.clear();
            return None;
        }
        let calm = self.calm_since.is_some_and(|t| now.saturating_duration_since(t) >= RECOVERY_CALM);
        if since < RECOVERY_CALM || !calm {
            return None;
        }
        self.drop = None;
        self.carried.clear();
        let resume = carried * 0.85;
        self.recovered = Some((now, resume));
        Some(resume)
    }

    /// The least the estimate's bound allows now (a recovery's rate, for a few seconds).
    fn floor(&self, now: Instant) -> f64 {
        match self.recovered {
            Some((t, rate)) if now.saturating_duration_since(t) < RECOVERY_FLOOR_FOR => rate,
            _ => 0.0,
        }
    }
}

/// A peer whose path carries less than this fraction of the best peer's gets the stream's
/// second, smaller encoding (the low layer) instead of pulling everyone's encoding down.
pub const LOW_LAYER_BELOW: f64 = 0.5;
/// ...and goes back to the main encoding once its path carries this fraction of the best's.
pub const LOW_LAYER_BACK: f64 = 0.75;

/// Which encoding each peer of a video stream gets (`true`: the low layer), from the peers'
/// estimates (bits per second), which one each has now, and whether each may change now (a
/// change costs that peer a keyframe, so changes are spaced). The best peer always gets the
/// main encoding, so the main encoding follows the best peers and the low one the others.
pub fn split_layers(estimates: &[f64], low_now: &[bool], may_change: &[bool]) -> Vec<bool> {
    let best = estimates.iter().copied().filter(|e| e.is_finite()).fold(0.0, f64::max);
    estimates
        .iter()
        .zip(low_now.iter().zip(may_change))
        .map(|(&e, (&was, &may))| {
            if !may {
                was
            } else if was {
                e < LOW_LAYER_BACK * best
            } else {
                e < LOW_LAYER_BELOW * best
            }
        })
        .collect()
}

/// The loss Opus plans its in-band FEC for, from what receivers report (RTCP fraction lost,
/// the worst peer's last report, looked at once a second): rises at once to a new worst, falls
/// back slowly (a tenth of the way per update) so one quiet second does not drop the
/// protection, never below the encoder's default, at most 30%.
#[derive(Debug, Clone)]
pub struct OpusLoss {
    perc: f64,
}

impl Default for OpusLoss {
    fn default() -> Self {
        OpusLoss { perc: f64::from(hearth_codec::OpusEncoder::DEFAULT_LOSS_PERC) }
    }
}

impl OpusLoss {
    /// A report of `measured` percent lost; returns the percentage to give the encoder.
    pub fn update(&mut self, measured: f64) -> i32 {
        let measured = if measured.is_finite() { measured.clamp(0.0, 100.0) } else { 0.0 };
        self.perc = if measured > self.perc { measured } else { self.perc * 0.9 + measured * 0.1 };
        let floor = hearth_codec::OpusEncoder::DEFAULT_LOSS_PERC;
        (self.perc.ceil() as i32).clamp(floor, 30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A packet sent at `departure` that arrived 10 ms later (arrival on a clock from `t0`).
    fn report(id: u64, t0: Instant, departure: Instant, size: usize) -> PacketReport {
        PacketReport {
            ssrc: 1,
            id,
            rtp_sequence_number: id as u16,
            is_twcc: true,
            twcc_sequence_number: id as u16,
            size,
            arrived: true,
            departure,
            arrival: Some(departure.duration_since(t0) + Duration::from_millis(10)),
            ecn: rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn::NotEct,
        }
    }

    /// Feeds `e` a path of `capacity` bit/s (what is sent beyond it is lost) for `secs`, the
    /// sender following the estimate; returns the estimate every second.
    fn run(e: &mut CappedGcc, t0: Instant, secs: u64, capacity: f64, id: &mut u64) -> Vec<f64> {
        let mut out = vec![];
        for tick in 0..secs * 10 {
            let now = t0 + Duration::from_millis(tick * 100);
            // 100 ms of packets at the estimate: 1000-byte packets.
            let n = (e.target_bitrate() / 8.0 / 1000.0 / 10.0).ceil() as u64;
            let room = (capacity / 8.0 / 1000.0 / 10.0) as u64;
            let reports: Vec<PacketReport> = (0..n)
                .map(|i| {
                    *id += 1;
                    let mut r = report(*id, t0, now + Duration::from_millis(i * 100 / n.max(1)), 1000);
                    r.arrived = i < room;
                    r
                })
                .collect();
            e.on_reports(now + Duration::from_millis(100), &reports);
            if tick % 10 == 9 {
                out.push(e.target_bitrate());
            }
        }
        out
    }

    #[test]
    fn the_startup_ramp_is_fast_on_an_open_path_and_ends_at_a_limit() {
        let t0 = Instant::now();
        let mut id = 0;
        let mut e = CappedGcc::new(700_000.0, 100_000.0, 6_000_000.0);
        let open = run(&mut e, t0, 4, 100e6, &mut id);
        assert!(e.starting());
        assert!(open[3] > 700_000.0 * 1.25f64.powi(4), "4 s: {open:?}");
        // A 1 Mbit/s path: the ramp ends and the estimate settles under it.
        let mut e = CappedGcc::new(700_000.0, 100_000.0, 6_000_000.0);
        let capped = run(&mut e, t0, 10, 1_000_000.0, &mut id);
        assert!(!e.starting(), "{capped:?}");
        let last = *capped.last().unwrap();
        assert!((500_000.0..=1_100_000.0).contains(&last), "{capped:?}");
    }

    /// A FIFO bottleneck with 200 ms of queue, 25 ms one way, for packets of one size.
    struct Fifo {
        t0: Instant,
        per_packet: Duration,
        free_at: Instant,
    }

    impl Fifo {
        fn new(t0: Instant, capacity_bps: f64, size: usize) -> Fifo {
            Fifo { t0, per_packet: Duration::from_secs_f64(size as f64 * 8.0 / capacity_bps), free_at: t0 }
        }

        /// Sends `r` (its departure set): it waits for the packets ahead and arrives, or finds
        /// more than 200 ms of queue and is dropped (`false`).
        fn pass(&mut self, r: &mut PacketReport) -> bool {
            let start = self.free_at.max(r.departure);
            if start.duration_since(r.departure) > Duration::from_millis(200) {
                r.arrived = false;
                r.arrival = None;
                return false;
            }
            self.free_at = start + self.per_packet;
            r.arrival = Some(self.free_at.duration_since(self.t0) + Duration::from_millis(25));
            true
        }
    }

    /// A 1 Mbit/s bottleneck with a 200 ms queue (25 ms one way), the sender at the estimate:
    /// the estimate backs off on the queue before it overflows, and keeps the link used.
    #[test]
    fn a_queue_building_at_a_bottleneck_brings_the_estimate_under_it_before_loss() {
        let t0 = Instant::now();
        let mut e = CappedGcc::new(700_000.0, 100_000.0, 6_000_000.0);
        let size = 1000usize;
        let mut link = Fifo::new(t0, 1_000_000.0, size);
        let (mut id, mut sent, mut lost_late) = (0u64, 0u64, 0u64);
        let mut late = vec![];
        for tick in 0..200u64 {
            let now = t0 + Duration::from_millis(tick * 100);
            let n = (e.target_bitrate() / 8.0 / size as f64 / 10.0).ceil() as u64;
            let reports: Vec<PacketReport> = (0..n)
                .map(|i| {
                    id += 1;
                    let departure = now + Duration::from_millis(i * 100 / n.max(1));
                    let mut r = report(id, t0, departure, size);
                    link.pass(&mut r);
                    r
                })
                .collect();
            if tick >= 50 {
                sent += n;
                lost_late += reports.iter().filter(|r| !r.arrived).count() as u64;
                late.push(e.target_bitrate());
            }
            e.on_reports(now + Duration::from_millis(150), &reports);
        }
        let loss = lost_late as f64 / sent as f64;
        assert!(loss < 0.02, "{:.1}% lost after 5 s", loss * 100.0);
        let mean = late.iter().sum::<f64>() / late.len() as f64;
        assert!((650_000.0..=1_100_000.0).contains(&mean), "mean estimate {mean:.0} after 5 s");
    }

    /// A 1 Mbit/s bottleneck (200 ms of queue, 25 ms one way) carrying 640 kbit/s; at 5 s
    /// the sender sends a keyframe, 15 KB more than a frame, paced at 2.5 Mbit/s (its queue
    /// peaks at ~120 ms, as a size step's did under a 1 Mbit/s cap). `hinted`: the sender notes it.
    /// Returns the estimate just before the keyframe, the lowest in the 3 s after, and whether
    /// the estimator backed off on a queue.
    fn keyframe_on_a_busy_link(hinted: bool, overload_after: Option<u64>) -> (f64, f64, bool, usize) {
        let t0 = Instant::now();
        let hints = std::sync::Arc::new(crate::rtc_setup::SendEstimate::default());
        let mut e = CappedGcc::new(1_500_000.0, 100_000.0, 6_000_000.0);
        if hinted {
            e = e.with_keyframe_hints(hints.clone());
        }
        e.startup = None;
        let size = 1000usize;
        let mut link = Fifo::new(t0, 1_000_000.0, size);
        let (mut id, mut lost) = (0u64, 0usize);
        let (mut before, mut lowest) = (0.0, f64::MAX);
        for tick in 0..80u64 {
            let now = t0 + Duration::from_millis(tick * 100);
            // 8 packets per 100 ms (640 kbit/s); once overloaded, 10% over the estimate (an
            // encoder that overshoots), which is over the link's rate.
            let mut n = if overload_after.is_some_and(|t| tick >= t) {
                (e.target_bitrate() * 1.1 / 8.0 / size as f64 / 10.0).ceil() as u64
            } else {
                8
            };
            let keyframe = tick == 50;
            if keyframe {
                n += 15;
                before = e.target_bitrate();
            }
            let reports: Vec<PacketReport> = (0..n)
                .map(|i| {
                    id += 1;
                    let departure = if keyframe && i < 15 {
                        now + Duration::from_micros(i * 3_200) // paced at 2.5 Mbit/s
                    } else {
                        now + Duration::from_millis(i * 100 / n)
                    };
                    let mut r = report(id, t0, departure, size);
                    if !link.pass(&mut r) {
                        lost += 1;
                    }
                    r
                })
                .collect();
            if keyframe {
                hints.keyframe_sent(now + Duration::from_millis(80));
            }
            e.on_reports(now + Duration::from_millis(150), &reports);
            if (51..80).contains(&tick) {
                lowest = lowest.min(e.target_bitrate());
            }
        }
        (before, lowest, e.queue_cut_at.is_some(), lost)
    }

    /// The queue a keyframe builds drains by itself: no back-off when the sender says it sent
    /// one (without the hint the same run backs off); a queue that grows after it still does.
    #[test]
    fn a_keyframe_s_own_queue_brings_no_back_off() {
        let (before, lowest, cut, lost) = keyframe_on_a_busy_link(true, None);
        assert!(!cut, "backed off: {before:.0} -> {lowest:.0}");
        assert!(lowest > before * 0.9, "{before:.0} -> {lowest:.0}");
        assert_eq!(lost, 0);
        let (before, lowest, cut, _) = keyframe_on_a_busy_link(false, None);
        assert!(cut, "without the hint: {before:.0} -> {lowest:.0}");
        // Overloaded from the keyframe on: a back-off all the same (the queue gets deep), as
        // soon and losing no more than without the hint.
        let (before, lowest, cut, lost) = keyframe_on_a_busy_link(true, Some(50));
        let (_, lowest_unhinted, _, lost_unhinted) = keyframe_on_a_busy_link(false, Some(50));
        assert!(cut && lowest < before * 0.6, "{before:.0} -> {lowest:.0}");
        assert!(lost <= lost_unhinted && lowest <= lowest_unhinted, "{lost} lost vs {lost_unhinted}");
    }

    /// The far end stalls for 200 ms (this machine's scheduler) and then stamps every packet
    /// it reads with the same late arrival time: the packets look queued, but they arrived all
    /// at once, which no link's queue does. No back-off.
    #[test]
    fn packets_stamped_at_once_after_a_stall_are_not_a_queue() {
        let t0 = Instant::now();
        let mut e = CappedGcc::new(700_000.0, 100_000.0, 6_000_000.0);
        e.startup = None;
        let mut id = 0u64;
        let mut before = 0.0;
        let mut lowest = f64::MAX;
        for tick in 0..50u64 {
            let now = t0 + Duration::from_millis(tick * 100);
            // 480 kbit/s: 6 packets of 1000 bytes per 100 ms, 25 ms on the way.
            let reports: Vec<PacketReport> = (0..6u64)
                .map(|i| {
                    id += 1;
                    let departure = now + Duration::from_micros(i * 16_666);
                    let mut r = report(id, t0, departure, 1000);
                    let mut arrival = departure.duration_since(t0) + Duration::from_millis(25);
                    // Ticks 30 and 31: read at once at 3.225 s.
                    if (30..32).contains(&tick) {
                        arrival = Duration::from_millis(3225);
                    }
                    r.arrival = Some(arrival);
                    r
                })
                .collect();
            e.on_reports(now + Duration::from_millis(150), &reports);
            if tick == 29 {
                before = e.target_bitrate();
            }
            if tick >= 30 {
                lowest = lowest.min(e.target_bitrate());
            }
        }
        assert!(before > 500_000.0, "before the stall: {before:.0}");
        assert!(
            e.queue_cut_at.is_none(),
            "backed off: lowest {lowest:.0} after the stall, {before:.0} before"
        );
        // What remains is the bound on what arrived in the last second (arrivals bunched).
        assert!(lowest >= before * 0.87, "lowest {lowest:.0} after the stall, {before:.0} before");
    }

    /// Feeds `e` the feedback of 100 ms at `at` x 100 ms: three frames of two 1000-byte
    /// packets (480 kbit/s), 25 ms on the way plus `wait_us(id, packet of the frame)`.
    fn two_packet_frames(
        e: &mut CappedGcc,
        t0: Instant,
        at: u64,
        id: &mut u64,
        wait_us: impl Fn(u64, u64) -> u64,
    ) {
        let now = t0 + Duration::from_millis(at * 100);
        let mut reports = vec![];
        for f in 0..3u64 {
            let departure = now + Duration::from_micros(f * 33_333);
            for p in 0..2u64 {
                *id += 1;
                let mut r = report(*id, t0, departure, 1000);
                r.arrival =
                    Some(departure.duration_since(t0) + Duration::from_micros(25_000 + wait_us(*id, p)));
                reports.push(r);
            }
        }
        e.on_reports(now + Duration::from_millis(150), &reports);
    }

    /// After a back-off on a queue, a sender of 480 kbit/s (two packets per frame) behind a
    /// bottleneck that never empties: every packet waits 20 ms or more (the second of a frame
    /// 8 ms longer), and the estimate stays within 1.3x + 60 kbit/s of what arrives. Then the
    /// bottleneck goes (a cap lifted): no packet waits, and 3 s later the bound is the open
    /// path's 1.5x + 100 kbit/s.
    #[test]
    fn the_closer_bound_ends_when_the_bottleneck_queue_is_gone() {
        let t0 = Instant::now();
        let mut e = CappedGcc::new(1_500_000.0, 100_000.0, 10_000_000.0);
        e.startup = None;
        e.queue_cut_at = Some(t0);
        let mut id = 0u64;
        // The first second is idle (the least delay the queue is measured from).
        let mut tick = |e: &mut CappedGcc, at: u64, capped: bool| {
            // Uncapped: up to 1 ms of jitter, under the 3 ms of a standing queue.
            let wait_us = |id: u64, p: u64| if capped { 20_000 + 8_000 * p } else { (id * 7919) % 1000 };
            two_packet_frames(e, t0, at, &mut id, wait_us);
        };
        for at in 0..10 {
            tick(&mut e, at, false);
        }
        for at in 10..80 {
            tick(&mut e, at, true);
        }
        let acked = e.acked_bps().unwrap();
        assert!((440_000.0..=520_000.0).contains(&acked), "acked {acked:.0}");
        assert!(e.bottleneck(t0 + Duration::from_millis(8_150)));
        assert!(e.target_bitrate() <= acked * 1.3 + 60_000.0 + 1.0, "capped: {:.0}", e.target_bitrate());
        // Lifted: 2 s later still the closer bound, 4 s later the open one.
        for at in 80..100 {
            tick(&mut e, at, false);
        }
        assert!(e.bottleneck(t0 + Duration::from_millis(10_050)), "2 s after the queue drained");
        for at in 100..120 {
            tick(&mut e, at, false);
        }
        assert!(!e.bottleneck(t0 + Duration::from_millis(12_050)), "4 s after the queue drained");
        let acked = e.acked_bps().unwrap();
        assert!(e.target_bitrate() > acked * 1.3 + 60_000.0 + 1.0, "lifted: {:.0}", e.target_bitrate());
    }

    /// A bottleneck that empties between frames is not full: on a 1 Mbit/s link a 480 kbit/s
    /// sender's second packet of each frame waits ~10 ms behind its first (each takes that long
    /// to go through), its first waits for nothing. That is no standing queue, and after a
    /// back-off the open bound applies (under the closer one such a sender could not prove
    /// more than it sent: 58% of a 1 Mbit/s cap used in one run).
    #[test]
    fn packets_waiting_behind_their_own_frame_are_no_standing_queue() {
        let t0 = Instant::now();
        let mut e = CappedGcc::new(1_500_000.0, 100_000.0, 10_000_000.0);
        e.startup = None;
        e.queue_cut_at = Some(t0);
        let mut id = 0u64;
        for at in 0..50u64 {
            two_packet_frames(&mut e, t0, at, &mut id, |_, p| 9_600 * p);
        }
        assert!(!e.bottleneck(t0 + Duration::from_millis(5_050)));
        let acked = e.acked_bps().unwrap();
        assert!(
            e.target_bitrate() > acked * 1.3 + 60_000.0 + 1.0,
            "{:.0} over {acked:.0}",
            e.target_bitrate()
        );
    }

    #[test]
    fn the_estimate_is_held_near_what_the_path_has_carried() {
        let t0 = Instant::now();
        let mut e = CappedGcc::new(1_000_000.0, 100_000.0, 10_000_000.0);
        e.startup = None;
        // 300 kbit/s sent for 10 s (one 1250-byte packet every 33 ms), all arriving on time.
        let mut id = 0;
        for i in 0..300u64 {
            let t = t0 + Duration::from_millis(i * 33);
            id += 1;
            e.on_reports(t, &[report(id, t0, t, 1250)]);
        }
        let target = e.target_bitrate();
        // ~303 kbit/s acknowledged (31 packets in a second's window at most).
        assert!(target <= 1.5 * 310_000.0 + 100_000.0 + 1.0, "{target}");
        assert!(target >= 400_000.0, "{target}");
        assert!(e.gcc.target_bitrate() > target * 1.5, "GCC alone {} vs {target}", e.gcc.target_bitrate());
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_budget_is_the_slowest_path_less_headroom_and_audio() {
        assert_eq!(video_budget([None, None], 1.0), None);
        let b = video_budget([Some(2_000_000), None, Some(1_000_000)], 1.0).unwrap();
        assert!((b - (1_000_000.0 * HEADROOM - AUDIO_RESERVE_BPS)).abs() < 1.0, "{b}");
        let half = video_budget([Some(1_000_000)], 0.3).unwrap();
        assert!((half - b * 0.3).abs() < 1.0);
        assert_eq!(video_budget([Some(10_000)], 1.0), Some(0.0));
        assert_eq!(video_share(TrackKind::Camera, false), 1.0);
        assert!(video_share(TrackKind::Screen, true) > video_share(TrackKind::Camera, true));
    }

    #[test]
    fn without_an_estimate_the_source_runs_at_full_quality() {
        let mut a = VideoAdapter::new(1280, 720, 30.0, VideoKind::Camera);
        let t = a.update(None, Instant::now());
        assert_eq!((t.width, t.height), (1280, 720));
        assert_eq!(
            t.bitrate_bps,
            VideoEncoderConfig::for_source(1280, 720, 30.0, VideoKind::Camera).bitrate_bps
        );
    }

    #[test]
    fn a_cap_lowers_the_bitrate_then_the_resolution_and_lifting_it_restores_both() {
        let t0 = Instant::now();
        let mut a = VideoAdapter::new(1280, 720, 30.0, VideoKind::Camera);
        let full = a.needs(0);
        // A 940 kbit/s path: ~707 kbit/s for video, under half of what 720p needs (~1.9 Mbit/s).
        let budget = video_budget([Some(940_000)], 1.0);
        let t = a.update(budget, t0);
        assert_eq!((t.width, t.height), (960, 540), "the first budget picks the size at once");
        assert!(t.bitrate_bps <= 708_000, "the bitrate follows at once: {t:?}");
        let t = a.update(budget, t0 + ms(600));
        assert_eq!((t.width, t.height), (960, 540), "the largest size 707 kbit/s is half of");
        assert!(t.bitrate_bps <= 708_000 && t.bitrate_bps > 650_000, "{t:?}");
        // A deep cut goes down several steps at once.
        let budget = video_budget([Some(250_000)], 1.0);
        a.update(budget, t0 + ms(1000));
        let t = a.update(budget, t0 + ms(1600));
        assert!(t.width <= 480, "{t:?}");
        // Lifted: back step by step (1 s apiece while ample for two steps), to full size and rate.
        let open = video_budget([Some(5_000_000)], 1.0);
        let mut now = t0 + ms(2000);
        let mut sizes = vec![];
        for _ in 0..40 {
            let t = a.update(open, now);
            if sizes.last() != Some(&t.width) {
                sizes.push(t.width);
            }
            now += ms(500);
        }
        assert_eq!(sizes.last(), Some(&1280), "{sizes:?}");
        assert!(sizes.windows(2).all(|w| w[0] < w[1]), "{sizes:?}");
        assert_eq!(a.target().bitrate_bps, full);
    }

    #[test]
    fn a_budget_near_a_boundary_does_not_flap() {
        let t0 = Instant::now();
        let mut a = VideoAdapter::new(1280, 720, 30.0, VideoKind::Camera);
        let need = f64::from(a.needs(0));
        let mut changes = 0;
        let mut last = a.target().width;
        for i in 0..200u64 {
            // Alternating just under half and well over 60% of 720p's need would
            // flap with a single threshold; with the delays it changes a few times at most.
            let b = if (i / 4) % 2 == 0 { need * 0.45 } else { need * 0.8 };
            let t = a.update(Some(b), t0 + ms(i * 100));
            if t.width != last {
                changes += 1;
                last = t.width;
            }
        }
        assert!(changes <= 1, "{changes} size changes in 20 s");
    }

    /// At 960x540 with a budget under that size's full rate (and under 0.6x the next size's):
    /// an encoder that sends what it is given says nothing of its content and the sender stays;
    /// one that sends 70% of it is held by its content, which then counts for less at the
    /// larger sizes, and the sender steps up once, for good (the budget is above the 0.5 of
    /// the larger size's need that would step it down again).
    #[test]
    fn content_that_takes_less_than_its_budget_lets_the_sender_step_up() {
        for (used, steps_up) in [(0.95, false), (0.7, true)] {
            let t0 = Instant::now();
            let mut a = VideoAdapter::new(1280, 720, 30.0, VideoKind::Camera);
            a.update(Some(f64::from(a.needs(2)) * 0.55), t0);
            assert_eq!(a.target().width, 960);
            let budget = f64::from(a.needs(1)) * 0.58;
            let (mut now, mut changes, mut width) = (t0, 0, 960);
            for tick in 0..900u32 {
                now += Duration::from_micros(33_333);
                let bytes = (f64::from(a.target().bitrate_bps) * used / 8.0 / 30.0) as usize;
                a.observe_output(bytes, now);
                if tick % 3 == 0 {
                    let w = a.update(Some(budget), now).width;
                    changes += usize::from(w != width);
                    width = w;
                }
            }
            assert_eq!(width > 960, steps_up, "sending {used} of the budget: {:?}", a.target());
            assert!(changes <= 1, "sending {used} of the budget: {changes} size changes in 30 s");
        }
    }

    /// With the content ratio at its least, a budget between 0.3 and 0.55 of the next size's
    /// need does not step up (it would be short there and step down 500 ms later).
    #[test]
    fn a_step_up_never_lands_where_it_would_step_down() {
        let t0 = Instant::now();
        let mut a = VideoAdapter::new(1280, 720, 30.0, VideoKind::Camera);
        a.update(Some(f64::from(a.needs(2)) * 0.55), t0);
        a.content_ratio = CONTENT_RATIO_MIN;
        let budget = f64::from(a.needs(1)) * 0.45;
        let mut now = t0;
        for _ in 0..300 {
            now += ms(100);
            assert_eq!(a.update(Some(budget), now).width, 960);
        }
    }

    #[test]
    fn a_step_up_that_does_not_hold_makes_the_next_one_wait_longer() {
        let t0 = Instant::now();
        let mut a = VideoAdapter::new(1280, 720, 30.0, VideoKind::Camera);
        let need = |a: &VideoAdapter, i| f64::from(a.needs(i));
        a.update(Some(need(&a, 2) * 0.6), t0); // starts at step 2 (960x540)
        assert_eq!(a.target().width, 960);
        // A saw-tooth: ample for the step above for 4 s, then short for 1 s, again and again.
        let mut ups = vec![];
        let mut now = t0;
        for cycle in 0..8 {
            for _ in 0..40 {
                now += ms(100);
                let w = a.update(Some(need(&a, 1) * 0.75), now).width;
                if w > 960 {
                    ups.push(cycle);
                }
            }
            for _ in 0..10 {
                now += ms(100);
                a.update(Some(need(&a, 2) * 0.6), now);
            }
        }
        ups.dedup();
        // Up in the first cycle (3 s), then 6 s, 12 s... waits no 4 s cycle reaches.
        assert_eq!(ups, [0], "{ups:?}");
        // Once the budget stays ample long enough it steps up, and a lasting step resets it.
        for _ in 0..600 {
            now += ms(100);
            a.update(Some(need(&a, 0) * 2.0), now);
        }
        assert_eq!(a.target().width, 1280);
        assert_eq!(a.up_after, UP_AFTER);
    }

    #[test]
    fn a_lifted_cap_is_followed_within_seconds_despite_earlier_failed_steps() {
        let t0 = Instant::now();
        let mut a = VideoAdapter::new(1280, 720, 30.0, VideoKind::Camera);
        let need = |a: &VideoAdapter, i| f64::from(a.needs(i));
        let (low, high) = (need(&a, 2) * 0.6, need(&a, 1) * 0.75);
        let mut now = t0;
        for _ in 0..6 {
            for b in [high; 40].into_iter().chain([low; 10]) {
                now += ms(100);
                a.update(Some(b), now);
            }
        }
        assert!(a.up_after > UP_AFTER, "failed steps up made it wait longer");
        // The cap lifts: the budget climbs far above; full size within 3 s per step.
        let mut t_full = None;
        for i in 0..200u64 {
            now += ms(100);
            if a.update(Some(need(&a, 0) * 2.0), now).width == 1280 {
                t_full = Some(i);
                break;
            }
        }
        let t_full = t_full.expect("back to 720p");
        assert!(t_full <= 100, "{} s", t_full as f64 / 10.0);
    }

    #[test]
    fn small_sources_keep_a_usable_size() {
        let mut a = VideoAdapter::new(320, 180, 30.0, VideoKind::Camera);
        let t0 = Instant::now();
        a.update(Some(1.0), t0);
        let t = a.update(Some(1.0), t0 + ms(600));
        assert_eq!((t.width, t.height), (240, 134), "not below 240 px wide");
        assert_eq!(t.bitrate_bps, MIN_BITRATE_BPS);
        let t = a.update(Some(1.0), t0 + ms(1200));
        assert_eq!(t.width, 240);
    }

    #[test]
    fn opus_fec_follows_reported_loss_up_at_once_and_down_slowly() {
        let mut l = OpusLoss::default();
        assert_eq!(l.update(0.0), 2, "the default floor");
        assert_eq!(l.update(8.0), 8);
        assert_eq!(l.update(0.0), 8, "one clean report keeps most of it");
        let mut p = 8;
        for _ in 0..30 {
            p = l.update(0.0);
        }
        assert_eq!(p, 2);
        assert_eq!(l.update(90.0), 30, "capped");
        assert_eq!(l.update(f64::NAN), 30, "a bad report counts as no loss, and falls slowly");
    }

    #[test]
    fn a_slow_peer_gets_the_low_layer_and_comes_back_with_hysteresis() {
        let yes = [true; 3];
        // Everyone alike: all on the main encoding.
        assert_eq!(split_layers(&[2e6, 1.8e6, 1.9e6], &[false; 3], &yes), [false; 3]);
        // One peer behind a 500 kbit/s link: it alone moves to the low layer.
        assert_eq!(split_layers(&[2e6, 0.45e6, 1.9e6], &[false; 3], &yes), [false, true, false]);
        // Between the thresholds nobody moves.
        assert_eq!(split_layers(&[2e6, 1.2e6, 1.9e6], &[false, true, false], &yes), [false, true, false]);
        assert_eq!(split_layers(&[2e6, 1.1e6, 1.9e6], &[false; 3], &yes), [false; 3]);
        // Back once its path carries 75% of the best's.
        assert_eq!(split_layers(&[2e6, 1.6e6, 1.9e6], &[false, true, false], &yes), [false; 3]);
        // A change waits until allowed.
        assert_eq!(split_layers(&[2e6, 0.3e6], &[false, false], &[true, false]), [false, false]);
        // The best peer always gets the main encoding; nothing breaks without estimates.
        assert_eq!(split_layers(&[0.1e6, 0.1e6], &[true, true], &[true, true]), [false, false]);
        assert!(split_layers(&[], &[], &[]).is_empty());
        assert_eq!(split_layers(&[f64::NAN, 1e6], &[false; 2], &[true; 2]), [false, false]);
    }
}
