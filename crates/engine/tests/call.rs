//! Real calls: a real hearth-signal on loopback, real webrtc-rs peer connections, real
//! OpenH264/Opus, synthetic sources that stamp frame numbers and capture times into the media.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use hearth_engine::{
    AudioLevel, AudioSpec, CallEvent, Command, DeviceProblem, Engine, EngineConfig, EngineError, EngineEvent,
    LinkState, PeerStats, TrackKind, VideoSpec,
};
use hearth_proto::{ErrorCode, MediaState};
use hearth_testkit::{Server, eventually};

#[path = "support/echo.rs"]
mod echo;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const W: u32 = 320;
const H: u32 = 240;
const WAIT: Duration = Duration::from_secs(20);

struct Peer {
    name: String,
    engine: Engine,
    log: Arc<Mutex<Vec<EngineEvent>>>,
    /// Frames of other peers handed over for display (released at once, as a display would).
    frames_shown: Arc<std::sync::atomic::AtomicUsize>,
    /// Our own frames handed over for display (self view), likewise released at once.
    own_frames_shown: Arc<std::sync::atomic::AtomicUsize>,
    /// Every audio level report, with when it arrived.
    levels: Arc<Mutex<LevelLog>>,
}

/// Audio level reports and when each arrived.
type LevelLog = Vec<(std::time::Instant, Vec<AudioLevel>)>;

impl Peer {
    async fn join(server: &Server, name: &str) -> Peer {
        Self::join_with(server, name, |c| c).await
    }

    async fn join_with(server: &Server, name: &str, f: impl FnOnce(EngineConfig) -> EngineConfig) -> Peer {
        Self::join_url(server.url(), name, f).await
    }

    /// Join through `url` (e.g. a relay in front of the server).
    async fn join_url(url: String, name: &str, f: impl FnOnce(EngineConfig) -> EngineConfig) -> Peer {
        let cfg = f(EngineConfig::new(url, "room", name).synthetic(W, H, 30.0));
        let (engine, mut rx) = Engine::start(cfg).await.expect("join");
        let log = Arc::new(Mutex::new(Vec::new()));
        let frames_shown = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let own_frames_shown = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let levels = Arc::new(Mutex::new(Vec::new()));
        let (sink, shown, own_shown, level_sink) =
            (log.clone(), frames_shown.clone(), own_frames_shown.clone(), levels.clone());
        let me = engine.peer_id().clone();
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                match ev {
                    EngineEvent::Frame { peer, .. } => {
                        let count = if peer == me { &own_shown } else { &shown };
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    EngineEvent::AudioLevels(l) => {
                        level_sink.lock().unwrap().push((std::time::Instant::now(), l))
                    }
                    other => sink.lock().unwrap().push(other),
                }
            }
        });
        Peer { name: name.to_owned(), engine, log, frames_shown, own_frames_shown, levels }
    }

    async fn from(&self, name: &str) -> Option<PeerStats> {
        self.engine.stats().await.ok()?.into_iter().find(|s| s.name == name)
    }

    fn saw(&self, pred: impl Fn(&EngineEvent) -> bool) -> bool {
        self.log.lock().unwrap().iter().any(pred)
    }

    fn connected_links(&self) -> usize {
        let log = self.log.lock().unwrap();
        let mut up = std::collections::BTreeSet::new();
        for ev in log.iter() {
            if let EngineEvent::Call(CallEvent::Link { peer_id, state }) = ev {
                if *state == LinkState::Connected {
                    up.insert(peer_id.clone());
                } else {
                    up.remove(peer_id);
                }
            }
        }
        up.len()
    }
}

async fn all_connected(peers: &[&Peer]) {
    let n = peers.len() - 1;
    for p in peers {
        eventually(WAIT, &format!("{} connected to {n}", p.name), async || {
            (p.connected_links() >= n).then_some(())
        })
        .await
        .unwrap();
    }
}

/// Wait until `receiver` has decoded at least `frames` camera frames and `audio` audio frames
/// from `sender`; return the stats.
async fn decoded(receiver: &Peer, sender: &str, frames: u64, audio: u64) -> PeerStats {
    eventually(WAIT, &format!("{} decoding {sender}", receiver.name), async || {
        receiver
            .from(sender)
            .await
            .filter(|s| s.camera.frames_decoded >= frames && s.audio.frames_decoded >= audio)
    })
    .await
    .unwrap()
}

/// Whether `p` has seen `who` in a media state satisfying `want` (from the welcome, a join, or
/// a media-state update).
/// Wait until `count` of what `receiver` gets from `sender` exceeds `above`.
async fn grows_past(
    receiver: &Peer,
    sender: &str,
    what: &str,
    above: u64,
    count: impl Fn(&PeerStats) -> u64,
) {
    eventually(WAIT, what, async || (count(&receiver.from(sender).await?) > above).then_some(()))
        .await
        .unwrap();
}

