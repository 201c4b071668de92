//! Lip sync: when to show a video frame so it matches the audio being heard.
//!
//! A sender stamps its audio and video RTP timestamps from one media clock, so a receiver can
//! turn both into microseconds on the same timeline ("media time"). The speaker reports which
//! media time it is playing and when it will be heard; a video frame whose media time is ahead of
//! that by more than `lead` is held until the audio catches up (at most `max_hold`, so a stalled
//! audio path never freezes video). Frames behind the audio are shown at once: video that is late
//! cannot be made earlier, and dropping it would only stutter.
//!
//! `lead` lets video be shown a little before its sound is heard. People do not notice sound
//! that lags the picture by a few tens of ms (sound from a speaker 10 m away lags by 30 ms;
//! ATSC IS-191 allows sound up to 45 ms late, EBU R37 60 ms), while every ms video waits for a
//! slower audio path is latency added to the conversation. The default lead is 45 ms, the limit
//! IS-191 allows (a loaded machine's audio path is 60-90 ms on loopback: holding video for all of
//! it put capture → painted over 60 ms).

use std::time::{Duration, Instant};

/// Playout timing of one remote peer's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioPlayout {
    /// Media time of the sample being played.
    pub media_us: u64,
    /// When that sample is heard.
    pub at: Instant,
}

/// Decides when video frames of one peer are shown.
#[derive(Debug, Clone)]
pub struct AvSync {
    max_hold: Duration,
    /// How far ahead of its audio a frame may be shown.
    lead: Duration,
    /// Audio playout older than this is stale (audio stopped or muted): no sync.
    stale_after: Duration,
}

impl Default for AvSync {
    fn default() -> Self {
        AvSync {
            max_hold: Duration::from_millis(200),
            lead: AvSync::DEFAULT_LEAD,
            stale_after: Duration::from_millis(500),
        }
    }
}

impl AvSync {
    /// Video may be shown this long before its audio is heard (see the module docs).
    pub const DEFAULT_LEAD: Duration = Duration::from_millis(45);

    pub fn new(max_hold: Duration) -> AvSync {
        AvSync { max_hold, ..AvSync::default() }
    }

    /// The same, letting video be shown up to `lead` before its audio is heard.
    pub fn with_lead(mut self, lead: Duration) -> AvSync {
        self.lead = lead;
        self
    }

    /// Media time being heard at `now`, extrapolated from the last playout report.
    pub fn audio_media_at(&self, audio: Option<AudioPlayout>, now: Instant) -> Option<i128> {
        let a = audio?;
        if now.saturating_duration_since(a.at) > self.stale_after {
            return None;
        }
        let delta = if now >= a.at {
            now.duration_since(a.at).as_micros() as i128
        } else {
            -(a.at.duration_since(now).as_micros() as i128)
        };
        Some(i128::from(a.media_us) + delta)
    }

    /// When to show a frame of media time `video_media_us` that is ready at `now`.
    pub fn release_at(&self, video_media_us: u64, audio: Option<AudioPlayout>, now: Instant) -> Instant {
        let Some(heard) = self.audio_media_at(audio, now) else { return now };
        let lead_us = i128::from(video_media_us) - heard - self.lead.as_micros() as i128;
        if lead_us <= 0 {
            return now;
        }
        let lead = Duration::from_micros(u64::try_from(lead_us).unwrap_or(u64::MAX));
        now + lead.min(self.max_hold)
    }

    /// When to hand a frame over to a display that puts it on screen `display` later, so that
    /// it is *shown* at [`AvSync::release_at`]'s time (never before `now`).
    pub fn hand_over_at(
        &self,
        video_media_us: u64,
        audio: Option<AudioPlayout>,
        now: Instant,
        display: Duration,
    ) -> Instant {
        let Some(later) = now.checked_add(display) else { return now };
        let shown = self.release_at(video_media_us, audio, later);
        shown.checked_sub(display).map_or(now, |t| t.max(now))
    }

