//! The Hearth wire protocol: every message exchanged between a Hearth client and the
//! `hearth-signal` server, and nothing else (no I/O, no async).
//!
//! Messages are JSON objects sent as WebSocket text frames, one message per frame. Each object
//! has a `"type"` field naming the message; the other fields depend on the type. The full
//! specification, with ordering rules and example exchanges, is `docs/protocol.md`; this crate is
//! its single source of truth and the spec is kept in step with it.
//!
//! # Using it
//! ```
//! use hearth_proto::{ClientMessage, Join, decode_client, encode};
//!
//! let join = ClientMessage::Join(Join::new("standup", "Ada"));
//! let text = encode(&join);
//! assert_eq!(decode_client(&text).unwrap(), join);
//! ```
//!
//! Decoding never panics: any input yields either a message or a [`DecodeError`] that maps to
//! the [`ErrorCode`] the server answers with. Decoding is strict about shape: every protocol
//! object must be a JSON object (serde would also take an array of the fields). Unknown fields
//! are ignored. [`ClientMessage::validate`] checks the limits (lengths, characters) that the
//! server enforces, so a client can check before sending; [`normalize_name`] and
//! [`name_skeleton`] give a client the server's view of room and display names.
//!
//! # Nothing lost across a resume
//! A client numbers the messages it sends with a `cseq` ([`ClientFrame`], [`encode_numbered`])
//! and keeps each until the server confirms it ([`Welcome::last_cseq`], `last_cseq` in
//! [`ServerMessage::Pong`]); after a resume it resends the ones with a higher `cseq`, and the
//! server drops any it already had:
//! ```
//! use hearth_proto::{ClientFrame, ClientMessage, decode_client_frame, encode_numbered};
//!
//! let chat = ClientMessage::Chat { text: "hi".into(), to: None };
//! let text = encode_numbered(&chat, 7);
//! assert_eq!(text, r#"{"type":"chat","text":"hi","cseq":7}"#);
//! assert_eq!(decode_client_frame(&text).unwrap(), ClientFrame::numbered(chat, 7));
//! ```

mod object;
mod validate;

use serde::{Deserialize, Serialize};
use std::fmt;

pub use validate::{
    Limits, ValidationError, name_skeleton, normalize_name, validate_display_name, validate_room_name,
};

/// Version of this protocol. A client sends it in [`Join::protocol`]; the server refuses a join
/// whose version differs with [`ErrorCode::VersionMismatch`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The WebSocket path the server accepts connections on.
pub const WS_PATH: &str = "/ws";

/// A peer's identity in a room, assigned by the server in [`Welcome::peer_id`].
///
/// Opaque to clients: compare it, never parse it. It stays the same across a resume.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PeerId(pub String);

impl PeerId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PeerId {
    fn from(s: &str) -> Self {
        PeerId(s.to_owned())
    }
}

/// What a peer is currently sending. Every field defaults to `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaState {
    /// The microphone is muted (no audio is sent).
    pub audio_muted: bool,
    /// The camera is off (no camera video is sent).
    pub video_off: bool,
    /// A screen share track is being sent.
    pub screen_sharing: bool,
}

/// A peer as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    pub id: PeerId,
    pub name: String,
    #[serde(default, deserialize_with = "object::object")]
    pub media: MediaState,
    #[serde(default)]
    pub hand_raised: bool,
    /// The peer's connection to the server dropped and it may still resume.
    #[serde(default)]
    pub reconnecting: bool,
}

/// An ICE server (STUN or TURN) the client should use, in the shape of WebRTC's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A trickled ICE candidate, in the shape of WebRTC's `RTCIceCandidateInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidate {
    /// The `candidate:` attribute line, e.g. `candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host`.
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mline_index: Option<u16>,
}

/// Resume a session whose WebSocket dropped (see [`Join::resume`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The [`Welcome::resume_token`] of the session to take back.
    pub token: String,
    /// The highest chat [`ChatMessage::seq`] the client has seen; the server replays every later
    /// message the client is allowed to see.
    #[serde(default)]
    pub last_seq: u64,
}

/// The first message of a session: join (or rejoin) a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// Must equal [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Room name; the room is created when its first peer joins.
    pub room: String,
    /// Display name shown to the others (a JWT's `name` claim overrides it).
    pub name: String,
    /// Room password. The first peer's password locks the room for later joiners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// HS256 JWT room token, required when the server is configured with a JWT secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Take back a session that dropped, keeping its peer id.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "object::optional_object")]
    pub resume: Option<Resume>,
    /// Media state to announce on joining.
    #[serde(default, deserialize_with = "object::object")]
    pub media: MediaState,
}

