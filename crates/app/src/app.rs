//! The call controller: turns the page's commands into engine commands and the engine's events
//! into the [`View`] the page renders. No window here: the Tauri shell gives it an event sink.

use crate::api::*;
use crate::diagnostics::DiagLog;
use crate::embedded::{self, Embedded};
use crate::errors;
use crate::frames::{FrameHub, TileFrame};
use crate::settings::SettingsStore;
use crate::test_peer::TestParticipant;
use hearth_engine::{
    AudioSpec, CallEvent, Command, Engine, EngineConfig, EngineEvent, LinkState, TrackKind, VideoSpec,
};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where UI events go (the Tauri shell emits them to the page; tests collect them).
pub type Sink = Arc<dyn Fn(UiEvent) + Send + Sync>;

/// Video sizes the app asks for.
pub const CAMERA_SIZE: (u32, u32, u32) = (1280, 720, 30);
/// The test pattern camera and the test participant send 640x360, gentle on small machines.
pub const SYNTHETIC_SIZE: (u32, u32, f32) = (640, 360, 30.0);

/// Chat messages kept for the page (older ones are dropped from memory, not from the server).
const CHAT_KEEP: usize = 1000;

#[derive(Debug, Clone)]
struct PeerState {
    view: PeerView,
    last_loud: Option<Instant>,
    link_was_connected: bool,
}

#[derive(Debug, Clone, Default)]
struct MeState {
    view: Option<MeView>,
    last_loud: Option<Instant>,
}

#[derive(Debug)]
struct State {
    rev: u64,
    phase: Phase,
    room: String,
    server_label: String,
    embedded: bool,
    me: MeState,
    peers: Vec<PeerState>,
    notices: Vec<Notice>,
    next_notice: u64,
    invite: Option<String>,
    chat: Vec<ChatEntry>,
    /// The tile shown large: who spoke last (with a hold so it does not flicker).
    active: Option<(String, Instant)>,
    reconnect_attempt: u32,
}

impl State {
    fn view(&self, test_participant: bool) -> View {
        let active = self.active.as_ref().map(|(id, _)| id.clone());
        let mut peers: Vec<PeerView> = self.peers.iter().map(|p| p.view.clone()).collect();
        for p in &mut peers {
            p.active_speaker = active.as_deref() == Some(&p.peer_id);
        }
        let me = self.me.view.clone().map(|mut m| {
            m.active_speaker = active.as_deref() == Some("self");
            m
        });
        let presenter = if me.as_ref().is_some_and(|m| m.screen_sharing) {
            Some("self".to_string())
        } else {
            peers.iter().find(|p| p.screen_sharing).map(|p| p.peer_id.clone())
        };
        View {
            rev: self.rev,
            phase: self.phase.clone(),
            room: self.room.clone(),
            server_label: self.server_label.clone(),
            embedded: self.embedded,
            me,
            peers,
            presenter,
            notices: self.notices.clone(),
            test_participant,
            invite: self.invite.clone(),
        }
    }

    fn peer(&mut self, id: &str) -> Option<&mut PeerState> {
        self.peers.iter_mut().find(|p| p.view.peer_id == id)
    }

    fn name_of(&self, id: &str) -> Option<String> {
        if self.me.view.as_ref().is_some_and(|m| m.peer_id == id) {
            return self.me.view.as_ref().map(|m| m.name.clone());
        }
        self.peers.iter().find(|p| p.view.peer_id == id).map(|p| p.view.name.clone())
    }
}

/// A running call.
#[derive(Debug)]
struct CallHandle {
    engine: Arc<Engine>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server_url: String,
    password: Option<String>,
    room: String,
}

/// The pre-join preview (camera frames on tile "preview", microphone level events).
struct Preview {
    _video: Option<hearth_engine::preview::VideoPreview>,
    _level_task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Preview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Preview")
    }
}

/// The app's core. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("App")
    }
}

struct Inner {
    sink: Sink,
    hub: FrameHub,
    frame_url: Mutex<String>,
    settings: SettingsStore,
    state: Mutex<State>,
    call: tokio::sync::Mutex<Option<CallHandle>>,
    /// The engine of the running call, for synchronous commands.
    engine: Mutex<Option<Arc<Engine>>>,
    embedded: tokio::sync::Mutex<Option<Embedded>>,
    embedded_port: u16,
    preview: Mutex<Option<Preview>>,
    test_peer: tokio::sync::Mutex<Option<TestParticipant>>,
    test_peer_id: Mutex<Option<String>>,
    diag: Mutex<DiagLog>,
    paint: Mutex<HashMap<String, TilePaint>>,
    pending_invite: Mutex<Option<Invite>>,
    automation: Option<String>,
    ui_ready: Mutex<Option<Instant>>,
    started: Instant,
}

/// How the app was started.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub config_dir: Option<std::path::PathBuf>,
    pub invite: Option<Invite>,
    /// "self-test" or "bench": the page reports what it paints; nothing else changes.
    pub automation: Option<String>,
    /// Port of the embedded server (default [`embedded::port`]).
    pub embedded_port: Option<u16>,
    /// When the process started (first thing in `main`), for the launch → pre-join figure;
    /// default: when `App::start` runs.
    pub launched: Option<Instant>,
}

impl App {
    /// Create the core and start the frame server (needs a tokio runtime).
    pub async fn start(opts: AppOptions, sink: Sink) -> std::io::Result<App> {
        let dir = opts.config_dir.unwrap_or_else(crate::settings::config_dir);
        let hub = FrameHub::new();
        let (url, _task) = hub.serve().await?;
        let inner = Inner {
            sink,
            hub,
            frame_url: Mutex::new(url),
            settings: SettingsStore::new(&dir),
            state: Mutex::new(State {
                rev: 0,
                phase: Phase::Idle,
                room: String::new(),
                server_label: String::new(),
                embedded: true,
                me: MeState::default(),
                peers: Vec::new(),
                notices: Vec::new(),
                next_notice: 1,
                invite: None,
                chat: Vec::new(),
                active: None,
                reconnect_attempt: 0,
            }),
            call: tokio::sync::Mutex::new(None),
            engine: Mutex::new(None),
            embedded: tokio::sync::Mutex::new(None),
            embedded_port: opts.embedded_port.unwrap_or_else(embedded::port),
            preview: Mutex::new(None),
            test_peer: tokio::sync::Mutex::new(None),
            test_peer_id: Mutex::new(None),
            diag: Mutex::new(DiagLog::default()),
            paint: Mutex::new(HashMap::new()),
            pending_invite: Mutex::new(opts.invite),
            automation: opts.automation,
            ui_ready: Mutex::new(None),
            started: opts.launched.unwrap_or_else(Instant::now),
        };
        Ok(App { inner: Arc::new(inner) })
    }

