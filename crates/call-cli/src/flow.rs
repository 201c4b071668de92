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
//!   Audio without any packet is expected at 50 frames/s (20 ms Opus frames), and frames the
//!   sender skipped in silence (DTX: a timestamp jump with no sequence gap) count as arrived;
//!   audio's rate is the packet duration (the 10th percentile of the steps); video without
//!   packets of two frames has no rate and fails ("nothing received", or the few frames
//!   decoded). Media announced for less than
//!   [`MIN_JUDGED_SECS`] in all is not judged. A medium switched on during the call (unmute,
//!   camera on, screen share) is judged from [`SWITCH_ON_GRACE_US`] after the announcement:
//!   the sender announces at once but needs a moment to open the device or add the track.
//!   A medium whose **last announced** state is off (muted, camera off, not sharing) is not
//!   failed: a shortfall while it was on becomes a note (see [`Verdict::notes`]), so a peer
//!   that mutes or turns its camera off passes, and the report says what was not checked.
//! - **To them**: for each stream we send, the peer's RTCP receiver reports must show it
//!   received [`MIN_SHARE`] or more of the packets we had sent it by that report, it must have
//!   reported at all, and its last report must not be older than [`MAX_REPORT_AGE_MS`] while
//!   we kept sending (a cut link stops the reports). Packets, not frames: that is what the peer
//!   tells us. A stream we stopped sending ourselves (our own last state, see
//!   [`Announcements::set_local`]: muted, camera off, screen share stopped) is judged only on
//!   the share received: its reports may stop with it.

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
/// A medium switched on during the call is judged from this long after the announcement.
pub const SWITCH_ON_GRACE_US: u64 = 1_000_000;

/// Intervals (wall-clock µs; open while still announced) during which a peer announced one
/// medium.
type Intervals = Vec<(u64, Option<u64>)>;

/// When each peer announced each of its media, learnt from the engine's events.
#[derive(Debug, Default, Clone)]
pub struct Announcements {
    peers: BTreeMap<String, [Intervals; 3]>,
    /// Each peer's last announced state (a peer leaving does not change it).
    last: BTreeMap<String, MediaState>,
    /// Our own state at the end, when known: the streams we stopped sending.
    local: Option<MediaState>,
}

/// What was found between us and one peer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Why media did not flow as announced (the call fails).
    pub problems: Vec<String>,
    /// What was not checked, or not failed, and why (e.g. the peer muted).
    pub notes: Vec<String>,
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
            EngineEvent::Call(CallEvent::PeerLeft { peer_id, .. }) => self.intervals(
                &peer_id.0,
                MediaState { audio_muted: true, video_off: true, screen_sharing: false },
                now_us,
            ),
            _ => {}
        }
    }

    /// `peer` announced media state `m` at `now_us`.
    pub fn state(&mut self, peer: &str, m: MediaState, now_us: u64) {
        self.last.insert(peer.to_owned(), m);
        self.intervals(peer, m, now_us);
    }

    /// Our own media state at the end of the call: streams we stopped sending are not expected
    /// to keep being reported on.
    pub fn set_local(&mut self, m: MediaState) {
        self.local = Some(m);
    }

    /// `peer`'s last announced state, if it announced any.
    pub fn last_state(&self, peer: &str) -> Option<MediaState> {
        self.last.get(peer).copied()
    }

    fn intervals(&mut self, peer: &str, m: MediaState, now_us: u64) {
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

    /// Like [`Announcements::announced_us`], but an interval that began after `from_us` (the
    /// medium was switched on during the call) counts from [`SWITCH_ON_GRACE_US`] later.
    pub fn judged_us(&self, peer: &str, kind: TrackKind, from_us: u64, to_us: u64) -> u64 {
        let Some(entry) = self.peers.get(peer) else { return 0 };
        entry[index(kind)]
            .iter()
            .map(|(start, end)| {
                let start = if *start > from_us { start.saturating_add(SWITCH_ON_GRACE_US) } else { from_us };
                let end = end.unwrap_or(to_us).min(to_us);
                end.saturating_sub(start)
            })
            .sum()
    }
}

