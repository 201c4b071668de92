//! H.264 with OpenH264 (Constrained Baseline, one access unit per frame, Annex-B out).

use crate::CodecError;
use hearth_media::{I420View, Plane, VideoFrame, VideoKind};
use openh264::decoder::{Decoder, DecoderConfig, Flush};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, RateControlMode,
    UsageType,
};
use openh264::formats::YUVSource;
use openh264::{OpenH264API, Timestamp};

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoEncoderConfig {
    pub bitrate_bps: u32,
    pub max_fps: f32,
    pub kind: VideoKind,
    /// A keyframe at least every this many frames (0: only when asked).
    pub keyframe_interval: u32,
}

impl VideoEncoderConfig {
    /// Sensible defaults for a source of this size and kind.
    pub fn for_source(width: u32, height: u32, fps: f32, kind: VideoKind) -> Self {
        let pixels = u64::from(width) * u64::from(height);
        // ~0.07 bits per pixel per frame at 30 fps for camera content; screens need less motion
        // budget but sharper detail.
        let per_frame = (pixels as f64 * 0.07) as u64;
        let bitrate = (per_frame as f64 * f64::from(fps.max(1.0))).clamp(150_000.0, 4_000_000.0) as u32;
        VideoEncoderConfig { bitrate_bps: bitrate, max_fps: fps.max(1.0), kind, keyframe_interval: 0 }
    }
}

/// The lowest bitrate an encoder is set to.
pub const MIN_BITRATE_BPS: u32 = 50_000;

/// One encoded access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedVideo {
    /// Annex-B bytes (start codes), SPS+PPS+IDR on keyframes.
    pub data: Vec<u8>,
    pub keyframe: bool,
    pub width: u32,
    pub height: u32,
    pub capture_us: u64,
}

struct FrameSource<'a>(&'a VideoFrame);

impl YUVSource for FrameSource<'_> {
    fn dimensions(&self) -> (usize, usize) {
        (self.0.width as usize, self.0.height as usize)
    }
    fn strides(&self) -> (usize, usize, usize) {
        let w = self.0.width as usize;
        (w, w / 2, w / 2)
    }
    fn y(&self) -> &[u8] {
        let v = self.0.view();
        v.y.data
    }
    fn u(&self) -> &[u8] {
        let v = self.0.view();
        v.u.data
    }
    fn v(&self) -> &[u8] {
        let v = self.0.view();
        v.v.data
    }
}

/// An H.264 encoder. Frames may change size; the encoder follows (with a keyframe).
pub struct H264Encoder {
    enc: Encoder,
    config: VideoEncoderConfig,
    keyframe_requested: bool,
    frames: u64,
}

impl std::fmt::Debug for H264Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Encoder").field("config", &self.config).field("frames", &self.frames).finish()
    }
}

fn encoder_config(c: &VideoEncoderConfig) -> EncoderConfig {
    EncoderConfig::new()
        .bitrate(BitRate::from_bps(c.bitrate_bps))
        .max_frame_rate(FrameRate::from_hz(c.max_fps))
        .rate_control_mode(RateControlMode::Bitrate)
        // OpenH264 drops frames at 720p to hold the bitrate unless told not to; a dropped frame
        // is a visible stall, a slightly high bitrate is not.
        .skip_frames(false)
        .num_threads(1)
        .complexity(Complexity::Low)
        // Keyframes only when asked (a peer joined or lost one): a scene-change IDR costs 10x a
        // P frame and makes every peer's bitrate spike.
        .scene_change_detect(false)
        .usage_type(match c.kind {
            VideoKind::Camera => UsageType::CameraVideoRealTime,
            VideoKind::Screen => UsageType::ScreenContentRealTime,
        })
        .intra_frame_period(IntraFramePeriod::from_num_frames(c.keyframe_interval))
}

/// OpenH264 prints its warnings to stderr while it initialises an encoder, which happens on
/// the first frame: "[OpenH264] this = 0x..., Warning:bEnableFrameSkip = 0,bitrate can't be
/// controlled ..." (frame skipping is off on purpose, see [`encoder_config`]). The openh264
/// crate sets its trace level only after that initialisation; the trace level is one of the
/// options OpenH264 accepts before it, so set it quiet first.
fn silence_traces(enc: &mut Encoder) {
    let mut level = openh264_sys2::WELS_LOG_QUIET as std::os::raw::c_int;
    // SAFETY: the encoder handle is valid (created by `with_api_config`); OpenH264 accepts
    // ENCODER_OPTION_TRACE_LEVEL before initialisation and reads the int only during the call,
    // which `level` outlives. No parameter the crate relies on is changed.
    #[allow(unsafe_code)]
    let rc = unsafe {
        enc.raw_api().set_option(openh264_sys2::ENCODER_OPTION_TRACE_LEVEL, (&raw mut level).cast())
    };
    if rc != 0 {
        tracing::debug!(rc, "OpenH264 refused its trace level; it may print warnings");
    }
}

