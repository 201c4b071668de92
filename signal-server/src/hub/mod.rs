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
//! hub.connect(ConnId(1), std::net::Ipv4Addr::new(192, 0, 2, 1).into());
//! hub.message(now, ConnId(1), ClientMessage::Join(Join::new("standup", "Ada")));
//! while let Some(output) = hub.poll_output() {
//!     match output {
//!         Output::Deliver { to, msg } => { /* serialize `msg` once, send to each of `to` */ }
//!         Output::Close { .. } | Output::CallReport { .. } | Output::RoomClosed { .. } => {}
//!     }
//! }
//! ```
//!
//! Invariants (checked by the property tests in `proptests.rs`): a message is only ever delivered
//! to connections whose session is in the room it concerns; private chat reaches only its sender
//! and its addressee; every member receives room chat in `seq` order with no duplicates and, over
//! its membership (resumes included), no gaps.
//!
//! What it holds is bounded: chat logs and relays held for reconnecting peers in bytes (per room
//! or peer, and in total), sessions per client address, rooms a connection creates per minute,
//! locks kept for emptied rooms and wrong-password records in count.

mod attempts;
mod chat_log;

pub use attempts::BackoffPolicy;

use crate::auth::{self, AuthError, FixedRooms, JoinAuth, TurnConfig};
use attempts::Attempts;
use chat_log::{ChatLogLimits, ChatLogs};
use hearth_proto::{
    CallOutcome, ChatMessage, ClientFrame, ClientMessage, ErrorCode, Join, LeaveReason, MediaState,
    PROTOCOL_VERSION, PeerId, PeerInfo, ServerLimits, ServerMessage, Welcome, name_skeleton, normalize_name,
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
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
    /// Bytes of relayed messages held for one reconnecting peer, for a room's reconnecting
    /// peers together, and for all of them; past any, the sender gets `peer_unavailable`.
    pub held_relay_bytes_per_peer: usize,
    pub held_relay_bytes_per_room: usize,
    pub held_relay_bytes_total: usize,
    /// Bytes of chat log per room and over all rooms; past either, the oldest messages go.
    pub chat_log_bytes_per_room: usize,
    pub chat_log_bytes_total: usize,
    /// Sessions (live and reconnecting) per client address; 0 = no limit.
    pub max_sessions_per_ip: usize,
    /// Apply per-address limits to loopback clients too (off: a local reverse proxy makes every
    /// client look like loopback).
    pub ip_limits_include_loopback: bool,
    /// Rooms one connection may create per minute; 0 = no limit.
    pub max_rooms_created_per_min: usize,
    /// How long an emptied locked room keeps its password; zero forgets it with the room.
    pub room_lock_keep: Duration,
    /// Emptied rooms' locks kept at most; past it the one closest to expiry goes.
    pub max_kept_locks: usize,
    /// Rooms with a password set by the administrator.
    pub fixed_rooms: FixedRooms,
    /// Slowing down wrong passwords, per room and per client address.
    pub password_backoff: BackoffPolicy,
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
            held_relay_bytes_per_peer: 1 << 20,
            held_relay_bytes_per_room: 4 << 20,
            held_relay_bytes_total: 64 << 20,
            chat_log_bytes_per_room: 1 << 20,
            chat_log_bytes_total: 256 << 20,
            max_sessions_per_ip: 64,
            ip_limits_include_loopback: false,
            max_rooms_created_per_min: 10,
            room_lock_keep: Duration::from_secs(3600),
            max_kept_locks: 100_000,
            fixed_rooms: FixedRooms::default(),
            password_backoff: BackoffPolicy::default(),
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
    CallReport {
        outcome: CallOutcome,
        connect_ms: Option<u64>,
        path: Option<hearth_proto::CallPath>,
        reason: Option<hearth_proto::CallFailure>,
    },
    /// A room emptied: how long it lived and the most people in it at once (for metrics).
    RoomClosed { lived: std::time::Duration, peak_members: usize },
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
    /// Relayed messages held while reconnecting, and their size.
    pending: VecDeque<ServerMessage>,
    pending_bytes: usize,
    /// The client address this session counts against, if it is subject to per-address limits.
    ip: Option<IpAddr>,
    /// The `exp` of the room token it joined (or last resumed) with, when tokens are required.
    token_exp: Option<u64>,
    /// The highest client sequence number (`cseq`) taken from this session; 0 before any.
    last_cseq: u64,
}

