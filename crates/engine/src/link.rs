//! One peer link: a task owning the peer connection to one remote peer, performing the
//! negotiator's steps in order, adding and removing our streams, and starting a receiver for
//! each remote track.

use crate::config::{DeviceProblem, EngineEvent, Latency, OutboundStats, PeerStats, TrackKind};
use crate::receive::{RecvCtx, StreamAcc, run_audio, run_video};
use crate::rtc_setup::{PcEvent, RtcSettings, candidate_init, new_peer_connection, rtt_from_report};
use crate::send::{SendStream, Target};
use hearth_media::{Mixer, OutputSkew, PeakLevel};
use hearth_proto::{ClientMessage, PeerId};
use hearth_session::{LinkMeasure, LinkState, Negotiator, SdpKind, Signal, Step, quality};
use parking_lot::Mutex;
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState, RTCSessionDescription};
use webrtc::rtp_transceiver::RtpSender;

/// Commands to a link task.
#[derive(Debug)]
pub enum LinkCmd {
    Signal(Signal),
    AddStream(Arc<SendStream>),
    RemoveStream(TrackKind),
    /// Offer an ICE restart (new credentials; sockets rebound on the interfaces there are now).
    RestartIce,
    Close,
}

/// What a link task tells the engine.
#[derive(Debug)]
pub enum LinkReport {
    Send(ClientMessage),
    /// `link` identifies the link: a peer's link can be replaced while the old one is still
    /// closing, and the old one's late reports must not touch the new one.
    State {
        peer: PeerId,
        link: u64,
        state: LinkState,
        /// With `Connected`: the selected candidate pair, for the outcome report.
        path: Option<hearth_proto::CallPath>,
    },
}

static NEXT_LINK_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// State shared between a link task and the engine (for statistics).
pub struct LinkShared {
    pub peer: PeerId,
    pub opened_at: Instant,
    pub connected_at: Mutex<Option<Instant>>,
    pub pc: Mutex<Option<Arc<dyn PeerConnection>>>,
    pub recv: Mutex<HashMap<TrackKind, Arc<Mutex<StreamAcc>>>>,
    pub rtt_ms: Arc<Mutex<Option<f64>>>,
    /// What the path to this peer carries, as our congestion controller estimates it.
    pub estimate: Arc<crate::rtc_setup::SendEstimate>,
    /// Our streams on this link and what the peer reports receiving of each, per SSRC.
    pub outbound: Mutex<HashMap<u32, Outbound>>,
    /// Lip sync measured at the outputs (this peer's audio played, its video shown).
    pub skew: Arc<Mutex<OutputSkew>>,
    /// The camera's playout delay (µs), which this peer's audio waits for too.
    pub video_delay_us: Arc<std::sync::atomic::AtomicU64>,
    /// The loudest audio frame decoded from this peer since the engine last looked.
    pub audio_level: Arc<PeakLevel>,
    /// Set when the link task ends (stops the RTCP listeners).
    pub closed: std::sync::atomic::AtomicBool,
    /// (at, bytes sent, bytes received) at the last stats snapshot, for rates.
    last_bytes: Mutex<Option<(Instant, u64, u64)>>,
    /// The call's TCP/TLS TURN shims (to tell how a relay candidate reaches its server).
    turn_paths: Arc<crate::turn_paths::TurnPaths>,
}

/// One of our streams on a link.
#[derive(Debug)]
pub struct Outbound {
    pub kind: TrackKind,
    pub target: Arc<Target>,
    /// From the peer's last receiver report: packets it had received, packets we had sent it
    /// by then, and when the report came.
    pub report: Option<(u64, u64, Instant)>,
}

impl std::fmt::Debug for LinkShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkShared").field("peer", &self.peer).finish_non_exhaustive()
    }
}

/// The engine's handle on a link task.
#[derive(Debug)]
pub struct LinkHandle {
    /// Unique per link (a peer's replacement link gets a new one).
    pub id: u64,
    pub tx: mpsc::UnboundedSender<LinkCmd>,
    pub shared: Arc<LinkShared>,
    pub task: JoinHandle<()>,
}

