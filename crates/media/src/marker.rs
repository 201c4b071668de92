//! Machine-readable markers carried inside the media itself, so a receiver can check order and
//! measure latency of what it decodes without any side channel.
//!
//! - **Video**: a [`VideoStamp`] (frame number and capture time) written as a grid of 16x16
//!   black/white luma blocks in the top-left corner, with a magic byte and a CRC. Blocks this size
//!   survive H.264 at conferencing bitrates.
//! - **Audio**: 20 ms tone bursts at wall-clock slots every 200 ms; the burst frequency encodes
//!   the slot number modulo 8, so a receiver recovers which slot (and so when) a burst was sent.

use crate::frame::{I420View, SAMPLE_RATE, VideoFrame};

const BLOCK: u32 = 16;
const MAGIC: u8 = 0xA5;
const STAMP_BITS: u32 = 8 + 32 + 56 + 8;
const BLACK: u8 = 16;
const WHITE: u8 = 235;

/// What a video stamp carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoStamp {
    /// Frame number at the source, counting from 0.
    pub frame: u32,
    /// Capture time in [`crate::now_us`] microseconds (low 56 bits).
    pub capture_us: u64,
}

fn crc8(bytes: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in bytes {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
        }
    }
    crc
}

fn stamp_bytes(s: VideoStamp) -> [u8; 13] {
    let mut b = [0u8; 13];
    b[0] = MAGIC;
    b[1..5].copy_from_slice(&s.frame.to_be_bytes());
    b[5..12].copy_from_slice(&(s.capture_us & 0x00ff_ffff_ffff_ffff).to_be_bytes()[1..]);
    b[12] = crc8(&b[..12]);
    b
}

/// Rows of blocks the stamp needs at this width, or `None` if the image is too small.
fn layout(width: u32, height: u32) -> Option<(u32, u32)> {
    let per_row = width / BLOCK;
    if per_row == 0 {
        return None;
    }
    let rows = STAMP_BITS.div_ceil(per_row);
    (rows * BLOCK <= height).then_some((per_row, rows))
}

/// Height in pixels of the stamp area at this size (0 if the frame is too small to stamp).
pub fn stamp_height(width: u32, height: u32) -> u32 {
    layout(width, height).map_or(0, |(_, rows)| rows * BLOCK)
}

/// Write `stamp` into the top-left of `frame`. Returns false if the frame is too small.
pub fn write_stamp(frame: &mut VideoFrame, stamp: VideoStamp) -> bool {
    let Some((per_row, rows)) = layout(frame.width, frame.height) else { return false };
    let bytes = stamp_bytes(stamp);
    let width = frame.width as usize;
    let (y, u, v) = frame.planes_mut();
    for bit in 0..STAMP_BITS {
        let on = bytes[(bit / 8) as usize] & (0x80 >> (bit % 8)) != 0;
        let (bx, by) = ((bit % per_row) * BLOCK, (bit / per_row) * BLOCK);
        let value = if on { WHITE } else { BLACK };
        for row in by..by + BLOCK {
            let start = row as usize * width + bx as usize;
            y[start..start + BLOCK as usize].fill(value);
        }
    }
    // Neutral chroma under the stamp so colour bleed cannot shift the luma decision.
    let cw = width / 2;
    let stamp_cols = (per_row * BLOCK / 2) as usize;
    for row in 0..(rows * BLOCK / 2) as usize {
        u[row * cw..row * cw + stamp_cols].fill(128);
        v[row * cw..row * cw + stamp_cols].fill(128);
    }
    true
}

/// Read a stamp back from a (decoded) image. `None` if absent or damaged (CRC mismatch).
pub fn read_stamp(img: &I420View<'_>) -> Option<VideoStamp> {
    let (per_row, _) = layout(img.width, img.height)?;
    let mut bytes = [0u8; 13];
    for bit in 0..STAMP_BITS {
        let (bx, by) = ((bit % per_row) * BLOCK, (bit / per_row) * BLOCK);
        // Average the centre 8x8 of the block: edges blur under compression.
        let mut sum = 0u32;
        for row in by + 4..by + 12 {
            let start = row as usize * img.y.stride + (bx + 4) as usize;
            sum += img.y.data.get(start..start + 8)?.iter().map(|&p| u32::from(p)).sum::<u32>();
        }
        if sum / 64 > 128 {
            bytes[(bit / 8) as usize] |= 0x80 >> (bit % 8);
        }
    }
    if bytes[0] != MAGIC || crc8(&bytes[..12]) != bytes[12] {
        return None;
    }
    let frame = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let mut ts = [0u8; 8];
    ts[1..].copy_from_slice(&bytes[5..12]);
    Some(VideoStamp { frame, capture_us: u64::from_be_bytes(ts) })
}