impl H264Encoder {
    pub fn new(config: VideoEncoderConfig) -> Result<H264Encoder, CodecError> {
        let mut enc = Encoder::with_api_config(OpenH264API::from_source(), encoder_config(&config))
            .map_err(|e| CodecError::Init(format!("H.264 encoder: {e}")))?;
        silence_traces(&mut enc);
        Ok(H264Encoder { enc, config, keyframe_requested: true, frames: 0 })
    }

    pub fn config(&self) -> VideoEncoderConfig {
        self.config
    }

    /// The next frame will be a keyframe (a peer joined, or sent PLI/FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// Change the target bitrate (rebuilds the encoder; the next frame is a keyframe).
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        if bps == self.config.bitrate_bps {
            return Ok(());
        }
        self.config.bitrate_bps = bps;
        *self = H264Encoder::new(self.config)?;
        Ok(())
    }

    /// Change the target bitrate on the fly: OpenH264's rate control aims at it from the next
    /// frame, with no keyframe (congestion control changes it every few hundred ms). Before the
    /// first frame the encoder is simply rebuilt.
    pub fn set_target_bitrate(&mut self, bps: u32) -> Result<(), CodecError> {
        let bps = bps.clamp(MIN_BITRATE_BPS, i32::MAX as u32);
        if bps == self.config.bitrate_bps {
            return Ok(());
        }
        if self.frames == 0 {
            return self.set_bitrate(bps);
        }
        let raising = bps > self.config.bitrate_bps;
        // The crate starts OpenH264 with a maximum equal to the target: raise the maximum
        // before the target, lower it after. The maximum is kept twice, for the whole stream
        // and for its (one) spatial layer, and a new target is checked against the layer's:
        // raising only the stream's (as this did) made every raise above the starting rate
        // fail and rebuild the encoder, a keyframe per raise (measured under a 1 Mbit/s cap:
        // one every ~2.3 s, each a queue at the bottleneck and a cut of the estimate).
        use openh264_sys2::{
            ENCODER_OPTION_BITRATE as TARGET, ENCODER_OPTION_MAX_BITRATE as MAX, SPATIAL_LAYER_0 as LAYER,
            SPATIAL_LAYER_ALL as ALL,
        };
        let order = if raising {
            [(MAX, ALL), (MAX, LAYER), (TARGET, ALL)]
        } else {
            [(TARGET, ALL), (MAX, LAYER), (MAX, ALL)]
        };
        for (option, layer) in order {
            let mut info =
                openh264_sys2::SBitrateInfo { iLayer: layer, iBitrate: bps as std::os::raw::c_int };
            // SAFETY: the encoder handle is valid and initialised (a frame was encoded);
            // ENCODER_OPTION_BITRATE and ENCODER_OPTION_MAX_BITRATE read one SBitrateInfo
            // during the call, which `info` outlives.
            #[allow(unsafe_code)]
            let rc = unsafe { self.enc.raw_api().set_option(option, (&raw mut info).cast()) };
            if rc != 0 {
                // Refused: rebuild at the new rate (costs a keyframe).
                tracing::debug!(rc, option, "OpenH264 refused a bitrate change; rebuilding the encoder");
                return self.set_bitrate(bps);
            }
        }
        self.config.bitrate_bps = bps;
        Ok(())
    }

    /// Encode one frame. `None` when the encoder produced nothing for it (skipped).
    pub fn encode(&mut self, frame: &VideoFrame) -> Result<Option<EncodedVideo>, CodecError> {
        if !frame.width.is_multiple_of(2)
            || !frame.height.is_multiple_of(2)
            || frame.width < 16
            || frame.height < 16
        {
            return Err(CodecError::BadInput(format!(
                "frame size {}x{} must be even and at least 16x16",
                frame.width, frame.height
            )));
        }
        if std::mem::take(&mut self.keyframe_requested) {
            self.enc.force_intra_frame();
        }
        let ts = Timestamp::from_millis(frame.capture_us / 1000);
        let bs =
            self.enc.encode_at(&FrameSource(frame), ts).map_err(|e| CodecError::Encode(e.to_string()))?;
        self.frames += 1;
        let keyframe = matches!(bs.frame_type(), FrameType::IDR | FrameType::I);
        let data = bs.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        Ok(Some(EncodedVideo {
            data,
            keyframe,
            width: frame.width,
            height: frame.height,
            capture_us: frame.capture_us,
        }))
    }
}

