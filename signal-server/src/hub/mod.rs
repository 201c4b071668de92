//! The rooms, as a sans-IO state machine.
//!
//! The [`Hub`] never touches a socket or a clock. The driver feeds it inputs ([`Hub::connect`],
//! [`Hub::message`], [`Hub::disconnect`], [`Hub::tick`], [`Hub::shutdown`]) with the current
//! time, then drains [`Hub::poll_output`] until it returns `None`, and calls [`Hub::tick`] again
//! no later than [`Hub::poll_timeout`]:
//!
//! ```
//! use hearth_signal::hub::{ConnId, Hub, HubConfig, Output};
//! use hearth_proto::{ClientMessage, Join};
//! use std::time::Instant;
//!
//! let now = Instant::now();
//! let mut hub = Hub::new(HubConfig::default(), Some(7), now, 1_700_000_000_000);
//! hub.connect(ConnId(1));
//! hub.message(now, ConnId(1), ClientMessage::Join(Join::new("standup", "Ada")));
//! while let Some(output) = hub.poll_output() {
//!     match output {
//!         Output::Deliver { to, msg } => { /* serialize `msg` once, send to each of `to` */ }
//!         Output::Close { .. } | Output::CallReport { .. } => {}
//!     }
//! }
//! ```
//!
//! Invariants (checked by the property tests in `proptests.rs`): a message is only ever delivered
//! to connections whose session is in the room it concerns; private chat reaches only its sender
//! and its addressee; every member receives room chat in `seq` order with no duplicates and, over
//! its membership (resumes included), no gaps.

use crate::auth::{self, JoinAuth, TurnConfig};
use hearth_proto::{
    CallOutcome, ChatMessage, ClientMessage, ErrorCode, Join, LeaveReason, MediaState, PROTOCOL_VERSION,
    PeerId, PeerInfo, ServerLimits, ServerMessage, Welcome,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// A connection, numbered by the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// The rules the hub applies.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Peers per room, reconnecting ones included.
    pub max_room_size: usize,
    /// Room chat messages a late joiner receives in its welcome.
    pub history_len: usize,
    /// Chat messages (room and private) kept per room for resumes.
    pub log_len: usize,
    /// How long a dropped session may be resumed.
    pub resume_grace: Duration,
    /// Relayed messages held for a reconnecting peer.
    pub pending_limit: usize,
    pub auth: JoinAuth,
    pub stun_urls: Vec<String>,
    pub turn: Option<TurnConfig>,
    /// Announced in the welcome.
    pub limits: ServerLimits,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            max_room_size: 8,
            history_len: 100,
            log_len: 500,
            resume_grace: Duration::from_secs(30),
            pending_limit: 256,
            auth: JoinAuth::Open,
            stun_urls: Vec::new(),
            turn: None,
            limits: ServerLimits {
                max_message_bytes: 64 * 1024,
                max_room_size: 8,
                rate_per_sec: 50,
                rate_burst: 200,
            },
        }
    }
}

/// What the driver must do.
// Outputs live only between `message()` and `poll_output()`; boxing the big welcome would cost
// an allocation on every delivery instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `msg` to each connection in `to`, in order after every earlier output.
    Deliver { to: Vec<ConnId>, msg: ServerMessage },
    /// Close a connection (its session moved to another connection).
    Close { conn: ConnId, code: u16, reason: &'static str },
    /// A client reported a call outcome (for metrics).
    CallReport { outcome: CallOutcome, connect_ms: Option<u64> },
}

#[derive(Debug)]
struct Session {
    room: String,
    name: String,
    media: MediaState,
    hand_raised: bool,
    conn: Option<ConnId>,
    /// Set while reconnecting: when the session is dropped for good.
    deadline: Option<Instant>,
    resume_token: String,
    /// Relayed messages held while reconnecting.
    pending: VecDeque<ServerMessage>,
}