    // ---- queries ------------------------------------------------------------------------

    pub fn info(&self) -> AppInfo {
        AppInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            protocol: hearth_proto::PROTOCOL_VERSION,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            automation: self.inner.automation.clone(),
        }
    }

    pub fn settings(&self) -> Settings {
        self.inner.settings.load()
    }

    pub fn save_settings(&self, s: &Settings) -> Result<(), UiError> {
        self.inner.settings.save(s).map_err(|e| {
            errors::ui(
                ErrorKind::Internal,
                "Settings could not be saved",
                "Check that your home folder is writable. The call works anyway.",
                format!("{}: {e}", self.inner.settings.path().display()),
            )
        })
    }

    pub fn frame_server(&self) -> FrameServerInfo {
        FrameServerInfo {
            url: self.inner.frame_url.lock().clone(),
            token: self.inner.hub.token().to_string(),
            header_bytes: crate::frames::HEADER_BYTES as u32,
        }
    }

    pub fn frame_hub(&self) -> &FrameHub {
        &self.inner.hub
    }

    pub fn view(&self) -> View {
        let tp = self.inner.test_peer_id.lock().is_some();
        self.inner.state.lock().view(tp)
    }

    pub fn chat(&self) -> Vec<ChatEntry> {
        self.inner.state.lock().chat.clone()
    }

    pub fn take_pending_invite(&self) -> Option<Invite> {
        self.inner.pending_invite.lock().take()
    }

    pub fn set_pending_invite(&self, inv: Invite) {
        *self.inner.pending_invite.lock() = Some(inv);
    }

    pub fn paint(&self) -> HashMap<String, TilePaint> {
        self.inner.paint.lock().clone()
    }

    /// The page's report of the frames it painted since its last report: merged into what is
    /// kept per tile, and the lip-sync display delay updated from it.
    pub fn report_paint(&self, tiles: Vec<TilePaint>) {
        let delay = {
            let mut p = self.inner.paint.lock();
            let reported = merge_paint(&mut p, tiles);
            display_delay(reported.iter().filter_map(|k| p.get(k)))
        };
        if let (Some(d), Some(e)) = (delay, self.engine()) {
            e.set_display_delay(d);
        }
    }

    pub fn ui_ready(&self) -> Duration {
        let mut r = self.inner.ui_ready.lock();
        let at = *r.get_or_insert_with(Instant::now);
        at - self.inner.started
    }

    pub fn ui_ready_after(&self) -> Option<Duration> {
        self.inner.ui_ready.lock().map(|at| at - self.inner.started)
    }

    pub fn ui_error(&self, message: &str, stack: &str) {
        tracing::error!("UI error: {message}\n{stack}");
        self.inner.diag.lock().event("ui_error", format!("{message} {stack}"));
    }

    pub fn devices(&self) -> Devices {
        crate::devices::list()
    }

    // ---- state plumbing -----------------------------------------------------------------

    fn emit(&self, ev: UiEvent) {
        (self.inner.sink)(ev);
    }

    /// Change the state and send the page the new view.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (r, view) = {
            let mut s = self.inner.state.lock();
            let r = f(&mut s);
            s.rev += 1;
            let tp = self.inner.test_peer_id.lock().is_some();
            (r, s.view(tp))
        };
        self.emit(UiEvent::View { view });
        r
    }

    fn set_phase(&self, phase: Phase) {
        self.inner.diag.lock().event("phase", format!("{phase:?}"));
        self.update(|s| s.phase = phase);
    }

    fn notice(&self, error: UiError) {
        self.inner.diag.lock().event("notice", format!("{}: {}", error.title, error.detail));
        self.update(|s| {
            // The same problem again replaces the old notice.
            s.notices.retain(|n| n.error.kind != error.kind || n.error.title != error.title);
            let id = s.next_notice;
            s.next_notice += 1;
            s.notices.push(Notice { id, error });
            if s.notices.len() > 8 {
                s.notices.remove(0);
            }
        });
    }

    pub fn dismiss_notice(&self, id: u64) {
        self.update(|s| s.notices.retain(|n| n.id != id));
    }

    // ---- preview ------------------------------------------------------------------------

    /// Show the camera on tile "preview" and the microphone level as events, for the
    /// pre-join screen. Replaces a running preview.
    pub fn start_preview(&self, camera: Option<String>, microphone: Option<String>, camera_on: bool, mic_on: bool) {
        self.stop_preview();
        let mut video = None;
        if camera_on {
            let spec = camera_spec(camera.as_deref());
            let hub = self.inner.hub.clone();
            match hearth_engine::preview::VideoPreview::start(spec, move |f| {
                hub.publish("preview", TileFrame::Own(f));
            }) {
                Ok(v) => video = Some(v),
                Err(e) => {
                    let err = device_error(TrackKind::Camera, classify(&e.to_string()), &e.to_string());
                    self.emit(UiEvent::PreviewError { error: err });
                }
            }
        }
        let mut level_task = None;
        if mic_on {
            match hearth_engine::preview::MicMeter::start(mic_spec(microphone.as_deref())) {
                Ok(meter) => {
                    let app = self.clone();
                    level_task = Some(tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_millis(50));
                        loop {
                            tick.tick().await;
                            app.emit(UiEvent::PreviewLevel { level: meter.level() });
                        }
                    }));
                }
                Err(e) => {
                    let err = device_error(TrackKind::Audio, classify(&e.to_string()), &e.to_string());
                    self.emit(UiEvent::PreviewError { error: err });
                }
            }
        }
        *self.inner.preview.lock() = Some(Preview { _video: video, _level_task: level_task });
    }

    pub fn stop_preview(&self) {
        if let Some(p) = self.inner.preview.lock().take() {
            if let Some(t) = &p._level_task {
                t.abort();
            }
            drop(p);
        }
        self.inner.hub.clear("preview");
    }

    pub async fn test_speaker(&self, speaker: Option<String>) -> Result<(), UiError> {
        hearth_engine::preview::play_test_sound(speaker).await.map_err(|e| {
            errors::ui(
                ErrorKind::NoSpeaker,
                "No sound could be played",
                "Connect headphones or speakers and pick them in the speaker list, then test again.",
                e.to_string(),
            )
        })
    }

    // ---- joining and leaving ------------------------------------------------------------

    /// Join a call; resolves once in the call (the page sees each phase meanwhile).
    pub async fn join(&self, req: JoinRequest) -> Result<(), UiError> {
        let mut call = self.inner.call.lock().await;
        if call.is_some() {
            return Err(errors::ui(
                ErrorKind::InvalidInput,
                "Already in a call",
                "Leave the current call first.",
                "",
            ));
        }
        let name = req.name.trim().to_string();
        let room = req.room.trim().to_string();
        if name.is_empty() || room.is_empty() {
            return Err(errors::ui(
                ErrorKind::InvalidInput,
                "Name and room are needed",
                "Type your name and the room to join.",
                "",
            ));
        }
        self.stop_preview();
        let _ = self.save_settings(&Settings {
            name: name.clone(),
            room: room.clone(),
            server: req.server.trim().to_string(),
            camera: req.camera.clone(),
            microphone: req.microphone.clone(),
            speaker: req.speaker.clone(),
            camera_on: req.camera_on,
            mic_on: req.mic_on,
            audio: req.audio,
        });
        self.inner.diag.lock().clear_call();
        self.update(|s| {
            s.notices.clear();
            s.peers.clear();
            s.chat.clear();
            s.me = MeState::default();
            s.room = room.clone();
            s.invite = None;
            s.reconnect_attempt = 0;
        });
        let server = req.server.trim().to_string();
        let embedded = server.is_empty();
        let url = if embedded {
            self.set_phase(Phase::StartingServer);
            match self.ensure_embedded().await {
                Ok(u) => u,
                Err(e) => {
                    self.set_phase(Phase::Failed { error: e.clone() });
                    return Err(e);
                }
            }
        } else {
            server.clone()
        };
        let label = if embedded { "Local server (this computer)".to_string() } else { redact_url(&server) };
        self.update(|s| {
            s.server_label = label.clone();
            s.embedded = embedded;
        });
        self.set_phase(Phase::Connecting { server: label.clone() });
        if let Err(e) = reachable(&url).await {
            let err = errors::from_engine(&e, embedded);
            self.set_phase(Phase::Failed { error: err.clone() });
            return Err(err);
        }
        self.set_phase(Phase::Joining);
        let mut cfg = EngineConfig::new(url.clone(), room.clone(), name.clone());
        cfg.password = req.password.clone().filter(|p| !p.is_empty());
        cfg.camera = Some(camera_spec(req.camera.as_deref()));
        cfg.microphone = Some(mic_spec(req.microphone.as_deref()));
        if req.speaker.as_deref() == Some(SYNTHETIC_DEVICE) {
            // The silent virtual speaker: audio is mixed and clocked as if played.
            cfg.speaker = None;
            cfg.virtual_speaker = true;
        } else {
            cfg.speaker = Some(req.speaker.clone());
        }
        cfg.start_camera_off = !req.camera_on;
        cfg.start_muted = !req.mic_on;
        cfg.processing = req.audio.engine_config();
        cfg.deliver_frames = true;
        let (engine, events) = match Engine::start(cfg).await {
            Ok(x) => x,
            Err(e) => {
                let err = errors::from_engine(&e, embedded);
                self.inner.diag.lock().event("join_failed", err.detail.clone());
                self.set_phase(Phase::Failed { error: err.clone() });
                return Err(err);
            }
        };
        let engine = Arc::new(engine);
        let my_id = engine.peer_id().to_string();
        let invite = crate::invite::format(if embedded { "" } else { &server }, &room);
        self.update(|s| {
            s.phase = Phase::InCall;
            s.invite = Some(invite);
            s.me.view = Some(MeView {
                peer_id: my_id.clone(),
                name: name.clone(),
                audio_muted: !req.mic_on,
                camera_on: req.camera_on,
                screen_sharing: false,
                hand_raised: false,
                level: 0.0,
                speaking: false,
                active_speaker: false,
                has_camera: true,
                has_microphone: true,
                camera_starting: req.camera_on,
                camera_tile: "self/camera".into(),
                screen_tile: "self/screen".into(),
            });
        });
        self.inner.diag.lock().event("joined", format!("room {room:?} as {my_id}"));
        *self.inner.engine.lock() = Some(engine.clone());
        let events_task = tokio::spawn(self.clone().run_events(events, my_id));
        let stats_task = tokio::spawn(self.clone().run_stats(engine.clone()));
        *call = Some(CallHandle {
            engine,
            tasks: vec![events_task, stats_task],
            server_url: url,
            password: req.password,
            room,
        });
        Ok(())
    }

    /// Start (or find) the embedded server; its `ws://` URL.
    async fn ensure_embedded(&self) -> Result<String, UiError> {
        let mut e = self.inner.embedded.lock().await;
        if let Some(x) = e.as_ref()
            && (x.owned || embedded::is_hearth(x.addr).await)
        {
            return Ok(x.url());
        }
        match Embedded::ensure(self.inner.embedded_port).await {
            Ok(x) => {
                let url = x.url();
                self.inner.diag.lock().event("embedded_server", format!("{} (ours: {})", x.addr, x.owned));
                *e = Some(x);
                Ok(url)
            }
            Err(err) => Err(errors::ui(
                ErrorKind::EmbeddedServerFailed,
                "The local server could not start",
                "Another program uses its port. Quit it, or set HEARTH_EMBEDDED_PORT to a free port, or enter a server address.",
                err.to_string(),
            )),
        }
    }

    /// Leave the call (if any) and return to the pre-join screen.
    pub async fn leave(&self) {
        self.leave_with("You left the call.").await;
    }

    async fn leave_with(&self, reason: &str) {
        self.remove_test_participant().await;
        let call = self.inner.call.lock().await.take();
        *self.inner.engine.lock() = None;
        if let Some(c) = call {
            for t in c.tasks {
                t.abort();
                let _ = t.await;
            }
            match Arc::try_unwrap(c.engine) {
                Ok(engine) => engine.leave().await,
                Err(shared) => {
                    // Someone still holds the engine for a moment (a stats or diagnostics
                    // request): ask it to leave; the last holder drops it.
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if shared.command(Command::Leave(tx)).is_ok() {
                        let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
                    }
                }
            }
            self.inner.diag.lock().event("left", reason.to_string());
        }
        self.inner.hub.clear_prefix("");
        self.inner.paint.lock().clear();
        self.update(|s| {
            s.phase = Phase::Left { reason: reason.into() };
            s.peers.clear();
            s.me = MeState::default();
            s.active = None;
            s.invite = None;
        });
    }

    /// Stop everything (app exit).
    pub async fn shutdown(&self) {
        self.stop_preview();
        self.leave_with("The app closed.").await;
        if let Some(e) = self.inner.embedded.lock().await.take() {
            e.stop().await;
        }
    }

    // ---- in-call commands ---------------------------------------------------------------

    fn command(&self, cmd: Command) -> Result<(), UiError> {
        let engine = self.inner.engine.lock().clone();
        let Some(engine) = engine else {
            return Err(errors::ui(ErrorKind::InvalidInput, "Not in a call", "Join a call first.", ""));
        };
        engine.command(cmd).map_err(|e| errors::from_engine(&e, false))
    }

    pub fn set_muted(&self, muted: bool) -> Result<(), UiError> {
        self.command(Command::SetAudioMuted(muted))?;
        self.update(|s| {
            if let Some(m) = s.me.view.as_mut() {
                m.audio_muted = muted;
            }
        });
        Ok(())
    }

    pub fn set_camera(&self, on: bool) -> Result<(), UiError> {
        self.command(Command::SetCameraOn(on))?;
        if !on {
            self.inner.hub.clear("self/camera");
        }
        self.update(|s| {
            if let Some(m) = s.me.view.as_mut() {
                m.camera_on = on;
                m.camera_starting = on;
            }
        });
        Ok(())
    }

    pub fn start_screen_share(&self, screen: Option<String>) -> Result<(), UiError> {
        let spec = match screen.as_deref() {
            Some(SYNTHETIC_DEVICE) => VideoSpec::SyntheticScreen { width: 1280, height: 720, fps: 15.0 },
            other => VideoSpec::Screen { id: other.map(str::to_string), fps: 15.0 },
        };
        self.command(Command::StartScreenShare(spec))?;
        self.update(|s| {
            if let Some(m) = s.me.view.as_mut() {
                m.screen_sharing = true;
            }
        });
        Ok(())
    }

    pub fn stop_screen_share(&self) -> Result<(), UiError> {
        self.command(Command::StopScreenShare)?;
        self.inner.hub.clear("self/screen");
        self.update(|s| {
            if let Some(m) = s.me.view.as_mut() {
                m.screen_sharing = false;
            }
        });
        Ok(())
    }

    pub fn send_chat(&self, text: String, to: Option<String>) -> Result<(), UiError> {
        let text = text.replace("\r\n", "\n");
        if text.trim().is_empty() {
            return Ok(());
        }
        if text.chars().count() > 4000 {
            return Err(errors::ui(
                ErrorKind::InvalidInput,
                "Message too long",
                "Messages can be up to 4000 characters. Split it in parts.",
                "",
            ));
        }
        // The server refuses control characters other than line feed and tab.
        let text: String = text.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect();
        let to = match to {
            Some(id) => Some(parse_peer(&id)?),
            None => None,
        };
        self.command(Command::Chat { text, to })
    }

    pub fn react(&self, emoji: String) -> Result<(), UiError> {
        self.command(Command::React(emoji))
    }

    pub fn raise_hand(&self, raised: bool) -> Result<(), UiError> {
        self.command(Command::RaiseHand(raised))?;
        self.update(|s| {
            if let Some(m) = s.me.view.as_mut() {
                m.hand_raised = raised;
            }
        });
        Ok(())
    }

    pub fn engine(&self) -> Option<Arc<Engine>> {
        self.inner.engine.lock().clone()
    }

    // ---- test participant ---------------------------------------------------------------

    pub async fn add_test_participant(&self) -> Result<(), UiError> {
        let (url, password, room) = {
            let call = self.inner.call.lock().await;
            let Some(c) = call.as_ref() else {
                return Err(errors::ui(ErrorKind::InvalidInput, "Not in a call", "Join a call first.", ""));
            };
            (c.server_url.clone(), c.password.clone(), c.room.clone())
        };
        let mut tp = self.inner.test_peer.lock().await;
        if tp.is_some() {
            return Ok(());
        }
        let p = TestParticipant::start(&url, &room, password).await.map_err(|e| {
            errors::ui(
                ErrorKind::Internal,
                "The test participant could not join",
                "Try again; if the room is full, there is no place for it.",
                e.to_string(),
            )
        })?;
        *self.inner.test_peer_id.lock() = Some(p.peer_id().to_string());
        self.inner.diag.lock().event("test_participant", format!("joined as {}", p.peer_id()));
        *tp = Some(p);
        drop(tp);
        self.update(|s| {
            let id = s.peers.iter().map(|p| p.view.peer_id.clone()).collect::<Vec<_>>();
            let _ = id;
        });
        self.mark_test_participant();
        Ok(())
    }

    fn mark_test_participant(&self) {
        let id = self.inner.test_peer_id.lock().clone();
        self.update(|s| {
            for p in &mut s.peers {
                p.view.is_test_participant = id.as_deref() == Some(p.view.peer_id.as_str());
            }
        });
    }

    pub async fn remove_test_participant(&self) {
        let tp = self.inner.test_peer.lock().await.take();
        if let Some(p) = tp {
            p.leave().await;
            *self.inner.test_peer_id.lock() = None;
            self.mark_test_participant();
        }
    }

    // ---- diagnostics --------------------------------------------------------------------

    /// Write the diagnostics JSON into `dir` (default: the config dir's `diagnostics/`).
    pub async fn save_diagnostics(&self, dir: Option<std::path::PathBuf>) -> Result<std::path::PathBuf, UiError> {
        let stats = match self.engine() {
            Some(e) => e.stats().await.ok(),
            None => None,
        };
        let json = crate::diagnostics::build(self, stats, &self.devices(), &self.inner.diag.lock());
        let dir = dir.unwrap_or_else(|| {
            self.inner.settings.path().parent().map(|p| p.join("diagnostics")).unwrap_or_else(std::env::temp_dir)
        });
        let name = format!("hearth-diagnostics-{}.json", hearth_media::now_us() / 1000);
        let path = dir.join(name);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            std::fs::write(&path, serde_json::to_vec_pretty(&json).map_err(std::io::Error::other)?)
        };
        write().map_err(|e| {
            errors::ui(
                ErrorKind::Internal,
                "Diagnostics could not be saved",
                "Check that the folder is writable and there is disk space.",
                format!("{}: {e}", dir.display()),
            )
        })?;
        Ok(path)
    }

    pub(crate) fn diag_snapshot(&self) -> serde_json::Value {
        let s = self.inner.state.lock();
        serde_json::json!({
            "phase": s.phase,
            "room": s.room,
            "server": s.server_label,
            "embedded": s.embedded,
            "peers": s.peers.iter().map(|p| serde_json::json!({
                "peer_id": p.view.peer_id, "name": p.view.name, "link": p.view.link,
                "audio_muted": p.view.audio_muted, "video_off": p.view.video_off,
                "screen_sharing": p.view.screen_sharing, "quality": p.view.quality,
                "error": p.view.error,
            })).collect::<Vec<_>>(),
            "notices": s.notices,
            "paint": *self.inner.paint.lock(),
        })
    }

    // ---- engine events ------------------------------------------------------------------

    async fn run_events(self, mut events: tokio::sync::mpsc::UnboundedReceiver<EngineEvent>, my_id: String) {
        while let Some(ev) = events.recv().await {
            match ev {
                EngineEvent::Frame { peer, kind, frame } => {
                    let tile = if peer.as_str() == my_id {
                        format!("self/{}", kind.id())
                    } else {
                        format!("{peer}/{}", kind.id())
                    };
                    if tile == "self/camera" {
                        let starting = self.inner.state.lock().me.view.as_ref().is_some_and(|m| m.camera_starting);
                        if starting {
                            self.update(|s| {
                                if let Some(m) = s.me.view.as_mut() {
                                    m.camera_starting = false;
                                }
                            });
                        }
                    }
                    self.inner.hub.publish(&tile, TileFrame::Engine(frame));
                }
                EngineEvent::AudioLevels(levels) => self.on_levels(&levels, &my_id),
                EngineEvent::Call(e) => self.on_call_event(e, &my_id),
                EngineEvent::DeviceError { kind, message, problem } => {
                    let err = device_error(kind, problem, &message);
                    self.update(|s| {
                        if let Some(m) = s.me.view.as_mut() {
                            match kind {
                                TrackKind::Camera => {
                                    m.has_camera = false;
                                    m.camera_on = false;
                                    m.camera_starting = false;
                                }
                                TrackKind::Audio => m.has_microphone = false,
                                TrackKind::Screen => m.screen_sharing = false,
                            }
                        }
                    });
                    self.notice(err);
                }
                EngineEvent::SignalingLost { retry_in } => {
                    let attempt = {
                        let mut s = self.inner.state.lock();
                        s.reconnect_attempt += 1;
                        s.reconnect_attempt
                    };
                    let at = hearth_media::now_us() as f64 / 1000.0 + retry_in.as_secs_f64() * 1000.0;
                    self.set_phase(Phase::Reconnecting { retry_at_ms: at, attempt });
                    // The instance that ran the local server may have quit: take it over.
                    if self.inner.state.lock().embedded {
                        let app = self.clone();
                        tokio::spawn(async move {
                            let _ = app.ensure_embedded().await;
                        });
                    }
                }
                EngineEvent::SignalingRestored => {
                    self.inner.state.lock().reconnect_attempt = 0;
                    self.set_phase(Phase::InCall);
                    self.emit(UiEvent::Toast { message: "Reconnected to the server.".into() });
                }
                EngineEvent::Ended { reason } => {
                    let app = self.clone();
                    tokio::spawn(async move { app.leave_with(&format!("The call ended: {reason}")).await });
                    return;
                }
            }
        }
    }

    fn on_levels(&self, levels: &[hearth_engine::AudioLevel], my_id: &str) {
        let now = Instant::now();
        self.update(|s| {
            for l in levels {
                match &l.peer {
                    None => {
                        if let Some(m) = s.me.view.as_mut() {
                            m.level = l.level;
                            m.speaking = l.speaking;
                            if l.speaking && !m.audio_muted {
                                s.me.last_loud = Some(now);
                            }
                        }
                    }
                    Some(id) if id.as_str() == my_id => {}
                    Some(id) => {
                        if let Some(p) = s.peer(id.as_str()) {
                            p.view.level = l.level;
                            p.view.speaking = l.speaking;
                            if l.speaking {
                                p.last_loud = Some(now);
                            }
                        }
                    }
                }
            }
            // Active speaker: the loudest one speaking now; kept 1.5 s after they stop, so the
            // highlight does not flicker between words.
            let mut best: Option<(String, f32)> = None;
            for p in &s.peers {
                if p.view.speaking && best.as_ref().is_none_or(|(_, l)| p.view.level > *l) {
                    best = Some((p.view.peer_id.clone(), p.view.level));
                }
            }
            if let Some(m) = &s.me.view
                && m.speaking
                && !m.audio_muted
                && best.as_ref().is_none_or(|(_, l)| m.level > *l)
            {
                best = Some(("self".into(), m.level));
            }
            match best {
                Some((id, _)) => s.active = Some((id, now)),
                None => {
                    if s.active.as_ref().is_some_and(|(_, t)| now.duration_since(*t) > Duration::from_millis(1500)) {
                        s.active = None;
                    }
                }
            }
        });
    }

    fn on_call_event(&self, e: CallEvent, my_id: &str) {
        self.inner.diag.lock().event("call", short_event(&e));
        match e {
            CallEvent::Joined { peers, resumed, .. } => {
                let tp = self.inner.test_peer_id.lock().clone();
                self.update(|s| {
                    if !resumed {
                        s.peers.clear();
                    }
                    for p in peers {
                        if p.id.as_str() == my_id || s.peer(p.id.as_str()).is_some() {
                            continue;
                        }
                        let is_tp = tp.as_deref() == Some(p.id.as_str());
                        s.peers.push(new_peer(&p, is_tp));
                    }
                });
            }
            CallEvent::PeerJoined(p) => {
                let tp = self.inner.test_peer_id.lock().clone();
                let name = p.name.clone();
                self.update(|s| {
                    if s.peer(p.id.as_str()).is_none() && s.peers.len() < 64 {
                        let is_tp = tp.as_deref() == Some(p.id.as_str());
                        s.peers.push(new_peer(&p, is_tp));
                    }
                });
                self.emit(UiEvent::Toast { message: format!("{name} joined") });
            }
            CallEvent::PeerLeft { peer_id, .. } => {
                let name = self.inner.state.lock().name_of(peer_id.as_str());
                self.inner.hub.clear_prefix(&format!("{peer_id}/"));
                self.update(|s| s.peers.retain(|p| p.view.peer_id != peer_id.as_str()));
                if let Some(n) = name {
                    self.emit(UiEvent::Toast { message: format!("{n} left") });
                }
            }
            CallEvent::PeerReconnecting(id) => self.update(|s| {
                if let Some(p) = s.peer(id.as_str()) {
                    p.view.away = true;
                }
            }),
            CallEvent::PeerReconnected(id) => self.update(|s| {
                if let Some(p) = s.peer(id.as_str()) {
                    p.view.away = false;
                }
            }),
            CallEvent::PeerMedia { peer_id, state } => {
                if peer_id.as_str() == my_id {
                    return;
                }
                if !state.screen_sharing {
                    self.inner.hub.clear(&format!("{peer_id}/screen"));
                }
                if state.video_off {
                    self.inner.hub.clear(&format!("{peer_id}/camera"));
                }
                self.update(|s| {
                    if let Some(p) = s.peer(peer_id.as_str()) {
                        p.view.audio_muted = state.audio_muted;
                        p.view.video_off = state.video_off;
                        p.view.screen_sharing = state.screen_sharing;
                    }
                });
            }
            CallEvent::Hand { peer_id, raised } => self.update(|s| {
                if peer_id.as_str() == my_id {
                    if let Some(m) = s.me.view.as_mut() {
                        m.hand_raised = raised;
                    }
                } else if let Some(p) = s.peer(peer_id.as_str()) {
                    p.view.hand_raised = raised;
                }
            }),
            CallEvent::Reaction { from, emoji } => {
                let peer_id = if from.as_str() == my_id { "self".to_string() } else { from.to_string() };
                self.emit(UiEvent::Reaction { peer_id, emoji });
            }
            CallEvent::Chat(m) => {
                let entry = {
                    let s = self.inner.state.lock();
                    let mine = m.from.as_str() == my_id;
                    let to = m.to.as_ref().map(|t| t.to_string());
                    let thread = to.as_ref().map(|t| if mine { t.clone() } else { m.from.to_string() });
                    ChatEntry {
                        id: m.id.clone(),
                        from: m.from.to_string(),
                        from_name: m.from_name.clone(),
                        to_name: to.as_deref().and_then(|t| s.name_of(t)),
                        to,
                        text: m.text.clone(),
                        ts_ms: m.ts_ms as f64,
                        mine,
                        thread,
                    }
                };
                {
                    let mut s = self.inner.state.lock();
                    if s.chat.iter().any(|c| c.id == entry.id) {
                        return;
                    }
                    s.chat.push(entry.clone());
                    if s.chat.len() > CHAT_KEEP {
                        s.chat.remove(0);
                    }
                }
                self.emit(UiEvent::Chat { entry });
            }
            CallEvent::Link { peer_id, state } => {
                let name = self.inner.state.lock().name_of(peer_id.as_str()).unwrap_or_default();
                let failed = self.update(|s| {
                    let Some(p) = s.peer(peer_id.as_str()) else { return false };
                    let (link, failed) = match state {
                        LinkState::Connected => {
                            p.link_was_connected = true;
                            (LinkUi::Connected, false)
                        }
                        // A link that worked is being restarted (ICE restart, then a rebuild):
                        // the path broke, not the peer's reachability.
                        LinkState::Failed if p.link_was_connected => (LinkUi::Reconnecting, false),
                        LinkState::Failed => (LinkUi::Failed, true),
                        _ if p.link_was_connected => (LinkUi::Reconnecting, false),
                        _ => (LinkUi::Connecting, false),
                    };
                    p.view.link = link;
                    if failed {
                        p.view.error = Some(format!(
                            "Could not connect to {}. A firewall may block a direct connection; a TURN server fixes this. Retrying…",
                            p.view.name
                        ));
                    } else if link == LinkUi::Connected {
                        p.view.error = None;
                    }
                    failed
                });
                if failed {
                    self.notice(errors::peer_unreachable(&name, &format!("link to {peer_id}: {state:?}")));
                }
            }
            CallEvent::PeerError { peer_id, code, message } => {
                self.update(|s| {
                    if let Some(p) = s.peer(peer_id.as_str()) {
                        p.view.error = Some(message.clone());
                    }
                });
                let name = self.inner.state.lock().name_of(peer_id.as_str()).unwrap_or_default();
                self.notice(errors::ui(
                    ErrorKind::PeerUnreachable,
                    &format!("No media with {name}"),
                    &message,
                    code,
                ));
            }
            CallEvent::ServerError { code, message } => {
                // Refusals of single messages (rate limits, a peer gone) are shown briefly.
                self.emit(UiEvent::Toast { message: errors::from_code(code, &message).title });
            }
            CallEvent::ServerShutdown { .. } => {
                self.emit(UiEvent::Toast { message: "The server is restarting; reconnecting…".into() });
            }
        }
    }

    async fn run_stats(self, engine: Arc<Engine>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Ok(stats) = engine.stats().await else { return };
            self.inner.diag.lock().stats(&stats);
            self.update(|s| {
                for st in &stats {
                    let Some(p) = s.peer(&st.peer_id) else { continue };
                    let video = if p.view.screen_sharing && st.screen.frames_decoded > 0 { &st.screen } else { &st.camera };
                    let candidates = match (&st.local_candidate, &st.remote_candidate) {
                        (Some(l), Some(r)) => Some(match &st.relay_transport {
                            // How our relay reaches the TURN server is what a person debugging
                            // a firewall needs: "relay over tls" says UDP is blocked.
                            Some(t) => format!("{l} over {t} ↔ {r}"),
                            None => format!(
                                "{l} ↔ {r} ({})",
                                st.candidate_protocol.clone().unwrap_or_else(|| "udp".into())
                            ),
                        }),
                        _ => None,
                    };
                    let safety_code = match (&st.local_fingerprint, &st.remote_fingerprint) {
                        (Some(l), Some(r)) => Some(hearth_engine::safety_code(l, r)),
                        _ => None,
                    };
                    p.view.quality = Some(QualityView {
                        level: if st.connected { st.quality.to_string() } else { "poor".into() },
                        rtt_ms: st.rtt_ms,
                        loss_pct: st.loss_pct,
                        jitter_ms: st.jitter_ms,
                        sent_kbps: st.sent_kbps,
                        received_kbps: st.received_kbps,
                        fps: video.fps,
                        width: video.width,
                        height: video.height,
                        candidates,
                        safety_code,
                        local_fingerprint: st.local_fingerprint.clone(),
                        remote_fingerprint: st.remote_fingerprint.clone(),
                    });
                }
            });
        }
    }
}