/// Audio bursts: one every this many microseconds, aligned to the wall clock.
pub const BURST_PERIOD_US: u64 = 200_000;
/// Each burst lasts this long.
pub const BURST_LEN_US: u64 = 20_000;
const BURST_SYMBOLS: u64 = 8;
const BURST_AMPLITUDE: f32 = 0.5;

/// The tone frequency of the burst in `slot`.
pub fn burst_frequency(slot: u64) -> f32 {
    600.0 + 200.0 * (slot % BURST_SYMBOLS) as f32
}

/// Fill `out` with the burst signal for audio whose first sample is at `start_us` (wall clock).
/// Works at any alignment; silence between bursts.
pub fn render_bursts(start_us: u64, out: &mut [i16]) {
    for (i, s) in out.iter_mut().enumerate() {
        let t = start_us + (i as u64 * 1_000_000) / u64::from(SAMPLE_RATE);
        let slot = t / BURST_PERIOD_US;
        let dt = t - slot * BURST_PERIOD_US;
        *s = if dt < BURST_LEN_US {
            let phase = 2.0 * std::f32::consts::PI * burst_frequency(slot) * (dt as f32 / 1e6);
            (phase.sin() * BURST_AMPLITUDE * 32767.0) as i16
        } else {
            0
        };
    }
}

/// A burst found by [`BurstDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// The wall-clock slot it was sent in (`slot * BURST_PERIOD_US` is its send time).
    pub slot: u64,
    /// From the burst's first sample being captured to it being available decoded here.
    pub latency_us: u64,
}

