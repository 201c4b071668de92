//! Call benchmarks: `cargo bench -p hearth-call --bench call`. Prints figures; asserts nothing.
//!
//! 1. 2-party 720p30 synthetic video + Opus on loopback, `HEARTH_BENCH_RUNS` runs (default 3) of
//!    `HEARTH_BENCH_SECONDS` (default 10): video latency (capture to decoded, from in-band
//!    stamps), audio latency (burst captured to heard out of the playout buffer, and to
//!    decoded), lip-sync skew at the outputs, achieved frame rate, PSNR, join to first decoded
//!    frame, connect time, CPU per peer; each at the stated encoder settings.
//! 2. 4-party at 720p30 and 360p30: CPU per peer, and its ratio to the 2-party figure.
//! 3. `HEARTH_BENCH_CYCLES` (default 200) create/connect/media/close cycles in one process:
//!    RSS, file descriptors, threads and tokio tasks before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hearth_call::demo::{self, DemoParams, DemoReport};
use hearth_engine::{CallEvent, Engine, EngineConfig, EngineEvent, LinkState};
use std::time::{Duration, Instant};

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter(|p| p.to_string_lossy().starts_with("socket:"))
                .count()
        })
        .unwrap_or(0)
}

async fn runs(label: &str, p: DemoParams, n: u64) -> Vec<DemoReport> {
    let mut out = Vec::new();
    for i in 0..n {
        let r = demo::run(p).await.expect("demo run");
        let s = &r.summary;
        let n = |v: Option<f64>| v.unwrap_or(f64::NAN);
        let worst = |k: &str| s.worst.get(k).map_or(f64::NAN, |w| w.value);
        println!(
            "  {label} run {}: video p50 {:.1} / p95 {:.1} (worst {:.1}) ms, audio heard p50 {:.1} / p95 {:.1} (worst {:.1}) ms, decoded p50 {:.1} / p95 {:.1} ms, lip sync p50 {:.1} / p95 {:.1} ms, {:.1} fps (worst {:.1}), PSNR {:.1} dB (worst {:.1}), join->first frame p50 {:.1} ms, connect p50 {:.1} ms, CPU/peer {:.1}%, lost video frames {}, ok={}{}",
            i + 1,
            n(s.video_latency_p50_ms),
            n(s.video_latency_p95_ms),
            worst("video_latency_p95_ms"),
            n(s.audio_latency_p50_ms),
            n(s.audio_latency_p95_ms),
            worst("audio_latency_p95_ms"),
            n(s.audio_decode_latency_p50_ms),
            n(s.audio_decode_latency_p95_ms),
            n(s.lip_sync_skew_p50_ms),
            n(s.lip_sync_skew_p95_ms),
            n(s.video_fps_avg),
            worst("video_fps_avg"),
            n(s.video_psnr_db),
            worst("video_psnr_db"),
            n(s.join_to_first_frame_p50_ms),
            n(s.connect_p50_ms),
            r.cpu_per_peer_pct,
            s.video_frames_lost,
            r.ok,
            if r.problems.is_empty() { String::new() } else { format!(" {:?}", r.problems) }
        );
        if i == 0 {
            for e in &r.encoders {
                println!(
                    "    encoder {:?}: {} {} {}x{}@{} {:.0} kbit/s",
                    e.kind,
                    e.codec,
                    e.profile.as_deref().unwrap_or("-"),
                    e.width,
                    e.height,
                    e.fps,
                    e.bitrate_kbps
                );
            }
        }
        out.push(r);
    }
    out
}

fn med(reports: &[DemoReport], f: impl Fn(&DemoReport) -> Option<f64>) -> f64 {
    median(reports.iter().filter_map(f).collect())
}

async fn cycles(n: u64) {
    let server = hearth_testkit::Server::start(hearth_signal::Config::default()).await.unwrap();
    // Let the server start its own tasks before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let snapshot = |label: &str| {
        let s = (proc_status("VmRSS:"), fds(), sockets(), proc_status("Threads:"), metrics.num_alive_tasks());
        println!(
            "  {label:<22} RSS {:>7} KiB, fds {:>4}, sockets {:>4}, threads {:>3}, tokio tasks {:>4}",
            s.0, s.1, s.2, s.3, s.4
        );
        s
    };
    let before = snapshot("before");
    let mut warm = before;
    let t0 = Instant::now();
    for i in 0..n {
        one_cycle(&server.url(), i).await;
        if i == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            warm = snapshot("after the first cycle");
        }
    }
    // tokio keeps idle blocking-pool threads (used to stop capture threads) for 10 s: wait them
    // out so a thread count difference means a leak.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let after = snapshot(&format!("after {n}"));
    println!(
        "  {n} cycles in {:.1} s; RSS growth {:.1} MB from start, {:.1} MB after the first cycle (one-time setup); fds {:+}, sockets {:+}, threads {:+}, tokio tasks {:+}",
        t0.elapsed().as_secs_f64(),
        (after.0 as f64 - before.0 as f64) / 1024.0,
        (after.0 as f64 - warm.0 as f64) / 1024.0,
        after.1 as i64 - before.1 as i64,
        after.2 as i64 - before.2 as i64,
        after.3 as i64 - before.3 as i64,
        after.4 as i64 - before.4 as i64
    );
    server.shutdown().await;
}

