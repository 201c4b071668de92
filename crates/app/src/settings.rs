//! Settings persist as JSON in the OS's config directory (`~/.config/hearth/settings.json` on
//! Linux, `%APPDATA%\hearth` on Windows, `~/Library/Application Support/hearth` on macOS).

use crate::api::Settings;
use std::path::{Path, PathBuf};

/// Where settings live; `HEARTH_CONFIG_DIR` overrides (tests, portable installs).
pub fn config_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("HEARTH_CONFIG_DIR") {
        return PathBuf::from(d);
    }
    dirs::config_dir().unwrap_or_else(std::env::temp_dir).join("hearth")
}

#[derive(Debug, Clone)]
pub struct SettingsStore {
    path: PathBuf,
}

impl SettingsStore {
    pub fn new(dir: &Path) -> SettingsStore {
        SettingsStore { path: dir.join("settings.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved settings; defaults when there are none or the file is unreadable (a broken
    /// file is kept aside as `settings.json.bad` rather than lost).
    pub fn load(&self) -> Settings {
        let Ok(text) = std::fs::read_to_string(&self.path) else { return Settings::default() };
        match serde_json::from_str::<Settings>(&text) {
            Ok(s) => sanitize(s),
            Err(e) => {
                tracing::warn!(
                    "settings file {} is not valid ({e}); starting from defaults",
                    self.path.display()
                );
                let _ = std::fs::rename(&self.path, self.path.with_extension("json.bad"));
                Settings::default()
            }
        }
    }

    /// Save atomically (write a temporary file, then rename).
    pub fn save(&self, s: &Settings) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(&sanitize(s.clone())).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// Bound what a hand-edited file can put in the form.
fn sanitize(mut s: Settings) -> Settings {
    for f in [&mut s.name, &mut s.room, &mut s.server] {
        if f.len() > 512 {
            let mut cut = 512;
            while !f.is_char_boundary(cut) {
                cut -= 1;
            }
            f.truncate(cut);
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_broken_file() {
        let dir = std::env::temp_dir().join(format!("hearth-settings-{}", std::process::id()));
        let store = SettingsStore::new(&dir);
        assert_eq!(store.load(), Settings::default());
        let s =
            Settings { name: "Ada".into(), room: "standup".into(), camera_on: false, ..Settings::default() };
        store.save(&s).unwrap();
        assert_eq!(store.load(), s);
        std::fs::write(store.path(), "{not json").unwrap();
        assert_eq!(store.load(), Settings::default());
        assert!(dir.join("settings.json.bad").exists(), "the broken file is kept aside");
        // Unknown and missing fields are fine (older / newer versions).
        std::fs::write(store.path(), r#"{"name":"Bo","future":1}"#).unwrap();
        assert_eq!(store.load().name, "Bo");
        assert!(store.load().mic_on);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn sound_switches_are_kept_default_on_and_reach_the_engine() {
        use crate::api::AudioProcessing;
        let dir = std::env::temp_dir().join(format!("hearth-settings-audio-{}", std::process::id()));
        let store = SettingsStore::new(&dir);
        // Settings saved before the switches existed: all on.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(store.path(), r#"{"name":"Bo"}"#).unwrap();
        assert_eq!(store.load().audio, AudioProcessing::default());
        let audio =
            AudioProcessing { echo_cancellation: false, noise_suppression: true, gain_control: false };
        store.save(&Settings { audio, ..Settings::default() }).unwrap();
        assert_eq!(store.load().audio, audio);
        // One switch missing from the file: that one on, the others as saved.
        std::fs::write(store.path(), r#"{"audio":{"echo_cancellation":false}}"#).unwrap();
        let loaded = store.load().audio;
        assert!(!loaded.echo_cancellation && loaded.noise_suppression && loaded.gain_control);
        let engine = audio.engine_config();
        assert!(
            !engine.echo_cancellation && engine.noise_suppression && !engine.gain_control && engine.high_pass
        );
        assert_eq!(AudioProcessing::default().engine_config(), hearth_media::ProcessingConfig::default());
        // A join request from an older page (no `audio`): all on.
        let req: crate::api::JoinRequest = serde_json::from_str(
            r#"{"name":"a","room":"r","server":"","password":null,"camera":null,"microphone":null,"speaker":null,"camera_on":true,"mic_on":true}"#,
        )
        .unwrap();
        assert_eq!(req.audio, AudioProcessing::default());
        let _ = std::fs::remove_dir_all(dir);
    }
}
