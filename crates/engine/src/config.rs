//! What an engine is asked to do, and what it reports.

use hearth_proto::PeerId;
use hearth_session::{CallEvent, Quality};
use std::sync::Arc;
use std::time::Duration;

/// A video source to open (on its capture thread).
#[derive(Debug, Clone, PartialEq)]
pub enum VideoSpec {
    /// The moving, stamped test pattern (tests, CI smoke calls, benchmarks).
    Synthetic { width: u32, height: u32, fps: f32 },
    /// A synthetic screen share (sharper pattern, usually fewer frames per second).
    SyntheticScreen { width: u32, height: u32, fps: f32 },
    /// A camera (`None`: the first one).
    Camera { id: Option<String>, width: u32, height: u32, fps: u32 },
    /// A real screen (`None`: the primary one).
    Screen { id: Option<String>, fps: f32 },
}

/// An audio source to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioSpec {
    /// Wall-clock tone bursts (see `hearth_media::marker`).
    Synthetic,
    /// A microphone (`None`: the system default).
    Microphone { id: Option<String> },
    /// A speech-like synthetic talker ([`hearth_media::SpeechLike`]; the seed picks the
    /// pitch): a far end for measuring echo cancellation and noise suppression. Not processed.
    Speech { seed: u64 },
}

/// Everything an engine needs to join a call.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `ws://host:port/ws` or `wss://...`.
    pub server_url: String,
    pub room: String,
    pub name: String,
    pub password: Option<String>,
    pub token: Option<String>,
    pub camera: Option<VideoSpec>,
    pub microphone: Option<AudioSpec>,
    /// Play received audio on this speaker (`Some(None)`: the default one). `None`: do not play
    /// (headless).
    pub speaker: Option<Option<String>>,
    /// With no speaker, still run received audio through the mixer into a clocked virtual
    /// output (no device): the playout buffer works as with a speaker, so audio latency, lip
    /// sync and their figures are what a listener would get.
    pub virtual_speaker: bool,
    pub start_muted: bool,
    pub start_camera_off: bool,
    /// Emit every decoded frame as [`EngineEvent::Frame`] (for a display).
    pub deliver_frames: bool,
    /// Local UDP addresses for ICE. `None`: 127.0.0.1 when the server is on loopback (a local
    /// call), else every interface.
    pub udp_bind: Option<Vec<String>>,
    /// ICE connectivity check interval (webrtc-rs defaults to 200 ms; 10 ms connects in ~25 ms
    /// on a LAN instead of ~200 ms; checks still run ~2 s per pair, see `rtc_setup`).
    pub ice_check_interval: Duration,
    /// Give up connecting to the signaling server after this long.
    pub connect_timeout: Duration,
    /// Reconnect to the signaling server (and resume) when the connection drops.
    pub reconnect: bool,
    /// Use relay candidates only (ICE transport policy "relay"): every peer through TURN.
    pub relay_only: bool,
    /// Use only TURN URLs of these transports ("udp", "tcp", "tls"); empty: all. For checking
    /// one path of a deployment.
    pub turn_transports: Vec<String>,
    /// HTTP CONNECT proxy (`host:port` or `http://host:port`) for TURN over TCP/TLS. `None`:
    /// `HTTPS_PROXY` / `ALL_PROXY` from the environment, unless `NO_PROXY` names the server.
    pub proxy: Option<String>,
    /// What is done to the microphone's sound before it is encoded: echo cancellation
    /// against what the speaker plays, noise suppression, gain control, high-pass filter
    /// (`hearth_media::processing`; all on by default). Applies to microphones; synthetic
    /// sources (tone bursts the receivers measure) are sent as generated.
    pub processing: hearth_media::ProcessingConfig,
    /// Test hook: rewrites our outgoing RTP before it reaches any peer (tests of receivers
    /// against a misbehaving peer). Not for apps.
    #[doc(hidden)]
    pub rewrite_rtp: Option<RtpRewrite>,
}

/// See [`EngineConfig::rewrite_rtp`]: called on a stream's capture thread with the stream's
/// kind and the packets of one encoded frame (or audio packet), which it may change, replace
/// or drop before they are fanned out to every peer.
#[doc(hidden)]
#[derive(Clone)]
pub struct RtpRewrite(pub Arc<RewriteFn>);