/// What the hub knows of an open connection besides its session.
#[derive(Debug)]
struct ConnMeta {
    /// Its client address as per-address limits count it (`None`: exempt).
    ip: Option<IpAddr>,
    /// When it created rooms within the last minute.
    rooms_created: VecDeque<Instant>,
}

/// The password of a locked room that emptied, kept so nobody else can take the room over.
#[derive(Debug)]
struct KeptLock {
    password: String,
    until: Instant,
}

#[derive(Debug, Default)]
struct Room {
    /// In join order.
    members: Vec<PeerId>,
    /// When the room was made, and the most members it had at once.
    created: Option<Instant>,
    peak_members: usize,
    password: Option<String>,
    next_seq: u64,
    /// Bytes of relays held for this room's reconnecting peers.
    pending_bytes: usize,
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
    chat: ChatLogs,
    conn_meta: HashMap<ConnId, ConnMeta>,
    sessions_per_ip: HashMap<IpAddr, usize>,
    /// Bytes of relays held for all reconnecting peers.
    pending_bytes: usize,
    kept_locks: HashMap<String, KeptLock>,
    room_attempts: Attempts<String>,
    ip_attempts: Attempts<IpAddr>,
    /// When kept locks and wrong-password records are next swept, while there are any.
    next_sweep: Option<Instant>,
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
            chat: ChatLogs::new(ChatLogLimits {
                len_per_room: cfg.log_len,
                bytes_per_room: cfg.chat_log_bytes_per_room,
                bytes_total: cfg.chat_log_bytes_total,
            }),
            conn_meta: HashMap::new(),
            sessions_per_ip: HashMap::new(),
            pending_bytes: 0,
            kept_locks: HashMap::new(),
            room_attempts: Attempts::new(cfg.password_backoff),
            ip_attempts: Attempts::new(cfg.password_backoff),
            next_sweep: None,
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

    /// Bytes of relayed messages held for reconnecting peers.
    pub fn held_relay_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Bytes of chat held in the rooms' logs.
    pub fn chat_log_bytes(&self) -> usize {
        self.chat.bytes()
    }

    /// Locks kept for locked rooms that emptied.
    pub fn kept_lock_count(&self) -> usize {
        self.kept_locks.len()
    }

    /// The next output to carry out, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Hub::tick`] must be called next, if anything is waiting on time.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let grace = self.deadlines.first().map(|(at, _)| *at);
        match (grace, self.next_sweep) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A new connection opened from client address `ip`.
    pub fn connect(&mut self, conn: ConnId, ip: IpAddr) {
        self.conns.insert(conn, None);
        let ip = crate::per_ip::limit_key(ip, self.cfg.ip_limits_include_loopback);
        self.conn_meta.insert(conn, ConnMeta { ip, rooms_created: VecDeque::new() });
    }