fn new_peer(p: &hearth_proto::PeerInfo, is_test: bool) -> PeerState {
    PeerState {
        view: PeerView {
            peer_id: p.id.to_string(),
            name: p.name.clone(),
            audio_muted: p.media.audio_muted,
            video_off: p.media.video_off,
            screen_sharing: p.media.screen_sharing,
            hand_raised: p.hand_raised,
            away: p.reconnecting,
            link: LinkUi::Connecting,
            level: 0.0,
            speaking: false,
            active_speaker: false,
            quality: None,
            error: None,
            camera_tile: format!("{}/camera", p.id),
            screen_tile: format!("{}/screen", p.id),
            is_test_participant: is_test,
        },
        last_loud: None,
        link_was_connected: false,
    }
}

fn short_event(e: &CallEvent) -> String {
    match e {
        // Chat text stays out of diagnostics (it is the users' conversation).
        CallEvent::Chat(m) => format!("chat {} from {} private={}", m.id, m.from, m.to.is_some()),
        CallEvent::Joined { peer_id, peers, resumed, .. } => {
            format!("joined as {peer_id}, {} peers, resumed={resumed}", peers.len())
        }
        other => {
            let s = format!("{other:?}");
            s.chars().take(300).collect()
        }
    }
}

pub(crate) fn camera_spec(id: Option<&str>) -> VideoSpec {
    match id {
        Some(SYNTHETIC_DEVICE) => {
            VideoSpec::Synthetic { width: SYNTHETIC_SIZE.0, height: SYNTHETIC_SIZE.1, fps: SYNTHETIC_SIZE.2 }
        }
        other => VideoSpec::Camera {
            id: other.map(str::to_string),
            width: CAMERA_SIZE.0,
            height: CAMERA_SIZE.1,
            fps: CAMERA_SIZE.2,
        },
    }
}

