//! Did media flow? The rule behind `hearth-call join`'s and `demo`'s exit code.
//!
//! For each pair, in both directions:
//!
//! - **From them**: every medium the peer announced (camera unless `video_off`, screen while
//!   `screen_sharing`, audio unless `audio_muted`) must have been decoded at
//!   [`MIN_SHARE`] or more of the rate the peer sends it, over the time it was announced while
//!   the link was connected. The rate is measured, not assumed: the median step between the
//!   RTP timestamps of the packets received (each frame has its own timestamp, so this is the
//!   sender's capture rate even when few frames can be decoded, as under a bandwidth cap).
//!   Audio without any packet is expected at 50 frames/s (20 ms Opus frames); video without
//!   packets of two frames has no rate and fails ("nothing received", or the few frames
//!   decoded). Media announced for less than
//!   [`MIN_JUDGED_SECS`] in all is not judged.
//! - **To them**: for each stream we send, the peer's RTCP receiver reports must show it
//!   received [`MIN_SHARE`] or more of the packets we had sent it by that report, it must have
//!   reported at all, and its last report must not be older than [`MAX_REPORT_AGE_MS`] while
//!   we kept sending (a cut link stops the reports). Packets, not frames: that is what the peer
//!   tells us.

use hearth_engine::{CallEvent, EngineEvent, PeerStats, StreamStats, TrackKind};
use hearth_proto::MediaState;
use std::collections::BTreeMap;

/// The share of the expected frames (or packets) that must arrive.
pub const MIN_SHARE: f64 = 0.5;
/// Media announced (while connected) for less than this is not judged.
pub const MIN_JUDGED_SECS: f64 = 2.0;
/// A peer that still receives us reports every second.
pub const MAX_REPORT_AGE_MS: f64 = 3000.0;
/// Opus frames per second, when no audio packet arrived to measure it.
pub const NOMINAL_AUDIO_FPS: f64 = 50.0;
/// Fewer packets than this sent to a peer are too few to judge its reports on.
const MIN_PACKETS_JUDGED: u64 = 20;

/// Intervals (wall-clock µs; open while still announced) during which a peer announced one
/// medium.
type Intervals = Vec<(u64, Option<u64>)>;

/// When each peer announced each of its media, learnt from the engine's events.
#[derive(Debug, Default, Clone)]
pub struct Announcements {
    peers: BTreeMap<String, [Intervals; 3]>,
}

fn index(kind: TrackKind) -> usize {
    match kind {
        TrackKind::Audio => 0,
        TrackKind::Camera => 1,
        TrackKind::Screen => 2,
    }
}

impl Announcements {
    pub fn new() -> Self {
        Self::default()
    }

    /// Follow an engine event seen at `now_us`.
    pub fn observe(&mut self, ev: &EngineEvent, now_us: u64) {
        match ev {
            EngineEvent::Call(CallEvent::Joined { peers, .. }) => {
                for p in peers {
                    self.state(&p.id.0, p.media, now_us);
                }
            }
            EngineEvent::Call(CallEvent::PeerJoined(p)) => self.state(&p.id.0, p.media, now_us),
            EngineEvent::Call(CallEvent::PeerMedia { peer_id, state }) => {
                self.state(&peer_id.0, *state, now_us)
            }
            EngineEvent::Call(CallEvent::PeerLeft { peer_id, .. }) => self.state(
                &peer_id.0,
                MediaState { audio_muted: true, video_off: true, screen_sharing: false },
                now_us,
            ),
            _ => {}
        }
    }

    /// `peer`'s media state is `m` from `now_us` on.
    pub fn state(&mut self, peer: &str, m: MediaState, now_us: u64) {
        let on = [!m.audio_muted, !m.video_off, m.screen_sharing];
        let entry = self.peers.entry(peer.to_owned()).or_default();
        for (intervals, on) in entry.iter_mut().zip(on) {
            let open = intervals.last().is_some_and(|(_, end)| end.is_none());
            match (open, on) {
                (false, true) => intervals.push((now_us, None)),
                (true, false) => {
                    if let Some(last) = intervals.last_mut() {
                        last.1 = Some(now_us);
                    }
                }
                _ => {}
            }
        }
    }

