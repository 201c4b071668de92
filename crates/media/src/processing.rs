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

/// What the speaker plays, kept for the echo canceller: the mixer pushes every pull, the
/// capture thread takes it. Bounded (older sound is dropped): a capture thread that stopped
/// taking never grows it.
#[derive(Debug, Default)]
pub struct FarEnd {
    samples: Mutex<VecDeque<i16>>,
}

/// At most this much far-end sound is kept (500 ms).
const FAR_END_MAX: usize = SAMPLE_RATE as usize / 2;
/// A taker further behind than this skips ahead (250 ms): the speaker's and the microphone's
/// clocks drift apart, and the echo canceller finds delays within a few hundred ms.
const FAR_END_MAX_LAG: usize = SAMPLE_RATE as usize / 4;

impl FarEnd {
    pub fn new() -> FarEnd {
        FarEnd::default()
    }

    /// Forget what was kept (a capture starting afresh).
    pub fn clear(&self) {
        self.samples.lock().clear();
    }

    /// The mixer played `out` (f32, -1.0..=1.0).
    pub fn push(&self, out: &[f32]) {
        let mut q = self.samples.lock();
        q.extend(out.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16));
        let excess = q.len().saturating_sub(FAR_END_MAX);
        q.drain(..excess);
    }

    /// Fill `into` with the oldest far-end sound not taken yet; silence where there is none
    /// (nothing played: nothing to cancel). Returns how many samples were real.
    pub fn take(&self, into: &mut [i16]) -> usize {
        let mut q = self.samples.lock();
        let behind = q.len().saturating_sub(into.len() + FAR_END_MAX_LAG);
        q.drain(..behind);
        let n = into.len().min(q.len());
        for (o, s) in into.iter_mut().zip(q.drain(..n)) {
            *o = s;
        }
        into[n..].fill(0);
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
    fn the_far_end_buffer_is_bounded_and_gives_silence_when_empty() {
        let f = FarEnd::new();
        let mut out = [7i16; 4];
        assert_eq!(f.take(&mut out), 0);
        assert_eq!(out, [0; 4]);
        f.push(&[0.5, -0.5, 2.0]);
        assert_eq!(f.take(&mut out), 3);
        assert_eq!(out, [16383, -16383, 32767, 0]);
        f.push(&vec![0.1; FAR_END_MAX * 2]);
        assert_eq!(f.samples.lock().len(), FAR_END_MAX);
        // A taker that fell behind skips to the last 250 ms.
        let mut frame = [0i16; 960];
        f.take(&mut frame);
        assert_eq!(f.samples.lock().len(), FAR_END_MAX_LAG);
        f.clear();
        assert_eq!(f.take(&mut out), 0);
    }
}
