//! Builds the web UI (ui/, Vite) when its sources changed, then runs tauri-build, which embeds
//! ui/dist into the binary. So `cargo build -p hearth-desktop` alone works from a fresh clone
//! (with Node.js and npm installed; scripts/setup.sh installs them).

use std::path::Path;
use std::process::Command;

fn main() {
    let ui = Path::new("ui");
    for p in ["ui/src", "ui/index.html", "ui/package.json", "ui/package-lock.json", "ui/vite.config.ts", "ui/tsconfig.json"] {
        println!("cargo:rerun-if-changed={p}");
    }
    if std::env::var_os("HEARTH_SKIP_UI_BUILD").is_none() {
        if !ui.join("node_modules/.bin/vite").exists() {
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund", "--loglevel=error"]).current_dir(ui));
        }
        run(Command::new("npm").args(["run", "build", "--silent"]).current_dir(ui));
    }
    tauri_build::build()
}

fn run(cmd: &mut Command) {
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{cmd:?} failed ({s}); see its output above"),
        Err(e) => panic!("cannot run {cmd:?}: {e} (install Node.js and npm: scripts/setup.sh)"),
    }
}