fn is_on(m: MediaState, kind: TrackKind) -> bool {
    match kind {
        TrackKind::Audio => !m.audio_muted,
        TrackKind::Camera => !m.video_off,
        TrackKind::Screen => m.screen_sharing,
    }
}

/// How a medium that is off is said: "muted", "camera off", "not sharing its screen".
fn off_words(kind: TrackKind) -> &'static str {
    match kind {
        TrackKind::Audio => "muted",
        TrackKind::Camera => "camera off",
        TrackKind::Screen => "screen share stopped",
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
    judge(s, announced, end_us).problems
}

/// A medium of theirs that did not arrive as announced: why, if it fell short.
fn shortfall(st: &StreamStats, kind: TrackKind, secs: f64) -> Option<String> {
    let rate = match (kind, st.sender_fps) {
        (TrackKind::Audio, r) => r.unwrap_or(NOMINAL_AUDIO_FPS).clamp(1.0, 100.0),
        (_, Some(r)) => r.clamp(1.0, 120.0),
        // Fewer than two frames' packets arrived: no rate to measure, and too little anyway.
        (_, None) if st.packets == 0 => return Some(format!("nothing received in {secs:.1} s announced")),
        (_, None) => return Some(format!("{} frames decoded in {secs:.1} s announced", st.frames_decoded)),
    };
    let expected = rate * secs;
    // Audio the sender did not send because it was silent (DTX) arrived as far as this rule goes.
    let got = (st.frames_decoded + if kind == TrackKind::Audio { st.dtx_frames } else { 0 }) as f64;
    (got < MIN_SHARE * expected).then(|| {
        format!(
            "{} of {:.0} expected frames ({:.0}%) at {rate:.1} fps over {secs:.1} s",
            st.frames_decoded,
            expected,
            pct(got, expected)
        )
    })
}

/// What went wrong between us and the peer of `s`, judged at `end_us`, and what was not
/// checked (see the module's rule).
pub fn judge(s: &PeerStats, announced: &Announcements, end_us: u64) -> Verdict {
    judge_until(s, announced, end_us, end_us)
}

