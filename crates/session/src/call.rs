//! One participant's view of a call: who is in the room, what they send, which peer links to
//! open and close, chat. Sans-IO: server messages, user commands and link events go in;
//! [`Action`]s come out of [`Call::poll_action`].
//!
//! Rules:
//! - On `welcome`, open a link to every peer already there and offer (the newcomer offers).
//! - On `peer_joined`, open a link and wait for its offer. A newcomer that has not offered
//!   within [`NEWCOMER_OFFER_WAIT`] (a client that waits to be offered to) is offered to: the
//!   link is rebuilt as an offering one; perfect negotiation resolves a crossing offer.
//! - On `peer_left`, close the link. A peer that is `reconnecting` keeps its link (media often
//!   survives a signaling blip); if the link fails meanwhile, it is closed at once so its
//!   resources are freed.
//! - A failed link to a peer still in the room is rebuilt: the impolite side offers afresh; an
//!   offer arriving for a failed or closed link replaces it.
//! - Each link's outcome is reported to the server once (`call_report`).

use crate::negotiation::is_polite;
use hearth_proto::{
    CallOutcome, CallPath, ChatMessage, ClientMessage, ErrorCode, IceCandidate, Join, LeaveReason,
    MediaState, PeerId, PeerInfo, Resume, ServerMessage, Welcome,
};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// The state of the media link (peer connection) to one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    Connecting,
    Connected,
    /// Temporarily lost (ICE disconnected); may come back on its own.
    Disconnected,
    Failed,
    Closed,
}

/// A signal for a peer's link, relayed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Offer(String),
    Answer(String),
    Candidate(Option<IceCandidate>),
}

/// Things the app shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    Joined {
        peer_id: PeerId,
        room: String,
        name: String,
        peers: Vec<PeerInfo>,
        resumed: bool,
    },
    PeerJoined(PeerInfo),
    PeerLeft {
        peer_id: PeerId,
        reason: LeaveReason,
    },
    PeerReconnecting(PeerId),
    PeerReconnected(PeerId),
    PeerMedia {
        peer_id: PeerId,
        state: MediaState,
    },
    Hand {
        peer_id: PeerId,
        raised: bool,
    },
    Reaction {
        from: PeerId,
        emoji: String,
    },
    Chat(ChatMessage),
    Link {
        peer_id: PeerId,
        state: LinkState,
    },
    /// The server refused something; `message` is for people.
    ServerError {
        code: ErrorCode,
        message: String,
    },
    /// A peer could not negotiate media with us (e.g. it supports none of our codecs);
    /// `message` is for people.
    PeerError {
        peer_id: PeerId,
        code: String,
        message: String,
    },
    /// The server is going away; the driver should reconnect after the delay.
    ServerShutdown {
        retry_after_ms: u64,
    },
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(ClientMessage),
    /// Create a peer connection to `peer`; if `offer`, start negotiating at once.
    OpenLink {
        peer: PeerId,
        polite: bool,
        offer: bool,
    },
    CloseLink {
        peer: PeerId,
    },
    /// Restart ICE on the link to `peer` (new credentials, candidates gathered again on the
    /// interfaces there are now), keeping the peer connection and its media.
    RestartIce {
        peer: PeerId,
    },
    /// Hand a relayed signal to `peer`'s link (its negotiator decides what to do).
    Signal {
        peer: PeerId,
        signal: Signal,
    },
    Emit(CallEvent),
}

#[derive(Debug, Clone)]
struct Remote {
    info: PeerInfo,
    link: Option<LinkState>,
    link_opened: Option<Instant>,
    reported: bool,
    /// The selected candidate pair of the link, once the driver has read it.
    path: Option<CallPath>,
    /// The link has been connected at least once.
    ever_connected: bool,
    /// An ICE restart is under way (since then); the link is rebuilt if it has not connected
    /// again after [`ICE_RESTART_TIMEOUT`].
    restart_since: Option<Instant>,
    /// Consecutive rebuilds of this peer's link without it connecting, and when the next is due.
    relink_attempts: u32,
    relink_at: Option<Instant>,
    /// Set when the peer joined after us and we wait for its first offer.
    awaiting_offer_since: Option<Instant>,
    /// The SDP session id of the peer connection at the other end of our link, from its
    /// descriptions (see `sdp::session_id`).
    remote_session: Option<String>,
}

