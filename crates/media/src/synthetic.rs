//! Synthetic sources: a moving test pattern stamped with frame number and capture time, and
//! audio carrying wall-clock tone bursts. They pace themselves in real time like devices do.

use crate::MediaError;
use crate::frame::{AudioFrame, FRAME_SAMPLES, FRAME_US, VideoFrame, now_us};
use crate::marker::{VideoStamp, render_bursts, write_stamp};
use crate::source::{AudioSource, SourceInfo, VideoKind, VideoSource};
use std::time::{Duration, Instant};

/// Sleeps until each tick of a fixed-rate schedule; if late, it does not try to catch up with
/// a burst of frames but restarts the schedule from now.
#[derive(Debug)]
pub struct Pacer {
    period: Duration,
    next: Option<Instant>,
}

impl Pacer {
    pub fn new(period: Duration) -> Pacer {
        Pacer { period, next: None }
    }

    /// Sleep until the next tick; returns immediately for the first one.
    pub fn wait(&mut self) {
        let now = Instant::now();
        let next = match self.next {
            None => now,
            Some(t) if t + self.period < now => now, // more than a period late: resync
            Some(t) => t,
        };
        if next > now {
            std::thread::sleep(next - now);
        }
        self.next = Some(next + self.period);
    }
}

/// A moving test pattern: a scrolling colour gradient with a bouncing box, stamped with a
/// [`VideoStamp`] in the top-left corner. Generating a 720p frame costs about a memcpy.
#[derive(Debug)]
pub struct TestPattern {
    width: u32,
    height: u32,
    fps: f32,
    kind: VideoKind,
    frame_no: u32,
    /// Background planes twice as wide, scrolled through by offset.
    bg_y: Vec<u8>,
    bg_u: Vec<u8>,
    bg_v: Vec<u8>,
    pacer: Pacer,
    paced: bool,
}

impl TestPattern {
    /// A camera-like pattern at `width`x`height` and `fps`.
    pub fn new(width: u32, height: u32, fps: f32) -> TestPattern {
        Self::with_kind(width, height, fps, VideoKind::Camera)
    }

    /// A screen-like pattern (sharper content, usually lower frame rate).
    pub fn screen(width: u32, height: u32, fps: f32) -> TestPattern {
        Self::with_kind(width, height, fps, VideoKind::Screen)
    }

    fn with_kind(width: u32, height: u32, fps: f32, kind: VideoKind) -> TestPattern {
        let (width, height) = (width.max(16).next_multiple_of(2), height.max(16).next_multiple_of(2));
        let (w2, h) = (2 * width as usize, height as usize);
        let mut bg_y = vec![0u8; w2 * h];
        for y in 0..h {
            for x in 0..w2 {
                let stripes = if kind == VideoKind::Screen && (x / 40 + y / 40) % 2 == 0 { 40 } else { 0 };
                bg_y[y * w2 + x] = (48 + ((x * 3 + y) % 160) as u32 + stripes).min(235) as u8;
            }
        }
        let (cw2, ch) = (w2 / 2, h / 2);
        let mut bg_u = vec![0u8; cw2 * ch];
        let mut bg_v = vec![0u8; cw2 * ch];
        for y in 0..ch {
            for x in 0..cw2 {
                bg_u[y * cw2 + x] = (64 + (x * 128 / cw2)) as u8;
                bg_v[y * cw2 + x] = (64 + (y * 128 / ch.max(1))) as u8;
            }
        }
        let fps = if fps > 0.0 { fps } else { 30.0 };
        TestPattern {
            width,
            height,
            fps,
            kind,
            frame_no: 0,
            bg_y,
            bg_u,
            bg_v,
            pacer: Pacer::new(Duration::from_secs_f32(1.0 / fps)),
            paced: true,
        }
    }

    /// Produce frames as fast as asked (benchmarks of the codec path), not in real time.
    pub fn unpaced(mut self) -> Self {
        self.paced = false;
        self
    }