impl Join {
    /// A join for the current protocol version with no password, token or resume.
    pub fn new(room: impl Into<String>, name: impl Into<String>) -> Self {
        Join {
            protocol: PROTOCOL_VERSION,
            room: room.into(),
            name: name.into(),
            password: None,
            token: None,
            resume: None,
            media: MediaState::default(),
        }
    }
}

/// How a call between two peers turned out, as a client reports it for the server's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    Connected,
    Failed,
}

/// The type of an ICE candidate (RFC 8445 §5.1.1.1; `prflx`: learned from a connectivity check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CandidateType {
    Host,
    Srflx,
    Prflx,
    Relay,
}

impl CandidateType {
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::Srflx => "srflx",
            CandidateType::Prflx => "prflx",
            CandidateType::Relay => "relay",
        }
    }
}

/// How a relay candidate reaches its TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayTransport {
    Udp,
    Tcp,
    Tls,
}

impl RelayTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            RelayTransport::Udp => "udp",
            RelayTransport::Tcp => "tcp",
            RelayTransport::Tls => "tls",
        }
    }
}

/// Why a link failed, as the reporting client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallFailure {
    /// Connectivity checks found no working path (ICE failed): typically a firewall, fixed by TURN.
    Ice,
    /// The link did not connect in time (negotiation lost or unanswered).
    Timeout,
}

impl CallFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            CallFailure::Ice => "ice",
            CallFailure::Timeout => "timeout",
        }
    }
}

/// The selected candidate pair of a connected link, as the reporting client sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallPath {
    /// The reporter's candidate.
    pub local: CandidateType,
    /// The peer's candidate.
    pub remote: CandidateType,
    /// When `local` is `relay`: how the reporter reaches its TURN server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayTransport>,
}

/// Messages a client sends to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Join a room. Must come before any other message except `ping`.
    Join(Join),
    /// Leave the room for good (others see `peer_left` with reason `left`). The connection stays
    /// open and may join again.
    Leave,
    /// An SDP offer for one peer.
    Offer { to: PeerId, sdp: String },
    /// An SDP answer for one peer.
    Answer { to: PeerId, sdp: String },
    /// A trickled ICE candidate for one peer; `null` means end of candidates.
    IceCandidate {
        to: PeerId,
        #[serde(default, deserialize_with = "object::optional_object")]
        candidate: Option<IceCandidate>,
    },
    /// Announce a new media state to the room.
    MediaState {
        #[serde(deserialize_with = "object::object")]
        state: MediaState,
    },
    /// Chat: to the whole room when `to` is absent, privately to one peer otherwise.
    Chat {
        text: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<PeerId>,
    },
    /// A short-lived reaction (an emoji) shown to the room.
    Reaction { emoji: String },
    /// Raise or lower a hand.
    RaiseHand { raised: bool },
    /// Liveness and round-trip probe; answered by `pong` with the same nonce.
    Ping { nonce: u64 },
    /// Report how the media connection to one peer turned out (for the server's metrics).
    CallReport {
        peer: PeerId,
        outcome: CallOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        connect_ms: Option<u64>,
        /// The selected candidate pair, when connected (optional; older clients omit it).
        #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "object::optional_object")]
        path: Option<CallPath>,
        /// Why, when failed (optional; older clients omit it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<CallFailure>,
    },
    /// Tell one peer that media negotiation with it failed, relayed like an offer. `code` is
    /// machine-readable (see [`peer_error_code`]), `message` is for people.
    PeerError { to: PeerId, code: String, message: String },
}

/// The `code`s of [`ClientMessage::PeerError`] that Hearth clients send. Others may appear;
/// treat an unknown one like [`peer_error_code::NEGOTIATION_FAILED`].
pub mod peer_error_code {
    /// The offer or answer has no codec this client can use (e.g. no H.264 with
    /// packetization-mode=1).
    pub const NO_COMMON_CODEC: &str = "no_common_codec";
    /// Any other failure to apply an offer, answer or ICE candidate.
    pub const NEGOTIATION_FAILED: &str = "negotiation_failed";
}

