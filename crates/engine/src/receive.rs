//! The receive side of one remote track: RTP in, reordering without idle delay, frames released
//! on the marker bit, decoding (video on a thread of its own), in-band marker checks, stats.

use crate::config::{EngineEvent, Freeze, Latency, RECENT_FREEZES, StreamStats, TrackKind};
use bytes::Bytes;
use hearth_codec::rtp_h264::RtpPacket;
use hearth_codec::rtp_receive::{H264Receiver, Received};
use hearth_codec::{CodecError, H264Decoder, OpusDecoder};
use hearth_media::marker::{BURST_PERIOD_US, BurstDetector, read_stamp};
use hearth_media::quality::SyntheticReference;
use hearth_media::sync::media_us;
use hearth_media::{
    AvSync, DelayWindow, Mixer, NackScheduler, OutputSkew, Released, ReorderBuffer, VideoFrame, VideoKind,
    VideoPlayout, now_us,
};
use hearth_proto::PeerId;
use parking_lot::Mutex;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    TransportLayerNack, nack_pairs_from_sequence_numbers,
};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

/// The shortest wait for a missing video packet (a LAN); see [`video_loss_wait`].
const VIDEO_REORDER_WAIT: Duration = Duration::from_millis(80);
/// The longest: beyond this a keyframe (one round trip away) is the faster repair.
const VIDEO_REORDER_WAIT_MAX: Duration = Duration::from_millis(800);
/// Complete frames waiting for the decoder beyond this (2 s of video) mean it cannot keep up.
const MAX_PENDING_FRAMES: usize = 60;
/// When the decoder's queue is full, frames are offered again this much later.
const DECODER_RETRY: Duration = Duration::from_millis(4);
/// Before the round trip is measured.
const VIDEO_WAIT_RTT_UNKNOWN: Duration = Duration::from_millis(400);
/// Audio is never retransmitted: a missing packet is waited for only as long as reordering
/// takes, then rebuilt from the next packet's FEC data (every ms waited here is playout depth).
const AUDIO_REORDER_WAIT: Duration = Duration::from_millis(20);
const MAX_LATENCY_SAMPLES: usize = 200_000;
/// How often one missing video packet is asked for (each request a round trip after the last).
const NACK_TRIES: u8 = 4;
/// The round trip assumed before one is measured.
const NACK_RTT_UNKNOWN: Duration = Duration::from_millis(100);
/// Each NACK is sent this many times (see where it is sent).
const NACK_COPIES: usize = 2;
/// At most this many sequence numbers per NACK.
const NACK_MAX_LIST: usize = 128;
/// A gap between decoded frames longer than this is a freeze.
const FREEZE_MS: f64 = 200.0;
const PLI_MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Steps between RTP timestamps kept to estimate the sender's frame rate.
const RATE_STEPS: usize = 256;
/// PSNR is computed on every this many decoded frames (it regenerates the source frame).
const PSNR_EVERY: u64 = 10;

/// Running counters of one received stream; [`StreamAcc::snapshot`] turns them into
/// [`StreamStats`].
#[derive(Debug, Default)]
pub struct StreamAcc {
    pub stats: StreamStats,
    latency_us: Vec<u64>,
    playout_latency_us: Vec<u64>,
    av_offset_us: Vec<u64>,
    psnr_db: Vec<f64>,
    last_marker: Option<u64>,
    decoded_at: VecDeque<u64>,
    bytes_at: VecDeque<(u64, u64)>,
    /// The last RTP timestamp received, and recent steps between distinct ones.
    last_rtp_ts: Option<u32>,
    rtp_steps: VecDeque<u32>,
}

impl StreamAcc {
    /// A packet of `bytes` with RTP timestamp `rtp_ts` arrived.
    fn packet(&mut self, bytes: usize, rtp_ts: u32) {
        let now = now_us();
        self.stats.packets += 1;
        self.stats.bytes += bytes as u64;
        self.bytes_at.push_back((now, bytes as u64));
        while self.bytes_at.front().is_some_and(|(t, _)| now.saturating_sub(*t) > 2_000_000) {
            self.bytes_at.pop_front();
        }
        // Each frame has its own timestamp; steps between consecutive ones are the sender's
        // frame interval (a multiple of it across a lost frame, negative when reordered).
        if let Some(last) = self.last_rtp_ts {
            let step = rtp_ts.wrapping_sub(last);
            if step == 0 || step > u32::MAX / 2 {
                return; // the same frame, or an older packet arriving late
            }
            // A step of more than 10 s (at 90 kHz) is a restarted source, not a frame interval.
            if step < 900_000 {
                if self.rtp_steps.len() == RATE_STEPS {
                    self.rtp_steps.pop_front();
                }
                self.rtp_steps.push_back(step);
            }
        }
        self.last_rtp_ts = Some(rtp_ts);
    }

