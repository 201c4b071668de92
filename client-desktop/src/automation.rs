//! `hearth --self-test` and `hearth --bench`: the real app, window and page included, driving
//! itself through the same [`App`] calls the page makes, and reading back what the page says it
//! painted (`report_paint`).

use hearth_app::App;
use hearth_app::api::{JoinRequest, LinkUi, SYNTHETIC_DEVICE, TilePaint};
use std::time::{Duration, Instant};

async fn wait_for<T>(deadline: Instant, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn synthetic_join(name: &str, room: &str, server: &str) -> JoinRequest {
    JoinRequest {
        name: name.into(),
        room: room.into(),
        server: server.into(),
        password: None,
        camera: Some(SYNTHETIC_DEVICE.into()),
        microphone: Some(SYNTHETIC_DEVICE.into()),
        speaker: Some(SYNTHETIC_DEVICE.into()),
        camera_on: true,
        mic_on: true,
        audio: Default::default(),
    }
}

struct Checks {
    all_ok: bool,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str, detail: String) {
        println!("{} {what}: {detail}", if ok { "PASS" } else { "FAIL" });
        self.all_ok &= ok;
    }
}

/// Exit code 0 when every check passed.
pub async fn self_test(app: &App, timeout_s: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(timeout_s);
    let mut c = Checks { all_ok: true };
    println!("hearth self-test {} (protocol {})", env!("CARGO_PKG_VERSION"), hearth_proto::PROTOCOL_VERSION);
    let ready = wait_for(deadline, || app.ui_ready_after()).await;
    c.check(ready.is_some(), "window and page load", match ready {
        Some(d) => format!("pre-join screen painted {} ms after launch", d.as_millis()),
        None => "the page never reported ready".into(),
    });
    if ready.is_none() {
        return 1;
    }
    let room = format!("self-test-{}", std::process::id());
    let t0 = Instant::now();
    if let Err(e) = app.join(synthetic_join("Self test", &room, "")).await {
        c.check(false, "join the local server", format!("{}: {} ({})", e.title, e.message, e.detail));
        return 1;
    }
    c.check(true, "join the local server", format!("in room {room:?} after {} ms", t0.elapsed().as_millis()));
    if let Err(e) = app.add_test_participant().await {
        c.check(false, "add the test participant", format!("{}: {}", e.title, e.detail));
        return 1;
    }
    let peer = wait_for(deadline, || {
        app.view().peers.into_iter().find(|p| p.is_test_participant && p.link == LinkUi::Connected)
    })
    .await;
    c.check(peer.is_some(), "test participant connects", match &peer {
        Some(p) => format!("{} connected after {} ms", p.name, t0.elapsed().as_millis()),
        None => "its link never connected".into(),
    });
    let Some(peer) = peer else { return 1 };

    // Its video paints, and moves.
    let tile = peer.camera_tile.clone();
    let painted = wait_for(deadline, || {
        app.paint().get(&tile).filter(|t| t.frames >= 60 && t.distinct_pixel_hashes >= 3).cloned()
    })
    .await;
    let last = app.paint().get(&tile).cloned();
    c.check(painted.is_some(), "remote video paints moving frames", describe(last.as_ref()));
    let own = app.paint().get("self/camera").cloned();
    c.check(own.as_ref().is_some_and(|t| t.frames >= 10), "self view paints", describe(own.as_ref()));

    // Chat round trip: a private message to the test participant, which answers.
    let marker = format!("self-test {}", hearth_media::now_us());
    let sent = app.send_chat(marker.clone(), Some(peer.peer_id.clone()));
    let t_chat = Instant::now();
    let answer = match sent {
        Ok(()) => wait_for(deadline.min(Instant::now() + Duration::from_secs(10)), || {
            app.chat().into_iter().find(|m| m.from == peer.peer_id && m.text.contains(&marker))
        })
        .await,
        Err(_) => None,
    };
    c.check(answer.is_some(), "chat round trip", match &answer {
        Some(_) => format!("answer in {} ms", t_chat.elapsed().as_millis()),
        None => "no answer from the test participant".into(),
    });

    // Audio arrives: packets decoded from the test participant.
    let audio = match app.engine() {
        Some(e) => wait_for_audio(&e, &peer.peer_id, deadline).await,
        None => None,
    };
    c.check(audio.is_some_and(|(p, _)| p >= 50), "audio arrives", match audio {
        Some((p, m)) => format!("{p} packets, {m} tone bursts heard"),
        None => "no audio statistics".into(),
    });
    app.leave().await;
    println!("{}", if c.all_ok { "self-test passed" } else { "self-test FAILED" });
    if c.all_ok { 0 } else { 1 }
}