impl ClientMessage {
    /// The wire name of this message's type (its `"type"` field).
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Join(_) => "join",
            ClientMessage::Leave => "leave",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::IceCandidate { .. } => "ice_candidate",
            ClientMessage::MediaState { .. } => "media_state",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::Reaction { .. } => "reaction",
            ClientMessage::RaiseHand { .. } => "raise_hand",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::CallReport { .. } => "call_report",
            ClientMessage::PeerError { .. } => "peer_error",
        }
    }

    /// Whether this message may carry a `cseq` (see [`ClientFrame`]): every type but `join`
    /// and `ping`, which are not numbered.
    pub fn is_numbered(&self) -> bool {
        !matches!(self, ClientMessage::Join(_) | ClientMessage::Ping { .. })
    }

    /// Every client message type, as it appears on the wire.
    pub const TYPES: &'static [&'static str] = &[
        "join",
        "leave",
        "offer",
        "answer",
        "ice_candidate",
        "media_state",
        "chat",
        "reaction",
        "raise_hand",
        "ping",
        "call_report",
        "peer_error",
    ];
}

/// A client message as sent on the wire, with its client sequence number if it has one.
///
/// A client numbers the messages of a session 1, 2, 3, ... (every type but `join` and `ping`,
/// see [`ClientMessage::is_numbered`]) and keeps counting across resumes. The server remembers
/// the highest `cseq` it has taken for the session, reports it in [`Welcome::last_cseq`] and in
/// `pong`, and silently drops a message whose `cseq` is not higher (a resent duplicate).
/// Messages without a `cseq` are never dropped as duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientFrame {
    #[serde(flatten)]
    pub message: ClientMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cseq: Option<u64>,
}

impl ClientFrame {
    /// A message with sequence number `cseq`.
    pub fn numbered(message: ClientMessage, cseq: u64) -> Self {
        ClientFrame { message, cseq: Some(cseq) }
    }
}

impl From<ClientMessage> for ClientFrame {
    /// An unnumbered message.
    fn from(message: ClientMessage) -> Self {
        ClientFrame { message, cseq: None }
    }
}

/// A chat message as the server stores and delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Server-assigned id, unique on this server.
    pub id: String,
    /// Position in the room's chat log: 1, 2, 3, ... shared by room and private messages, so a
    /// client sees gaps where private messages between others were.
    pub seq: u64,
    /// Server time in milliseconds since the Unix epoch.
    pub ts_ms: u64,
    pub from: PeerId,
    pub from_name: String,
    /// Present for a private message: the one peer it was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PeerId>,
    pub text: String,
}

/// Why a peer left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// It sent `leave`.
    Left,
    /// Its connection dropped and it did not resume within the grace period.
    Timeout,
    /// The server is shutting down.
    ServerShutdown,
}

/// The answer to a successful `join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub protocol: u32,
    pub room: String,
    /// Your peer id in this room.
    pub peer_id: PeerId,
    /// Your display name as the others see it.
    pub name: String,
    /// The other peers already in the room.
    #[serde(deserialize_with = "object::objects")]
    pub peers: Vec<PeerInfo>,
    /// ICE servers, with time-limited TURN credentials where configured.
    #[serde(deserialize_with = "object::objects")]
    pub ice_servers: Vec<IceServer>,
    /// On a fresh join: the room's recent chat. On a resume: every message you missed.
    #[serde(deserialize_with = "object::objects")]
    pub history: Vec<ChatMessage>,
    /// Send this in [`Resume::token`] to take this session back after a drop.
    pub resume_token: String,
    /// How long, in milliseconds, the server keeps the session after the connection drops.
    pub resume_grace_ms: u64,
    /// True when this welcome answers a resume.
    pub resumed: bool,
    /// The limits the server enforces on this connection.
    #[serde(deserialize_with = "object::object")]
    pub limits: ServerLimits,
    /// The highest [`ClientFrame::cseq`] the server has taken for this session (0 on a fresh
    /// join): after a resume, resend every kept message with a higher one.
    #[serde(default)]
    pub last_cseq: u64,
}

/// Limits announced in [`Welcome::limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerLimits {
    pub max_message_bytes: u64,
    pub max_room_size: u32,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
}

