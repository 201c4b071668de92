//! Value limits every message must respect. The server enforces them; clients can call
//! [`ClientMessage::validate`] before sending to get the same answer locally.

use crate::{ClientMessage, ErrorCode, IceCandidate, Join, PeerId};

/// The protocol's value limits (in characters unless noted).
#[derive(Debug, Clone, Copy)]
pub struct Limits;

impl Limits {
    pub const ROOM_NAME_MAX: usize = 64;
    pub const DISPLAY_NAME_MAX: usize = 64;
    pub const PEER_ID_MAX: usize = 64;
    pub const CHAT_TEXT_MAX: usize = 4000;
    pub const EMOJI_MAX: usize = 16;
    pub const PASSWORD_MAX: usize = 256;
    /// A JWT in bytes.
    pub const TOKEN_MAX: usize = 4096;
    /// An SDP in bytes (also bounded by the server's maximum message size).
    pub const SDP_MAX: usize = 60 * 1024;
    /// An ICE candidate line in bytes.
    pub const CANDIDATE_MAX: usize = 1024;
}

/// A field with an unacceptable value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field {field:?} {problem}")]
pub struct ValidationError {
    pub field: &'static str,
    pub problem: String,
}

impl ValidationError {
    pub fn code(&self) -> ErrorCode {
        ErrorCode::InvalidField
    }
}

fn bad(field: &'static str, problem: impl Into<String>) -> ValidationError {
    ValidationError { field, problem: problem.into() }
}

/// A visible, single-line text: not blank, at most `max` characters, no control characters.
fn label(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(bad(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters"));
    }
    Ok(())
}

fn bytes(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    if value.len() > max {
        return Err(bad(field, format!("must be at most {max} bytes")));
    }
    Ok(())
}

fn peer_id(field: &'static str, id: &PeerId) -> Result<(), ValidationError> {
    let s = id.as_str();
    if s.is_empty() || s.len() > Limits::PEER_ID_MAX {
        return Err(bad(field, "is not a peer id"));
    }
    Ok(())
}

fn candidate(c: &IceCandidate) -> Result<(), ValidationError> {
    bytes("candidate.candidate", &c.candidate, Limits::CANDIDATE_MAX)?;
    if let Some(mid) = &c.sdp_mid {
        bytes("candidate.sdp_mid", mid, 64)?;
    }
    Ok(())
}

fn join(j: &Join) -> Result<(), ValidationError> {
    label("room", &j.room, Limits::ROOM_NAME_MAX)?;
    label("name", &j.name, Limits::DISPLAY_NAME_MAX)?;
    if let Some(p) = &j.password {
        bytes("password", p, Limits::PASSWORD_MAX)?;
    }
    if let Some(t) = &j.token {
        bytes("token", t, Limits::TOKEN_MAX)?;
    }
    if let Some(r) = &j.resume {
        bytes("resume.token", &r.token, 128)?;
    }
    Ok(())
}

impl ClientMessage {
    /// Check the value limits of [`Limits`]. The protocol version of a join is not checked here:
    /// a mismatch has its own error code.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            ClientMessage::Join(j) => join(j),
            ClientMessage::Leave | ClientMessage::Ping { .. } | ClientMessage::RaiseHand { .. } => Ok(()),
            ClientMessage::MediaState { .. } => Ok(()),
            ClientMessage::Offer { to, sdp } | ClientMessage::Answer { to, sdp } => {
                peer_id("to", to)?;
                if sdp.is_empty() {
                    return Err(bad("sdp", "must not be empty"));
                }
                bytes("sdp", sdp, Limits::SDP_MAX)
            }
            ClientMessage::IceCandidate { to, candidate: c } => {
                peer_id("to", to)?;
                c.as_ref().map_or(Ok(()), candidate)
            }
            ClientMessage::Chat { text, to } => {
                if let Some(to) = to {
                    peer_id("to", to)?;
                }
                if text.trim().is_empty() {
                    return Err(bad("text", "must not be empty"));
                }
                if text.chars().count() > Limits::CHAT_TEXT_MAX {
                    return Err(bad("text", format!("must be at most {} characters", Limits::CHAT_TEXT_MAX)));
                }
                Ok(())
            }
            ClientMessage::Reaction { emoji } => label("emoji", emoji, Limits::EMOJI_MAX),
            ClientMessage::CallReport { peer, .. } => peer_id("peer", peer),
        }
    }
}
