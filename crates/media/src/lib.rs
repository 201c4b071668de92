//! Hearth media: raw frames, sources and sinks, and the pieces of the receive path that do not
//! depend on the codec or the transport.
//!
//! # Driving it
//! Sources are pulled on a thread of their own: open the source there (device handles are often
//! not `Send`), then call `capture` in a loop; each call blocks until the next frame is due and
//! fills the frame in place.
//!
//! ```
//! use hearth_media::{TestPattern, VideoFrame, VideoSource, marker};
//! let mut src = TestPattern::new(640, 360, 30.0).unpaced();
//! let mut frame = VideoFrame::new(640, 360);
//! src.capture(&mut frame).unwrap();
//! assert_eq!(marker::read_stamp(&frame.view()).unwrap().frame, 0);
//! ```
//!
//! Real devices ([`Camera`], [`Microphone`], [`Screen`]) and synthetic sources ([`TestPattern`],
//! [`ToneBursts`]) implement the same traits. Received audio goes into a [`Mixer`] that a
//! [`Speaker`] plays (or, headless, a [`VirtualSpeaker`] pulls in real time); RTP-ordered items
//! go through a [`ReorderBuffer`].

pub mod audio_device;
pub mod camera;
pub mod convert;
pub mod device;
pub mod frame;
pub mod jitter;
pub mod level;
pub mod marker;
pub mod mixer;
pub mod playout;
pub mod priority;
pub mod processing;
pub mod quality;
pub mod scale;
pub mod screen;
pub mod source;
pub mod sync;
pub mod synthetic;
pub mod virtual_speaker;

pub use audio_device::{Microphone, Speaker};
pub use camera::Camera;
pub use device::{DeviceInfo, DeviceKind};
pub use frame::{
    AudioFrame, FRAME_SAMPLES, FRAME_US, FramePool, I420View, Plane, SAMPLE_RATE, VideoFrame, now_us, wall_us,
};
pub use jitter::{NackScheduler, Released, ReorderBuffer, ReorderStats};
pub use level::{PeakLevel, VoiceActivity};
pub use mixer::Mixer;
pub use playout::{DelayWindow, VideoPlayout};
pub use priority::{MediaThread, raise_current_thread};
pub use processing::{CaptureProcessor, FarEnd, ProcessingConfig, ProcessingStats, WebrtcProcessor};
pub use screen::Screen;
pub use source::{AudioSource, SourceInfo, VideoKind, VideoSource};
pub use sync::{AudioPlayout, AvSync, OutputSkew};
pub use synthetic::{Pacer, RoomNoise, SpeechLike, SpeechSource, TestPattern, ToneBursts};
pub use virtual_speaker::VirtualSpeaker;

/// Media errors. Device errors say which device and what a person can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// A device is missing, busy, denied or failed. Not retryable without a change; the call
    /// goes on without this medium.
    #[error("{kind}{}: {message}", id.as_deref().map(|i| format!(" {i}")).unwrap_or_default())]
    Device { kind: DeviceKind, id: Option<String>, message: String },
    /// A frame could not be converted (bad size or format).
    #[error("frame conversion failed: {0}")]
    Convert(String),
}
