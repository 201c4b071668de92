//! Screen capture with scrap: X11 shared memory on Linux (~1-3 ms per 1280x800 grab here),
//! DXGI on Windows, CoreGraphics on macOS.
//!
//! Wayland: scrap captures through X11 only. Under a Wayland session it captures what XWayland
//! shows (usually only X11 apps, often black), and with no X display at all opening fails with a
//! clear error. See docs/decisions.md for why scrap over xcap.

use crate::MediaError;
use crate::convert::{PixelLayout, packed_to_i420};
use crate::device::{DeviceInfo, DeviceKind};
use crate::frame::{VideoFrame, now_us};
use crate::source::{SourceInfo, VideoKind, VideoSource};
use crate::synthetic::Pacer;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

fn screen_error(id: Option<&str>, message: impl Into<String>) -> MediaError {
    MediaError::Device { kind: DeviceKind::Screen, id: id.map(str::to_owned), message: message.into() }
}

fn no_display_hint(e: &std::io::Error) -> String {
    let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some();
    let x11 = std::env::var_os("DISPLAY").is_some();
    match (x11, wayland) {
        (false, true) => format!(
            "cannot capture the screen ({e}): this is a Wayland session without XWayland; Hearth captures screens through X11 only for now"
        ),
        (false, false) => format!("cannot capture the screen ({e}): no display (DISPLAY is not set)"),
        _ => format!("cannot capture the screen: {e}"),
    }
}

/// Screens that can be captured.
pub fn list() -> Result<Vec<DeviceInfo>, MediaError> {
    let displays = match scrap::Display::all() {
        Ok(d) => d,
        // No display at all: there is nothing to list, which is not an error for listing.
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(screen_error(None, no_display_hint(&e))),
    };
    Ok(displays
        .iter()
        .enumerate()
        .map(|(i, d)| DeviceInfo {
            id: format!("screen:{i}"),
            name: format!("Screen {} ({}x{})", i + 1, d.width(), d.height()),
            kind: DeviceKind::Screen,
            is_default: i == 0,
        })
        .collect())
}

/// A screen being captured. scrap's capturer is not `Send`: open it on the capture thread.
pub struct Screen {
    capturer: scrap::Capturer,
    width: u32,
    height: u32,
    fps: f32,
    pacer: Pacer,
    index: usize,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen")
            .field("index", &self.index)
            .field("width", &self.width)
            .field("height", &self.height)
            .finish()
    }
}

impl Screen {
    /// Open screen `id` (`screen:N`, None for the primary) captured at `fps`.
    pub fn open(id: Option<&str>, fps: f32) -> Result<Screen, MediaError> {
        let index: usize = match id {
            None => 0,
            Some(s) => s
                .strip_prefix("screen:")
                .unwrap_or(s)
                .parse()
                .map_err(|_| screen_error(id, "screen ids look like screen:0; see the device list"))?,
        };
        let mut displays = scrap::Display::all().map_err(|e| screen_error(id, no_display_hint(&e)))?;
        if index >= displays.len() {
            return Err(screen_error(id, format!("there is no screen {index}; {} found", displays.len())));
        }
        let display = displays.swap_remove(index);
        let (width, height) = (display.width() as u32, display.height() as u32);
        let capturer = scrap::Capturer::new(display)
            .map_err(|e| screen_error(id, format!("cannot start screen capture: {e}")))?;
        let fps = if fps > 0.0 { fps } else { 15.0 };
        Ok(Screen {
            capturer,
            width,
            height,
            fps,
            pacer: Pacer::new(Duration::from_secs_f32(1.0 / fps)),
            index,
        })
    }
}

impl VideoSource for Screen {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            name: format!("Screen {}", self.index + 1),
            width: self.width & !1,
            height: self.height & !1,
            fps: self.fps,
            kind: VideoKind::Screen,
        }
    }

    fn capture(&mut self, frame: &mut VideoFrame) -> Result<(), MediaError> {
        self.pacer.wait();
        let started = Instant::now();
        loop {
            match self.capturer.frame() {
                Ok(buf) => {
                    let capture_us = now_us();
                    let stride = (buf.len() / self.height.max(1) as usize) as u32;
                    packed_to_i420(
                        PixelLayout::Bgra,
                        &buf,
                        stride,
                        self.width & !1,
                        self.height & !1,
                        frame,
                    )?;
                    frame.capture_us = capture_us;
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock && started.elapsed() < Duration::from_secs(2) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(screen_error(None, format!("screen capture failed: {e}"))),
            }
        }
    }
}