pub(crate) fn mic_spec(id: Option<&str>) -> AudioSpec {
    match id {
        Some(SYNTHETIC_DEVICE) => AudioSpec::Synthetic,
        other => AudioSpec::Microphone { id: other.map(str::to_string) },
    }
}

/// A device error for people. A device that "stopped" or "failed" while none of its kind is
/// connected at all was never there (e.g. the system default microphone with no sound card: it
/// opens, then fails): say it is missing, which tells people what to do.
fn device_error(kind: TrackKind, problem: hearth_engine::DeviceProblem, message: &str) -> UiError {
    use hearth_engine::DeviceProblem as P;
    let problem = match problem {
        P::Lost | P::Failed if !kind_connected(kind) => P::Missing,
        p => p,
    };
    errors::device(kind, problem, message)
}

/// Whether any real device of this kind is listed (the built-in test sources do not count).
fn kind_connected(kind: TrackKind) -> bool {
    let d = crate::devices::list();
    let real = |v: &[crate::api::Device]| v.iter().any(|x| x.id != SYNTHETIC_DEVICE);
    match kind {
        TrackKind::Camera => real(&d.cameras),
        TrackKind::Audio => real(&d.microphones),
        TrackKind::Screen => real(&d.screens),
    }
}

/// Classify an error message from opening a device.
pub(crate) fn classify(msg: &str) -> hearth_engine::DeviceProblem {
    use hearth_engine::DeviceProblem as P;
    let m = msg.to_ascii_lowercase();
    if m.contains("busy") {
        P::Busy
    } else if m.contains("permission") || m.contains("denied") || m.contains("not permitted") {
        P::Denied
    } else if m.contains("no camera") || m.contains("not found") || m.contains("no device") || m.contains("no such") || m.contains("missing") || m.contains("no input") || m.contains("no microphone") {
        P::Missing
    } else {
        P::Failed
    }
}

