//! Raw media frames and the wall clock they are stamped with.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Audio sample rate used everywhere in Hearth (Opus' native rate).
pub const SAMPLE_RATE: u32 = 48_000;
/// Samples per audio frame: 20 ms at 48 kHz, mono.
pub const FRAME_SAMPLES: usize = 960;
/// Duration of one audio frame in microseconds.
pub const FRAME_US: u64 = 20_000;

/// Microseconds since the Unix epoch. Capture and decode times use this clock so that peers on
/// one machine (tests, benchmarks) can compare them directly.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

/// [`now_us`]'s time at instant `at` (before or after now).
pub fn wall_us(at: std::time::Instant) -> u64 {
    let now = std::time::Instant::now();
    if at >= now {
        now_us() + at.duration_since(now).as_micros() as u64
    } else {
        now_us().saturating_sub(now.duration_since(at).as_micros() as u64)
    }
}

/// One plane of an image: rows of `stride` bytes, of which the first `width` are pixels.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a> {
    pub data: &'a [u8],
    pub stride: usize,
}

/// A borrowed I420 (YUV 4:2:0 planar, BT.601 limited range) image.
#[derive(Debug, Clone, Copy)]
pub struct I420View<'a> {
    pub width: u32,
    pub height: u32,
    pub y: Plane<'a>,
    pub u: Plane<'a>,
    pub v: Plane<'a>,
}

impl I420View<'_> {
    /// The luma value at (x, y), or `None` outside the image or its buffer.
    pub fn luma(&self, x: u32, y: u32) -> Option<u8> {
        if x >= self.width || y >= self.height {
            return None;
        }
        self.y.data.get(y as usize * self.y.stride + x as usize).copied()
    }

    /// Copy into a packed frame.
    pub fn to_frame(&self, capture_us: u64) -> VideoFrame {
        let mut f = VideoFrame::new(self.width, self.height);
        f.capture_us = capture_us;
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y, rest) = f.data.split_at_mut(w * h);
        let (u, v) = rest.split_at_mut(cw * ch);
        copy_plane(self.y, y, w, h);
        copy_plane(self.u, u, cw, ch);
        copy_plane(self.v, v, cw, ch);
        f
    }
}

fn copy_plane(src: Plane<'_>, dst: &mut [u8], width: usize, height: usize) {
    for row in 0..height {
        let from = row * src.stride;
        if let (Some(s), Some(d)) =
            (src.data.get(from..from + width), dst.get_mut(row * width..(row + 1) * width))
        {
            d.copy_from_slice(s);
        }
    }
}

/// An owned, packed I420 video frame (strides equal the plane widths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoFrame {
    pub width: u32,
    pub height: u32,
    /// Y plane, then U, then V.
    pub data: Vec<u8>,
    /// When the frame was captured, in [`now_us`] microseconds.
    pub capture_us: u64,
}

impl VideoFrame {
    /// A black frame. Width and height are rounded up to even numbers (the encoder needs them).
    pub fn new(width: u32, height: u32) -> VideoFrame {
        let (width, height) = (width.max(2).next_multiple_of(2), height.max(2).next_multiple_of(2));
        let luma = (width * height) as usize;
        let mut data = vec![16u8; luma + luma / 2];
        data[luma..].fill(128);
        VideoFrame { width, height, data, capture_us: 0 }
    }

    /// Reshape for a new size, reusing the allocation where possible.
    pub fn resize(&mut self, width: u32, height: u32) {
        if self.width != width || self.height != height {
            *self = VideoFrame { capture_us: self.capture_us, ..VideoFrame::new(width, height) };
        }
    }

    fn luma_len(&self) -> usize {
        (self.width * self.height) as usize
    }

    pub fn planes_mut(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        let luma = self.luma_len();
        let (y, rest) = self.data.split_at_mut(luma);
        let (u, v) = rest.split_at_mut(luma / 4);
        (y, u, v)
    }

    pub fn view(&self) -> I420View<'_> {
        let luma = self.luma_len();
        let cw = (self.width / 2) as usize;
        I420View {
            width: self.width,
            height: self.height,
            y: Plane { data: &self.data[..luma], stride: self.width as usize },
            u: Plane { data: &self.data[luma..luma + luma / 4], stride: cw },
            v: Plane { data: &self.data[luma + luma / 4..], stride: cw },
        }
    }
}

