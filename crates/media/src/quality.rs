//! Picture quality of decoded video against the known synthetic source.
//!
//! The synthetic pattern is a pure function of its size, kind and frame number, and every
//! frame carries its number in its stamp: a receiver can regenerate exactly what the sender
//! encoded and compute PSNR of what it decoded. Latency and CPU figures are then stated at a
//! measured quality.

use crate::frame::{I420View, VideoFrame};
use crate::marker::{VideoStamp, write_stamp};
use crate::source::VideoKind;
use crate::synthetic::TestPattern;

/// PSNR of identical planes is infinite; this is what is reported instead.
pub const PSNR_IDENTICAL_DB: f64 = 100.0;

/// PSNR in dB of the luma (Y) plane of `decoded` against `reference`; `None` if their sizes
/// differ.
pub fn psnr_y(decoded: &I420View<'_>, reference: &I420View<'_>) -> Option<f64> {
    if decoded.width != reference.width || decoded.height != reference.height {
        return None;
    }
    let (w, h) = (decoded.width as usize, decoded.height as usize);
    let mut sse = 0u64;
    for row in 0..h {
        let a = decoded.y.data.get(row * decoded.y.stride..row * decoded.y.stride + w)?;
        let b = reference.y.data.get(row * reference.y.stride..row * reference.y.stride + w)?;
        sse += a.iter().zip(b).map(|(&x, &y)| u64::from(x.abs_diff(y)).pow(2)).sum::<u64>();
    }
    if sse == 0 || w * h == 0 {
        return Some(PSNR_IDENTICAL_DB);
    }
    let mse = sse as f64 / (w * h) as f64;
    Some((10.0 * (255.0 * 255.0 / mse).log10()).min(PSNR_IDENTICAL_DB))
}

/// Regenerates the synthetic source frame a stamp names (see [`TestPattern`]).
#[derive(Debug)]
pub struct SyntheticReference {
    pattern: Option<(u32, u32, VideoKind, TestPattern)>,
    frame: VideoFrame,
}

impl Default for SyntheticReference {
    fn default() -> Self {
        Self::new()
    }
}

impl SyntheticReference {
    pub fn new() -> Self {
        SyntheticReference { pattern: None, frame: VideoFrame::new(2, 2) }
    }

    /// The frame the sender's [`TestPattern`] of this size and kind produced for `stamp`.
    pub fn frame(&mut self, width: u32, height: u32, kind: VideoKind, stamp: VideoStamp) -> &VideoFrame {
        let reuse = matches!(&self.pattern, Some((w, h, k, _)) if (*w, *h, *k) == (width, height, kind));
        if !reuse {
            let p = match kind {
                VideoKind::Camera => TestPattern::new(width, height, 30.0),
                VideoKind::Screen => TestPattern::screen(width, height, 30.0),
            };
            self.pattern = Some((width, height, kind, p));
        }
        if let Some((_, _, _, p)) = &self.pattern {
            p.draw(stamp.frame, &mut self.frame);
            self.frame.capture_us = stamp.capture_us;
            write_stamp(&mut self.frame, stamp);
        }
        &self.frame
    }

    /// PSNR (Y) of a decoded synthetic frame against its source, if it carries a stamp.
    pub fn psnr(&mut self, decoded: &I420View<'_>, kind: VideoKind, stamp: VideoStamp) -> Option<f64> {
        let reference = self.frame(decoded.width, decoded.height, kind, stamp);
        psnr_y(decoded, &reference.view())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::marker::read_stamp;
    use crate::source::VideoSource;

    #[test]
    fn the_reference_is_the_source_frame() {
        for kind in [VideoKind::Camera, VideoKind::Screen] {
            let mut src = match kind {
                VideoKind::Camera => TestPattern::new(320, 240, 30.0),
                VideoKind::Screen => TestPattern::screen(320, 240, 30.0),
            }
            .unpaced();
            let mut f = VideoFrame::new(2, 2);
            let mut reference = SyntheticReference::new();
            for _ in 0..37 {
                src.capture(&mut f).unwrap();
            }
            let stamp = read_stamp(&f.view()).unwrap();
            assert_eq!(stamp.frame, 36);
            assert_eq!(reference.frame(320, 240, kind, stamp).data, f.data, "{kind:?}");
            assert_eq!(reference.psnr(&f.view(), kind, stamp), Some(PSNR_IDENTICAL_DB));
        }
    }

    #[test]
    fn psnr_of_known_errors() {
        let a = VideoFrame::new(64, 32);
        let mut b = a.clone();
        // Every luma sample off by 5: MSE 25, PSNR 10 log10(255^2 / 25) = 34.15 dB.
        let (y, _, _) = b.planes_mut();
        for p in y.iter_mut() {
            *p = p.saturating_add(5);
        }
        let psnr = psnr_y(&b.view(), &a.view()).unwrap();
        assert!((psnr - 34.15).abs() < 0.01, "{psnr}");
        assert_eq!(psnr_y(&a.view(), &VideoFrame::new(32, 32).view()), None);
    }
}
