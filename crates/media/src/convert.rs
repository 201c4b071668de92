//! Pixel format conversion (yuvutils-rs: SIMD, handles row strides; ~0.2 ms per 720p frame).

use crate::MediaError;
use crate::frame::{I420View, VideoFrame};
use yuvutils_rs::{
    BufferStoreMut, YuvConversionMode, YuvPlanarImage, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
};

/// Packed pixel layouts sources deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelLayout {
    Rgb,
    Rgba,
    Bgra,
}

/// Convert packed pixels (`stride` bytes per row) into `frame` (resized to `width`x`height`,
/// which must be even).
pub fn packed_to_i420(
    layout: PixelLayout,
    src: &[u8],
    stride: u32,
    width: u32,
    height: u32,
    frame: &mut VideoFrame,
) -> Result<(), MediaError> {
    frame.resize(width, height);
    let (w, h) = (frame.width, frame.height);
    let (y, u, v) = frame.planes_mut();
    let mut img = YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(y),
        y_stride: w,
        u_plane: BufferStoreMut::Borrowed(u),
        u_stride: w / 2,
        v_plane: BufferStoreMut::Borrowed(v),
        v_stride: w / 2,
        width: w,
        height: h,
    };
    let (range, matrix, mode) = (YuvRange::Limited, YuvStandardMatrix::Bt601, YuvConversionMode::Balanced);
    let result = match layout {
        PixelLayout::Rgb => yuvutils_rs::rgb_to_yuv420(&mut img, src, stride, range, matrix, mode),
        PixelLayout::Rgba => yuvutils_rs::rgba_to_yuv420(&mut img, src, stride, range, matrix, mode),
        PixelLayout::Bgra => yuvutils_rs::bgra_to_yuv420(&mut img, src, stride, range, matrix, mode),
    };
    result.map_err(|e| MediaError::Convert(e.to_string()))
}

/// Convert an I420 image to packed RGBA (`width * 4` bytes per row), e.g. for display.
pub fn i420_to_rgba(img: &I420View<'_>, out: &mut Vec<u8>) -> Result<(), MediaError> {
    out.resize((img.width * img.height * 4) as usize, 0);
    let planar = YuvPlanarImage {
        y_plane: img.y.data,
        y_stride: img.y.stride as u32,
        u_plane: img.u.data,
        u_stride: img.u.stride as u32,
        v_plane: img.v.data,
        v_stride: img.v.stride as u32,
        width: img.width,
        height: img.height,
    };
    yuvutils_rs::yuv420_to_rgba(&planar, out, img.width * 4, YuvRange::Limited, YuvStandardMatrix::Bt601)
        .map_err(|e| MediaError::Convert(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bgra_round_trip_keeps_colours() {
        let (w, h) = (64u32, 32u32);
        let stride = w * 4 + 16; // padded rows, as screen grabs have
        let mut bgra = vec![0u8; (stride * h) as usize];
        for row in 0..h as usize {
            for x in 0..w as usize {
                let p = row * stride as usize + x * 4;
                bgra[p..p + 4].copy_from_slice(if x < 32 { &[0, 0, 255, 0] } else { &[255, 0, 0, 0] });
            }
        }
        let mut f = VideoFrame::new(2, 2);
        packed_to_i420(PixelLayout::Bgra, &bgra, stride, w, h, &mut f).unwrap();
        let mut rgba = Vec::new();
        i420_to_rgba(&f.view(), &mut rgba).unwrap();
        let red = &rgba[(10 * w as usize + 5) * 4..][..3];
        let blue = &rgba[(10 * w as usize + 50) * 4..][..3];
        assert!(red[0] > 230 && red[1] < 30 && red[2] < 30, "{red:?}");
        assert!(blue[2] > 230 && blue[0] < 30 && blue[1] < 30, "{blue:?}");
    }
}
