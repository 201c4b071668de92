//! The reports `hearth-call` prints (human table or JSON). Field names are documented in the
//! README ("hearth-call JSON report").

use hearth_engine::{Latency, OutboundStats, PeerStats};
use serde::Serialize;
use std::collections::BTreeMap;

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
    /// The longest pause between two decoded frames, or since the last one (an outage, a
    /// network change).
    pub video_longest_gap_ms: Option<f64>,
    /// The latest freezes (gaps > 200 ms between decoded frames; up to 64), oldest first:
    /// `[ended at, ms since the receiver's join; length, ms]`.
    pub video_freezes: Vec<[f64; 2]>,
    /// When the first frame from this sender was decoded, ms since the Unix epoch.
    pub video_first_frame_unix_ms: Option<u64>,
    pub video_latency_ms: Latency,
    pub video_width: u32,
    pub video_height: u32,
    /// Frames decoded in the last second.
    pub video_fps: f64,
    /// Frames decoded per second since the first one (the achieved rate over the call).
    pub video_fps_avg: f64,
    /// The sender's capture rate, from the RTP timestamps of the packets received.
    pub video_sender_fps: Option<f64>,
    /// PSNR (Y) of decoded frames against the regenerated synthetic source, mean and worst
    /// (every 10th frame; `None` if the sender is not synthetic).
    pub video_psnr_db: Option<f64>,
    pub video_psnr_min_db: Option<f64>,
    pub audio_frames_decoded: u64,
    pub audio_markers: u64,
    pub audio_markers_lost: u64,
    pub audio_markers_out_of_order: u64,
    /// Audio frames rebuilt from FEC or concealed for lost packets (counted in
    /// `audio_frames_decoded`).
    pub audio_concealed_frames: u64,
    /// 20 ms frames of silence this sender did not send (Opus DTX); not lost.
    pub audio_dtx_frames: u64,
    /// 20 ms frames of comfort noise played in this sender's DTX silences (not counted in
    /// `audio_frames_decoded`).
    pub audio_comfort_noise_frames: u64,
    /// Video repair asked of this sender: keyframes (PLI) and packets (NACK, each repeat counts).
    pub video_keyframe_requests: u64,
    pub video_nacks_sent: u64,
    /// Times this sender's playout queue ran dry while playing (gaps in its sound).
    pub audio_underruns: u64,
    /// How long complete video frames were held before decoding at the end (the playout delay
    /// that rides out retransmissions, ms; 0 on a clean path).
    pub video_playout_delay_ms: f64,
    /// Burst captured → heard: out of the playout buffer (mixer) to the speaker or the virtual
    /// speaker.
    pub audio_latency_ms: Latency,
    /// Burst captured → available decoded (before the playout buffer).
    pub audio_decode_latency_ms: Latency,
    /// |video shown − its audio heard|, measured at the outputs (stamped capture times of
    /// shown frames against tone bursts at playout).
    pub lip_sync_skew_ms: Latency,
    /// Median signed skew: + video shown later than its audio is heard.
    pub lip_sync_video_late_ms: Option<f64>,
    pub screen_frames_decoded: u64,
    pub packets_lost: u64,
    /// Average over the call (since the link connected).
    pub received_kbps: f64,
    pub rtt_ms: Option<f64>,
    pub jitter_ms: Option<f64>,
    pub loss_pct: Option<f64>,
    pub quality: String,
    /// Packets of the receiver's own streams that the sender reports having received.
    pub sender_received_packets: u64,
    /// Per stream of the receiver's: packets sent to the sender and what it reports receiving.
    pub outbound: Vec<OutboundStats>,
    /// The selected ICE pair as the receiver sees it: its own candidate's type ("host",
    /// "srflx", "prflx", "relay"), the sender's, and the pair's transport ("udp").
    pub local_candidate: Option<String>,
    pub remote_candidate: Option<String>,
    pub candidate_protocol: Option<String>,
    /// When the receiver's candidate is a relay: how it reaches the TURN server ("udp",
    /// "tcp" or "tls").
    pub relay_transport: Option<String>,
    /// Why media did not flow as announced between the two (see `flow`); empty when it did.
    pub problems: Vec<String>,
    /// What was not checked or not failed, and why (e.g. the sender muted; see `flow`).
    pub notes: Vec<String>,
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
            video_longest_gap_ms: s.camera.longest_gap_ms,
            video_freezes: s
                .camera
                .recent_freezes
                .iter()
                .map(|f| [f.ended_us.saturating_sub(receiver_join_us) as f64 / 1000.0, f.ms])
                .collect(),
            video_first_frame_unix_ms: s.camera.first_decoded_us.map(|us| us / 1000),
            video_latency_ms: s.camera.latency,
            video_width: s.camera.width,
            video_height: s.camera.height,
            video_fps: s.camera.fps,
            video_fps_avg: s.camera.fps_avg,
            video_sender_fps: s.camera.sender_fps,
            video_psnr_db: s.camera.psnr_db,
            video_psnr_min_db: s.camera.psnr_min_db,
            audio_frames_decoded: s.audio.frames_decoded,
            audio_markers: s.audio.markers,
            audio_markers_lost: s.audio.frames_lost,
            audio_markers_out_of_order: s.audio.frames_out_of_order,
            audio_concealed_frames: s.audio.concealed_frames,
            audio_dtx_frames: s.audio.dtx_frames,
            audio_comfort_noise_frames: s.audio.comfort_noise_frames,
            video_keyframe_requests: s.camera.keyframe_requests,
            video_nacks_sent: s.camera.nacks_sent,
            audio_underruns: s.audio.underruns,
            video_playout_delay_ms: s.camera.playout_delay_ms,
            audio_latency_ms: s.audio.playout_latency,
            audio_decode_latency_ms: s.audio.latency,
            lip_sync_skew_ms: s.lip_sync_skew,
            lip_sync_video_late_ms: s.lip_sync_skew_p50_ms,
            screen_frames_decoded: s.screen.frames_decoded,
            packets_lost: s.audio.packets_lost + s.camera.packets_lost + s.screen.packets_lost,
            received_kbps: s.received_kbps_avg,
            rtt_ms: s.rtt_ms,
            jitter_ms: s.jitter_ms,
            loss_pct: s.loss_pct,
            quality: s.quality.to_owned(),
            sender_received_packets: s.peer_received_packets,
            outbound: s.outbound.clone(),
            local_candidate: s.local_candidate.clone(),
            remote_candidate: s.remote_candidate.clone(),
            candidate_protocol: s.candidate_protocol.clone(),
            relay_transport: s.relay_transport.clone(),
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// "receiver <- sender".
    pub fn label(&self) -> String {
        format!("{} <- {}", self.receiver, self.sender)
    }
}

fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// The pair with the worst value of a figure.
#[derive(Debug, Clone, Serialize)]
pub struct Worst {
    pub value: f64,
    /// "receiver <- sender".
    pub pair: String,
}

/// Medians over pairs, for a one-line comparison, and the worst pair of each figure.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub video_latency_p50_ms: Option<f64>,
    pub video_latency_p95_ms: Option<f64>,
    pub audio_latency_p50_ms: Option<f64>,
    pub audio_latency_p95_ms: Option<f64>,
    pub audio_decode_latency_p50_ms: Option<f64>,
    pub audio_decode_latency_p95_ms: Option<f64>,
    pub lip_sync_skew_p50_ms: Option<f64>,
    pub lip_sync_skew_p95_ms: Option<f64>,
    pub join_to_first_frame_p50_ms: Option<f64>,
    pub connect_p50_ms: Option<f64>,
    pub video_fps_avg: Option<f64>,
    pub video_psnr_db: Option<f64>,
    pub received_kbps: Option<f64>,
    pub video_frames_lost: u64,
    pub audio_markers_lost: u64,
    /// For each figure above (by its name), the pair where it is worst: the highest latency,
    /// skew, join or connect time; the lowest frame rate, PSNR or bitrate.
    pub worst: BTreeMap<&'static str, Worst>,
}

type Pick = fn(&PairReport) -> Option<f64>;

fn lat(l: &Latency, p95: bool) -> Option<f64> {
    (l.samples > 0).then_some(if p95 { l.p95_ms } else { l.p50_ms })
}

/// Every summary figure: name, how to read it from a pair, and whether higher is worse.
const FIGURES: [(&str, Pick, bool); 13] = [
    ("video_latency_p50_ms", |p| lat(&p.video_latency_ms, false), true),
    ("video_latency_p95_ms", |p| lat(&p.video_latency_ms, true), true),
    ("audio_latency_p50_ms", |p| lat(&p.audio_latency_ms, false), true),
    ("audio_latency_p95_ms", |p| lat(&p.audio_latency_ms, true), true),
    ("audio_decode_latency_p50_ms", |p| lat(&p.audio_decode_latency_ms, false), true),
    ("audio_decode_latency_p95_ms", |p| lat(&p.audio_decode_latency_ms, true), true),
    ("lip_sync_skew_p50_ms", |p| lat(&p.lip_sync_skew_ms, false), true),
    ("lip_sync_skew_p95_ms", |p| lat(&p.lip_sync_skew_ms, true), true),
    ("join_to_first_frame_p50_ms", |p| p.join_to_first_frame_ms, true),
    ("connect_p50_ms", |p| p.connect_ms, true),
    ("video_fps_avg", |p| (p.video_frames_decoded > 0).then_some(p.video_fps_avg), false),
    ("video_psnr_db", |p| p.video_psnr_db, false),
    ("received_kbps", |p| Some(p.received_kbps), false),
];

