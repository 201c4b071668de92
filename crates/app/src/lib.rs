//! The desktop app's core, without a window: what `client-desktop` (the Tauri shell) calls.
//! See `api` for the contract with the web UI and docs/decisions.md for the design.

pub mod api;
pub mod app;
pub mod devices;
pub mod diagnostics;
pub mod embedded;
pub mod errors;
pub mod frames;
pub mod invite;
pub mod memory;
pub mod scale;
pub mod settings;
pub mod test_peer;

pub use app::{App, AppOptions, Sink};
#[cfg(test)]
mod bindings_test {
    /// The committed TypeScript bindings match the Rust types (regenerate with
    /// `UPDATE_BINDINGS=1 cargo test -p hearth-app bindings`).
    #[test]
    fn bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../client-desktop/ui/src/bindings.ts");
        let want = crate::api::typescript_bindings();
        if std::env::var_os("UPDATE_BINDINGS").is_some() {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, &want).expect("write bindings");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(have == want, "{} is stale: run `UPDATE_BINDINGS=1 cargo test -p hearth-app bindings`", path.display());
    }
}
