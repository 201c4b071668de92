//! `hearth-call demo`: an embedded signaling server on loopback and N synthetic peers in this
//! process, with a report on every pair (also used by the benchmarks).
//!
//! Each peer plays what it receives as an app would, without devices: audio through the mixer
//! into a virtual speaker pulled in real time, video handed over for display (and dropped at
//! once). So the audio latency includes the playout buffer, and lip sync is measured at the
//! outputs.

use crate::flow::{self, Announcements};
use crate::report::{PairReport, Summary};
use anyhow::Context as _;
use hearth_engine::{CallEvent, EncoderInfo, Engine, EngineConfig, EngineEvent, LinkState};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// CPU time (user + system) this process has used, in seconds.
pub fn process_cpu_secs() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<String> = s.rsplit_once(')')?.1.split_whitespace().map(str::to_owned).collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct DemoParams {
    pub peers: usize,
    pub seconds: u64,
    pub width: u32,
    pub height: u32,
    pub fps: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub ok: bool,
    pub peers: usize,
    pub seconds: u64,
    pub width: u32,
    pub height: u32,
    pub fps: f32,
    /// The encoders every peer runs (the first peer's; all are configured alike).
    pub encoders: Vec<EncoderInfo>,
    /// Process CPU over the measured window, in % of one core.
    pub cpu_total_pct: f64,
    pub cpu_per_peer_pct: f64,
    pub summary: Summary,
    /// Why media did not flow as announced, per pair ("receiver: ..."); empty when `ok`.
    pub problems: Vec<String>,
    pub pairs: Vec<PairReport>,
}

/// Run a demo call and report on it.
pub async fn run(p: DemoParams) -> anyhow::Result<DemoReport> {
    anyhow::ensure!(p.peers >= 2, "a demo needs at least 2 peers");
    let listener = hearth_signal::bind("127.0.0.1:0").await.context("cannot bind the embedded server")?;
    let url = format!("ws://{}/ws", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server_cfg = hearth_signal::Config::default();
    server_cfg.hub.max_room_size = p.peers.max(8);
    let server = tokio::spawn(hearth_signal::run(listener, server_cfg, async {
        let _ = stop_rx.await;
    }));
    let mut engines = Vec::new();
    let mut event_rxs = Vec::new();
    for i in 0..p.peers {
        let mut cfg = EngineConfig::new(url.clone(), "demo", format!("peer-{}", i + 1))
            .synthetic(p.width, p.height, p.fps);
        cfg.virtual_speaker = true;
        cfg.deliver_frames = true;
        let (engine, events) =
            Engine::start(cfg).await.with_context(|| format!("peer {} could not join", i + 1))?;
        engines.push(engine);
        event_rxs.push(events);
    }
    // Keep draining events so nothing piles up (frames are "shown" by dropping them); follow
    // what each peer hears of the others' media states; count connected links.
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let announced: Vec<Arc<Mutex<Announcements>>> =
        (0..p.peers).map(|_| Arc::new(Mutex::new(Announcements::new()))).collect();
    let drains: Vec<_> = event_rxs
        .into_iter()
        .zip(&announced)
        .map(|(mut rx, announced)| {
            let (conn_tx, announced) = (conn_tx.clone(), announced.clone());
            tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    if let EngineEvent::Call(CallEvent::Link { state: LinkState::Connected, .. }) = ev {
                        let _ = conn_tx.send(());
                    }
                    if let Ok(mut a) = announced.lock() {
                        a.observe(&ev, hearth_media::now_us());
                    }
                }
            })
        })
        .collect();
    let links = p.peers * (p.peers - 1);
    let wait_until = Instant::now() + Duration::from_secs(20);
    let mut up = 0;
    while up < links {
        match tokio::time::timeout_at(wait_until.into(), conn_rx.recv()).await {
            Ok(Some(())) => up += 1,
            _ => break,
        }
    }
    // Measure CPU over the steady window only (after connecting, skipping one second).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu0 = process_cpu_secs();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(p.seconds.max(1))).await;
    let cpu = (process_cpu_secs() - cpu0) / t0.elapsed().as_secs_f64() * 100.0;

    let joins: BTreeMap<String, u64> =
        engines.iter().map(|e| (e.peer_id().to_string(), e.joined_at_us())).collect();
    let mut pairs = Vec::new();
    let mut problems = Vec::new();
    for (i, e) in engines.iter().enumerate() {
        let name = format!("peer-{}", i + 1);
        let heard = announced[i].lock().map(|a| a.clone()).unwrap_or_default();
        for s in e.stats().await.unwrap_or_default() {
            let mut pair = PairReport::new(&name, e.joined_at_us(), joins.get(&s.peer_id).copied(), &s);
            pair.problems = flow::problems(&s, &heard, hearth_media::now_us());
            problems.extend(pair.problems.iter().map(|m| format!("{name}: {m}")));
            pairs.push(pair);
        }
    }
    let encoders = match engines.first() {
        Some(e) => e.encoders().await.unwrap_or_default(),
        None => Vec::new(),
    };
    for e in engines {
        e.leave().await;
    }
    for d in drains {
        d.abort();
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    if pairs.len() < links {
        problems.push(format!("{} of {links} links reported", pairs.len()));
    }
    let ok = problems.is_empty();
    Ok(DemoReport {
        ok,
        peers: p.peers,
        seconds: p.seconds,
        width: p.width,
        height: p.height,
        fps: p.fps,
        encoders,
        cpu_total_pct: cpu,
        cpu_per_peer_pct: cpu / p.peers as f64,
        summary: Summary::of(&pairs),
        problems,
        pairs,
    })
}