#[derive(Debug, Default)]
struct Room {
    /// In join order.
    members: Vec<PeerId>,
    password: Option<String>,
    log: VecDeque<ChatMessage>,
    next_seq: u64,
}

/// The rooms of one server. See the module docs for how to drive it.
#[derive(Debug)]
pub struct Hub {
    cfg: HubConfig,
    rng: StdRng,
    epoch: Instant,
    epoch_unix_ms: u64,
    /// Every open connection, with its session once joined.
    conns: HashMap<ConnId, Option<PeerId>>,
    sessions: HashMap<PeerId, Session>,
    tokens: HashMap<String, PeerId>,
    rooms: HashMap<String, Room>,
    deadlines: BTreeSet<(Instant, PeerId)>,
    out: VecDeque<Output>,
    draining: bool,
    msg_id_prefix: u32,
    next_msg_id: u64,
}

impl Hub {
    /// A hub with no rooms. `seed` makes ids reproducible (tests); `None` seeds from the OS.
    /// `now` and `now_unix_ms` tie the monotonic clock to wall time for timestamps.
    pub fn new(cfg: HubConfig, seed: Option<u64>, now: Instant, now_unix_ms: u64) -> Hub {
        let mut rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_os_rng(),
        };
        Hub {
            msg_id_prefix: rng.random(),
            cfg,
            rng,
            epoch: now,
            epoch_unix_ms: now_unix_ms,
            conns: HashMap::new(),
            sessions: HashMap::new(),
            tokens: HashMap::new(),
            rooms: HashMap::new(),
            deadlines: BTreeSet::new(),
            out: VecDeque::new(),
            draining: false,
            next_msg_id: 0,
        }
    }

    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// Rooms that exist now.
    pub fn room_count(&self) -> usize {
        self.rooms.len()
    }

    /// Sessions, reconnecting ones included.
    pub fn peer_count(&self) -> usize {
        self.sessions.len()
    }

    /// The next output to carry out, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Hub::tick`] must be called next, if anything is waiting on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// A new connection opened.
    pub fn connect(&mut self, conn: ConnId) {
        self.conns.insert(conn, None);
    }

    /// A connection closed (cleanly or not). A joined session enters its grace period.
    pub fn disconnect(&mut self, now: Instant, conn: ConnId) {
        let Some(Some(peer)) = self.conns.remove(&conn) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        if session.conn != Some(conn) {
            return;
        }
        session.conn = None;
        if self.cfg.resume_grace.is_zero() || self.draining {
            let reason = if self.draining { LeaveReason::ServerShutdown } else { LeaveReason::Timeout };
            self.remove_session(&peer, reason);
            return;
        }
        let deadline = now + self.cfg.resume_grace;
        session.deadline = Some(deadline);
        let room = session.room.clone();
        self.deadlines.insert((deadline, peer.clone()));
        self.deliver_room(&room, Some(&peer), ServerMessage::PeerReconnecting { peer_id: peer.clone() });
    }

    /// Drop sessions whose grace period has passed.
    pub fn tick(&mut self, now: Instant) {
        while let Some((at, peer)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, peer.clone()));
            self.remove_session(&peer, LeaveReason::Timeout);
        }
    }

    /// The server is shutting down: tell every connection and refuse new joins.
    pub fn shutdown(&mut self, reason: &str, retry_after_ms: u64) {
        self.draining = true;
        let mut to: Vec<ConnId> = self.conns.keys().copied().collect();
        to.sort();
        self.deliver(to, ServerMessage::Shutdown { reason: reason.to_owned(), retry_after_ms });
    }

    /// A message arrived on `conn`.
    pub fn message(&mut self, now: Instant, conn: ConnId, msg: ClientMessage) {
        let Some(joined) = self.conns.get(&conn).cloned() else {
            return; // Not (or no longer) a connection: nothing to answer.
        };
        let type_name = msg.type_name();
        if let Err(e) = msg.validate() {
            return self.error(conn, e.code(), e.to_string(), type_name);
        }
        let (msg, peer) = match (msg, joined) {
            (ClientMessage::Ping { nonce }, _) => {
                let server_time_ms = self.unix_ms(now);
                return self.deliver(vec![conn], ServerMessage::Pong { nonce, server_time_ms });
            }
            (ClientMessage::Join(join), None) => return self.join(now, conn, join),
            (ClientMessage::Join(_), Some(_)) => {
                return self.error(
                    conn,
                    ErrorCode::AlreadyJoined,
                    "this connection is already in a room; send leave first",
                    type_name,
                );
            }
            (msg, Some(peer)) => (msg, peer),
            (_, None) => {
                return self.error(
                    conn,
                    ErrorCode::NotJoined,
                    "join a room before sending this message",
                    type_name,
                );
            }
        };
        match msg {
            ClientMessage::Leave => self.remove_session(&peer, LeaveReason::Left),
            ClientMessage::Offer { to, sdp } => {
                self.relay(conn, &peer, &to, type_name, ServerMessage::Offer { from: peer.clone(), sdp })
            }
            ClientMessage::Answer { to, sdp } => {
                self.relay(conn, &peer, &to, type_name, ServerMessage::Answer { from: peer.clone(), sdp })
            }
            ClientMessage::IceCandidate { to, candidate } => self.relay(
                conn,
                &peer,
                &to,
                type_name,
                ServerMessage::IceCandidate { from: peer.clone(), candidate },
            ),
            ClientMessage::MediaState { state } => {
                let Some(s) = self.sessions.get_mut(&peer) else { return };
                s.media = state;
                let room = s.room.clone();
                self.deliver_room(&room, None, ServerMessage::MediaState { peer_id: peer, state });
            }
            ClientMessage::RaiseHand { raised } => {
                let Some(s) = self.sessions.get_mut(&peer) else { return };
                s.hand_raised = raised;
                let room = s.room.clone();
                self.deliver_room(&room, None, ServerMessage::RaiseHand { peer_id: peer, raised });
            }
            ClientMessage::Reaction { emoji } => {
                let Some(room) = self.sessions.get(&peer).map(|s| s.room.clone()) else { return };
                let ts_ms = self.unix_ms(now);
                self.deliver_room(&room, None, ServerMessage::Reaction { from: peer, emoji, ts_ms });
            }
            ClientMessage::Chat { text, to } => self.chat(now, conn, &peer, text, to),
            ClientMessage::CallReport { peer: other, outcome, connect_ms } => {
                if !self.same_room(&peer, &other) {
                    return self.error(conn, ErrorCode::PeerNotFound, not_in_room(&other), type_name);
                }
                self.out.push_back(Output::CallReport { outcome, connect_ms });
            }
            ClientMessage::Ping { .. } | ClientMessage::Join(_) => {} // handled above
        }
    }

    fn join(&mut self, now: Instant, conn: ConnId, join: Join) {
        if self.draining {
            return self.error(
                conn,
                ErrorCode::ShuttingDown,
                "the server is shutting down; reconnect in a moment",
                "join",
            );
        }
        if join.protocol != PROTOCOL_VERSION {
            return self.error(
                conn,
                ErrorCode::VersionMismatch,
                format!(
                    "this server speaks Hearth protocol {PROTOCOL_VERSION} but the client speaks {}; update the client or the server",
                    join.protocol
                ),
                "join",
            );
        }
        if let Some(resume) = &join.resume {
            return self.resume(now, conn, &join.room, &resume.token, resume.last_seq, join.media);
        }
        let mut name = join.name.trim().to_owned();
        if let JoinAuth::Jwt { secret, leeway_secs } = &self.cfg.auth {
            let Some(token) = join.token.as_deref() else {
                return self.error(
                    conn,
                    ErrorCode::TokenRequired,
                    "this server requires a room token; ask the meeting's host for a link with one",
                    "join",
                );
            };
            match auth::verify_room_token(secret, *leeway_secs, token, &join.room, self.unix_ms(now) / 1000) {
                Ok(grant) => {
                    if let Some(n) = grant.name {
                        name = n;
                    }
                }
                Err(e) => return self.error(conn, e.code, e.message, "join"),
            }
        }
        if let Some(room) = self.rooms.get(&join.room) {
            match (&room.password, &join.password) {
                (Some(_), None) => {
                    return self.error(
                        conn,
                        ErrorCode::PasswordRequired,
                        format!("room {:?} is locked with a password; enter it to join", join.room),
                        "join",
                    );
                }
                (Some(expected), Some(given)) if !auth::password_matches(expected, given) => {
                    return self.error(
                        conn,
                        ErrorCode::WrongPassword,
                        format!("wrong password for room {:?}", join.room),
                        "join",
                    );
                }
                _ => {}
            }
            if room.members.len() >= self.cfg.max_room_size {
                return self.error(
                    conn,
                    ErrorCode::RoomFull,
                    format!(
                        "room {:?} is full ({} of {}); try again later",
                        join.room,
                        room.members.len(),
                        self.cfg.max_room_size
                    ),
                    "join",
                );
            }
        }

        let peer = self.new_peer_id();
        let resume_token = self.new_token();
        let room = self.rooms.entry(join.room.clone()).or_insert_with(|| Room {
            password: join.password.clone().filter(|p| !p.is_empty()),
            next_seq: 1,
            ..Room::default()
        });
        room.members.push(peer.clone());
        let history: Vec<ChatMessage> = {
            let room_chat: Vec<&ChatMessage> = room.log.iter().filter(|m| m.to.is_none()).collect();
            let skip = room_chat.len().saturating_sub(self.cfg.history_len);
            room_chat.into_iter().skip(skip).cloned().collect()
        };
        self.tokens.insert(resume_token.clone(), peer.clone());
        self.sessions.insert(
            peer.clone(),
            Session {
                room: join.room.clone(),
                name: name.clone(),
                media: join.media,
                hand_raised: false,
                conn: Some(conn),
                deadline: None,
                resume_token: resume_token.clone(),
                pending: VecDeque::new(),
            },
        );
        self.conns.insert(conn, Some(peer.clone()));
        let welcome = self.welcome(now, &peer, history, false);
        self.deliver(vec![conn], welcome);
        let info = self.peer_info(&peer);
        if let Some(info) = info {
            self.deliver_room(&join.room, Some(&peer), ServerMessage::PeerJoined { peer: info });
        }
    }

    fn resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        room: &str,
        token: &str,
        last_seq: u64,
        media: MediaState,
    ) {
        let Some(peer) = self.tokens.get(token).cloned() else {
            return self.error(
                conn,
                ErrorCode::ResumeFailed,
                "this session can no longer be resumed (it expired or never existed); join afresh",
                "join",
            );
        };
        let Some(session) = self.sessions.get_mut(&peer) else {
            return self.error(
                conn,
                ErrorCode::ResumeFailed,
                "this session no longer exists; join afresh",
                "join",
            );
        };
        if session.room != room {
            return self.error(
                conn,
                ErrorCode::ResumeFailed,
                "the resume token belongs to another room; join afresh",
                "join",
            );
        }
        let old_conn = session.conn.replace(conn);
        let was_reconnecting = session.deadline.take();
        let pending = std::mem::take(&mut session.pending);
        if let Some(at) = was_reconnecting {
            self.deadlines.remove(&(at, peer.clone()));
        }
        if let Some(old) = old_conn {
            // The client noticed the drop before we did: the old socket is dead to it.
            self.conns.insert(old, None);
            self.out.push_back(Output::Close {
                conn: old,
                code: hearth_proto::close_code::NORMAL,
                reason: "session resumed on another connection",
            });
        }
        self.conns.insert(conn, Some(peer.clone()));
        let history = self
            .rooms
            .get(room)
            .map(|r| r.log.iter().filter(|m| m.seq > last_seq && visible_to(m, &peer)).cloned().collect())
            .unwrap_or_default();
        let welcome = self.welcome(now, &peer, history, true);
        self.deliver(vec![conn], welcome);
        for msg in pending {
            self.deliver(vec![conn], msg);
        }
        if was_reconnecting.is_some() {
            self.deliver_room(room, Some(&peer), ServerMessage::PeerReconnected { peer_id: peer.clone() });
        }
        // The client may have muted (or started sharing) while away: its join says how it is now.
        let changed =
            self.sessions.get_mut(&peer).is_some_and(|s| std::mem::replace(&mut s.media, media) != media);
        if changed {
            self.deliver_room(
                room,
                Some(&peer),
                ServerMessage::MediaState { peer_id: peer.clone(), state: media },
            );
        }
    }

    fn welcome(
        &mut self,
        now: Instant,
        peer: &PeerId,
        history: Vec<ChatMessage>,
        resumed: bool,
    ) -> ServerMessage {
        let Some(s) = self.sessions.get(peer) else {
            return ServerMessage::error(ErrorCode::Internal, "session vanished during join", Some("join"));
        };
        let peers = self
            .rooms
            .get(&s.room)
            .map(|r| r.members.iter().filter(|p| *p != peer).filter_map(|p| self.peer_info(p)).collect())
            .unwrap_or_default();
        let ice_servers = auth::ice_servers(
            &self.cfg.stun_urls,
            self.cfg.turn.as_ref(),
            peer.as_str(),
            self.unix_ms(now) / 1000,
        );
        ServerMessage::Welcome(Welcome {
            protocol: PROTOCOL_VERSION,
            room: s.room.clone(),
            peer_id: peer.clone(),
            name: s.name.clone(),
            peers,
            ice_servers,
            history,
            resume_token: s.resume_token.clone(),
            resume_grace_ms: u64::try_from(self.cfg.resume_grace.as_millis()).unwrap_or(u64::MAX),
            resumed,
            limits: ServerLimits {
                max_room_size: u32::try_from(self.cfg.max_room_size).unwrap_or(u32::MAX),
                ..self.cfg.limits
            },
        })
    }

    fn relay(&mut self, conn: ConnId, from: &PeerId, to: &PeerId, type_name: &str, msg: ServerMessage) {
        if !self.same_room(from, to) {
            return self.error(conn, ErrorCode::PeerNotFound, not_in_room(to), type_name);
        }
        let limit = self.cfg.pending_limit;
        let Some(target) = self.sessions.get_mut(to) else { return };
        match target.conn {
            Some(c) => self.deliver(vec![c], msg),
            None if target.pending.len() < limit => target.pending.push_back(msg),
            None => self.error(
                conn,
                ErrorCode::PeerUnavailable,
                format!("peer {to} is reconnecting and has too many messages waiting; retry later"),
                type_name,
            ),
        }
    }

    fn chat(&mut self, now: Instant, conn: ConnId, from: &PeerId, text: String, to: Option<PeerId>) {
        if let Some(to) = &to
            && !self.same_room(from, to)
        {
            return self.error(conn, ErrorCode::PeerNotFound, not_in_room(to), "chat");
        }
        let Some(s) = self.sessions.get(from) else { return };
        let room_name = s.room.clone();
        let from_name = s.name.clone();
        let ts_ms = self.unix_ms(now);
        self.next_msg_id += 1;
        let id = format!("m{:08x}{:x}", self.msg_id_prefix, self.next_msg_id);
        let log_len = self.cfg.log_len;
        let Some(room) = self.rooms.get_mut(&room_name) else { return };
        let message = ChatMessage {
            id,
            seq: room.next_seq,
            ts_ms,
            from: from.clone(),
            from_name,
            to: to.clone(),
            text,
        };
        room.next_seq += 1;
        room.log.push_back(message.clone());
        while room.log.len() > log_len.max(1) {
            room.log.pop_front();
        }
        let recipients: Vec<ConnId> = match &to {
            None => self.room_conns(&room_name, None),
            Some(to) => {
                let mut v: Vec<ConnId> = [from, to]
                    .into_iter()
                    .filter_map(|p| self.sessions.get(p).and_then(|s| s.conn))
                    .collect();
                v.dedup();
                v
            }
        };
        self.deliver(recipients, ServerMessage::Chat { message });
    }

    fn remove_session(&mut self, peer: &PeerId, reason: LeaveReason) {
        let Some(session) = self.sessions.remove(peer) else { return };
        self.tokens.remove(&session.resume_token);
        if let Some(at) = session.deadline {
            self.deadlines.remove(&(at, peer.clone()));
        }
        if let Some(c) = session.conn {
            self.conns.insert(c, None);
        }
        let room_now_empty = match self.rooms.get_mut(&session.room) {
            Some(room) => {
                room.members.retain(|p| p != peer);
                room.members.is_empty()
            }
            None => false,
        };
        if room_now_empty {
            self.rooms.remove(&session.room);
        } else {
            self.deliver_room(&session.room, None, ServerMessage::PeerLeft { peer_id: peer.clone(), reason });
        }
    }

    fn peer_info(&self, peer: &PeerId) -> Option<PeerInfo> {
        self.sessions.get(peer).map(|s| PeerInfo {
            id: peer.clone(),
            name: s.name.clone(),
            media: s.media,
            hand_raised: s.hand_raised,
            reconnecting: s.conn.is_none(),
        })
    }

    fn same_room(&self, a: &PeerId, b: &PeerId) -> bool {
        a != b
            && match (self.sessions.get(a), self.sessions.get(b)) {
                (Some(x), Some(y)) => x.room == y.room,
                _ => false,
            }
    }

    /// Connected members of `room`, in join order, except `except`.
    fn room_conns(&self, room: &str, except: Option<&PeerId>) -> Vec<ConnId> {
        self.rooms
            .get(room)
            .map(|r| {
                r.members
                    .iter()
                    .filter(|p| Some(*p) != except)
                    .filter_map(|p| self.sessions.get(p).and_then(|s| s.conn))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn deliver_room(&mut self, room: &str, except: Option<&PeerId>, msg: ServerMessage) {
        let to = self.room_conns(room, except);
        self.deliver(to, msg);
    }

    fn deliver(&mut self, to: Vec<ConnId>, msg: ServerMessage) {
        if !to.is_empty() {
            self.out.push_back(Output::Deliver { to, msg });
        }
    }

    fn error(&mut self, conn: ConnId, code: ErrorCode, message: impl Into<String>, ref_type: &str) {
        self.deliver(vec![conn], ServerMessage::error(code, message, Some(ref_type)));
    }

    fn unix_ms(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.epoch).as_millis();
        self.epoch_unix_ms.saturating_add(u64::try_from(since).unwrap_or(u64::MAX))
    }

    fn new_peer_id(&mut self) -> PeerId {
        const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
        loop {
            let id: String = std::iter::once('p')
                .chain((0..9).map(|_| char::from(ALPHABET[self.rng.random_range(0..ALPHABET.len())])))
                .collect();
            let id = PeerId(id);
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn new_token(&mut self) -> String {
        format!("{:032x}", self.rng.random::<u128>())
    }
}

fn visible_to(m: &ChatMessage, peer: &PeerId) -> bool {
    match &m.to {
        None => true,
        Some(to) => to == peer || &m.from == peer,
    }
}

fn not_in_room(peer: &PeerId) -> String {
    format!("peer {peer} is not another member of your room")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod proptests;
