//! The whole H.264 receive path on arbitrary RTP packet sequences, as a peer could send them:
//! reordering, depacketizing, frame assembly (`hearth_codec::rtp_receive::H264Receiver`, what
//! the engine's video receiver drives) and decoding. Never a panic; every access unit released
//! is bounded Annex-B, and one released while a keyframe was awaited is a keyframe.
//!
//! Input: records of `[flags, delta, len_hi, len_lo, payload; len]` until the bytes run out
//! (a short last payload is taken as it is).
//! - flags bit 0: RTP marker; bit 1: a new frame (timestamp + 3000); bit 2: a new SSRC;
//!   bits 3-4: sequence number = previous + 1 (0), + 2 + delta (1: a gap), - delta (2: late or
//!   duplicate), delta * 256 (3: a jump); bits 5-7: time advances by that many 20 ms steps
//!   before the packet arrives (the receiver gives a gap up after 80 ms).
#![no_main]

use bytes::Bytes;
use hearth_codec::H264Decoder;
use hearth_codec::rtp_h264::{DEFAULT_MAX_FRAME_BYTES, RtpPacket};
use hearth_codec::rtp_receive::{H264Receiver, Received};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    // Created at the first frame: most inputs release none, and creating one is what costs.
    let mut dec = None;
    let mut rx = H264Receiver::new(Duration::from_millis(80), 512);
    let mut now = Instant::now();
    let (mut ssrc, mut seq, mut timestamp) = (1u32, 0u16, 0u32);
    let mut rest = data;
    while rest.len() >= 4 {
        let (flags, delta) = (rest[0], u16::from(rest[1]));
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]])).min(rest.len() - 4);
        let payload = Bytes::copy_from_slice(&rest[4..4 + len]);
        rest = &rest[4 + len..];
        seq = match (flags >> 3) & 3 {
            0 => seq.wrapping_add(1),
            1 => seq.wrapping_add(2 + delta),
            2 => seq.wrapping_sub(delta),
            _ => delta << 8,
        };
        if flags & 2 != 0 {
            timestamp = timestamp.wrapping_add(3000);
        }
        if flags & 4 != 0 {
            ssrc = ssrc.wrapping_add(1);
        }
        now += Duration::from_millis(u64::from(flags >> 5) * 20);
        rx.push(RtpPacket { ssrc, seq, timestamp, marker: flags & 1 != 0, payload }, now);
        drain(&mut rx, &mut dec, now);
    }
    drain(&mut rx, &mut dec, now + Duration::from_secs(10));
});

fn drain(rx: &mut H264Receiver, dec: &mut Option<H264Decoder>, now: Instant) {
    loop {
        let waiting = rx.waiting_for_keyframe();
        let Some(ev) = rx.poll(now) else { break };
        if let Received::Frame(au) = ev {
            assert!(au.data.len() <= DEFAULT_MAX_FRAME_BYTES);
            assert!(au.data.starts_with(&[0, 0, 0, 1]));
            // A frame comes out of the poll that assembled it, so `waiting` is the state it met.
            assert!(!waiting || au.keyframe, "a non-keyframe ended the wait for a keyframe");
            if dec.is_none() {
                *dec = H264Decoder::new().ok();
            }
            if let Some(dec) = dec {
                let _ = dec.decode(&au.data, |img| (img.width, img.height, img.luma(0, 0)));
            }
        }
    }
}