async fn one_cycle(url: &str, i: u64) {
    let room = format!("cycle-{i}");
    let mut engines = Vec::new();
    for name in ["a", "b"] {
        let cfg = EngineConfig::new(url, room.clone(), name).synthetic(320, 240, 30.0);
        let (e, mut rx) = Engine::start(cfg).await.expect("join");
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let EngineEvent::Call(CallEvent::Link { state: LinkState::Failed, .. }) = ev {
                    eprintln!("cycle {i}: a link failed");
                }
            }
        });
        engines.push(e);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    'wait: while Instant::now() < deadline {
        for e in &engines {
            let ok = e
                .stats()
                .await
                .unwrap_or_default()
                .iter()
                .any(|s| s.camera.frames_decoded > 0 && s.audio.frames_decoded > 0);
            if !ok {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue 'wait;
            }
        }
        break;
    }
    for e in engines {
        e.leave().await;
    }
}

fn main() {
    let seconds = env_num("HEARTH_BENCH_SECONDS", 10);
    let n = env_num("HEARTH_BENCH_RUNS", 3);
    let cycle_count = env_num("HEARTH_BENCH_CYCLES", 200);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let only_cycles = std::env::var("HEARTH_BENCH_ONLY").is_ok_and(|v| v == "cycles");
    rt.block_on(async {
        if only_cycles {
            println!("{cycle_count} create/connect/media/close cycles (2 peers, 320x240) in one process");
            cycles(cycle_count).await;
            return;
        }
        println!("Hearth call benchmark ({} cores, loopback, embedded server, synthetic media)", std::thread::available_parallelism().map_or(0, |c| c.get()));
        println!("\n1. 2-party 1280x720@30 H.264 + Opus, {n} runs of {seconds} s");
        let two = runs("2p 720p", DemoParams { peers: 2, seconds, width: 1280, height: 720, fps: 30.0 }, n).await;
        println!(
            "  median: video p50 {:.1} / p95 {:.1} ms, audio heard p50 {:.1} / p95 {:.1} ms, decoded p50 {:.1} / p95 {:.1} ms, lip sync p95 {:.1} ms, {:.1} fps, PSNR {:.1} dB, join->first frame p50 {:.1} ms, CPU/peer {:.1}%",
            med(&two, |r| r.summary.video_latency_p50_ms),
            med(&two, |r| r.summary.video_latency_p95_ms),
            med(&two, |r| r.summary.audio_latency_p50_ms),
            med(&two, |r| r.summary.audio_latency_p95_ms),
            med(&two, |r| r.summary.audio_decode_latency_p50_ms),
            med(&two, |r| r.summary.audio_decode_latency_p95_ms),
            med(&two, |r| r.summary.lip_sync_skew_p95_ms),
            med(&two, |r| r.summary.video_fps_avg),
            med(&two, |r| r.summary.video_psnr_db),
            med(&two, |r| r.summary.join_to_first_frame_p50_ms),
            med(&two, |r| Some(r.cpu_per_peer_pct)),
        );

        println!("\n2. CPU per peer, 4-party vs 2-party (encode once, decode N-1)");
        let four = runs("4p 720p", DemoParams { peers: 4, seconds, width: 1280, height: 720, fps: 30.0 }, n).await;
        let two_360 = runs("2p 360p", DemoParams { peers: 2, seconds, width: 640, height: 360, fps: 30.0 }, n).await;
        let four_360 = runs("4p 360p", DemoParams { peers: 4, seconds, width: 640, height: 360, fps: 30.0 }, n).await;
        for (label, a, b) in [("720p30", &two, &four), ("360p30", &two_360, &four_360)] {
            let (c2, c4) = (med(a, |r| Some(r.cpu_per_peer_pct)), med(b, |r| Some(r.cpu_per_peer_pct)));
            println!(
                "  {label}: CPU per peer 2-party {c2:.1}%, 4-party {c4:.1}% of one core; ratio {:.2}; 4-party video p95 {:.1} ms (worst pair {:.1}), PSNR {:.1} dB",
                c4 / c2,
                med(b, |r| r.summary.video_latency_p95_ms),
                med(b, |r| r.summary.worst.get("video_latency_p95_ms").map(|w| w.value)),
                med(b, |r| r.summary.video_psnr_db)
            );
        }

        println!("\n3. {cycle_count} create/connect/media/close cycles (2 peers, 320x240) in one process");
        cycles(cycle_count).await;
    });
}