/// Frames shared as `Arc`s (with a display, a preview callback) and reused once every holder
/// has dropped them: in steady state a copy allocates nothing.
#[derive(Debug)]
pub struct FramePool {
    frames: Vec<Arc<VideoFrame>>,
    max: usize,
}

impl FramePool {
    /// A pool keeping up to `max` frames for reuse.
    pub fn new(max: usize) -> FramePool {
        FramePool { frames: Vec::with_capacity(max), max }
    }

    /// A shared copy of `frame`, in a pooled frame nobody holds any more if there is one.
    pub fn copy(&mut self, frame: &VideoFrame) -> Arc<VideoFrame> {
        for pooled in &mut self.frames {
            if let Some(f) = Arc::get_mut(pooled) {
                f.width = frame.width;
                f.height = frame.height;
                f.capture_us = frame.capture_us;
                f.data.clear();
                f.data.extend_from_slice(&frame.data);
                return pooled.clone();
            }
        }
        let fresh = Arc::new(frame.clone());
        if self.frames.len() < self.max {
            self.frames.push(fresh.clone());
        }
        fresh
    }
}

/// 20 ms of 48 kHz mono audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    pub samples: Vec<i16>,
    /// When the first sample was captured, in [`now_us`] microseconds.
    pub capture_us: u64,
}

impl Default for AudioFrame {
    fn default() -> Self {
        AudioFrame { samples: vec![0; FRAME_SAMPLES], capture_us: 0 }
    }
}

impl AudioFrame {
    /// Root-mean-square level in 0.0..=1.0.
    pub fn rms(&self) -> f32 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        ((sum / self.samples.len() as f64).sqrt() / 32768.0) as f32
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_and_copy_from_padded_view() {
        let mut f = VideoFrame::new(5, 3);
        assert_eq!((f.width, f.height), (6, 4));
        assert_eq!(f.data.len(), 6 * 4 * 3 / 2);
        let (y, u, v) = f.planes_mut();
        y.iter_mut().enumerate().for_each(|(i, p)| *p = i as u8);
        u.fill(1);
        v.fill(2);
        // Pad every row to stride 8 and copy back.
        let src = f.clone();
        let mut padded_y = vec![0u8; 8 * 4];
        for r in 0..4 {
            padded_y[r * 8..r * 8 + 6].copy_from_slice(&src.data[r * 6..r * 6 + 6]);
        }
        let view = I420View {
            width: 6,
            height: 4,
            y: Plane { data: &padded_y, stride: 8 },
            u: src.view().u,
            v: src.view().v,
        };
        assert_eq!(view.luma(2, 1), Some(8));
        assert_eq!(view.luma(6, 0), None);
        let copy = view.to_frame(7);
        assert_eq!(copy.data, src.data);
        assert_eq!(copy.capture_us, 7);
    }

    #[test]
    fn frame_pool_reuses_released_frames() {
        let mut pool = FramePool::new(2);
        let mut f = VideoFrame::new(4, 4);
        f.data[0] = 1;
        let a = pool.copy(&f);
        assert_eq!(*a, f);
        let a_ptr = Arc::as_ptr(&a);
        drop(a);
        f.data[0] = 2;
        f.capture_us = 7;
        let b = pool.copy(&f);
        assert_eq!(Arc::as_ptr(&b), a_ptr, "a released frame is reused");
        assert_eq!(*b, f);
        // Held frames are not overwritten; a new size is taken over.
        let big = VideoFrame::new(8, 8);
        let c = pool.copy(&big);
        assert_ne!(Arc::as_ptr(&c), a_ptr);
        assert_eq!(b.data[0], 2);
        assert_eq!((c.width, c.height, c.data.len()), (8, 8, 96));
        // Beyond the pool's size, copies still work (not pooled).
        let d = pool.copy(&f);
        assert_eq!(*d, f);
    }

    #[test]
    fn rms_of_full_scale_square_wave() {
        let f = AudioFrame {
            samples: (0..960).map(|i| if i % 2 == 0 { 32767 } else { -32767 }).collect(),
            capture_us: 0,
        };
        assert!((f.rms() - 1.0).abs() < 0.001);
        assert_eq!(AudioFrame::default().rms(), 0.0);
    }
}
