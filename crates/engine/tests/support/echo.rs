//! Echo, double talk and noise through a real call on a PulseAudio null sink (issue 14), shared
//! by the engine's test (`tests/call.rs`) and benchmark (`benches/audio_processing.rs`).
//!
//! "far" talks into the call with a speech-like synthetic microphone and plays nothing (virtual
//! speaker). "near" plays what it receives on the null sink `vsink` and its microphone is the
//! sink's monitor: every sample played comes straight back, a perfect echo path. Near-end
//! speech and noise are played into the same sink with `pacat`, so near's microphone hears them
//! but its echo reference (the mixer's output) does not. What near sends is measured where it
//! arrives: far's audio level reports for near (the loudest 20 ms frame's RMS per 100 ms, in
//! dBFS, floor -60). Noise in speech pauses is taken from near's own reports of what it sends
//! (same measure, after processing, before the encoder): a receiver hears stationary noise
//! only every 400 ms when Opus's DTX takes it for silence, which it did in some runs.

#![allow(dead_code, clippy::unwrap_used)]

use hearth_engine::{AudioSpec, Command, Engine, EngineConfig, EngineEvent};
use hearth_media::{ProcessingConfig, SpeechLike};
use hearth_proto::PeerId;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One phase of the script: what plays, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nobody talks.
    Silence,
    /// Only the far end talks: all near sends is echo.
    Far,
    /// Both talk.
    DoubleTalk,
    /// Only the near end talks.
    Near,
    /// Stationary noise at the near end, with near-end speech 1.5 s on, 1.5 s off.
    Noise,
}

/// Near's level as far hears it and as near sends it, (seconds since the phase began, dBFS),
/// per phase.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    pub phases: Vec<(Phase, Vec<(f64, f64)>)>,
    pub sent: Vec<(Phase, Vec<(f64, f64)>)>,
}

fn in_phase(phases: &[(Phase, Vec<(f64, f64)>)], p: Phase) -> &[(f64, f64)] {
    phases.iter().find(|(q, _)| *q == p).map(|(_, v)| v.as_slice()).unwrap_or(&[])
}