/// Everything a link needs from its engine.
#[derive(Clone)]
pub struct LinkEnv {
    pub settings: RtcSettings,
    pub reports: mpsc::UnboundedSender<LinkReport>,
    pub events: mpsc::UnboundedSender<EngineEvent>,
    pub deliver_frames: bool,
    pub mixer: Option<Arc<Mixer>>,
    /// From frame event to painted, in µs (see `Engine::set_display_delay`).
    pub display_delay_us: Arc<AtomicU64>,
}

impl std::fmt::Debug for LinkEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkEnv").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Start a link to `peer`, sending `streams`; offer first if `offer`.
pub fn spawn(
    peer: PeerId,
    polite: bool,
    offer: bool,
    streams: Vec<Arc<SendStream>>,
    env: LinkEnv,
) -> LinkHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(LinkShared {
        peer: peer.clone(),
        opened_at: Instant::now(),
        connected_at: Mutex::new(None),
        pc: Mutex::new(None),
        recv: Mutex::new(HashMap::new()),
        rtt_ms: Arc::new(Mutex::new(None)),
        estimate: Arc::new(crate::rtc_setup::SendEstimate::default()),
        outbound: Mutex::new(HashMap::new()),
        skew: Arc::new(Mutex::new(OutputSkew::new())),
        video_delay_us: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        audio_level: Arc::new(PeakLevel::new()),
        closed: std::sync::atomic::AtomicBool::new(false),
        last_bytes: Mutex::new(None),
        turn_paths: env.settings.turn_paths.clone(),
    });
    let id = NEXT_LINK_ID.fetch_add(1, Ordering::Relaxed);
    let link = Link {
        id,
        peer,
        polite,
        env,
        shared: shared.clone(),
        senders: HashMap::new(),
        neg: Negotiator::new(polite),
        connected: false,
        restart_ice: false,
    };
    let task = tokio::spawn(run(link, offer, streams, rx));
    LinkHandle { id, tx, shared, task }
}

/// Our tracks on this connection: the transceiver's sender, the peer's target in the
/// fan-out, and the stream it belongs to.
type Senders = HashMap<TrackKind, (Arc<dyn RtpSender>, Arc<Target>, Arc<SendStream>)>;

struct Link {
    id: u64,
    peer: PeerId,
    polite: bool,
    env: LinkEnv,
    shared: Arc<LinkShared>,
    senders: Senders,
    neg: Negotiator,
    /// DTLS is up: media written now is sent (before, SRTP has no keys and drops it).
    connected: bool,
    /// The next offer restarts ICE.
    restart_ice: bool,
}

fn link_state(s: RTCPeerConnectionState) -> Option<LinkState> {
    Some(match s {
        RTCPeerConnectionState::New | RTCPeerConnectionState::Connecting => LinkState::Connecting,
        RTCPeerConnectionState::Connected => LinkState::Connected,
        RTCPeerConnectionState::Disconnected => LinkState::Disconnected,
        RTCPeerConnectionState::Failed => LinkState::Failed,
        RTCPeerConnectionState::Closed => LinkState::Closed,
        _ => return None,
    })
}