fn goertzel(samples: &[i16], freq: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq / SAMPLE_RATE as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &x in samples {
        let s0 = f32::from(x) / 32768.0 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Finds bursts in a stream of received audio.
///
/// Feed every decoded frame in order with the time it became available. An onset is the first
/// 2.5 ms block above threshold after at least 10 ms of quiet; its frequency is read over the
/// next 10 ms.
#[derive(Debug, Default)]
pub struct BurstDetector {
    /// Samples not yet examined, with the availability time of the frame each came in.
    pending: Vec<(i16, u64)>,
    quiet_blocks: u32,
    /// Onset found; waiting for enough samples to read the frequency.
    onset: Option<u64>,
}

const BLOCK_SAMPLES: usize = 120; // 2.5 ms
const ID_SAMPLES: usize = 480; // 10 ms
const ONSET_RMS: f32 = 0.08;

impl BurstDetector {
    pub fn new() -> Self {
        Self::default()
    }

    /// Examine `samples` that became available at `available_us`; returns bursts completed.
    pub fn push(&mut self, samples: &[i16], available_us: u64) -> Vec<Burst> {
        self.pending.extend(samples.iter().map(|&s| (s, available_us)));
        self.detect()
    }

    /// Examine `samples` played one after another at the sample rate, the first at
    /// `first_us` (audio leaving a playout buffer): each sample carries its own time, so an
    /// onset is timed to the sample, not to the chunk it came in.
    pub fn push_clocked(&mut self, samples: &[i16], first_us: u64) -> Vec<Burst> {
        let rate = u64::from(SAMPLE_RATE);
        self.pending
            .extend(samples.iter().enumerate().map(|(i, &s)| (s, first_us + i as u64 * 1_000_000 / rate)));
        self.detect()
    }

    fn detect(&mut self) -> Vec<Burst> {
        let mut found = Vec::new();
        loop {
            if let Some(onset_available) = self.onset {
                if self.pending.len() < ID_SAMPLES {
                    break;
                }
                let window: Vec<i16> = self.pending[..ID_SAMPLES].iter().map(|(s, _)| *s).collect();
                let symbol = (0..BURST_SYMBOLS)
                    .max_by(|a, b| {
                        goertzel(&window, burst_frequency(*a))
                            .total_cmp(&goertzel(&window, burst_frequency(*b)))
                    })
                    .unwrap_or(0);
                // The latest slot at or before the onset became available that carries this symbol.
                let slot_now = onset_available / BURST_PERIOD_US;
                let back = (slot_now + BURST_SYMBOLS - symbol) % BURST_SYMBOLS;
                let slot = slot_now.saturating_sub(back);
                found
                    .push(Burst { slot, latency_us: onset_available.saturating_sub(slot * BURST_PERIOD_US) });
                self.pending.drain(..ID_SAMPLES);
                self.onset = None;
                self.quiet_blocks = 0;
                continue;
            }
            if self.pending.len() < BLOCK_SAMPLES {
                break;
            }
            let block = &self.pending[..BLOCK_SAMPLES];
            let energy: f64 = block.iter().map(|(s, _)| f64::from(*s) * f64::from(*s)).sum();
            let rms = ((energy / BLOCK_SAMPLES as f64).sqrt() / 32768.0) as f32;
            if rms >= ONSET_RMS && self.quiet_blocks >= 4 {
                // Find the first loud sample in the block: that is the onset.
                let first = block
                    .iter()
                    .position(|(s, _)| f32::from(s.unsigned_abs()) / 32768.0 >= ONSET_RMS)
                    .unwrap_or(0);
                self.onset = Some(block[first].1);
                self.pending.drain(..first);
                continue;
            }
            self.quiet_blocks = if rms < ONSET_RMS / 2.0 { self.quiet_blocks.saturating_add(1) } else { 0 };
            self.pending.drain(..BLOCK_SAMPLES);
        }
        found
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::frame::FRAME_SAMPLES;

    #[test]
    fn stamp_round_trips_at_common_sizes() {
        for (w, h) in [(1280, 720), (640, 360), (320, 180), (1920, 1080)] {
            let mut f = VideoFrame::new(w, h);
            let s = VideoStamp { frame: 123_456, capture_us: 1_764_000_000_123_456 };
            assert!(write_stamp(&mut f, s), "{w}x{h}");
            assert_eq!(read_stamp(&f.view()), Some(s), "{w}x{h}");
        }
    }

    #[test]
    fn unstamped_or_damaged_frames_read_none() {
        let f = VideoFrame::new(640, 360);
        assert_eq!(read_stamp(&f.view()), None);
        let mut f = VideoFrame::new(640, 360);
        write_stamp(&mut f, VideoStamp { frame: 1, capture_us: 2 });
        // Flip one block: the CRC catches it.
        let w = f.width as usize;
        let (y, _, _) = f.planes_mut();
        for row in 0..16 {
            for px in &mut y[row * w + 16 * 20..row * w + 16 * 21] {
                *px = 255 - *px;
            }
        }
        assert_eq!(read_stamp(&f.view()), None);
        let mut tiny = VideoFrame::new(64, 32);
        assert!(!write_stamp(&mut tiny, VideoStamp { frame: 0, capture_us: 0 }));
    }

    #[test]
    fn stamp_survives_mild_noise() {
        let mut f = VideoFrame::new(640, 360);
        let s = VideoStamp { frame: 42, capture_us: 99 };
        write_stamp(&mut f, s);
        let (y, _, _) = f.planes_mut();
        for (i, p) in y.iter_mut().enumerate() {
            *p = p.saturating_add((i % 7) as u8 * 5).saturating_sub(15);
        }
        assert_eq!(read_stamp(&f.view()), Some(s));
    }

    #[test]
    fn bursts_are_detected_with_their_slot_and_latency() {
        let mut det = BurstDetector::new();
        // Start mid-slot, 20 ms frames, delivered 35 ms after capture start.
        let start = 1_000_000 * BURST_PERIOD_US + 50_000;
        let mut found = Vec::new();
        for k in 0..50u64 {
            let cap = start + k * 20_000;
            let mut frame = vec![0i16; FRAME_SAMPLES];
            render_bursts(cap, &mut frame);
            found.extend(det.push(&frame, cap + 20_000 + 15_000));
        }
        // 1 s of audio from 50 ms into a slot: slots 1..=5 after it begin within that second.
        let slots: Vec<u64> = found.iter().map(|b| b.slot - 1_000_000).collect();
        assert_eq!(slots, [1, 2, 3, 4, 5]);
        for b in &found {
            // Frames start 10 ms before each slot boundary, so the onset sits 10 ms into a frame
            // that becomes available 35 ms after the frame's start: 25 ms after the onset.
            assert_eq!(b.latency_us, 25_000, "{b:?}");
        }
    }

    #[test]
    fn clocked_samples_time_the_onset_to_the_sample() {
        let mut det = BurstDetector::new();
        // Audio captured from 50 ms into a slot, played 60 ms after capture in 5 ms chunks.
        let start = 2_000_000 * BURST_PERIOD_US + 50_000;
        let mut found = Vec::new();
        for k in 0..200u64 {
            let cap = start + k * 5_000;
            let mut chunk = vec![0i16; 240];
            render_bursts(cap, &mut chunk);
            found.extend(det.push_clocked(&chunk, cap + 60_000));
        }
        assert_eq!(found.len(), 5, "{found:?}");
        for b in &found {
            // Timed to the sample: heard 60 ms after capture (the first loud sample is a few samples in).
            assert!(b.latency_us.abs_diff(60_000) <= 200, "{b:?}");
        }
    }

    #[test]
    fn silence_and_noise_floor_give_no_bursts() {
        let mut det = BurstDetector::new();
        let noise: Vec<i16> = (0..48_000).map(|i| ((i * 7919) % 200) as i16 - 100).collect();
        assert!(det.push(&noise, 0).is_empty());
    }
}