    /// Frames (or packets) per second the sender produces, from the median step between RTP
    /// timestamps at `clock_rate` (audio: the 10th percentile, the packet duration: an audio
    /// sender in DTX sends one packet per 400 ms of silence, and those steps are not its rate).
    fn sender_rate(&self, clock_rate: u32) -> Option<f64> {
        if self.rtp_steps.is_empty() {
            return None;
        }
        let mut steps: Vec<u32> = self.rtp_steps.iter().copied().collect();
        steps.sort_unstable();
        let at = if self.stats.kind == Some(TrackKind::Audio) { steps.len() / 10 } else { steps.len() / 2 };
        let median = steps[at];
        Some(f64::from(clock_rate) / f64::from(median.max(1)))
    }

    /// A tone burst captured `latency_us` before it left the playout buffer.
    fn played(&mut self, latency_us: u64) {
        if self.playout_latency_us.len() < MAX_LATENCY_SAMPLES {
            self.playout_latency_us.push(latency_us);
        }
    }

    fn decoded(&mut self, at_us: u64) {
        self.stats.frames_decoded += 1;
        self.stats.first_decoded_us.get_or_insert(at_us);
        if let Some(last) = self.decoded_at.back() {
            let gap = at_us.saturating_sub(*last) as f64 / 1000.0;
            if self.stats.longest_gap_ms.is_none_or(|g| gap > g) {
                self.stats.longest_gap_ms = Some(gap);
            }
            if gap > FREEZE_MS {
                self.stats.freezes += 1;
                self.stats.freeze_ms += gap;
                if self.stats.recent_freezes.len() == RECENT_FREEZES {
                    self.stats.recent_freezes.remove(0);
                }
                self.stats.recent_freezes.push(Freeze { ended_us: at_us, ms: gap });
            }
        }
        self.decoded_at.push_back(at_us);
        while self.decoded_at.front().is_some_and(|t| at_us.saturating_sub(*t) > 1_000_000) {
            self.decoded_at.pop_front();
        }
    }

    /// A marker with sequence value `n` (frame number or burst slot), captured at `latency_us`
    /// before now.
    fn marker(&mut self, n: u64, latency_us: u64, reset_gap: u64) {
        // The same picture again: a keyframe the sender encoded from its last picture (a
        // peer joined or asked) rather than wait for the next capture. Not a new frame.
        if self.last_marker == Some(n) {
            return;
        }
        self.stats.markers += 1;
        if self.latency_us.len() < MAX_LATENCY_SAMPLES {
            self.latency_us.push(latency_us);
        }
        match self.last_marker {
            // A big step back is a restarted source (camera off and on), not disorder.
            Some(last) if n <= last && last - n < reset_gap => {
                self.stats.frames_out_of_order += 1;
                return;
            }
            Some(last) if n > last => self.stats.frames_lost += n - last - 1,
            _ => {}
        }
        self.last_marker = Some(n);
    }

    pub fn snapshot(&self) -> StreamStats {
        let now = now_us();
        let mut s = self.stats.clone();
        s.latency = Latency::from_us(&self.latency_us);
        s.playout_latency = Latency::from_us(&self.playout_latency_us);
        s.av_offset = Latency::from_us(&self.av_offset_us);
        s.fps = self.decoded_at.iter().filter(|t| now.saturating_sub(**t) <= 1_000_000).count() as f64;
        // A stall still going on counts too (media that never came back).
        if let Some(last) = self.decoded_at.back() {
            let open = now.saturating_sub(*last) as f64 / 1000.0;
            if s.longest_gap_ms.is_some_and(|g| open > g) {
                s.longest_gap_ms = Some(open);
            }
        }
        s.fps_avg = match s.first_decoded_us {
            Some(first) if now > first => s.frames_decoded as f64 * 1e6 / (now - first) as f64,
            _ => 0.0,
        };
        let clock_rate = if s.kind == Some(TrackKind::Audio) { 48_000 } else { 90_000 };
        s.sender_fps = self.sender_rate(clock_rate);
        if !self.psnr_db.is_empty() {
            s.psnr_samples = self.psnr_db.len() as u64;
            s.psnr_db = Some(self.psnr_db.iter().sum::<f64>() / self.psnr_db.len() as f64);
            s.psnr_min_db = self.psnr_db.iter().copied().reduce(f64::min);
        }
        let recent: u64 =
            self.bytes_at.iter().filter(|(t, _)| now.saturating_sub(*t) <= 1_000_000).map(|(_, b)| b).sum();
        s.bitrate_kbps = recent as f64 * 8.0 / 1000.0;
        s
    }
}