    /// Draw frame number `n` into `frame` (no pacing, no stamp).
    pub fn draw(&self, n: u32, frame: &mut VideoFrame) {
        frame.resize(self.width, self.height);
        let (w, h) = (self.width as usize, self.height as usize);
        let shift = (n as usize * 4) % w;
        let (y, u, v) = frame.planes_mut();
        for row in 0..h {
            let src = row * 2 * w + shift;
            y[row * w..(row + 1) * w].copy_from_slice(&self.bg_y[src..src + w]);
        }
        let (cw, ch) = (w / 2, h / 2);
        for row in 0..ch {
            let src = row * 2 * cw + shift / 2;
            u[row * cw..(row + 1) * cw].copy_from_slice(&self.bg_u[src..src + cw]);
            v[row * cw..(row + 1) * cw].copy_from_slice(&self.bg_v[src..src + cw]);
        }
        // A bouncing box.
        let size = (h / 5).max(8);
        let span_x = w.saturating_sub(size).max(1);
        let span_y = h.saturating_sub(size).max(1);
        let t = n as usize * 6;
        let bx = if (t / span_x).is_multiple_of(2) { t % span_x } else { span_x - t % span_x };
        let by =
            if ((t / 2) / span_y).is_multiple_of(2) { (t / 2) % span_y } else { span_y - (t / 2) % span_y };
        for row in by..by + size {
            y[row * w + bx..row * w + bx + size].fill(200);
        }
        for row in by / 2..(by + size) / 2 {
            u[row * cw + bx / 2..row * cw + (bx + size) / 2].fill(60);
            v[row * cw + bx / 2..row * cw + (bx + size) / 2].fill(200);
        }
    }
}

impl VideoSource for TestPattern {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: match self.kind {
                VideoKind::Camera => "synthetic test pattern".into(),
                VideoKind::Screen => "synthetic screen".into(),
            },
            width: self.width,
            height: self.height,
            fps: self.fps,
            kind: self.kind,
        }
    }

    /// Draws at the new size from the next frame on; numbering and pacing go on (a receiver
    /// regenerates the pattern at the size it decodes, so quality stays measurable).
    fn set_output_size(&mut self, width: u32, height: u32) -> bool {
        let resized = Self::with_kind(width, height, self.fps, self.kind);
        (self.width, self.height, self.bg_y, self.bg_u, self.bg_v) =
            (resized.width, resized.height, resized.bg_y, resized.bg_u, resized.bg_v);
        true
    }

    fn capture(&mut self, frame: &mut VideoFrame) -> Result<(), MediaError> {
        if self.paced {
            self.pacer.wait();
        }
        self.draw(self.frame_no, frame);
        frame.capture_us = now_us();
        write_stamp(frame, VideoStamp { frame: self.frame_no, capture_us: frame.capture_us });
        self.frame_no = self.frame_no.wrapping_add(1);
        Ok(())
    }
}

/// Frames a late reader can still catch up on (like a sound card's capture buffer).
const DEVICE_BUFFER_FRAMES: u64 = 10;

/// When a synthetic microphone's next 20 ms frame is due, as a device delivers them.
#[derive(Debug, Default)]
struct FrameClock {
    next_start_us: Option<u64>,
}

impl FrameClock {
    /// Waits until the next frame's last sample is due; returns the frame's start (µs). Frames
    /// cover aligned 20 ms windows of the wall clock. A reader that comes late gets the frames
    /// it missed, as a device's buffer holds them (~200 ms); later than that the buffer has
    /// overrun and the source resyncs, skipping what was lost.
    fn wait(&mut self) -> u64 {
        let now = now_us();
        let start = match self.next_start_us {
            Some(s) if s + DEVICE_BUFFER_FRAMES * FRAME_US >= now => s,
            _ => (now / FRAME_US) * FRAME_US, // first frame, or overrun: resync
        };
        let due = start + FRAME_US;
        let now = now_us();
        if due > now {
            std::thread::sleep(Duration::from_micros(due - now));
        }
        self.next_start_us = Some(due);
        start
    }
}