/// As [`judge`], for stats taken at `taken_us` but judged only up to an earlier `end_us` (a peer
/// that left while its link was down is judged up to when the link went quiet): the age of
/// its last receiver report is counted at `end_us`, not at the later snapshot, or the outage
/// after `end_us` would count as reports missing.
pub fn judge_until(s: &PeerStats, announced: &Announcements, end_us: u64, taken_us: u64) -> Verdict {
    let later_ms = taken_us.saturating_sub(end_us) as f64 / 1000.0;
    let who = if s.name.is_empty() { s.peer_id.as_str() } else { s.name.as_str() };
    let Some(from_us) = s.connected_at_us.filter(|_| s.connected) else {
        return Verdict { problems: vec![format!("not connected to {who}")], notes: Vec::new() };
    };
    let mut out = Vec::new();
    let mut notes = Vec::new();
    let last = announced.last_state(&s.peer_id);
    for kind in [TrackKind::Camera, TrackKind::Screen, TrackKind::Audio] {
        let secs = announced.judged_us(&s.peer_id, kind, from_us, end_us) as f64 / 1e6;
        let off_at_end = last.is_some_and(|m| !is_on(m, kind));
        let ever_on = announced.announced_us(&s.peer_id, kind, from_us, end_us) > 0;
        let judged = secs >= MIN_JUDGED_SECS;
        let short = if judged { shortfall(stream(s, kind), kind, secs) } else { None };
        let k = kind.id();
        let off = off_words(kind);
        match (off_at_end, short) {
            (false, Some(why)) => out.push(format!("{k} from {who}: {why}")),
            (false, None) => {}
            (true, Some(why)) => notes.push(format!("{k} from {who}: {off} at the end, so not failed: {why}")),
            // Never on: nothing to say about a screen never shared.
            (true, None) if !ever_on && kind == TrackKind::Screen => {}
            (true, None) if !ever_on => notes.push(format!("{k} from {who}: not checked ({off})")),
            (true, None) if !judged => notes.push(format!(
                "{k} from {who}: not checked ({off} at the end; on for {secs:.1} s, less than {MIN_JUDGED_SECS} s)"
            )),
            (true, None) => notes.push(format!("{k} from {who}: {off} at the end; flowed while on ({secs:.1} s)")),
        }
    }
    let connected_secs = end_us.saturating_sub(from_us) as f64 / 1e6;
    for o in &s.outbound {
        let Some(kind) = o.kind else { continue };
        // A stream we stopped sending ourselves: its receiver reports may stop with it.
        let stopped = announced.local.is_some_and(|m| !is_on(m, kind));
        match (o.peer_received_packets, o.report_age_ms) {
            (None, _) => {
                if !stopped && o.packets_sent >= MIN_PACKETS_JUDGED && connected_secs >= MIN_JUDGED_SECS + 1.0
                {
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
                if let Some(age) = age.map(|a| a - later_ms)
                    && !stopped
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
    Verdict { problems: out, notes }
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
            send_estimate_kbps: None,
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
            local_fingerprint: None,
            remote_fingerprint: None,
            local_candidate: None,
            remote_candidate: None,
            candidate_protocol: None,
            relay_transport: None,
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
    fn silence_the_sender_skipped_counts_as_arrived_audio() {
        // 10 s: 2 s of speech (100 frames), 8 s of silence sent as one packet per 400 ms
        // (20 packets) with 380 frames skipped (DTX).
        let mut s = stats(300, 120);
        s.audio.dtx_frames = 380;
        assert_eq!(problems(&s, &announced(on()), 110 * S), Vec::<String>::new());
        // The same packets without the skipped frames (a link that stopped) fail.
        s.audio.dtx_frames = 0;
        assert_eq!(problems(&s, &announced(on()), 110 * S).len(), 1);
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
        // Screen shared for the last 4 s (judged from 1 s after it was announced), nothing
        // arrived.
        a.state("p-bob", MediaState { video_off: true, audio_muted: true, screen_sharing: true }, 106 * S);
        assert_eq!(problems(&s, &a, 110 * S), ["screen from bob: nothing received in 3.0 s announced"]);
        // Announced for less than MIN_JUDGED_SECS: not judged.
        assert_eq!(problems(&s, &a, 108 * S), Vec::<String>::new());
        // One frame's packets: no rate to judge against, and that is a failure too.
        let mut one = s.clone();
        (one.screen.packets, one.screen.frames_decoded) = (3, 1);
        assert_eq!(problems(&one, &a, 110 * S), ["screen from bob: 1 frames decoded in 3.0 s announced"]);
    }

    #[test]
    fn media_off_at_the_end_is_not_failed_and_the_report_says_so() {
        // Bob spoke for 5 s, then muted; hardly any of his audio arrived while he spoke.
        let mut a = announced(on());
        a.state("p-bob", MediaState { audio_muted: true, ..on() }, 105 * S);
        let s = stats(300, 20);
        let v = judge(&s, &a, 110 * S);
        assert_eq!(v.problems, Vec::<String>::new());
        assert_eq!(
            v.notes,
            [
                "audio from bob: muted at the end, so not failed: 20 of 250 expected frames (8%) at 50.0 fps over 5.0 s"
            ]
        );
        // Muted from the start, camera off after 1 s, a screen shared for 2 s then stopped.
        let mut a = announced(MediaState { audio_muted: true, ..on() });
        a.state("p-bob", MediaState { audio_muted: true, video_off: true, screen_sharing: false }, 101 * S);
        a.state("p-bob", MediaState { audio_muted: true, video_off: true, screen_sharing: true }, 103 * S);
        a.state("p-bob", MediaState { audio_muted: true, video_off: true, screen_sharing: false }, 105 * S);
        let mut s = stats(30, 0);
        s.screen.frames_decoded = 20;
        s.screen.sender_fps = Some(15.0);
        let v = judge(&s, &a, 110 * S);
        assert_eq!(v.problems, Vec::<String>::new());
        assert_eq!(
            v.notes,
            [
                "camera from bob: not checked (camera off at the end; on for 1.0 s, less than 2 s)",
                "screen from bob: not checked (screen share stopped at the end; on for 1.0 s, less than 2 s)",
                "audio from bob: not checked (muted)"
            ]
        );
        // Back on at the end: judged again, from a second after the announcement.
        a.state("p-bob", on(), 106 * S);
        let v = judge(&s, &a, 110 * S);
        assert_eq!(
            v.problems,
            [
                "camera from bob: 30 of 120 expected frames (25%) at 30.0 fps over 4.0 s",
                "audio from bob: 0 of 150 expected frames (0%) at 50.0 fps over 3.0 s"
            ]
        );
        // A peer that leaves keeps its last announced state: still judged.
        a.observe(
            &EngineEvent::Call(CallEvent::PeerLeft {
                peer_id: "p-bob".into(),
                reason: hearth_proto::LeaveReason::Left,
            }),
            109 * S,
        );
        assert_eq!(judge(&s, &a, 110 * S).problems.len(), 2);
    }

    #[test]
    fn a_stream_we_stopped_is_not_expected_to_be_reported_on() {
        let mut s = stats(300, 500);
        s.outbound = vec![OutboundStats {
            kind: Some(TrackKind::Screen),
            packets_sent: 400,
            peer_received_packets: Some(300),
            packets_sent_at_report: 320,
            report_age_ms: Some(6000.0),
        }];
        let mut a = announced(on());
        assert_eq!(
            problems(&s, &a, 110 * S),
            ["screen to bob: no receiver report for 6.0 s while we sent 80 more packets"]
        );
        a.set_local(MediaState::default()); // we stopped sharing
        assert_eq!(problems(&s, &a, 110 * S), Vec::<String>::new());
        // What they received by their last report still counts.
        s.outbound[0].peer_received_packets = Some(30);
        assert_eq!(problems(&s, &a, 110 * S), ["screen to bob: they received 30 of 320 packets sent (9%)"]);
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

    /// A peer that left while the link was down, judged up to when the link went quiet: the
    /// snapshot taken 4.6 s later shows its last report 4.6 s old, which is no problem then.
    #[test]
    fn report_age_counts_up_to_the_judged_end_not_the_later_snapshot() {
        let mut s = stats(300, 500);
        s.outbound = vec![OutboundStats {
            kind: Some(TrackKind::Audio),
            packets_sent: 500,
            peer_received_packets: Some(150),
            packets_sent_at_report: 150,
            report_age_ms: Some(4600.0),
        }];
        let a = announced(on());
        assert_eq!(
            judge(&s, &a, 110 * S).problems,
            ["audio to bob: no receiver report for 4.6 s while we sent 350 more packets"]
        );
        let v = judge_until(&s, &a, 110 * S - 4_600_000, 110 * S);
        assert!(!v.problems.iter().any(|p| p.contains("receiver report")), "{:?}", v.problems);
        // Judged 0.6 s before the snapshot, the report was already 4.0 s old: a problem.
        let v = judge_until(&s, &a, 110 * S - 600_000, 110 * S);
        assert!(v.problems.iter().any(|p| p.contains("no receiver report for 4.0 s")), "{:?}", v.problems);
    }

    #[test]
    fn an_unconnected_peer_is_a_problem() {
        let mut s = stats(0, 0);
        s.connected = false;
        assert_eq!(problems(&s, &announced(on()), 110 * S), ["not connected to bob"]);
    }
}
