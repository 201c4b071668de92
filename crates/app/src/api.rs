//! Everything the web UI and the Rust side exchange: command arguments and results, the view
//! model, and events. The TypeScript declarations in `client-desktop/ui/src/bindings.ts` are
//! generated from these types (`cargo test -p hearth-app bindings` checks they are current;
//! `UPDATE_BINDINGS=1` rewrites them), so the two sides cannot drift apart.
//!
//! The UI state model: Rust owns the call state and sends the whole [`View`] (small: no chat,
//! no frames) whenever it changes, at most ~20 times a second; the page renders from the last
//! `View` it got and keeps only presentation state (open panels, the chat thread on screen,
//! unread counts). Chat messages, reactions and toasts are events, and `get_chat` returns the
//! whole history, so a reloaded page is whole again.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What the pre-join screen fills in and remembers (persisted as JSON in the OS config dir).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct Settings {
    pub name: String,
    /// Last room joined.
    pub room: String,
    /// `ws://` / `wss://` URL of a signaling server; empty: the embedded local server.
    pub server: String,
    /// Device ids from [`Devices`]; `None`: the system default (camera: the first one).
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    /// Join with the camera on / the microphone on.
    pub camera_on: bool,
    pub mic_on: bool,
    /// Sound processing on the microphone.
    pub audio: AudioProcessing,
}

/// Processing of the microphone's sound before it is sent, each part switchable (all on by
/// default, as browsers do). Taken at join: a change applies from the next call. The high-pass
/// filter (rumble below 80 Hz) is always on in the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(default)]
pub struct AudioProcessing {
    /// Remove the sound of the other people coming back from your speakers.
    pub echo_cancellation: bool,
    /// Remove steady background noise (fans, traffic, hum).
    pub noise_suppression: bool,
    /// Keep your voice at an even level.
    pub gain_control: bool,
}

impl Default for AudioProcessing {
    fn default() -> Self {
        AudioProcessing { echo_cancellation: true, noise_suppression: true, gain_control: true }
    }
}

impl AudioProcessing {
    /// The engine's settings for these switches.
    pub fn engine_config(self) -> hearth_media::ProcessingConfig {
        hearth_media::ProcessingConfig {
            echo_cancellation: self.echo_cancellation,
            noise_suppression: self.noise_suppression,
            gain_control: self.gain_control,
            high_pass: true,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            name: String::new(),
            room: String::new(),
            server: String::new(),
            camera: None,
            microphone: None,
            speaker: None,
            camera_on: true,
            mic_on: true,
            audio: AudioProcessing::default(),
        }
    }
}

/// A capture or playback device. The id [`SYNTHETIC_DEVICE`] is the built-in test source
/// (moving stamped pattern / tone bursts), always listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub is_default: bool,
}

/// Id of the built-in test camera / test microphone.
pub const SYNTHETIC_DEVICE: &str = "synthetic";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Devices {
    pub cameras: Vec<Device>,
    pub microphones: Vec<Device>,
    pub speakers: Vec<Device>,
    pub screens: Vec<Device>,
    /// Why a kind could not be listed (e.g. "no sound server"), for the pickers to show.
    pub problems: Vec<String>,
}

/// `join`'s argument: the pre-join form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct JoinRequest {
    pub name: String,
    pub room: String,
    /// Empty: the embedded local server.
    pub server: String,
    pub password: Option<String>,
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
    pub camera_on: bool,
    pub mic_on: bool,
    /// Absent: all on.
    #[serde(default)]
    pub audio: AudioProcessing,
}

/// Where the page gets video: a loopback WebSocket (see `frames`). Connect to
/// `{url}?token={token}&tile={tile id}`; binary messages are [`FrameHeader`]-prefixed I420.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct FrameServerInfo {
    /// `ws://127.0.0.1:PORT/frames`
    pub url: String,
    pub token: String,
    /// Bytes before the pixels in each binary message.
    pub header_bytes: u32,
}