#[doc(hidden)]
pub type RewriteFn = dyn Fn(TrackKind, &mut Vec<rtc::rtp::Packet>) + Send + Sync;

impl std::fmt::Debug for RtpRewrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RtpRewrite")
    }
}

impl EngineConfig {
    /// A config for `room` on `server_url` with no media; set the sources you want.
    pub fn new(
        server_url: impl Into<String>,
        room: impl Into<String>,
        name: impl Into<String>,
    ) -> EngineConfig {
        EngineConfig {
            server_url: server_url.into(),
            room: room.into(),
            name: name.into(),
            password: None,
            token: None,
            camera: None,
            microphone: None,
            speaker: None,
            virtual_speaker: false,
            start_muted: false,
            start_camera_off: false,
            deliver_frames: false,
            udp_bind: None,
            ice_check_interval: Duration::from_millis(10),
            connect_timeout: Duration::from_secs(10),
            reconnect: true,
            relay_only: false,
            turn_transports: Vec::new(),
            proxy: None,
            processing: hearth_media::ProcessingConfig::default(),
            rewrite_rtp: None,
        }
    }

    /// Synthetic 720p30 camera and tone-burst microphone.
    pub fn synthetic(mut self, width: u32, height: u32, fps: f32) -> Self {
        self.camera = Some(VideoSpec::Synthetic { width, height, fps });
        self.microphone = Some(AudioSpec::Synthetic);
        self
    }
}

/// Which of a peer's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    Audio,
    Camera,
    Screen,
}

impl TrackKind {
    /// The kind's name; track ids on the wire are `<kind>:<stream id>`.
    pub fn id(self) -> &'static str {
        match self {
            TrackKind::Audio => "audio",
            TrackKind::Camera => "camera",
            TrackKind::Screen => "screen",
        }
    }

    /// The kind of a track id (`camera:hearth-p2x...` or just `camera`).
    pub fn from_id(id: &str) -> Option<TrackKind> {
        match id.split(':').next().unwrap_or(id) {
            "audio" => Some(TrackKind::Audio),
            "camera" => Some(TrackKind::Camera),
            "screen" => Some(TrackKind::Screen),
            _ => None,
        }
    }
}

/// Percentiles of a latency distribution, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn from_us(samples: &[u64]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        let mut s = samples.to_vec();
        s.sort_unstable();
        let pick = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
        Latency { samples: s.len() as u64, p50_ms: pick(0.5), p95_ms: pick(0.95), max_ms: pick(1.0) }
    }
}

/// How many freezes [`StreamStats::recent_freezes`] keeps.
pub const RECENT_FREEZES: usize = 64;

/// One freeze: a gap of more than 200 ms between two decoded video frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Freeze {
    /// When the frame that ended it was decoded, µs since the Unix epoch.
    pub ended_us: u64,
    /// How long no frame was decoded, ms.
    pub ms: f64,
}