/// Where a receiver reports.
#[derive(Clone)]
pub struct RecvCtx {
    pub peer: PeerId,
    pub kind: TrackKind,
    /// This link's source in the mixer.
    pub mixer_source: u64,
    pub acc: Arc<Mutex<StreamAcc>>,
    /// Decoded frames go here when the app displays them.
    pub frames: Option<mpsc::UnboundedSender<EngineEvent>>,
    /// Decoded audio goes here when a speaker plays it.
    pub mixer: Option<Arc<Mixer>>,
    /// Lip sync measured at the outputs, shared by the link's audio and video receivers.
    pub skew: Arc<Mutex<OutputSkew>>,
    /// The camera's playout delay in µs (written by its receiver, followed by the audio's).
    pub video_delay_us: Arc<AtomicU64>,
    /// The peer's audio level (the loudest decoded frame since the engine last looked).
    pub level: Arc<hearth_media::PeakLevel>,
    /// The link's round trip, from receiver reports (paces the wait for retransmissions).
    pub rtt_ms: Arc<Mutex<Option<f64>>>,
    /// From frame event to painted, in µs (see `Engine::set_display_delay`).
    pub display_delay_us: Arc<AtomicU64>,
}

impl std::fmt::Debug for RecvCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvCtx").field("peer", &self.peer).field("kind", &self.kind).finish()
    }
}

async fn send_pli(
    track: &Arc<dyn TrackRemote>,
    ssrc: u32,
    last: &mut Option<Instant>,
    acc: &Mutex<StreamAcc>,
) {
    if last.is_some_and(|t| t.elapsed() < PLI_MIN_INTERVAL) {
        return;
    }
    *last = Some(Instant::now());
    acc.lock().stats.keyframe_requests += 1;
    let _ =
        track.write_rtcp(vec![Box::new(PictureLossIndication { sender_ssrc: 0, media_ssrc: ssrc })]).await;
}