async fn run(
    mut link: Link,
    offer: bool,
    streams: Vec<Arc<SendStream>>,
    mut rx: mpsc::UnboundedReceiver<LinkCmd>,
) {
    let (pc_tx, mut pc_rx) = mpsc::unbounded_channel();
    let pc = match new_peer_connection(&link.env.settings, pc_tx, link.shared.estimate.clone()).await {
        Ok(pc) => pc,
        Err(e) => {
            tracing::error!(peer = %link.peer, error = %e, "cannot create a peer connection");
            let _ = link.env.reports.send(LinkReport::State {
                peer: link.peer.clone(),
                link: link.id,
                state: LinkState::Failed,
                path: None,
            });
            return;
        }
    };
    *link.shared.pc.lock() = Some(pc.clone());
    tracing::debug!(peer = %link.peer, polite = link.polite, offer, "link open");
    for s in streams {
        link.add_stream(&pc, s).await;
    }
    let mut steps = VecDeque::new();
    if offer {
        steps.push_back(link.neg.negotiation_needed());
    }
    let mut receivers: Vec<JoinHandle<()>> = Vec::new();
    loop {
        link.perform(&pc, &mut steps).await;
        tokio::select! {
            cmd = rx.recv() => match cmd {
                None | Some(LinkCmd::Close) => break,
                Some(LinkCmd::Signal(Signal::Offer(sdp))) => steps.push_back(link.neg.remote_description(SdpKind::Offer, sdp)),
                Some(LinkCmd::Signal(Signal::Answer(sdp))) => steps.push_back(link.neg.remote_description(SdpKind::Answer, sdp)),
                Some(LinkCmd::Signal(Signal::Candidate(c))) => steps.push_back(link.neg.remote_candidate(c)),
                Some(LinkCmd::RestartIce) => {
                    tracing::info!(peer = %link.peer, "restarting ICE");
                    link.restart_ice = true;
                    steps.push_back(link.neg.negotiation_needed());
                }
                Some(LinkCmd::AddStream(s)) => {
                    link.add_stream(&pc, s).await;
                    steps.push_back(link.neg.negotiation_needed());
                }
                Some(LinkCmd::RemoveStream(kind)) => {
                    if let Some((sender, target, stream)) = link.senders.remove(&kind) {
                        stream.detach(&target);
                        if let Err(e) = pc.remove_track(&sender).await {
                            tracing::warn!(error = %e, "remove_track failed");
                        }
                        steps.push_back(link.neg.negotiation_needed());
                    }
                }
            },
            ev = pc_rx.recv() => match ev {
                None => break,
                Some(PcEvent::Candidate(candidate)) => {
                    let _ = link.env.reports.send(LinkReport::Send(ClientMessage::IceCandidate { to: link.peer.clone(), candidate }));
                }
                Some(PcEvent::State(s)) => {
                    let Some(state) = link_state(s) else { continue };
                    if state == LinkState::Connected && !link.connected {
                        link.connected = true;
                        link.shared.connected_at.lock().get_or_insert_with(Instant::now);
                        // Start sending; attaching requests a keyframe for the new viewer.
                        for (_, target, stream) in link.senders.values() {
                            stream.attach(target.clone());
                        }
                    }
                    let path = if state == LinkState::Connected {
                        call_path(&crate::rtc_setup::link_security(&pc, &link.shared.turn_paths).await)
                    } else {
                        None
                    };
                    let _ = link.env.reports.send(LinkReport::State { peer: link.peer.clone(), link: link.id, state, path });
                }
                Some(PcEvent::Track(track)) => receivers.push(link.start_receiver(track).await),
            },
        }
    }
    link.shared.closed.store(true, Ordering::Relaxed);
    for (_, target, stream) in link.senders.values() {
        stream.detach(target);
    }
    // Always close: a dropped, unclosed connection leaks its socket and tasks in 0.21.
    if let Err(e) = pc.close().await {
        tracing::debug!(error = %e, "close failed");
    }
    *link.shared.pc.lock() = None;
    for r in receivers {
        // Receivers end when the closed connection's tracks return None; do not wait forever.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), r).await;
    }
    tracing::debug!(peer = %link.peer, "link closed");
}

impl Link {
    async fn add_stream(&mut self, pc: &Arc<dyn PeerConnection>, stream: Arc<SendStream>) {
        if self.senders.contains_key(&stream.kind) {
            return;
        }
        let target = stream.new_target(&self.peer, self.shared.estimate.clone());
        let track: Arc<dyn TrackLocal> = target.track.clone();
        match pc.add_track(track.clone()).await {
            Ok(sender) => {
                if self.connected {
                    stream.attach(target.clone());
                }
                spawn_feedback_listener(track, target.clone(), stream.clone(), self.shared.clone());
                self.senders.insert(stream.kind, (sender, target, stream));
            }
            Err(e) => {
                tracing::error!(error = %e, kind = ?stream.kind, "add_track failed");
                let _ = self.env.events.send(EngineEvent::DeviceError {
                    kind: stream.kind,
                    problem: DeviceProblem::Failed,
                    message: format!("cannot send this stream to {}: {e}", self.peer),
                });
            }
        }
    }