/// What kind of failure, so the page can pick an icon and offer the right next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    ServerUnreachable,
    BadServerUrl,
    WrongPassword,
    PasswordRequired,
    TooManyAttempts,
    RoomFull,
    TokenRefused,
    VersionMismatch,
    NameTaken,
    InvalidInput,
    CameraMissing,
    CameraBusy,
    CameraDenied,
    CameraLost,
    NoMicrophone,
    MicrophoneBusy,
    MicrophoneDenied,
    MicrophoneLost,
    NoSpeaker,
    ScreenShareFailed,
    PeerUnreachable,
    EmbeddedServerFailed,
    Internal,
}

/// A failure for people: what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct UiError {
    pub kind: ErrorKind,
    /// Short, e.g. "Wrong password".
    pub title: String,
    /// What to do, e.g. "Check the password with whoever invited you and try again."
    pub message: String,
    /// Technical detail (for the details disclosure and diagnostics).
    pub detail: String,
}

/// Where the app is. The page shows the pre-join screen for `Idle`, `Left` and `Failed`
/// (with the error), a named progress state for the waits, and the call for `InCall` and
/// `Reconnecting` (with a banner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Idle,
    /// Starting the embedded local server.
    StartingServer,
    /// Opening the signaling connection to `server`.
    Connecting { server: String },
    /// Connected; waiting for the server to admit us.
    Joining,
    InCall,
    /// The signaling connection dropped; next attempt at `retry_at_ms` (Unix ms). Media to
    /// peers may still flow.
    Reconnecting { retry_at_ms: f64, attempt: u32 },
    /// We left (or the call ended): `reason` for people.
    Left { reason: String },
    Failed { error: UiError },
}

/// The state of our link to one peer, for its tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum LinkUi {
    Connecting,
    Connected,
    /// It was connected and is trying again.
    Reconnecting,
    /// It could not connect (the tile says a TURN server would help).
    Failed,
}

/// Connection quality of one link, from the engine's stats (refreshed every second).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct QualityView {
    /// "good" | "fair" | "poor"
    pub level: String,
    pub rtt_ms: Option<f64>,
    pub loss_pct: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub sent_kbps: f64,
    pub received_kbps: f64,
    /// Of the peer's camera (or screen, while it shares) as we decode it.
    pub fps: f64,
    pub width: u32,
    pub height: u32,
    /// Selected candidate pair, e.g. "host ↔ host (udp)"; `None` until known.
    pub candidates: Option<String>,
    /// The link's safety code (same on both ends unless someone is in the middle).
    pub safety_code: Option<String>,
    pub local_fingerprint: Option<String>,
    pub remote_fingerprint: Option<String>,
}

/// One remote participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct PeerView {
    pub peer_id: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_off: bool,
    pub screen_sharing: bool,
    pub hand_raised: bool,
    /// Its signaling connection dropped; it may come back.
    pub away: bool,
    pub link: LinkUi,
    /// 0..1 audio level as we hear it, and whether it is speaking now.
    pub level: f32,
    pub speaking: bool,
    /// The loudest recent speaker (the highlighted tile); at most one peer or `me`.
    pub active_speaker: bool,
    pub quality: Option<QualityView>,
    /// A link problem for people (e.g. "Could not connect ... a TURN server fixes this").
    pub error: Option<String>,
    /// Tile ids to open frame streams for: `"{peer_id}/camera"`, `"{peer_id}/screen"`.
    pub camera_tile: String,
    pub screen_tile: String,
    /// The built-in test participant (can be removed from its tile).
    pub is_test_participant: bool,
}

/// Our own state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct MeView {
    pub peer_id: String,
    pub name: String,
    pub audio_muted: bool,
    pub camera_on: bool,
    pub screen_sharing: bool,
    pub hand_raised: bool,
    pub level: f32,
    pub speaking: bool,
    pub active_speaker: bool,
    /// We have a working camera / microphone at all (else the buttons explain why).
    pub has_camera: bool,
    pub has_microphone: bool,
    /// Waiting for the camera to deliver its first frame.
    pub camera_starting: bool,
    /// `"self/camera"` and `"self/screen"`.
    pub camera_tile: String,
    pub screen_tile: String,
}

