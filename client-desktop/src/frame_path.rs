//! `hearth --bench-frame-path`: measures the two ways video frames can reach the page, under the
//! same load, in the real window: the loopback WebSocket of [`hearth_app::frames`] (what the app
//! uses) and `tauri::ipc::Channel` (Tauri's own streaming IPC: each message is announced by an
//! eval into the page and fetched by it through the IPC custom protocol).
//!
//! The page (`ui/src/dev/frame-path-bench.ts`, loaded when the window's URL says
//! `?bench=frame-path`) opens one stream per tile for each transport in turn and asks Rust to
//! feed it (`frame_path_feed`): `streams` tiles of `width`x`height` I420 at `fps` for `seconds`.
//! Each frame carries the time Rust handed it to the transport; the page records when its
//! `ArrayBuffer` arrived in JavaScript. Painting is left out: it costs the same after either.
//! The page sends its figures back (`frame_path_report`) and Rust prints them with the CPU used
//! by all the app's processes during each feed.

use hearth_app::App;
use hearth_app::frames::{TileFrame, encode};
use hearth_media::VideoFrame;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tauri::State;
use tauri::ipc::{Channel, InvokeResponseBody};

/// What one feed cost on the Rust side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FeedResult {
    pub transport: String,
    pub frames_offered: u64,
    pub seconds: f64,
    /// CPU of the app's process tree (webview processes included) during the feed, in % of
    /// one core.
    pub cpu_pct_of_one_core: f64,
}

/// Pre-made frames with a moving bar so they differ (their content does not matter to the
/// transports, but identical buffers could hide copies).
fn frames(width: u32, height: u32) -> Vec<Arc<VideoFrame>> {
    (0..8u32)
        .map(|i| {
            let mut f = VideoFrame::new(width, height);
            let w = f.width as usize;
            for (n, px) in f.data.iter_mut().enumerate().take(f.width as usize * f.height as usize) {
                *px = if (n % w) / 16 == i as usize { 235 } else { 60 };
            }
            Arc::new(f)
        })
        .collect()
}

/// The page's channels for the next Channel feed (a `Channel` is a command argument of its own;
/// it cannot ride inside a list).
#[derive(Default)]
pub struct Channels(std::sync::Mutex<Vec<Channel<InvokeResponseBody>>>);

#[tauri::command(rename_all = "snake_case")]
pub fn frame_path_channel(channels: State<'_, Channels>, channel: Channel<InvokeResponseBody>) {
    if let Ok(mut c) = channels.0.lock() {
        c.push(channel);
    }
}

#[allow(clippy::too_many_arguments)]
#[tauri::command(rename_all = "snake_case")]
pub async fn frame_path_feed(
    app: State<'_, App>,
    registered: State<'_, Channels>,
    transport: String,
    streams: u32,
    fps: u32,
    seconds: u32,
    width: u32,
    height: u32,
) -> Result<FeedResult, String> {
    let (streams, fps, seconds) = (streams.clamp(1, 16), fps.clamp(1, 120), seconds.clamp(1, 120));
    let (width, height) = (width.clamp(16, 3840), height.clamp(16, 2160));
    let channels: Vec<_> = registered.0.lock().map(|mut c| std::mem::take(&mut *c)).unwrap_or_default();
    if transport == "channel" && channels.len() != streams as usize {
        return Err(format!("{} channels for {streams} streams", channels.len()));
    }
    if transport != "channel" && transport != "websocket" {
        return Err(format!("unknown transport {transport:?}"));
    }
    let hub = app.frame_hub().clone();
    let pool = frames(width, height);
    let period = Duration::from_secs_f64(1.0 / fps as f64);
    let (cpu0, _, _) = crate::automation::process_tree_usage();
    let t0 = Instant::now();
    let mut offered = 0u64;
    let mut next = tokio::time::Instant::now();
    let mut seq = 0u64;
    while t0.elapsed() < Duration::from_secs(seconds as u64) {
        tokio::time::sleep_until(next).await;
        next += period;
        seq += 1;
        for s in 0..streams as usize {
            let mut f = (*pool[(seq as usize + s) % pool.len()]).clone();
            f.capture_us = hearth_media::now_us();
            if transport == "channel" {
                // The same bytes the WebSocket carries (header + planes), as a raw body.
                let msg = encode(&f, seq);
                channels[s].send(InvokeResponseBody::Raw(msg.to_vec())).map_err(|e| e.to_string())?;
            } else {
                hub.publish(&format!("frame-path/{s}"), TileFrame::Own(Arc::new(f)));
            }
            offered += 1;
        }
    }
    let dt = t0.elapsed().as_secs_f64();
    let (cpu1, _, _) = crate::automation::process_tree_usage();
    Ok(FeedResult { transport, frames_offered: offered, seconds: dt, cpu_pct_of_one_core: (cpu1 - cpu0) / dt * 100.0 })
}

/// The page's figures; printed as one JSON document, then the app exits.
#[tauri::command(rename_all = "snake_case")]
pub fn frame_path_report(handle: tauri::AppHandle, report: serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    let ok = report.get("ok").and_then(|v| v.as_bool()).unwrap_or(false);
    handle.exit(if ok { 0 } else { 1 });
}