fn parse_peer(id: &str) -> Result<hearth_proto::PeerId, UiError> {
    serde_json::from_value(serde_json::Value::String(id.to_string()))
        .map_err(|e| errors::ui(ErrorKind::InvalidInput, "Unknown person", "Pick someone from the list.", e.to_string()))
}

/// A URL without credentials or query (tokens may ride there).
pub(crate) fn redact_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut x) => {
            let _ = x.set_username("");
            let _ = x.set_password(None);
            x.set_query(None);
            x.set_fragment(None);
            x.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

/// A fast check that the server's TCP port answers (so "unreachable" shows in 3 s, not 10).
async fn reachable(url: &str) -> Result<(), hearth_engine::EngineError> {
    let parsed = url::Url::parse(url.trim()).map_err(|e| hearth_engine::EngineError::BadUrl {
        url: url.into(),
        message: e.to_string(),
    })?;
    let port = match (parsed.port(), parsed.scheme()) {
        (Some(p), _) => p,
        (None, "ws") => 80,
        (None, "wss") => 443,
        (None, other) => {
            return Err(hearth_engine::EngineError::BadUrl {
                url: url.into(),
                message: format!("{other}:// is not ws:// or wss://"),
            });
        }
    };
    let host = parsed.host_str().unwrap_or("").trim_start_matches('[').trim_end_matches(']').to_string();
    if host.is_empty() {
        return Err(hearth_engine::EngineError::BadUrl { url: url.into(), message: "no host".into() });
    }
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(hearth_engine::EngineError::Connect { url: url.into(), message: e.to_string() }),
        Err(_) => Err(hearth_engine::EngineError::Connect { url: url.into(), message: "no answer in 5 s".into() }),
    }
}

