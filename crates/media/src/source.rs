//! The traits every media source and sink implements, real device or synthetic alike, so the
//! pipeline under test is the pipeline users run.

use crate::MediaError;
use crate::frame::{AudioFrame, VideoFrame};

/// What kind of video a source produces (the encoder tunes for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoKind {
    Camera,
    Screen,
}

/// A description of a source, for reports and the UI.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Human-readable, e.g. "HD Webcam" or "synthetic test pattern".
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    pub kind: VideoKind,
}

/// A video source. `capture` blocks until the next frame is due (sources pace themselves) and
/// fills `frame` in place, reusing its allocation. Not `Send`: device handles (scrap, cpal) are
/// tied to the thread that opened them, so open and run a source on a thread of its own.
pub trait VideoSource {
    fn info(&self) -> SourceInfo;
    fn capture(&mut self, frame: &mut VideoFrame) -> Result<(), MediaError>;
    /// Produce frames of `width`x`height` (even, at most the source's size) from now on, if the
    /// source can at no cost (a synthetic pattern draws at any size). Returns false when it
    /// cannot: the caller scales what it captures.
    fn set_output_size(&mut self, _width: u32, _height: u32) -> bool {
        false
    }
}

/// An audio source of 20 ms, 48 kHz mono frames. `capture` blocks until the next frame is ready.
pub trait AudioSource {
    fn name(&self) -> String;
    fn capture(&mut self, frame: &mut AudioFrame) -> Result<(), MediaError>;
}

impl<T: VideoSource + ?Sized> VideoSource for Box<T> {
    fn info(&self) -> SourceInfo {
        (**self).info()
    }
    fn capture(&mut self, frame: &mut VideoFrame) -> Result<(), MediaError> {
        (**self).capture(frame)
    }
    fn set_output_size(&mut self, width: u32, height: u32) -> bool {
        (**self).set_output_size(width, height)
    }
}

impl<T: AudioSource + ?Sized> AudioSource for Box<T> {
    fn name(&self) -> String {
        (**self).name()
    }
    fn capture(&mut self, frame: &mut AudioFrame) -> Result<(), MediaError> {
        (**self).capture(frame)
    }
}