/// The `q` quantile (0..1) of the dB values of `series` from `from` seconds on.
fn quantile(series: &[(f64, f64)], from: f64, q: f64) -> f64 {
    let mut v: Vec<f64> = series.iter().filter(|(t, _)| *t >= from).map(|(_, d)| *d).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

impl Recording {
    pub fn phase(&self, p: Phase) -> &[(f64, f64)] {
        in_phase(&self.phases, p)
    }

    /// The `q` quantile (0..1) of what near sent in a phase from `from` seconds on.
    pub fn sent_quantile_db(&self, p: Phase, from: f64, q: f64) -> f64 {
        quantile(in_phase(&self.sent, p), from, q)
    }

    /// Energy mean in dB of a phase's reports from `from` seconds on.
    pub fn mean_db(&self, p: Phase, from: f64) -> f64 {
        energy_mean(self.phase(p).iter().filter(|(t, _)| *t >= from).map(|(_, d)| *d))
    }

    /// The `q` quantile (0..1) of a phase's reports from `from` seconds on.
    pub fn quantile_db(&self, p: Phase, from: f64, q: f64) -> f64 {
        quantile(self.phase(p), from, q)
    }
}

pub fn energy_mean(db: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for d in db {
        sum += 10f64.powf(d / 10.0);
        n += 1;
    }
    if n == 0 { f64::NAN } else { 10.0 * (sum / n as f64).log10() }
}

/// How long after the far end starts the echo stays at least `depth` dB under `reference`
/// (energy mean of each 0.5 s), or `None` if it never settles there.
pub fn convergence_s(far: &[(f64, f64)], reference: f64, depth: f64) -> Option<f64> {
    let windows: Vec<(f64, f64)> = (0..)
        .map(|k| k as f64 * 0.5)
        .take_while(|t| far.iter().any(|(s, _)| *s >= *t))
        .map(|t| (t, energy_mean(far.iter().filter(|(s, _)| *s >= t && *s < t + 0.5).map(|(_, d)| *d))))
        .collect();
    let last_loud = windows.iter().rposition(|(_, d)| *d > reference - depth);
    match last_loud {
        None => Some(0.0),
        Some(i) if i + 1 < windows.len() => Some(windows[i + 1].0),
        Some(_) => None,
    }
}

/// Raw 48 kHz mono s16le of a phase's near-end sound, or `None` when nothing plays there.
fn near_sound(p: Phase, secs: f64) -> Option<Vec<i16>> {
    let n = (secs * 48_000.0) as usize;
    match p {
        Phase::Silence | Phase::Far => None,
        Phase::DoubleTalk | Phase::Near => Some(SpeechLike::samples(7, 210.0, 0.5, n)),
        Phase::Noise => {
            let speech = SpeechLike::samples(11, 180.0, 0.5, n);
            // Pink-ish stationary noise (a fan, a street).
            Some(
                hearth_media::RoomNoise::new(0.06)
                    .take(n)
                    .enumerate()
                    .map(|(i, noise)| {
                        let talking = (i / 72_000) % 2 == 0; // 1.5 s on, 1.5 s off
                        let s = if talking { f32::from(speech[i]) } else { 0.0 };
                        (noise + s).clamp(-32767.0, 32767.0) as i16
                    })
                    .collect(),
            )
        }
    }
}

/// Plays raw samples into the null sink with `pacat` (PulseAudio's own client).
struct Player(std::process::Child);

impl Player {
    fn start(dir: &Path, name: &str, samples: &[i16]) -> Player {
        let path = dir.join(format!("{name}.raw"));
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        std::fs::write(&path, bytes).unwrap();
        let child = std::process::Command::new("pacat")
            .args(["--playback", "--raw", "--format=s16le", "--rate=48000", "--channels=1", "--device=vsink"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run pacat (pulseaudio-utils)");
        Player(child)
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `script` in a fresh two-person call on `server_url` with `processing` on near's
/// microphone; returns near's level as far heard it, per phase. `echo_path_db` is the echo
/// path's gain (0: what near plays comes back as loud; -10: a speaker 10 dB quieter at the
/// microphone than a near-end talker as loud as the far end), set on near's playback stream.
/// Needs `pa` running (this process pointed at it).
pub async fn run(
    pa: &hearth_testkit::PulseAudio,
    server_url: &str,
    room: &str,
    processing: ProcessingConfig,
    echo_path_db: f64,
    script: &[(Phase, f64)],
) -> Recording {
    let mut far_cfg = EngineConfig::new(server_url, room, "far");
    far_cfg.microphone = Some(AudioSpec::Speech { seed: 1 });
    far_cfg.virtual_speaker = true;
    far_cfg.start_muted = true;
    let (far, mut far_rx) = Engine::start(far_cfg).await.expect("far joins");

    let mut near_cfg = EngineConfig::new(server_url, room, "near");
    near_cfg.microphone = Some(AudioSpec::Microphone { id: Some("pulseaudio:vsink.monitor".into()) });
    near_cfg.speaker = Some(Some("pulseaudio:vsink".into()));
    near_cfg.processing = processing;
    let (near, mut near_rx) = Engine::start(near_cfg).await.expect("near joins");
    let near_id: PeerId = near.peer_id().clone();

    let levels: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    let sink = levels.clone();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let far_errors = errors.clone();
    let far_task = tokio::spawn(async move {
        while let Some(ev) = far_rx.recv().await {
            match ev {
                EngineEvent::AudioLevels(v) => {
                    let now = Instant::now();
                    if let Some(l) = v.iter().find(|l| l.peer.as_ref() == Some(&near_id)) {
                        sink.lock().unwrap().push((now, -60.0 + 60.0 * f64::from(l.level)));
                    }
                }
                EngineEvent::DeviceError { .. } => far_errors.lock().unwrap().push(format!("far: {ev:?}")),
                _ => {}
            }
        }
    });
    let near_errors = errors.clone();
    let sent: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    let sent_sink = sent.clone();
    let near_task = tokio::spawn(async move {
        while let Some(ev) = near_rx.recv().await {
            match ev {
                EngineEvent::AudioLevels(v) => {
                    // Ours first (`peer: None`): what the microphone's processing let through.
                    if let Some(l) = v.iter().find(|l| l.peer.is_none()) {
                        sent_sink.lock().unwrap().push((Instant::now(), -60.0 + 60.0 * f64::from(l.level)));
                    }
                }
                EngineEvent::DeviceError { .. } => near_errors.lock().unwrap().push(format!("near: {ev:?}")),
                _ => {}
            }
        }
    });

    // Connected, and near's audio reaching far (its level reported), before the script starts.
    let deadline = Instant::now() + Duration::from_secs(30);
    while levels.lock().unwrap().len() < 10 {
        assert!(Instant::now() < deadline, "far never heard from near: {:?}", errors.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Near's playback is the only stream on the sink now (far plays nowhere, pacat not yet).
    let inputs = pa.pactl(&["list", "short", "sink-inputs"]).unwrap();
    let ids: Vec<&str> = inputs.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(ids.len(), 1, "near's playback is the one stream on the sink: {inputs}");
    pa.pactl(&["set-sink-input-volume", ids[0], &format!("{echo_path_db}dB")]).unwrap();

    let dir = std::env::temp_dir().join(format!("hearth-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut bounds = Vec::new();
    let mut far_talking = false;
    for (i, &(phase, secs)) in script.iter().enumerate() {
        let talk = matches!(phase, Phase::Far | Phase::DoubleTalk);
        if talk != far_talking {
            far.command(Command::SetAudioMuted(!talk)).expect("far mutes or unmutes");
            far_talking = talk;
        }
        let start = Instant::now();
        let player = near_sound(phase, secs).map(|s| Player::start(&dir, &format!("phase{i}"), &s));
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        drop(player);
        bounds.push((phase, start, Instant::now()));
    }
    let _ = std::fs::remove_dir_all(&dir);
    far.leave().await;
    near.leave().await;
    far_task.abort();
    near_task.abort();
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "device errors: {errors:?}");

    let per_phase = |levels: &[(Instant, f64)]| {
        bounds
            .iter()
            .map(|&(p, s, e)| {
                let v = levels
                    .iter()
                    .filter(|(t, _)| *t >= s && *t < e)
                    .map(|(t, d)| (t.duration_since(s).as_secs_f64(), *d))
                    .collect();
                (p, v)
            })
            .collect()
    };
    let phases = per_phase(&levels.lock().unwrap());
    let sent = per_phase(&sent.lock().unwrap());
    Recording { phases, sent }
}
