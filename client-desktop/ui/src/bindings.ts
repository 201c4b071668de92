// Generated from crates/app/src/api.rs by `UPDATE_BINDINGS=1 cargo test -p hearth-app bindings`.
// Do not edit by hand.

export type Settings = { name: string, 
/**
 * Last room joined.
 */
room: string, 
/**
 * `ws://` / `wss://` URL of a signaling server; empty: the embedded local server.
 */
server: string, 
/**
 * Device ids from [`Devices`]; `None`: the system default (camera: the first one).
 */
camera: string | null, microphone: string | null, speaker: string | null, 
/**
 * Join with the camera on / the microphone on.
 */
camera_on: boolean, mic_on: boolean, 
/**
 * Sound processing on the microphone.
 */
audio: AudioProcessing, };

export type AudioProcessing = { 
/**
 * Remove the sound of the other people coming back from your speakers.
 */
echo_cancellation: boolean, 
/**
 * Remove steady background noise (fans, traffic, hum).
 */
noise_suppression: boolean, 
/**
 * Keep your voice at an even level.
 */
gain_control: boolean, };

export type Device = { id: string, name: string, is_default: boolean, };

export type Devices = { cameras: Array<Device>, microphones: Array<Device>, speakers: Array<Device>, screens: Array<Device>, 
/**
 * Why a kind could not be listed (e.g. "no sound server"), for the pickers to show.
 */
problems: Array<string>, };

export type JoinRequest = { name: string, room: string, 
/**
 * Empty: the embedded local server.
 */
server: string, password: string | null, camera: string | null, microphone: string | null, speaker: string | null, camera_on: boolean, mic_on: boolean, 
/**
 * Absent: all on.
 */
audio: AudioProcessing, };

export type FrameServerInfo = { 
/**
 * `ws://127.0.0.1:PORT/frames`
 */
url: string, token: string, 
/**
 * Bytes before the pixels in each binary message.
 */
header_bytes: number, };

export type ErrorKind = "server_unreachable" | "bad_server_url" | "wrong_password" | "password_required" | "too_many_attempts" | "room_full" | "token_refused" | "version_mismatch" | "name_taken" | "invalid_input" | "camera_missing" | "camera_busy" | "camera_denied" | "camera_lost" | "no_microphone" | "microphone_busy" | "microphone_denied" | "microphone_lost" | "no_speaker" | "screen_share_failed" | "peer_unreachable" | "embedded_server_failed" | "internal";

export type UiError = { kind: ErrorKind, 
/**
 * Short, e.g. "Wrong password".
 */
title: string, 
/**
 * What to do, e.g. "Check the password with whoever invited you and try again."
 */
message: string, 
/**
 * Technical detail (for the details disclosure and diagnostics).
 */
detail: string, };

export type Phase = { "phase": "idle" } | { "phase": "starting_server" } | { "phase": "connecting", server: string, } | { "phase": "joining" } | { "phase": "in_call" } | { "phase": "reconnecting", retry_at_ms: number, attempt: number, } | { "phase": "left", reason: string, } | { "phase": "failed", error: UiError, };

export type LinkUi = "connecting" | "connected" | "reconnecting" | "failed";

export type QualityView = { 
/**
 * "good" | "fair" | "poor"
 */
level: string, rtt_ms: number | null, loss_pct: number | null, jitter_ms: number | null, sent_kbps: number, received_kbps: number, 
/**
 * Of the peer's camera (or screen, while it shares) as we decode it.
 */
fps: number, width: number, height: number, 
/**
 * Selected candidate pair, e.g. "host ↔ host (udp)"; `None` until known.
 */
candidates: string | null, 
/**
 * The link's safety code (same on both ends unless someone is in the middle).
 */
safety_code: string | null, local_fingerprint: string | null, remote_fingerprint: string | null, };

export type PeerView = { peer_id: string, name: string, audio_muted: boolean, video_off: boolean, screen_sharing: boolean, hand_raised: boolean, 
/**
 * Its signaling connection dropped; it may come back.
 */
away: boolean, link: LinkUi, 
/**
 * 0..1 audio level as we hear it, and whether it is speaking now.
 */
level: number, speaking: boolean, 
/**
 * The loudest recent speaker (the highlighted tile); at most one peer or `me`.
 */
active_speaker: boolean, quality: QualityView | null, 
/**
 * A link problem for people (e.g. "Could not connect ... a TURN server fixes this").
 */
error: string | null, 
/**
 * Tile ids to open frame streams for: `"{peer_id}/camera"`, `"{peer_id}/screen"`.
 */
camera_tile: string, screen_tile: string, 
/**
 * The built-in test participant (can be removed from its tile).
 */
is_test_participant: boolean, };

export type MeView = { peer_id: string, name: string, audio_muted: boolean, camera_on: boolean, screen_sharing: boolean, hand_raised: boolean, level: number, speaking: boolean, active_speaker: boolean, 
/**
 * We have a working camera / microphone at all (else the buttons explain why).
 */
has_camera: boolean, has_microphone: boolean, 
/**
 * Waiting for the camera to deliver its first frame.
 */
camera_starting: boolean, 
/**
 * `"self/camera"` and `"self/screen"`.
 */
camera_tile: string, screen_tile: string, };

export type Notice = { id: bigint, error: UiError, };

export type View = { 
/**
 * Increases with every change.
 */
rev: bigint, phase: Phase, room: string, 
/**
 * What the page shows as the server ("Local server (this computer)" or the URL).
 */
server_label: string, embedded: boolean, me: MeView | null, peers: Array<PeerView>, 
/**
 * Who is sharing a screen: `"self"` or a peer id (presenter layout while set).
 */
presenter: string | null, notices: Array<Notice>, test_participant: boolean, 
/**
 * The invite link for this call (`hearth://join?...`), when in a call.
 */
invite: string | null, };

export type ChatEntry = { id: string, from: string, from_name: string, to: string | null, to_name: string | null, text: string, 
/**
 * Server time, Unix ms.
 */
ts_ms: number, mine: boolean, 
/**
 * For private messages: the other person of the thread (peer id).
 */
thread: string | null, };

export type UiEvent = { "type": "view", view: View, } | { "type": "chat", entry: ChatEntry, } | { "type": "reaction", peer_id: string, emoji: string, } | { "type": "toast", message: string, } | { "type": "preview_level", level: number, } | { "type": "preview_error", error: UiError, };

export type Invite = { 
/**
 * Empty: the embedded server.
 */
server: string, room: string, };

export type TilePaint = { tile: string, 
/**
 * Frames painted since the tile's view started.
 */
frames: number, 
/**
 * Capture → painted, per painted frame.
 */
latencies_ms: Array<number>, 
/**
 * The same frames' latency split in three stages, one entry each: capture → sent by the
 * frame server (decoding, lip-sync hold, scaling), sent → received by the page (socket and
 * the page's event loop), received → painted (waiting for an animation frame, drawing).
 */
stages_ms: Array<[number, number, number]>, 
/**
 * Distinct hashes of sampled painted pixels, read back from the canvas once a second
 * (moving video gives a new hash each time).
 */
distinct_pixel_hashes: number, 
/**
 * "webgl" | "2d"
 */
renderer: string, };

export type AppInfo = { version: string, protocol: number, os: string, 
/**
 * Set when started with `--self-test` or `--bench` (the page then drives itself).
 */
automation: string | null, };

export const SYNTHETIC_DEVICE = "synthetic";