/// Painted frames kept per tile (the last 20 s at 30 fps).
pub const PAINT_FRAMES_KEPT: usize = 600;
/// Tiles a report may name (the grid holds 8 people, each with camera and screen).
const PAINT_TILES_MAX: usize = 64;
/// The longest tile name taken (bytes).
const PAINT_TILE_NAME_MAX: usize = 128;

/// Merges a page's report (the frames painted since its previous report) into `kept`: totals
/// replaced, the new frames' latencies appended to the last [`PAINT_FRAMES_KEPT`]. A tile whose
/// count went down is a new view of that name and starts over. Returns the tiles reported.
pub fn merge_paint(kept: &mut HashMap<String, TilePaint>, report: Vec<TilePaint>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for t in report.into_iter().take(PAINT_TILES_MAX) {
        // A tile is "self/camera", "preview" or a peer id and a track: never long, and named
        // once per report.
        if t.tile.len() > PAINT_TILE_NAME_MAX
            || names.contains(&t.tile)
            || (kept.len() >= PAINT_TILES_MAX * 4 && !kept.contains_key(&t.tile))
        {
            continue;
        }
        let e = kept.entry(t.tile.clone()).or_insert_with(|| TilePaint {
            tile: t.tile.clone(),
            frames: 0,
            latencies_ms: Vec::new(),
            stages_ms: Vec::new(),
            distinct_pixel_hashes: 0,
            renderer: String::new(),
        });
        if t.frames < e.frames {
            e.latencies_ms.clear();
            e.stages_ms.clear();
        }
        e.frames = t.frames;
        e.distinct_pixel_hashes = t.distinct_pixel_hashes;
        e.renderer = t.renderer.chars().take(16).collect();
        append_last(&mut e.latencies_ms, t.latencies_ms);
        append_last(&mut e.stages_ms, t.stages_ms);
        names.push(t.tile);
    }
    names
}

