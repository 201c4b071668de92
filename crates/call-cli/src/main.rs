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
use hearth_call::report::{self, PairReport};
use hearth_engine::{
    AudioSpec, CallEvent, Command, EncoderInfo, Engine, EngineConfig, EngineEvent, LinkState, TrackKind,
    VideoSpec,
};
use hearth_proto::PeerId;
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
    /// Share a screen too (synthetic with --synthetic, else the real primary screen).
    #[arg(long)]
    screen: bool,
    /// Seconds to stay in the call once the expected peers are connected.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Peers that must connect (and exchange media) for success.
    #[arg(long, default_value_t = 1)]
    expect_peers: usize,
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
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
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

#[derive(Debug, Serialize)]
struct ChatLine {
    from: String,
    private: bool,
    text: String,
}

#[derive(Debug, Serialize)]
struct JoinReport {
    ok: bool,
    room: String,
    name: String,
    peer_id: String,
    expected_peers: usize,
    connected_peers: usize,
    problems: Vec<String>,
    /// What we send: codec, profile, resolution, frame rate, target bitrate.
    encoders: Vec<EncoderInfo>,
    pairs: Vec<PairReport>,
    chat: Vec<ChatLine>,
    device_errors: Vec<String>,
}

async fn join(a: JoinArgs) -> anyhow::Result<ExitCode> {
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
    cfg.speaker = some_id(a.speaker.clone());
    // Without a speaker, received audio still goes through the playout buffer (into a virtual
    // speaker) and video is "shown" (dropped when the event is read), so latency and lip sync
    // are measured where a person would hear and see them.
    cfg.virtual_speaker = cfg.speaker.is_none();
    cfg.deliver_frames = true;
    let (engine, mut events) = match Engine::start(cfg).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("hearth-call: {e}");
            return Ok(ExitCode::from(3));
        }
    };
    if a.screen {
        let spec = if a.synthetic {
            VideoSpec::SyntheticScreen { width: w, height: h, fps: 15.0 }
        } else {
            VideoSpec::Screen { id: None, fps: 15.0 }
        };
        engine.command(Command::StartScreenShare(spec))?;
    }
    let me = engine.peer_id().clone();
    let mut names: BTreeMap<PeerId, String> = BTreeMap::new();
    let mut connected: BTreeSet<PeerId> = BTreeSet::new();
    let mut announced = Announcements::new();
    let mut chat = Vec::new();
    let mut device_errors = Vec::new();
    let mut problems = Vec::new();
    let wait_until = Instant::now() + Duration::from_secs(a.wait);
    let mut end_at: Option<Instant> = None;
    let mut said = false;
    let mut stop_camera_at: Option<Instant> = None;
    // Peers that ever connected, and the last statistics seen for each (a peer that leaves
    // before we finish keeps its last snapshot in the report).
    let mut ever_connected: BTreeSet<PeerId> = BTreeSet::new();
    let mut last_stats: BTreeMap<String, hearth_engine::PeerStats> = BTreeMap::new();
    let mut next_snapshot = Instant::now() + Duration::from_secs(1);
    loop {
        if Instant::now() >= next_snapshot {
            next_snapshot = Instant::now() + Duration::from_secs(1);
            for s in engine.stats().await.unwrap_or_default() {
                last_stats.insert(s.peer_id.clone(), s);
            }
        }
        if end_at.is_none() && connected.len() >= a.expect_peers {
            end_at = Some(Instant::now() + Duration::from_secs(a.seconds));
            stop_camera_at =
                a.test_stop_camera_after.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        }
        if stop_camera_at.is_some_and(|t| Instant::now() >= t) {
            stop_camera_at = None;
            engine.command(Command::StopSendingForTest(TrackKind::Camera))?;
        }
        if !said && end_at.is_some() {
            if let Some(text) = &a.say {
                let to = match &a.say_to {
                    Some(n) => match names.iter().find(|(_, v)| *v == n) {
                        Some((id, _)) => Some(id.clone()),
                        None => {
                            problems.push(format!("no peer named {n:?} to chat privately with"));
                            None
                        }
                    },
                    None => None,
                };
                if a.say_to.is_none() || to.is_some() {
                    engine.command(Command::Chat { text: text.clone(), to })?;
                }
            }
            said = true;
        }
        let deadline = end_at.unwrap_or(wait_until);
        let wake = stop_camera_at.map_or(deadline.min(next_snapshot), |t| t.min(deadline).min(next_snapshot));
        let ev = match tokio::time::timeout_at(wake.into(), events.recv()).await {
            Err(_) if Instant::now() >= deadline => break,
            Err(_) => continue,
            Ok(None) => {
                problems.push("the engine stopped".into());
                break;
            }
            Ok(Some(ev)) => ev,
        };
        announced.observe(&ev, hearth_media::now_us());
        match ev {
            EngineEvent::Call(CallEvent::Joined { peers, .. }) => {
                for p in peers {
                    names.insert(p.id.clone(), p.name.clone());
                }
            }
            EngineEvent::Call(CallEvent::PeerJoined(p)) => {
                names.insert(p.id.clone(), p.name.clone());
            }
            EngineEvent::Call(CallEvent::PeerLeft { peer_id, .. }) => {
                connected.remove(&peer_id);
                names.remove(&peer_id);
            }
            EngineEvent::Call(CallEvent::Link { peer_id, state: LinkState::Connected }) => {
                ever_connected.insert(peer_id.clone());
                connected.insert(peer_id);
            }
            EngineEvent::Call(CallEvent::Chat(m)) if m.from != me => {
                if !a.json {
                    println!(
                        "chat from {}{}: {}",
                        m.from_name,
                        if m.to.is_some() { " (private)" } else { "" },
                        m.text
                    );
                }
                chat.push(ChatLine {
                    from: m.from_name.clone(),
                    private: m.to.is_some(),
                    text: m.text.clone(),
                });
            }
            EngineEvent::Call(CallEvent::ServerError { code, message }) => {
                problems.push(format!("server: {message} ({code})"))
            }
            EngineEvent::DeviceError { kind, message } => {
                eprintln!("hearth-call: {kind:?} device: {message}");
                device_errors.push(message);
            }
            EngineEvent::Ended { reason } => {
                problems.push(reason);
                break;
            }
            _ => {}
        }
    }
    for s in engine.stats().await.unwrap_or_default() {
        last_stats.insert(s.peer_id.clone(), s);
    }
    let end_us = hearth_media::now_us();
    let encoders = engine.encoders().await.unwrap_or_default();
    let stats: Vec<hearth_engine::PeerStats> = last_stats.into_values().collect();
    let joined = engine.joined_at_us();
    if ever_connected.len() < a.expect_peers {
        problems.push(format!("expected {} peer(s), {} connected", a.expect_peers, ever_connected.len()));
    }
    let mut pairs = Vec::new();
    for s in &stats {
        let mut pair = PairReport::new(&a.name, joined, None, s);
        pair.problems = flow::problems(s, &announced, end_us);
        problems.extend(pair.problems.iter().cloned());
        pairs.push(pair);
    }
    let ok = problems.is_empty() && pairs.len() >= a.expect_peers;
    let report = JoinReport {
        ok,
        room: a.room.clone(),
        name: a.name.clone(),
        peer_id: me.to_string(),
        expected_peers: a.expect_peers,
        connected_peers: ever_connected.len(),
        problems,
        encoders,
        pairs,
        chat,
        device_errors,
    };
    engine.leave().await;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print_pairs(&report.pairs);
        print_encoders(&report.encoders);
        for p in &report.problems {
            println!("problem: {p}");
        }
        println!(
            "{}",
            if report.ok { "OK: media flowed both ways with every expected peer" } else { "FAILED" }
        );
    }
    Ok(if report.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
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