    /// How far ahead (+) or behind (−) of the audio a frame shown at `shown` is, in µs.
    pub fn offset_us(&self, video_media_us: u64, audio: Option<AudioPlayout>, shown: Instant) -> Option<i64> {
        let heard = self.audio_media_at(audio, shown)?;
        i64::try_from(i128::from(video_media_us) - heard).ok()
    }
}

/// Lip-sync skew measured at the outputs, independently of [`AvSync`] (which schedules frames
/// from an estimate of the playout): each frame's delay from its stamped capture time to being
/// shown, minus the delay of the audio being heard then, from a tone burst's capture time to
/// its onset leaving the playout buffer. Both sides are the sender's capture clock against the
/// receiver's output clock, so neither clock's offset matters. Positive: video late.
#[derive(Debug, Default)]
pub struct OutputSkew {
    /// The last audio delay seen at playout: (heard at, capture → heard), in µs.
    audio: Option<(u64, u64)>,
    samples_us: Vec<i64>,
}

impl OutputSkew {
    /// An audio delay is used for frames shown within this long of it (bursts come every
    /// 200 ms).
    pub const AUDIO_FRESH_US: u64 = 500_000;
    const MAX_SAMPLES: usize = 200_000;

    pub fn new() -> Self {
        Self::default()
    }

    /// Audio captured at `capture_us` (sender's clock) was heard at `heard_us`.
    pub fn audio_heard(&mut self, capture_us: u64, heard_us: u64) {
        self.audio = Some((heard_us, heard_us.saturating_sub(capture_us)));
    }

    /// A frame captured at `capture_us` (sender's clock) was shown at `shown_us`; returns and
    /// records its skew against the audio heard around then, if any was.
    pub fn video_shown(&mut self, capture_us: u64, shown_us: u64) -> Option<i64> {
        let (heard_us, audio_delay) = self.audio?;
        if heard_us.abs_diff(shown_us) > Self::AUDIO_FRESH_US || capture_us == 0 {
            return None;
        }
        let video_delay = i64::try_from(shown_us.saturating_sub(capture_us)).ok()?;
        let skew = video_delay - i64::try_from(audio_delay).ok()?;
        if self.samples_us.len() < Self::MAX_SAMPLES {
            self.samples_us.push(skew);
        }
        Some(skew)
    }

    /// Every skew recorded, in µs (+ = video late).
    pub fn samples_us(&self) -> &[i64] {
        &self.samples_us
    }
}

