//! Audio levels for meters and "who is speaking": a level per 20 ms frame, a peak holder that a
//! reader drains at its own pace, and a simple voice activity detector with hangover.
//!
//! The level is the frame's RMS in dBFS mapped linearly from -60 dBFS (0.0) to 0 dBFS (1.0), so
//! a meter moves evenly with loudness as people hear it. Nothing here allocates.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The quietest level shown above zero.
pub const FLOOR_DBFS: f32 = -60.0;
/// A level above this counts as speech (about -39 dBFS: above room noise, below quiet speech).
pub const SPEAKING_LEVEL: f32 = 0.35;
/// Speech stays "speaking" this long after the level drops (bridges pauses between syllables).
pub const SPEAKING_HANGOVER: Duration = Duration::from_millis(300);

/// The level (0.0..=1.0) of an RMS value where 1.0 is full scale.
pub fn level_from_rms(rms: f32) -> f32 {
    if rms.is_nan() || rms <= 0.0 {
        return 0.0;
    }
    let dbfs = 20.0 * rms.log10();
    ((dbfs - FLOOR_DBFS) / -FLOOR_DBFS).clamp(0.0, 1.0)
}

/// The level (0.0..=1.0) of 16-bit samples.
pub fn level(samples: &[i16]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    level_from_rms(((sum / samples.len() as f64).sqrt() / 32768.0) as f32)
}

/// The loudest level recorded since the last [`PeakLevel::take`]: the audio thread records,
/// a meter or a periodic report takes. Lock-free.
#[derive(Debug, Default)]
pub struct PeakLevel(AtomicU32);

impl PeakLevel {
    pub fn new() -> PeakLevel {
        PeakLevel::default()
    }

    /// Record a level (clamped to 0.0..=1.0).
    pub fn record(&self, level: f32) {
        let level = if level.is_nan() { 0.0 } else { level.clamp(0.0, 1.0) };
        // Non-negative floats order like their bit patterns.
        self.0.fetch_max(level.to_bits(), Ordering::Relaxed);
    }

    /// The peak since the last take, and start afresh.
    pub fn take(&self) -> f32 {
        f32::from_bits(self.0.swap(0, Ordering::Relaxed))
    }

    /// The peak since the last take, without resetting it.
    pub fn get(&self) -> f32 {
        f32::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Voice activity: speaking while the level is above [`SPEAKING_LEVEL`] and for
/// [`SPEAKING_HANGOVER`] after. Time is passed in.
#[derive(Debug, Clone, Default)]
pub struct VoiceActivity {
    last_loud: Option<Instant>,
}

impl VoiceActivity {
    pub fn new() -> VoiceActivity {
        VoiceActivity::default()
    }

    /// Feed the level measured up to `now`; returns whether the source is speaking.
    pub fn update(&mut self, level: f32, now: Instant) -> bool {
        if level > SPEAKING_LEVEL {
            self.last_loud = Some(now);
        }
        self.last_loud.is_some_and(|t| now.saturating_duration_since(t) <= SPEAKING_HANGOVER)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sine(amplitude: f32) -> Vec<i16> {
        (0..960).map(|i| ((i as f32 * 0.1).sin() * amplitude * 32767.0) as i16).collect()
    }

    #[test]
    fn level_maps_dbfs_linearly() {
        assert_eq!(level(&[0; 960]), 0.0);
        assert_eq!(level(&[]), 0.0);
        // Full-scale square wave: 0 dBFS.
        let square: Vec<i16> = (0..960).map(|i| if i % 2 == 0 { 32767 } else { -32767 }).collect();
        assert!((level(&square) - 1.0).abs() < 0.001);
        // -30 dBFS RMS is half way.
        assert!((level_from_rms(10f32.powf(-30.0 / 20.0)) - 0.5).abs() < 0.001);
        assert_eq!(level_from_rms(10f32.powf(-80.0 / 20.0)), 0.0);
        assert_eq!(level_from_rms(f32::NAN), 0.0);
        // Louder is higher.
        assert!(level(&sine(0.5)) > level(&sine(0.05)));
        assert!(level(&sine(0.05)) > 0.0);
    }

    #[test]
    fn peak_holds_the_loudest_until_taken() {
        let p = PeakLevel::new();
        p.record(0.2);
        p.record(0.7);
        p.record(0.3);
        assert_eq!(p.get(), 0.7);
        assert_eq!(p.take(), 0.7);
        assert_eq!(p.take(), 0.0);
        p.record(5.0);
        assert_eq!(p.take(), 1.0);
    }

    #[test]
    fn speaking_has_a_hangover() {
        let t0 = Instant::now();
        let mut v = VoiceActivity::new();
        assert!(!v.update(0.1, t0));
        assert!(v.update(0.8, t0));
        assert!(v.update(0.0, t0 + Duration::from_millis(200)));
        assert!(v.update(0.0, t0 + Duration::from_millis(300)));
        assert!(!v.update(0.0, t0 + Duration::from_millis(400)));
        assert!(v.update(SPEAKING_LEVEL + 0.01, t0 + Duration::from_millis(500)));
    }
}
