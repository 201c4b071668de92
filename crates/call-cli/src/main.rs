//! `hearth-call`: the headless Hearth client.
//!
//! - `hearth-call join ...` joins a room on a server, sends synthetic (or real) media, receives,
//!   and exits 0 only if every expected peer connected and media flowed both ways.
//! - `hearth-call demo ...` starts an embedded signaling server on loopback and N synthetic
//!   peers in this process, and reports latency, frames, bitrate and CPU per pair.
//!
//! Exit codes: 0 media flowed; 1 it did not (or peers missing); 2 bad usage; 3 could not
//! connect or join.

use clap::{Args, Parser, Subcommand};
use hearth_call::demo::{self, DemoParams};
use hearth_call::flow::{self, Announcements};
use hearth_call::observe::{ChatReceived, Observer, ReactionReceived, SeenPeer};
use hearth_call::report::{self, PairReport};
use hearth_call::script::{self, Action, TimedAction};
use hearth_engine::{
    AudioSpec, CallEvent, Command, EncoderInfo, Engine, EngineConfig, EngineEvent, LinkState, TrackKind,
    VideoSpec,
};
use hearth_proto::{MediaState, PeerId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Parser)]
#[command(name = "hearth-call", version, about = "Headless Hearth client for smoke calls and benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
    /// Log filter (also RUST_LOG), e.g. "hearth_engine=debug".
    #[arg(
        long,
        global = true,
        default_value = "warn,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_srtp=error,webrtc=error"
    )]
    log: String,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Join a room on a server and check that media flows both ways.
    Join(Box<JoinArgs>),
    /// Run N synthetic peers against an embedded server on loopback and report on every pair.
    Demo(DemoArgs),
    /// List cameras, microphones, speakers and screens.
    Devices,
}

#[derive(Debug, Args)]
struct MediaArgs {
    /// Video width of the synthetic camera.
    #[arg(long, default_value_t = 1280)]
    width: u32,
    /// Video height of the synthetic camera.
    #[arg(long, default_value_t = 720)]
    height: u32,
    /// Frames per second of the synthetic camera.
    #[arg(long, default_value_t = 30.0)]
    fps: f32,
}

