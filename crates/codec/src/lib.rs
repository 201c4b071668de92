//! Hearth codecs: H.264 through OpenH264 (built from source; with `nasm` on PATH it uses its
//! assembly, ~3x faster) and Opus through libopus; and the receive side of H.264 over RTP
//! ([`rtp_h264`]: RFC 6184 depacketizing and frame assembly, [`rtp_receive`]: with reordering).
//!
//! # Using them
//! Encode once per source, whatever the number of peers: one [`H264Encoder`] per video source,
//! one [`OpusEncoder`] per microphone. Decoders are per received stream. OpenH264's decoder is
//! not `Send`; give each received video stream a thread of its own.
//!
//! ```
//! use hearth_codec::{H264Decoder, H264Encoder, VideoEncoderConfig};
//! use hearth_media::{TestPattern, VideoFrame, VideoKind, VideoSource, marker};
//! let mut src = TestPattern::new(320, 180, 30.0).unpaced();
//! let mut enc = H264Encoder::new(VideoEncoderConfig::for_source(320, 180, 30.0, VideoKind::Camera)).unwrap();
//! let mut dec = H264Decoder::new().unwrap();
//! let mut frame = VideoFrame::new(320, 180);
//! src.capture(&mut frame).unwrap();
//! let au = enc.encode(&frame).unwrap().unwrap();
//! assert!(au.keyframe);
//! let stamp = dec.decode(&au.data, |img| marker::read_stamp(img)).unwrap().unwrap();
//! assert_eq!(stamp.unwrap().frame, 0);
//! ```

pub mod annexb;
pub mod h264;
pub mod opus;
pub mod rtp_h264;
pub mod rtp_receive;

pub use h264::{EncodedVideo, H264Decoder, H264Encoder, H264Profile, VideoEncoderConfig, is_keyframe};
pub use opus::{DtxGate, OpusDecoder, OpusEncoder};

/// Codec errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The codec library could not be set up (not retryable).
    #[error("cannot initialise codec: {0}")]
    Init(String),
    /// The input frame is unusable (wrong size or length).
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("encoding failed: {0}")]
    Encode(String),
    /// The data could not be decoded; for video, request a keyframe.
    #[error("decoding failed: {0}")]
    Decode(String),
    /// Video frames are refused until a keyframe arrives; request one.
    #[error("waiting for a keyframe")]
    NeedKeyframe,
}
