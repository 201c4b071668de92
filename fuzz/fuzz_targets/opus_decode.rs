//! Any bytes decoded as Opus packets (and as FEC for a lost one) give audio or an error, never a
//! panic, and never more than one frame of samples.
#![no_main]

use hearth_codec::OpusDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut dec) = OpusDecoder::new() else { return };
    let mut out = Vec::new();
    for packet in data.split(|b| *b == 0xff).take(16) {
        if dec.decode(packet, &mut out).is_ok() {
            assert!(out.len() <= hearth_media::FRAME_SAMPLES);
        }
        if dec.conceal(Some(packet), &mut out).is_ok() {
            assert!(out.len() <= hearth_media::FRAME_SAMPLES);
        }
    }
    let _ = dec.conceal(None, &mut out);
});