    async fn start_receiver(
        &self,
        track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>,
    ) -> JoinHandle<()> {
        let id = track.track_id().await;
        let is_audio = matches!(track.kind().await, rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio);
        let kind =
            TrackKind::from_id(&id).unwrap_or(if is_audio { TrackKind::Audio } else { TrackKind::Camera });
        let acc = Arc::new(Mutex::new(StreamAcc::default()));
        acc.lock().stats.kind = Some(kind);
        self.shared.recv.lock().insert(kind, acc.clone());
        let ctx = RecvCtx {
            peer: self.peer.clone(),
            kind,
            mixer_source: crate::receive::mixer_source(&self.peer, self.id),
            acc,
            frames: self.env.deliver_frames.then(|| self.env.events.clone()),
            mixer: self.env.mixer.clone(),
            skew: self.shared.skew.clone(),
            video_delay_us: self.shared.video_delay_us.clone(),
            level: self.shared.audio_level.clone(),
            rtt_ms: self.shared.rtt_ms.clone(),
            display_delay_us: self.env.display_delay_us.clone(),
        };
        tracing::debug!(peer = %self.peer, ?kind, "remote track");
        if kind == TrackKind::Audio {
            tokio::spawn(run_audio(track, ctx))
        } else {
            tokio::spawn(run_video(track, ctx))
        }
    }