async fn wait_for_audio(e: &hearth_engine::Engine, peer: &str, deadline: Instant) -> Option<(u64, u64)> {
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(stats) = e.stats().await {
            if let Some(s) = stats.iter().find(|s| s.peer_id == peer) {
                last = Some((s.audio.packets, s.audio.markers));
                if s.audio.packets >= 50 {
                    return last;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    last
}

fn describe(t: Option<&TilePaint>) -> String {
    match t {
        Some(t) => {
            let l = percentiles(&t.latencies_ms);
            format!(
                "{} frames painted ({}), {} distinct pictures, capture→painted p50 {:.1} ms p95 {:.1} ms",
                t.frames, t.renderer, t.distinct_pixel_hashes, l.0, l.1
            )
        }
        None => "nothing painted".into(),
    }
}

fn percentiles(v: &[f64]) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

#[derive(Debug, Clone)]
pub struct BenchArgs {
    pub server: String,
    pub room: String,
    pub peers: usize,
    pub seconds: u64,
    pub cycles: u32,
    pub timeout: u64,
}

/// CPU seconds (user + system) and RSS bytes of this process and all its descendants (the
/// webview's processes included).
pub(crate) fn process_tree_usage() -> (f64, u64, usize) {
    let u = process_tree();
    (u.cpu_s, u.rss, u.processes)
}

pub(crate) struct TreeUsage {
    pub cpu_s: f64,
    /// Sum of the processes' RSS: pages shared between them (WebKit's libraries, mapped by
    /// every WebKit process) are counted once per process.
    pub rss: u64,
    /// Sum of the processes' PSS (`/proc/PID/smaps_rollup`): shared pages split between the
    /// processes sharing them, so the sum is the memory the app really holds.
    pub pss: u64,
    pub processes: usize,
    /// (name, RSS, PSS) of each process.
    pub detail: Vec<(String, u64, u64)>,
    pub pids: Vec<i32>,
}

pub(crate) fn process_tree() -> TreeUsage {
    let mut pss = 0u64;
    let mut pids = Vec::new();
    let mut detail = Vec::new();
    let (cpu_s, rss, processes) = process_tree_raw(&mut pids);
    for &pid in &pids {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        let kb = |field: &str| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        pss += kb("Pss:");
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string();
        detail.push((name, kb("Rss:"), kb("Pss:")));
    }
    TreeUsage { cpu_s, rss, pss, processes, detail, pids }
}

fn process_tree_raw(pids: &mut Vec<i32>) -> (f64, u64, usize) {
    let me = std::process::id() as i32;
    let mut parent = std::collections::HashMap::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                if let Some(after) = stat.rsplit_once(')').map(|x| x.1) {
                    let f: Vec<&str> = after.split_whitespace().collect();
                    if let Some(pp) = f.get(1).and_then(|x| x.parse::<i32>().ok()) {
                        parent.insert(pid, (pp, f.clone().into_iter().map(String::from).collect::<Vec<_>>()));
                    }
                }
            }
        }
    }
    let in_tree = |mut pid: i32| -> bool {
        for _ in 0..64 {
            if pid == me {
                return true;
            }
            match parent.get(&pid) {
                Some((pp, _)) if *pp > 0 => pid = *pp,
                _ => return false,
            }
        }
        false
    };
    let tick = 100.0; // sysconf(_SC_CLK_TCK) on Linux
    let page = 4096u64;
    let (mut cpu, mut rss, mut n) = (0.0, 0u64, 0usize);
    for (pid, (_, f)) in &parent {
        if !in_tree(*pid) {
            continue;
        }
        n += 1;
        pids.push(*pid);
        // Fields after ')': state(0) ppid(1) ... utime(11) stime(12) ... rss(21)
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        cpu += (num(11) + num(12)) as f64 / tick;
        rss += num(21) * page;
    }
    (cpu, rss, n)
}