    /// A connection closed (cleanly or not). A joined session enters its grace period.
    pub fn disconnect(&mut self, now: Instant, conn: ConnId) {
        self.conn_meta.remove(&conn);
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
            self.remove_session(now, &peer, reason);
            return;
        }
        let deadline = now + self.cfg.resume_grace;
        session.deadline = Some(deadline);
        let room = session.room.clone();
        self.deadlines.insert((deadline, peer.clone()));
        self.deliver_room(&room, Some(&peer), ServerMessage::PeerReconnecting { peer_id: peer.clone() });
    }

    /// Drop sessions whose grace period has passed; forget expired locks and old
    /// wrong-password records.
    pub fn tick(&mut self, now: Instant) {
        while let Some((at, peer)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.deadlines.remove(&(at, peer.clone()));
            self.remove_session(now, &peer, LeaveReason::Timeout);
        }
        if self.next_sweep.is_some_and(|at| at <= now) {
            self.kept_locks.retain(|_, lock| lock.until > now);
            self.room_attempts.sweep(now);
            self.ip_attempts.sweep(now);
            self.next_sweep = None;
            self.schedule_sweep(now);
        }
    }

    /// Make sure a sweep is due while there is anything to sweep.
    fn schedule_sweep(&mut self, now: Instant) {
        let anything =
            !self.kept_locks.is_empty() || !self.room_attempts.is_empty() || !self.ip_attempts.is_empty();
        if anything && self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP_INTERVAL);
        }
    }

    /// The server is shutting down: tell every connection and refuse new joins.
    pub fn shutdown(&mut self, reason: &str, retry_after_ms: u64) {
        self.draining = true;
        let mut to: Vec<ConnId> = self.conns.keys().copied().collect();
        to.sort();
        self.deliver(to, ServerMessage::Shutdown { reason: reason.to_owned(), retry_after_ms });
    }

    /// A message arrived on `conn`: a [`ClientMessage`], or a [`ClientFrame`] with its `cseq`.
    ///
    /// A numbered message whose `cseq` is not above the highest one taken from its session is a
    /// resent duplicate and is dropped without a word.
    pub fn message(&mut self, now: Instant, conn: ConnId, msg: impl Into<ClientFrame>) {
        let ClientFrame { message: msg, cseq } = msg.into();
        let Some(joined) = self.conns.get(&conn).cloned() else {
            return; // Not (or no longer) a connection: nothing to answer.
        };
        let type_name = msg.type_name();
        if let (Some(cseq), Some(peer)) = (cseq.filter(|_| msg.is_numbered()), &joined) {
            if cseq == 0 {
                return self.error(
                    conn,
                    ErrorCode::InvalidField,
                    "field \"cseq\" must be at least 1",
                    type_name,
                );
            }
            let Some(session) = self.sessions.get_mut(peer) else { return };
            if cseq <= session.last_cseq {
                return;
            }
            session.last_cseq = cseq;
        }
        if let Err(e) = msg.validate() {
            return self.error(conn, e.code(), e.to_string(), type_name);
        }
        let (msg, peer) = match (msg, joined) {
            (ClientMessage::Ping { nonce }, joined) => {
                let server_time_ms = self.unix_ms(now);
                let last_cseq = joined.and_then(|p| self.sessions.get(&p)).map(|s| s.last_cseq);
                return self.deliver(vec![conn], ServerMessage::Pong { nonce, server_time_ms, last_cseq });
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
            ClientMessage::Leave => self.remove_session(now, &peer, LeaveReason::Left),
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
            ClientMessage::PeerError { to, code, message } => self.relay(
                conn,
                &peer,
                &to,
                type_name,
                ServerMessage::PeerError { from: peer.clone(), code, message },
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
            ClientMessage::CallReport { peer: other, outcome, connect_ms, path, reason } => {
                if !self.same_room(&peer, &other) {
                    return self.error(conn, ErrorCode::PeerNotFound, not_in_room(&other), type_name);
                }
                // A reason only goes with a failure.
                let reason = reason.filter(|_| outcome == CallOutcome::Failed);
                self.out.push_back(Output::CallReport { outcome, connect_ms, path, reason });
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
        // Names are kept and compared in one form: " standup" and "standup" are one room.
        let mut join = join;
        join.room = normalize_name(&join.room);
        if let Some(resume) = &join.resume {
            return self.resume(
                now,
                conn,
                &join.room,
                &resume.token,
                resume.last_seq,
                join.media,
                join.token.as_deref(),
            );
        }
        let mut name = normalize_name(&join.name);
        let mut password = join.password.clone().filter(|p| !p.is_empty());
        let mut token_exp = None;
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
                        // Checked by the token verification against the same name rules.
                        name = normalize_name(&n);
                    }
                    if grant.password.is_some() {
                        password = grant.password;
                    }
                    token_exp = Some(grant.exp);
                }
                Err(e) => return self.error(conn, e.code, e.message, "join"),
            }
        }
        let ip = self.conn_meta.get(&conn).and_then(|m| m.ip);
        if let Some(ip) = ip
            && self.cfg.max_sessions_per_ip > 0
            && self.sessions_per_ip.get(&ip).copied().unwrap_or(0) >= self.cfg.max_sessions_per_ip
        {
            return self.error(
                conn,
                ErrorCode::ServerFull,
                format!(
                    "your address already holds {} sessions, the most allowed (dropped ones count until their grace period ends); leave a room or try again later",
                    self.cfg.max_sessions_per_ip
                ),
                "join",
            );
        }
        if let Err(e) = self.check_room_lock(now, ip, &join.room, password.as_deref()) {
            return self.error(conn, e.code, e.message, "join");
        }
        if let Some(room) = self.rooms.get(&join.room) {
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
            if let Some((taken, reconnecting)) = self.look_alike(room, &name) {
                let who = if taken == name {
                    format!("someone in this room is already called {name:?}")
                } else {
                    format!("{name:?} looks like {taken:?}, the name of someone in this room")
                };
                let hint = if reconnecting {
                    let grace = self.cfg.resume_grace.as_secs();
                    format!(
                        "; that connection dropped and keeps its place for up to {grace} s: if it was yours, resume it or wait, else choose another name"
                    )
                } else {
                    String::from("; choose another name (add an initial, say)")
                };
                return self.error(conn, ErrorCode::NameTaken, who + &hint, "join");
            }
        } else if let Err(message) = self.count_room_creation(now, conn) {
            return self.error(conn, ErrorCode::RateLimited, message, "join");
        }

        let peer = self.new_peer_id();
        let resume_token = self.new_token();
        // A new room takes the administrator's password, else an emptied room's kept one, else
        // the one this join gives.
        let kept = self.kept_locks.remove(&join.room).filter(|k| k.until > now).map(|k| k.password);
        let fixed = self.cfg.fixed_rooms.password(&join.room).map(str::to_owned);
        let room = self.rooms.entry(join.room.clone()).or_insert_with(|| Room {
            password: fixed.or(kept).or(password),
            next_seq: 1,
            created: Some(now),
            ..Room::default()
        });
        room.members.push(peer.clone());
        room.peak_members = room.peak_members.max(room.members.len());
        if let Some(ip) = ip {
            *self.sessions_per_ip.entry(ip).or_insert(0) += 1;
        }
        let history: Vec<ChatMessage> = {
            let room_chat: Vec<&ChatMessage> = self.chat.messages(&join.room).filter(|m| m.to.is_none()).collect();
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
                pending_bytes: 0,
                ip,
                token_exp,
                last_cseq: 0,
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

    #[allow(clippy::too_many_arguments)]
    fn resume(
        &mut self,
        now: Instant,
        conn: ConnId,
        room: &str,
        token: &str,
        last_seq: u64,
        media: MediaState,
        room_token: Option<&str>,
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
        let connected = session.conn.is_some();
        if let Err(e) = self.check_resume_auth(now, &peer, room, room_token) {
            if e.code == ErrorCode::TokenExpired && !connected {
                // No resume can ever succeed: end the session now rather than at its deadline.
                self.remove_session(now, &peer, LeaveReason::Timeout);
            }
            return self.error(conn, e.code, e.message, "join");
        }
        // Every welcome carries a fresh token; the one just used stops working.
        let new_token = self.new_token();
        let ip = self.conn_meta.get(&conn).and_then(|m| m.ip);
        let Some(session) = self.sessions.get_mut(&peer) else { return };
        self.tokens.remove(&session.resume_token);
        session.resume_token = new_token.clone();
        self.tokens.insert(new_token, peer.clone());
        let old_ip = std::mem::replace(&mut session.ip, ip);
        let old_conn = session.conn.replace(conn);
        let was_reconnecting = session.deadline.take();
        let pending = std::mem::take(&mut session.pending);
        let held = std::mem::take(&mut session.pending_bytes);
        // The sums are exact (the property tests check them); saturating keeps a slip from
        // turning into a panic or a wrapped bound.
        self.pending_bytes = self.pending_bytes.saturating_sub(held);
        if let Some(r) = self.rooms.get_mut(room) {
            r.pending_bytes = r.pending_bytes.saturating_sub(held);
        }
        if old_ip != ip {
            self.release_ip_session(old_ip);
            if let Some(ip) = ip {
                *self.sessions_per_ip.entry(ip).or_insert(0) += 1;
            }
        }
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
        let history =
            self.chat.messages(room).filter(|m| m.seq > last_seq && visible_to(m, &peer)).cloned().collect();
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

    /// With room tokens required, a resume needs an unexpired token: a fresh one in the join
    /// (which then sets the session's expiry), or else the one the session joined with.
    fn check_resume_auth(
        &mut self,
        now: Instant,
        peer: &PeerId,
        room: &str,
        room_token: Option<&str>,
    ) -> Result<(), AuthError> {
        let JoinAuth::Jwt { secret, leeway_secs } = &self.cfg.auth else { return Ok(()) };
        let now_secs = self.unix_ms(now) / 1000;
        let exp = match room_token {
            Some(t) => auth::verify_room_token(secret, *leeway_secs, t, room, now_secs)?.exp,
            None => {
                let exp = self.sessions.get(peer).and_then(|s| s.token_exp);
                if exp.is_some_and(|exp| exp.saturating_add(*leeway_secs) <= now_secs) {
                    return Err(AuthError {
                        code: ErrorCode::TokenExpired,
                        message: "the room token this session joined with has expired; the session has ended, join afresh with a new token (or resume with a new one in `token` while the session lasts)".into(),
                    });
                }
                return Ok(());
            }
        };
        if let Some(s) = self.sessions.get_mut(peer) {
            s.token_exp = Some(exp);
        }
        Ok(())
    }

    /// The password `room` is locked with now, if any: the administrator's, the room's own, or
    /// the one kept since it emptied.
    fn room_lock(&self, room: &str, now: Instant) -> Option<&str> {
        self.cfg
            .fixed_rooms
            .password(room)
            .or_else(|| self.rooms.get(room).and_then(|r| r.password.as_deref()))
            .or_else(|| self.kept_locks.get(room).filter(|k| k.until > now).map(|k| k.password.as_str()))
    }

    /// Check a fresh join's password against the room's lock, with backoff per room and per
    /// client address (`ip`, when subject to per-address limits).
    fn check_room_lock(
        &mut self,
        now: Instant,
        ip: Option<IpAddr>,
        room: &str,
        given: Option<&str>,
    ) -> Result<(), AuthError> {
        let Some(expected) = self.room_lock(room, now) else { return Ok(()) };
        let wait = [
            self.room_attempts.blocked(&room.to_owned(), now),
            ip.and_then(|ip| self.ip_attempts.blocked(&ip, now)),
        ]
        .into_iter()
        .flatten()
        .max();
        if let Some(wait) = wait {
            let secs = wait.as_millis().div_ceil(1000);
            return Err(AuthError {
                code: ErrorCode::TooManyAttempts,
                message: format!(
                    "too many wrong passwords for room {room:?} or from your address; try again in {secs} s"
                ),
            });
        }
        let Some(given) = given else {
            return Err(AuthError {
                code: ErrorCode::PasswordRequired,
                message: format!("room {room:?} is locked with a password; enter it to join"),
            });
        };
        if auth::password_matches(expected, given) {
            self.room_attempts.succeeded(&room.to_owned());
            if let Some(ip) = ip {
                self.ip_attempts.succeeded(&ip);
            }
            return Ok(());
        }
        self.room_attempts.failed(room.to_owned(), now);
        if let Some(ip) = ip {
            self.ip_attempts.failed(ip, now);
        }
        self.schedule_sweep(now);
        Err(AuthError { code: ErrorCode::WrongPassword, message: format!("wrong password for room {room:?}") })
    }

    /// Count a room created by `conn`, unless it created its most rooms in the last minute.
    fn count_room_creation(&mut self, now: Instant, conn: ConnId) -> Result<(), String> {
        let max = self.cfg.max_rooms_created_per_min;
        let Some(meta) = self.conn_meta.get_mut(&conn) else { return Ok(()) };
        if max == 0 {
            return Ok(());
        }
        while meta.rooms_created.front().is_some_and(|t| now.saturating_duration_since(*t) >= MINUTE) {
            meta.rooms_created.pop_front();
        }
        if meta.rooms_created.len() >= max {
            let oldest = meta.rooms_created.front().copied().unwrap_or(now);
            let wait = MINUTE.saturating_sub(now.saturating_duration_since(oldest));
            return Err(format!(
                "this connection created {max} rooms in the last minute, the most allowed; join an existing room or try again in {} s",
                wait.as_millis().div_ceil(1000)
            ));
        }
        meta.rooms_created.push_back(now);
        Ok(())
    }

    /// An emptied room's password is kept for a while, so nobody else can take the room over.
    fn keep_lock(&mut self, now: Instant, room: String, password: Option<String>) {
        let Some(password) = password else { return };
        if self.cfg.room_lock_keep.is_zero()
            || self.cfg.max_kept_locks == 0
            || self.cfg.fixed_rooms.password(&room).is_some()
        {
            return;
        }
        if self.kept_locks.len() >= self.cfg.max_kept_locks {
            self.kept_locks.retain(|_, lock| lock.until > now);
            if self.kept_locks.len() >= self.cfg.max_kept_locks
                && let Some(first) = self.kept_locks.iter().min_by_key(|(_, l)| l.until).map(|(r, _)| r.clone())
            {
                self.kept_locks.remove(&first);
            }
        }
        self.kept_locks.insert(room, KeptLock { password, until: now + self.cfg.room_lock_keep });
        self.schedule_sweep(now);
    }

    fn release_ip_session(&mut self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        if let Some(n) = self.sessions_per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sessions_per_ip.remove(&ip);
            }
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
            last_cseq: s.last_cseq,
        })
    }

    fn relay(&mut self, conn: ConnId, from: &PeerId, to: &PeerId, type_name: &str, msg: ServerMessage) {
        if !self.same_room(from, to) {
            return self.error(conn, ErrorCode::PeerNotFound, not_in_room(to), type_name);
        }
        let Some(target) = self.sessions.get_mut(to) else { return };
        if let Some(c) = target.conn {
            return self.deliver(vec![c], msg);
        }
        let bytes = held_bytes(&msg);
        let room = self.rooms.get_mut(&target.room);
        let room_bytes = room.as_ref().map_or(0, |r| r.pending_bytes);
        let full = if target.pending.len() >= self.cfg.pending_limit {
            Some("has too many messages waiting")
        } else if target.pending_bytes + bytes > self.cfg.held_relay_bytes_per_peer {
            Some("has too many bytes waiting")
        } else if room_bytes + bytes > self.cfg.held_relay_bytes_per_room {
            Some("its room holds too much for reconnecting peers")
        } else if self.pending_bytes + bytes > self.cfg.held_relay_bytes_total {
            Some("the server holds too much for reconnecting peers")
        } else {
            None
        };
        match full {
            None => {
                target.pending.push_back(msg);
                target.pending_bytes += bytes;
                if let Some(r) = room {
                    r.pending_bytes += bytes;
                }
                self.pending_bytes += bytes;
            }
            Some(why) => self.error(
                conn,
                ErrorCode::PeerUnavailable,
                format!("peer {to} is reconnecting and {why}; retry later"),
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
        self.chat.push(&room_name, message.clone());
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

    fn remove_session(&mut self, now: Instant, peer: &PeerId, reason: LeaveReason) {
        let Some(session) = self.sessions.remove(peer) else { return };
        self.tokens.remove(&session.resume_token);
        self.release_ip_session(session.ip);
        self.pending_bytes = self.pending_bytes.saturating_sub(session.pending_bytes);
        if let Some(at) = session.deadline {
            self.deadlines.remove(&(at, peer.clone()));
        }
        if let Some(c) = session.conn {
            self.conns.insert(c, None);
        }
        let room_now_empty = match self.rooms.get_mut(&session.room) {
            Some(room) => {
                room.members.retain(|p| p != peer);
                room.pending_bytes = room.pending_bytes.saturating_sub(session.pending_bytes);
                room.members.is_empty()
            }
            None => false,
        };
        if room_now_empty {
            self.chat.remove_room(&session.room);
            if let Some(room) = self.rooms.remove(&session.room) {
                let lived = room.created.map(|c| now.saturating_duration_since(c)).unwrap_or_default();
                self.out.push_back(Output::RoomClosed { lived, peak_members: room.peak_members });
                self.keep_lock(now, session.room.clone(), room.password);
            }
        } else {
            self.deliver_room(&session.room, None, ServerMessage::PeerLeft { peer_id: peer.clone(), reason });
        }
    }

    /// The name of a member of `room` (reconnecting ones included) that `name` looks like: the
    /// same confusable skeleton (UTS #39), so that no one can pass for someone else.
    /// Also says whether that member is reconnecting.
    fn look_alike(&self, room: &Room, name: &str) -> Option<(String, bool)> {
        let skeleton = name_skeleton(name);
        room.members
            .iter()
            .filter_map(|p| self.sessions.get(p))
            .find(|s| name_skeleton(&s.name) == skeleton)
            .map(|s| (s.name.clone(), s.conn.is_none()))
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

/// How often expired kept locks and old wrong-password records are swept away.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The window of the per-connection room-creation limit.
const MINUTE: Duration = Duration::from_secs(60);

/// Bytes a relayed message held for a reconnecting peer takes, approximately: its encoded size
/// (about its strings) plus the enum itself.
fn held_bytes(msg: &ServerMessage) -> usize {
    std::mem::size_of::<ServerMessage>() + hearth_proto::encode(msg).len()
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
