//! Decoding any text as a client message never panics, and whatever decodes re-encodes to
//! something that decodes to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match hearth_proto::decode_client(text) {
        Ok(msg) => {
            let _ = msg.validate();
            let again = hearth_proto::decode_client(&hearth_proto::encode(&msg)).expect("re-encoded message decodes");
            assert_eq!(again, msg);
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
});