/// Media time in microseconds of an RTP timestamp at `clock_rate` (sender's shared media clock).
pub fn media_us(rtp_ts: u32, clock_rate: u32) -> u64 {
    u64::from(rtp_ts) * 1_000_000 / u64::from(clock_rate.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_early_video_until_audio_catches_up() {
        let t = Instant::now();
        let s = AvSync::default().with_lead(Duration::ZERO);
        // Audio at media 1_000_000 is heard 40 ms from now (device and playout buffers).
        let audio = Some(AudioPlayout { media_us: 1_000_000, at: t + Duration::from_millis(40) });
        // A frame captured at the same instant as that audio must wait for it.
        assert_eq!(s.release_at(1_000_000, audio, t), t + Duration::from_millis(40));
        // What is heard right now is media 960_000; a frame older than that is late: show it.
        assert_eq!(s.release_at(950_000, audio, t), t);
        // A frame 10 ms ahead of what is heard now waits 10 ms.
        assert_eq!(s.release_at(970_000, audio, t), t + Duration::from_millis(10));
        assert_eq!(s.offset_us(1_000_000, audio, t + Duration::from_millis(40)), Some(0));
    }

    #[test]
    fn video_may_lead_its_audio_by_the_allowance() {
        let t = Instant::now();
        let s = AvSync::default();
        assert_eq!(s.lead, Duration::from_millis(45));
        // Audio at media 1_000_000 is heard 65 ms from now: the frame of that instant waits
        // 20 ms, and is shown 45 ms before its sound.
        let audio = Some(AudioPlayout { media_us: 1_000_000, at: t + Duration::from_millis(65) });
        assert_eq!(s.release_at(1_000_000, audio, t), t + Duration::from_millis(20));
        assert_eq!(s.offset_us(1_000_000, audio, t + Duration::from_millis(20)), Some(45_000));
        // Within the allowance: at once.
        let audio = Some(AudioPlayout { media_us: 1_000_000, at: t + Duration::from_millis(40) });
        assert_eq!(s.release_at(1_000_000, audio, t), t);
    }

    #[test]
    fn a_display_delay_is_taken_off_the_hold() {
        let t = Instant::now();
        let s = AvSync::default();
        // Audio at media 1_000_000 is heard 65 ms from now: shown without a display delay at
        // +20 ms (as above); a display that paints 15 ms after the hand-over gets it at +5 ms,
        // so it is painted at +20 ms.
        let audio = Some(AudioPlayout { media_us: 1_000_000, at: t + Duration::from_millis(65) });
        assert_eq!(s.hand_over_at(1_000_000, audio, t, Duration::ZERO), t + Duration::from_millis(20));
        assert_eq!(
            s.hand_over_at(1_000_000, audio, t, Duration::from_millis(15)),
            t + Duration::from_millis(5)
        );
        // A display slower than the hold: at once, never in the past.
        assert_eq!(s.hand_over_at(1_000_000, audio, t, Duration::from_millis(30)), t);
        // A frame behind its audio is not held whatever the display.
        let heard_now = Some(AudioPlayout { media_us: 1_000_000, at: t });
        assert_eq!(s.hand_over_at(900_000, heard_now, t, Duration::from_millis(15)), t);
        // Still bounded by the hold limit.
        let b = AvSync::new(Duration::from_millis(100));
        let stalled = Some(AudioPlayout { media_us: 0, at: t });
        assert_eq!(
            b.hand_over_at(5_000_000, stalled, t, Duration::from_millis(15)),
            t + Duration::from_millis(100)
        );
    }

    #[test]
    fn holds_are_bounded_and_stale_audio_is_ignored() {
        let t = Instant::now();
        let s = AvSync::new(Duration::from_millis(100));
        let audio = Some(AudioPlayout { media_us: 0, at: t });
        assert_eq!(s.release_at(5_000_000, audio, t), t + Duration::from_millis(100));
        let later = t + Duration::from_secs(2);
        assert_eq!(s.release_at(5_000_000, audio, later), later);
        assert_eq!(s.release_at(5_000_000, None, t), t);
    }

    #[test]
    fn skew_at_the_outputs() {
        let mut s = OutputSkew::new();
        assert_eq!(s.video_shown(1_000, 50_000), None, "no audio heard yet");
        // Audio captured at 1.0 s heard at 1.06 s: 60 ms through the audio path.
        s.audio_heard(1_000_000, 1_060_000);
        // A frame captured at 1.1 s shown at 1.15 s: 50 ms, so 10 ms ahead of its audio.
        assert_eq!(s.video_shown(1_100_000, 1_150_000), Some(-10_000));
        assert_eq!(s.video_shown(1_100_000, 1_200_000), Some(40_000));
        // Audio last heard too long ago: no figure.
        assert_eq!(s.video_shown(2_000_000, 2_000_000), None);
        assert_eq!(s.samples_us(), [-10_000, 40_000]);
    }

    #[test]
    fn media_time_of_rtp_timestamps() {
        assert_eq!(media_us(48_000, 48_000), 1_000_000);
        assert_eq!(media_us(90_000, 90_000), 1_000_000);
        assert_eq!(media_us(u32::MAX, 90_000), 47_721_858_833);
    }
}