/// Audio with wall-clock tone bursts (see [`crate::marker`]). Frames are emitted when their last
/// sample is due, like a device delivers them.
#[derive(Debug, Default)]
pub struct ToneBursts {
    clock: FrameClock,
}

impl ToneBursts {
    pub fn new() -> Self {
        Self::default()
    }
}

impl AudioSource for ToneBursts {
    fn name(&self) -> String {
        "synthetic tone bursts".into()
    }

    fn capture(&mut self, frame: &mut AudioFrame) -> Result<(), MediaError> {
        let start = self.clock.wait();
        frame.samples.resize(FRAME_SAMPLES, 0);
        render_bursts(start, &mut frame.samples);
        frame.capture_us = start;
        Ok(())
    }
}

/// A speech-like signal from a seed: 250 ms "syllables" (11 harmonics of a pitch gliding up 20%
/// within each, three pitch levels in turn; every fourth a low-passed noise burst, like a
/// fricative), each ending in a 40 ms pause, with 10 ms fades. Not speech, but what matters to
/// echo cancellers and noise suppressors is there: a harmonic, moving spectrum, broadband bursts,
/// an on/off envelope. Deterministic: the same seed gives the same samples.
#[derive(Debug, Clone)]
pub struct SpeechLike {
    f0: f32,
    amp: f32,
    rng: u64,
    phase: f32,
    lp: f32,
    n: usize,
}

impl SpeechLike {
    /// `f0`: the talker's base pitch in Hz (e.g. 140 or 210); `amp`: peak amplitude, 0..1.
    pub fn new(seed: u64, f0: f32, amp: f32) -> SpeechLike {
        SpeechLike { f0, amp, rng: seed.max(1), phase: 0.0, lp: 0.0, n: 0 }
    }

    fn noise(&mut self) -> f32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// The next `out.len()` samples (48 kHz).
    pub fn fill(&mut self, out: &mut [i16]) {
        let rate = crate::frame::SAMPLE_RATE as usize;
        let seg = rate / 4;
        let gap = rate / 25;
        for o in out.iter_mut() {
            let (k, i) = (self.n / seg, self.n % seg);
            self.n += 1;
            if i >= seg - gap {
                *o = 0;
                continue;
            }
            let fade = (i.min(seg - gap - i) as f32 / 480.0).min(1.0);
            let v = if k % 4 == 3 {
                let w = self.noise();
                self.lp += 0.3 * (w - self.lp);
                self.lp
            } else {
                let f = self.f0 * (1.0 + 0.2 * (i as f32 / seg as f32)) * (1.0 + 0.1 * (k % 3) as f32);
                self.phase = (self.phase + f / rate as f32 * std::f32::consts::TAU) % std::f32::consts::TAU;
                (1..12).map(|h| (self.phase * h as f32).sin() / h as f32).sum::<f32>() * 0.5
            };
            *o = (v * fade * self.amp * 32767.0).clamp(-32767.0, 32767.0) as i16;
        }
    }

    /// `samples` samples from the start of a fresh talker.
    pub fn samples(seed: u64, f0: f32, amp: f32, samples: usize) -> Vec<i16> {
        let mut out = vec![0; samples];
        SpeechLike::new(seed, f0, amp).fill(&mut out);
        out
    }
}

/// Stationary pink-ish noise, like a fan or a street: xorshift white noise through a one-pole
/// low-pass. Deterministic (always the same sequence). Each item is a sample in 16-bit units,
/// `amp` times the low-passed noise (at 0.06 the loudest 20 ms of each 100 ms average about -38
/// dBFS: see the noise suppression test in `processing.rs`).
#[derive(Debug, Clone)]
pub struct RoomNoise {
    rng: u64,
    lp: f32,
    amp: f32,
}