/// A link still not connected after this long is treated as failed (its negotiation was lost,
/// e.g. in a signaling outage) and rebuilt.
pub const LINK_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an existing member waits for a newcomer's first offer before offering itself.
pub const NEWCOMER_OFFER_WAIT: Duration = Duration::from_secs(2);

/// See the module docs.
#[derive(Debug, Default)]
pub struct Call {
    me: Option<PeerId>,
    room: Option<String>,
    name: String,
    local_media: MediaState,
    peers: BTreeMap<PeerId, Remote>,
    resume_token: Option<String>,
    last_seq: u64,
    actions: VecDeque<Action>,
}

impl Call {
    pub fn new() -> Call {
        Call::default()
    }

    pub fn me(&self) -> Option<&PeerId> {
        self.me.as_ref()
    }

    pub fn room(&self) -> Option<&str> {
        self.room.as_deref()
    }

    pub fn peers(&self) -> impl Iterator<Item = &PeerInfo> {
        self.peers.values().map(|r| &r.info)
    }

    pub fn peer(&self, id: &PeerId) -> Option<&PeerInfo> {
        self.peers.get(id).map(|r| &r.info)
    }

    pub fn link_state(&self, id: &PeerId) -> Option<LinkState> {
        self.peers.get(id).and_then(|r| r.link)
    }

