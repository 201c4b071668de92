//! Device enumeration across kinds.

use crate::MediaError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    Camera,
    Microphone,
    Speaker,
    Screen,
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
            DeviceKind::Screen => "screen",
        })
    }
}

/// A device as the UI lists it. `id` is stable across runs where the platform allows and is what
/// the open functions take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub id: String,
    pub name: String,
    pub kind: DeviceKind,
    pub is_default: bool,
}

/// Every device of `kind`. An empty list means none is present; an error means listing failed.
pub fn list(kind: DeviceKind) -> Result<Vec<DeviceInfo>, MediaError> {
    match kind {
        DeviceKind::Camera => crate::camera::list(),
        DeviceKind::Microphone => crate::audio_device::list(true),
        DeviceKind::Speaker => crate::audio_device::list(false),
        DeviceKind::Screen => crate::screen::list(),
    }
}
