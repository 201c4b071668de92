//! Join authorization (room passwords, HS256 JWT room tokens) and TURN REST credentials.
//! Pure functions of their inputs and the time passed in.

use base64::Engine as _;
use hearth_proto::{ErrorCode, IceServer};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// How the server authorizes joins beyond room passwords.
#[derive(Clone, Default)]
pub enum JoinAuth {
    /// Anyone may join any room.
    #[default]
    Open,
    /// Every fresh join must carry an HS256 JWT signed with this secret.
    Jwt { secret: Vec<u8>, leeway_secs: u64 },
}

impl std::fmt::Debug for JoinAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JoinAuth::Open => f.write_str("Open"),
            JoinAuth::Jwt { leeway_secs, .. } => {
                write!(f, "Jwt {{ secret: <redacted>, leeway_secs: {leeway_secs} }}")
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct RoomClaims {
    room: String,
    #[serde(default)]
    name: Option<String>,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    password: Option<String>,
}

/// What a valid room token grants.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    /// The display name the token sets, if it sets one.
    pub name: Option<String>,
    /// When the token expires (seconds since the Unix epoch); a resume checks it again.
    pub exp: u64,
    /// The room password the token carries, if any: it stands for the join's `password` (it
    /// locks a room the join creates, and opens a locked one if it matches).
    pub password: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("name", &self.name)
            .field("exp", &self.exp)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Rooms whose password the server's administrator fixed (room name -> password): joining one
/// always needs that password, and no join can set another.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FixedRooms(pub std::collections::HashMap<String, String>);

impl FixedRooms {
    pub fn password(&self, room: &str) -> Option<&str> {
        self.0.get(room).map(String::as_str)
    }
}

impl std::fmt::Debug for FixedRooms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.0.keys().collect();
        names.sort();
        write!(f, "FixedRooms {{ rooms: {names:?}, passwords: <redacted> }}")
    }
}

/// The longest room password, in bytes (as in the protocol's value limits).
pub const MAX_PASSWORD_BYTES: usize = 256;

/// A refused token: the code to answer with and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub code: ErrorCode,
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> AuthError {
    AuthError { code, message: message.into() }
}

