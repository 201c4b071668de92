//! Device checks before joining a call: see yourself ([`VideoPreview`]), watch your microphone
//! move ([`MicMeter`]), hear the speaker ([`play_test_sound`]).
//!
//! Each opens its device the way a call does (the same sources, the same speaker and mixer), on
//! a thread of its own, and reports a device that cannot be opened as
//! [`EngineError::Device`], classified like the call's [`crate::EngineEvent::DeviceError`]. Stop a
//! preview before joining with the same camera: a camera cannot be opened twice.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_engine::EngineError> {
//! use hearth_engine::{AudioSpec, VideoSpec, preview};
//! let video = preview::VideoPreview::start(
//!     VideoSpec::Camera { id: None, width: 1280, height: 720, fps: 30 },
//!     |frame| println!("{}x{}", frame.width, frame.height),
//! )?;
//! let mic = preview::MicMeter::start(AudioSpec::Microphone { id: None })?;
//! println!("microphone level {:.2}", mic.level());
//! preview::play_test_sound(None).await?;
//! drop(video); // the camera is free for the call
//! # Ok(()) }
//! ```

use crate::config::{AudioSpec, DeviceProblem, VideoSpec};
use crate::error::EngineError;
use crate::send::{open_audio, open_video};
use hearth_media::{
    AudioFrame, AudioSource, FRAME_SAMPLES, FramePool, MediaError, Mixer, SAMPLE_RATE, Speaker, VideoFrame,
    VideoSource,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The engine error for a device that failed to open (never having worked).
fn open_error(e: &MediaError) -> EngineError {
    // The wording of the call ("the call goes on without video") does not fit before one.
    let message =
        e.to_string().replace("; the call goes on without video", "; connect one or choose another");
    EngineError::Device { problem: DeviceProblem::of(e, false), message }
}

/// Start `body` on a thread named `name`; it opens its device and reports the outcome through
/// the sender before running. Returns once the device is open (or failed to).
fn spawn_opened(
    name: &str,
    body: impl FnOnce(std::sync::mpsc::SyncSender<Result<(), EngineError>>) + Send + 'static,
) -> Result<JoinHandle<()>, EngineError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let thread =
        std::thread::Builder::new().name(name.into()).spawn(move || body(ready_tx)).map_err(|e| {
            EngineError::Device {
                problem: DeviceProblem::Failed,
                message: format!("cannot start a thread: {e}"),
            }
        })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(EngineError::Device {
                problem: DeviceProblem::Failed,
                message: "the device thread ended while opening the device".into(),
            })
        }
    }
}

/// A camera (or synthetic source, or screen) shown before joining: `on_frame` gets every
/// frame on the preview's thread. Dropping it (or [`VideoPreview::stop`]) stops the capture and
/// returns once the device is released.
pub struct VideoPreview {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for VideoPreview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoPreview").field("running", &self.is_running()).finish()
    }
}

impl VideoPreview {
    /// Open `spec` and start calling `on_frame` with each frame (shared: hold it as long as the
    /// display needs; frames are reused once dropped). Blocks while the device opens; an error
    /// says what is wrong with it.
    pub fn start(
        spec: VideoSpec,
        on_frame: impl Fn(Arc<VideoFrame>) + Send + 'static,
    ) -> Result<VideoPreview, EngineError> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = spawn_opened("hearth-preview-video", move |ready| {
            let mut source = match open_video(&spec) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(open_error(&e)));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            let info = source.info();
            let mut frame = VideoFrame::new(info.width, info.height);
            let mut shared = FramePool::new(4);
            while !flag.load(Ordering::Relaxed) {
                if let Err(e) = source.capture(&mut frame) {
                    tracing::warn!(error = %e, "the preview's video source failed");
                    break;
                }
                on_frame(shared.copy(&frame));
            }
            // The source is dropped here: the device is released before the thread ends.
        })?;
        Ok(VideoPreview { stop, thread: Some(thread) })
    }

    /// Whether frames are still coming (false once the device failed or the preview stopped).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop and wait until the device is released.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VideoPreview {
    fn drop(&mut self) {
        self.halt();
    }
}