/// What was received from one peer on one stream.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StreamStats {
    pub kind: Option<TrackKind>,
    pub packets: u64,
    pub bytes: u64,
    /// Frames decoded (video) or 20 ms frames decoded (audio).
    pub frames_decoded: u64,
    /// Frames whose in-band marker was read (video stamps, audio bursts).
    pub markers: u64,
    /// Marker gaps: frames the sender produced that never arrived decoded.
    pub frames_lost: u64,
    /// Markers that arrived after a later one.
    pub frames_out_of_order: u64,
    pub packets_lost: u64,
    pub packets_late: u64,
    pub decode_errors: u64,
    pub keyframe_requests: u64,
    /// Capture to decoded (from the in-band markers).
    pub latency: Latency,
    /// Audio: a burst's capture to its onset leaving the playout buffer (mixer) to be heard,
    /// when the audio is played (speaker or virtual speaker).
    pub playout_latency: Latency,
    /// Lip sync: |video shown − matching audio heard| for frames shown while audio played, as
    /// estimated by the sync logic that scheduled them (see `PeerStats::lip_sync_skew` for the
    /// skew measured at the outputs).
    pub av_offset: Latency,
    pub width: u32,
    pub height: u32,
    /// Frames decoded in the last second.
    pub fps: f64,
    /// Frames decoded per second since the first one.
    pub fps_avg: f64,
    /// The sender's frame rate (video) or packet rate (audio), from the spacing of the RTP
    /// timestamps of the packets received (median of recent steps), whether or not the frames
    /// could be decoded. `None` before two timestamps arrived.
    pub sender_fps: Option<f64>,
    /// PSNR (Y plane, dB) of decoded synthetic frames against the regenerated source frame
    /// (every 10th stamped frame): mean and worst. `None` when the sender is not synthetic.
    pub psnr_db: Option<f64>,
    pub psnr_min_db: Option<f64>,
    pub psnr_samples: u64,
    pub bitrate_kbps: f64,
    /// Microseconds since the Unix epoch when the first frame was decoded.
    pub first_decoded_us: Option<u64>,
    /// The longest time between two consecutive decoded frames, or since the last one, in ms
    /// (how long media stopped during an outage, a network change or an ICE restart). `None`
    /// before two frames.
    pub longest_gap_ms: Option<f64>,
    /// Freezes: gaps of more than 200 ms between two decoded frames (video), and their total
    /// length in ms.
    pub freezes: u64,
    pub freeze_ms: f64,
    /// The latest freezes (up to [`RECENT_FREEZES`]), oldest first: when each ended and how
    /// long it was, so a run can tell the longest one after a point (e.g. once settled).
    pub recent_freezes: Vec<Freeze>,
    /// Missing packets asked for again (RTCP NACK; each repeat counts).
    pub nacks_sent: u64,
    /// How long complete frames (video) or packets (audio) are held before decoding to ride
    /// out the path's lateness, in ms (`hearth_media::playout`).
    pub playout_delay_ms: f64,
    /// Audio frames rebuilt from the next packet's FEC data or concealed (PLC) for lost packets.
    pub concealed_frames: u64,
    /// Audio: 20 ms frames of silence the sender did not send (DTX); not lost.
    pub dtx_frames: u64,
    /// Audio: 20 ms frames of comfort noise played in the sender's DTX silences (libopus's
    /// concealment after the packet that marks the start of one; not counted as decoded; none
    /// without a speaker or virtual speaker, since nothing would play them).
    pub comfort_noise_frames: u64,
    /// Audio: times the playout queue ran dry while playing (a gap in the sound; a silence
    /// the sender did not send, DTX, counts too).
    pub underruns: u64,
}

/// What a peer reports (RTCP receiver reports) about one of our streams it receives.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct OutboundStats {
    pub kind: Option<TrackKind>,
    /// RTP packets we sent this peer on this stream so far.
    pub packets_sent: u64,
    /// Packets the peer had received by its last report (`None`: it never reported).
    pub peer_received_packets: Option<u64>,
    /// Packets we had sent it when that report arrived: compare with the line above.
    pub packets_sent_at_report: u64,
    /// Age of that report.
    pub report_age_ms: Option<f64>,
}

/// The encoder settings of one of our streams.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EncoderInfo {
    pub kind: TrackKind,
    /// "H.264" or "Opus".
    pub codec: &'static str,
    /// H.264 profile and level from the stream's SPS ("Constrained Baseline 3.1"), once a
    /// keyframe was encoded.
    pub profile: Option<String>,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    pub bitrate_kbps: f64,
}

