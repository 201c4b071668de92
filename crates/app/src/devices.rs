//! Device lists for the pickers, with the built-in test sources always present.

use crate::api::{Device, Devices, SYNTHETIC_DEVICE};
use hearth_engine::{DeviceKind, list_devices};

pub fn list() -> Devices {
    let mut d = Devices::default();
    let one = |kind: DeviceKind, what: &str, out: &mut Vec<Device>, problems: &mut Vec<String>| match list_devices(kind) {
        Ok(list) => out.extend(list.into_iter().map(|i| Device { id: i.id, name: i.name, is_default: i.is_default })),
        Err(e) => problems.push(format!("{what}: {e}")),
    };
    let mut problems = Vec::new();
    one(DeviceKind::Camera, "Cameras", &mut d.cameras, &mut problems);
    one(DeviceKind::Microphone, "Microphones", &mut d.microphones, &mut problems);
    one(DeviceKind::Speaker, "Speakers", &mut d.speakers, &mut problems);
    one(DeviceKind::Screen, "Screens", &mut d.screens, &mut problems);
    d.problems = problems;
    // ALSA's "null" PCM ("Discard all samples ... or generate zero samples") is listed where
    // there is no sound card; as a microphone it is silence, as a speaker nothing. Not offered.
    d.microphones.retain(|x| x.id != "alsa:null");
    d.speakers.retain(|x| x.id != "alsa:null");
    d.cameras.push(Device { id: SYNTHETIC_DEVICE.into(), name: "Test pattern".into(), is_default: false });
    d.microphones.push(Device { id: SYNTHETIC_DEVICE.into(), name: "Test tone".into(), is_default: false });
    d.screens.push(Device { id: SYNTHETIC_DEVICE.into(), name: "Test screen (pattern)".into(), is_default: false });
    d
}
