//! Decoding any text as a server message (what a client parses) never panics, and round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(msg) = hearth_proto::decode_server(text) {
        let again = hearth_proto::decode_server(&hearth_proto::encode(&msg)).expect("re-encoded message decodes");
        assert_eq!(again, msg);
    }
});