/// Receive one remote video track until it ends.
pub async fn run_video(track: Arc<dyn TrackRemote>, ctx: RecvCtx) {
    let (au_tx, au_rx) = std::sync::mpsc::sync_channel::<(u32, Bytes)>(8);
    let (pli_tx, mut pli_rx) = mpsc::unbounded_channel::<()>();
    let decoder_ctx = ctx.clone();
    let decoder =
        std::thread::Builder::new().name(format!("hearth-dec-{}", ctx.kind.id())).spawn(move || {
            hearth_media::raise_current_thread(hearth_media::MediaThread::Video);
            decode_video(au_rx, decoder_ctx, pli_tx)
        });
    if let Err(e) = decoder {
        tracing::error!(error = %e, "cannot start a decoder thread");
        return;
    }
    // Depacketizing and frame assembly are ours (hearth_codec::rtp_h264), not rtc's: its H.264
    // depacketizer panics on a truncated STAP-A, and any peer can send one.
    let mut rx = H264Receiver::new(video_loss_wait(None), 512);
    let mut rtt_ms = None;
    let mut nacks = NackScheduler::new(NACK_TRIES);
    let mut ssrc = track.ssrcs().await.first().copied().unwrap_or(0);
    let mut last_pli = None;
    // Complete frames wait here for their decode time (hearth_media::playout).
    let mut playout = VideoPlayout::default();
    let mut pending: VecDeque<(Instant, u32, Bytes)> = VecDeque::new();
    let mut decoder_busy = false;
    // The least round trip seen: a round trip well above it means a queue on the path.
    let mut min_rtt_ms: Option<f64> = None;
    loop {
        let rtt = *ctx.rtt_ms.lock();
        if rtt != rtt_ms {
            rtt_ms = rtt;
            rx.set_max_wait(video_loss_wait(rtt));
            if let Some(r) = rtt.filter(|r| r.is_finite() && *r >= 0.0) {
                min_rtt_ms = Some(min_rtt_ms.map_or(r, |m| m.min(r)));
            }
        }
        let congested = rtt_ms.zip(min_rtt_ms).is_some_and(|(r, m)| r > m * 1.5 + 20.0);
        let rtt = rtt_ms.map_or(NACK_RTT_UNKNOWN, |r: f64| Duration::from_secs_f64(r.max(0.0) / 1000.0));
        let next_decode = if decoder_busy {
            Some(Instant::now() + DECODER_RETRY)
        } else {
            pending.front().map(|(at, ..)| *at)
        };
        let deadline = [rx.deadline(), nacks.deadline(rtt), next_decode].into_iter().flatten().min();
        tokio::select! {
            ev = track.poll() => match ev {
                None => break,
                Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                    ssrc = p.header.ssrc;
                    ctx.acc.lock().packet(p.payload.len() + 12, p.header.timestamp);
                    // A restarted stream (e.g. a second screen share) leaves no partial frame.
                    let h = &p.header;
                    let (seq, timestamp, marker) = (h.sequence_number, h.timestamp, h.marker);
                    rx.push(RtpPacket { ssrc, seq, timestamp, marker, payload: p.payload }, Instant::now());
                }
                Some(_) => continue,
            },
            () = sleep_until(deadline) => {}
            Some(()) = pli_rx.recv() => {
                send_pli(&track, ssrc, &mut last_pli, &ctx.acc).await;
                continue;
            }
        }
        let now = Instant::now();
        while let Some(r) = rx.poll(now) {
            match r {
                Received::Lost(count) => ctx.acc.lock().stats.packets_lost += count,
                Received::Frame(au) => {
                    let release = playout.release_at(media_us(au.timestamp, 90_000), now);
                    pending.push_back((release, au.timestamp, au.data));
                }
                Received::NeedKeyframe => send_pli(&track, ssrc, &mut last_pli, &ctx.acc).await,
            }
        }
        // Due frames go to the decoder; a burst (the frames held behind a retransmission) may
        // fill its queue: the rest wait here and are retried shortly.
        decoder_busy = false;
        while pending.front().is_some_and(|(at, ..)| *at <= now) {
            let Some((at, ts, data)) = pending.pop_front() else { break };
            match au_tx.try_send((ts, data)) {
                Ok(()) => {}
                Err(std::sync::mpsc::TrySendError::Full((ts, data))) => {
                    pending.push_front((at, ts, data));
                    decoder_busy = true;
                    break;
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
            }
        }
        if pending.len() > MAX_PENDING_FRAMES {
            // The decoder cannot keep up: drop what waits and restart from a keyframe.
            pending.clear();
            rx.wait_for_keyframe();
            send_pli(&track, ssrc, &mut last_pli, &ctx.acc).await;
        }
        let delay = playout.delay(now);
        {
            let mut acc = ctx.acc.lock();
            acc.stats.playout_delay_ms = delay.as_secs_f64() * 1000.0;
            acc.stats.packets_late = rx.reorder_stats().late;
        }
        // Audio waits for video only where video is shown (lip sync); headless, it need not.
        if ctx.kind == TrackKind::Camera && ctx.frames.is_some() {
            ctx.video_delay_us.store(delay.as_micros() as u64, Ordering::Relaxed);
        }
        // Ask for what is missing (again, once the last request is a round trip old).
        let ask = nacks.poll(&rx.missing(NACK_MAX_LIST), Instant::now(), rtt);
        if !ask.is_empty() {
            let seqs: Vec<u16> = ask.iter().map(|s| (s & 0xffff) as u16).collect();
            ctx.acc.lock().stats.nacks_sent = nacks.requested();
            let nacks = nack_pairs_from_sequence_numbers(&seqs);
            // Twice, in two datagrams: the sender answers each, so a request or a
            // retransmission lost on the way costs nothing, where it would cost another round
            // trip (at 3% loss, ~6% of repairs needed a second round, each a long freeze). The
            // price is a second copy of what was lost: 3% more at 3% loss, nothing on a clean path.
            // Once while the round trip shows a queue: losses then come from a full bottleneck,
            // where doubled retransmissions only keep it full.
            let copies = if congested { 1 } else { NACK_COPIES };
            for _ in 0..copies {
                let nack = TransportLayerNack { sender_ssrc: 0, media_ssrc: ssrc, nacks: nacks.clone() };
                let _ = track.write_rtcp(vec![Box::new(nack)]).await;
            }
        }
    }
    // Dropping the sender ends the decoder thread.
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

fn decode_video(rx: std::sync::mpsc::Receiver<(u32, Bytes)>, ctx: RecvCtx, pli: mpsc::UnboundedSender<()>) {
    let mut decoder = match H264Decoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot create an H.264 decoder");
            return;
        }
    };
    // Frames for display go through a presenter that holds them for lip sync.
    let present = ctx.frames.as_ref().map(|_| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(u64, Arc<VideoFrame>)>(8);
        let ctx = ctx.clone();
        let spawned =
            std::thread::Builder::new().name(format!("hearth-show-{}", ctx.kind.id())).spawn(move || {
                hearth_media::raise_current_thread(hearth_media::MediaThread::Video);
                present_video(rx, ctx)
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a presenter thread");
        }
        tx
    });
    let kind = if ctx.kind == TrackKind::Screen { VideoKind::Screen } else { VideoKind::Camera };
    let mut reference = SyntheticReference::new();
    let mut decoded = 0u64;
    for (ts, au) in rx {
        let result = decoder.decode(&au, |img| {
            let at = now_us();
            let stamp = read_stamp(img);
            let frame = present.as_ref().map(|_| Arc::new(img.to_frame(stamp.map_or(0, |s| s.capture_us))));
            // A stamped frame is our synthetic pattern: compare it with its regenerated source.
            let psnr = stamp
                .filter(|_| decoded.is_multiple_of(PSNR_EVERY))
                .and_then(|s| reference.psnr(img, kind, s));
            (at, img.width, img.height, stamp, frame, psnr)
        });
        match result {
            Ok(Some((at, w, h, stamp, frame, psnr))) => {
                decoded += 1;
                {
                    let mut acc = ctx.acc.lock();
                    acc.decoded(at);
                    acc.stats.width = w;
                    acc.stats.height = h;
                    if let Some(s) = stamp {
                        acc.marker(u64::from(s.frame), at.saturating_sub(s.capture_us), 30);
                    }
                    if let Some(p) = psnr
                        && acc.psnr_db.len() < MAX_LATENCY_SAMPLES
                    {
                        acc.psnr_db.push(p);
                    }
                }
                if let (Some(tx), Some(frame)) = (&present, frame) {
                    // A full presenter queue means the app is not keeping up: drop the frame.
                    let _ = tx.try_send((media_us(ts, 90_000), frame));
                }
            }
            Ok(None) => {}
            Err(CodecError::NeedKeyframe) => {
                let _ = pli.send(());
            }
            Err(e) => {
                tracing::debug!(error = %e, "video decode error; asking for a keyframe");
                ctx.acc.lock().stats.decode_errors += 1;
                let _ = pli.send(());
            }
        }
    }
}

