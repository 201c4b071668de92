//! The engine task: owns the [`Call`], the signaling connection, the local streams and one link
//! task per peer; turns commands and network events into actions.

use crate::config::{
    AudioLevel, AudioSpec, DeviceProblem, EncoderInfo, EngineConfig, EngineEvent, PeerStats, TrackKind,
    VideoSpec,
};
use crate::error::EngineError;
use crate::link::{self, LinkCmd, LinkEnv, LinkHandle, LinkReport};
use crate::rtc_setup::RtcSettings;
use crate::send::{MediaClock, SendStream};
use crate::signal::{self, SignalConn, SignalEvent};
use hearth_media::{Mixer, Speaker, VirtualSpeaker, VoiceActivity};
use hearth_proto::{ErrorCode, Join, MediaState, PeerId, ServerMessage};
use hearth_session::{Action, Call, reconnect_delay, signal_retry_delay};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How often [`EngineEvent::AudioLevels`] is emitted.
const LEVELS_EVERY: Duration = Duration::from_millis(100);

/// Commands from the app.
#[derive(Debug)]
pub enum Command {
    SetAudioMuted(bool),
    SetCameraOn(bool),
    /// Use another camera (or format) from now on; applies at once if the camera is on.
    SwitchCamera(VideoSpec),
    /// Use another microphone from now on.
    SwitchMicrophone(AudioSpec),
    StartScreenShare(VideoSpec),
    StopScreenShare,
    Chat {
        text: String,
        to: Option<PeerId>,
    },
    React(String),
    RaiseHand(bool),
    Stats(oneshot::Sender<Vec<PeerStats>>),
    /// The encoder settings of the streams we send.
    Encoders(oneshot::Sender<Vec<EncoderInfo>>),
    /// Stop sending a stream's media while still announcing it as on (tests of the receivers'
    /// checks that announced media flows). Not for apps.
    #[doc(hidden)]
    StopSendingForTest(TrackKind),
    Leave(oneshot::Sender<()>),
}

/// A running engine. Dropping it without [`Engine::leave`] still stops everything.
#[derive(Debug)]
pub struct Engine {
    tx: mpsc::UnboundedSender<Command>,
    task: Option<JoinHandle<()>>,
    peer_id: PeerId,
    joined_at_us: u64,
    /// See [`Engine::set_display_delay`].
    display_delay_us: Arc<AtomicU64>,
}

/// The most display delay [`Engine::set_display_delay`] takes into account (a page that stalls
/// for longer must not make lip sync release frames ahead of their sound by seconds).
pub const MAX_DISPLAY_DELAY: Duration = Duration::from_millis(100);

/// Signaling reconnect attempts in flight at once (see `start_reconnect`).
const PARALLEL_CONNECTS: usize = 3;

/// The machine's addresses changed; `lost`: one of them went away.
#[derive(Debug, Clone, Copy)]
struct NetChange {
    lost: bool,
}

/// The addresses ICE can gather on (loopback and link-local left out, as webrtc-rs does).
fn local_addresses() -> std::collections::BTreeSet<std::net::IpAddr> {
    rtc_shared::ifaces::ifaces()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.addr.map(|a| a.ip()))
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local() && !v4.is_unspecified(),
            std::net::IpAddr::V6(v6) => {
                !v6.is_loopback() && !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80
            }
        })
        .collect()
}

/// Polls the machine's addresses ten times a second and reports a change once the new set has
/// held for one more poll (an interface being renumbered passes through states with no route),
/// until the engine is gone.
async fn watch_network(tx: mpsc::UnboundedSender<NetChange>) {
    let mut known = local_addresses();
    let mut pending: Option<std::collections::BTreeSet<std::net::IpAddr>> = None;
    // One getifaddrs call: a few microseconds. At 250 ms the detection alone took up to 0.5 s
    // of the 1 s budget for media to resume after an address change.
    let mut every = tokio::time::interval(Duration::from_millis(100));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let now = local_addresses();
        if now == known {
            pending = None;
            continue;
        }
        if pending.as_ref() != Some(&now) {
            pending = Some(now);
            continue;
        }
        let lost = known.iter().any(|a| !now.contains(a));
        known = now;
        pending = None;
        if tx.send(NetChange { lost }).is_err() {
            return;
        }
    }
}

