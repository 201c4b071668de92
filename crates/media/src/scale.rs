//! Downscaling I420 frames: to the size a tile is shown at, before they cross into the app's
//! page, and to the resolution congestion control allows, before they are encoded.
//!
//! A 5-party grid shows 640x360 video in ~420x236 tiles: sending what is shown instead of what
//! was decoded saves the page more than half of its colour conversion and drawing (it does
//! those in JavaScript when there is no GPU) and its canvas memory. Halving steps (2x2 mean)
//! until the rest is under 2x, then bilinear: no aliasing from large steps, and cheap. Never
//! upscales. Hand-written (~60 lines) rather than a resize crate: planes are 8-bit, the factors
//! are mild, and it keeps the app's dependency tree small.

use crate::frame::VideoFrame;

/// The size to send for a frame of `w`x`h` shown in a `max_w`x`max_h` device-pixel box: the
/// smallest size that still covers the box (tiles crop to fill, `object-fit: cover`), the
/// aspect kept, even sides, never larger than the frame. `None` when scaling would save too
/// little to be worth it (the frame is less than 1.25x that size).
pub fn target_size(w: u32, h: u32, max_w: u32, max_h: u32) -> Option<(u32, u32)> {
    if max_w == 0 || max_h == 0 || w == 0 || h == 0 {
        return None;
    }
    let s = (max_w as f64 / w as f64).max(max_h as f64 / h as f64);
    if s > 0.8 {
        return None;
    }
    let even = |v: f64| ((v.round() as u32) & !1).max(2);
    Some((even(w as f64 * s).min(w), even(h as f64 * s).min(h)))
}

/// `src` scaled to `w`x`h` (both even, at most the source size).
pub fn scale_i420(src: &VideoFrame, w: u32, h: u32) -> VideoFrame {
    let mut out = VideoFrame::new(w, h);
    out.capture_us = src.capture_us;
    let v = src.view();
    let (oy, ou, ov) = out.planes_mut();
    let (sw, sh) = (src.width as usize, src.height as usize);
    scale_plane(v.y.data, sw, sh, oy, w as usize, h as usize);
    scale_plane(v.u.data, sw / 2, sh / 2, ou, w as usize / 2, h as usize / 2);
    scale_plane(v.v.data, sw / 2, sh / 2, ov, w as usize / 2, h as usize / 2);
    out
}

fn scale_plane(src: &[u8], sw: usize, sh: usize, dst: &mut [u8], dw: usize, dh: usize) {
    // Halve while the remaining factor is 2 or more.
    let mut owned;
    let (mut cur, mut cw, mut ch) = (src, sw, sh);
    while cw >= 2 * dw && ch >= 2 * dh && cw >= 2 && ch >= 2 {
        let (hw, hh) = (cw / 2, ch / 2);
        let mut half = vec![0u8; hw * hh];
        for y in 0..hh {
            let (r0, r1) = (&cur[2 * y * cw..], &cur[(2 * y + 1) * cw..]);
            for x in 0..hw {
                let s = r0[2 * x] as u16 + r0[2 * x + 1] as u16 + r1[2 * x] as u16 + r1[2 * x + 1] as u16;
                half[y * hw + x] = ((s + 2) / 4) as u8;
            }
        }
        owned = half;
        cur = &owned;
        cw = hw;
        ch = hh;
    }
    // Bilinear, 16.16 fixed point, pixel centres aligned.
    let fx = ((cw as u64) << 16) / dw as u64;
    let fy = ((ch as u64) << 16) / dh as u64;
    for y in 0..dh {
        let syf = ((y as u64 * fy + fy / 2) as i64 - 0x8000).max(0) as u64;
        let y0 = ((syf >> 16) as usize).min(ch - 1);
        let y1 = (y0 + 1).min(ch - 1);
        let wy = (syf & 0xffff) as u32;
        for x in 0..dw {
            let sxf = ((x as u64 * fx + fx / 2) as i64 - 0x8000).max(0) as u64;
            let x0 = ((sxf >> 16) as usize).min(cw - 1);
            let x1 = (x0 + 1).min(cw - 1);
            let wx = (sxf & 0xffff) as u32;
            let p = |yy: usize, xx: usize| cur[yy * cw + xx] as u32;
            let top = p(y0, x0) * (0x10000 - wx) + p(y0, x1) * wx;
            let bot = p(y1, x0) * (0x10000 - wx) + p(y1, x1) * wx;
            let v = ((top as u64 >> 8) * (0x10000 - wy) as u64 + (bot as u64 >> 8) * wy as u64) >> 24;
            dst[y * dw + x] = v.min(255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_keeps_aspect_and_skips_small_savings() {
        assert_eq!(target_size(640, 360, 420, 236), Some((420, 236)));
        assert_eq!(target_size(640, 360, 420, 200), Some((420, 236)), "covers the box");
        assert_eq!(target_size(640, 360, 420, 400), None, "a tall tile crops the full frame");
        assert_eq!(target_size(640, 360, 600, 340), None, "under 1.25x: sent as it is");
        assert_eq!(target_size(640, 360, 1920, 1080), None, "never upscaled");
        assert_eq!(target_size(640, 360, 0, 0), None);
        let (w, h) = target_size(1280, 720, 101, 57).unwrap();
        assert!(w % 2 == 0 && h % 2 == 0 && w <= 102 && h <= 58, "{w}x{h}");
    }

    #[test]
    fn flat_stays_flat_and_gradients_keep_their_range() {
        let mut f = VideoFrame::new(640, 360);
        f.capture_us = 42;
        {
            let (y, u, v) = f.planes_mut();
            for (i, px) in y.iter_mut().enumerate() {
                *px = ((i % 640) * 255 / 639) as u8; // left-to-right ramp
            }
            u.fill(90);
            v.fill(200);
        }
        for (w, h) in [(420, 236), (160, 90), (100, 56)] {
            let s = scale_i420(&f, w, h);
            assert_eq!((s.width, s.height, s.capture_us), (w, h, 42));
            assert_eq!(s.data.len(), (w * h * 3 / 2) as usize);
            let v = s.view();
            assert!(v.u.data.iter().all(|&p| p == 90) && v.v.data.iter().all(|&p| p == 200), "flat chroma stays flat");
            let row = &v.y.data[..w as usize];
            assert!(row[0] < 8 && row[w as usize - 1] > 247, "the ramp keeps its ends: {} .. {}", row[0], row[w as usize - 1]);
            assert!(row.windows(2).all(|p| p[1] >= p[0]), "and stays monotonic");
        }
    }
}