fn media_seen(p: &Peer, who: &str, want: impl Fn(&MediaState) -> bool) -> bool {
    let log = p.log.lock().unwrap();
    let mut id = None;
    for ev in log.iter() {
        let (peer, state) = match ev {
            EngineEvent::Call(CallEvent::Joined { peers, .. }) => {
                match peers.iter().find(|x| x.name == who) {
                    Some(x) => (x.id.clone(), x.media),
                    None => continue,
                }
            }
            EngineEvent::Call(CallEvent::PeerJoined(x)) if x.name == who => (x.id.clone(), x.media),
            EngineEvent::Call(CallEvent::PeerMedia { peer_id, state }) if Some(peer_id) == id.as_ref() => {
                (peer_id.clone(), *state)
            }
            _ => continue,
        };
        id = Some(peer);
        if want(&state) {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_peers_exchange_media_with_valid_markers_in_order() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    let c = Peer::join(&server, "cy").await;
    all_connected(&[&a, &b, &c]).await;
    for (rx, senders) in [(&a, ["bob", "cy"]), (&b, ["ada", "cy"]), (&c, ["ada", "bob"])] {
        for s in senders {
            let st = decoded(rx, s, 45, 75).await;
            assert!(st.connected, "{} -> {s}", rx.name);
            // Video: every decoded frame carried a valid stamp, in order.
            assert!(st.camera.markers >= 45, "{} from {s}: {:?}", rx.name, st.camera);
            assert_eq!(st.camera.frames_out_of_order, 0, "{} from {s}", rx.name);
            assert_eq!((st.camera.width, st.camera.height), (W, H));
            assert!(
                st.camera.latency.samples > 0 && st.camera.latency.p95_ms < 500.0,
                "{:?}",
                st.camera.latency
            );
            // Audio: bursts (every 200 ms) decoded and detected in order.
            assert!(st.audio.markers >= 3, "{} from {s}: {:?}", rx.name, st.audio);
            assert_eq!(st.audio.frames_out_of_order, 0);
            assert!(
                st.peer_received_packets > 0 || {
                    // Receiver reports come once a second; give them time.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    rx.from(s).await.unwrap().peer_received_packets > 0
                }
            );
        }
    }
    for p in [a, b, c] {
        p.engine.leave().await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mute_and_camera_off_stop_media_and_others_see_it() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    decoded(&b, "ada", 10, 20).await;

    a.engine.command(Command::SetAudioMuted(true)).unwrap();
    eventually(WAIT, "bob sees ada muted", async || media_seen(&b, "ada", |m| m.audio_muted).then_some(()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.from("ada").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = b.from("ada").await.unwrap();
    assert_eq!(after.audio.frames_decoded, before.audio.frames_decoded, "audio kept flowing while muted");
    assert!(after.camera.frames_decoded > before.camera.frames_decoded + 15, "video must keep flowing");

    a.engine.command(Command::SetAudioMuted(false)).unwrap();
    grows_past(&b, "ada", "audio back", after.audio.frames_decoded + 10, |s| s.audio.frames_decoded).await;

    a.engine.command(Command::SetCameraOn(false)).unwrap();
    eventually(WAIT, "bob sees ada's camera off", async || {
        media_seen(&b, "ada", |m| m.video_off).then_some(())
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = b.from("ada").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = b.from("ada").await.unwrap();
    assert_eq!(
        after.camera.frames_decoded, before.camera.frames_decoded,
        "video kept flowing with the camera off"
    );
    assert!(after.audio.frames_decoded > before.audio.frames_decoded + 30);

    a.engine.command(Command::SetCameraOn(true)).unwrap();
    grows_past(&b, "ada", "video back", after.camera.frames_decoded + 10, |s| s.camera.frames_decoded).await;
    eventually(WAIT, "bob sees ada's camera on", async || {
        media_seen(&b, "ada", |m| !m.video_off).then_some(())
    })
    .await
    .unwrap();
    a.engine.leave().await;
    b.engine.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_share_on_and_off_mid_call() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    let c = Peer::join(&server, "cy").await;
    all_connected(&[&a, &b, &c]).await;
    a.engine
        .command(Command::StartScreenShare(VideoSpec::SyntheticScreen { width: 640, height: 360, fps: 10.0 }))
        .unwrap();
    for rx in [&b, &c] {
        let st = eventually(WAIT, "screen frames", async || {
            rx.from("ada").await.filter(|s| s.screen.frames_decoded >= 10)
        })
        .await
        .unwrap();
        assert_eq!((st.screen.width, st.screen.height), (640, 360));
        assert!(st.screen.markers >= 10, "{:?}", st.screen);
        assert!(media_seen(rx, "ada", |m| m.screen_sharing));
        // The camera goes on alongside.
        assert!(st.camera.frames_decoded > 0);
    }
    a.engine.command(Command::StopScreenShare).unwrap();
    for rx in [&b, &c] {
        eventually(WAIT, "screen share off seen", async || {
            media_seen(rx, "ada", |m| !m.screen_sharing).then_some(())
        })
        .await
        .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = b.from("ada").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = b.from("ada").await.unwrap();
    assert_eq!(after.screen.frames_decoded, before.screen.frames_decoded, "screen frames after stop");
    assert!(after.camera.frames_decoded > before.camera.frames_decoded + 15, "camera must go on");
    // And again: the share can be restarted on the same links.
    a.engine
        .command(Command::StartScreenShare(VideoSpec::SyntheticScreen { width: 640, height: 360, fps: 10.0 }))
        .unwrap();
    grows_past(&b, "ada", "screen frames again", after.screen.frames_decoded + 5, |s| {
        s.screen.frames_decoded
    })
    .await;
    for p in [a, b, c] {
        p.engine.leave().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_xvfb_screen_is_captured_and_shared() {
    let _x = hearth_testkit::Xvfb::start(800, 600).expect("Xvfb");
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    a.engine.command(Command::StartScreenShare(VideoSpec::Screen { id: None, fps: 10.0 })).unwrap();
    let st = eventually(WAIT, "screen frames from Xvfb", async || {
        b.from("ada").await.filter(|s| s.screen.frames_decoded >= 10)
    })
    .await
    .unwrap();
    assert_eq!((st.screen.width, st.screen.height), (800, 600));
    assert!(!a.saw(|e| matches!(e, EngineEvent::DeviceError { .. })));
    a.engine.leave().await;
    b.engine.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_share_without_a_display_is_a_clear_device_error() {
    // SAFETY of the environment change: nextest runs each test in its own process.
    #[allow(unsafe_code)]
    unsafe {
        std::env::remove_var("DISPLAY");
        std::env::remove_var("WAYLAND_DISPLAY");
    }
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    a.engine.command(Command::StartScreenShare(VideoSpec::Screen { id: None, fps: 10.0 })).unwrap();
    let (msg, problem) = eventually(WAIT, "device error", async || {
        a.log.lock().unwrap().iter().find_map(|e| match e {
            EngineEvent::DeviceError { message, problem, kind } => {
                assert_eq!(*kind, TrackKind::Screen);
                Some((message.clone(), *problem))
            }
            _ => None,
        })
    })
    .await
    .unwrap();
    assert!(msg.contains("screen") && msg.contains("DISPLAY"), "{msg}");
    assert_eq!(problem, DeviceProblem::Missing, "{msg}");
    // The call goes on.
    let before = b.from("ada").await.unwrap().camera.frames_decoded;
    grows_past(&b, "ada", "camera still flowing", before + 10, |s| s.camera.frames_decoded).await;
    a.engine.leave().await;
    b.engine.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_camera_is_reported_and_the_call_goes_on_with_audio() {
    if !hearth_media::camera::list().unwrap().is_empty() {
        eprintln!("a camera is present; this test covers the no-camera case");
        return;
    }
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join_with(&server, "ada", |mut c| {
        c.camera = Some(VideoSpec::Camera { id: None, width: 640, height: 480, fps: 30 });
        c
    })
    .await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    eventually(WAIT, "device error", async || {
        a.saw(|e| {
            matches!(e, EngineEvent::DeviceError { message, problem: DeviceProblem::Missing, kind: TrackKind::Camera }
                if message.contains("no camera found"))
        })
        .then_some(())
    })
    .await
    .unwrap();
    eventually(WAIT, "bob sees video off", async || media_seen(&b, "ada", |m| m.video_off).then_some(()))
        .await
        .unwrap();
    let st =
        eventually(WAIT, "audio flows", async || b.from("ada").await.filter(|s| s.audio.frames_decoded > 50))
            .await
            .unwrap();
    assert_eq!(st.camera.frames_decoded, 0);
    // Ada still receives Bob's video.
    decoded(&a, "bob", 10, 10).await;
    a.engine.leave().await;
    b.engine.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microphone_capture_through_pulseaudio_reaches_the_peer() {
    let pa = hearth_testkit::PulseAudio::start().expect("pulseaudio");
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    // Ada's microphone is the monitor of the null sink; the test plays tone bursts into the sink.
    let a = Peer::join_with(&server, "ada", |mut c| {
        c.microphone = Some(AudioSpec::Microphone { id: Some("pulseaudio:vsink.monitor".into()) });
        c
    })
    .await;
    // Bob plays what he receives (a virtual speaker): comfort noise is made only to be played.
    let b = Peer::join_with(&server, "bob", |mut c| {
        c.virtual_speaker = true;
        c
    })
    .await;
    all_connected(&[&a, &b]).await;
    let mixer = Arc::new(hearth_media::Mixer::new(960, 960, 48_000));
    let speaker =
        hearth_media::Speaker::open(Some("pulseaudio:vsink"), mixer.clone()).expect("open the null sink");
    let feeder = {
        let mixer = mixer.clone();
        std::thread::spawn(move || {
            let mut src = hearth_media::ToneBursts::new();
            let mut f = hearth_media::AudioFrame::default();
            for _ in 0..400 {
                hearth_media::AudioSource::capture(&mut src, &mut f).unwrap();
                mixer.push(1, &f.samples);
            }
        })
    };
    let st = eventually(Duration::from_secs(30), "bursts through the microphone", async || {
        b.from("ada").await.filter(|s| s.audio.markers >= 5)
    })
    .await
    .unwrap();
    assert_eq!(st.audio.frames_out_of_order, 0);
    assert!(!a.saw(|e| matches!(e, EngineEvent::DeviceError { .. })));
    // The bursts end and the microphone hears silence: ada's encoder goes into DTX, and bob
    // fills the silence it does not send with comfort noise.
    let _ = feeder.join();
    let st = eventually(Duration::from_secs(15), "comfort noise in ada's DTX silence", async || {
        b.from("ada").await.filter(|s| s.audio.dtx_frames >= 20 && s.audio.comfort_noise_frames >= 20)
    })
    .await
    .unwrap();
    println!("dtx frames {}, comfort noise frames {}", st.audio.dtx_frames, st.audio.comfort_noise_frames);
    drop(speaker);
    a.engine.leave().await;
    b.engine.leave().await;
    drop(pa);
}

/// Echo cancellation, double talk, noise suppression and the off switch through real calls on
/// the PulseAudio null sink (a real echo path; see `support/echo.rs`), with a speech-like far
/// end. Looser than the benchmark's floors (benches/audio_processing.rs prints the figures),
/// since the whole suite runs beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_is_removed_the_near_end_kept_and_noise_reduced_in_a_real_call() {
    use echo::Phase;
    let pa = hearth_testkit::PulseAudio::start().expect("pulseaudio");
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    // The noise first: noise that is there when a call starts is learned within its first
    // second; noise that starts seconds into a call after clean speech is learned over seconds
    // to tens of seconds (WebRTC's noise estimator; docs/decisions.md, "Noise that starts
    // mid-call").
    let script = [
        (Phase::Silence, 1.0),
        (Phase::Noise, 6.0),
        (Phase::Far, 5.0),
        (Phase::DoubleTalk, 4.0),
        (Phase::Near, 4.0),
    ];
    let off = echo::run(&pa, &server.url(), "off", hearth_media::ProcessingConfig::OFF, -10.0, &script).await;
    let on_cfg = hearth_media::ProcessingConfig { gain_control: false, ..Default::default() };
    let on = echo::run(&pa, &server.url(), "on", on_cfg, -10.0, &script).await;
    let (echo_off, echo_on) = (off.mean_db(Phase::Far, 2.0), on.mean_db(Phase::Far, 2.0));
    let (dt, near) = (on.mean_db(Phase::DoubleTalk, 1.0), on.mean_db(Phase::Near, 1.0));
    let near_off = off.mean_db(Phase::Near, 1.0);
    let (gap_off, gap_on) =
        (off.sent_quantile_db(Phase::Noise, 1.0, 0.25), on.sent_quantile_db(Phase::Noise, 1.0, 0.25));
    println!(
        "echo {echo_off:.1} dBFS off, {echo_on:.1} on; near end alone {near_off:.1} off, {near:.1} on; \
         double talk {dt:.1} on; noise in pauses (as sent) {gap_off:.1} off, {gap_on:.1} on"
    );
    // Off: the echo comes back (the path works and the switch leaves it alone).
    assert!(echo_off > -35.0, "without processing the echo is heard: {echo_off:.1} dBFS");
    assert!(echo_off - echo_on >= 20.0, "echo removed: {echo_off:.1} -> {echo_on:.1} dBFS");
    assert!(near > near_off - 6.0, "the near end alone gets through: {near_off:.1} -> {near:.1} dBFS");
    assert!((dt - near).abs() <= 4.0, "the near end is kept in double talk: {dt:.1} vs {near:.1} dBFS alone");
    assert!(gap_off - gap_on >= 10.0, "noise in speech pauses reduced: {gap_off:.1} -> {gap_on:.1} dBFS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refusals_and_a_dead_server_are_clear_errors() {
    // Nobody listens on this port.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", dead.local_addr().unwrap());
    drop(dead);
    let err = Engine::start(EngineConfig::new(url, "r", "a")).await.unwrap_err();
    assert!(matches!(err, EngineError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("cannot reach the signaling server"));
    let err = Engine::start(EngineConfig::new("ftp://x", "r", "a")).await.unwrap_err();
    assert!(matches!(err, EngineError::BadUrl { .. }));

    let mut cfg = hearth_signal::Config::default();
    cfg.hub.max_room_size = 1;
    let server = Server::start(cfg).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let err = Engine::start(EngineConfig::new(server.url(), "room", "bob")).await.unwrap_err();
    match err {
        EngineError::JoinRefused { code, message } => {
            assert_eq!(code, ErrorCode::RoomFull);
            assert!(message.contains("full"));
        }
        other => panic!("{other}"),
    }
    a.engine.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_shown_in_step_with_the_audio_heard() {
    let _pa = hearth_testkit::PulseAudio::start().expect("pulseaudio");
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    // Bob plays Ada's audio on the (null) speaker and displays her video.
    let b = Peer::join_with(&server, "bob", |mut c| {
        c.speaker = Some(Some("pulseaudio:vsink".into()));
        c.deliver_frames = true;
        c
    })
    .await;
    all_connected(&[&a, &b]).await;
    let st = eventually(Duration::from_secs(30), "frames shown with audio playing", async || {
        // Five seconds of frames, so the figure is the call's and not its first moments'.
        b.from("ada").await.filter(|s| s.camera.av_offset.samples >= 150)
    })
    .await
    .unwrap();
    let shown = b.frames_shown.load(std::sync::atomic::Ordering::Relaxed);
    assert!(shown >= 150, "{shown} frames shown");
    // Bob's own camera is shown too (self view), counted apart.
    let own = b.own_frames_shown.load(std::sync::atomic::Ordering::Relaxed);
    assert!(own >= 100, "{own} own frames shown");
    // Without lip sync video would be shown ~40-60 ms before its audio is heard (the audio has a
    // 20 ms frame, a playout buffer and the device's buffer in its path; video has none). Sync
    // holds it until it is at most its lead (45 ms) ahead.
    let av = st.camera.av_offset;
    assert!(
        av.p50_ms < 51.0 && av.p95_ms < 60.0,
        "audio/video offset {av:?}; capture to decoded {:?}; packets lost {}, late {}, keyframe requests {}",
        st.camera.latency,
        st.camera.packets_lost,
        st.camera.packets_late,
        st.camera.keyframe_requests
    );
    assert!(!b.saw(|e| matches!(e, EngineEvent::DeviceError { .. })));
    a.engine.leave().await;
    b.engine.leave().await;
}

/// The figures a report compares are measured where they mean something: the achieved and the
/// sender's frame rate, PSNR against the regenerated source, audio latency through the playout
/// buffer (a virtual speaker, no device), lip sync at the outputs, call-average bitrate, and
/// what the peer reports receiving of ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_are_measured_at_the_outputs() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let listener = |mut c: EngineConfig| {
        c.virtual_speaker = true;
        c.deliver_frames = true;
        c
    };
    let a = Peer::join_with(&server, "ada", listener).await;
    let b = Peer::join_with(&server, "bob", listener).await;
    all_connected(&[&a, &b]).await;
    let st = eventually(Duration::from_secs(30), "3 s of media played and shown", async || {
        b.from("ada").await.filter(|s| s.lip_sync_skew.samples >= 60 && s.audio.playout_latency.samples >= 12)
    })
    .await
    .unwrap();
    let (cam, audio) = (&st.camera, &st.audio);
    assert!((20.0..=35.0).contains(&cam.fps_avg), "achieved {} fps", cam.fps_avg);
    let sender_fps = cam.sender_fps.unwrap();
    assert!((29.0..=31.0).contains(&sender_fps), "sender at {sender_fps} fps");
    let audio_rate = audio.sender_fps.unwrap();
    assert!((49.0..=51.0).contains(&audio_rate), "{audio_rate} audio packets/s");
    let psnr = cam.psnr_db.unwrap();
    assert!(psnr > 30.0 && cam.psnr_samples >= 5, "PSNR {psnr} dB over {} frames", cam.psnr_samples);
    // Played audio has been through the playout buffer: later than decoded, by less than it holds.
    let (played, decoded) = (audio.playout_latency.p50_ms, audio.latency.p50_ms);
    assert!(played > decoded && played < decoded + 60.0, "played {played} ms, decoded {decoded} ms");
    // Shown frames are never late against their audio and at most the sync lead (45 ms) early,
    // measured at the outputs (6.5 ms off before the Opus lookahead was counted).
    let skew = st.lip_sync_skew;
    let signed = st.lip_sync_skew_p50_ms.unwrap();
    assert!((-48.0..3.0).contains(&signed), "signed skew p50 {signed} ms");
    assert!(skew.p50_ms < 48.0 && skew.p95_ms < 70.0, "skew {skew:?}");
    // Bitrate over the call, not since the last snapshot: two snapshots in a row agree.
    let again = b.from("ada").await.unwrap();
    assert!(again.received_kbps_avg > 100.0, "{} kbit/s", again.received_kbps_avg);
    // Ada's receiver reports about bob's streams.
    let out = b.from("ada").await.unwrap().outbound;
    assert_eq!(out.iter().filter_map(|o| o.kind).collect::<Vec<_>>(), [TrackKind::Audio, TrackKind::Camera]);
    for o in &out {
        let got = o.peer_received_packets.unwrap();
        assert!(
            got * 10 >= o.packets_sent_at_report * 9 && o.packets_sent >= o.packets_sent_at_report,
            "{o:?}"
        );
    }
    let enc = b.engine.encoders().await.unwrap();
    let video = enc.iter().find(|e| e.kind == TrackKind::Camera).unwrap();
    assert_eq!((video.codec, video.width, video.height, video.fps), ("H.264", W, H, 30.0));
    assert!(video.profile.as_deref().unwrap().starts_with("Constrained Baseline"), "{video:?}");
    a.engine.leave().await;
    b.engine.leave().await;
}

/// A server config for tests that stop it and start another on the same address: clients are
/// told to come back after `retry_after`, and shutdown does not wait long.
fn restartable(retry_after: Duration) -> hearth_signal::Config {
    hearth_signal::Config {
        shutdown_retry_after: retry_after,
        drain_timeout: Duration::from_secs(1),
        ..hearth_signal::Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signaling_outage_keeps_media_flowing_and_the_call_recovers() {
    let cfg = restartable(Duration::from_millis(200));
    let server = Server::start(cfg.clone()).await.unwrap();
    let addr = server.addr.to_string();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    decoded(&b, "ada", 10, 10).await;

    // The server goes away (restart): media goes on peer to peer meanwhile.
    server.shutdown().await;
    eventually(WAIT, "signaling lost", async || {
        b.saw(|e| matches!(e, EngineEvent::SignalingLost { .. })).then_some(())
    })
    .await
    .unwrap();
    let before = b.from("ada").await.unwrap().camera.frames_decoded;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let during = b.from("ada").await.unwrap().camera.frames_decoded;
    assert!(during > before + 10, "media stopped with the signaling server: {before} -> {during}");

    // A new server on the same address: both reconnect; the old sessions are unknown there, so
    // they join afresh and the call is rebuilt.
    let server2 = Server::start_at(&addr, cfg).await.unwrap();
    for p in [&a, &b] {
        eventually(WAIT, "signaling restored", async || {
            p.saw(|e| matches!(e, EngineEvent::SignalingRestored)).then_some(())
        })
        .await
        .unwrap();
    }
    eventually(WAIT, "media after the rejoin", async || {
        let s = b.engine.stats().await.ok()?;
        s.iter().any(|s| s.name == "ada" && s.connected && s.camera.frames_decoded > 10).then_some(())
    })
    .await
    .unwrap();
    a.engine.leave().await;
    b.engine.leave().await;
    server2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_signaling_connection_resumes_and_offline_changes_arrive() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    // Ada reaches the server through a relay the test can cut; Bob connects directly.
    let proxy = hearth_testkit::CuttableProxy::start(server.addr).await.unwrap();
    let a = Peer::join_url(proxy.url(), "ada", |c| c).await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    let ada_id = a.engine.peer_id().clone();

    proxy.set_blocked(true);
    proxy.cut_all();
    eventually(WAIT, "ada notices", async || {
        a.saw(|e| matches!(e, EngineEvent::SignalingLost { .. })).then_some(())
    })
    .await
    .unwrap();
    // While offline Ada mutes and says something.
    a.engine.command(Command::SetAudioMuted(true)).unwrap();
    a.engine.command(Command::Chat { text: "sent while offline".into(), to: None }).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!media_seen(&b, "ada", |m| m.audio_muted), "the mute cannot have reached bob yet");
    assert!(!a.saw(|e| matches!(e, EngineEvent::SignalingRestored)));
    proxy.set_blocked(false);
    // She resumes: same peer id, the link was never torn down, and Bob learns both.
    eventually(WAIT, "ada back", async || {
        a.saw(|e| matches!(e, EngineEvent::SignalingRestored)).then_some(())
    })
    .await
    .unwrap();
    eventually(WAIT, "bob sees ada muted", async || media_seen(&b, "ada", |m| m.audio_muted).then_some(()))
        .await
        .unwrap();
    eventually(WAIT, "bob gets the chat", async || {
        b.saw(|e| matches!(e, EngineEvent::Call(CallEvent::Chat(m)) if m.text == "sent while offline" && m.from == ada_id)).then_some(())
    })
    .await
    .unwrap();
    assert!(!b.saw(|e| matches!(e, EngineEvent::Call(CallEvent::PeerLeft { .. }))), "ada must not have left");
    // Video never stopped.
    let before = b.from("ada").await.unwrap().camera.frames_decoded;
    grows_past(&b, "ada", "video still flowing", before + 10, |s| s.camera.frames_decoded).await;
    a.engine.leave().await;
    b.engine.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_camera_mid_call_changes_what_peers_decode() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    decoded(&b, "ada", 10, 10).await;
    a.engine
        .command(Command::SwitchCamera(VideoSpec::Synthetic { width: 640, height: 360, fps: 30.0 }))
        .unwrap();
    let st = eventually(WAIT, "the new camera's frames", async || {
        b.from("ada").await.filter(|s| s.camera.width == 640)
    })
    .await
    .unwrap();
    assert_eq!(st.camera.height, 360);
    let before = st.camera.frames_decoded;
    grows_past(&b, "ada", "frames keep coming", before + 10, |s| s.camera.frames_decoded).await;
    // Audio can be switched the same way (here to the same synthetic source).
    a.engine.command(Command::SwitchMicrophone(AudioSpec::Synthetic)).unwrap();
    let audio = b.from("ada").await.unwrap().audio.frames_decoded;
    grows_past(&b, "ada", "audio keeps coming", audio + 20, |s| s.audio.frames_decoded).await;
    a.engine.leave().await;
    b.engine.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_can_be_added_to_an_audio_only_participant() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join_with(&server, "ada", |mut c| {
        c.camera = None;
        c
    })
    .await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    eventually(WAIT, "audio from ada", async || b.from("ada").await.filter(|s| s.audio.frames_decoded > 20))
        .await
        .unwrap();
    assert!(media_seen(&b, "ada", |m| m.video_off));
    assert_eq!(b.from("ada").await.unwrap().camera.frames_decoded, 0);
    a.engine.command(Command::SwitchCamera(VideoSpec::Synthetic { width: W, height: H, fps: 30.0 })).unwrap();
    decoded(&b, "ada", 10, 0).await;
    eventually(WAIT, "bob sees ada's camera on", async || {
        media_seen(&b, "ada", |m| !m.video_off).then_some(())
    })
    .await
    .unwrap();
    a.engine.leave().await;
    b.engine.leave().await;
}

/// Messages written to a socket that is dead but not yet noticed count as sent; after the
/// resume the server's `last_cseq` says what it missed and exactly that is sent again (once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_lost_on_a_dead_socket_are_resent_exactly_once_after_the_resume() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let proxy = hearth_testkit::CuttableProxy::start(server.addr).await.unwrap();
    let a = Peer::join_url(proxy.url(), "ada", |c| c).await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    let ada_id = a.engine.peer_id().clone();
    let chats_from_ada = |text: &str| {
        b.log
            .lock()
            .unwrap()
            .iter()
            .filter(
                |e| matches!(e, EngineEvent::Call(CallEvent::Chat(m)) if m.text == text && m.from == ada_id),
            )
            .count()
    };
    a.engine.command(Command::Chat { text: "before".into(), to: None }).unwrap();
    eventually(WAIT, "bob gets the first chat", async || (chats_from_ada("before") == 1).then_some(()))
        .await
        .unwrap();

    // The network dies without either end noticing: Ada's writes succeed and go nowhere.
    proxy.set_stalled(true);
    a.engine.command(Command::Chat { text: "into the void 1".into(), to: None }).unwrap();
    a.engine.command(Command::SetAudioMuted(true)).unwrap();
    a.engine.command(Command::Chat { text: "into the void 2".into(), to: None }).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(chats_from_ada("into the void 1"), 0, "nothing can get through a stalled network");
    assert!(!a.saw(|e| matches!(e, EngineEvent::SignalingLost { .. })), "the drop must be unnoticed so far");
    // Then the connection breaks for good; Ada reconnects and resumes.
    proxy.set_stalled(false);
    proxy.cut_all();
    eventually(WAIT, "ada back", async || {
        a.saw(|e| matches!(e, EngineEvent::SignalingRestored)).then_some(())
    })
    .await
    .unwrap();
    eventually(WAIT, "bob gets what was lost", async || {
        (chats_from_ada("into the void 1") == 1 && chats_from_ada("into the void 2") == 1).then_some(())
    })
    .await
    .unwrap();
    eventually(WAIT, "bob sees ada muted", async || media_seen(&b, "ada", |m| m.audio_muted).then_some(()))
        .await
        .unwrap();
    // Nothing the server already had goes again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(chats_from_ada("before"), 1);
    assert_eq!(chats_from_ada("into the void 1"), 1);
    a.engine.leave().await;
    b.engine.leave().await;
}

/// A resume the server refuses (it restarted and forgot the session) must not lose what the
/// person said meanwhile: it goes to the room after the fresh join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_typed_while_the_server_restarts_reaches_the_room_after_a_fresh_join() {
    let cfg = restartable(Duration::from_millis(300));
    let server = Server::start(cfg.clone()).await.unwrap();
    let addr = server.addr.to_string();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    server.shutdown().await;
    eventually(WAIT, "signaling lost", async || {
        a.saw(|e| matches!(e, EngineEvent::SignalingLost { .. })).then_some(())
    })
    .await
    .unwrap();
    a.engine.command(Command::Chat { text: "typed during the restart".into(), to: None }).unwrap();
    let _server2 = Server::start_at(&addr, cfg).await.unwrap();
    eventually(WAIT, "bob gets the chat from ada's new session", async || {
        b.saw(|e| {
            matches!(e, EngineEvent::Call(CallEvent::Chat(m)) if m.text == "typed during the restart" && m.from_name == "ada")
        })
        .then_some(())
    })
    .await
    .unwrap();
    assert!(
        !a.saw(|e| matches!(e, EngineEvent::Call(CallEvent::ServerError { code: ErrorCode::NotJoined, .. }))),
        "nothing may be sent before the welcome"
    );
    a.engine.leave().await;
    b.engine.leave().await;
}

/// A peer whose offer has no codec Hearth can use gets a `peer_error` it can show, instead of a
/// call that silently never starts; the Hearth side does not loop re-offering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offer_without_h264_is_answered_with_a_peer_error() {
    use futures_util::{SinkExt, StreamExt};
    use hearth_proto::{ClientMessage, Join, ServerMessage, decode_server, encode};
    use tokio_tungstenite::tungstenite::Message;
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url()).await.unwrap();
    ws.send(Message::Text(encode(&ClientMessage::Join(Join::new("room", "vp8-only"))).into())).await.unwrap();
    let ada_id = a.engine.peer_id().clone();
    let vp8_offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
        a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=setup:actpass\r\na=rtpmap:96 VP8/90000\r\n";
    let mut errors = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut offered = false;
    while let Ok(Some(Ok(frame))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(t) = frame else { continue };
        match decode_server(&t).unwrap() {
            ServerMessage::Welcome(_) if !offered => {
                offered = true;
                let offer = ClientMessage::Offer { to: ada_id.clone(), sdp: vp8_offer.into() };
                ws.send(Message::Text(encode(&offer).into())).await.unwrap();
            }
            ServerMessage::PeerError { from, code, message } => errors.push((from, code, message)),
            _ => {}
        }
    }
    assert_eq!(errors.len(), 1, "exactly one peer_error, no re-offer loop: {errors:?}");
    let (from, code, message) = &errors[0];
    assert_eq!(from, &ada_id);
    assert_eq!(code, "no_common_codec");
    assert!(message.contains("no H.264") && message.contains("VP8"), "{message}");
    a.engine.leave().await;
}

/// A newcomer's offer carries only its own tracks (one video m-line); a member already sharing
/// its screen has two video tracks and must offer the one left out itself. Before, the newcomer
/// got whichever of camera and screen webrtc-rs matched to its m-line, never both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_gets_camera_and_screen_of_a_member_already_sharing() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    a.engine
        .command(Command::StartScreenShare(VideoSpec::SyntheticScreen { width: 640, height: 360, fps: 10.0 }))
        .unwrap();
    // The share is on before anyone else arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    let both = eventually(WAIT, "camera and screen from ada", async || {
        b.from("ada").await.filter(|s| s.camera.frames_decoded >= 30 && s.screen.frames_decoded >= 10)
    })
    .await;
    let st = match both {
        Ok(st) => st,
        Err(e) => {
            let s = b.from("ada").await.map(|s| (s.camera.frames_decoded, s.screen.frames_decoded));
            panic!("{e}: (camera, screen) frames decoded: {s:?}");
        }
    };
    assert_eq!((st.camera.width, st.camera.height), (W, H));
    assert_eq!((st.screen.width, st.screen.height), (640, 360));
    assert!(media_seen(&b, "ada", |m| m.screen_sharing));
    // And the other way round nothing is missing either.
    decoded(&a, "bob", 10, 10).await;
    a.engine.leave().await;
    b.engine.leave().await;
}

/// Payloads a hostile peer might send in place of its video: each batch (one frame's packets)
/// gets one case, keeping the real sequence numbers and timestamps.
fn craft_malicious(case: usize, batch: &mut [rtc::rtp::Packet], rng: &mut u64) {
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                *rng as u8
            })
            .collect()
    };
    let n = batch.len();
    for (i, p) in batch.iter_mut().enumerate() {
        let last = i + 1 == n;
        let payload: Vec<u8> = match case % 10 {
            // The STAP-A whose last length field is cut short (crashed rtc's depacketizer).
            0 => vec![0x78, 0x00, 0x01, 0x41, 0x00],
            // An FU-A run that starts and never ends.
            1 => [&[0x7c, 0x85, 0x88][..], &random(500)].concat(),
            // FU-A middles and ends with no start.
            2 => [&[0x7c, if last { 0x45 } else { 0x05 }][..], &random(300)].concat(),
            // Lengths far beyond the packet.
            3 => vec![0x78, 0xff, 0xff, 0x67, 0x42, 0x00],
            4 => [&[0x78, 0x00, 0x02, 0x67, 0x42, 0xea, 0x60][..], &random(40)].concat(),
            // Random bytes of random length.
            5 => {
                let len =
                    usize::from(random(2).iter().fold(0u16, |a, b| (a << 8) | u16::from(*b)) % 1200) + 1;
                random(len)
            }
            // Nothing at all.
            6 => Vec::new(),
            // Interleaved-mode and reserved types.
            7 => [&[[0x19, 0x1a, 0x1b, 0x1d, 0x1e, 0x00][i % 6], 0x85][..], &random(50)].concat(),
            // A structurally complete "keyframe" of garbage: forged SPS/PPS and IDR.
            8 => {
                let params =
                    [&[0x78, 0x00, 0x06, 0x67][..], &random(5), &[0x00, 0x04, 0x68], &random(3)].concat();
                let idr = [&[0x65, 0xff][..], &random(800)].concat();
                match (i, n) {
                    (0, 1) => [&params[..], &(idr.len() as u16).to_be_bytes(), &idr].concat(),
                    (0, _) => params,
                    _ => idr,
                }
            }
            // Real payloads but no marker bit anywhere.
            _ => {
                p.header.marker = false;
                continue;
            }
        };
        p.payload = payload.into();
    }
}

/// A room member sends crafted, malformed video for a while (truncated STAP-A, broken FU-A
/// runs, huge lengths, random bytes, empty payloads, forged keyframes): nobody crashes, the
/// honest peers keep decoding each other, and the rogue's video comes back once it behaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_video_from_a_rogue_peer_is_survived() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let evil = Arc::new(AtomicBool::new(false));
    let crafted = Arc::new(AtomicU64::new(0));
    let hook = {
        let (evil, crafted) = (evil.clone(), crafted.clone());
        let rng = Arc::new(Mutex::new(0x9e37_79b9_7f4a_7c15u64));
        hearth_engine::RtpRewrite(Arc::new(move |kind, batch| {
            if kind == hearth_engine::TrackKind::Camera && evil.load(Ordering::Relaxed) {
                let case = crafted.fetch_add(1, Ordering::Relaxed) as usize;
                craft_malicious(case, batch, &mut rng.lock().unwrap());
            }
        }))
    };
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    let r = Peer::join_with(&server, "rex", |mut c| {
        c.rewrite_rtp = Some(hook);
        c
    })
    .await;
    all_connected(&[&a, &b, &r]).await;
    for rx in [&a, &b] {
        decoded(rx, "rex", 20, 20).await;
    }
    decoded(&a, "bob", 20, 20).await;

    evil.store(true, Ordering::Relaxed);
    let bob_before = a.from("bob").await.unwrap().camera.frames_decoded;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let bob_during = a.from("bob").await.unwrap().camera.frames_decoded;
    let rex_during: Vec<PeerStats> = [a.from("rex").await.unwrap(), b.from("rex").await.unwrap()].into();
    evil.store(false, Ordering::Relaxed);
    let sent = crafted.load(Ordering::Relaxed);
    assert!(sent >= 40, "only {sent} crafted frames went out");
    // The honest pair never stopped.
    assert!(bob_during >= bob_before + 50, "ada decoded bob {bob_before} -> {bob_during} meanwhile");
    for (rx, st) in [&a, &b].into_iter().zip(&rex_during) {
        assert!(st.connected, "{} lost rex", rx.name);
        assert!(st.camera.keyframe_requests > 0, "{} never asked rex for a keyframe", rx.name);
        // Rex's video recovers (its receivers ask for a keyframe and get one).
        grows_past(rx, "rex", "rex's video back", st.camera.frames_decoded + 20, |s| s.camera.frames_decoded)
            .await;
        let now = rx.from("rex").await.unwrap();
        assert_eq!((now.camera.width, now.camera.height), (W, H));
    }
    // Bob too kept decoding ada throughout.
    grows_past(&b, "ada", "bob still decodes ada", 60, |s| s.camera.frames_decoded).await;
    for p in [a, b, r] {
        p.engine.leave().await;
    }
    server.shutdown().await;
}

/// The server drops messages over its rate limit without saying which: the engine keeps within
/// the limit the welcome announces, so a burst of chat all arrives, in order, and nothing is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_stays_within_the_rate_limit_and_all_arrive() {
    let server = Server::start(hearth_signal::Config {
        rate_per_sec: 10,
        rate_burst: 10,
        ..hearth_signal::Config::default()
    })
    .await
    .unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    // Let the link's own signaling (offers, candidates, reports) drain first.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ada_id = a.engine.peer_id().clone();
    for n in 0..30 {
        a.engine.command(Command::Chat { text: format!("burst {n}"), to: None }).unwrap();
    }
    let got = eventually(Duration::from_secs(15), "all 30 chats at bob", async || {
        let texts: Vec<String> = b
            .log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                EngineEvent::Call(CallEvent::Chat(m)) if m.from == ada_id => Some(m.text.clone()),
                _ => None,
            })
            .collect();
        (texts.len() >= 30).then_some(texts)
    })
    .await
    .unwrap();
    assert_eq!(got, (0..30).map(|n| format!("burst {n}")).collect::<Vec<_>>());
    assert!(
        !a.saw(|e| matches!(
            e,
            EngineEvent::Call(CallEvent::ServerError { code: ErrorCode::RateLimited, .. })
        )),
        "the server refused a message as rate limited"
    );
    a.engine.leave().await;
    b.engine.leave().await;
}

