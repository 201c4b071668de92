//! The reports `hearth-call` prints (human table or JSON). Field names are documented in the
//! README ("hearth-call JSON report").

use hearth_engine::{Latency, PeerStats};
use serde::Serialize;

/// What one participant received from one other participant.
#[derive(Debug, Clone, Serialize)]
pub struct PairReport {
    pub receiver: String,
    pub sender: String,
    pub connected: bool,
    pub connect_ms: Option<f64>,
    /// From the later of the two joins to the first decoded video frame.
    pub join_to_first_frame_ms: Option<f64>,
    pub video_frames_decoded: u64,
    pub video_frames_lost: u64,
    pub video_frames_out_of_order: u64,
    pub video_latency_ms: Latency,
    pub video_width: u32,
    pub video_height: u32,
    pub video_fps: f64,
    pub audio_frames_decoded: u64,
    pub audio_markers: u64,
    pub audio_markers_lost: u64,
    pub audio_markers_out_of_order: u64,
    pub audio_latency_ms: Latency,
    pub screen_frames_decoded: u64,
    pub packets_lost: u64,
    pub received_kbps: f64,
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss_pct: Option<f64>,
    pub quality: String,
    /// Packets of the receiver's own streams that the sender reports having received.
    pub sender_received_packets: u64,
}

impl PairReport {
    pub fn new(
        receiver: &str,
        receiver_join_us: u64,
        sender_join_us: Option<u64>,
        s: &PeerStats,
    ) -> PairReport {
        let start = sender_join_us.map_or(receiver_join_us, |j| j.max(receiver_join_us));
        PairReport {
            receiver: receiver.to_owned(),
            sender: if s.name.is_empty() { s.peer_id.clone() } else { s.name.clone() },
            connected: s.connected,
            connect_ms: s.connect_ms,
            join_to_first_frame_ms: s
                .camera
                .first_decoded_us
                .map(|t| t.saturating_sub(start) as f64 / 1000.0),
            video_frames_decoded: s.camera.frames_decoded,
            video_frames_lost: s.camera.frames_lost,
            video_frames_out_of_order: s.camera.frames_out_of_order,
            video_latency_ms: s.camera.latency,
            video_width: s.camera.width,
            video_height: s.camera.height,
            video_fps: s.camera.fps,
            audio_frames_decoded: s.audio.frames_decoded,
            audio_markers: s.audio.markers,
            audio_markers_lost: s.audio.frames_lost,
            audio_markers_out_of_order: s.audio.frames_out_of_order,
            audio_latency_ms: s.audio.latency,
            screen_frames_decoded: s.screen.frames_decoded,
            packets_lost: s.audio.packets_lost + s.camera.packets_lost + s.screen.packets_lost,
            received_kbps: s.received_kbps,
            rtt_ms: s.rtt_ms,
            jitter_ms: s.jitter_ms,
            loss_pct: s.loss_pct,
            quality: s.quality.to_owned(),
            sender_received_packets: s.peer_received_packets,
        }
    }

    /// Media flowed from sender to receiver (what was expected of it) and back.
    pub fn flowed(&self, expect_video: bool, expect_audio: bool) -> bool {
        self.connected
            && (!expect_video || self.video_frames_decoded > 0)
            && (!expect_audio || self.audio_frames_decoded > 0)
            && self.sender_received_packets > 0
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Medians over pairs, for a one-line comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub video_latency_p50_ms: Option<f64>,
    pub video_latency_p95_ms: Option<f64>,
    pub audio_latency_p50_ms: Option<f64>,
    pub audio_latency_p95_ms: Option<f64>,
    pub join_to_first_frame_p50_ms: Option<f64>,
    pub connect_p50_ms: Option<f64>,
    pub video_frames_lost: u64,
    pub audio_markers_lost: u64,
}

impl Summary {
    pub fn of(pairs: &[PairReport]) -> Summary {
        let collect =
            |f: &dyn Fn(&PairReport) -> Option<f64>| -> Vec<f64> { pairs.iter().filter_map(f).collect() };
        Summary {
            video_latency_p50_ms: median(&mut collect(&|p| {
                (p.video_latency_ms.samples > 0).then_some(p.video_latency_ms.p50_ms)
            })),
            video_latency_p95_ms: median(&mut collect(&|p| {
                (p.video_latency_ms.samples > 0).then_some(p.video_latency_ms.p95_ms)
            })),
            audio_latency_p50_ms: median(&mut collect(&|p| {
                (p.audio_latency_ms.samples > 0).then_some(p.audio_latency_ms.p50_ms)
            })),
            audio_latency_p95_ms: median(&mut collect(&|p| {
                (p.audio_latency_ms.samples > 0).then_some(p.audio_latency_ms.p95_ms)
            })),
            join_to_first_frame_p50_ms: median(&mut collect(&|p| p.join_to_first_frame_ms)),
            connect_p50_ms: median(&mut collect(&|p| p.connect_ms)),
            video_frames_lost: pairs.iter().map(|p| p.video_frames_lost).sum(),
            audio_markers_lost: pairs.iter().map(|p| p.audio_markers_lost).sum(),
        }
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
}

/// A human-readable table of pairs.
pub fn print_pairs(pairs: &[PairReport]) {
    println!(
        "{:<12} {:<12} {:>5} {:>8} {:>9} {:>7} {:>5} {:>13} {:>7} {:>13} {:>8} {:>6} {:>7}",
        "receiver",
        "from",
        "conn",
        "conn ms",
        "1st frame",
        "video",
        "lost",
        "v lat p50/95",
        "audio",
        "a lat p50/95",
        "kbit/s",
        "rtt",
        "quality"
    );
    for p in pairs {
        println!(
            "{:<12} {:<12} {:>5} {:>8} {:>9} {:>7} {:>5} {:>13} {:>7} {:>13} {:>8.0} {:>6} {:>7}",
            p.receiver,
            p.sender,
            if p.connected { "yes" } else { "NO" },
            opt(p.connect_ms),
            opt(p.join_to_first_frame_ms),
            p.video_frames_decoded,
            p.video_frames_lost,
            format!("{:.1}/{:.1}", p.video_latency_ms.p50_ms, p.video_latency_ms.p95_ms),
            p.audio_frames_decoded,
            format!("{:.1}/{:.1}", p.audio_latency_ms.p50_ms, p.audio_latency_ms.p95_ms),
            p.received_kbps,
            opt(p.rtt_ms),
            p.quality
        );
    }
}
