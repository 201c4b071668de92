//! `hearth`: the desktop app. A thin Tauri 2 shell: it creates the window, forwards the page's
//! commands to [`hearth_app::App`] and the app's events to the page. Everything else (the call,
//! devices, media, settings) lives in the crates.

#![cfg_attr(all(not(debug_assertions), target_os = "windows"), windows_subsystem = "windows")]

mod automation;
mod commands;
mod frame_path;

use clap::Parser;
use hearth_app::{App, AppOptions};
use std::sync::Arc;
use tauri::{Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

#[derive(Debug, Parser)]
#[command(name = "hearth", version, about = "Hearth: video calls, self-hosted.")]
struct Cli {
    /// An invite link (hearth://join?server=...&room=...) to open.
    invite: Option<String>,
    /// Check this install: start the local server and a test participant, check that its
    /// video paints, chat round-trips and audio arrives; print what was checked; exit 0 or 1.
    #[arg(long)]
    self_test: bool,
    /// Benchmark mode (see client-desktop/README or `scripts/bench-desktop.sh`): join
    /// `--bench-room` on `--bench-server`, wait for `--bench-peers` peers, measure painted
    /// frames, latency, CPU and RSS for `--bench-seconds`, then `--bench-cycles` join/leave
    /// cycles; print the figures as JSON; exit.
    #[arg(long)]
    bench: bool,
    /// Measure the two frame transports into the page (loopback WebSocket and
    /// `tauri::ipc::Channel`) under the same load; print the figures as JSON; exit. See
    /// docs/decisions.md, "Frame path".
    #[arg(long)]
    bench_frame_path: bool,
    #[arg(long, default_value = "")]
    bench_server: String,
    #[arg(long, default_value = "bench")]
    bench_room: String,
    #[arg(long, default_value_t = 4)]
    bench_peers: usize,
    #[arg(long, default_value_t = 15)]
    bench_seconds: u64,
    #[arg(long, default_value_t = 20)]
    bench_cycles: u32,
    /// Give up the self-test or benchmark after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Force the video renderer: "webgl" (the default where it works) or "2d" (canvas 2D, the
    /// fallback); for benchmarks and for machines whose WebGL misbehaves.
    #[arg(long, value_parser = ["webgl", "2d"])]
    renderer: Option<String>,
    /// Window size, e.g. 1280x800 (also HEARTH_WINDOW_SIZE; tests use it to check layouts).
    #[arg(long)]
    size: Option<String>,
    /// Log filter (also RUST_LOG).
    #[arg(long, default_value = "warn,hearth_app=info,rtc=error,webrtc=error")]
    log: String,
}

/// Whether this machine has no GPU render node (Linux: no `/dev/dri/renderD*`), so WebKitGTK
/// would composite and run WebGL on Mesa's software rasterizer.
fn software_rendering() -> bool {
    if !cfg!(target_os = "linux") {
        return false;
    }
    let has_render_node = std::fs::read_dir("/dev/dri")
        .map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("renderD")))
        .unwrap_or(false);
    !has_render_node
}

/// Without a GPU, WebKitGTK's accelerated compositing (OpenGL on llvmpipe) is what limits
/// video: measured under Xvfb, 5 tiles painted at 6.6 fps with it and at 30 fps without it
/// (docs/decisions.md, "Painting video under Xvfb"). Turn it off unless the user chose otherwise. Runs first
/// thing in `main`, before any other thread exists.
#[allow(unsafe_code)]
fn tune_webkit_for_software_rendering() -> bool {
    if !software_rendering() {
        return false;
    }
    if std::env::var_os("WEBKIT_DISABLE_COMPOSITING_MODE").is_none() {
        // SAFETY: called at the top of `main`, while the process has a single thread, so
        // nothing can read the environment concurrently.
        unsafe { std::env::set_var("WEBKIT_DISABLE_COMPOSITING_MODE", "1") };
    }
    true
}

