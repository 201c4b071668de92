//! Any bytes fed to the H.264 decoder (as a received access unit would be) give a picture, a
//! decode error or "need a keyframe": never a panic. The first input is made to look like a
//! keyframe so the decoder gets past its keyframe gate.
#![no_main]

use hearth_codec::H264Decoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut dec) = H264Decoder::new() else { return };
    for chunk in data.split(|b| *b == 0xfe).take(8) {
        let mut au = vec![0, 0, 0, 1, 0x65];
        au.extend_from_slice(chunk);
        let _ = dec.decode(&au, |img| (img.width, img.height, img.luma(0, 0)));
        let _ = dec.decode(chunk, |img| img.width);
    }
});