/// An H.264 decoder. Not `Send` (OpenH264's decoder handle): keep it on its own thread.
pub struct H264Decoder {
    dec: Decoder,
    /// After an error, P frames are useless until the next keyframe.
    need_keyframe: bool,
}

impl std::fmt::Debug for H264Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H264Decoder").field("need_keyframe", &self.need_keyframe).finish()
    }
}

/// Profile and level from a sequence parameter set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H264Profile {
    pub profile_idc: u8,
    /// constraint_set0..5 flags (the high bits of the byte after `profile_idc`).
    pub constraints: u8,
    pub level_idc: u8,
}

impl H264Profile {
    /// The first SPS (NAL type 7) in an Annex-B access unit (keyframes carry one).
    pub fn of(annexb: &[u8]) -> Option<H264Profile> {
        let sps = crate::annexb::nal_units(annexb).find(|nal| nal.first().is_some_and(|h| h & 0x1f == 7))?;
        Some(H264Profile { profile_idc: *sps.get(1)?, constraints: *sps.get(2)?, level_idc: *sps.get(3)? })
    }

    /// "Constrained Baseline 3.1" and the like.
    pub fn name(&self) -> String {
        let constrained = self.constraints & 0x40 != 0; // constraint_set1
        let profile = match self.profile_idc {
            66 if constrained => "Constrained Baseline".to_owned(),
            66 => "Baseline".to_owned(),
            77 => "Main".to_owned(),
            88 => "Extended".to_owned(),
            100 => "High".to_owned(),
            n => format!("profile {n}"),
        };
        format!("{profile} {}.{}", self.level_idc / 10, self.level_idc % 10)
    }
}

/// True if the Annex-B access unit holds an IDR slice (NAL type 5).
pub fn is_keyframe(annexb: &[u8]) -> bool {
    crate::annexb::nal_units(annexb).any(|nal| nal.first().is_some_and(|h| h & 0x1f == 5))
}

impl H264Decoder {
    pub fn new() -> Result<H264Decoder, CodecError> {
        let dec = Decoder::with_api_config(
            OpenH264API::from_source(),
            DecoderConfig::new().flush_after_decode(Flush::NoFlush),
        )
        .map_err(|e| CodecError::Init(format!("H.264 decoder: {e}")))?;
        Ok(H264Decoder { dec, need_keyframe: true })
    }

    /// True while frames are refused until a keyframe arrives (ask the sender for one).
    pub fn needs_keyframe(&self) -> bool {
        self.need_keyframe
    }