/// A microphone level meter before joining: [`MicMeter::level`] is the level of what it hears
/// now (0.0..=1.0, the same scale as [`crate::AudioLevel::level`]), rising at once and falling
/// back smoothly. Dropping it stops the capture.
#[derive(Debug)]
pub struct MicMeter {
    level: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Per 20 ms frame, the shown level falls to this fraction of the previous one at most (a
/// loud sound fades from the meter over a few hundred milliseconds).
const METER_DECAY: f32 = 0.85;

impl MicMeter {
    /// Open `spec` and start measuring. Blocks while the device opens.
    pub fn start(spec: AudioSpec) -> Result<MicMeter, EngineError> {
        let stop = Arc::new(AtomicBool::new(false));
        let level = Arc::new(AtomicU32::new(0));
        let (flag, shown) = (stop.clone(), level.clone());
        let thread = spawn_opened("hearth-preview-mic", move |ready| {
            let mut source = match open_audio(&spec) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(open_error(&e)));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            let mut frame = AudioFrame::default();
            while !flag.load(Ordering::Relaxed) {
                if let Err(e) = source.capture(&mut frame) {
                    tracing::warn!(error = %e, "the preview's microphone failed");
                    break;
                }
                let now = hearth_media::level::level(&frame.samples);
                let before = f32::from_bits(shown.load(Ordering::Relaxed));
                shown.store(now.max(before * METER_DECAY).to_bits(), Ordering::Relaxed);
            }
            shown.store(0f32.to_bits(), Ordering::Relaxed);
        })?;
        Ok(MicMeter { level, stop, thread: Some(thread) })
    }

    /// The level now, 0.0..=1.0.
    pub fn level(&self) -> f32 {
        f32::from_bits(self.level.load(Ordering::Relaxed))
    }

    /// Whether the microphone still delivers (false once it failed or the meter stopped).
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stop and wait for the capture thread to end.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MicMeter {
    fn drop(&mut self) {
        // Not joined: a microphone read ends within a frame, and a failing one within seconds;
        // dropping must not stall the app meanwhile.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Length of the test sound.
pub const TEST_SOUND: Duration = Duration::from_millis(1000);

/// The test sound: a soft two-note chime ("ding-dong", A5 then E5), each note a bell-like tone
/// (fundamental and a quiet octave) with a quick attack and an exponential decay, fading to
/// silence by the end.
pub fn test_sound() -> Vec<i16> {
    let total = (u64::from(SAMPLE_RATE) * TEST_SOUND.as_millis() as u64 / 1000) as usize;
    let notes = [(880.0f32, 0.0f32), (659.25, 0.38)];
    let rate = SAMPLE_RATE as f32;
    (0..total)
        .map(|i| {
            let t = i as f32 / rate;
            let mut s = 0.0;
            for (freq, start) in notes {
                let dt = t - start;
                if dt < 0.0 {
                    continue;
                }
                let attack = (dt / 0.005).min(1.0);
                let decay = (-dt / 0.22).exp();
                let phase = std::f32::consts::TAU * freq * dt;
                s += attack * decay * (phase.sin() + 0.25 * (2.0 * phase).sin());
            }
            // The last 50 ms fade out, so the sound never ends on a click.
            let tail = ((total - i) as f32 / (0.05 * rate)).min(1.0);
            (s * 0.3 * tail * 32767.0).clamp(-32767.0, 32767.0) as i16
        })
        .collect()
}

/// Play [`test_sound`] on `speaker` (`None`: the default one) through the same speaker and mixer
/// a call uses; returns once it has been played, or with an error saying why no sound could be
/// played.
pub async fn play_test_sound(speaker: Option<String>) -> Result<(), EngineError> {
    const SOURCE: u64 = 1;
    let sound = test_sound();
    // A playout buffer deep enough for the whole sound: nothing is shed.
    let mixer =
        Arc::new(Mixer::new(FRAME_SAMPLES, sound.len() + FRAME_SAMPLES, sound.len() + 2 * FRAME_SAMPLES));
    mixer.push(SOURCE, &sound);
    let opened = {
        let mixer = mixer.clone();
        tokio::task::spawn_blocking(move || Speaker::open(speaker.as_deref(), mixer)).await
    };
    let speaker = match opened {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(open_error(&e)),
        Err(e) => {
            return Err(EngineError::Device {
                problem: DeviceProblem::Failed,
                message: format!("cannot open the speaker: {e}"),
            });
        }
    };
    let started = Instant::now();
    let mut outcome = Ok(());
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some(e) = speaker.take_error() {
            outcome =
                Err(EngineError::Device { problem: DeviceProblem::of(&e, true), message: e.to_string() });
            break;
        }
        if mixer.stats(SOURCE).is_none_or(|s| s.queued_samples == 0) {
            // Handed to the device: let its own buffer play out.
            tokio::time::sleep(Duration::from_millis(150)).await;
            break;
        }
        if started.elapsed() > TEST_SOUND + Duration::from_secs(3) {
            outcome = Err(EngineError::Device {
                problem: DeviceProblem::Failed,
                message: format!("the speaker {} did not play the test sound", speaker.name()),
            });
            break;
        }
    }
    // Closing the stream joins its thread: not on the runtime.
    let _ = tokio::task::spawn_blocking(move || drop(speaker)).await;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_sound_is_a_second_of_two_soft_notes_without_clicks() {
        let s = test_sound();
        assert_eq!(s.len(), SAMPLE_RATE as usize);
        let peak = s.iter().map(|x| x.unsigned_abs()).max().unwrap_or(0);
        assert!(peak > 8_000 && peak < 20_000, "peak {peak}");
        // Starts and ends at silence.
        assert!(s[0].unsigned_abs() < 100 && s[s.len() - 1].unsigned_abs() < 100);
        // No jump between neighbouring samples louder than the tones themselves make.
        let max_step = s.windows(2).map(|w| (i32::from(w[1]) - i32::from(w[0])).abs()).max().unwrap_or(0);
        assert!(max_step < 3_000, "step {max_step}");
        // Two notes: loud at the first's onset, quieter just before the second, loud again after.
        let level = |ms: usize| {
            let at = ms * SAMPLE_RATE as usize / 1000;
            hearth_media::level::level(&s[at..at + 480])
        };
        assert!(level(360) < level(400) - 0.05, "{} {}", level(360), level(400));
        assert!(level(10) > 0.6 && level(400) > 0.6);
        assert!(level(980) < level(400));
    }
}