/// A device or peer problem shown as a dismissible notice in the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Notice {
    pub id: u64,
    pub error: UiError,
}

/// The whole call as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct View {
    /// Increases with every change.
    pub rev: u64,
    pub phase: Phase,
    pub room: String,
    /// What the page shows as the server ("Local server (this computer)" or the URL).
    pub server_label: String,
    pub embedded: bool,
    pub me: Option<MeView>,
    pub peers: Vec<PeerView>,
    /// Who is sharing a screen: `"self"` or a peer id (presenter layout while set).
    pub presenter: Option<String>,
    pub notices: Vec<Notice>,
    pub test_participant: bool,
    /// The invite link for this call (`hearth://join?...`), when in a call.
    pub invite: Option<String>,
}

/// A chat message. `to` set: private (between us and that peer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ChatEntry {
    pub id: String,
    pub from: String,
    pub from_name: String,
    pub to: Option<String>,
    pub to_name: Option<String>,
    pub text: String,
    /// Server time, Unix ms.
    pub ts_ms: f64,
    pub mine: bool,
    /// For private messages: the other person of the thread (peer id).
    pub thread: Option<String>,
}

/// Events from Rust to the page, all on the Tauri event `"hearth"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UiEvent {
    View { view: View },
    Chat { entry: ChatEntry },
    Reaction { peer_id: String, emoji: String },
    /// A short message that goes away by itself.
    Toast { message: String },
    /// Pre-join microphone meter, ~20 times a second while a preview runs.
    PreviewLevel { level: f32 },
    /// The pre-join preview failed (camera or microphone), for the form to show.
    PreviewError { error: UiError },
}

/// A launch with an invite link or the pre-filled form it implies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct Invite {
    /// Empty: the embedded server.
    pub server: String,
    pub room: String,
}

/// What the page painted for one tile (for lip sync, the self-test and the benchmark). In a
/// `report_paint` the per-frame lists hold only the frames painted since the page's previous
/// report; the app keeps the last 600 of each tile (`App::paint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct TilePaint {
    pub tile: String,
    /// Frames painted since the tile's view started.
    pub frames: u32,
    /// Capture → painted, per painted frame.
    pub latencies_ms: Vec<f64>,
    /// The same frames' latency split in three stages, one entry each: capture → sent by the
    /// frame server (decoding, lip-sync hold, scaling), sent → received by the page (socket and
    /// the page's event loop), received → painted (waiting for an animation frame, drawing).
    #[serde(default)]
    pub stages_ms: Vec<[f64; 3]>,
    /// Distinct hashes of sampled painted pixels, read back from the canvas once a second
    /// (moving video gives a new hash each time).
    pub distinct_pixel_hashes: u32,
    /// "webgl" | "2d"
    pub renderer: String,
}

/// About the app, for the about box and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct AppInfo {
    pub version: String,
    pub protocol: u32,
    pub os: String,
    /// Set when started with `--self-test` or `--bench` (the page then drives itself).
    pub automation: Option<String>,
}

/// Every type the page uses, in dependency order, as TypeScript declarations.
pub fn typescript_bindings() -> String {
    let mut out = String::from(
        "// Generated from crates/app/src/api.rs by `UPDATE_BINDINGS=1 cargo test -p hearth-app bindings`.\n// Do not edit by hand.\n\n",
    );
    macro_rules! decl {
        ($($t:ty),*) => {$(
            out.push_str("export ");
            out.push_str(&<$t as TS>::decl());
            out.push_str("\n\n");
        )*};
    }
    decl!(
        Settings, AudioProcessing, Device, Devices, JoinRequest, FrameServerInfo, ErrorKind, UiError, Phase, LinkUi,
        QualityView, PeerView, MeView, Notice, View, ChatEntry, UiEvent, Invite, TilePaint, AppInfo
    );
    out.push_str(&format!("export const SYNTHETIC_DEVICE = {SYNTHETIC_DEVICE:?};\n"));
    out
}