/// How long a missing video packet is waited for, from the link's round trip: the NACK goes out
/// as soon as the gap is seen, the retransmission comes back a round trip later; if that one is
/// lost too, the second NACK (x1.25 RTT + 10 ms after the first) is back after ~2.3 round
/// trips. 2.5 x RTT + 40 ms waits for it: a second retransmission costs a longer gap but no
/// frames, where giving up costs a keyframe round trip and every frame until it comes. A fixed
/// 80 ms wait (the seed's) gave up before any retransmission on a path over ~60 ms RTT. Before
/// the round trip is measured (receiver reports take a few seconds) the wait is 400 ms: on a
/// short path a retransmission comes long before, and on a long one giving up early costs
/// more than waiting.
pub fn video_loss_wait(rtt_ms: Option<f64>) -> Duration {
    let Some(rtt) = rtt_ms.filter(|r| r.is_finite() && *r >= 0.0) else { return VIDEO_WAIT_RTT_UNKNOWN };
    let wait = Duration::from_secs_f64((rtt * 2.5 + 40.0) / 1000.0);
    wait.clamp(VIDEO_REORDER_WAIT, VIDEO_REORDER_WAIT_MAX)
}

/// Shows decoded frames in step with the peer's audio (see `hearth_media::sync`).
fn present_video(rx: std::sync::mpsc::Receiver<(u64, Arc<VideoFrame>)>, ctx: RecvCtx) {
    let sync = AvSync::default();
    let source = ctx.mixer_source;
    let Some(events) = ctx.frames.clone() else { return };
    let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for (media, frame) in rx {
        let playout = || ctx.mixer.as_ref().and_then(|m| m.playout(source));
        // The frame is on screen this long after we hand it over: sync what is painted.
        let display = Duration::from_micros(ctx.display_delay_us.load(Ordering::Relaxed));
        let release = sync.hand_over_at(media, playout(), Instant::now(), display);
        let now = Instant::now();
        if release > now {
            std::thread::sleep(release - now);
        }
        if let Some(off) = sync.offset_us(media, playout(), Instant::now() + display) {
            let mut acc = ctx.acc.lock();
            if acc.av_offset_us.len() < MAX_LATENCY_SAMPLES {
                acc.av_offset_us.push(off.unsigned_abs());
            }
        }
        // The app still holds several frames of this stream: skip this one.
        let Some(frame) = crate::config::DisplayFrame::new(frame, &in_flight) else { continue };
        let (capture_us, shown_us) = (frame.capture_us, now_us());
        if events.send(EngineEvent::Frame { peer: ctx.peer.clone(), kind: ctx.kind, frame }).is_err() {
            break;
        }
        if ctx.kind == TrackKind::Camera {
            ctx.skew.lock().video_shown(capture_us, shown_us);
        }
    }
}

/// The mixer source id of one link to a peer (unique per link, so a replacement link for the
/// same peer never shares or clears the old one's queue).
pub fn mixer_source(peer: &PeerId, link: u64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (peer, link).hash(&mut h);
    h.finish()
}

