//! What happens to the microphone's sound before it is encoded: acoustic echo cancellation
//! against what the speaker plays, noise suppression, automatic gain and a high-pass filter.
//!
//! [`CaptureProcessor`] is the stage; [`WebrtcProcessor`] implements it with `sonora`, a pure
//! Rust port of WebRTC's audio processing module (AEC3, NS, AGC2; see docs/decisions.md for why
//! it and not the C++ module). The far end (the reference the echo canceller subtracts) is what
//! the [`crate::Mixer`] mixes for the speaker: the mixer copies each pull into a [`FarEnd`], and
//! the capture thread takes it from there, render before capture, 10 ms at a time.

use crate::frame::SAMPLE_RATE;
use parking_lot::Mutex;
use std::collections::VecDeque;

/// Which parts of the processing run (all on by default, each switchable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessingConfig {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub gain_control: bool,
    pub high_pass: bool,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        ProcessingConfig {
            echo_cancellation: true,
            noise_suppression: true,
            gain_control: true,
            high_pass: true,
        }
    }
}

impl ProcessingConfig {
    /// Nothing switched on.
    pub const OFF: ProcessingConfig = ProcessingConfig {
        echo_cancellation: false,
        noise_suppression: false,
        gain_control: false,
        high_pass: false,
    };

    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.gain_control || self.high_pass
    }
}

/// What the echo canceller reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ProcessingStats {
    /// Echo return loss enhancement: how much of the echo was removed, in dB.
    pub erle_db: Option<f64>,
    /// The delay between what is played and its echo, as the canceller estimates it.
    pub delay_ms: Option<i32>,
}

/// The processing stage between a microphone and its encoder.
pub trait CaptureProcessor: Send {
    /// What the speaker plays (the far end), 10 ms at a time, before the capture it echoes in.
    fn render(&mut self, far: &[i16]);
    /// Process 10 ms of microphone sound in place.
    fn capture(&mut self, near: &mut [i16]);
    fn stats(&self) -> ProcessingStats;
}

/// Samples per 10 ms, the unit WebRTC's audio processing works in.
pub const CHUNK: usize = SAMPLE_RATE as usize / 100;

/// [`CaptureProcessor`] on `sonora` (48 kHz mono, full band).
pub struct WebrtcProcessor {
    apm: sonora::AudioProcessing,
    scratch: Vec<i16>,
    out: Vec<i16>,
}

impl std::fmt::Debug for WebrtcProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebrtcProcessor")
    }
}

