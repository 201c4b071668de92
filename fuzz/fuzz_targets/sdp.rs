//! The session crate's SDP reading (codec check, origin session id) takes any text from the
//! network: it never panics, and a session id found is a token of the input's `o=` line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = std::str::from_utf8(data) else { return };
    let _ = hearth_session::sdp::unusable_codecs(sdp);
    if let Some(id) = hearth_session::sdp::session_id(sdp) {
        assert!(!id.is_empty() && id.len() <= 64 && sdp.contains(id));
        assert!(!id.chars().any(|c| c.is_ascii_whitespace()));
    }
});