/// Receive one remote audio track until it ends.
pub async fn run_audio(track: Arc<dyn TrackRemote>, ctx: RecvCtx) {
    let mut decoder = match OpusDecoder::new() {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot create an Opus decoder");
            return;
        }
    };
    let mut reorder = ReorderBuffer::new(AUDIO_REORDER_WAIT, 64);
    let mut detector = BurstDetector::new();
    let mut pcm = Vec::new();
    let mut pending_loss = 0u64;
    let source = ctx.mixer_source;
    // How late packets come out of the reorder buffer sets the playout depth (jitter buffer).
    let mut lateness = DelayWindow::new(VideoPlayout::BASE_WINDOW, AUDIO_JITTER_WINDOW);
    let mut depth = None;
    // The last packet decoded (sequence number, RTP timestamp) and its length in samples: a
    // timestamp that jumps with no sequence gap is silence the sender did not send (DTX).
    let mut last_packet: Option<(u16, u32)> = None;
    let mut packet_samples = hearth_media::FRAME_SAMPLES as u32;
    if let Some(m) = &ctx.mixer {
        m.set_tap(source, playout_tap(&ctx));
    }
    let mut comfort = ComfortNoise::default();
    loop {
        let deadline = match (reorder.deadline(), comfort.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            ev = track.poll() => match ev {
                None => break,
                Some(TrackRemoteEvent::OnRtpPacket(p)) => {
                    ctx.acc.lock().packet(p.payload.len() + 12, p.header.timestamp);
                    comfort.arrived();
                    if reorder.push_from(p.header.ssrc, p.header.sequence_number, p, Instant::now()) {
                        pending_loss = 0;
                    }
                }
                Some(_) => continue,
            },
            () = sleep_until(deadline) => {}
        }
        let now = Instant::now();
        while let Some(r) = reorder.pop(now) {
            match r {
                Released::Lost { count, .. } => {
                    ctx.acc.lock().stats.packets_lost += count;
                    pending_loss += count;
                }
                Released::Item { item: p, .. } => {
                    // Conceal what was lost before this packet: the last lost frame is rebuilt
                    // from this packet's FEC data, earlier ones by PLC (at most 100 ms).
                    let conceal = pending_loss.min(5);
                    let (seq, ts) = (p.header.sequence_number, p.header.timestamp);
                    let dtx = dtx_frames(last_packet, seq, ts, packet_samples);
                    last_packet = Some((seq, ts));
                    {
                        let mut acc = ctx.acc.lock();
                        acc.stats.concealed_frames += conceal;
                        acc.stats.dtx_frames += dtx;
                    }
                    let sent = media_us(p.header.timestamp, 48_000);
                    lateness.push(sent, now);
                    // The decoded sound lags the packet's timestamp by the codec's lookahead.
                    let media = sent.saturating_sub(hearth_codec::opus::DECODE_DELAY_US);
                    for i in 0..conceal {
                        let fec = (i + 1 == conceal).then_some(&p.payload[..]);
                        if decoder.conceal(fec, &mut pcm).is_ok() {
                            let at = media.saturating_sub((conceal - i) * hearth_media::FRAME_US);
                            deliver_audio(&ctx, &pcm, source, at, &mut detector);
                        }
                    }
                    pending_loss = 0;
                    match decoder.decode(&p.payload, &mut pcm) {
                        Ok(()) => {
                            if !pcm.is_empty() {
                                packet_samples = pcm.len() as u32;
                            }
                            deliver_audio(&ctx, &pcm, source, media, &mut detector);
                            comfort.decoded(p.payload.len(), media, now);
                        }
                        Err(_) => ctx.acc.lock().stats.decode_errors += 1,
                    }
                }
            }
        }
        // Comfort noise is heard, but it is not a decoded frame and not the sender's level.
        // Without a speaker nothing would hear it: the frames due are passed over, not made.
        while let Some(media) = comfort.due(now) {
            if let Some(m) = &ctx.mixer
                && decoder.conceal(None, &mut pcm).is_ok()
            {
                m.push_timed(source, &pcm, Some(media));
                ctx.acc.lock().stats.comfort_noise_frames += 1;
            }
        }
        let want = audio_depth(
            Duration::from_micros(lateness.quantile(AUDIO_LATENESS_QUANTILE, now)),
            Duration::from_micros(ctx.video_delay_us.load(Ordering::Relaxed)),
        );
        if depth != Some(want) {
            depth = Some(want);
            if let Some(m) = &ctx.mixer {
                m.set_delay(
                    source,
                    (want.as_micros() as u64 * u64::from(hearth_media::SAMPLE_RATE) / 1_000_000) as usize,
                );
            }
        }
        let underruns = ctx.mixer.as_ref().and_then(|m| m.stats(source)).map(|s| s.underruns);
        let mut acc = ctx.acc.lock();
        acc.stats.packets_late = reorder.stats().late;
        acc.stats.playout_delay_ms = want.as_secs_f64() * 1000.0;
        acc.stats.underruns = underruns.unwrap_or(0);
    }
    if let Some(m) = &ctx.mixer {
        m.remove(source);
    }
}