    /// Microseconds during which `peer` announced `kind` between `from_us` and `to_us`.
    pub fn announced_us(&self, peer: &str, kind: TrackKind, from_us: u64, to_us: u64) -> u64 {
        let Some(entry) = self.peers.get(peer) else { return 0 };
        entry[index(kind)]
            .iter()
            .map(|(start, end)| {
                let (a, b) = ((*start).max(from_us), end.unwrap_or(to_us).min(to_us));
                b.saturating_sub(a)
            })
            .sum()
    }
}

fn stream(s: &PeerStats, kind: TrackKind) -> &StreamStats {
    match kind {
        TrackKind::Audio => &s.audio,
        TrackKind::Camera => &s.camera,
        TrackKind::Screen => &s.screen,
    }
}

fn pct(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part * 100.0 / whole } else { 0.0 }
}

/// What went wrong between us and the peer of `s`, judged at `end_us` (empty: media flowed
/// both ways as announced).
pub fn problems(s: &PeerStats, announced: &Announcements, end_us: u64) -> Vec<String> {
    let who = if s.name.is_empty() { s.peer_id.as_str() } else { s.name.as_str() };
    let Some(from_us) = s.connected_at_us.filter(|_| s.connected) else {
        return vec![format!("not connected to {who}")];
    };
    let mut out = Vec::new();
    for kind in [TrackKind::Camera, TrackKind::Screen, TrackKind::Audio] {
        let secs = announced.announced_us(&s.peer_id, kind, from_us, end_us) as f64 / 1e6;
        if secs < MIN_JUDGED_SECS {
            continue;
        }
        let st = stream(s, kind);
        let rate = match (kind, st.sender_fps) {
            (TrackKind::Audio, r) => r.unwrap_or(NOMINAL_AUDIO_FPS).clamp(1.0, 100.0),
            (_, Some(r)) => r.clamp(1.0, 120.0),
            // Fewer than two frames' packets arrived: no rate to measure, and too little anyway.
            (_, None) if st.packets == 0 => {
                out.push(format!("{} from {who}: nothing received in {secs:.1} s announced", kind.id()));
                continue;
            }
            (_, None) => {
                out.push(format!(
                    "{} from {who}: {} frames decoded in {secs:.1} s announced",
                    kind.id(),
                    st.frames_decoded
                ));
                continue;
            }
        };
        let expected = rate * secs;
        let got = st.frames_decoded as f64;
        if got < MIN_SHARE * expected {
            out.push(format!(
                "{} from {who}: {} of {:.0} expected frames ({:.0}%) at {rate:.1} fps over {secs:.1} s",
                kind.id(),
                st.frames_decoded,
                expected,
                pct(got, expected)
            ));
        }
    }
    let connected_secs = end_us.saturating_sub(from_us) as f64 / 1e6;
    for o in &s.outbound {
        let Some(kind) = o.kind else { continue };
        match (o.peer_received_packets, o.report_age_ms) {
            (None, _) => {
                if o.packets_sent >= MIN_PACKETS_JUDGED && connected_secs >= MIN_JUDGED_SECS + 1.0 {
                    out.push(format!(
                        "{} to {who}: no receiver report in {connected_secs:.1} s ({} packets sent)",
                        kind.id(),
                        o.packets_sent
                    ));
                }
            }
            (Some(received), age) => {
                let sent = o.packets_sent_at_report;
                if sent >= MIN_PACKETS_JUDGED && (received as f64) < MIN_SHARE * sent as f64 {
                    out.push(format!(
                        "{} to {who}: they received {received} of {sent} packets sent ({:.0}%)",
                        kind.id(),
                        pct(received as f64, sent as f64)
                    ));
                }
                let since = o.packets_sent.saturating_sub(sent);
                if let Some(age) = age
                    && age > MAX_REPORT_AGE_MS
                    && since >= MIN_PACKETS_JUDGED
                {
                    out.push(format!(
                        "{} to {who}: no receiver report for {:.1} s while we sent {since} more packets",
                        kind.id(),
                        age / 1000.0
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hearth_engine::OutboundStats;

    const S: u64 = 1_000_000;

    fn on() -> MediaState {
        MediaState::default()
    }

    fn stats(camera: u64, audio: u64) -> PeerStats {
        let mut s = blank();
        s.name = "bob".into();
        s.peer_id = "p-bob".into();
        s.connected = true;
        s.connected_at_us = Some(100 * S);
        s.camera.frames_decoded = camera;
        s.camera.sender_fps = Some(30.0);
        s.audio.frames_decoded = audio;
        s.audio.sender_fps = Some(50.0);
        s
    }

    fn blank() -> PeerStats {
        PeerStats {
            peer_id: String::new(),
            name: String::new(),
            connected: false,
            connect_ms: None,
            connected_at_us: None,
            rtt_ms: None,
            jitter_ms: None,
            loss_pct: None,
            quality: "good",
            sent_kbps: 0.0,
            received_kbps: 0.0,
            sent_kbps_avg: 0.0,
            received_kbps_avg: 0.0,
            peer_received_packets: 0,
            outbound: Vec::new(),
            lip_sync_skew: Default::default(),
            lip_sync_skew_p50_ms: None,
            audio: Default::default(),
            camera: Default::default(),
            screen: Default::default(),
        }
    }

    fn announced(m: MediaState) -> Announcements {
        let mut a = Announcements::new();
        a.state("p-bob", m, 0);
        a
    }

    #[test]
    fn media_that_flowed_most_of_the_window_passes() {
        // 10 s connected: 300 camera frames and 500 audio frames expected.
        let s = stats(280, 490);
        assert_eq!(problems(&s, &announced(on()), 110 * S), Vec::<String>::new());
    }

    #[test]
    fn a_camera_that_delivered_a_tenth_fails_with_the_reason() {
        let s = stats(31, 500);
        assert_eq!(
            problems(&s, &announced(on()), 110 * S),
            ["camera from bob: 31 of 300 expected frames (10%) at 30.0 fps over 10.0 s"]
        );
    }

    #[test]
    fn only_announced_media_is_expected_and_only_while_announced() {
        // Camera off: no video expected; muted half the window: half the audio.
        let mut a = announced(MediaState { video_off: true, ..on() });
        a.state("p-bob", MediaState { video_off: true, audio_muted: true, ..on() }, 105 * S);
        let s = stats(0, 240);
        assert_eq!(problems(&s, &a, 110 * S), Vec::<String>::new());
        // Screen shared for the last 4 s, nothing arrived.
        a.state("p-bob", MediaState { video_off: true, audio_muted: true, screen_sharing: true }, 106 * S);
        assert_eq!(problems(&s, &a, 110 * S), ["screen from bob: nothing received in 4.0 s announced"]);
        // Announced for less than MIN_JUDGED_SECS: not judged.
        assert_eq!(problems(&s, &a, 107 * S), Vec::<String>::new());
        // One frame's packets: no rate to judge against, and that is a failure too.
        let mut one = s.clone();
        (one.screen.packets, one.screen.frames_decoded) = (3, 1);
        assert_eq!(problems(&one, &a, 110 * S), ["screen from bob: 1 frames decoded in 4.0 s announced"]);
    }

    #[test]
    fn what_they_receive_of_ours_counts_too() {
        let mut s = stats(300, 500);
        s.outbound = vec![
            OutboundStats {
                kind: Some(TrackKind::Camera),
                packets_sent: 1000,
                peer_received_packets: Some(100),
                packets_sent_at_report: 900,
                report_age_ms: Some(500.0),
            },
            OutboundStats {
                kind: Some(TrackKind::Audio),
                packets_sent: 500,
                peer_received_packets: Some(150),
                packets_sent_at_report: 150,
                report_age_ms: Some(7000.0),
            },
        ];
        assert_eq!(
            problems(&s, &announced(on()), 110 * S),
            [
                "camera to bob: they received 100 of 900 packets sent (11%)",
                "audio to bob: no receiver report for 7.0 s while we sent 350 more packets"
            ]
        );
        s.outbound.truncate(1);
        s.outbound[0].peer_received_packets = None;
        assert_eq!(
            problems(&s, &announced(on()), 110 * S),
            ["camera to bob: no receiver report in 10.0 s (1000 packets sent)"]
        );
    }

    #[test]
    fn an_unconnected_peer_is_a_problem() {
        let mut s = stats(0, 0);
        s.connected = false;
        assert_eq!(problems(&s, &announced(on()), 110 * S), ["not connected to bob"]);
    }
}
