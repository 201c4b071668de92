//! Decoding any text as a client frame (what the server does) never panics, and whatever
//! decodes re-encodes to something that decodes to the same frame, `cseq` included. The plain
//! decoder agrees with the frame decoder on the message, and the name rules are stable.
#![no_main]

use hearth_proto::{ClientMessage, decode_client, decode_client_frame, encode, encode_numbered};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match decode_client_frame(text) {
        Ok(frame) => {
            let _ = frame.validate();
            let again = decode_client_frame(&encode(&frame)).expect("re-encoded frame decodes");
            assert_eq!(again, frame);
            if let Some(cseq) = frame.cseq {
                let numbered =
                    decode_client_frame(&encode_numbered(&frame.message, cseq)).expect("numbered decodes");
                assert_eq!(numbered, frame);
            }
            // Whatever the frame decoder takes, the plain one takes too (it ignores `cseq`).
            assert_eq!(decode_client(text).expect("plain decode"), frame.message);
            if let ClientMessage::Join(join) = &frame.message {
                for name in [&join.room, &join.name] {
                    let once = hearth_proto::normalize_name(name);
                    assert_eq!(hearth_proto::normalize_name(&once), once);
                    assert_eq!(hearth_proto::name_skeleton(name), hearth_proto::name_skeleton(&once));
                }
            }
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
            // A frame error is either one the plain decoder shares or a bad `cseq`.
            if let Ok(msg) = decode_client(text) {
                let _ = msg.validate();
            }
        }
    }
});