    pub fn local_media(&self) -> MediaState {
        self.local_media
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn push(&mut self, a: Action) {
        self.actions.push_back(a);
    }

    fn emit(&mut self, e: CallEvent) {
        self.push(Action::Emit(e));
    }

    /// Join a room.
    pub fn join(&mut self, join: Join) {
        self.name = join.name.clone();
        self.local_media = join.media;
        self.push(Action::Send(ClientMessage::Join(join)));
    }

    /// The join that takes the session back after the signaling connection dropped, if the
    /// session can still be resumed.
    pub fn resume_join(&self) -> Option<Join> {
        let (room, token) = (self.room.clone()?, self.resume_token.clone()?);
        let mut j = Join::new(room, self.name.clone());
        j.resume = Some(Resume { token, last_seq: self.last_seq });
        j.media = self.local_media;
        Some(j)
    }

    /// Leave the room: tell the server and close every link.
    pub fn leave(&mut self) {
        if self.me.is_some() {
            self.push(Action::Send(ClientMessage::Leave));
        }
        self.reset();
    }

    /// Forget the session without telling the server (it no longer knows it, e.g. after a
    /// failed resume): close every link, so a fresh join starts clean.
    pub fn reset(&mut self) {
        let ids: Vec<PeerId> = self.peers.keys().cloned().collect();
        for id in ids {
            self.close_link(&id);
        }
        self.peers.clear();
        self.me = None;
        self.resume_token = None;
    }

    /// Change what we send (mute, camera, screen share) and tell the room.
    pub fn set_media(&mut self, state: MediaState) {
        if state == self.local_media {
            return;
        }
        self.local_media = state;
        if self.me.is_some() {
            self.push(Action::Send(ClientMessage::MediaState { state }));
        }
    }

    pub fn chat(&mut self, text: String, to: Option<PeerId>) {
        self.push(Action::Send(ClientMessage::Chat { text, to }));
    }

    pub fn react(&mut self, emoji: String) {
        self.push(Action::Send(ClientMessage::Reaction { emoji }));
    }

    pub fn raise_hand(&mut self, raised: bool) {
        self.push(Action::Send(ClientMessage::RaiseHand { raised }));
    }

    fn open_link(&mut self, now: Instant, peer: &PeerId, offer: bool) {
        let Some(me) = self.me.clone() else { return };
        let polite = is_polite(me.as_str(), peer.as_str());
        if let Some(r) = self.peers.get_mut(peer) {
            r.link = Some(LinkState::Connecting);
            r.link_opened = Some(now);
            r.reported = false;
            r.path = None;
            r.ever_connected = false;
            r.restart_since = None;
            r.remote_session = None;
        }
        self.push(Action::OpenLink { peer: peer.clone(), polite, offer });
    }

    fn close_link(&mut self, peer: &PeerId) {
        if let Some(r) = self.peers.get_mut(peer)
            && r.link.is_some_and(|l| l != LinkState::Closed)
        {
            r.link = Some(LinkState::Closed);
            self.actions.push_back(Action::CloseLink { peer: peer.clone() });
        }
    }

    fn add_peer(&mut self, info: PeerInfo) {
        self.peers.insert(
            info.id.clone(),
            Remote {
                info,
                link: None,
                link_opened: None,
                reported: false,
                path: None,
                ever_connected: false,
                restart_since: None,
                relink_attempts: 0,
                relink_at: None,
                awaiting_offer_since: None,
                remote_session: None,
            },
        );
    }

    fn on_welcome(&mut self, now: Instant, w: Welcome) {
        let resumed = w.resumed;
        self.me = Some(w.peer_id.clone());
        self.room = Some(w.room.clone());
        self.name = w.name.clone();
        self.resume_token = Some(w.resume_token.clone());
        let history_max = w.history.iter().map(|m| m.seq).max().unwrap_or(0);
        // Chat positions belong to one session: a fresh join starts over.
        self.last_seq = if resumed { self.last_seq.max(history_max) } else { history_max };
        // On resume, reconcile: peers gone meanwhile are dropped, new ones linked.
        let listed: BTreeMap<PeerId, PeerInfo> = w.peers.iter().map(|p| (p.id.clone(), p.clone())).collect();
        let gone: Vec<PeerId> = self.peers.keys().filter(|id| !listed.contains_key(*id)).cloned().collect();
        for id in gone {
            self.close_link(&id);
            self.peers.remove(&id);
            self.emit(CallEvent::PeerLeft { peer_id: id, reason: LeaveReason::Timeout });
        }
        self.emit(CallEvent::Joined {
            peer_id: w.peer_id.clone(),
            room: w.room.clone(),
            name: w.name.clone(),
            peers: w.peers.clone(),
            resumed,
        });
        for m in w.history {
            self.emit(CallEvent::Chat(m));
        }
        for (id, info) in listed {
            let known = self
                .peers
                .get(&id)
                .is_some_and(|r| r.link.is_some_and(|l| l != LinkState::Closed && l != LinkState::Failed));
            if known {
                if let Some(r) = self.peers.get_mut(&id) {
                    r.info = info;
                }
                continue;
            }
            self.add_peer(info);
            self.open_link(now, &id, true);
        }
    }

    /// A message from the signaling server.
    pub fn handle_server(&mut self, now: Instant, msg: ServerMessage) {
        match msg {
            ServerMessage::Welcome(w) => self.on_welcome(now, w),
            ServerMessage::PeerJoined { peer } => {
                let id = peer.id.clone();
                self.add_peer(peer.clone());
                self.emit(CallEvent::PeerJoined(peer));
                self.open_link(now, &id, false);
                if let Some(r) = self.peers.get_mut(&id) {
                    r.awaiting_offer_since = Some(now);
                }
            }
            ServerMessage::PeerLeft { peer_id, reason } => {
                self.close_link(&peer_id);
                if self.peers.remove(&peer_id).is_some() {
                    self.emit(CallEvent::PeerLeft { peer_id, reason });
                }
            }
            ServerMessage::PeerReconnecting { peer_id } => {
                if let Some(r) = self.peers.get_mut(&peer_id) {
                    r.info.reconnecting = true;
                    let dead = matches!(r.link, Some(LinkState::Failed | LinkState::Disconnected));
                    if dead {
                        self.close_link(&peer_id);
                    }
                    self.emit(CallEvent::PeerReconnecting(peer_id));
                }
            }
            ServerMessage::PeerReconnected { peer_id } => {
                let relink = match self.peers.get_mut(&peer_id) {
                    Some(r) => {
                        r.info.reconnecting = false;
                        matches!(r.link, Some(LinkState::Closed | LinkState::Failed))
                    }
                    None => false,
                };
                self.emit(CallEvent::PeerReconnected(peer_id.clone()));
                if relink {
                    self.relink(now, &peer_id);
                }
            }
            ServerMessage::Offer { from, sdp } => {
                let session = crate::sdp::session_id(&sdp).map(str::to_owned);
                if let Some(r) = self.peers.get_mut(&from) {
                    r.awaiting_offer_since = None;
                }
                // An offer from a new peer connection (the peer rebuilt its link, e.g. its DTLS
                // handshake failed while ours still waits) cannot be applied to our old one: its
                // DTLS would never complete. Rebuild ours to answer it.
                let replaced = self.peers.get(&from).is_some_and(|r| {
                    r.remote_session.is_some() && session.is_some() && r.remote_session != session
                });
                let usable = !replaced
                    && self
                        .peers
                        .get(&from)
                        .and_then(|r| r.link)
                        .is_some_and(|l| !matches!(l, LinkState::Closed | LinkState::Failed));
                if !usable {
                    if !self.peers.contains_key(&from) {
                        // An offer can only come from a room member; learn it as a peer.
                        self.add_peer(PeerInfo {
                            id: from.clone(),
                            name: String::new(),
                            media: MediaState::default(),
                            hand_raised: false,
                            reconnecting: false,
                        });
                    }
                    if self.peers.get(&from).is_some_and(|r| r.link.is_some()) {
                        self.push(Action::CloseLink { peer: from.clone() });
                    }
                    self.open_link(now, &from, false);
                }
                if let Some(r) = self.peers.get_mut(&from)
                    && session.is_some()
                {
                    r.remote_session = session;
                }
                self.push(Action::Signal { peer: from, signal: Signal::Offer(sdp) });
            }
            ServerMessage::Answer { from, sdp } => {
                if let Some(r) = self.peers.get_mut(&from) {
                    if let Some(session) = crate::sdp::session_id(&sdp) {
                        r.remote_session = Some(session.to_owned());
                    }
                    self.push(Action::Signal { peer: from, signal: Signal::Answer(sdp) });
                }
            }
            ServerMessage::IceCandidate { from, candidate } => {
                if self.peers.contains_key(&from) {
                    self.push(Action::Signal { peer: from, signal: Signal::Candidate(candidate) });
                }
            }
            ServerMessage::MediaState { peer_id, state } => {
                if Some(&peer_id) == self.me.as_ref() {
                    return; // our own echo
                }
                if let Some(r) = self.peers.get_mut(&peer_id) {
                    r.info.media = state;
                    self.emit(CallEvent::PeerMedia { peer_id, state });
                }
            }
            ServerMessage::RaiseHand { peer_id, raised } => {
                if let Some(r) = self.peers.get_mut(&peer_id) {
                    r.info.hand_raised = raised;
                }
                self.emit(CallEvent::Hand { peer_id, raised });
            }
            ServerMessage::Reaction { from, emoji, .. } => self.emit(CallEvent::Reaction { from, emoji }),
            ServerMessage::Chat { message } => {
                self.last_seq = self.last_seq.max(message.seq);
                self.emit(CallEvent::Chat(message));
            }
            ServerMessage::Pong { .. } => {}
            ServerMessage::PeerError { from, code, message } => {
                self.emit(CallEvent::PeerError { peer_id: from, code, message })
            }
            ServerMessage::Error { code, message, .. } => self.emit(CallEvent::ServerError { code, message }),
            ServerMessage::Shutdown { retry_after_ms, .. } => {
                self.emit(CallEvent::ServerShutdown { retry_after_ms })
            }
        }
    }

    fn relink(&mut self, now: Instant, peer: &PeerId) {
        let Some(me) = self.me.clone() else { return };
        // Only the impolite side initiates, so the two sides do not both rebuild.
        if is_polite(me.as_str(), peer.as_str()) {
            return;
        }
        let Some(r) = self.peers.get_mut(peer) else { return };
        // Back off when rebuilding keeps failing (e.g. no usable network yet).
        if r.relink_attempts > 0 {
            let due = now + reconnect_delay(r.relink_attempts, 0.5);
            r.relink_attempts += 1;
            r.relink_at = Some(due);
            return;
        }
        r.relink_attempts += 1;
        r.relink_at = None;
        self.rebuild_offering(now, peer);
    }

    /// Replace the link to `peer` with a new one on which we offer.
    fn rebuild_offering(&mut self, now: Instant, peer: &PeerId) {
        self.push(Action::CloseLink { peer: peer.clone() });
        self.open_link(now, peer, true);
    }

    /// Time passes: rebuild links whose backoff has ended, and give up on links that never
    /// connected. Call it about once a second.
    pub fn tick(&mut self, now: Instant) {
        // Links whose rebuild backoff has ended, and newcomers that never offered: both are
        // rebuilt with us offering.
        let reoffer: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter_map(|(id, r)| {
                let due = r.relink_at.is_some_and(|t| t <= now) && !r.info.reconnecting;
                let silent = r.link == Some(LinkState::Connecting)
                    && r.awaiting_offer_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= NEWCOMER_OFFER_WAIT);
                if due {
                    r.relink_at = None;
                }
                if silent {
                    r.awaiting_offer_since = None;
                }
                (due || silent).then(|| id.clone())
            })
            .collect();
        for peer in reoffer {
            self.rebuild_offering(now, &peer);
        }
        let stuck: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, r)| {
                r.link == Some(LinkState::Connecting)
                    && r.link_opened.is_some_and(|t| now.saturating_duration_since(t) >= LINK_CONNECT_TIMEOUT)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for peer in stuck {
            self.link_changed_because(now, &peer, LinkState::Failed, hearth_proto::CallFailure::Timeout);
        }
        // ICE restarts that did not bring their link back: rebuild it.
        let stale: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter_map(|(id, r)| {
                let late =
                    r.restart_since.is_some_and(|t| now.saturating_duration_since(t) >= ICE_RESTART_TIMEOUT)
                        && r.link != Some(LinkState::Connected)
                        && !r.info.reconnecting;
                if late {
                    r.restart_since = None;
                    r.ever_connected = false;
                }
                late.then(|| id.clone())
            })
            .collect();
        for peer in stale {
            self.relink(now, &peer);
        }
    }