/// glibc gives threads that allocate at once their own malloc arenas (up to 8 per core); the
/// engine's many media threads then keep freed frame buffers spread over many arenas. Two
/// arenas bound that. (Not measured apart: the benchmark's run-to-run spread, ~30 MB, hides it.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only changes allocator tuning; called first thing in main.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() {
    let launched = std::time::Instant::now();
    limit_malloc_arenas();
    let software = tune_webkit_for_software_rendering();
    let cli = Cli::parse();
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cli.log.clone());
    // Without webrtc-rs's error for each duplicated packet (the copies we send on purpose).
    hearth_engine::handshake_copy::init_logging(&filter);

    let invite = match cli.invite.as_deref().map(hearth_app::invite::parse) {
        None => None,
        Some(Ok(i)) => Some(i),
        Some(Err(e)) => {
            eprintln!("hearth: {e}");
            std::process::exit(2);
        }
    };
    let automation = if cli.self_test {
        Some("self-test".to_string())
    } else if cli.bench {
        Some("bench".to_string())
    } else if cli.bench_frame_path {
        Some("frame-path".to_string())
    } else {
        None
    };
    // --size, or HEARTH_WINDOW_SIZE (WebDriver tests cannot pass arguments).
    let size_arg = cli.size.clone().or_else(|| std::env::var("HEARTH_WINDOW_SIZE").ok());
    let size = size_arg.as_deref().and_then(|s| {
        let (w, h) = s.split_once('x')?;
        Some((w.parse::<f64>().ok()?, h.parse::<f64>().ok()?))
    });

    // Without a GPU, canvas 2D beats WebGL on the software rasterizer (30 vs 21 fps per tile
    // with compositing off, see docs/decisions.md); `--renderer` overrides.
    let renderer = cli.renderer.clone().or_else(|| software.then(|| "2d".to_string()));
    if software {
        tracing::info!("no GPU render node: compositing off, canvas 2D video (override with --renderer webgl)");
    }
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(commands::handler())
        .setup(move |tauri_app| {
            let handle = tauri_app.handle().clone();
            let sink_handle = handle.clone();
            let sink: hearth_app::Sink = Arc::new(move |ev| {
                let _ = sink_handle.emit("hearth", ev);
            });
            let mut config_dir = None;
            if automation.is_some() && std::env::var_os("HEARTH_CONFIG_DIR").is_none() {
                // Self-tests and benchmarks do not touch the user's settings.
                config_dir = Some(std::env::temp_dir().join(format!("hearth-auto-{}", std::process::id())));
            }
            let opts = AppOptions { config_dir, invite, automation: automation.clone(), embedded_port: None, launched: Some(launched) };
            let app = tauri::async_runtime::block_on(App::start(opts, sink))?;
            tauri_app.manage(app.clone());
            tauri_app.manage(frame_path::Channels::default());

            let (w, h) = size.unwrap_or((1280.0, 800.0));
            // The frame-path benchmark runs its own page script instead of the app's screens.
            let page = match (automation.as_deref(), renderer.as_deref()) {
                (Some("frame-path"), _) => "index.html?bench=frame-path".to_string(),
                (_, Some(r)) => format!("index.html?renderer={r}"),
                _ => "index.html".to_string(),
            };
            WebviewWindowBuilder::new(tauri_app, "main", WebviewUrl::App(page.into()))
                .title("Hearth")
                .inner_size(w, h)
                .min_inner_size(480.0, 560.0)
                .on_navigation(|url| {
                    // The page never navigates away; a link goes to the system browser.
                    let internal = matches!(url.scheme(), "tauri" | "asset")
                        || url.host_str() == Some("tauri.localhost")
                        || url.host_str() == Some("localhost");
                    internal
                })
                .build()?;

            match automation.as_deref() {
                Some("self-test") => {
                    let timeout = cli.timeout;
                    tauri::async_runtime::spawn(async move {
                        let code = automation::self_test(&app, timeout).await;
                        app.shutdown().await;
                        handle.exit(code);
                    });
                }
                Some("bench") => {
                    let args = automation::BenchArgs {
                        server: cli.bench_server.clone(),
                        room: cli.bench_room.clone(),
                        peers: cli.bench_peers,
                        seconds: cli.bench_seconds,
                        cycles: cli.bench_cycles,
                        timeout: cli.timeout,
                    };
                    tauri::async_runtime::spawn(async move {
                        let code = automation::bench(&app, args).await;
                        app.shutdown().await;
                        handle.exit(code);
                    });
                }
                Some("frame-path") => {
                    // The page drives this one (frame_path_report exits); a page that never
                    // reports fails it.
                    let timeout = cli.timeout;
                    tauri::async_runtime::spawn(async move {
                        tokio::time::sleep(std::time::Duration::from_secs(timeout)).await;
                        eprintln!("hearth: the frame-path benchmark did not finish in {timeout} s");
                        app.shutdown().await;
                        handle.exit(1);
                    });
                }
                _ => {}
            }
            Ok(())
        })
        .build(tauri::generate_context!());
    let tauri_app = match result {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hearth: cannot start the window: {e}");
            eprintln!("hearth: on Linux this needs a display (X11 or Wayland) and WebKitGTK 4.1.");
            std::process::exit(1);
        }
    };
    tauri_app.run(|handle, event| {
        // macOS hands `hearth://` links to a running app as an Apple event, not as an argument
        // (Linux and Windows start `hearth <link>`); the join screen takes it when it opens.
        // Not built or tested here (Linux only; see docs/decisions.md, "Packages").
        #[cfg(target_os = "macos")]
        if let tauri::RunEvent::Opened { urls } = &event
            && let Some(app) = handle.try_state::<App>()
        {
            for url in urls {
                match hearth_app::invite::parse(url.as_str()) {
                    Ok(invite) => app.set_pending_invite(invite),
                    Err(e) => tracing::warn!("ignoring the link {url}: {e}"),
                }
            }
        }
        if let tauri::RunEvent::ExitRequested { .. } = event {
            if let Some(app) = handle.try_state::<App>() {
                let app = app.inner().clone();
                tauri::async_runtime::block_on(async move {
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), app.shutdown()).await;
                });
            }
        }
    });
}