/// Verify a room token for `room` at `now_unix_secs`.
///
/// Only HS256 is accepted: the algorithm list is fixed, so `alg: none` and asymmetric
/// algorithms fail before any claim is read. Expiry is checked here, against the time passed
/// in, rather than by the library against the system clock.
pub fn verify_room_token(
    secret: &[u8],
    leeway_secs: u64,
    token: &str,
    room: &str,
    now_unix_secs: u64,
) -> Result<Grant, AuthError> {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(secret);
    let data = jsonwebtoken::decode::<RoomClaims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        let why = match e.kind() {
            ErrorKind::InvalidSignature => "its signature does not match this server's secret",
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "only HS256 tokens are accepted",
            ErrorKind::Json(_) | ErrorKind::MissingRequiredClaim(_) => {
                "its claims must include a string \"room\" and a numeric \"exp\""
            }
            _ => "it is not a well-formed JWT",
        };
        refuse(ErrorCode::TokenInvalid, format!("the room token is invalid: {why}"))
    })?;
    let claims = data.claims;
    if claims.exp.saturating_add(leeway_secs) <= now_unix_secs {
        return Err(refuse(ErrorCode::TokenExpired, "the room token has expired; ask for a new one"));
    }
    if let Some(nbf) = claims.nbf
        && nbf > now_unix_secs.saturating_add(leeway_secs)
    {
        return Err(refuse(
            ErrorCode::TokenNotYetValid,
            "the room token is not valid yet; check this computer's clock",
        ));
    }
    if claims.room != room {
        return Err(refuse(
            ErrorCode::TokenWrongRoom,
            format!("the room token is for another room, not {room:?}"),
        ));
    }
    if let Some(name) = &claims.name {
        let as_join = hearth_proto::ClientMessage::Join(hearth_proto::Join::new(room, name.clone()));
        if let Err(e) = as_join.validate() {
            return Err(refuse(
                ErrorCode::TokenInvalid,
                format!("the room token's name claim is unusable: {e}"),
            ));
        }
    }
    let password = claims.password.filter(|p| !p.is_empty());
    if password.as_ref().is_some_and(|p| p.len() > MAX_PASSWORD_BYTES) {
        return Err(refuse(
            ErrorCode::TokenInvalid,
            format!("the room token's password claim is longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(Grant { name: claims.name, exp: claims.exp, password })
}

/// Compare passwords in constant time (for equal lengths).
pub fn password_matches(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// TURN servers with a shared secret, for time-limited REST-style credentials.
#[derive(Clone, Default)]
pub struct TurnConfig {
    pub urls: Vec<String>,
    pub secret: Vec<u8>,
    pub ttl_secs: u64,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

/// Credentials in the TURN REST API style that coturn's `use-auth-secret` accepts:
/// username `"<expiry>:<user>"`, password base64(HMAC-SHA1(secret, username)).
pub fn turn_credentials(secret: &[u8], user: &str, expiry_unix_secs: u64) -> (String, String) {
    let username = format!("{expiry_unix_secs}:{user}");
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<sha1::Sha1> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

/// The ICE servers to announce to `user` at `now_unix_secs`.
pub fn ice_servers(
    stun_urls: &[String],
    turn: Option<&TurnConfig>,
    user: &str,
    now_unix_secs: u64,
) -> Vec<IceServer> {
    let mut servers = Vec::new();
    if !stun_urls.is_empty() {
        servers.push(IceServer { urls: stun_urls.to_vec(), username: None, credential: None });
    }
    if let Some(turn) = turn.filter(|t| !t.urls.is_empty()) {
        let (username, credential) =
            turn_credentials(&turn.secret, user, now_unix_secs.saturating_add(turn.ttl_secs));
        servers.push(IceServer {
            urls: turn.urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    servers
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret";
    const NOW: u64 = 1_800_000_000;

    fn token(claims: serde_json::Value) -> String {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn verify(t: &str) -> Result<Grant, AuthError> {
        verify_room_token(SECRET, 30, t, "standup", NOW)
    }

    #[test]
    fn accepts_a_valid_token_and_takes_its_name() {
        let t = token(json!({"room": "standup", "name": "Ada", "exp": NOW + 60}));
        assert_eq!(verify(&t).unwrap(), Grant { name: Some("Ada".into()), exp: NOW + 60, password: None });
        let t = token(json!({"room": "standup", "exp": NOW + 60, "nbf": NOW - 1}));
        assert_eq!(verify(&t).unwrap(), Grant { name: None, exp: NOW + 60, password: None });
        // A password claim is carried; an empty one means none; a huge one is refused.
        let t = token(json!({"room": "standup", "exp": NOW + 60, "password": "hunter2"}));
        let grant = verify(&t).unwrap();
        assert_eq!(grant.password.as_deref(), Some("hunter2"));
        assert!(!format!("{grant:?}").contains("hunter2"));
        let t = token(json!({"room": "standup", "exp": NOW + 60, "password": ""}));
        assert_eq!(verify(&t).unwrap().password, None);
        let t = token(json!({"room": "standup", "exp": NOW + 60, "password": "x".repeat(257)}));
        assert_eq!(verify(&t).unwrap_err().code, ErrorCode::TokenInvalid);
        // A name claim gets the same checks as a display name.
        let t = token(json!({"room": "standup", "exp": NOW + 60, "name": "x".repeat(100)}));
        assert_eq!(verify(&t).unwrap_err().code, ErrorCode::TokenInvalid);
    }

    #[test]
    fn rejects_expired_not_yet_valid_and_wrong_room() {
        let t = token(json!({"room": "standup", "exp": NOW - 31}));
        assert_eq!(verify(&t).unwrap_err().code, ErrorCode::TokenExpired);
        // Within the leeway it still passes.
        let t = token(json!({"room": "standup", "exp": NOW - 29}));
        assert!(verify(&t).is_ok());
        let t = token(json!({"room": "standup", "exp": NOW + 600, "nbf": NOW + 300}));
        assert_eq!(verify(&t).unwrap_err().code, ErrorCode::TokenNotYetValid);
        let t = token(json!({"room": "other", "exp": NOW + 60}));
        assert_eq!(verify(&t).unwrap_err().code, ErrorCode::TokenWrongRoom);
    }

    #[test]
    fn rejects_wrong_key_alg_none_and_garbage() {
        let other = encode(
            &Header::default(),
            &json!({"room": "standup", "exp": NOW + 60}),
            &EncodingKey::from_secret(b"another-secret"),
        )
        .unwrap();
        assert_eq!(verify(&other).unwrap_err().code, ErrorCode::TokenInvalid);

        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        let header = B64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let claims = B64.encode(format!(r#"{{"room":"standup","exp":{}}}"#, NOW + 60));
        for unsigned in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            assert_eq!(verify(&unsigned).unwrap_err().code, ErrorCode::TokenInvalid);
        }
        let hs512 = encode(
            &Header::new(jsonwebtoken::Algorithm::HS512),
            &json!({"room": "standup", "exp": NOW + 60}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert_eq!(verify(&hs512).unwrap_err().code, ErrorCode::TokenInvalid);
        for junk in ["", "a.b.c", "not a token", "....."] {
            assert_eq!(verify(junk).unwrap_err().code, ErrorCode::TokenInvalid);
        }
        let no_exp = token(json!({"room": "standup"}));
        assert_eq!(verify(&no_exp).unwrap_err().code, ErrorCode::TokenInvalid);
    }

    #[test]
    fn turn_credentials_match_the_rest_api_scheme() {
        // Reference value computed independently:
        // printf '1700000600:alice' | openssl dgst -sha1 -hmac 'north' -binary | base64
        let (user, pass) = turn_credentials(b"north", "alice", 1_700_000_600);
        assert_eq!(user, "1700000600:alice");
        assert_eq!(pass, "gthUwOpcRoLI0MMCziCEBOWYnpo=");
    }

    #[test]
    fn ice_servers_carry_ttl_expiry() {
        let turn =
            TurnConfig { urls: vec!["turn:127.0.0.1:3478".into()], secret: b"s".to_vec(), ttl_secs: 600 };
        let servers = ice_servers(&["stun:127.0.0.1:3478".into()], Some(&turn), "p1", 1000);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].username, None);
        assert_eq!(servers[1].username.as_deref(), Some("1600:p1"));
        assert!(ice_servers(&[], None, "p1", 1000).is_empty());
    }

    #[test]
    fn password_comparison() {
        assert!(password_matches("hunter2", "hunter2"));
        assert!(!password_matches("hunter2", "hunter3"));
        assert!(!password_matches("hunter2", "hunter"));
        assert!(!password_matches("", "x"));
    }
}