pub async fn bench(app: &App, a: BenchArgs) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let Some(ready) = wait_for(deadline, || app.ui_ready_after()).await else {
        eprintln!("bench: the page never reported ready");
        return 1;
    };
    let join = synthetic_join("Bench", &a.room, &a.server);
    if let Err(e) = app.join(join.clone()).await {
        eprintln!("bench: join failed: {} ({})", e.title, e.detail);
        return 1;
    }
    let all_painting = |app: &App| {
        let v = app.view();
        let connected: Vec<_> = v.peers.iter().filter(|p| p.link == LinkUi::Connected).collect();
        let p = app.paint();
        (connected.len() >= a.peers
            && connected.iter().all(|x| p.get(&x.camera_tile).is_some_and(|t| t.frames > 30)))
        .then_some(())
    };
    if wait_for(deadline, || all_painting(app)).await.is_none() {
        eprintln!("bench: {} peers did not connect and paint in time", a.peers);
        return 1;
    }
    let frames0: std::collections::HashMap<String, u32> = app.paint().iter().map(|(k, t)| (k.clone(), t.frames)).collect();
    let (cpu0, _, _) = process_tree_usage();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let dt = t0.elapsed().as_secs_f64();
    let usage = process_tree();
    let (cpu1, rss, procs) = (usage.cpu_s, usage.rss, usage.processes);
    // The processes' resident memory with each physical page counted once, however many of
    // them map it (`None` when the page frame numbers cannot be read: not root).
    let resident_once = hearth_app::memory::resident_pages_once(&usage.pids);
    let paint = app.paint();
    let mut tiles = Vec::new();
    let mut keys: Vec<_> = paint.keys().cloned().collect();
    keys.sort();
    for k in keys {
        let t = &paint[&k];
        let fps = (t.frames.saturating_sub(frames0.get(&k).copied().unwrap_or(0))) as f64 / dt;
        let (p50, p95) = percentiles(&t.latencies_ms);
        // Where each tile's latency goes (p50 / p95 of each stage over the same frames).
        let stage = |i: usize| {
            let (p50, p95) = percentiles(&t.stages_ms.iter().map(|s| s[i]).collect::<Vec<_>>());
            serde_json::json!([p50, p95])
        };
        tiles.push(serde_json::json!({
            "tile": k, "fps_painted": fps, "latency_p50_ms": p50, "latency_p95_ms": p95, "renderer": t.renderer,
            "capture_to_sent_p50_p95_ms": stage(0), "sent_to_received_p50_p95_ms": stage(1),
            "received_to_painted_p50_p95_ms": stage(2),
        }));
    }
    let cpu_pct = (cpu1 - cpu0) / dt * 100.0;
    // Where the remote tiles' latency goes: the engine's capture → decoded, the audio's
    // capture → heard (video is held back to meet its audio: lip sync), and the skew.
    let mut pipeline = Vec::new();
    if let Some(e) = app.engine() {
        if let Ok(stats) = e.stats().await {
            for st in stats {
                pipeline.push(serde_json::json!({
                    "peer": st.peer_id,
                    "video_capture_to_decoded_p50_ms": st.camera.latency.p50_ms,
                    "video_capture_to_decoded_p95_ms": st.camera.latency.p95_ms,
                    "audio_capture_to_heard_p50_ms": st.audio.playout_latency.p50_ms,
                    "audio_capture_to_heard_p95_ms": st.audio.playout_latency.p95_ms,
                    "audio_playout_depth_ms": st.audio.playout_delay_ms,
                    "audio_underruns": st.audio.underruns,
                    "audio_concealed_frames": st.audio.concealed_frames,
                    "video_fps_decoded": st.camera.fps,
                }));
            }
        }
    }
    app.leave().await;

    // Join/leave cycles in this one app run: the RSS of all processes after the first and
    // after the last.
    let mut rss_after = Vec::new();
    let mut pss_after = Vec::new();
    let mut detail_after: Vec<Vec<(String, u64, u64)>> = Vec::new();
    for i in 0..a.cycles {
        let mut j = join.clone();
        j.room = format!("{}-cycle", a.room);
        if let Err(e) = app.join(j).await {
            eprintln!("bench: cycle {i}: join failed: {} ({})", e.title, e.detail);
            return 1;
        }
        let _ = app.add_test_participant().await;
        let cycle_deadline = Instant::now() + Duration::from_secs(20);
        let painted = wait_for(cycle_deadline, || {
            let v = app.view();
            let p = app.paint();
            v.peers.iter().find(|x| x.is_test_participant).and_then(|x| p.get(&x.camera_tile)).filter(|t| t.frames >= 5).map(|_| ())
        })
        .await;
        if painted.is_none() {
            eprintln!("bench: cycle {i}: the test participant's video did not paint");
        }
        app.leave().await;
        // The web process frees the page's garbage (30 frame buffers a second per tile) when
        // its collector runs, not at the leave: one sample would measure where the collector
        // happened to be. The lowest of samples over 2.5 s after the leave is what the
        // processes come back to, which is what a leak raises.
        let mut low: Option<TreeUsage> = None;
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let u = process_tree();
            if low.as_ref().is_none_or(|l| u.rss < l.rss) {
                low = Some(u);
            }
        }
        if let Some(u) = low {
            rss_after.push(u.rss);
            pss_after.push(u.pss);
            detail_after.push(u.detail);
        }
    }
    // Which process grew: the RSS and PSS of each (by name) after every cycle.
    let per_process_growth: Vec<serde_json::Value> = detail_after
        .last()
        .map(|last| {
            last.iter()
                .map(|(name, _, _)| {
                    let each = |field: fn(&(String, u64, u64)) -> u64| {
                        detail_after
                            .iter()
                            .map(|d| d.iter().find(|x| &x.0 == name).map(|x| (field(x) as f64 / 1e5).round() / 10.0))
                            .collect::<Vec<_>>()
                    };
                    serde_json::json!({"name": name, "rss_mb_each_cycle": each(|x| x.1), "pss_mb_each_cycle": each(|x| x.2)})
                })
                .collect()
        })
        .unwrap_or_default();
    let growth = |v: &[u64]| match (v.first(), v.last()) {
        (Some(f), Some(l)) => (*l as f64 - *f as f64) / 1e6,
        _ => f64::NAN,
    };
    // The same growth from every cycle, not only the two ends: the least-squares line through
    // the RSS after each cycle, from the first cycle to the last.
    let trend = |v: &[u64]| {
        let n = v.len() as f64;
        match v.len() {
            0 => return f64::NAN,
            1 => return 0.0,
            _ => {}
        }
        let xm = (n - 1.0) / 2.0;
        let ym = v.iter().map(|y| *y as f64).sum::<f64>() / n;
        let (sxy, sxx) = v.iter().enumerate().fold((0.0, 0.0), |(sxy, sxx), (x, y)| {
            let dx = x as f64 - xm;
            (sxy + dx * (*y as f64 - ym), sxx + dx * dx)
        });
        sxy / sxx * (n - 1.0) / 1e6
    };
    // The floors, each with the figure it is checked against.
    let fps_min = tiles.iter().filter_map(|t| t["fps_painted"].as_f64()).fold(f64::INFINITY, f64::min);
    let p95_max = tiles.iter().filter_map(|t| t["latency_p95_ms"].as_f64()).fold(0.0, f64::max);
    let floor = |what: &str, value: f64, limit: f64, at_least: bool| {
        let ok = if at_least { value >= limit } else { value <= limit };
        serde_json::json!({"what": what, "value": (value * 10.0).round() / 10.0, "floor": limit, "ok": ok})
    };
    let floors = vec![
        floor("frames painted per second, lowest tile", fps_min, 25.0, true),
        floor("capture→painted p95 ms, highest tile", p95_max, 60.0, false),
        // A page several processes map is one page of memory: the resident set of all the
        // processes counts it once. Where that cannot be read (not root), the plain sum.
        match resident_once {
            Some(once) => floor("RSS MB, all processes (each resident page once)", once as f64 / 1e6, 400.0, false),
            None => floor("RSS MB, all processes (shared pages counted per process)", rss as f64 / 1e6, 400.0, false),
        },
        floor("launch → pre-join painted ms", ready.as_millis() as f64, 1500.0, false),
        floor("RSS growth MB over the join/leave cycles (first to last)", growth(&rss_after), 20.0, false),
        floor("RSS growth MB over the join/leave cycles (line through all)", trend(&rss_after), 20.0, false),
    ];
    let out = serde_json::json!({
        "floors": floors,
        "launch_to_prejoin_ms": ready.as_millis() as u64,
        "peers": a.peers,
        "seconds": dt,
        "tiles": tiles,
        "pipeline": pipeline,
        "cpu_pct_of_one_core": cpu_pct,
        "rss_mb_all_processes": rss as f64 / 1e6,
        "resident_mb_all_processes_each_page_once": resident_once.map(|b| b as f64 / 1e6),
        "pss_mb_all_processes": usage.pss as f64 / 1e6,
        "processes": procs,
        "per_process": usage.detail.iter().map(|(n, r, p)| serde_json::json!({"name": n, "rss_mb": *r as f64 / 1e6, "pss_mb": *p as f64 / 1e6})).collect::<Vec<_>>(),
        "cycles": a.cycles,
        "rss_growth_mb_over_cycles": growth(&rss_after),
        "rss_growth_trend_mb_over_cycles": trend(&rss_after),
        "pss_growth_mb_over_cycles": growth(&pss_after),
        "per_process_over_cycles": per_process_growth,
        "rss_mb_after_each_cycle": rss_after.iter().map(|r| (*r as f64 / 1e5).round() / 10.0).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    0
}