    /// Decode one access unit and hand the picture to `use_frame` (the decoder's buffer is only
    /// valid until the next call). `Ok(None)`: nothing to show yet. An error means the stream is
    /// broken until the next keyframe: request one.
    pub fn decode<R>(
        &mut self,
        annexb: &[u8],
        use_frame: impl FnOnce(&I420View<'_>) -> R,
    ) -> Result<Option<R>, CodecError> {
        if self.need_keyframe {
            if !is_keyframe(annexb) {
                return Err(CodecError::NeedKeyframe);
            }
            self.need_keyframe = false;
        }
        match self.dec.decode(annexb) {
            Ok(Some(img)) => {
                let (w, h) = img.dimensions();
                let (ys, us, vs) = img.strides();
                let view = I420View {
                    width: w as u32,
                    height: h as u32,
                    y: Plane { data: img.y(), stride: ys },
                    u: Plane { data: img.u(), stride: us },
                    v: Plane { data: img.v(), stride: vs },
                };
                Ok(Some(use_frame(&view)))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.need_keyframe = true;
                Err(CodecError::Decode(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hearth_media::marker::read_stamp;
    use hearth_media::{TestPattern, VideoSource};

    #[test]
    fn stamps_survive_encoding_and_keyframes_come_on_request() {
        let mut src = TestPattern::new(640, 360, 30.0).unpaced();
        let mut enc =
            H264Encoder::new(VideoEncoderConfig::for_source(640, 360, 30.0, VideoKind::Camera)).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let mut frame = VideoFrame::new(640, 360);
        let mut keyframes = Vec::new();
        for n in 0..60u32 {
            if n == 40 {
                enc.request_keyframe();
            }
            src.capture(&mut frame).unwrap();
            let au = enc.encode(&frame).unwrap().unwrap();
            assert_eq!(is_keyframe(&au.data), au.keyframe);
            if au.keyframe {
                keyframes.push(n);
            }
            let stamp =
                dec.decode(&au.data, |img| (img.width, img.height, read_stamp(img))).unwrap().unwrap();
            assert_eq!((stamp.0, stamp.1), (640, 360));
            assert_eq!(stamp.2.unwrap().frame, n, "frame {n}");
        }
        assert_eq!(keyframes, [0, 40]);
    }

    #[test]
    fn the_bitrate_changes_on_the_fly_without_a_keyframe() {
        let mut src = TestPattern::new(640, 360, 30.0).unpaced();
        let mut enc =
            H264Encoder::new(VideoEncoderConfig::for_source(640, 360, 30.0, VideoKind::Camera)).unwrap();
        let mut frame = VideoFrame::new(640, 360);
        let mut bytes = |enc: &mut H264Encoder, n: usize| {
            let mut total = 0;
            for _ in 0..n {
                src.capture(&mut frame).unwrap();
                let au = enc.encode(&frame).unwrap().unwrap();
                assert!(!au.keyframe || enc.frames == 1, "no keyframe after the first");
                total += au.data.len();
            }
            total
        };
        bytes(&mut enc, 30);
        let full = bytes(&mut enc, 60);
        enc.set_target_bitrate(240_000).unwrap();
        assert_eq!(enc.config().bitrate_bps, 240_000);
        bytes(&mut enc, 30);
        let low = bytes(&mut enc, 60);
        // 60 frames at 30 fps are 2 s: 240 kbit/s is 60 kB, the full ~480 kbit/s ~120 kB.
        assert!(low * 3 < full * 2, "low {low} B, full {full} B");
        assert!(low < 75_000, "{low} B in 2 s");
        enc.set_target_bitrate(484_000).unwrap();
        bytes(&mut enc, 30);
        let back = bytes(&mut enc, 60);
        assert!(back * 2 > low * 3, "back {back} B, low {low} B");
        // Above the rate it started at: on the fly too (a raise past the starting maximum
        // used to rebuild the encoder, a keyframe each time; `bytes` fails on a keyframe).
        let frames = enc.frames;
        enc.set_target_bitrate(900_000).unwrap();
        assert_eq!(enc.config().bitrate_bps, 900_000);
        bytes(&mut enc, 30);
        assert_eq!(enc.frames, frames + 30, "the encoder was rebuilt");
    }

    #[test]
    fn keyframes_name_their_profile() {
        let mut src = TestPattern::new(1280, 720, 30.0).unpaced();
        let mut enc =
            H264Encoder::new(VideoEncoderConfig::for_source(1280, 720, 30.0, VideoKind::Camera)).unwrap();
        let mut frame = VideoFrame::new(2, 2);
        src.capture(&mut frame).unwrap();
        let key = enc.encode(&frame).unwrap().unwrap();
        let profile = H264Profile::of(&key.data).unwrap();
        assert_eq!(profile.profile_idc, 66, "{profile:?}");
        assert!(profile.name().starts_with("Constrained Baseline"), "{}", profile.name());
        src.capture(&mut frame).unwrap();
        assert_eq!(H264Profile::of(&enc.encode(&frame).unwrap().unwrap().data), None);
    }

    #[test]
    fn decoder_waits_for_keyframe_and_recovers_after_garbage() {
        let mut src = TestPattern::new(320, 180, 30.0).unpaced();
        let mut enc =
            H264Encoder::new(VideoEncoderConfig::for_source(320, 180, 30.0, VideoKind::Screen)).unwrap();
        let mut frame = VideoFrame::new(320, 180);
        let mut aus = Vec::new();
        for _ in 0..3 {
            src.capture(&mut frame).unwrap();
            aus.push(enc.encode(&frame).unwrap().unwrap());
        }
        let mut dec = H264Decoder::new().unwrap();
        assert_eq!(dec.decode(&aus[1].data, |_| ()), Err(CodecError::NeedKeyframe));
        assert!(dec.decode(&aus[0].data, |_| ()).unwrap().is_some());
        // Garbage that claims to be an IDR slice.
        let _ = dec.decode(&[0, 0, 0, 1, 0x65, 0xff, 0x00, 0x13], |_| ());
        assert!(dec.decode(&[0, 0, 0, 1, 0x41, 1, 2, 3], |_| ()).is_err());
        enc.request_keyframe();
        src.capture(&mut frame).unwrap();
        let key = enc.encode(&frame).unwrap().unwrap();
        assert!(dec.decode(&key.data, |_| ()).unwrap().is_some());
        assert!(enc.encode(&VideoFrame { width: 15, ..frame.clone() }).is_err());
    }
}