/// Our own camera, as a self view: frames from our own peer id, stamped by the synthetic
/// source in order, at most four held by the app at once, none while the camera is off; a
/// screen share shows too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_view_shows_our_frames_bounded_and_stops_with_the_camera_off() {
    use hearth_engine::DisplayFrame;
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let mut cfg = EngineConfig::new(server.url(), "room", "ada").synthetic(W, H, 30.0);
    cfg.deliver_frames = true;
    let (engine, mut rx) = Engine::start(cfg).await.unwrap();
    let me = engine.peer_id().clone();
    // Own frames arriving within `span`, kept (held) or released at once.
    async fn own_frames(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
        me: &hearth_proto::PeerId,
        span: Duration,
        hold: bool,
    ) -> (Vec<(TrackKind, u32)>, Vec<DisplayFrame>) {
        let (mut seen, mut held) = (Vec::new(), Vec::new());
        let deadline = tokio::time::Instant::now() + span;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
            if let EngineEvent::Frame { peer, kind, frame } = ev {
                assert_eq!(&peer, me, "alone in the room: every frame is ours");
                let stamp = hearth_media::marker::read_stamp(&frame.view()).expect("a stamped frame");
                seen.push((kind, stamp.frame));
                if hold {
                    held.push(frame);
                }
            }
        }
        (seen, held)
    }
    let (seen, _) = own_frames(&mut rx, &me, Duration::from_millis(1500), false).await;
    let camera: Vec<u32> = seen.iter().filter(|(k, _)| *k == TrackKind::Camera).map(|(_, n)| *n).collect();
    assert!(camera.len() >= 30, "{} own camera frames in 1.5 s at 30 fps", camera.len());
    assert!(camera.windows(2).all(|w| w[1] > w[0]), "in capture order: {camera:?}");

    // An app that holds frames gets no more than four of this stream until it lets go.
    let (seen, held) = own_frames(&mut rx, &me, Duration::from_millis(700), true).await;
    assert_eq!(seen.len(), DisplayFrame::MAX_IN_FLIGHT, "{seen:?}");
    assert_eq!((held[0].width, held[0].height), (W, H));
    drop(held);
    let (seen, _) = own_frames(&mut rx, &me, Duration::from_millis(500), false).await;
    assert!(seen.len() >= 10, "frames flow again once released: {}", seen.len());

    engine.command(Command::SetCameraOn(false)).unwrap();
    let _ = own_frames(&mut rx, &me, Duration::from_millis(300), false).await;
    let (seen, _) = own_frames(&mut rx, &me, Duration::from_millis(1000), false).await;
    assert!(seen.is_empty(), "{} own frames with the camera off", seen.len());
    engine.command(Command::SetCameraOn(true)).unwrap();
    let (seen, _) = own_frames(&mut rx, &me, Duration::from_millis(1500), false).await;
    assert!(seen.len() >= 10, "camera back on: {} frames", seen.len());

    engine
        .command(Command::StartScreenShare(VideoSpec::SyntheticScreen { width: 640, height: 360, fps: 10.0 }))
        .unwrap();
    let (seen, _) = own_frames(&mut rx, &me, Duration::from_millis(1500), false).await;
    let screen = seen.iter().filter(|(k, _)| *k == TrackKind::Screen).count();
    assert!(screen >= 5, "{screen} own screen frames");
    engine.leave().await;
}

