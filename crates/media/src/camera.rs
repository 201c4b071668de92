//! Cameras through nokhwa (V4L2 on Linux, AVFoundation on macOS, Media Foundation on Windows).

use crate::MediaError;
use crate::convert::{PixelLayout, packed_to_i420};
use crate::device::{DeviceInfo, DeviceKind};
use crate::frame::{VideoFrame, now_us};
use crate::source::{SourceInfo, VideoKind, VideoSource};
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
};

/// Cameras the system reports. An empty list is not an error: there may be no camera.
pub fn list() -> Result<Vec<DeviceInfo>, MediaError> {
    let cams = nokhwa::query(ApiBackend::Auto).map_err(|e| MediaError::Device {
        kind: DeviceKind::Camera,
        id: None,
        message: format!("cannot list cameras: {e}"),
    })?;
    Ok(cams
        .into_iter()
        .enumerate()
        .map(|(i, c)| DeviceInfo {
            id: format!("camera:{}", c.index()),
            name: c.human_name(),
            kind: DeviceKind::Camera,
            is_default: i == 0,
        })
        .collect())
}

/// An open camera delivering frames converted to I420.
pub struct Camera {
    cam: nokhwa::Camera,
    name: String,
    rgb: Vec<u8>,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Camera {
    /// Open camera `id` (as listed: `camera:N`, or just `N`), asking for the format closest to
    /// `width`x`height` at `fps`.
    pub fn open(id: &str, width: u32, height: u32, fps: u32) -> Result<Camera, MediaError> {
        let fail = |message: String| MediaError::Device {
            kind: DeviceKind::Camera,
            id: Some(id.to_owned()),
            message,
        };
        let index: u32 = id
            .strip_prefix("camera:")
            .unwrap_or(id)
            .parse()
            .map_err(|_| fail("camera ids look like camera:0; see the device list".into()))?;
        let wanted = CameraFormat::new_from(width, height, FrameFormat::MJPEG, fps);
        let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
        let mut cam = nokhwa::Camera::new(CameraIndex::Index(index), requested).map_err(|e| {
            fail(format!("cannot open the camera: {e}. Is it connected, and not in use by another program?"))
        })?;
        cam.open_stream().map_err(|e| fail(format!("the camera would not start streaming: {e}")))?;
        let name = cam.info().human_name();
        Ok(Camera { cam, name, rgb: Vec::new() })
    }
}

impl VideoSource for Camera {
    fn info(&self) -> SourceInfo {
        let fmt = self.cam.camera_format();
        SourceInfo {
            name: self.name.clone(),
            width: fmt.resolution().width(),
            height: fmt.resolution().height(),
            fps: fmt.frame_rate() as f32,
            kind: VideoKind::Camera,
        }
    }

    fn capture(&mut self, frame: &mut VideoFrame) -> Result<(), MediaError> {
        let buf = self.cam.frame().map_err(|e| MediaError::Device {
            kind: DeviceKind::Camera,
            id: Some(self.name.clone()),
            message: format!("the camera stopped delivering frames: {e}"),
        })?;
        let capture_us = now_us();
        let res = buf.resolution();
        let (w, h) = (res.width() & !1, res.height() & !1);
        self.rgb.resize((res.width() * res.height() * 3) as usize, 0);
        buf.decode_image_to_buffer::<RgbFormat>(&mut self.rgb)
            .map_err(|e| MediaError::Convert(format!("camera frame: {e}")))?;
        packed_to_i420(PixelLayout::Rgb, &self.rgb, res.width() * 3, w, h, frame)?;
        frame.capture_us = capture_us;
        Ok(())
    }
}