/// Local UDP addresses for ICE: loopback for a local call; else every IPv4 interface and, where
/// the system has IPv6, every IPv6 one (an IPv6-only network connects too).
fn default_udp_bind(url: &str) -> Vec<String> {
    if signal::is_loopback_url(url) {
        return vec!["127.0.0.1:0".into()];
    }
    let mut v = vec!["0.0.0.0:0".to_owned()];
    if std::net::UdpSocket::bind("[::]:0").is_ok() {
        v.push("[::]:0".into());
    }
    v
}

impl Engine {
    /// Connect, join, and start sending. Returns once the server has welcomed us; events
    /// (starting with [`CallEvent::Joined`]) arrive on the receiver.
    pub async fn start(
        cfg: EngineConfig,
    ) -> Result<(Engine, mpsc::UnboundedReceiver<EngineEvent>), EngineError> {
        let url = signal::normalize_url(&cfg.server_url)?;
        let (sig_tx, mut sig_rx) = mpsc::unbounded_channel();
        let conn = signal::connect(
            &url,
            cfg.connect_timeout,
            1,
            sig_tx.clone(),
            crate::turn_paths::proxy_for(cfg.proxy.as_deref(), &url).as_deref(),
        )
        .await?;
        let mut call = Call::new();
        let mut join = Join::new(cfg.room.clone(), cfg.name.clone());
        join.password = cfg.password.clone();
        join.token = cfg.token.clone();
        join.media = MediaState {
            audio_muted: cfg.start_muted || cfg.microphone.is_none(),
            video_off: cfg.start_camera_off || cfg.camera.is_none(),
            screen_sharing: false,
        };
        call.join(join);
        let joined_at_us = hearth_media::now_us();
        while let Some(Action::Send(m)) = call.poll_action() {
            conn.send(m);
        }
        // Wait for the welcome (or a refusal) so the caller learns at once if it cannot join.
        let deadline = Instant::now() + cfg.connect_timeout;
        let welcome = loop {
            let ev = tokio::time::timeout_at(deadline.into(), sig_rx.recv()).await.map_err(|_| {
                EngineError::Connect {
                    url: url.clone(),
                    message: "the server did not answer the join".into(),
                }
            })?;
            match ev {
                Some((_, SignalEvent::Message(m @ ServerMessage::Welcome(_)))) => break m,
                Some((_, SignalEvent::Message(ServerMessage::Error { code, message, .. }))) => {
                    return Err(EngineError::JoinRefused { code, message });
                }
                Some((_, SignalEvent::Message(_))) => continue,
                Some((_, SignalEvent::Closed(reason))) => {
                    return Err(EngineError::Connect { url: url.clone(), message: reason });
                }
                None => {
                    return Err(EngineError::Connect {
                        url: url.clone(),
                        message: "connection closed".into(),
                    });
                }
            }
        };
        let ServerMessage::Welcome(w) = &welcome else { return Err(EngineError::Stopped) };
        let peer_id = w.peer_id.clone();
        let udp_bind = cfg.udp_bind.clone().unwrap_or_else(|| default_udp_bind(&url));
        let proxy = crate::turn_paths::proxy_for(cfg.proxy.as_deref(), &url);
        let (ice_servers, turn_paths) =
            crate::turn_paths::prepare(&w.ice_servers, proxy.as_deref(), &cfg.turn_transports).await;
        let settings = RtcSettings {
            udp_bind,
            ice_servers,
            ice_check_interval: cfg.ice_check_interval,
            relay_only: cfg.relay_only,
            turn_paths: Arc::new(turn_paths),
        };

        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        let (dev_tx, dev_rx) = mpsc::unbounded_channel();
        let (reconn_tx, reconn_rx) = mpsc::unbounded_channel();
        let (net_tx, net_rx) = mpsc::unbounded_channel();
        if !signal::is_loopback_url(&url) {
            tokio::spawn(watch_network(net_tx));
        }
        let mixer = (cfg.speaker.is_some() || cfg.virtual_speaker).then(|| Arc::new(Mixer::default()));
        let speaker = match (&cfg.speaker, &mixer) {
            (Some(id), Some(m)) => match Speaker::open(id.as_deref(), m.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    let _ = events_tx.send(EngineEvent::DeviceError {
                        kind: TrackKind::Audio,
                        problem: DeviceProblem::of(&e, false),
                        message: e.to_string(),
                    });
                    None
                }
            },
            _ => None,
        };
        let virtual_speaker = match (&cfg.speaker, &mixer) {
            (None, Some(m)) => match VirtualSpeaker::start(m.clone()) {
                Ok(v) => Some(v),
                Err(e) => {
                    let _ = events_tx.send(EngineEvent::DeviceError {
                        kind: TrackKind::Audio,
                        problem: DeviceProblem::Failed,
                        message: format!("cannot start the virtual speaker: {e}"),
                    });
                    None
                }
            },
            _ => None,
        };
        let env = LinkEnv {
            settings,
            reports: reports_tx,
            events: events_tx.clone(),
            deliver_frames: cfg.deliver_frames,
            mixer: mixer.clone(),
            display_delay_us: Arc::new(AtomicU64::new(0)),
        };
        let display_delay_us = env.display_delay_us.clone();
        let clock = MediaClock::new();
        let mut streams = HashMap::new();
        let label = format!("hearth-{peer_id}");
        // What the speaker plays is the echo canceller's reference.
        let far_end = mixer.as_ref().map(|m| {
            let f = Arc::new(hearth_media::FarEnd::new());
            m.set_far_end(f.clone());
            f
        });
        if let Some(spec) = cfg.microphone.clone() {
            let s = SendStream::new(TrackKind::Audio, label.clone());
            s.set_rewrite(cfg.rewrite_rtp.clone());
            s.set_processing(cfg.processing, far_end.clone());
            s.enabled.store(!cfg.start_muted, Ordering::Relaxed);
            s.start_audio(spec, clock, dev_tx.clone());
            streams.insert(TrackKind::Audio, s);
        }
        if let Some(spec) = cfg.camera.clone() {
            let s = SendStream::new(TrackKind::Camera, label.clone());
            s.set_rewrite(cfg.rewrite_rtp.clone());
            if cfg.deliver_frames {
                s.show_locally(peer_id.clone(), events_tx.clone());
            }
            if !cfg.start_camera_off {
                s.start_video(spec, clock, dev_tx.clone());
            } else {
                s.enabled.store(false, Ordering::Relaxed);
            }
            streams.insert(TrackKind::Camera, s);
        }
        let mut core = Core {
            cfg,
            url,
            call,
            signal: Some(conn),
            generation: 1,
            sig_tx,
            links: HashMap::new(),
            streams,
            clock,
            env,
            events: events_tx,
            dev_tx,
            speaker,
            _virtual_speaker: virtual_speaker,
            label,
            peer_id: peer_id.clone(),
            voice: HashMap::new(),
            reconnecting: None,
            reconn_tx,
            outbox: hearth_session::Outbox::default(),
            welcomed: true,
            pacer: hearth_session::SendPacer::new(w.limits.rate_per_sec, w.limits.rate_burst),
            leaving: false,
            resuming: false,
        };
        core.call.handle_server(Instant::now(), welcome);
        core.drain_actions();
        let task = tokio::spawn(core.run(cmd_rx, sig_rx, reports_rx, dev_rx, reconn_rx, net_rx));
        Ok((Engine { tx: cmd_tx, task: Some(task), peer_id, joined_at_us, display_delay_us }, events_rx))
    }

    /// Our peer id in the room.
    pub fn peer_id(&self) -> &PeerId {
        &self.peer_id
    }

    /// When the join was sent (microseconds since the Unix epoch).
    pub fn joined_at_us(&self) -> u64 {
        self.joined_at_us
    }

    /// How long a frame takes from the app's side to being painted, as the app measures it (the
    /// desktop app: from its frame server's send to the page's draw; the hand-over to that
    /// server and the compositor's present are not counted, so the estimate errs short, and
    /// video leads its sound by a little less than the allowance). Lip sync holds each frame
    /// this much less, so the *painted* picture keeps its place beside the sound; without it
    /// the display path's delay came on top of the hold. Zero until told (headless).
    pub fn set_display_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.min(MAX_DISPLAY_DELAY).as_micros()).unwrap_or(0);
        self.display_delay_us.store(us, Ordering::Relaxed);
    }

    pub fn command(&self, cmd: Command) -> Result<(), EngineError> {
        self.tx.send(cmd).map_err(|_| EngineError::Stopped)
    }

    /// The encoder settings of the streams we send (those that have encoded a frame).
    pub async fn encoders(&self) -> Result<Vec<EncoderInfo>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Encoders(tx))?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// A statistics snapshot of every link.
    pub async fn stats(&self) -> Result<Vec<PeerStats>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Stats(tx))?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// Leave the room, close every link, stop every device, and wait for all of it.
    pub async fn leave(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Leave(tx)).is_ok() {
            let _ = rx.await;
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
        release_free_memory();
    }
}