impl RoomNoise {
    pub fn new(amp: f32) -> RoomNoise {
        RoomNoise { rng: 0x9E37_79B9_7F4A_7C15, lp: 0.0, amp }
    }
}

impl Iterator for RoomNoise {
    type Item = f32;

    fn next(&mut self) -> Option<f32> {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let white = (self.rng >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        self.lp += 0.2 * (white - self.lp);
        Some(self.lp * self.amp * 32767.0)
    }
}

/// A microphone that hears a [`SpeechLike`] talker, paced in real time like [`ToneBursts`]
/// (frames when their last sample is due). For measuring echo cancellation and noise
/// suppression through real calls: tone bursts are a poor far end for those.
#[derive(Debug)]
pub struct SpeechSource {
    talker: SpeechLike,
    clock: FrameClock,
}

impl SpeechSource {
    pub fn new(seed: u64, f0: f32, amp: f32) -> SpeechSource {
        SpeechSource { talker: SpeechLike::new(seed, f0, amp), clock: FrameClock::default() }
    }
}

impl AudioSource for SpeechSource {
    fn name(&self) -> String {
        "synthetic speech-like talker".into()
    }

    fn capture(&mut self, frame: &mut AudioFrame) -> Result<(), MediaError> {
        let start = self.clock.wait();
        frame.samples.resize(FRAME_SAMPLES, 0);
        self.talker.fill(&mut frame.samples);
        frame.capture_us = start;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::marker::read_stamp;

    #[test]
    fn pattern_moves_and_is_stamped() {
        let mut p = TestPattern::new(640, 360, 30.0).unpaced();
        let mut a = VideoFrame::new(2, 2);
        let mut b = VideoFrame::new(2, 2);
        p.capture(&mut a).unwrap();
        p.capture(&mut b).unwrap();
        assert_eq!((a.width, a.height), (640, 360));
        assert_ne!(a.data, b.data);
        assert_eq!(read_stamp(&a.view()).unwrap().frame, 0);
        assert_eq!(read_stamp(&b.view()).unwrap().frame, 1);
        assert!(b.capture_us >= a.capture_us);
    }

    #[test]
    fn pattern_draws_at_a_new_size_and_keeps_counting() {
        let mut p = TestPattern::new(1280, 720, 30.0).unpaced();
        let mut f = VideoFrame::new(2, 2);
        p.capture(&mut f).unwrap();
        for (w, h) in [(960, 540), (320, 180), (240, 134)] {
            assert!(p.set_output_size(w, h));
            p.capture(&mut f).unwrap();
            assert_eq!((f.width, f.height), (w, h));
            assert_eq!((p.info().width, p.info().height), (w, h));
            let n = read_stamp(&f.view()).unwrap().frame;
            // What a receiver regenerates at this size is what was sent.
            let (mut mine, mut again) = (VideoFrame::new(2, 2), VideoFrame::new(2, 2));
            p.draw(n, &mut mine);
            TestPattern::new(w, h, 30.0).draw(n, &mut again);
            assert!(mine.data == again.data, "{w}x{h}: not the pattern drawn at that size");
        }
        assert_eq!(read_stamp(&f.view()).unwrap().frame, 3);
    }

    #[test]
    fn pattern_is_paced_in_real_time() {
        let mut p = TestPattern::new(320, 180, 50.0);
        let mut f = VideoFrame::new(2, 2);
        let t = Instant::now();
        for _ in 0..6 {
            p.capture(&mut f).unwrap();
        }
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(95) && e < Duration::from_millis(400), "{e:?}");
    }

    #[test]
    fn tone_bursts_are_aligned_frames() {
        let mut s = ToneBursts::new();
        let mut f = AudioFrame::default();
        s.capture(&mut f).unwrap();
        let first = f.capture_us;
        s.capture(&mut f).unwrap();
        assert_eq!(f.capture_us, first + FRAME_US);
        assert_eq!(f.capture_us % FRAME_US, 0);
        assert_eq!(f.samples.len(), FRAME_SAMPLES);
    }
}