/// A snapshot of one peer link.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeerStats {
    pub peer_id: String,
    pub name: String,
    pub connected: bool,
    /// From joining (or the link opening) to the link connecting.
    pub connect_ms: Option<f64>,
    /// When this link connected (microseconds since the Unix epoch).
    pub connected_at_us: Option<u64>,
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss_pct: Option<f64>,
    /// What our congestion controller estimates the path to this peer carries (kbit/s; GCC on
    /// the peer's transport-wide feedback). `None` before the first feedback.
    pub send_estimate_kbps: Option<f64>,
    pub quality: &'static str,
    /// Since the previous snapshot (or since connecting, for the first).
    pub sent_kbps: f64,
    pub received_kbps: f64,
    /// Averages since the link connected.
    pub sent_kbps_avg: f64,
    pub received_kbps_avg: f64,
    /// RTP packets of ours that the peer reports having received (from its receiver reports).
    pub peer_received_packets: u64,
    /// Per stream of ours: what we sent and what the peer reports having received.
    pub outbound: Vec<OutboundStats>,
    /// Lip sync measured at the outputs: each shown frame's delay from its stamped capture
    /// minus the delay of the audio heard then (tone bursts at playout), independent of the
    /// sync logic. Absolute values; needs displayed frames and played audio.
    pub lip_sync_skew: Latency,
    /// Median of the signed skew (+: video shown late against its audio).
    pub lip_sync_skew_p50_ms: Option<f64>,
    /// The SHA-256 fingerprint of our DTLS certificate on this link, as in our session
    /// description's `a=fingerprint` line ("sha-256 AB:CD:..."). With `remote_fingerprint`,
    /// what [`crate::safety_code`] is computed from.
    pub local_fingerprint: Option<String>,
    /// The fingerprint of the peer's DTLS certificate, from its session description.
    pub remote_fingerprint: Option<String>,
    /// The type of our candidate in the selected ICE pair: "host", "srflx", "prflx" or "relay".
    pub local_candidate: Option<String>,
    /// The type of the peer's candidate in the selected pair.
    pub remote_candidate: Option<String>,
    /// The selected pair's transport: "udp" or "tcp".
    pub candidate_protocol: Option<String>,
    /// With a relay candidate of ours in the selected pair: how it reaches the TURN server,
    /// "udp", "tcp" or "tls".
    pub relay_transport: Option<String>,
    pub audio: StreamStats,
    pub camera: StreamStats,
    pub screen: StreamStats,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frames_in_flight_are_bounded_and_released_on_drop() {
        let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let f = Arc::new(hearth_media::VideoFrame::new(16, 16));
        let held: Vec<_> = (0..DisplayFrame::MAX_IN_FLIGHT)
            .map(|_| DisplayFrame::new(f.clone(), &counter).unwrap())
            .collect();
        assert!(DisplayFrame::new(f.clone(), &counter).is_none(), "a fifth frame must be skipped");
        assert_eq!(held[0].width, 16);
        drop(held);
        assert!(DisplayFrame::new(f, &counter).is_some());
    }
}

impl PeerStats {
    pub fn quality_level(&self) -> Quality {
        match self.quality {
            "good" => Quality::Good,
            "fair" => Quality::Fair,
            _ => Quality::Poor,
        }
    }
}

/// A decoded frame handed to the app. Dropping it frees its slot: the engine keeps at most
/// [`DisplayFrame::MAX_IN_FLIGHT`] frames per stream undelivered or undropped, so an app that
/// stops reading events cannot make memory grow.
#[derive(Debug, Clone)]
pub struct DisplayFrame {
    frame: Arc<hearth_media::VideoFrame>,
    _slot: Arc<FrameSlot>,
}

#[derive(Debug)]
struct FrameSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for FrameSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl DisplayFrame {
    pub const MAX_IN_FLIGHT: usize = 4;

    /// Wrap `frame` if fewer than [`DisplayFrame::MAX_IN_FLIGHT`] frames counted by
    /// `in_flight` are out; `None` means skip this frame.
    pub fn new(
        frame: Arc<hearth_media::VideoFrame>,
        in_flight: &Arc<std::sync::atomic::AtomicUsize>,
    ) -> Option<DisplayFrame> {
        let n = in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let slot = Arc::new(FrameSlot(in_flight.clone()));
        (n < Self::MAX_IN_FLIGHT).then_some(DisplayFrame { frame, _slot: slot })
    }
}

impl std::ops::Deref for DisplayFrame {
    type Target = hearth_media::VideoFrame;
    fn deref(&self) -> &hearth_media::VideoFrame {
        &self.frame
    }
}

/// Events from the engine to the app.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// Roster, chat, media states, link states: see [`CallEvent`].
    Call(CallEvent),
    /// A decoded frame to show now (only with [`EngineConfig::deliver_frames`]). At most a few
    /// frames per stream are in flight: while the app holds them, newer frames are skipped.
    Frame { peer: PeerId, kind: TrackKind, frame: DisplayFrame },
    /// A device failed or is missing; the call goes on without that medium.
    DeviceError { kind: TrackKind, problem: DeviceProblem, message: String },
    /// Audio levels, every 100 ms while in a call: ours first (`peer: None`, measured before
    /// the mute gate, so the app can say "you are muted" while we speak), then each linked
    /// peer's, from the audio decoded of it.
    AudioLevels(Vec<AudioLevel>),
    /// The signaling connection dropped; reconnecting in `retry_in`.
    SignalingLost { retry_in: Duration },
    /// The signaling connection is back (the session was resumed or rejoined).
    SignalingRestored,
    /// The engine stopped.
    Ended { reason: String },
}

