//! Codec speed: `cargo bench -p hearth-codec --bench codecs`. Prints ms per frame for H.264
//! encode/decode at 720p and 360p (the synthetic pattern, single thread) and Opus per 20 ms.
#![allow(clippy::unwrap_used)]

use hearth_codec::{H264Decoder, H264Encoder, OpusDecoder, OpusEncoder, VideoEncoderConfig};
use hearth_media::{AudioFrame, TestPattern, VideoFrame, VideoKind, VideoSource, marker};
use std::time::{Duration, Instant};

fn video(w: u32, h: u32, frames: u32) {
    let mut src = TestPattern::new(w, h, 30.0).unpaced();
    let cfg = VideoEncoderConfig::for_source(w, h, 30.0, VideoKind::Camera);
    let mut enc = H264Encoder::new(cfg).unwrap();
    let mut dec = H264Decoder::new().unwrap();
    let mut frame = VideoFrame::new(w, h);
    let (mut enc_t, mut dec_t, mut gen_t, mut bytes) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0usize);
    for _ in 0..frames {
        let t = Instant::now();
        src.capture(&mut frame).unwrap();
        gen_t += t.elapsed();
        let t = Instant::now();
        let au = enc.encode(&frame).unwrap().unwrap();
        enc_t += t.elapsed();
        bytes += au.data.len();
        let t = Instant::now();
        let ok = dec.decode(&au.data, |img| marker::read_stamp(img).is_some()).unwrap().unwrap();
        dec_t += t.elapsed();
        assert!(ok);
    }
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(frames);
    println!(
        "H.264 {w}x{h} @ {} kbit/s target: pattern {:.2} ms, encode {:.2} ms, decode {:.2} ms per frame; {:.0} kbit/s at 30 fps",
        cfg.bitrate_bps / 1000,
        per(gen_t),
        per(enc_t),
        per(dec_t),
        bytes as f64 * 8.0 * 30.0 / f64::from(frames) / 1000.0
    );
}

fn audio(frames: u32) {
    let mut enc = OpusEncoder::new(32_000).unwrap();
    let mut dec = OpusDecoder::new().unwrap();
    let mut out = Vec::new();
    let (mut et, mut dt) = (Duration::ZERO, Duration::ZERO);
    for k in 0..u64::from(frames) {
        let mut f = AudioFrame::default();
        marker::render_bursts(k * 20_000, &mut f.samples);
        let t = Instant::now();
        let p = enc.encode(&f).unwrap().to_vec();
        et += t.elapsed();
        let t = Instant::now();
        dec.decode(&p, &mut out).unwrap();
        dt += t.elapsed();
    }
    println!(
        "Opus 48 kHz mono 20 ms @ 32 kbit/s: encode {:.1} us, decode {:.1} us per frame",
        et.as_secs_f64() * 1e6 / f64::from(frames),
        dt.as_secs_f64() * 1e6 / f64::from(frames)
    );
}

fn main() {
    video(1280, 720, 300);
    video(640, 360, 300);
    audio(2000);
}