/// Error codes, stable across versions. New codes may be added; treat unknown ones as generic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not JSON, or is a binary frame.
    MalformedJson,
    /// The JSON has no string `type` field, or is not an object.
    MissingType,
    /// The `type` names no message of this protocol version.
    UnknownType,
    /// A field is missing or has the wrong JSON type.
    InvalidMessage,
    /// A field has the right type but an unacceptable value (too long, empty, control chars).
    InvalidField,
    /// `join.protocol` differs from the server's [`PROTOCOL_VERSION`].
    VersionMismatch,
    /// The message needs a joined session.
    NotJoined,
    /// `join` on a connection that is already in a room.
    AlreadyJoined,
    RoomFull,
    /// The room is locked with a password and none was given.
    PasswordRequired,
    WrongPassword,
    /// Too many wrong passwords for this room or from this address: this join was refused
    /// without checking its password. The message says when to try again.
    TooManyAttempts,
    /// The server requires a JWT room token and none was given.
    TokenRequired,
    /// The token's signature, algorithm or format is invalid.
    TokenInvalid,
    TokenExpired,
    TokenNotYetValid,
    /// The token is for another room.
    TokenWrongRoom,
    /// The addressed peer is not in your room.
    PeerNotFound,
    /// The addressed peer is reconnecting and its queue of pending messages is full.
    PeerUnavailable,
    /// Too many messages; this one was dropped. Slow down.
    RateLimited,
    /// The resume token is unknown or its grace period has passed; join afresh.
    ResumeFailed,
    /// The display name is the same as, or looks like, the name of someone in the room.
    NameTaken,
    /// The server is at its connection limit.
    ServerFull,
    /// The server is shutting down.
    ShuttingDown,
    Internal,
}

impl ErrorCode {
    /// The wire name of this code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::MissingType => "missing_type",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::NotJoined => "not_joined",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::PasswordRequired => "password_required",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::TooManyAttempts => "too_many_attempts",
            ErrorCode::TokenRequired => "token_required",
            ErrorCode::TokenInvalid => "token_invalid",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenNotYetValid => "token_not_yet_valid",
            ErrorCode::TokenWrongRoom => "token_wrong_room",
            ErrorCode::PeerNotFound => "peer_not_found",
            ErrorCode::PeerUnavailable => "peer_unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::ResumeFailed => "resume_failed",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::ServerFull => "server_full",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
        }
    }

    /// True for codes that refuse a `join` for lack of the right password or token.
    pub fn is_auth_rejection(self) -> bool {
        matches!(
            self,
            ErrorCode::PasswordRequired
                | ErrorCode::WrongPassword
                | ErrorCode::TooManyAttempts
                | ErrorCode::TokenRequired
                | ErrorCode::TokenInvalid
                | ErrorCode::TokenExpired
                | ErrorCode::TokenNotYetValid
                | ErrorCode::TokenWrongRoom
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Messages the server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome(Welcome),
    PeerJoined {
        #[serde(deserialize_with = "object::object")]
        peer: PeerInfo,
    },
    PeerLeft {
        peer_id: PeerId,
        reason: LeaveReason,
    },
    /// The peer's connection dropped; it keeps its place for the grace period.
    PeerReconnecting {
        peer_id: PeerId,
    },
    /// The peer resumed its session after `peer_reconnecting`.
    PeerReconnected {
        peer_id: PeerId,
    },
    Offer {
        from: PeerId,
        sdp: String,
    },
    Answer {
        from: PeerId,
        sdp: String,
    },
    IceCandidate {
        from: PeerId,
        #[serde(default, deserialize_with = "object::optional_object")]
        candidate: Option<IceCandidate>,
    },
    MediaState {
        peer_id: PeerId,
        #[serde(deserialize_with = "object::object")]
        state: MediaState,
    },
    Chat {
        #[serde(deserialize_with = "object::object")]
        message: ChatMessage,
    },
    Reaction {
        from: PeerId,
        emoji: String,
        ts_ms: u64,
    },
    RaiseHand {
        peer_id: PeerId,
        raised: bool,
    },
    Pong {
        nonce: u64,
        server_time_ms: u64,
        /// On a joined connection: the highest `cseq` the server has taken for the session, so
        /// the client can forget every kept message up to it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        last_cseq: Option<u64>,
    },
    /// A peer tells you that media negotiation with you failed (see
    /// [`ClientMessage::PeerError`]).
    PeerError {
        from: PeerId,
        code: String,
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
        /// The `type` of the message that caused the error, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ref_type: Option<String>,
    },
    /// The server is going away; reconnect after `retry_after_ms` (to this or another server).
    Shutdown {
        reason: String,
        retry_after_ms: u64,
    },
}

impl ServerMessage {
    /// The wire name of this message's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerMessage::Welcome(_) => "welcome",
            ServerMessage::PeerJoined { .. } => "peer_joined",
            ServerMessage::PeerLeft { .. } => "peer_left",
            ServerMessage::PeerReconnecting { .. } => "peer_reconnecting",
            ServerMessage::PeerReconnected { .. } => "peer_reconnected",
            ServerMessage::Offer { .. } => "offer",
            ServerMessage::Answer { .. } => "answer",
            ServerMessage::IceCandidate { .. } => "ice_candidate",
            ServerMessage::MediaState { .. } => "media_state",
            ServerMessage::Chat { .. } => "chat",
            ServerMessage::Reaction { .. } => "reaction",
            ServerMessage::RaiseHand { .. } => "raise_hand",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Shutdown { .. } => "shutdown",
            ServerMessage::PeerError { .. } => "peer_error",
        }
    }

    /// Shorthand for an error message.
    pub fn error(code: ErrorCode, message: impl Into<String>, ref_type: Option<&str>) -> Self {
        ServerMessage::Error { code, message: message.into(), ref_type: ref_type.map(str::to_owned) }
    }
}

