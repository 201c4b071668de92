//! Invite links: `hearth://join?server=wss%3A%2F%2Fcall.example.org&room=standup`. No server
//! means the embedded local server (useful only on the same machine). Passwords are never put
//! in links.

use crate::api::Invite;

pub const SCHEME: &str = "hearth";

/// The link for a room on a server (empty server: the local one).
pub fn format(server: &str, room: &str) -> String {
    let mut u = url::Url::parse("hearth://join").expect("static URL parses");
    {
        let mut q = u.query_pairs_mut();
        if !server.is_empty() {
            q.append_pair("server", server);
        }
        q.append_pair("room", room);
    }
    u.to_string()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InviteError {
    #[error("not a Hearth invite link (it should start with hearth://join?)")]
    NotAnInvite,
    #[error("the invite link names no room")]
    NoRoom,
    #[error("the invite's server must be a ws:// or wss:// address")]
    BadServer,
}

/// Parse a link given on the command line or by the OS.
pub fn parse(link: &str) -> Result<Invite, InviteError> {
    let u = url::Url::parse(link.trim()).map_err(|_| InviteError::NotAnInvite)?;
    if u.scheme() != SCHEME || u.host_str() != Some("join") {
        return Err(InviteError::NotAnInvite);
    }
    let mut room = None;
    let mut server = String::new();
    for (k, v) in u.query_pairs() {
        match &*k {
            "room" => room = Some(v.trim().to_string()),
            "server" => server = v.trim().to_string(),
            _ => {}
        }
    }
    let room = room.filter(|r| !r.is_empty() && r.chars().count() <= 64).ok_or(InviteError::NoRoom)?;
    if !server.is_empty() {
        let ok = url::Url::parse(&server).map(|s| matches!(s.scheme(), "ws" | "wss")).unwrap_or(false);
        if !ok {
            return Err(InviteError::BadServer);
        }
    }
    Ok(Invite { server, room })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for (server, room) in [("", "standup"), ("wss://call.example.org/ws", "Ünïcode room & more?=")] {
            let link = format(server, room);
            assert!(link.starts_with("hearth://join?"), "{link}");
            assert_eq!(parse(&link).unwrap(), Invite { server: server.into(), room: room.into() });
        }
    }

    #[test]
    fn refuses_bad_links() {
        assert_eq!(parse("https://example.org/join?room=a"), Err(InviteError::NotAnInvite));
        assert_eq!(parse("hearth://other?room=a"), Err(InviteError::NotAnInvite));
        assert_eq!(parse("hearth://join?server=ws://x"), Err(InviteError::NoRoom));
        assert_eq!(parse("hearth://join?room="), Err(InviteError::NoRoom));
        assert_eq!(parse("hearth://join?room=a&server=javascript:alert(1)"), Err(InviteError::BadServer));
        assert_eq!(parse("not a url"), Err(InviteError::NotAnInvite));
    }
}