/// Comfort noise in a sender's DTX silence. A sender entering DTX sends one packet of at most 2
/// bytes and then nothing but a refresh every 400 ms (`hearth_codec::DtxGate`). Without this the
/// receiver played dead silence between refreshes, and noise the sender did not suppress was
/// heard as 20 ms every 400 ms; with it, every 20 ms in which nothing arrives after that packet
/// is concealed by the decoder, which plays comfort noise shaped like the noise last received
/// (libopus's CNG), as WebRTC's NetEq does.
#[derive(Debug, Default)]
struct ComfortNoise {
    /// When the next frame is due and its media time.
    next: Option<(Instant, u64)>,
    /// No comfort noise after this long without a packet (the refreshes stopped: a loss or a
    /// stream that ended, not DTX).
    until: Option<Instant>,
}

impl ComfortNoise {
    const FRAME: Duration = Duration::from_micros(hearth_media::FRAME_US);
    const LIMIT: Duration = Duration::from_secs(1);

    /// A packet arrived: whatever it is, the silence before it is over.
    fn arrived(&mut self) {
        self.next = None;
    }

    /// A packet of `payload_len` bytes with media time `media` was decoded at `now`.
    fn decoded(&mut self, payload_len: usize, media: u64, now: Instant) {
        self.next = hearth_codec::DtxGate::enters_dtx(payload_len)
            .then_some((now + Self::FRAME, media + hearth_media::FRAME_US));
        self.until = Some(now + Self::LIMIT);
    }

    fn deadline(&self) -> Option<Instant> {
        self.next.map(|(at, _)| at)
    }

    /// The media time of a frame of comfort noise due by `now`, if one is.
    fn due(&mut self, now: Instant) -> Option<u64> {
        let (at, media) = self.next?;
        if at > now {
            return None;
        }
        if self.until.is_none_or(|until| at > until) {
            self.next = None;
            return None;
        }
        self.next = Some((at + Self::FRAME, media + hearth_media::FRAME_US));
        Some(media)
    }
}

/// Frames of silence the sender skipped (DTX) before a packet (`seq`, `ts`) that follows
/// `last` with no sequence gap, at `samples` per packet.
pub fn dtx_frames(last: Option<(u16, u32)>, seq: u16, ts: u32, samples: u32) -> u64 {
    let Some((last_seq, last_ts)) = last else { return 0 };
    if seq != last_seq.wrapping_add(1) || samples == 0 {
        return 0;
    }
    let step = ts.wrapping_sub(last_ts);
    // More than a minute is not a DTX gap (a restarted stream, a jump).
    if step > 48_000 * 60 {
        return 0;
    }
    u64::from((step / samples).saturating_sub(1))
}

/// How far back audio lateness counts for the playout depth.
const AUDIO_JITTER_WINDOW: Duration = Duration::from_secs(10);
/// The playout depth covers this share of the last seconds' packets; the latest 5% (a scheduler
/// stall on a loaded machine, a burst) are concealed and the queue sheds what they added, as
/// NetEq does with its delay histogram's 95th percentile, instead of adding the rarest stall to
/// every packet's latency for ten seconds.
const AUDIO_LATENESS_QUANTILE: f64 = 0.95;
/// The audio playout depth never exceeds this for jitter alone.
const AUDIO_MAX_JITTER_DEPTH: Duration = Duration::from_millis(200);

/// The playout depth of a peer's audio: enough for all but the latest 5% of the last seconds'
/// packets to arrive before their turn (plus 10 ms of margin), and as much as the peer's video
/// is held, so sound and picture stay together (video never waits more than
/// `VideoPlayout::MAX_DELAY`).
/// Zero means the mixer's own prebuffer (one frame), what a clean path gets.
pub fn audio_depth(lateness: Duration, video_delay: Duration) -> Duration {
    let jitter = if lateness > Duration::from_millis(5) {
        (lateness + Duration::from_millis(10)).min(AUDIO_MAX_JITTER_DEPTH)
    } else {
        Duration::ZERO
    };
    jitter.max(video_delay)
}

/// Finds the tone bursts in what the mixer plays of this peer: capture to heard, through the
/// playout buffer (and the device's buffer, for a real speaker), and the audio side of the
/// lip-sync skew.
fn playout_tap(ctx: &RecvCtx) -> hearth_media::mixer::PlayoutTap {
    let (acc, skew) = (ctx.acc.clone(), ctx.skew.clone());
    let mut detector = BurstDetector::new();
    Box::new(move |samples: &[i16], heard_at: Instant| {
        let bursts = detector.push_clocked(samples, hearth_media::wall_us(heard_at));
        if bursts.is_empty() {
            return;
        }
        for b in &bursts {
            acc.lock().played(b.latency_us);
            let captured = b.slot * BURST_PERIOD_US;
            skew.lock().audio_heard(captured, captured + b.latency_us);
        }
    })
}