/// WebSocket close codes the server uses.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// Server shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A text frame was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// The client sent something that cannot continue (e.g. its send queue overflowed).
    pub const POLICY: u16 = 1008;
    /// A message exceeded the maximum size.
    pub const TOO_BIG: u16 = 1009;
}

/// Why a text frame could not be decoded into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error("not valid JSON: {0}")]
    MalformedJson(String),
    #[error("the message has no string \"type\" field")]
    MissingType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {type_name:?} message: {detail}")]
    InvalidMessage { type_name: String, detail: String },
}

impl DecodeError {
    /// The error code the server answers this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::MalformedJson(_) => ErrorCode::MalformedJson,
            DecodeError::MissingType => ErrorCode::MissingType,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::InvalidMessage { .. } => ErrorCode::InvalidMessage,
        }
    }

    /// The message type the input claimed to be, when it named a known one.
    pub fn type_name(&self) -> Option<&str> {
        match self {
            DecodeError::InvalidMessage { type_name, .. } => Some(type_name),
            _ => None,
        }
    }
}

/// Decode one client message from a text frame, ignoring its `cseq` if it has one.
pub fn decode_client(text: &str) -> Result<ClientMessage, DecodeError> {
    decode(text, ClientMessage::TYPES)
}

/// Decode one client message from a text frame, with its `cseq` (what the server does).
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, DecodeError> {
    decode(text, ClientMessage::TYPES)
}

/// Every server message type, as it appears on the wire.
pub const SERVER_TYPES: &[&str] = &[
    "welcome",
    "peer_joined",
    "peer_left",
    "peer_reconnecting",
    "peer_reconnected",
    "offer",
    "answer",
    "ice_candidate",
    "media_state",
    "chat",
    "reaction",
    "raise_hand",
    "pong",
    "error",
    "shutdown",
    "peer_error",
];

/// Decode one server message from a text frame.
pub fn decode_server(text: &str) -> Result<ServerMessage, DecodeError> {
    decode(text, SERVER_TYPES)
}

fn decode<T: for<'de> Deserialize<'de>>(text: &str, known: &[&str]) -> Result<T, DecodeError> {
    // serde takes a tagged enum from an array too (`["ping",5]`); a message must be an object.
    if !text.trim_start_matches([' ', '\t', '\n', '\r']).starts_with('{') {
        return Err(classify(text, known, None));
    }
    // The common case parses once; only a failure pays for a second parse to classify it.
    match serde_json::from_str::<T>(text) {
        Ok(msg) => Ok(msg),
        Err(err) => Err(classify(text, known, Some(err))),
    }
}

fn classify(text: &str, known: &[&str], err: Option<serde_json::Error>) -> DecodeError {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return DecodeError::MalformedJson(e.to_string()),
    };
    let Some(type_name) = value.get("type").and_then(|t| t.as_str()) else {
        return DecodeError::MissingType;
    };
    if !known.contains(&type_name) {
        return DecodeError::UnknownType(truncate(type_name, 64));
    }
    let detail = err.map_or_else(|| String::from("not a JSON object"), |e| e.to_string());
    DecodeError::InvalidMessage { type_name: type_name.to_owned(), detail }
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Encode a client message with its `cseq` as the text of one WebSocket frame (the same as
/// `encode(&ClientFrame::numbered(msg, cseq))`, without copying the message).
pub fn encode_numbered(message: &ClientMessage, cseq: u64) -> String {
    #[derive(Serialize)]
    struct Numbered<'a> {
        #[serde(flatten)]
        message: &'a ClientMessage,
        cseq: u64,
    }
    encode(&Numbered { message, cseq })
}

/// Encode a message as the text of one WebSocket frame.
pub fn encode<T: Serialize>(msg: &T) -> String {
    // Serializing these types cannot fail: every map key is a string and there are no
    // non-finite floats; an empty object would still be a decodable error on the other side.
    serde_json::to_string(msg).unwrap_or_else(|_| String::from("{}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