/// Give freed heap memory back to the OS. A call frees tens of MB (codec buffers, per-thread
/// malloc arenas of the capture and decoder threads) that glibc would otherwise keep mapped.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own free lists; it has no preconditions.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            // Dropped without leave(): ask the task to wind down on its own.
            let (tx, _rx) = oneshot::channel();
            let _ = self.tx.send(Command::Leave(tx));
            drop(t);
        }
    }
}

struct Core {
    cfg: EngineConfig,
    url: String,
    call: Call,
    signal: Option<SignalConn>,
    generation: u64,
    sig_tx: mpsc::UnboundedSender<(u64, SignalEvent)>,
    links: HashMap<PeerId, LinkHandle>,
    streams: HashMap<TrackKind, Arc<SendStream>>,
    clock: MediaClock,
    env: LinkEnv,
    events: mpsc::UnboundedSender<EngineEvent>,
    dev_tx: mpsc::UnboundedSender<EngineEvent>,
    speaker: Option<Speaker>,
    /// Pulls the mixer when there is no speaker (see `EngineConfig::virtual_speaker`).
    _virtual_speaker: Option<VirtualSpeaker>,
    label: String,
    /// Our own peer id (the self view's frames come from it).
    peer_id: PeerId,
    /// Voice activity per participant (`None`: us), for [`EngineEvent::AudioLevels`].
    voice: HashMap<Option<PeerId>, VoiceActivity>,
    /// A reconnect attempt in flight, and where it hands over the new connection.
    reconnecting: Option<JoinHandle<()>>,
    reconn_tx: mpsc::UnboundedSender<SignalConn>,
    /// Numbered messages the server has not confirmed yet (sent or not): resent after a resume
    /// from where the server says it stopped.
    outbox: hearth_session::Outbox,
    /// The current connection has been welcomed: numbered messages may go out on it.
    welcomed: bool,
    /// Keeps numbered messages within the server's rate limit (a dropped one is not named).
    pacer: hearth_session::SendPacer,
    leaving: bool,
    /// The current connection was opened to resume: a refused resume falls back to a fresh join.
    resuming: bool,
}