    async fn send_description(&mut self, pc: &Arc<dyn PeerConnection>, offer: bool) -> Result<(), String> {
        let desc = if offer {
            let restart = std::mem::take(&mut self.restart_ice);
            let options =
                restart.then_some(rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true });
            pc.create_offer(options).await
        } else {
            pc.create_answer(None).await
        }
        .map_err(|e| e.to_string())?;
        pc.set_local_description(desc).await.map_err(|e| e.to_string())?;
        let sdp =
            pc.local_description().await.map(|d| d.sdp).ok_or("no local description after setting it")?;
        let to = self.peer.clone();
        let msg = if offer { ClientMessage::Offer { to, sdp } } else { ClientMessage::Answer { to, sdp } };
        let _ = self.env.reports.send(LinkReport::Send(msg));
        Ok(())
    }

    /// Whether one of our tracks is on no m-line yet (its transceiver has no mid).
    async fn has_unnegotiated_tracks(&self, pc: &Arc<dyn PeerConnection>) -> bool {
        for t in pc.get_transceivers().await {
            if matches!(t.sender().await, Ok(Some(_))) && matches!(t.mid().await, Ok(None)) {
                return true;
            }
        }
        false
    }

    /// Negotiated payload types, once a round completes.
    async fn refresh_payload_types(&self) {
        for (sender, target, _) in self.senders.values() {
            if let Ok(p) = sender.get_parameters().await
                && let Some(c) = p.rtp_parameters.codecs.first()
            {
                target.pt.store(c.payload_type, Ordering::Relaxed);
            }
        }
    }

    async fn perform(&mut self, pc: &Arc<dyn PeerConnection>, steps: &mut VecDeque<Step>) {
        while let Some(step) = steps.pop_front() {
            match step {
                Step::CreateOffer => match self.send_description(pc, true).await {
                    Ok(()) => self.neg.local_offer_sent(),
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, error = %e, "creating an offer failed");
                        self.neg.local_offer_failed();
                    }
                },
                Step::ApplyRemote { kind, sdp, rollback_first } => {
                    if rollback_first {
                        match RTCSessionDescription::rollback(None) {
                            Ok(rb) => {
                                if let Err(e) = pc.set_local_description(rb).await {
                                    tracing::warn!(error = %e, "rollback failed");
                                }
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot build a rollback"),
                        }
                    }
                    if let Some(why) = hearth_session::sdp::unusable_codecs(&sdp) {
                        // Applying it would fail or leave a silent call: tell the peer why.
                        tracing::warn!(peer = %self.peer, why, "refusing the peer's session description");
                        let _ = self.env.reports.send(LinkReport::Send(ClientMessage::PeerError {
                            to: self.peer.clone(),
                            code: hearth_proto::peer_error_code::NO_COMMON_CODEC.to_owned(),
                            message: why,
                        }));
                        steps.extend(self.neg.remote_refused(kind));
                        continue;
                    }
                    let desc = match kind {
                        SdpKind::Offer => RTCSessionDescription::offer(sdp),
                        SdpKind::Answer => RTCSessionDescription::answer(sdp),
                    };
                    let applied = match desc {
                        Ok(d) => pc.set_remote_description(d).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    match applied {
                        Ok(()) => {
                            if kind == SdpKind::Answer {
                                self.refresh_payload_types().await;
                            }
                            steps.extend(self.neg.remote_applied(kind));
                        }
                        Err(e) => {
                            tracing::warn!(peer = %self.peer, error = %e, "the peer's session description was refused");
                            steps.extend(self.neg.remote_failed(kind));
                        }
                    }
                }
                Step::CreateAnswer => match self.send_description(pc, false).await {
                    Ok(()) => {
                        self.refresh_payload_types().await;
                        let postponed = self.neg.local_answer_sent();
                        if postponed.is_none() && self.has_unnegotiated_tracks(pc).await {
                            // The peer's offer had no m-line for some of our tracks: a newcomer
                            // offers only its own, so with our camera and screen share it
                            // gets one of them. Offer the rest ourselves (what a browser's
                            // negotiationneeded would do; webrtc-rs 0.21 does not tell us).
                            tracing::debug!(peer = %self.peer, "tracks left out of the peer's offer; offering them");
                            steps.push_back(self.neg.negotiation_needed());
                        }
                        steps.extend(postponed);
                    }
                    Err(e) => {
                        tracing::warn!(peer = %self.peer, error = %e, "creating an answer failed");
                        steps.extend(self.neg.local_answer_failed());
                    }
                },
                Step::RollbackLocal | Step::RollbackRemote => {
                    let local = matches!(step, Step::RollbackLocal);
                    let rolled = match RTCSessionDescription::rollback(None) {
                        Ok(rb) if local => pc.set_local_description(rb).await.map_err(|e| e.to_string()),
                        Ok(rb) => pc.set_remote_description(rb).await.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    if let Err(e) = rolled {
                        tracing::warn!(peer = %self.peer, error = %e, local, "rollback failed");
                    }
                }
                Step::AddCandidates(cands) => {
                    for c in cands {
                        let init = c.as_ref().map(candidate_init).unwrap_or_default();
                        if let Err(e) = pc.add_ice_candidate(init).await {
                            tracing::debug!(peer = %self.peer, error = %e, "candidate refused");
                        }
                    }
                }
                Step::Ignore(why) => tracing::trace!(peer = %self.peer, why, "negotiation input ignored"),
            }
        }
    }
}