fn deliver_audio(ctx: &RecvCtx, pcm: &[i16], source: u64, media: u64, detector: &mut BurstDetector) {
    let at = now_us();
    ctx.level.record(hearth_media::level::level(pcm));
    if let Some(m) = &ctx.mixer {
        m.push_timed(source, pcm, Some(media));
    }
    let bursts = detector.push(pcm, at);
    let mut acc = ctx.acc.lock();
    acc.decoded(at);
    for b in bursts {
        acc.marker(b.slot, b.latency_us, 4);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comfort_noise_fills_dtx_silence_every_20_ms_until_a_packet_arrives() {
        let t0 = Instant::now();
        let ms = |n: u64| Duration::from_millis(n);
        let mut c = ComfortNoise::default();
        assert_eq!((c.deadline(), c.due(t0 + ms(100))), (None, None), "nothing before a packet");
        // A real frame: no comfort noise after it (a gap after it is a loss).
        c.decoded(60, 1_000_000, t0);
        assert_eq!((c.deadline(), c.due(t0 + ms(100))), (None, None));
        // The packet that marks DTX: a frame every 20 ms after it, continuing its media time.
        c.decoded(1, 1_020_000, t0 + ms(20));
        assert_eq!(c.deadline(), Some(t0 + ms(40)));
        assert_eq!(c.due(t0 + ms(39)), None, "not yet due");
        assert_eq!(c.due(t0 + ms(40)), Some(1_040_000));
        // Woken late: the frames missed are due at once, in order.
        assert_eq!(c.due(t0 + ms(81)), Some(1_060_000));
        assert_eq!(c.due(t0 + ms(81)), Some(1_080_000));
        assert_eq!(c.due(t0 + ms(81)), None);
        // A packet arrives (the sender's refresh): the silence is over.
        c.arrived();
        assert_eq!((c.deadline(), c.due(t0 + ms(200))), (None, None));
        // Refreshes that stop coming: no comfort noise more than 1 s after the last packet.
        c.decoded(2, 2_000_000, t0 + ms(300));
        let mut frames = 0;
        let mut now = t0 + ms(300);
        while now < t0 + ms(3000) {
            now += ms(20);
            while c.due(now).is_some() {
                frames += 1;
            }
        }
        assert_eq!(frames, 50, "1 s of frames, then none");
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn silence_skipped_by_the_sender_is_counted_not_lost() {
        assert_eq!(dtx_frames(None, 5, 960, 960), 0);
        assert_eq!(dtx_frames(Some((5, 0)), 6, 960, 960), 0, "the next frame");
        // 400 ms later with the next sequence number: 19 frames were not sent.
        assert_eq!(dtx_frames(Some((5, 0)), 6, 19_200, 960), 19);
        assert_eq!(dtx_frames(Some((u16::MAX, u32::MAX - 959)), 0, 18_240, 960), 19, "both wrap");
        assert_eq!(dtx_frames(Some((5, 0)), 8, 19_200, 960), 0, "a sequence gap is loss, not DTX");
        assert_eq!(dtx_frames(Some((5, 0)), 6, 48_000 * 120, 960), 0);
        assert_eq!(dtx_frames(Some((5, 0)), 6, 19_200, 0), 0);
    }

    #[test]
    fn audio_depth_covers_measured_lateness_and_follows_shown_video() {
        let ms = Duration::from_millis;
        assert_eq!(audio_depth(ms(3), Duration::ZERO), Duration::ZERO, "clean: the mixer's prebuffer");
        assert_eq!(audio_depth(ms(40), Duration::ZERO), ms(50), "jitter plus a margin");
        assert_eq!(audio_depth(ms(900), Duration::ZERO), AUDIO_MAX_JITTER_DEPTH);
        assert_eq!(audio_depth(ms(3), ms(110)), ms(110), "waits with the video");
        assert_eq!(audio_depth(ms(150), ms(110)), ms(160));
    }

    #[test]
    fn the_wait_for_a_lost_packet_follows_the_round_trip() {
        assert_eq!(video_loss_wait(None), VIDEO_WAIT_RTT_UNKNOWN);
        assert_eq!(video_loss_wait(Some(1.0)), VIDEO_REORDER_WAIT, "LAN: never below 80 ms");
        // 100 ms RTT: a retransmission is back after ~120 ms, a second one after ~240 ms.
        assert_eq!(video_loss_wait(Some(100.0)), Duration::from_millis(290));
        assert_eq!(video_loss_wait(Some(200.0)), Duration::from_millis(540));
        assert_eq!(video_loss_wait(Some(5000.0)), VIDEO_REORDER_WAIT_MAX);
        assert_eq!(video_loss_wait(Some(f64::NAN)), VIDEO_WAIT_RTT_UNKNOWN);
        assert_eq!(video_loss_wait(Some(-3.0)), VIDEO_WAIT_RTT_UNKNOWN);
    }
}