impl Core {
    async fn run(
        mut self,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        mut sig_rx: mpsc::UnboundedReceiver<(u64, SignalEvent)>,
        mut reports_rx: mpsc::UnboundedReceiver<LinkReport>,
        mut dev_rx: mpsc::UnboundedReceiver<EngineEvent>,
        mut reconn_rx: mpsc::UnboundedReceiver<SignalConn>,
        mut net_rx: mpsc::UnboundedReceiver<NetChange>,
    ) {
        let mut leave_reply = None;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut levels = tokio::time::interval(LEVELS_EVERY);
        levels.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let paced = self.pacer.next_ready(Instant::now());
            tokio::select! {
                () = async {
                    match paced {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => self.flush_paced(),
                _ = tick.tick() => {
                    self.call.tick(Instant::now());
                    if let Some(e) = self.speaker.as_ref().and_then(Speaker::take_error) {
                        let _ = self.events.send(EngineEvent::DeviceError {
                            kind: TrackKind::Audio,
                            problem: DeviceProblem::of(&e, true),
                            message: e.to_string(),
                        });
                    }
                }
                _ = levels.tick() => self.audio_levels(),
                cmd = cmd_rx.recv() => match cmd {
                    None => break,
                    Some(Command::Leave(reply)) => {
                        leave_reply = Some(reply);
                        break;
                    }
                    Some(cmd) => self.command(cmd).await,
                },
                Some((generation, ev)) = sig_rx.recv() => {
                    if generation != self.generation {
                        continue;
                    }
                    match ev {
                        SignalEvent::Message(m) => self.server_message(m),
                        SignalEvent::Closed(reason) => self.signaling_closed(reason, Duration::ZERO),
                    }
                }
                Some(report) = reports_rx.recv() => match report {
                    LinkReport::Send(m) => self.send(m),
                    LinkReport::State { peer, link, state, path } => {
                        // Ignore a replaced link's late reports.
                        if self.links.get(&peer).is_some_and(|l| l.id == link) {
                            if let Some(path) = path {
                                self.call.link_path(&peer, path);
                            }
                            self.call.link_changed(Instant::now(), &peer, state);
                        }
                    }
                },
                Some(ev) = dev_rx.recv() => self.device_error(ev),
                Some(conn) = reconn_rx.recv() => self.reconnected(conn),
                Some(change) = net_rx.recv() => self.network_changed(change),
            }
            self.drain_actions();
        }
        self.shutdown().await;
        if let Some(r) = leave_reply {
            let _ = r.send(());
        }
    }

    /// Send `m`, numbered and kept until the server confirms it (see `hearth_session::Outbox`):
    /// while offline or not yet welcomed on a new connection it waits there, and after a resume
    /// exactly what the server missed goes again.
    fn send(&mut self, m: hearth_proto::ClientMessage) {
        let numbered = m.is_numbered();
        let forgotten = self.outbox.forgotten();
        let frame = self.outbox.push(m);
        if self.outbox.forgotten() > forgotten {
            tracing::warn!(
                "more than {} messages unconfirmed by the server; dropped the oldest",
                hearth_session::outbox::OUTBOX_LIMIT
            );
        }
        match &self.signal {
            // A join goes at once; numbered messages within the rate limit, once welcomed.
            Some(s) if !numbered => {
                s.send(frame);
            }
            Some(_) if self.welcomed => {
                self.pacer.push(frame);
                self.flush_paced();
            }
            _ => {} // kept in the outbox until the welcome
        }
    }

    /// Send what the rate limit allows now.
    fn flush_paced(&mut self) {
        let Some(s) = &self.signal else { return };
        let now = Instant::now();
        while let Some(frame) = self.pacer.poll(now) {
            s.send(frame);
        }
    }

    fn server_message(&mut self, m: ServerMessage) {
        match &m {
            ServerMessage::Welcome(w) => {
                self.resuming = false;
                self.welcomed = true;
                // Exactly what the server has not taken, in order (all of it on a fresh join),
                // within its rate limit.
                self.pacer = hearth_session::SendPacer::new(w.limits.rate_per_sec, w.limits.rate_burst);
                for frame in self.outbox.resend_after(w.last_cseq) {
                    self.pacer.push(frame);
                }
                self.flush_paced();
                let _ = self.events.send(EngineEvent::SignalingRestored);
            }
            ServerMessage::Pong { last_cseq: Some(confirmed), .. } => self.outbox.confirmed(*confirmed),
            ServerMessage::Error { code: ErrorCode::ResumeFailed, .. } if self.resuming => {
                // The session expired while we were away: join afresh. What was held for the
                // old session addressed its peers; it is moot now.
                self.resuming = false;
                self.outbox.reset();
                let mut join = Join::new(self.cfg.room.clone(), self.cfg.name.clone());
                join.password = self.cfg.password.clone();
                join.token = self.cfg.token.clone();
                join.media = self.call.local_media();
                self.call.reset();
                self.call.join(join);
                return;
            }
            ServerMessage::Shutdown { retry_after_ms, .. } => {
                let delay = Duration::from_millis(*retry_after_ms);
                self.call.handle_server(Instant::now(), m);
                // The close follows; reconnect after the delay the server asked for.
                self.signal = None;
                self.generation += 1;
                self.start_reconnect(delay, "the server is restarting");
                return;
            }
            _ => {}
        }
        self.call.handle_server(Instant::now(), m);
    }

    /// Our addresses changed: restart ICE on every link, and when an address went away, do not
    /// wait for the signaling connection (maybe bound to it) to time out.
    fn network_changed(&mut self, change: NetChange) {
        tracing::info!(lost = change.lost, "network changed; restarting ICE");
        self.call.network_changed(Instant::now());
        if change.lost && self.signal.is_some() {
            self.signaling_closed("the network changed".into(), Duration::ZERO);
        }
    }

    fn signaling_closed(&mut self, reason: String, delay: Duration) {
        self.signal = None;
        if self.leaving {
            return;
        }
        if !self.cfg.reconnect {
            let _ = self
                .events
                .send(EngineEvent::Ended { reason: format!("lost the signaling server: {reason}") });
            return;
        }
        self.start_reconnect(delay, &reason);
    }

    fn start_reconnect(&mut self, initial: Duration, reason: &str) {
        if self.reconnecting.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        tracing::info!(reason, "signaling lost; reconnecting");
        let _ =
            self.events.send(EngineEvent::SignalingLost { retry_in: initial.max(reconnect_delay(0, 1.0)) });
        let url = self.url.clone();
        let timeout = self.cfg.connect_timeout;
        let proxy = crate::turn_paths::proxy_for(self.cfg.proxy.as_deref(), &url);
        let sig_tx = self.sig_tx.clone();
        self.generation += 1;
        let generation = self.generation;
        let reconn = self.reconn_tx.clone();
        let lost_at = Instant::now();
        self.reconnecting = Some(tokio::spawn(async move {
            tokio::time::sleep(initial).await;
            // Attempts overlap: a new one starts every retry delay while earlier ones may still
            // be waiting on a SYN sent into a dead network, so once the network is back the
            // newest attempt gets through at once instead of after the older one's timeout.
            let mut tries = tokio::task::JoinSet::new();
            for attempt in 0u32.. {
                if tries.len() < PARALLEL_CONNECTS {
                    let (url, sig_tx, proxy) = (url.clone(), sig_tx.clone(), proxy.clone());
                    tries.spawn(async move {
                        signal::connect(&url, timeout, generation, sig_tx, proxy.as_deref()).await
                    });
                }
                let wait = signal_retry_delay(attempt, lost_at.elapsed(), rand::random::<f64>());
                let next = tokio::time::sleep(wait);
                tokio::pin!(next);
                loop {
                    tokio::select! {
                        Some(done) = tries.join_next() => match done {
                            Ok(Ok(conn)) => {
                                let _ = reconn.send(conn);
                                return;
                            }
                            Ok(Err(e)) => tracing::info!(error = %e, "reconnect failed"),
                            Err(_) => {}
                        },
                        () = &mut next => break,
                    }
                }
            }
        }));
    }

    fn reconnected(&mut self, conn: SignalConn) {
        if conn.generation != self.generation {
            return;
        }
        let join = self.call.resume_join();
        self.resuming = join.is_some();
        let join = join.unwrap_or_else(|| {
            let mut j = Join::new(self.cfg.room.clone(), self.cfg.name.clone());
            j.password = self.cfg.password.clone();
            j.token = self.cfg.token.clone();
            j.media = self.call.local_media();
            j
        });
        conn.send(hearth_proto::ClientMessage::Join(join));
        // Nothing numbered goes out before the welcome: a refused resume would bounce it, and
        // the welcome says what the server already has.
        self.welcomed = false;
        // What waited for the old connection is still in the outbox: the welcome resends it.
        self.pacer.clear();
        self.signal = Some(conn);
    }

    fn device_error(&mut self, ev: EngineEvent) {
        if let EngineEvent::DeviceError { kind, .. } = &ev {
            let mut m = self.call.local_media();
            match kind {
                TrackKind::Audio => m.audio_muted = true,
                TrackKind::Camera => m.video_off = true,
                TrackKind::Screen => m.screen_sharing = false,
            }
            self.call.set_media(m);
        }
        let _ = self.events.send(ev);
    }

    /// Report everyone's audio level since the last report (see [`EngineEvent::AudioLevels`]).
    fn audio_levels(&mut self) {
        let now = Instant::now();
        let mine = self.streams.get(&TrackKind::Audio).map_or(0.0, |s| s.level.take());
        let mut sources = vec![(None, mine)];
        let mut peers: Vec<_> = self.links.iter().map(|(p, l)| (p, l.shared.audio_level.take())).collect();
        peers.sort_by(|a, b| a.0.cmp(b.0));
        sources.extend(peers.into_iter().map(|(p, level)| (Some(p.clone()), level)));
        self.voice.retain(|who, _| who.as_ref().is_none_or(|p| self.links.contains_key(p)));
        let levels = sources
            .into_iter()
            .map(|(peer, level)| {
                let speaking = self.voice.entry(peer.clone()).or_default().update(level, now);
                AudioLevel { peer, level, speaking }
            })
            .collect();
        let _ = self.events.send(EngineEvent::AudioLevels(levels));
    }

    fn active_streams(&self) -> Vec<Arc<SendStream>> {
        self.streams.values().cloned().collect()
    }

    fn drain_actions(&mut self) {
        while let Some(a) = self.call.poll_action() {
            match a {
                Action::Send(m) => self.send(m),
                Action::OpenLink { peer, polite, offer } => {
                    if let Some(old) = self.links.remove(&peer) {
                        let _ = old.tx.send(LinkCmd::Close);
                    }
                    let handle =
                        link::spawn(peer.clone(), polite, offer, self.active_streams(), self.env.clone());
                    self.links.insert(peer, handle);
                }
                Action::CloseLink { peer } => {
                    if let Some(old) = self.links.remove(&peer) {
                        let _ = old.tx.send(LinkCmd::Close);
                    }
                }
                Action::Signal { peer, signal } => {
                    if let Some(l) = self.links.get(&peer) {
                        let _ = l.tx.send(LinkCmd::Signal(signal));
                    }
                }
                Action::RestartIce { peer } => {
                    if let Some(l) = self.links.get(&peer) {
                        let _ = l.tx.send(LinkCmd::RestartIce);
                    }
                }
                Action::Emit(e) => {
                    let _ = self.events.send(EngineEvent::Call(e));
                }
            }
        }
    }

    async fn command(&mut self, cmd: Command) {
        match cmd {
            Command::SetAudioMuted(muted) => {
                if let Some(s) = self.streams.get(&TrackKind::Audio) {
                    s.enabled.store(!muted, Ordering::Relaxed);
                    // The microphone may have failed earlier: unmuting tries it again.
                    if let (false, false, Some(spec)) = (muted, s.is_capturing(), self.cfg.microphone.clone())
                    {
                        s.start_audio(spec, self.clock, self.dev_tx.clone());
                    }
                }
                let mut m = self.call.local_media();
                m.audio_muted = muted || !self.streams.contains_key(&TrackKind::Audio);
                self.call.set_media(m);
            }
            Command::SetCameraOn(on) => {
                let spec = self.cfg.camera.clone();
                if let (Some(s), Some(spec)) = (self.streams.get(&TrackKind::Camera), spec) {
                    if on {
                        s.enabled.store(true, Ordering::Relaxed);
                        if !s.is_capturing() {
                            s.start_video(spec, self.clock, self.dev_tx.clone());
                        }
                    } else {
                        s.enabled.store(false, Ordering::Relaxed);
                        // Does not wait: a device read may take seconds.
                        let _ = s.stop_capture();
                    }
                }
                self.share_video_budget();
                let mut m = self.call.local_media();
                m.video_off = !on || !self.streams.contains_key(&TrackKind::Camera);
                self.call.set_media(m);
            }
            Command::SwitchCamera(spec) => {
                self.cfg.camera = Some(spec.clone());
                self.switch_source(TrackKind::Camera, move |s, clock, dev| s.start_video(spec, clock, dev));
            }
            Command::SwitchMicrophone(spec) => {
                self.cfg.microphone = Some(spec.clone());
                self.switch_source(TrackKind::Audio, move |s, clock, dev| s.start_audio(spec, clock, dev));
            }
            Command::StartScreenShare(spec) => {
                let stream = match self.streams.get(&TrackKind::Screen) {
                    Some(s) => s.clone(),
                    None => self.add_stream(TrackKind::Screen),
                };
                stream.start_video(spec, self.clock, self.dev_tx.clone());
                self.share_video_budget();
                let mut m = self.call.local_media();
                m.screen_sharing = true;
                self.call.set_media(m);
            }
            Command::StopScreenShare => {
                if let Some(s) = self.streams.remove(&TrackKind::Screen) {
                    for l in self.links.values() {
                        let _ = l.tx.send(LinkCmd::RemoveStream(TrackKind::Screen));
                    }
                    let _ = s.stop_capture();
                }
                self.share_video_budget();
                let mut m = self.call.local_media();
                m.screen_sharing = false;
                self.call.set_media(m);
            }
            Command::Chat { text, to } => self.call.chat(text, to),
            Command::React(emoji) => self.call.react(emoji),
            Command::RaiseHand(raised) => self.call.raise_hand(raised),
            Command::Stats(reply) => {
                let mut out = Vec::new();
                for (peer, l) in &self.links {
                    let name = self.call.peer(peer).map(|p| p.name.clone()).unwrap_or_default();
                    out.push(link::snapshot(&l.shared, name).await);
                }
                out.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
                let _ = reply.send(out);
            }
            Command::Encoders(reply) => {
                let mut out: Vec<EncoderInfo> =
                    self.streams.values().filter_map(|s| s.encoder_info()).collect();
                out.sort_by_key(|e| e.kind);
                let _ = reply.send(out);
            }
            Command::StopSendingForTest(kind) => {
                if let Some(s) = self.streams.get(&kind) {
                    s.enabled.store(false, Ordering::Relaxed);
                }
            }
            Command::Leave(_) => {}
        }
    }

    /// Split the video budget between the camera and a screen share (see `adapt::video_share`).
    fn share_video_budget(&self) {
        let sending = |k| self.streams.get(&k).is_some_and(|s| s.enabled.load(Ordering::Relaxed));
        let both = sending(TrackKind::Screen) && sending(TrackKind::Camera);
        for (kind, s) in &self.streams {
            if *kind != TrackKind::Audio {
                s.set_share(crate::adapt::video_share(*kind, both));
            }
        }
    }

    /// A new local stream, offered to every link (each renegotiates).
    fn add_stream(&mut self, kind: TrackKind) -> Arc<SendStream> {
        let s = SendStream::new(kind, self.label.clone());
        s.set_rewrite(self.cfg.rewrite_rtp.clone());
        if self.cfg.deliver_frames && kind != TrackKind::Audio {
            s.show_locally(self.peer_id.clone(), self.events.clone());
        }
        for l in self.links.values() {
            let _ = l.tx.send(LinkCmd::AddStream(s.clone()));
        }
        self.streams.insert(kind, s.clone());
        s
    }

    /// Use another camera or microphone: restart the capture if it runs (if the medium is off,
    /// the new source is used when it is turned on), or add the stream if there was none.
    fn switch_source(
        &mut self,
        kind: TrackKind,
        start: impl FnOnce(&Arc<SendStream>, MediaClock, mpsc::UnboundedSender<EngineEvent>),
    ) {
        match self.streams.get(&kind).cloned() {
            Some(s) if s.is_capturing() => start(&s, self.clock, self.dev_tx.clone()),
            Some(_) => {}
            None => {
                let s = self.add_stream(kind);
                start(&s, self.clock, self.dev_tx.clone());
                let mut m = self.call.local_media();
                match kind {
                    TrackKind::Audio => m.audio_muted = false,
                    TrackKind::Camera | TrackKind::Screen => m.video_off = false,
                }
                self.call.set_media(m);
            }
        }
    }

    async fn shutdown(&mut self) {
        self.leaving = true;
        if let Some(r) = self.reconnecting.take() {
            r.abort();
        }
        self.call.leave();
        self.drain_actions();
        for (_, s) in self.streams.drain() {
            // A device read can block for seconds; do not stall the runtime on it.
            let _ = tokio::task::spawn_blocking(move || s.stop_capture_and_wait()).await;
        }
        // Wait for links to close their connections (bounded).
        for (_, l) in self.links.drain() {
            let _ = l.tx.send(LinkCmd::Close);
            let _ = tokio::time::timeout(Duration::from_secs(5), l.task).await;
        }
        // Let the leave message go out before the socket closes.
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.signal = None;
        let _ = self.events.send(EngineEvent::Ended { reason: "left the call".into() });
    }
}