/// Reads RTCP about one of our tracks at one peer: keyframe requests, and receiver reports for
/// RTT and "they receive us".
fn spawn_feedback_listener(
    track: Arc<dyn TrackLocal>,
    target: Arc<Target>,
    stream: Arc<SendStream>,
    shared: Arc<LinkShared>,
) {
    shared
        .outbound
        .lock()
        .insert(stream.ssrc, Outbound { kind: stream.kind, target: target.clone(), report: None });
    tokio::spawn(async move {
        loop {
            // poll() answers None until negotiation binds the track, and after the link closes.
            let Some(ev) = track.poll().await else {
                if shared.closed.load(Ordering::Relaxed) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let TrackLocalEvent::OnRtcpPacket(pkts) = ev else { continue };
            tracing::trace!(kind = ?stream.kind, n = pkts.len(), "rtcp for our track");
            for p in pkts {
                let a = p.as_any();
                if a.is::<PictureLossIndication>() || a.is::<FullIntraRequest>() {
                    stream.request_keyframe_for(&target);
                } else if let Some(rr) = a.downcast_ref::<ReceiverReport>() {
                    for r in rr.reports.iter().filter(|r| r.ssrc == stream.ssrc) {
                        target.fraction_lost.store(r.fraction_lost, Ordering::Relaxed);
                        if let Some(rtt) = rtt_from_report(r.last_sender_report, r.delay) {
                            *shared.rtt_ms.lock() = Some(rtt);
                        }
                        // Extended highest sequence number, counted from the first packet this
                        // peer was sent, minus what it lost.
                        let first = target.first_seq.load(Ordering::Relaxed);
                        if first != u32::MAX {
                            let span =
                                (u64::from(r.last_sequence_number) + 1).saturating_sub(u64::from(first));
                            let received = span.saturating_sub(u64::from(r.total_lost));
                            let sent = target.sent_packets.load(Ordering::Relaxed);
                            if received == 0 && sent > 20 {
                                // Seen once in ~90 runs of a call with a screen share starting
                                // (cli.rs scripted_actions): kept to find out why.
                                tracing::debug!(kind = ?stream.kind, first, last = r.last_sequence_number,
                                    lost = r.total_lost, sent, "a receiver report accounts for none of the packets sent");
                            }
                            if let Some(o) = shared.outbound.lock().get_mut(&stream.ssrc) {
                                o.report = Some((received, sent, Instant::now()));
                            }
                        }
                    }
                }
            }
        }
    });
}

/// The selected pair in the wire protocol's terms.
fn call_path(security: &crate::rtc_setup::LinkSecurity) -> Option<hearth_proto::CallPath> {
    use hearth_proto::{CandidateType, RelayTransport};
    let kind = |t: &Option<String>| match t.as_deref()? {
        "host" => Some(CandidateType::Host),
        "srflx" => Some(CandidateType::Srflx),
        "prflx" => Some(CandidateType::Prflx),
        "relay" => Some(CandidateType::Relay),
        _ => None,
    };
    let relay = match security.relay_transport.as_deref() {
        Some("udp") => Some(RelayTransport::Udp),
        Some("tcp") => Some(RelayTransport::Tcp),
        Some("tls") => Some(RelayTransport::Tls),
        _ => None,
    };
    Some(hearth_proto::CallPath {
        local: kind(&security.local_candidate)?,
        remote: kind(&security.remote_candidate)?,
        relay,
    })
}

/// A statistics snapshot of a link.
pub async fn snapshot(shared: &LinkShared, name: String) -> PeerStats {
    let pc = shared.pc.lock().clone();
    let security = match &pc {
        Some(pc) => crate::rtc_setup::link_security(pc, &shared.turn_paths).await,
        None => crate::rtc_setup::LinkSecurity::default(),
    };
    let (mut sent, mut received, mut jitter, mut lost, mut got) = (0u64, 0u64, None::<f64>, 0u64, 0u64);
    if let Some(pc) = &pc {
        let report = pc.get_stats(Instant::now(), webrtc::peer_connection::StatsSelector::None).await;
        if let Some(t) = report.transport() {
            sent = t.bytes_sent;
            received = t.bytes_received;
        }
        for inbound in report.inbound_rtp_streams() {
            let r = &inbound.received_rtp_stream_stats;
            let clock =
                if r.rtp_stream_stats.kind.to_string().contains("audio") { 48_000.0 } else { 90_000.0 };
            // 0.21 reports jitter in RTP timestamp units.
            let ms = r.jitter * 1000.0 / clock;
            jitter = Some(jitter.map_or(ms, |j: f64| j.max(ms)));
            lost += u64::try_from(r.packets_lost.max(0)).unwrap_or(0);
            got += r.packets_received;
        }
    }
    let now = Instant::now();
    let connected_at = *shared.connected_at.lock();
    let (sent_kbps_avg, received_kbps_avg) = match connected_at {
        Some(t) if now > t => {
            let secs = now.duration_since(t).as_secs_f64();
            (sent as f64 * 8.0 / 1000.0 / secs, received as f64 * 8.0 / 1000.0 / secs)
        }
        _ => (0.0, 0.0),
    };
    let (sent_kbps, received_kbps) = {
        let mut last = shared.last_bytes.lock();
        // Since the last snapshot, or on the first one since connecting.
        let since = last.or_else(|| shared.connected_at.lock().map(|t| (t, 0, 0)));
        let rates = match since {
            Some((t, s, r)) if now > t => {
                let secs = now.duration_since(t).as_secs_f64();
                (
                    sent.saturating_sub(s) as f64 * 8.0 / 1000.0 / secs,
                    received.saturating_sub(r) as f64 * 8.0 / 1000.0 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        *last = Some((now, sent, received));
        rates
    };
    let recv = shared.recv.lock().clone();
    let stream = |k: TrackKind| recv.get(&k).map(|a| a.lock().snapshot()).unwrap_or_default();
    let (audio, camera, screen) =
        (stream(TrackKind::Audio), stream(TrackKind::Camera), stream(TrackKind::Screen));
    let rtt_ms = *shared.rtt_ms.lock();
    let loss_pct = (got + lost > 0).then(|| lost as f64 * 100.0 / (got + lost) as f64);
    let video_fps = (camera.frames_decoded > 0).then_some(camera.fps);
    let measure = LinkMeasure { rtt_ms, jitter_ms: jitter, loss_pct, video_fps };
    let mut outbound: Vec<OutboundStats> = shared
        .outbound
        .lock()
        .values()
        .map(|o| OutboundStats {
            kind: Some(o.kind),
            packets_sent: o.target.sent_packets.load(Ordering::Relaxed),
            peer_received_packets: o.report.map(|(received, _, _)| received),
            packets_sent_at_report: o.report.map_or(0, |(_, sent, _)| sent),
            report_age_ms: o.report.map(|(_, _, at)| now.duration_since(at).as_secs_f64() * 1000.0),
        })
        .collect();
    outbound.sort_by_key(|o| o.kind);
    let peer_received_packets = outbound.iter().filter_map(|o| o.peer_received_packets).sum();
    let (lip_sync_skew, lip_sync_skew_p50_ms) = {
        let skew = shared.skew.lock();
        let samples = skew.samples_us();
        let abs: Vec<u64> = samples.iter().map(|s| s.unsigned_abs()).collect();
        let mut signed = samples.to_vec();
        signed.sort_unstable();
        (Latency::from_us(&abs), signed.get(signed.len() / 2).map(|m| *m as f64 / 1000.0))
    };
    PeerStats {
        peer_id: shared.peer.to_string(),
        name,
        connected: connected_at.is_some() && pc.is_some(),
        connect_ms: connected_at.map(|t| t.duration_since(shared.opened_at).as_secs_f64() * 1000.0),
        connected_at_us: connected_at
            .map(|t| hearth_media::now_us().saturating_sub(now.duration_since(t).as_micros() as u64)),
        rtt_ms,
        jitter_ms: jitter,
        loss_pct,
        send_estimate_kbps: shared.estimate.bps().map(|b| b as f64 / 1000.0),
        quality: quality(&measure).as_str(),
        sent_kbps,
        received_kbps,
        sent_kbps_avg,
        received_kbps_avg,
        peer_received_packets,
        outbound,
        lip_sync_skew,
        lip_sync_skew_p50_ms,
        local_fingerprint: security.local_fingerprint,
        remote_fingerprint: security.remote_fingerprint,
        local_candidate: security.local_candidate,
        remote_candidate: security.remote_candidate,
        candidate_protocol: security.candidate_protocol,
        relay_transport: security.relay_transport,
        audio,
        camera,
        screen,
    }
}