#[derive(Debug, Args)]
struct JoinArgs {
    /// Signaling server, e.g. ws://127.0.0.1:7878 (the /ws path is added when missing).
    #[arg(long)]
    server: String,
    #[arg(long)]
    room: String,
    #[arg(long, default_value = "hearth-call")]
    name: String,
    /// Send a synthetic camera (stamped test pattern) and microphone (tone bursts).
    #[arg(long)]
    synthetic: bool,
    /// Use a real camera (optionally by id, see `hearth-call devices`).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    camera: Option<String>,
    /// Use a real microphone (optionally by id).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    mic: Option<String>,
    /// Play received audio on a speaker (optionally by id).
    #[arg(long, num_args = 0..=1, default_missing_value = "")]
    speaker: Option<String>,
    /// Do not cancel the echo of what the speaker plays in the microphone's sound (--mic).
    #[arg(long)]
    no_aec: bool,
    /// Do not suppress noise in the microphone's sound (--mic).
    #[arg(long)]
    no_ns: bool,
    /// Do not adjust the microphone's gain automatically (--mic).
    #[arg(long)]
    no_agc: bool,
    /// Do not high-pass filter the microphone's sound (--mic).
    #[arg(long)]
    no_hpf: bool,
    /// Share a screen too (synthetic with --synthetic, else the real primary screen).
    #[arg(long)]
    screen: bool,
    /// Join with the microphone muted (unmute with --at SECS:unmute).
    #[arg(long)]
    muted: bool,
    /// Join with the camera off (turn it on with --at SECS:camera-on).
    #[arg(long)]
    camera_off: bool,
    /// Seconds to stay in the call once the expected peers are connected; 0: until SIGTERM or
    /// SIGINT (ctrl-c), then leave and report.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Peers that must connect (and exchange media) for success; 0: stay --seconds from the
    /// join without waiting for anyone.
    #[arg(long, default_value_t = 1)]
    expect_peers: usize,
    /// Do ACTION SECS seconds (decimal) after the expected peers are connected (after the join
    /// with --expect-peers 0); repeatable. ACTION: mute, unmute, camera-off, camera-on,
    /// screen-on, screen-off, hand-up, hand-down, react:EMOJI, say:TEXT, say-to:NAME:TEXT,
    /// leave (leave now; the run ends as if its time were up).
    #[arg(long = "at", value_name = "SECS:ACTION", value_parser = script::parse_timed_action)]
    at: Vec<TimedAction>,
    /// Give up waiting for the expected peers after this many seconds.
    #[arg(long, default_value_t = 30)]
    wait: u64,
    /// Say this in the room chat once the peers are connected.
    #[arg(long)]
    say: Option<String>,
    /// Say it privately to the peer with this display name instead.
    #[arg(long, requires = "say")]
    say_to: Option<String>,
    #[arg(long)]
    password: Option<String>,
    /// JWT room token (or env HEARTH_TOKEN).
    #[arg(long, env = "HEARTH_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Connect to peers only through TURN relays (ICE transport policy "relay").
    #[arg(long)]
    relay_only: bool,
    /// Use only TURN URLs of this transport: udp, tcp or tls (repeatable). Checks one path.
    #[arg(long = "turn-transport", value_name = "udp|tcp|tls", value_parser = ["udp", "tcp", "tls"])]
    turn_transports: Vec<String>,
    /// HTTP CONNECT proxy for TURN over TCP/TLS, host:port. Default: HTTPS_PROXY / ALL_PROXY.
    #[arg(long, value_name = "HOST:PORT")]
    proxy: Option<String>,
    /// Tests only: stop sending camera video this many seconds into the call while still
    /// announcing the camera as on (the peers' flow checks must catch it).
    #[arg(long, hide = true)]
    test_stop_camera_after: Option<f64>,
    #[command(flatten)]
    media: MediaArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[arg(long, default_value_t = 2)]
    peers: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    media: MediaArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    // Without webrtc-rs's error for each duplicated packet (the copies we send on purpose).
    hearth_engine::handshake_copy::init_logging(&filter);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hearth-call: cannot start the async runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Cmd::Join(a) => join(*a).await,
            Cmd::Demo(a) => demo(a).await,
            Cmd::Devices => devices(),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hearth-call: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn devices() -> anyhow::Result<ExitCode> {
    use hearth_media::DeviceKind;
    for kind in [DeviceKind::Camera, DeviceKind::Microphone, DeviceKind::Speaker, DeviceKind::Screen] {
        println!("{kind}s:");
        match hearth_media::device::list(kind) {
            Ok(list) if list.is_empty() => println!("  (none found)"),
            Ok(list) => {
                for d in list {
                    println!("  {}{}  {}", d.id, if d.is_default { " (default)" } else { "" }, d.name);
                }
            }
            Err(e) => println!("  cannot list: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn some_id(s: Option<String>) -> Option<Option<String>> {
    s.map(|v| if v.is_empty() { None } else { Some(v) })
}

/// The `chat` field of earlier versions: `chat_received` without ids and times.
#[derive(Debug, Serialize)]
struct ChatLine {
    from: String,
    private: bool,
    text: String,
}

/// An `--at` action performed.
#[derive(Debug, Serialize)]
struct ActionDone {
    /// Milliseconds since our join.
    at_ms: u64,
    /// As given to `--at` (`mute`, `say:hello`, ...).
    action: String,
}

#[derive(Debug, Serialize)]
struct JoinReport {
    ok: bool,
    room: String,
    name: String,
    peer_id: String,
    expected_peers: usize,
    connected_peers: usize,
    /// What ended the call: "time" (--seconds), "leave" (an --at leave action), "SIGTERM" /
    /// "SIGINT" / "ctrl-c", "wait" (the expected peers did not connect in time), "engine".
    ended_by: String,
    problems: Vec<String>,
    /// What was not checked or not failed, and why (e.g. a peer muted).
    notes: Vec<String>,
    /// What we send: codec, profile, resolution, frame rate, target bitrate.
    encoders: Vec<EncoderInfo>,
    pairs: Vec<PairReport>,
    chat: Vec<ChatLine>,
    device_errors: Vec<String>,
    /// The other peers as we saw them: final media state and hand, and the timeline.
    seen_peers: Vec<SeenPeer>,
    chat_received: Vec<ChatReceived>,
    reactions_received: Vec<ReactionReceived>,
    /// The --at actions performed.
    actions_done: Vec<ActionDone>,
    /// Once a second during the call: what we send and what each peer delivers (for plots
    /// and benchmarks of adaptation: when a rate settled, when it came back).
    timeline: Vec<TimelineSample>,
}

/// One second of the call, as `timeline` records it.
#[derive(Debug, Serialize)]
struct TimelineSample {
    /// Milliseconds since our join.
    at_ms: u64,
    /// Our encoders: kind, size and target bitrate now.
    sending: Vec<SendingNow>,
    peers: Vec<PeerNow>,
}

#[derive(Debug, Serialize)]
struct SendingNow {
    kind: TrackKind,
    width: u32,
    height: u32,
    bitrate_kbps: f64,
}

#[derive(Debug, Serialize)]
struct PeerNow {
    peer_id: String,
    name: String,
    /// Our congestion controller's estimate of the path to this peer.
    send_estimate_kbps: Option<f64>,
    /// What this peer sent us over the last second.
    received_kbps: f64,
    rtt_ms: Option<f64>,
    loss_pct: Option<f64>,
    /// Its camera as we decode it: frames in the last second, size, totals.
    video_fps: f64,
    video_width: u32,
    video_height: u32,
    video_frames_decoded: u64,
    video_freezes: u64,
    video_freeze_ms: f64,
    /// Playout delays now (ms): complete video frames held before decoding, audio kept queued.
    video_playout_delay_ms: f64,
    audio_playout_delay_ms: f64,
}

/// Resolves when the process is asked to stop (SIGTERM or SIGINT; ctrl-c elsewhere), with the
/// signal's name. Listening starts at once, so a signal that arrives early is not lost.
fn stop_signal() -> anyhow::Result<impl std::future::Future<Output = &'static str>> {
    #[cfg(unix)]
    {
        use anyhow::Context as _;
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        })
    }
}

/// Statistics of each link as last seen, with when (µs). A peer that leaves keeps its last
/// snapshot taken while connected (its link may drop just before the leave arrives).
type StatsLog = BTreeMap<String, (u64, hearth_engine::PeerStats)>;

fn keep_stats(log: &mut StatsLog, at_us: u64, stats: Vec<hearth_engine::PeerStats>) {
    for s in stats {
        if s.connected || !log.get(&s.peer_id).is_some_and(|(_, old)| old.connected) {
            log.insert(s.peer_id.clone(), (at_us, s));
        }
    }
}

async fn join(a: JoinArgs) -> anyhow::Result<ExitCode> {
    if a.seconds > 0
        && let Some(late) = a.at.iter().find(|t| t.at > Duration::from_secs(a.seconds))
    {
        eprintln!(
            "hearth-call: --at {late} comes after the end of the call (--seconds {}; 0 stays until SIGTERM)",
            a.seconds
        );
        return Ok(ExitCode::from(2));
    }
    let stop = stop_signal()?;
    tokio::pin!(stop);
    let mut cfg = EngineConfig::new(a.server.clone(), a.room.clone(), a.name.clone());
    cfg.password = a.password.clone();
    cfg.token = a.token.clone();
    let camera = some_id(a.camera.clone());
    let mic = some_id(a.mic.clone());
    if !a.synthetic && camera.is_none() && mic.is_none() {
        eprintln!("hearth-call: choose what to send: --synthetic, and/or --camera / --mic");
        return Ok(ExitCode::from(2));
    }
    let (w, h, fps) = (a.media.width, a.media.height, a.media.fps);
    cfg.camera = match camera {
        Some(id) => Some(VideoSpec::Camera { id, width: w, height: h, fps: fps.round() as u32 }),
        None if a.synthetic => Some(VideoSpec::Synthetic { width: w, height: h, fps }),
        None => None,
    };
    cfg.microphone = match mic {
        Some(id) => Some(AudioSpec::Microphone { id }),
        None if a.synthetic => Some(AudioSpec::Synthetic),
        None => None,
    };
    cfg.processing = hearth_media::ProcessingConfig {
        echo_cancellation: !a.no_aec,
        noise_suppression: !a.no_ns,
        gain_control: !a.no_agc,
        high_pass: !a.no_hpf,
    };
    cfg.relay_only = a.relay_only;
    cfg.proxy = a.proxy.clone();
    cfg.turn_transports = a.turn_transports.clone();
    cfg.start_muted = a.muted;
    cfg.start_camera_off = a.camera_off;
    cfg.speaker = some_id(a.speaker.clone());
    // Without a speaker, received audio still goes through the playout buffer (into a virtual
    // speaker) and video is "shown" (dropped when the event is read), so latency and lip sync
    // are measured where a person would hear and see them.
    cfg.virtual_speaker = cfg.speaker.is_none();
    cfg.deliver_frames = true;
    let (has_mic, has_camera) = (cfg.microphone.is_some(), cfg.camera.is_some());
    // What we announce: streams we stop sending are not expected to be reported on.
    let mut local = MediaState {
        audio_muted: a.muted || !has_mic,
        video_off: a.camera_off || !has_camera,
        screen_sharing: a.screen,
    };
    let (engine, mut events) = match Engine::start(cfg).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hearth-call: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    let screen_spec = if a.synthetic {
        VideoSpec::SyntheticScreen { width: w, height: h, fps: 15.0 }
    } else {
        VideoSpec::Screen { id: None, fps: 15.0 }
    };
    if a.screen {
        engine.command(Command::StartScreenShare(screen_spec.clone()))?;
    }
    let me = engine.peer_id().clone();
    let joined = engine.joined_at_us();
    let mut observer = Observer::new(me.clone(), joined);
    let mut connected: BTreeSet<PeerId> = BTreeSet::new();
    let mut announced = Announcements::new();
    let mut device_errors = Vec::new();
    let mut problems = Vec::new();
    let mut actions_done = Vec::new();
    let mut script: Vec<TimedAction> = a.at.clone();
    script.sort_by_key(|t| t.at); // stable: actions at the same time keep their order
    let mut next_action = 0;
    let wait_until = Instant::now() + Duration::from_secs(a.wait);
    // When the expected peers were connected (the time --seconds and --at count from), and
    // when the call ends (never with --seconds 0: until a signal).
    let mut started: Option<Instant> = None;
    let mut end_at: Option<Instant> = None;
    let ended_by: &str;
    let mut stop_camera_at: Option<Instant> = None;
    // Peers that ever connected, and the last statistics seen for each (a peer that leaves
    // before we finish keeps its last snapshot in the report).
    let mut ever_connected: BTreeSet<PeerId> = BTreeSet::new();
    let mut last_stats = StatsLog::new();
    // When each peer's link was last lost (ICE reports it `ICE_DISCONNECTED_AFTER` after the
    // path went quiet), until it connects again: a peer that leaves while its link is down (its
    // network went away, and the server ended its session) is judged up to then.
    let mut lost_at: BTreeMap<String, u64> = BTreeMap::new();
    let mut timeline = Vec::new();
    let mut next_snapshot = Instant::now() + Duration::from_secs(1);
    'call: loop {
        if Instant::now() >= next_snapshot {
            next_snapshot = Instant::now() + Duration::from_secs(1);
            let stats = engine.stats().await.unwrap_or_default();
            if started.is_some() {
                let sending = engine.encoders().await.unwrap_or_default();
                timeline.push(TimelineSample {
                    at_ms: observer.at_ms(hearth_media::now_us()),
                    sending: sending
                        .iter()
                        .filter(|e| e.kind != TrackKind::Audio)
                        .map(|e| SendingNow {
                            kind: e.kind,
                            width: e.width,
                            height: e.height,
                            bitrate_kbps: e.bitrate_kbps,
                        })
                        .collect(),
                    peers: stats
                        .iter()
                        .filter(|p| p.connected)
                        .map(|p| PeerNow {
                            peer_id: p.peer_id.clone(),
                            name: p.name.clone(),
                            send_estimate_kbps: p.send_estimate_kbps,
                            received_kbps: p.received_kbps,
                            rtt_ms: p.rtt_ms,
                            loss_pct: p.loss_pct,
                            video_fps: p.camera.fps,
                            video_width: p.camera.width,
                            video_height: p.camera.height,
                            video_frames_decoded: p.camera.frames_decoded,
                            video_freezes: p.camera.freezes,
                            video_freeze_ms: p.camera.freeze_ms,
                            video_playout_delay_ms: p.camera.playout_delay_ms,
                            audio_playout_delay_ms: p.audio.playout_delay_ms,
                        })
                        .collect(),
                });
            }
            keep_stats(&mut last_stats, hearth_media::now_us(), stats);
        }
        let now = Instant::now();
        if started.is_none() && connected.len() >= a.expect_peers {
            started = Some(now);
            end_at = (a.seconds > 0).then(|| now + Duration::from_secs(a.seconds));
            stop_camera_at = a.test_stop_camera_after.map(|s| now + Duration::from_secs_f64(s.max(0.0)));
            if let Some(text) = &a.say {
                match &a.say_to {
                    Some(n) => match observer.peer_named(n) {
                        Some(id) => engine.command(Command::Chat { text: text.clone(), to: Some(id) })?,
                        None => problems.push(format!("no peer named {n:?} to chat privately with")),
                    },
                    None => engine.command(Command::Chat { text: text.clone(), to: None })?,
                }
            }
        }
        if let Some(t0) = started {
            while let Some(t) = script.get(next_action).filter(|t| now >= t0 + t.at) {
                next_action += 1;
                let done = ActionDone {
                    at_ms: observer.at_ms(hearth_media::now_us()),
                    action: t.action.to_string(),
                };
                if !a.json {
                    println!("at {:.1} s: {}", t.at.as_secs_f64(), t.action);
                }
                let cmd = match &t.action {
                    Action::Leave => {
                        actions_done.push(done);
                        ended_by = "leave";
                        break 'call;
                    }
                    Action::Mute => {
                        local.audio_muted = true;
                        Command::SetAudioMuted(true)
                    }
                    Action::Unmute => {
                        local.audio_muted = !has_mic;
                        Command::SetAudioMuted(false)
                    }
                    Action::CameraOff => {
                        local.video_off = true;
                        Command::SetCameraOn(false)
                    }
                    Action::CameraOn => {
                        local.video_off = !has_camera;
                        Command::SetCameraOn(true)
                    }
                    Action::ScreenOn => {
                        local.screen_sharing = true;
                        Command::StartScreenShare(screen_spec.clone())
                    }
                    Action::ScreenOff => {
                        local.screen_sharing = false;
                        Command::StopScreenShare
                    }
                    Action::HandUp => Command::RaiseHand(true),
                    Action::HandDown => Command::RaiseHand(false),
                    Action::React(emoji) => Command::React(emoji.clone()),
                    Action::Say(text) => Command::Chat { text: text.clone(), to: None },
                    Action::SayTo { name, text } => match observer.peer_named(name) {
                        Some(id) => Command::Chat { text: text.clone(), to: Some(id) },
                        None => {
                            problems.push(format!("--at {t}: no peer named {name:?} in the room"));
                            continue;
                        }
                    },
                };
                engine.command(cmd)?;
                actions_done.push(done);
            }
        }
        if stop_camera_at.is_some_and(|t| now >= t) {
            stop_camera_at = None;
            engine.command(Command::StopSendingForTest(TrackKind::Camera))?;
        }
        let deadline = if started.is_some() { end_at } else { Some(wait_until) };
        if deadline.is_some_and(|d| now >= d) {
            ended_by = if started.is_some() { "time" } else { "wait" };
            break;
        }
        let next_at = started.and_then(|t0| script.get(next_action).map(|t| t0 + t.at));
        let wake =
            [deadline, next_at, stop_camera_at].into_iter().flatten().fold(next_snapshot, Instant::min);
        let ev = tokio::select! {
            biased;
            signal = &mut stop => {
                ended_by = signal;
                break;
            }
            () = tokio::time::sleep_until(wake.into()) => continue,
            ev = events.recv() => ev,
        };
        let Some(ev) = ev else {
            problems.push("the engine stopped".into());
            ended_by = "engine";
            break;
        };
        let now_us = hearth_media::now_us();
        announced.observe(&ev, now_us);
        observer.observe(&ev, now_us);
        match ev {
            EngineEvent::Call(CallEvent::PeerLeft { peer_id, .. }) => {
                connected.remove(&peer_id);
            }
            EngineEvent::Call(CallEvent::Link { peer_id, state: LinkState::Connected }) => {
                lost_at.remove(&peer_id.0);
                ever_connected.insert(peer_id.clone());
                connected.insert(peer_id);
            }
            EngineEvent::Call(CallEvent::Link {
                peer_id,
                state: LinkState::Disconnected | LinkState::Failed,
            }) => {
                let quiet_us = hearth_engine::rtc_setup::ICE_DISCONNECTED_AFTER.as_micros() as u64;
                lost_at.entry(peer_id.0).or_insert(now_us.saturating_sub(quiet_us));
            }
            EngineEvent::Call(CallEvent::Chat(m)) if m.from != me && !a.json => {
                println!(
                    "chat from {}{}: {}",
                    m.from_name,
                    if m.to.is_some() { " (private)" } else { "" },
                    m.text
                );
            }
            EngineEvent::Call(CallEvent::ServerError { code, message }) => {
                problems.push(format!("server: {message} ({code})"))
            }
            EngineEvent::DeviceError { kind, message, .. } => {
                eprintln!("hearth-call: {kind:?} device: {message}");
                match kind {
                    TrackKind::Audio => local.audio_muted = true,
                    TrackKind::Camera => local.video_off = true,
                    TrackKind::Screen => local.screen_sharing = false,
                }
                device_errors.push(message);
            }
            EngineEvent::Ended { reason } => {
                problems.push(reason);
                ended_by = "engine";
                break;
            }
            _ => {}
        }
    }
    // Leaving and reporting take a moment; a second signal meanwhile ends the process at once.
    tokio::spawn(async {
        if let Ok(again) = stop_signal() {
            let signal = again.await;
            eprintln!("hearth-call: {signal} again: exiting without a report");
            std::process::exit(130);
        }
    });
    let final_stats = engine.stats().await.unwrap_or_default();
    let end_us = hearth_media::now_us();
    let present: BTreeSet<String> = final_stats.iter().map(|s| s.peer_id.clone()).collect();
    for s in final_stats {
        last_stats.insert(s.peer_id.clone(), (end_us, s));
    }
    let encoders = engine.encoders().await.unwrap_or_default();
    if ever_connected.len() < a.expect_peers {
        problems.push(format!("expected {} peer(s), {} connected", a.expect_peers, ever_connected.len()));
    }
    announced.set_local(local);
    let mut notes = Vec::new();
    let mut pairs = Vec::new();
    for (id, (at_us, s)) in &last_stats {
        let mut pair = PairReport::new(&a.name, joined, None, s);
        let who = if s.name.is_empty() { id.as_str() } else { s.name.as_str() };
        let departed = !present.contains(id);
        let seen_for = end_us.saturating_sub(observer.first_seen_us(id).unwrap_or(joined));
        if !s.connected && departed {
            pair.notes.push(format!("{who} left before the link connected"));
        } else if !s.connected && seen_for < a.wait.saturating_mul(1_000_000) {
            pair.notes.push(format!("still connecting to {who} (joined {:.1} s ago)", seen_for as f64 / 1e6));
        } else {
            // A peer that left is judged up to its last snapshot, or up to when its link was
            // lost if it left without the link coming back.
            let lost = lost_at.get(id).copied().filter(|&t| departed && t < *at_us);
            let judged_to = if departed { lost.unwrap_or(*at_us) } else { end_us };
            let v = flow::judge_until(s, &announced, judged_to, *at_us);
            (pair.problems, pair.notes) = (v.problems, v.notes);
            if let Some(t) = lost {
                pair.notes.push(format!(
                    "{who} left while its link was down: judged up to when the link went quiet ({:.1} s after we joined)",
                    t.saturating_sub(joined) as f64 / 1e6
                ));
            }
        }
        problems.extend(pair.problems.iter().cloned());
        notes.extend(pair.notes.iter().cloned());
        pairs.push(pair);
    }
    let ok = problems.is_empty() && pairs.len() >= a.expect_peers;
    let chat = observer
        .chat
        .iter()
        .map(|c| ChatLine { from: c.from_name.clone(), private: c.private, text: c.text.clone() })
        .collect();
    let report = JoinReport {
        ok,
        room: a.room.clone(),
        name: a.name.clone(),
        peer_id: me.to_string(),
        expected_peers: a.expect_peers,
        connected_peers: ever_connected.len(),
        ended_by: ended_by.to_owned(),
        problems,
        notes,
        encoders,
        pairs,
        chat,
        device_errors,
        seen_peers: observer.peers,
        chat_received: observer.chat,
        reactions_received: observer.reactions,
        actions_done,
        timeline,
    };
    engine.leave().await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print_pairs(&report.pairs);
        print_encoders(&report.encoders);
        print_seen(&report);
        for n in &report.notes {
            println!("note: {n}");
        }
        for p in &report.problems {
            println!("problem: {p}");
        }
        println!(
            "{}",
            match (report.ok, report.pairs.is_empty()) {
                (false, _) => "FAILED",
                (true, true) => "OK: stayed in the room (no peer expected)",
                (true, false) => "OK: media flowed both ways with every expected peer",
            }
        );
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// What we saw of the others, what they said, and what we did.
fn print_seen(r: &JoinReport) {
    let media = |muted: bool, off: bool, sharing: bool| {
        format!(
            "{}, {}{}",
            if muted { "muted" } else { "unmuted" },
            if off { "camera off" } else { "camera on" },
            if sharing { ", sharing its screen" } else { "" }
        )
    };
    for p in &r.seen_peers {
        println!(
            "seen {} ({}): {}{}{}",
            p.name,
            p.peer_id,
            media(p.audio_muted, p.video_off, p.screen_sharing),
            if p.hand_raised { ", hand raised" } else { "" },
            if p.left { ", left" } else { "" }
        );
        for c in &p.media_changes {
            println!("  at {}: {}", secs(c.at_ms), media(c.audio_muted, c.video_off, c.screen_sharing));
        }
        for c in &p.hand_changes {
            println!("  at {}: hand {}", secs(c.at_ms), if c.raised { "raised" } else { "lowered" });
        }
    }
    for c in &r.chat_received {
        println!(
            "chat at {} from {}{}: {}",
            secs(c.at_ms),
            c.from_name,
            if c.private { " (private)" } else { "" },
            c.text
        );
    }
    for x in &r.reactions_received {
        println!("reaction at {} from {}: {}", secs(x.at_ms), x.from_name, x.emoji);
    }
    for d in &r.actions_done {
        println!("did at {}: {}", secs(d.at_ms), d.action);
    }
}

fn print_encoders(encoders: &[EncoderInfo]) {
    for e in encoders {
        if e.kind == TrackKind::Audio {
            println!("sending {:?}: {} {:.0} kbit/s, {:.0} frames/s", e.kind, e.codec, e.bitrate_kbps, e.fps);
        } else {
            println!(
                "sending {:?}: {} {} {}x{}@{:.0}, target {:.0} kbit/s",
                e.kind,
                e.codec,
                e.profile.as_deref().unwrap_or("(profile not known yet)"),
                e.width,
                e.height,
                e.fps,
                e.bitrate_kbps
            );
        }
    }
}

async fn demo(a: DemoArgs) -> anyhow::Result<ExitCode> {
    if a.peers < 2 {
        eprintln!("hearth-call: a demo needs at least 2 peers");
        return Ok(ExitCode::from(2));
    }
    let (w, h, fps) = (a.media.width, a.media.height, a.media.fps);
    let report =
        demo::run(DemoParams { peers: a.peers, seconds: a.seconds, width: w, height: h, fps }).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "hearth-call demo: {} peers, {}x{}@{} synthetic video + Opus, {} s, embedded server on loopback",
            a.peers, w, h, fps, a.seconds
        );
        report::print_pairs(&report.pairs);
        print_encoders(&report.encoders);
        println!("summary over pairs:");
        report::print_summary(&report.summary);
        for p in &report.problems {
            println!("problem: {p}");
        }
        println!(
            "CPU: {:.1}% of one core in total, {:.1}% per peer",
            report.cpu_total_pct, report.cpu_per_peer_pct
        );
        println!(
            "{}",
            if report.ok {
                "OK: media flowed between every pair"
            } else {
                "FAILED: media did not flow between every pair"
            }
        );
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<JoinArgs, clap::Error> {
        let args = ["hearth-call", "join", "--server", "ws://127.0.0.1:1", "--room", "r", "--synthetic"];
        let cli = Cli::try_parse_from(args.iter().chain(extra))?;
        match cli.command {
            Cmd::Join(a) => Ok(*a),
            _ => unreachable!(),
        }
    }

    #[test]
    fn at_flags_are_parsed_in_order_and_bad_ones_refused() {
        let a = parse(&[
            "--at",
            "3:screen-on",
            "--at",
            "1:mute",
            "--at=2:say:hi: there",
            "--muted",
            "--camera-off",
        ])
        .unwrap();
        let specs: Vec<String> = a.at.iter().map(ToString::to_string).collect();
        assert_eq!(specs, ["3:screen-on", "1:mute", "2:say:hi: there"]);
        assert!(a.muted && a.camera_off);
        let e = parse(&["--at", "1:dance"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        let msg = e.to_string();
        assert!(msg.contains("--at <SECS:ACTION>") && msg.contains("unknown action \"dance\""), "{msg}");
        let msg = parse(&["--at", "soon:mute"]).unwrap_err().to_string();
        assert!(msg.contains("SECS must be a number"), "{msg}");
    }
}