    /// The selected candidate pair of the link to `peer` (tell it before `link_changed(..,
    /// Connected)` so that the outcome report carries it).
    pub fn link_path(&mut self, peer: &PeerId, path: CallPath) {
        if let Some(r) = self.peers.get_mut(peer) {
            r.path = Some(path);
        }
    }

    /// The link to `peer` changed state.
    pub fn link_changed(&mut self, now: Instant, peer: &PeerId, state: LinkState) {
        self.link_changed_because(now, peer, state, hearth_proto::CallFailure::Ice);
    }

    /// [`Call::link_changed`], saying why a `Failed` link failed (for the outcome report).
    fn link_changed_because(
        &mut self,
        now: Instant,
        peer: &PeerId,
        state: LinkState,
        why: hearth_proto::CallFailure,
    ) {
        let Some(r) = self.peers.get_mut(peer) else { return };
        if r.link == Some(LinkState::Closed) {
            return;
        }
        r.link = Some(state);
        if state == LinkState::Connected {
            r.relink_attempts = 0;
            r.relink_at = None;
            r.ever_connected = true;
            r.restart_since = None;
        }
        let connect_ms = r
            .link_opened
            .map(|t| u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX));
        let report = match state {
            LinkState::Connected if !r.reported => Some((CallOutcome::Connected, connect_ms)),
            LinkState::Failed if !r.reported => Some((CallOutcome::Failed, None)),
            _ => None,
        };
        if report.is_some() {
            r.reported = true;
        }
        let reconnecting = r.info.reconnecting;
        let path = if state == LinkState::Connected { r.path } else { None };
        let reason = (state == LinkState::Failed).then_some(why);
        self.emit(CallEvent::Link { peer_id: peer.clone(), state });
        if let Some((outcome, connect_ms)) = report {
            self.push(Action::Send(ClientMessage::CallReport {
                peer: peer.clone(),
                outcome,
                connect_ms,
                path,
                reason,
            }));
        }
        if state == LinkState::Failed {
            if reconnecting {
                self.close_link(peer);
            } else {
                self.recover(now, peer);
            }
        }
    }

    /// Our network changed (an address came or went): restart ICE on every link now, rather
    /// than wait for the old paths to time out. Either side may offer the restart; perfect
    /// negotiation settles a collision.
    pub fn network_changed(&mut self, now: Instant) {
        let peers: Vec<PeerId> = self
            .peers
            .iter_mut()
            .filter(|(_, r)| r.link.is_some_and(|l| l != LinkState::Closed) && r.ever_connected)
            .map(|(id, r)| {
                r.restart_since.get_or_insert(now);
                id.clone()
            })
            .collect();
        for peer in peers {
            self.push(Action::RestartIce { peer });
        }
    }

    /// A link that failed: a link that worked gets an ICE restart first (from the impolite
    /// side; the polite one answers it), one that never connected, or whose restart did not
    /// bring it back, is rebuilt.
    fn recover(&mut self, now: Instant, peer: &PeerId) {
        let Some(me) = self.me.clone() else { return };
        let Some(r) = self.peers.get_mut(peer) else { return };
        if !r.ever_connected {
            self.relink(now, peer);
            return;
        }
        if r.restart_since.is_some() {
            return; // under way; `tick` rebuilds the link if it does not come back
        }
        r.restart_since = Some(now);
        if !is_polite(me.as_str(), peer.as_str()) {
            self.push(Action::RestartIce { peer: peer.clone() });
        }
    }
}

/// How long an ICE restart may take before the link is rebuilt from scratch.
pub const ICE_RESTART_TIMEOUT: Duration = Duration::from_secs(8);

/// Delay before reconnect attempt `attempt` (0-based): exponential from 250 ms, capped at 10 s,
/// with jitter from `unit` in 0.0..1.0 (half to full delay) so clients do not reconnect in lockstep.
pub fn reconnect_delay(attempt: u32, unit: f64) -> Duration {
    let base = (250u64 << attempt.min(6)).min(10_000) as f64;
    Duration::from_millis((base * (0.5 + 0.5 * unit.clamp(0.0, 1.0))) as u64)
}

/// Delay before signaling reconnect attempt `attempt`, `lost_for` after the connection was lost:
/// like [`reconnect_delay`] but at most 1.5 s for the first two minutes, so a client whose network
/// comes back is in the room again within ~2 s (resumed, or joined afresh after a long outage);
/// after that, backing off to 10 s spares a server that is down.
pub fn signal_retry_delay(attempt: u32, lost_for: Duration, unit: f64) -> Duration {
    let d = reconnect_delay(attempt, unit);
    if lost_for < Duration::from_secs(120) { d.min(Duration::from_millis(1500)) } else { d }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
