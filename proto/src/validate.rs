//! Value limits every message must respect. The server enforces them; clients can call
//! [`ClientMessage::validate`] before sending to get the same answer locally.
//!
//! Room and display names get the strictest rules, because people read them to decide who they
//! are talking to: the server keeps them trimmed and in Unicode NFC ([`normalize_name`]); they
//! may not hold invisible or text-direction characters nor mix scripts (UTS #39 "highly
//! restrictive": one script, or Latin with Chinese, Japanese or Korean); and a display name that
//! looks like a present member's name ([`name_skeleton`]) is refused by the server.

use crate::{ClientFrame, ClientMessage, ErrorCode, IceCandidate, Join, PeerId};
use unicode_normalization::UnicodeNormalization;
use unicode_script::Script;
use unicode_security::mixed_script::AugmentedScriptSet;

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
    /// A `peer_error` code (`[a-z0-9_]`).
    pub const PEER_ERROR_CODE_MAX: usize = 64;
    pub const PEER_ERROR_MESSAGE_MAX: usize = 1000;
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

/// The form in which the server keeps and compares a room or display name: without leading or
/// trailing white space, in Unicode Normalization Form C. `" Zoe\u{308}"` and `"Zoë"` are the
/// same name. Case is kept: `Standup` and `standup` are different rooms.
pub fn normalize_name(name: &str) -> String {
    name.trim().nfc().collect()
}

/// The UTS #39 confusable skeleton of a name (after [`normalize_name`]): two names with the same
/// skeleton look alike (`Ada` with a Latin or a Cyrillic `A`, `Ｂob` and `Bob`, `I` and `l`).
/// The server refuses a display name whose skeleton is that of a present member's name.
pub fn name_skeleton(name: &str) -> String {
    unicode_security::skeleton(&normalize_name(name)).collect()
}

/// Check a room name as the server does (see [`name_rules`]).
pub fn validate_room_name(room: &str) -> Result<(), ValidationError> {
    name_rules("room", room, Limits::ROOM_NAME_MAX)
}

/// Check a display name as the server does (see [`name_rules`]). Whether it looks like a
/// present member's name only the server can tell.
pub fn validate_display_name(name: &str) -> Result<(), ValidationError> {
    name_rules("name", name, Limits::DISPLAY_NAME_MAX)
}

/// A room or display name, checked in its normalized form: not empty, at most `max`
/// characters, no control, invisible or text-direction characters, one script.
fn name_rules(field: &'static str, value: &str, max: usize) -> Result<(), ValidationError> {
    let value = normalize_name(value);
    if value.is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(bad(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters"));
    }
    if let Some(c) = hidden_char(&value) {
        return Err(bad(
            field,
            format!(
                "must not contain invisible, line-break or text-direction characters (found U+{:04X})",
                u32::from(c)
            ),
        ));
    }
    if !one_script(&value) {
        return Err(bad(
            field,
            "mixes letters of different scripts (such as Latin and Cyrillic); use one script \
             (Latin with Chinese, Japanese or Korean is fine)",
        ));
    }
    Ok(())
}

/// Characters that are invisible, break lines or change text direction, so that a name could
/// hide its real content or look like another. U+200D (zero-width joiner) is allowed between two
/// emoji and tag characters after a black flag, as emoji sequences use them.
fn hidden_char(s: &str) -> Option<char> {
    let mut prev: Option<char> = None;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        let allowed = match c {
            '\u{200D}' => prev.is_some_and(is_emoji) && chars.peek().copied().is_some_and(is_emoji),
            '\u{E0020}'..='\u{E007F}' => {
                prev.is_some_and(|p| p == '\u{1F3F4}' || ('\u{E0020}'..='\u{E007E}').contains(&p))
            }
            _ => !is_hidden(c),
        };
        if !allowed {
            return Some(c);
        }
        // An emoji's presentation selector stands between the emoji and a joiner.
        if c != '\u{FE0F}' {
            prev = Some(c);
        }
    }
    None
}

