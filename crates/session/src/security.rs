//! Who is at the other end of a link: the DTLS certificate fingerprints that the session
//! descriptions carry, and the short safety code two people compare (read aloud, or side by
//! side) to know that no one sits in the middle.
//!
//! The signaling server relays the session descriptions, so a malicious server could swap
//! fingerprints and relay the media through itself. It cannot make both ends compute the same
//! code then: each end derives the code from the fingerprint of its own certificate and of the
//! certificate it actually talks to, and a relay in the middle presents different certificates to
//! each side.

use sha2::{Digest, Sha256};

/// Separates these hashes from any other use of SHA-256 over fingerprints.
const SAFETY_CODE_DOMAIN: &[u8] = b"hearth safety code v1\0";

/// The certificate fingerprint in a session description (`a=fingerprint:` at session or media
/// level): the SHA-256 one if there is one, else the first; as written, with single spaces
/// ("sha-256 AB:CD:..."). `None` when there is none. Any text is accepted (it comes from the
/// network).
pub fn fingerprint(sdp: &str) -> Option<String> {
    let mut first = None;
    for line in sdp.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("a=fingerprint:") else { continue };
        let mut parts = rest.split_whitespace();
        let (Some(algorithm), Some(value)) = (parts.next(), parts.next()) else { continue };
        let found = format!("{} {value}", algorithm.to_ascii_lowercase());
        if algorithm.eq_ignore_ascii_case("sha-256") {
            return Some(found);
        }
        first.get_or_insert(found);
    }
    first
}

/// The fingerprint as the safety code sees it: no whitespace, lower case.
fn normalize(fingerprint: &str) -> String {
    fingerprint.chars().filter(|c| !c.is_whitespace()).map(|c| c.to_ascii_lowercase()).collect()
}

/// The safety code of a link, "123 456": the same at both ends (the order of the two
/// fingerprints does not matter), different for any other pair of certificates. Case and
/// whitespace in the fingerprints do not matter.
///
/// SHA-256 over a domain-separation prefix and both normalized fingerprints (sorted, each
/// terminated by a zero byte), read as 6 decimal digits.
pub fn safety_code(local_fingerprint: &str, remote_fingerprint: &str) -> String {
    let (a, b) = (normalize(local_fingerprint), normalize(remote_fingerprint));
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = Sha256::new();
    hash.update(SAFETY_CODE_DOMAIN);
    hash.update(first.as_bytes());
    hash.update([0]);
    hash.update(second.as_bytes());
    hash.update([0]);
    let digest = hash.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // 2^64 is so much larger than 10^6 that the bias of the modulo is negligible.
    let n = u64::from_be_bytes(head) % 1_000_000;
    format!("{:03} {:03}", n / 1000, n % 1000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "sha-256 1B:3E:5C:9A:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:01:02:03:04:05:06:07:08:09:0A:0B:0C";
    const B: &str = "sha-256 7F:00:AB:CD:EF:01:23:45:67:89:10:32:54:76:98:BA:DC:FE:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE";

    #[test]
    fn fingerprints_are_read_from_session_descriptions() {
        let sdp = format!(
            "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-1 AA:BB\r\n\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=fingerprint:{A}\r\n"
        );
        assert_eq!(fingerprint(&sdp).as_deref(), Some(A));
        assert_eq!(fingerprint("a=fingerprint:SHA-256   AB:CD\n").as_deref(), Some("sha-256 AB:CD"));
        // No SHA-256 line: the first one.
        assert_eq!(fingerprint("a=fingerprint:sha-1 AA:BB\r\n").as_deref(), Some("sha-1 AA:BB"));
        assert_eq!(fingerprint("v=0\r\nm=audio 9 X 111\r\n"), None);
    }

    #[test]
    fn malformed_fingerprint_lines_are_skipped() {
        for s in
            ["", "a=fingerprint:", "a=fingerprint:sha-256", "a=fingerprint: ", "\u{0}a=fingerprint:\u{ffff}"]
        {
            assert_eq!(fingerprint(s), None, "{s:?}");
        }
    }

    #[test]
    fn the_code_is_six_digits_and_the_same_at_both_ends() {
        let code = safety_code(A, B);
        assert_eq!(code.len(), 7);
        assert!(code.chars().enumerate().all(|(i, c)| if i == 3 { c == ' ' } else { c.is_ascii_digit() }));
        assert_eq!(safety_code(B, A), code);
        // A fixed value, so the derivation cannot change silently (both ends must agree across
        // versions).
        assert_eq!(code, KNOWN_CODE);
    }

    /// safety_code(A, B), computed independently (Python hashlib) from the definition above.
    const KNOWN_CODE: &str = "719 216";

    #[test]
    fn another_certificate_changes_the_code() {
        let b2 = B.replace("7F:00", "7F:01");
        assert_ne!(safety_code(A, B), safety_code(A, &b2));
        assert_ne!(safety_code(A, B), safety_code(&b2, B));
        // Moving bytes from one fingerprint to the other is another pair too.
        assert_ne!(safety_code("sha-256 AB", "sha-256 CD"), safety_code("sha-256 ABC", "sha-256 D"));
    }

    #[test]
    fn case_and_whitespace_do_not_matter() {
        let code = safety_code(A, B);
        assert_eq!(safety_code(&A.to_lowercase(), B), code);
        assert_eq!(safety_code(&format!("  {}\n", A.replace(' ', "   ")), &B.to_uppercase()), code);
        assert_eq!(safety_code(&A.replace(':', " : "), B), code);
    }

    proptest! {
        #[test]
        fn symmetric_for_any_input(a in ".{0,120}", b in ".{0,120}") {
            prop_assert_eq!(safety_code(&a, &b), safety_code(&b, &a));
            prop_assert_eq!(safety_code(&a, &b).len(), 7);
        }

        #[test]
        fn any_text_is_parsed_without_panicking(s in "(a=fingerprint:)?.{0,200}") {
            let _ = fingerprint(&s);
        }
    }
}