/// The loudness of one participant over the last 100 ms.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AudioLevel {
    /// `None`: our own microphone.
    pub peer: Option<PeerId>,
    /// 0.0..=1.0: the loudest 20 ms frame's RMS in dBFS, mapped linearly from -60 dBFS (0.0)
    /// to 0 dBFS (1.0).
    pub level: f32,
    /// Voice activity: the level was above a threshold within the last ~300 ms.
    pub speaking: bool,
}

/// What kind of device problem an [`EngineEvent::DeviceError`] is, so the app can say what to
/// do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceProblem {
    /// No such device (none connected, or the chosen one is gone): connect or pick another.
    Missing,
    /// Another program is using it: close that program.
    Busy,
    /// The system refused access: grant the permission.
    Denied,
    /// It worked, then failed (unplugged, sound server gone): reconnect it or pick another.
    Lost,
    /// Anything else.
    Failed,
}

impl DeviceProblem {
    /// Classify a media error; `after_working`: the device had delivered media before it failed.
    pub fn of(error: &hearth_media::MediaError, after_working: bool) -> DeviceProblem {
        match error {
            hearth_media::MediaError::Device { message, .. } => Self::classify(message, after_working),
            _ if after_working => DeviceProblem::Lost,
            _ => DeviceProblem::Failed,
        }
    }

    /// Classify a device error message (the OS error texts and Hearth's own wording).
    pub fn classify(message: &str, after_working: bool) -> DeviceProblem {
        if after_working {
            return DeviceProblem::Lost;
        }
        let m = message.to_ascii_lowercase();
        let any = |needles: &[&str]| needles.iter().any(|n| m.contains(n));
        if any(&[
            "permission",
            "not permitted",
            "access denied",
            "eacces",
            "eperm",
            "os error 13)",
            "os error 1)",
        ]) {
            DeviceProblem::Denied
        } else if any(&["busy", "ebusy", "os error 16)"]) {
            DeviceProblem::Busy
        } else if any(&[
            "not found",
            "no such",
            "not connected",
            "no camera found",
            "no microphone found",
            "no speaker found",
            "no display",
            "enodev",
            "enoent",
            "os error 2)",
            "os error 19)",
        ]) {
            DeviceProblem::Missing
        } else {
            DeviceProblem::Failed
        }
    }
}

#[cfg(test)]
mod device_problem_tests {
    use super::DeviceProblem::{self, *};

    #[test]
    fn device_errors_are_classified() {
        let cases = [
            ("camera: no camera found; the call goes on without video", Missing),
            ("microphone pulseaudio:x: microphone pulseaudio:x is not connected; pick another", Missing),
            (
                "camera camera:0: cannot open the camera: No such file or directory (os error 2). Is it connected, and not in use by another program?",
                Missing,
            ),
            ("screen: cannot capture the screen (x): no display (DISPLAY is not set)", Missing),
            ("camera camera:0: cannot open the camera: Device or resource busy (os error 16)", Busy),
            ("camera: EBUSY", Busy),
            ("camera camera:0: Permission denied (os error 13)", Denied),
            ("microphone: Operation not permitted (os error 1)", Denied),
            ("microphone: Access denied", Denied),
            // Hearth's generic hint ("it may be in use, or access was denied") decides nothing.
            (
                "microphone: cannot open the microphone: backend error. It may be in use, or access was denied",
                Failed,
            ),
            ("frame conversion failed: bad size", Failed),
        ];
        for (message, want) in cases {
            assert_eq!(DeviceProblem::classify(message, false), want, "{message}");
        }
        assert_eq!(DeviceProblem::classify("camera: No such device (os error 19)", true), Lost);
        let e = hearth_media::MediaError::Convert("x".into());
        assert_eq!(DeviceProblem::of(&e, false), Failed);
        assert_eq!(DeviceProblem::of(&e, true), Lost);
        assert_eq!(serde_json::to_string(&Busy).ok().as_deref(), Some("\"busy\""));
    }
}