/// Everyone's audio level every 100 ms: the synthetic tone bursts make both peers "speaking";
/// muted, our own level is still measured (the app can say "you are muted") but the peer
/// hears, and so shows, nothing of us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_levels_report_everyone_and_our_voice_while_muted() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    all_connected(&[&a, &b]).await;
    let (a_id, b_id) = (a.engine.peer_id().clone(), b.engine.peer_id().clone());
    // The last five reports of `p` about `who` (None: itself), newest first. The bursts last
    // 20 ms every 200 ms: every other 100 ms report has silence, "speaking" bridges it.
    let recent = |p: &Peer, who: Option<&hearth_proto::PeerId>| -> Vec<AudioLevel> {
        let levels = p.levels.lock().unwrap();
        levels
            .iter()
            .rev()
            .take(5)
            .filter_map(|(_, l)| l.iter().find(|x| x.peer.as_ref() == who).cloned())
            .collect()
    };
    let speaking =
        |l: &[AudioLevel]| l.len() == 5 && l.iter().all(|x| x.speaking) && l.iter().any(|x| x.level > 0.6);
    for (p, other) in [(&a, &b_id), (&b, &a_id)] {
        eventually(WAIT, "the other peer speaking", async || speaking(&recent(p, Some(other))).then_some(()))
            .await
            .unwrap();
        let mine = recent(p, None);
        assert!(speaking(&mine), "{mine:?}");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    {
        // Every 100 ms, ours first.
        let levels = a.levels.lock().unwrap();
        let recent: Vec<_> = levels.iter().rev().take(11).collect();
        let span = recent[0].0.duration_since(recent[10].0);
        assert!(span >= Duration::from_millis(800) && span <= Duration::from_millis(1300), "{span:?}");
        assert!(recent.iter().all(|(_, l)| l.len() == 2 && l[0].peer.is_none()));
    }

    a.engine.command(Command::SetAudioMuted(true)).unwrap();
    eventually(WAIT, "bob sees ada muted", async || media_seen(&b, "ada", |m| m.audio_muted).then_some(()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let since = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let of = |p: &Peer, who: Option<&hearth_proto::PeerId>| -> Vec<AudioLevel> {
        let levels = p.levels.lock().unwrap();
        levels
            .iter()
            .filter(|(at, _)| *at >= since)
            .filter_map(|(_, l)| l.iter().find(|x| x.peer.as_ref() == who).cloned())
            .collect()
    };
    let heard = of(&b, Some(&a_id));
    assert!(heard.len() >= 8, "{heard:?}");
    assert!(heard.iter().all(|l| l.level == 0.0 && !l.speaking), "bob hears muted ada: {heard:?}");
    let mine = of(&a, None);
    assert!(mine.iter().any(|l| l.speaking && l.level > 0.5), "ada's own voice while muted: {mine:?}");
    a.engine.leave().await;
    b.engine.leave().await;
}

/// Both ends of a link see each other's certificate fingerprints crosswise, a host pair over
/// UDP on loopback, and compute the same safety code, which another link does not share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_report_fingerprints_crosswise_and_the_selected_candidates() {
    let server = Server::start(hearth_signal::Config::default()).await.unwrap();
    let a = Peer::join(&server, "ada").await;
    let b = Peer::join(&server, "bob").await;
    let c = Peer::join(&server, "cy").await;
    all_connected(&[&a, &b, &c]).await;
    let ab = eventually(WAIT, "ada's link to bob secured", async || {
        a.from("bob").await.filter(|s| s.local_candidate.is_some() && s.remote_fingerprint.is_some())
    })
    .await
    .unwrap();
    let ba = eventually(WAIT, "bob's link to ada secured", async || {
        b.from("ada").await.filter(|s| s.local_candidate.is_some() && s.remote_fingerprint.is_some())
    })
    .await
    .unwrap();
    let fp = |s: &Option<String>| s.clone().expect("a fingerprint");
    let (a_local, a_remote) = (fp(&ab.local_fingerprint), fp(&ab.remote_fingerprint));
    assert!(a_local.starts_with("sha-256 ") && a_local.len() == 8 + 32 * 3 - 1, "{a_local}");
    assert_ne!(a_local, a_remote, "two certificates");
    assert_eq!(a_local, fp(&ba.remote_fingerprint));
    assert_eq!(a_remote, fp(&ba.local_fingerprint));
    for s in [&ab, &ba] {
        assert_eq!(s.local_candidate.as_deref(), Some("host"), "{s:?}");
        // The peer's candidate may be learnt from its checks before its trickled candidate.
        assert!(matches!(s.remote_candidate.as_deref(), Some("host" | "prflx")), "{:?}", s.remote_candidate);
        assert_eq!(s.candidate_protocol.as_deref(), Some("udp"));
    }
    let code_at_ada = hearth_engine::safety_code(&a_local, &a_remote);
    let code_at_bob = hearth_engine::safety_code(&fp(&ba.local_fingerprint), &fp(&ba.remote_fingerprint));
    assert_eq!(code_at_ada, code_at_bob);
    let ac = eventually(WAIT, "ada's link to cy secured", async || {
        a.from("cy").await.filter(|s| s.remote_fingerprint.is_some() && s.local_fingerprint.is_some())
    })
    .await
    .unwrap();
    let code_ada_cy = hearth_engine::safety_code(&fp(&ac.local_fingerprint), &fp(&ac.remote_fingerprint));
    assert_ne!(code_ada_cy, code_at_ada, "another link, another code");
    for p in [a, b, c] {
        p.engine.leave().await;
    }
}