fn is_hidden(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' // soft hyphen
            | '\u{034F}' // combining grapheme joiner
            | '\u{061C}' // Arabic letter mark
            | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
            | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
            | '\u{180E}' // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space, non-joiner, joiner; LRM, RLM
            | '\u{2028}'..='\u{202E}' // line and paragraph separators; bidi embeddings, overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
            | '\u{FEFF}' // zero-width no-break space (BOM)
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
            | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}' // musical formatting
            | '\u{E0000}'..='\u{E007F}' // tags
    )
}

/// Symbols that emoji sequences join with U+200D (an approximation of Extended_Pictographic).
fn is_emoji(c: char) -> bool {
    matches!(
        c,
        '\u{00A9}'
            | '\u{00AE}'
            | '\u{203C}'
            | '\u{2049}'
            | '\u{2122}'
            | '\u{2139}'
            | '\u{2194}'..='\u{21FF}'
            | '\u{2300}'..='\u{23FF}'
            | '\u{24C2}'
            | '\u{25A0}'..='\u{27BF}'
            | '\u{2900}'..='\u{297F}'
            | '\u{2B00}'..='\u{2BFF}'
            | '\u{3030}'
            | '\u{303D}'
            | '\u{3297}'
            | '\u{3299}'
            | '\u{1F000}'..='\u{1FAFF}'
    )
}

/// UTS #39 "highly restrictive": the name's letters are all of one script (digits, punctuation,
/// symbols and emoji go with any script; Han with Hiragana and Katakana, or with Hangul, counts as
/// one), or Latin plus one of Chinese, Japanese or Korean.
fn one_script(s: &str) -> bool {
    let mut all = AugmentedScriptSet::default();
    let mut non_latin = AugmentedScriptSet::default();
    for c in s.chars() {
        let set = AugmentedScriptSet::for_char(c);
        all.intersect_with(set);
        if !set.base.contains_script(Script::Latin) {
            non_latin.intersect_with(set);
        }
    }
    !all.is_empty() || non_latin.hanb || non_latin.jpan || non_latin.kore
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
    validate_room_name(&j.room)?;
    validate_display_name(&j.name)?;
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
                // Line feed and tab lay text out; every other control character (NUL, ESC, BEL,
                // carriage return, ...) can only garble or spoof what a reader sees.
                if let Some(c) = text.chars().find(|c| c.is_control() && !matches!(c, '\n' | '\t')) {
                    return Err(bad(
                        "text",
                        format!(
                            "must not contain control characters other than line feed and tab (found U+{:04X})",
                            u32::from(c)
                        ),
                    ));
                }
                Ok(())
            }
            ClientMessage::Reaction { emoji } => label("emoji", emoji, Limits::EMOJI_MAX),
            ClientMessage::CallReport { peer, .. } => peer_id("peer", peer),
            ClientMessage::PeerError { to, code, message } => {
                peer_id("to", to)?;
                let code_ok = !code.is_empty()
                    && code.len() <= Limits::PEER_ERROR_CODE_MAX
                    && code.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if !code_ok {
                    return Err(bad(
                        "code",
                        format!("must be 1-{} characters of a-z, 0-9 and _", Limits::PEER_ERROR_CODE_MAX),
                    ));
                }
                if message.is_empty() {
                    return Err(bad("message", "must not be empty"));
                }
                if message.chars().count() > Limits::PEER_ERROR_MESSAGE_MAX {
                    return Err(bad(
                        "message",
                        format!("must be at most {} characters", Limits::PEER_ERROR_MESSAGE_MAX),
                    ));
                }
                if message.chars().any(char::is_control) {
                    return Err(bad("message", "must not contain control characters"));
                }
                Ok(())
            }
        }
    }
}

impl ClientFrame {
    /// [`ClientMessage::validate`], and a `cseq` of a numbered message must be at least 1.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.cseq == Some(0) && self.message.is_numbered() {
            return Err(bad("cseq", "must be at least 1 (number messages 1, 2, 3, ...)"));
        }
        self.message.validate()
    }
}