impl Summary {
    pub fn of(pairs: &[PairReport]) -> Summary {
        let mut medians = BTreeMap::new();
        let mut worst = BTreeMap::new();
        for (name, pick, higher_is_worse) in FIGURES {
            let values: Vec<(f64, &PairReport)> = pairs.iter().filter_map(|p| Some((pick(p)?, p))).collect();
            medians.insert(name, median(&mut values.iter().map(|(v, _)| *v).collect::<Vec<_>>()));
            let w = if higher_is_worse {
                values.iter().max_by(|a, b| a.0.total_cmp(&b.0))
            } else {
                values.iter().min_by(|a, b| a.0.total_cmp(&b.0))
            };
            if let Some((value, p)) = w {
                worst.insert(name, Worst { value: *value, pair: p.label() });
            }
        }
        let m = |name: &str| medians.get(name).copied().flatten();
        Summary {
            video_latency_p50_ms: m("video_latency_p50_ms"),
            video_latency_p95_ms: m("video_latency_p95_ms"),
            audio_latency_p50_ms: m("audio_latency_p50_ms"),
            audio_latency_p95_ms: m("audio_latency_p95_ms"),
            audio_decode_latency_p50_ms: m("audio_decode_latency_p50_ms"),
            audio_decode_latency_p95_ms: m("audio_decode_latency_p95_ms"),
            lip_sync_skew_p50_ms: m("lip_sync_skew_p50_ms"),
            lip_sync_skew_p95_ms: m("lip_sync_skew_p95_ms"),
            join_to_first_frame_p50_ms: m("join_to_first_frame_p50_ms"),
            connect_p50_ms: m("connect_p50_ms"),
            video_fps_avg: m("video_fps_avg"),
            video_psnr_db: m("video_psnr_db"),
            received_kbps: m("received_kbps"),
            video_frames_lost: pairs.iter().map(|p| p.video_frames_lost).sum(),
            audio_markers_lost: pairs.iter().map(|p| p.audio_markers_lost).sum(),
            worst,
        }
    }

    /// The figures as (name, median, worst) in a fixed order, for printing.
    pub fn rows(&self) -> Vec<(&'static str, Option<f64>, Option<&Worst>)> {
        let medians = [
            self.video_latency_p50_ms,
            self.video_latency_p95_ms,
            self.audio_latency_p50_ms,
            self.audio_latency_p95_ms,
            self.audio_decode_latency_p50_ms,
            self.audio_decode_latency_p95_ms,
            self.lip_sync_skew_p50_ms,
            self.lip_sync_skew_p95_ms,
            self.join_to_first_frame_p50_ms,
            self.connect_p50_ms,
            self.video_fps_avg,
            self.video_psnr_db,
            self.received_kbps,
        ];
        FIGURES.iter().zip(medians).map(|((name, _, _), m)| (*name, m, self.worst.get(name))).collect()
    }
}

/// Print the summary as a table: figure, median over pairs, worst pair.
pub fn print_summary(s: &Summary) {
    println!("{:<28} {:>9} {:>9}  worst pair", "figure", "median", "worst");
    for (name, median, worst) in s.rows() {
        println!(
            "{name:<28} {:>9} {:>9}  {}",
            opt(median),
            opt(worst.map(|w| w.value)),
            worst.map_or("-", |w| w.pair.as_str())
        );
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |x| format!("{x:.1}"))
}

/// A human-readable table of pairs.
pub fn print_pairs(pairs: &[PairReport]) {
    println!(
        "{:<12} {:<12} {:>5} {:>8} {:>9} {:>7} {:>5} {:>5} {:>5} {:>13} {:>7} {:>13} {:>10} {:>8} {:>6} {:>7}",
        "receiver",
        "from",
        "conn",
        "conn ms",
        "1st frame",
        "video",
        "lost",
        "fps",
        "psnr",
        "v lat p50/95",
        "audio",
        "a lat p50/95",
        "sync p50/95",
        "kbit/s",
        "rtt",
        "quality"
    );
    for p in pairs {
        println!(
            "{:<12} {:<12} {:>5} {:>8} {:>9} {:>7} {:>5} {:>5.1} {:>5} {:>13} {:>7} {:>13} {:>10} {:>8.0} {:>6} {:>7}",
            p.receiver,
            p.sender,
            if p.connected { "yes" } else { "NO" },
            opt(p.connect_ms),
            opt(p.join_to_first_frame_ms),
            p.video_frames_decoded,
            p.video_frames_lost,
            p.video_fps_avg,
            opt(p.video_psnr_db),
            format!("{:.1}/{:.1}", p.video_latency_ms.p50_ms, p.video_latency_ms.p95_ms),
            p.audio_frames_decoded,
            format!("{:.1}/{:.1}", p.audio_latency_ms.p50_ms, p.audio_latency_ms.p95_ms),
            format!("{:.1}/{:.1}", p.lip_sync_skew_ms.p50_ms, p.lip_sync_skew_ms.p95_ms),
            p.received_kbps,
            opt(p.rtt_ms),
            p.quality
        );
    }
}