impl WebrtcProcessor {
    pub fn new(cfg: ProcessingConfig) -> WebrtcProcessor {
        use sonora::config::{
            AdaptiveDigital, EchoCanceller, GainController2, HighPassFilter, MaxProcessingRate,
            NoiseSuppression, NoiseSuppressionLevel, Pipeline,
        };
        let config = sonora::Config {
            // Full band: the default 32 kHz internal rate would cut everything above 16 kHz.
            pipeline: Pipeline {
                maximum_internal_processing_rate: MaxProcessingRate::Rate48kHz,
                ..Default::default()
            },
            echo_canceller: cfg.echo_cancellation.then(|| EchoCanceller {
                // The high-pass filter is its own switch, not forced on by echo cancellation.
                enforce_high_pass_filtering: false,
                ..Default::default()
            }),
            high_pass_filter: cfg.high_pass.then(HighPassFilter::default),
            noise_suppression: cfg
                .noise_suppression
                // High (~18 dB), as Chromium sets it: Moderate (~12 dB) left stationary noise
                // 13 dB down in speech pauses through a real call (benches/audio_processing.rs).
                .then(|| NoiseSuppression { level: NoiseSuppressionLevel::High, ..Default::default() }),
            gain_controller2: cfg.gain_control.then(|| GainController2 {
                adaptive_digital: Some(AdaptiveDigital::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let apm = sonora::AudioProcessing::builder()
            .config(config)
            .capture_config(sonora::StreamConfig::new(SAMPLE_RATE, 1))
            .render_config(sonora::StreamConfig::new(SAMPLE_RATE, 1))
            .build();
        WebrtcProcessor { apm, scratch: vec![0; CHUNK], out: vec![0; CHUNK] }
    }
}

impl CaptureProcessor for WebrtcProcessor {
    fn render(&mut self, far: &[i16]) {
        for chunk in far.chunks_exact(CHUNK) {
            if let Err(e) = self.apm.process_render_i16(chunk, &mut self.scratch) {
                tracing::debug!(error = ?e, "echo reference not taken");
            }
        }
    }

    fn capture(&mut self, near: &mut [i16]) {
        for chunk in near.chunks_exact_mut(CHUNK) {
            match self.apm.process_capture_i16(chunk, &mut self.out) {
                Ok(()) => chunk.copy_from_slice(&self.out),
                Err(e) => tracing::debug!(error = ?e, "capture processing failed; sent as captured"),
            }
        }
    }

    fn stats(&self) -> ProcessingStats {
        let s = self.apm.statistics();
        ProcessingStats { erle_db: s.echo_return_loss_enhancement, delay_ms: s.delay_ms }
    }
}

/// What the speaker plays, kept for the echo canceller on the timeline of when it is heard.
///
/// The mixer pushes each pull with the time its first sample will be heard (the speaker's
/// `HeardClock`); with each microphone frame the capture thread takes what is heard from
/// [`FAR_END_AHEAD_US`] after that frame's capture time on. When the device under-runs (cpal's
/// PulseAudio backend now and then does not call back for 65-100 ms, and the device plays
/// silence), that silence is on the timeline where it was heard, so the reference keeps its
/// alignment with the echo. Counted by samples (before 2026-12-05) the reference ran ahead of
/// the echo by each under-run until the canceller found the new delay, and the echo got
/// through meanwhile. Bounded (older sound is dropped): a capture thread that stopped taking
/// never grows it.
#[derive(Debug, Default)]
pub struct FarEnd {
    timeline: Mutex<Timeline>,
}

#[derive(Debug, Default)]
struct Timeline {
    /// When the first kept sample is heard, in µs of [`crate::now_us`]'s clock.
    start_us: f64,
    samples: VecDeque<i16>,
}

/// At most this much far-end sound is kept (500 ms).
const FAR_END_MAX: usize = SAMPLE_RATE as usize / 2;
/// The length of one sample in µs.
const SAMPLE_US: f64 = 1e6 / SAMPLE_RATE as f64;
/// A push heard this close to where the previous one ends continues it (the latency readout
/// jitters by a few ms). Later is silence the device played (an under-run); earlier moves the
/// timeline back (the speaker's clock running fast against the system's).
const FAR_END_SLACK_US: f64 = 15_000.0;
/// The echo canceller is given, with the microphone frame captured at T, the sound heard from
/// T + this on. It looks for the echo from no delay on, and the echo of what is heard at H
/// reached the microphone's frames stamped about H - 4 ms here (PulseAudio's null sink and its
/// monitor): so it finds the echo behind by ~20-26 ms (its estimate here: 20), with room for a
/// few ms of error in either clock. The sound is pushed ~60 ms before it is heard, so this
/// much ahead is there to take.
pub const FAR_END_AHEAD_US: u64 = 30_000;

impl FarEnd {
    pub fn new() -> FarEnd {
        FarEnd::default()
    }

    /// Forget what was kept (a capture starting afresh).
    pub fn clear(&self) {
        self.timeline.lock().samples.clear();
    }

    /// The mixer played `out` (f32, -1.0..=1.0), whose first sample is heard at `heard_us`.
    pub fn push(&self, out: &[f32], heard_us: u64) {
        let mut t = self.timeline.lock();
        let heard_us = heard_us as f64;
        if t.samples.is_empty() {
            t.start_us = heard_us;
        } else {
            let end_us = t.start_us + t.samples.len() as f64 * SAMPLE_US;
            let late = heard_us - end_us;
            if late > FAR_END_MAX as f64 * SAMPLE_US {
                // More silence than is kept (a long stall, a step of the clock): start afresh.
                t.samples.clear();
                t.start_us = heard_us;
            } else if late > FAR_END_SLACK_US {
                let silence = (late / SAMPLE_US).round() as usize;
                t.samples.extend(std::iter::repeat_n(0, silence));
            } else if late < -FAR_END_SLACK_US {
                t.start_us += late;
            }
        }
        t.samples.extend(out.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16));
        let excess = t.samples.len().saturating_sub(FAR_END_MAX);
        t.samples.drain(..excess);
        t.start_us += excess as f64 * SAMPLE_US;
    }

    /// Fill `into` with what is heard from [`FAR_END_AHEAD_US`] after `capture_us` (when the
    /// microphone captured the frame's first sample) on; silence where nothing is (nothing
    /// played: nothing to cancel). Sound heard before that is dropped. Returns how many samples
    /// came from the timeline (the silence of an under-run counts: the device played it).
    pub fn take(&self, into: &mut [i16], capture_us: u64) -> usize {
        let mut t = self.timeline.lock();
        let want_us = (capture_us + FAR_END_AHEAD_US) as f64;
        let offset = ((want_us - t.start_us) / SAMPLE_US).round() as i64;
        // Before the first sample kept: nothing was heard then.
        let gap = usize::try_from(-offset).unwrap_or(0).min(into.len());
        into[..gap].fill(0);
        let skip = usize::try_from(offset).unwrap_or(0).min(t.samples.len());
        let n = (into.len() - gap).min(t.samples.len() - skip);
        t.samples.drain(..skip);
        for (o, s) in into[gap..].iter_mut().zip(t.samples.drain(..n)) {
            *o = s;
        }
        into[gap + n..].fill(0);
        if t.samples.is_empty() {
            t.start_us = want_us + into.len() as f64 * SAMPLE_US;
        } else {
            t.start_us += (skip + n) as f64 * SAMPLE_US;
        }
        n
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn talker(seed: u64, f0: f32, amp: f32, samples: usize) -> Vec<i16> {
        crate::synthetic::SpeechLike::samples(seed, f0, amp, samples)
    }

    fn power(s: &[i16]) -> f64 {
        s.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() / s.len().max(1) as f64
    }

    /// Runs `secs` of far-end sound through an echo path (delay, gain) plus `near`, in 20 ms
    /// frames as the engine does; returns (echo, near end alone, processed) after 2 s.
    fn run(cfg: ProcessingConfig, near_amp: f32) -> (Vec<i16>, Vec<i16>, Vec<i16>) {
        let secs = 5;
        let n = SAMPLE_RATE as usize * secs;
        let far = talker(1, 140.0, 0.5, n);
        let near = if near_amp > 0.0 { talker(7, 210.0, near_amp, n) } else { vec![0; n] };
        let delay = SAMPLE_RATE as usize * 40 / 1000;
        let echo: Vec<i16> = (0..n).map(|i| if i >= delay { far[i - delay] / 2 } else { 0 }).collect();
        let mut p = WebrtcProcessor::new(cfg);
        let mut out = Vec::with_capacity(n);
        for start in (0..n).step_by(960) {
            p.render(&far[start..start + 960]);
            let mut frame: Vec<i16> = (start..start + 960).map(|i| echo[i].saturating_add(near[i])).collect();
            p.capture(&mut frame);
            out.extend(frame);
        }
        let skip = SAMPLE_RATE as usize * 2;
        (echo[skip..].to_vec(), near[skip..].to_vec(), out[skip..].to_vec())
    }

    #[test]
    fn the_echo_of_what_is_played_is_removed_and_the_off_switch_keeps_it() {
        let (echo, _, out) =
            run(ProcessingConfig { gain_control: false, ..ProcessingConfig::default() }, 0.0);
        let erle = 10.0 * (power(&echo) / power(&out).max(1.0)).log10();
        println!("echo removed: {erle:.1} dB");
        assert!(erle >= 25.0, "echo reduced by {erle:.1} dB");
        let (echo, _, out) = run(ProcessingConfig::OFF, 0.0);
        let kept = 10.0 * (power(&echo) / power(&out).max(1.0)).log10();
        assert!(kept.abs() < 0.5, "processing off changes nothing: {kept:.1} dB");
    }

    #[test]
    fn near_end_speech_is_kept_while_the_far_end_talks() {
        // Double talk: the near end speaks throughout; what is sent keeps its level (within
        // 3 dB of the near end alone) while the echo under it is removed. Echo cancellation
        // alone: noise suppression rightly takes the talker's noise-like syllables down too.
        let cfg = ProcessingConfig { echo_cancellation: true, ..ProcessingConfig::OFF };
        let (_, near, out) = run(cfg, 0.5);
        let kept = 10.0 * (power(&out) / power(&near)).log10();
        println!("near end in what is sent: {kept:+.1} dB");
        assert!(kept.abs() <= 3.0, "near end level changed by {kept:+.1} dB");
    }

    /// The near end's room noise at about -39 dBFS, with the near end talking 1.5 s on, 1.5 s
    /// off, after `silence_s` of digital silence (a device that was muted, a stream not started
    /// yet); returns (noise level in the input's pauses, in the output's pauses) in dBFS, the
    /// loudest 20 ms frame per 100 ms over the pauses from 1 s on.
    fn room_noise_through(silence_s: usize) -> (f64, f64) {
        let sr = SAMPLE_RATE as usize;
        let n = sr * 6;
        let speech = talker(11, 180.0, 0.5, n);
        let mut mic = vec![0i16; silence_s * sr];
        let talking = |i: usize| (i / (sr * 3 / 2)).is_multiple_of(2);
        mic.extend(crate::RoomNoise::new(0.06).take(n).enumerate().map(|(i, noise)| {
            let s = if talking(i) { f32::from(speech[i]) } else { 0.0 };
            (noise + s).clamp(-32767.0, 32767.0) as i16
        }));
        let mut p =
            WebrtcProcessor::new(ProcessingConfig { gain_control: false, ..ProcessingConfig::default() });
        let silence = vec![0i16; 960];
        let (mut input, mut output) = (Vec::new(), Vec::new());
        for (k, chunk) in mic.chunks_exact(960).enumerate() {
            p.render(&silence);
            let mut frame = chunk.to_vec();
            p.capture(&mut frame);
            // 100 ms report windows (5 frames) wholly inside a pause, from 1 s into the noise.
            let Some(at) = (k * 960).checked_sub(silence_s * sr) else { continue };
            let window = at / 4800 * 4800;
            if at >= sr && !talking(window) && !talking(window + 4799) {
                input.push((window, power(chunk)));
                output.push((window, power(&frame)));
            }
        }
        let loudest = |v: &[(usize, f64)]| {
            let mut per_window = std::collections::BTreeMap::<usize, f64>::new();
            for &(window, p) in v {
                let loudest = per_window.entry(window).or_insert(p);
                *loudest = loudest.max(p);
            }
            let mean = per_window.values().sum::<f64>() / per_window.len() as f64;
            10.0 * (mean / (32767.0 * 32767.0)).log10()
        };
        (loudest(&input), loudest(&output))
    }

    #[test]
    fn room_noise_is_reduced_in_speech_pauses_also_after_digital_silence() {
        // The noise suppressor learns noise that is there when processing starts within its
        // start-up; digital silence before it must not count as that start-up (it is skipped),
        // or noise would only be learned over seconds (see docs/decisions.md).
        for silence_s in [0, 5] {
            let (input, output) = room_noise_through(silence_s);
            println!("after {silence_s} s of silence: noise in pauses {input:.1} -> {output:.1} dBFS");
            assert!(input > -42.0 && input < -36.0, "the noise is there: {input:.1} dBFS");
            assert!(input - output >= 12.0, "noise reduced: {input:.1} -> {output:.1} dBFS");
        }
    }

    #[test]
    fn the_far_end_is_taken_by_when_it_is_heard_with_the_silence_of_under_runs() {
        let f = FarEnd::new();
        let ms = |n: u64| n * 1000;
        let t0 = 1_000_000_000;
        // The microphone frame captured at `at` gets what is heard from `at` + the lead on.
        let frame_at = |heard: u64| heard - FAR_END_AHEAD_US;
        let mut out = [7i16; 960];
        assert_eq!(f.take(&mut out, frame_at(t0)), 0, "nothing played");
        assert!(out.iter().all(|&s| s == 0));
        // 40 ms heard from t0, then the next 40 ms 3 ms later than contiguous (readout jitter:
        // continues it), then, after an under-run, 40 ms heard 100 ms later than contiguous.
        let chunk = |v: f32| vec![v; 1920];
        f.push(&chunk(0.25), t0);
        f.push(&chunk(0.5), t0 + ms(43));
        f.push(&chunk(0.75), t0 + ms(180));
        let level = |s: i16| (f32::from(s) / 32767.0 * 4.0).round() as i16;
        // From 30 ms: 10 ms of the first chunk, 10 ms of the second.
        assert_eq!(f.take(&mut out, frame_at(t0 + ms(30))), 960);
        assert_eq!((level(out[0]), level(out[479]), level(out[480]), level(out[959])), (1, 1, 2, 2));
        // From 70 ms: 10 ms of the second chunk, then the silence of the under-run.
        assert_eq!(f.take(&mut out, frame_at(t0 + ms(70))), 960);
        assert_eq!((level(out[479]), level(out[480]), level(out[959])), (2, 0, 0));
        // A frame the microphone skipped (the next from 170 ms, not 90): the sound before is
        // dropped and the third chunk starts 10 ms in.
        assert_eq!(f.take(&mut out, frame_at(t0 + ms(170))), 960);
        assert_eq!((level(out[479]), level(out[480]), level(out[959])), (0, 3, 3));
        assert_eq!(f.take(&mut out, frame_at(t0 + ms(190))), 960);
        assert!(out.iter().all(|&s| level(s) == 3));
        // Its last 10 ms, then nothing pushed yet.
        assert_eq!(f.take(&mut out, frame_at(t0 + ms(210))), 480);
        assert_eq!((level(out[479]), level(out[480])), (3, 0));
        // A stall longer than what is kept: the timeline starts afresh at the new sound.
        f.push(&chunk(0.5), t0 + ms(400));
        f.push(&chunk(0.25), t0 + ms(1400));
        assert_eq!(f.take(&mut out, frame_at(t0 + ms(1400))), 960);
        assert!(out.iter().all(|&s| level(s) == 1));
        // A taker that stopped: at most 500 ms are kept.
        for k in 0..50 {
            f.push(&chunk(0.25), t0 + ms(1000 + 40 * k));
        }
        assert_eq!(f.timeline.lock().samples.len(), FAR_END_MAX);
        f.clear();
        assert_eq!(f.take(&mut out, t0 + ms(5000)), 0);
    }
}
