//! "Save diagnostics": one readable JSON file for a bug report. What goes in: versions, OS,
//! devices, the call's state, each link's candidate types and fingerprints, a stats timeline
//! per peer, and events and errors with times. What never goes in: passwords, tokens, TURN
//! credentials, chat text (the engine's stats hold none of them; server URLs lose their query
//! and user info; events are written by us, not copied from messages).

use crate::api::Devices;
use crate::app::App;
use hearth_engine::PeerStats;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};

const EVENTS_KEEP: usize = 2000;
const STATS_KEEP: usize = 300;

#[derive(Debug, Default)]
pub struct DiagLog {
    events: VecDeque<Value>,
    stats: HashMap<String, VecDeque<Value>>,
}

impl DiagLog {
    pub fn event(&mut self, kind: &str, detail: impl Into<String>) {
        if self.events.len() >= EVENTS_KEEP {
            self.events.pop_front();
        }
        self.events.push_back(json!({
            "t_ms": hearth_media::now_us() / 1000,
            "kind": kind,
            "detail": detail.into(),
        }));
    }

    pub fn stats(&mut self, stats: &[PeerStats]) {
        let t = hearth_media::now_us() / 1000;
        for s in stats {
            let line = self.stats.entry(s.peer_id.clone()).or_default();
            if line.len() >= STATS_KEEP {
                line.pop_front();
            }
            line.push_back(json!({
                "t_ms": t, "connected": s.connected, "rtt_ms": s.rtt_ms, "jitter_ms": s.jitter_ms,
                "loss_pct": s.loss_pct, "quality": s.quality, "sent_kbps": s.sent_kbps,
                "received_kbps": s.received_kbps,
                "camera": {"fps": s.camera.fps, "width": s.camera.width, "height": s.camera.height,
                           "frames_decoded": s.camera.frames_decoded, "frames_lost": s.camera.frames_lost,
                           "latency_p50_ms": s.camera.latency.p50_ms},
                "audio": {"packets": s.audio.packets, "packets_lost": s.audio.packets_lost},
                "screen": {"fps": s.screen.fps, "frames_decoded": s.screen.frames_decoded},
            }));
        }
        if self.stats.len() > 64 {
            let keep: std::collections::HashSet<_> = stats.iter().map(|s| s.peer_id.clone()).collect();
            self.stats.retain(|k, _| keep.contains(k));
        }
    }

    /// A new call starts a new timeline (events of the app's life are kept).
    pub fn clear_call(&mut self) {
        self.stats.clear();
    }
}

pub fn build(app: &App, stats: Option<Vec<PeerStats>>, devices: &Devices, log: &DiagLog) -> Value {
    let info = app.info();
    let links: Vec<Value> = stats
        .unwrap_or_default()
        .iter()
        .map(|s| {
            json!({
                "peer_id": s.peer_id, "name": s.name, "connected": s.connected, "connect_ms": s.connect_ms,
                "local_candidate": s.local_candidate, "remote_candidate": s.remote_candidate,
                "candidate_protocol": s.candidate_protocol, "relay_transport": s.relay_transport,
                "local_fingerprint": s.local_fingerprint, "remote_fingerprint": s.remote_fingerprint,
                "rtt_ms": s.rtt_ms, "loss_pct": s.loss_pct, "quality": s.quality,
            })
        })
        .collect();
    json!({
        "hearth_diagnostics": 1,
        "saved_at_ms": hearth_media::now_us() / 1000,
        "app": { "version": info.version, "protocol": info.protocol },
        "os": { "os": std::env::consts::OS, "arch": std::env::consts::ARCH, "family": std::env::consts::FAMILY },
        "devices": devices,
        "call": app.diag_snapshot(),
        "links": links,
        "stats_timeline": log.stats,
        "events": log.events,
    })
}