/// `new` appended to `kept`, of which the last [`PAINT_FRAMES_KEPT`] stay.
fn append_last<T>(kept: &mut Vec<T>, new: Vec<T>) {
    let skip = new.len().saturating_sub(PAINT_FRAMES_KEPT);
    kept.extend(new.into_iter().skip(skip));
    let n = kept.len();
    if n > PAINT_FRAMES_KEPT {
        kept.drain(..n - PAINT_FRAMES_KEPT);
    }
}

/// Frames per tile that [`display_delay`] looks at (the last 2 s at 30 fps).
const DISPLAY_DELAY_FRAMES: usize = 60;

/// The page's median delay from a frame leaving the frame server to being painted, over the
/// last frames of every remote tile it reports (`None` when it painted none): what lip sync
/// must allow for so the painted picture, not the frame handed over, keeps step with the
/// sound. The self view and the pre-join preview are not lip-synced and do not count.
pub fn display_delay<'a>(tiles: impl IntoIterator<Item = &'a TilePaint>) -> Option<Duration> {
    let mut d: Vec<f64> = tiles
        .into_iter()
        .filter(|t| !t.tile.starts_with("self/") && t.tile != "preview")
        .flat_map(|t| t.stages_ms.iter().rev().take(DISPLAY_DELAY_FRAMES))
        .map(|s| s[1] + s[2])
        .filter(|v| v.is_finite())
        .collect();
    if d.is_empty() {
        return None;
    }
    d.sort_by(f64::total_cmp);
    let median = d[d.len() / 2];
    Some(Duration::from_secs_f64(median.clamp(0.0, 1000.0) / 1000.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn tile(name: &str, stages: Vec<[f64; 3]>) -> TilePaint {
        TilePaint {
            tile: name.into(),
            frames: stages.len() as u32,
            latencies_ms: stages.iter().map(|s| s.iter().sum()).collect(),
            stages_ms: stages,
            distinct_pixel_hashes: 1,
            renderer: "2d".into(),
        }
    }

    #[test]
    fn display_delay_is_the_median_of_recent_sent_to_painted() {
        assert_eq!(display_delay(&[]), None);
        assert_eq!(display_delay(&[tile("a", vec![])]), None);
        // Only sent -> received + received -> painted count (not the engine's part before).
        let a = tile("a", vec![[40.0, 8.0, 4.0], [40.0, 10.0, 5.0], [40.0, 30.0, 10.0]]);
        assert_eq!(display_delay(std::slice::from_ref(&a)), Some(Duration::from_millis(15)));
        // Old frames beyond the window do not count: 61 slow ones, then 60 fast ones (a window
        // of 61-121 frames would give 100 ms).
        let mut stages = vec![[0.0, 90.0, 10.0]; 61];
        stages.extend(vec![[0.0, 6.0, 6.0]; DISPLAY_DELAY_FRAMES]);
        assert_eq!(display_delay(&[tile("b", stages.clone())]), Some(Duration::from_millis(12)));
        // The self view and the preview do not count; a page's garbage is survived.
        let slow = vec![[0.0, 90.0, 10.0]; 60];
        let own = [tile("self/camera", slow.clone()), tile("preview", slow)];
        assert_eq!(display_delay(&own), None);
        let junk = tile("c", vec![[0.0, f64::NAN, 1.0], [0.0, f64::INFINITY, 0.0], [0.0, -50.0, 0.0]]);
        assert_eq!(display_delay(std::slice::from_ref(&junk)), Some(Duration::ZERO));
        let huge = tile("d", vec![[0.0, 1e300, 0.0]]);
        assert_eq!(display_delay(&[huge]), Some(Duration::from_secs(1)));
    }

    #[test]
    fn paint_reports_carry_new_frames_and_are_merged_into_the_last_600() {
        let mut kept = HashMap::new();
        // Two reports of 400 new frames each: 600 kept, the newest last.
        let first = tile("a", (0..400).map(|i| [i as f64, 0.0, 0.0]).collect());
        assert_eq!(merge_paint(&mut kept, vec![first]), vec!["a".to_string()]);
        let mut second = tile("a", (400..800).map(|i| [i as f64, 0.0, 0.0]).collect());
        second.frames = 800;
        merge_paint(&mut kept, vec![second]);
        let a = &kept["a"];
        assert_eq!(a.frames, 800);
        assert_eq!(a.stages_ms.len(), PAINT_FRAMES_KEPT);
        assert_eq!(a.latencies_ms.len(), PAINT_FRAMES_KEPT);
        assert_eq!(a.stages_ms.first().map(|s| s[0]), Some(200.0));
        assert_eq!(a.stages_ms.last().map(|s| s[0]), Some(799.0));
        // A report with no new frames keeps what was there.
        let mut idle = tile("a", vec![]);
        idle.frames = 800;
        merge_paint(&mut kept, vec![idle]);
        assert_eq!(kept["a"].stages_ms.len(), PAINT_FRAMES_KEPT);
        // A tile of that name counting from zero again is a new view: it starts over.
        merge_paint(&mut kept, vec![tile("a", vec![[1.0, 2.0, 3.0]])]);
        assert_eq!(kept["a"].frames, 1);
        assert_eq!(kept["a"].stages_ms, vec![[1.0, 2.0, 3.0]]);
        // A hostile page: a huge report and endless tile names stay bounded.
        let flood: Vec<TilePaint> = (0..300).map(|i| tile(&format!("t{i}"), vec![[0.0; 3]; 700])).collect();
        for i in 0..10 {
            let names = flood.iter().skip(i * 30).cloned().collect();
            merge_paint(&mut kept, names);
        }
        assert!(kept.len() <= 4 * 64);
        assert!(kept.values().all(|t| t.stages_ms.len() <= PAINT_FRAMES_KEPT));
        // A name too long, or named twice in one report, is taken once or not at all.
        let mut kept = HashMap::new();
        let long = tile(&"x".repeat(PAINT_TILE_NAME_MAX + 1), vec![[0.0; 3]]);
        let twice = vec![tile("b", vec![[0.0, 1.0, 1.0]]), tile("b", vec![[0.0, 9.0, 9.0]]), long];
        assert_eq!(merge_paint(&mut kept, twice), vec!["b".to_string()]);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept["b"].stages_ms.len(), 1);
    }
}
