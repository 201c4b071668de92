//! Reading a stamp from any image never panics; a stamp written into a frame reads back exactly.
#![no_main]

use hearth_media::marker::{VideoStamp, read_stamp, write_stamp};
use hearth_media::{I420View, Plane, VideoFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let w = u32::from(u16::from_le_bytes([data[0], data[1]]) % 700) + 2;
    let h = u32::from(u16::from_le_bytes([data[2], data[3]]) % 400) + 2;
    let stride = w as usize + usize::from(data[4] % 64);
    let pixels = &data[5..];
    // An arbitrary (possibly too short) luma plane: read_stamp must cope.
    let view = I420View { width: w, height: h, y: Plane { data: pixels, stride }, u: Plane { data: pixels, stride: stride / 2 }, v: Plane { data: pixels, stride: stride / 2 } };
    let _ = read_stamp(&view);
    let mut frame = VideoFrame::new(w, h);
    let stamp = VideoStamp { frame: u32::from_le_bytes([data[5], data[6], data[7], data[8]]), capture_us: u64::from_le_bytes([data[8], data[9], data[10], data[11], data[12], data[13], data[14], 0]) };
    if write_stamp(&mut frame, stamp) {
        assert_eq!(read_stamp(&frame.view()), Some(stamp));
    }
});
