//! The send side: one capture-and-encode thread per local source, encoding once whatever the
//! number of peers, and one task fanning the RTP packets out to every peer's track.
//!
//! A [`SendStream`] is the stable identity of a local stream (SSRC, track id, fan-out). Its
//! capture thread can stop and restart (camera off/on) without touching the peer connections.

use crate::adapt::{VideoAdapter, video_budget};
use crate::config::{AudioSpec, DeviceProblem, DisplayFrame, EncoderInfo, EngineEvent, TrackKind, VideoSpec};
use crate::rtc_setup::{H264_PT, OPUS_PT};
use bytes::Bytes;
use hearth_codec::{DtxGate, H264Encoder, H264Profile, OpusEncoder, VideoEncoderConfig};
use hearth_media::{
    AudioFrame, AudioSource, CaptureProcessor, FramePool, MediaError, PeakLevel, TestPattern, ToneBursts,
    VideoFrame, VideoSource, WebrtcProcessor,
};
use hearth_proto::PeerId;
use parking_lot::Mutex;
use rtc::rtp::codec::h264::H264Payloader;
use rtc::rtp::header::Header;
use rtc::rtp::packetizer::{Packetizer, new_packetizer};
use rtc::rtp::sequence::{Sequencer, new_random_sequencer};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

/// RTP timestamps of all of one engine's streams count from the same (random) epoch, so a
/// receiver can line up audio and video of one sender (A/V sync) without RTCP sender reports.
#[derive(Debug, Clone, Copy)]
pub struct MediaClock {
    epoch_us: u64,
}

impl MediaClock {
    pub fn new() -> MediaClock {
        // A random start (up to a minute back) so RTP timestamps reveal nothing about wall time,
        // small enough that neither clock wraps for ~13 h: receivers compare audio and video
        // media times directly for lip sync.
        let offset_us = rand::random::<u64>() % 60_000_000;
        MediaClock { epoch_us: hearth_media::now_us().saturating_sub(offset_us) }
    }

    pub fn rtp_ts(&self, capture_us: u64, clock_rate: u32) -> u32 {
        let since = capture_us.saturating_sub(self.epoch_us);
        ((u128::from(since) * u128::from(clock_rate) / 1_000_000) & 0xffff_ffff) as u32
    }
}

impl Default for MediaClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a peer's copy of a stream's packets is written: its track on the peer connection (a
/// test sink in tests). Returns whether the packet was taken.
#[async_trait::async_trait]
pub trait RtpSink: Send + Sync + 'static {
    async fn write(&self, p: rtc::rtp::Packet) -> bool;
}

#[async_trait::async_trait]
impl RtpSink for TrackLocalStaticRTP {
    async fn write(&self, p: rtc::rtp::Packet) -> bool {
        // Fails only before the link is up or after it closed: nothing to do.
        self.write_rtp(p).await.is_ok()
    }
}

/// The packets of one encoded frame (or one audio packet), shared by every peer's queue.
#[derive(Debug)]
pub struct Batch {
    pub packets: Vec<rtc::rtp::Packet>,
    /// A video keyframe: decoding can start here.
    pub keyframe: bool,
    /// Which encoding of the stream (video): [`MAIN_LAYER`] or [`LOW_LAYER`].
    pub layer: u8,
}

/// The stream's main encoding, which follows its best peers.
pub const MAIN_LAYER: u8 = 0;
/// The second, smaller encoding for peers whose path carries much less (see
/// `adapt::split_layers`); encoded only while some peer gets it.
pub const LOW_LAYER: u8 = 1;
/// A peer changes layers at most this often (each change costs it a keyframe).
const LAYER_MIN_DWELL: std::time::Duration = std::time::Duration::from_secs(4);

/// Video leaves at most this many times the link's estimate (libwebrtc's pacing factor): a
/// frame of normal size goes out at once (the burst allowance), a keyframe is spread over a
/// few tens of ms instead of overflowing a bottleneck's queue (measured on a 1 Mbit/s link with
/// 200 ms of queue: each keyframe's tail was dropped, the receiver asked for another keyframe,
/// and video froze for seconds at a time).
const PACING_FACTOR: f64 = 2.5;
/// What may leave at once, in ms at the paced rate.
const PACING_BURST_MS: f64 = 20.0;
/// Pacing never goes slower than this (an estimate at its floor must not starve video).
const PACING_MIN_BPS: f64 = 300_000.0;

/// A token bucket at [`PACING_FACTOR`] x the link's estimate (no pacing before one exists).
struct Pacer {
    estimate: Arc<crate::rtc_setup::SendEstimate>,
    tokens_bits: f64,
    at: Instant,
}

impl Pacer {
    fn new(estimate: Arc<crate::rtc_setup::SendEstimate>) -> Pacer {
        Pacer { estimate, tokens_bits: 0.0, at: Instant::now() }
    }

    /// Wait until `bytes` may be sent.
    async fn wait(&mut self, bytes: usize) {
        let Some(bps) = self.estimate.bps() else { return };
        let rate = (bps as f64 * PACING_FACTOR).max(PACING_MIN_BPS);
        let burst = rate * PACING_BURST_MS / 1000.0;
        let now = Instant::now();
        self.tokens_bits = (self.tokens_bits + now.duration_since(self.at).as_secs_f64() * rate).min(burst);
        self.at = now;
        self.tokens_bits -= bytes as f64 * 8.0;
        if self.tokens_bits < 0.0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(-self.tokens_bits / rate)).await;
        }
    }
}

/// Frames (or audio packets) a peer's queue holds before the peer counts as slow and loses
/// what does not fit: ~270 ms of video at 30 fps, ~240 ms of audio.
const PEER_QUEUE_BATCHES: usize = 8;
const PEER_AUDIO_QUEUE_BATCHES: usize = 12;
/// A slow peer that lost video asks for a keyframe at most this often (everyone gets it: the
/// encoder is shared), and until then waits for the next one.
/// Keyframes on request are at least this far apart (several peers asking at once, or one
/// asking repeatedly, get one keyframe).
const KEYFRAME_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(150);
const SLOW_PEER_KEYFRAME_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// One peer's sequence numbers: each layer has its own numbering at the source; a peer sees
/// one continuous sequence across layer changes (gaps within a layer, packets that were lost
/// or dropped for this peer, stay gaps, so its receiver still sees them).
#[derive(Debug, Default)]
struct Renumber {
    layer: Option<u8>,
    offset: u16,
    last: Option<u16>,
}

impl Renumber {
    /// What to add to `batch`'s sequence numbers.
    fn offset(&mut self, batch: &Batch) -> u16 {
        if let Some(first) = batch.packets.first() {
            if self.layer != Some(batch.layer) {
                self.offset =
                    self.last.map_or(0, |l| l.wrapping_add(1).wrapping_sub(first.header.sequence_number));
                self.layer = Some(batch.layer);
            }
            if let Some(last) = batch.packets.last() {
                self.last = Some(last.header.sequence_number.wrapping_add(self.offset));
            }
        }
        self.offset
    }
}

/// One peer's track for a stream, with its own queue and writer task: a peer whose connection
/// does not take packets fast enough loses its own packets (video: until the next keyframe)
/// and never delays the other peers.
pub struct Target {
    pub peer: PeerId,
    pub track: Arc<TrackLocalStaticRTP>,
    /// The negotiated payload type (the registered one until negotiation says otherwise).
    pub pt: AtomicU8,
    /// Sequence number of the first packet sent to this peer (`u32::MAX` before any), to turn
    /// its receiver reports' extended highest sequence number into a packet count.
    pub first_seq: std::sync::atomic::AtomicU32,
    /// Packets written to this peer's track (to compare with what it reports receiving).
    pub sent_packets: std::sync::atomic::AtomicU64,
    /// Frames (audio packets) dropped because this peer's queue was full, or while it waited
    /// for a keyframe after such a drop.
    pub dropped_batches: std::sync::atomic::AtomicU64,
    /// What the path to this peer carries (the link's congestion controller).
    pub estimate: Arc<crate::rtc_setup::SendEstimate>,
    /// The loss this peer last reported for the stream (RTCP fraction lost, 0-255 of 256).
    pub fraction_lost: AtomicU8,
    /// Video: which encoding this peer gets ([`MAIN_LAYER`] or [`LOW_LAYER`]).
    pub layer: AtomicU8,
    layer_changed_at: Mutex<Option<Instant>>,
    queue: mpsc::Sender<Arc<Batch>>,
    /// Video: delta frames are useless to this peer until the next keyframe.
    awaiting_keyframe: AtomicBool,
    last_keyframe_request: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("peer", &self.peer).field("pt", &self.pt).finish_non_exhaustive()
    }
}

impl Target {
    /// A target writing to `sink` (`track` is what gets added to the peer connection), with its
    /// writer task spawned on the current runtime.
    pub fn new(
        peer: PeerId,
        kind: TrackKind,
        track: Arc<TrackLocalStaticRTP>,
        sink: Arc<dyn RtpSink>,
        pt: u8,
        estimate: Arc<crate::rtc_setup::SendEstimate>,
    ) -> Arc<Target> {
        let depth = if kind == TrackKind::Audio { PEER_AUDIO_QUEUE_BATCHES } else { PEER_QUEUE_BATCHES };
        let (queue, mut rx) = mpsc::channel::<Arc<Batch>>(depth);
        let target = Arc::new(Target {
            peer,
            track,
            pt: AtomicU8::new(pt),
            first_seq: std::sync::atomic::AtomicU32::new(u32::MAX),
            sent_packets: std::sync::atomic::AtomicU64::new(0),
            dropped_batches: std::sync::atomic::AtomicU64::new(0),
            estimate,
            fraction_lost: AtomicU8::new(0),
            layer: AtomicU8::new(MAIN_LAYER),
            layer_changed_at: Mutex::new(None),
            queue,
            // A new viewer can decode nothing before a keyframe (attaching asks for one). Delta
            // frames sent first would also take the first-frame copy (`handshake_copy`), which
            // covers a stream's first frame only, away from the keyframe that matters.
            awaiting_keyframe: AtomicBool::new(kind != TrackKind::Audio),
            last_keyframe_request: Mutex::new(None),
        });
        // The task holds the target weakly: dropping the target closes the queue and ends it.
        let weak = Arc::downgrade(&target);
        let mut pacer = (kind != TrackKind::Audio).then(|| Pacer::new(target.estimate.clone()));
        tokio::spawn(async move {
            let mut numbering = Renumber::default();
            while let Some(batch) = rx.recv().await {
                let offset = numbering.offset(&batch);
                let pt = match weak.upgrade() {
                    Some(t) => {
                        if let Some(first) = batch.packets.first() {
                            let _ = t.first_seq.compare_exchange(
                                u32::MAX,
                                u32::from(first.header.sequence_number.wrapping_add(offset)),
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                            );
                        }
                        t.pt.load(Ordering::Relaxed)
                    }
                    None => break,
                };
                let mut written = 0;
                for p in &batch.packets {
                    let mut p = p.clone();
                    p.header.payload_type = pt;
                    p.header.sequence_number = p.header.sequence_number.wrapping_add(offset);
                    if let Some(pacer) = &mut pacer {
                        pacer.wait(p.payload.len() + 12).await;
                    }
                    written += u64::from(sink.write(p).await);
                }
                if batch.keyframe
                    && let Some(pacer) = &pacer
                {
                    pacer.estimate.keyframe_sent(Instant::now());
                }
                if let Some(t) = weak.upgrade() {
                    t.sent_packets.fetch_add(written, Ordering::Relaxed);
                }
            }
        });
        target
    }

    /// Queue `batch` for this peer without waiting. Returns true when this peer needs a
    /// keyframe (its queue overflowed and it has not asked for one lately).
    fn offer(&self, batch: &Arc<Batch>, video: bool) -> bool {
        if video && batch.layer != self.layer.load(Ordering::Relaxed) {
            return false;
        }
        if video && !batch.keyframe && self.awaiting_keyframe.load(Ordering::Relaxed) {
            self.dropped_batches.fetch_add(1, Ordering::Relaxed);
            return self.keyframe_due();
        }
        match self.queue.try_send(batch.clone()) {
            Ok(()) => {
                if batch.keyframe {
                    self.awaiting_keyframe.store(false, Ordering::Relaxed);
                }
                false
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_batches.fetch_add(1, Ordering::Relaxed);
                if video {
                    self.awaiting_keyframe.store(true, Ordering::Relaxed);
                    return self.keyframe_due();
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Move this peer to `layer` (video): it waits for that encoding's next keyframe.
    fn set_layer(&self, layer: u8, now: Instant) {
        if self.layer.swap(layer, Ordering::Relaxed) != layer {
            self.awaiting_keyframe.store(true, Ordering::Relaxed);
            *self.layer_changed_at.lock() = Some(now);
        }
    }

    fn may_change_layer(&self, now: Instant) -> bool {
        self.layer_changed_at.lock().is_none_or(|t| now.duration_since(t) >= LAYER_MIN_DWELL)
    }

    fn keyframe_due(&self) -> bool {
        let mut last = self.last_keyframe_request.lock();
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < SLOW_PEER_KEYFRAME_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// A local stream: identity, fan-out list, keyframe request flag, send counters.
#[derive(Debug)]
pub struct SendStream {
    pub kind: TrackKind,
    pub ssrc: u32,
    /// The stream id every track carries (our session's label).
    pub stream_id: String,
    targets: Mutex<Vec<Arc<Target>>>,
    pub keyframe_wanted: AtomicBool,
    /// A keyframe of the low layer is wanted (a peer moved to it, or asked).
    low_keyframe_wanted: AtomicBool,
    /// Whether media is sent at all (mute / camera off).
    pub enabled: AtomicBool,
    packets_tx: mpsc::Sender<Arc<Batch>>,
    /// One sequence-number counter for the stream's whole life: a capture thread restarted
    /// (camera off and on) continues the numbering, so receivers see no jump.
    sequencer: Box<dyn Sequencer>,
    capture: Mutex<Option<Capture>>,
    /// Test hook (see `EngineConfig::rewrite_rtp`).
    rewrite: std::sync::OnceLock<crate::config::RtpRewrite>,
    /// The settings of the current encoder (set by the capture thread).
    encoder: Mutex<Option<EncoderInfo>>,
    /// Where our own captured frames go for display (see [`SendStream::show_locally`]).
    self_view: std::sync::OnceLock<SelfView>,
    /// Audio: the loudest captured frame since the last look, before the mute gate.
    pub level: PeakLevel,
    /// Video: this stream's share of the video budget, in thousandths (see `adapt`).
    share_permille: std::sync::atomic::AtomicU32,
    /// Audio: the processing of a microphone's sound, and what the speaker plays (its echo
    /// reference), if anything is played.
    processing: Mutex<(hearth_media::ProcessingConfig, Option<Arc<hearth_media::FarEnd>>)>,
}

/// What each encoding of a video stream may use (bits per second; `None`: no peer gets it).
#[derive(Debug, Clone, Copy, PartialEq)]
struct LayerBudgets {
    main: Option<f64>,
    low: Option<f64>,
}

/// Our own frames shown to us: the app's event channel and the frames it still holds.
#[derive(Debug)]
struct SelfView {
    peer: PeerId,
    events: mpsc::UnboundedSender<EngineEvent>,
    in_flight: Arc<AtomicUsize>,
}

impl SelfView {
    /// Hand a copy of `frame` to the app unless it still holds [`DisplayFrame::MAX_IN_FLIGHT`]
    /// of ours (then skip it: capture and encode never wait for the display).
    fn show(&self, kind: TrackKind, frame: &VideoFrame, pool: &mut FramePool) {
        if self.in_flight.load(Ordering::Relaxed) >= DisplayFrame::MAX_IN_FLIGHT {
            return;
        }
        if let Some(frame) = DisplayFrame::new(pool.copy(frame), &self.in_flight) {
            let _ = self.events.send(EngineEvent::Frame { peer: self.peer.clone(), kind, frame });
        }
    }
}

#[derive(Debug)]
struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl SendStream {
    /// A stream with its fan-out task (spawned on the current runtime).
    pub fn new(kind: TrackKind, stream_id: String) -> Arc<SendStream> {
        let (packets_tx, mut packets_rx) = mpsc::channel::<Arc<Batch>>(16);
        let stream = Arc::new(SendStream {
            kind,
            ssrc: rand::random::<u32>() | 1,
            stream_id,
            targets: Mutex::new(Vec::new()),
            keyframe_wanted: AtomicBool::new(true),
            low_keyframe_wanted: AtomicBool::new(false),
            enabled: AtomicBool::new(true),
            packets_tx,
            sequencer: Box::new(new_random_sequencer()),
            capture: Mutex::new(None),
            rewrite: std::sync::OnceLock::new(),
            encoder: Mutex::new(None),
            self_view: std::sync::OnceLock::new(),
            level: PeakLevel::new(),
            share_permille: std::sync::atomic::AtomicU32::new(1000),
            processing: Mutex::new((hearth_media::ProcessingConfig::default(), None)),
        });
        let weak = Arc::downgrade(&stream);
        let video = kind != TrackKind::Audio;
        // Hands each batch to every peer's own queue; never waits for a peer.
        tokio::spawn(async move {
            while let Some(batch) = packets_rx.recv().await {
                let Some(stream) = weak.upgrade() else { break };
                let targets: Vec<Arc<Target>> = stream.targets.lock().clone();
                for t in targets {
                    if t.offer(&batch, video) {
                        stream.request_keyframe_for(&t);
                    }
                }
            }
        });
        stream
    }

    /// A new track of this stream for `peer` (add it to that peer's connection).
    pub fn new_target(&self, peer: &PeerId, estimate: Arc<crate::rtc_setup::SendEstimate>) -> Arc<Target> {
        let codec = match self.kind {
            TrackKind::Audio => crate::rtc_setup::opus_codec(),
            TrackKind::Camera | TrackKind::Screen => crate::rtc_setup::h264_codec(),
        };
        let kind = match self.kind {
            TrackKind::Audio => rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio,
            _ => rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video,
        };
        // Track ids must differ from the peer's own (webrtc-rs routes RTCP by track id, and a
        // remote track with the same id would swallow the feedback about ours).
        let track_id = format!("{}:{}", self.kind.id(), self.stream_id);
        let track = rtc::media_stream::MediaStreamTrack::new(
            self.stream_id.clone(),
            track_id.clone(),
            track_id,
            kind,
            vec![rtc::rtp_transceiver::rtp_sender::RTCRtpEncodingParameters {
                rtp_coding_parameters: rtc::rtp_transceiver::rtp_sender::RTCRtpCodingParameters {
                    ssrc: Some(self.ssrc),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        let pt = if self.kind == TrackKind::Audio { OPUS_PT } else { H264_PT };
        let track = Arc::new(TrackLocalStaticRTP::new(track));
        Target::new(peer.clone(), self.kind, track.clone(), track, pt, estimate)
    }

    /// A target of this stream writing to `sink` instead of a track (tests of the fan-out).
    #[cfg(test)]
    fn test_target(&self, peer: &str, sink: Arc<dyn RtpSink>) -> Arc<Target> {
        let t = self.new_target(&PeerId(peer.into()), Arc::default());
        Target::new(t.peer.clone(), self.kind, t.track.clone(), sink, H264_PT, Arc::default())
    }

    /// The settings of the encoder this stream uses now (`None` before its first frame).
    pub fn encoder_info(&self) -> Option<EncoderInfo> {
        self.encoder.lock().clone()
    }

    /// Also emit the frames this (video) stream captures as [`EngineEvent::Frame`] from `peer`
    /// (ourselves) while it sends; only the first call counts.
    pub fn show_locally(&self, peer: PeerId, events: mpsc::UnboundedSender<EngineEvent>) {
        let _ = self.self_view.set(SelfView { peer, events, in_flight: Arc::new(AtomicUsize::new(0)) });
    }

    /// Start sending to `target` (after its track was added to the connection).
    pub fn attach(&self, target: Arc<Target>) {
        self.targets.lock().push(target);
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// Stop sending to this target (only this one: a replacement link for the same peer keeps
    /// its own).
    pub fn detach(&self, target: &Arc<Target>) {
        self.targets.lock().retain(|t| !Arc::ptr_eq(t, target));
    }

    /// Audio: how a microphone's sound is processed from the next capture start, and the
    /// echo reference.
    pub fn set_processing(
        &self,
        cfg: hearth_media::ProcessingConfig,
        far_end: Option<Arc<hearth_media::FarEnd>>,
    ) {
        *self.processing.lock() = (cfg, far_end);
    }

    /// Set this (video) stream's share of the video budget (0..=1).
    pub fn set_share(&self, share: f64) {
        self.share_permille.store((share.clamp(0.0, 1.0) * 1000.0) as u32, Ordering::Relaxed);
    }

    /// The worst loss any peer last reported for this stream, in percent.
    pub fn worst_loss_pct(&self) -> f64 {
        let worst = self.targets.lock().iter().map(|t| t.fraction_lost.load(Ordering::Relaxed)).max();
        f64::from(worst.unwrap_or(0)) * 100.0 / 256.0
    }

    /// The bitrates this video stream's encodings may use now, from its peers' estimates (a
    /// peer without one yet counts as the rate links start from), after moving peers between
    /// the main and the low layer (`adapt::split_layers`). `None`: no peer gets that layer.
    fn budgets(&self, now: Instant) -> LayerBudgets {
        let share = f64::from(self.share_permille.load(Ordering::Relaxed)) / 1000.0;
        let start = crate::rtc_setup::GCC_START_BPS as u64;
        let targets = self.targets.lock().clone();
        let estimates: Vec<u64> = targets.iter().map(|t| t.estimate.bps().unwrap_or(start)).collect();
        let low_now: Vec<bool> =
            targets.iter().map(|t| t.layer.load(Ordering::Relaxed) == LOW_LAYER).collect();
        let may: Vec<bool> = targets.iter().map(|t| t.may_change_layer(now)).collect();
        let as_f64: Vec<f64> = estimates.iter().map(|e| *e as f64).collect();
        let low = crate::adapt::split_layers(&as_f64, &low_now, &may);
        for (t, (&l, &was)) in targets.iter().zip(low.iter().zip(&low_now)) {
            if l != was {
                let layer = if l { LOW_LAYER } else { MAIN_LAYER };
                tracing::debug!(peer = %t.peer, layer, "video layer changed");
                t.set_layer(layer, now);
                self.request_layer_keyframe(layer);
            }
        }
        let pick = |want: bool| {
            let of: Vec<Option<u64>> =
                estimates.iter().zip(&low).filter(|(_, l)| **l == want).map(|(e, _)| Some(*e)).collect();
            video_budget(of, share)
        };
        LayerBudgets { main: pick(false), low: pick(true) }
    }

    /// A keyframe of every encoding (a new peer, the source changed).
    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
        self.low_keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// A keyframe of the encoding `target` gets (it asked: PLI/FIR, or it lost frames).
    pub fn request_keyframe_for(&self, target: &Target) {
        self.request_layer_keyframe(target.layer.load(Ordering::Relaxed));
    }

    fn request_layer_keyframe(&self, layer: u8) {
        if layer == LOW_LAYER {
            self.low_keyframe_wanted.store(true, Ordering::Relaxed);
        } else {
            self.keyframe_wanted.store(true, Ordering::Relaxed);
        }
    }

    pub fn is_capturing(&self) -> bool {
        self.capture.lock().as_ref().is_some_and(|c| !c.thread.is_finished())
    }

    /// Tell the capture thread to stop (it releases the device on its way out) without waiting;
    /// returns its handle.
    pub fn stop_capture(&self) -> Option<JoinHandle<()>> {
        let c = self.capture.lock().take()?;
        c.stop.store(true, Ordering::Relaxed);
        Some(c.thread)
    }

    /// Stop the capture thread and wait until it has released the device (blocking).
    pub fn stop_capture_and_wait(&self) {
        if let Some(t) = self.stop_capture() {
            let _ = t.join();
        }
    }

    /// Install the test hook that rewrites this stream's packets (see
    /// `EngineConfig::rewrite_rtp`); only the first one set counts.
    pub fn set_rewrite(&self, rewrite: Option<crate::config::RtpRewrite>) {
        if let Some(r) = rewrite {
            let _ = self.rewrite.set(r);
        }
    }

    fn send_batch(&self, packets: Vec<rtc::rtp::Packet>, keyframe: bool) {
        self.send_layer(packets, keyframe, MAIN_LAYER);
    }

    fn send_layer(&self, mut packets: Vec<rtc::rtp::Packet>, keyframe: bool, layer: u8) {
        if let Some(r) = self.rewrite.get() {
            (r.0)(self.kind, &mut packets);
        }
        if self.packets_tx.try_send(Arc::new(Batch { packets, keyframe, layer })).is_err()
            && self.kind != TrackKind::Audio
        {
            // The network side is behind: start afresh with a keyframe rather than queue.
            self.request_layer_keyframe(layer);
        }
    }

    /// Start capturing video from `spec` on a new thread. Device errors are reported on `events`.
    pub fn start_video(
        self: &Arc<Self>,
        spec: VideoSpec,
        clock: MediaClock,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) {
        self.spawn_capture(events, move |stream, stop, worked| {
            video_loop(stream, &spec, clock, stop, worked)
        });
    }

    /// Start capturing audio from `spec` on a new thread. Device errors are reported on `events`.
    pub fn start_audio(
        self: &Arc<Self>,
        spec: AudioSpec,
        clock: MediaClock,
        events: mpsc::UnboundedSender<EngineEvent>,
    ) {
        self.spawn_capture(events, move |stream, stop, worked| {
            audio_loop(stream, &spec, clock, stop, worked)
        });
    }

    /// Replace the capture thread with one running `capture_loop` until stopped; its error, if
    /// any, becomes a device error event (the call goes on without this medium). The loop sets
    /// its last argument once the device has delivered (a later failure is a lost device).
    fn spawn_capture(
        self: &Arc<Self>,
        events: mpsc::UnboundedSender<EngineEvent>,
        capture_loop: impl FnOnce(&SendStream, &AtomicBool, &mut bool) -> Result<(), MediaError> + Send + 'static,
    ) {
        // The previous capture thread (if any) finishes first: a camera cannot be opened twice.
        let previous = self.stop_capture();
        let stop = Arc::new(AtomicBool::new(false));
        let (stream, stop_flag) = (Arc::clone(self), stop.clone());
        let spawned =
            std::thread::Builder::new().name(format!("hearth-{}", self.kind.id())).spawn(move || {
                if let Some(p) = previous {
                    let _ = p.join();
                }
                let mut worked = false;
                if let Err(e) = capture_loop(&stream, &stop_flag, &mut worked) {
                    let _ = events.send(EngineEvent::DeviceError {
                        kind: stream.kind,
                        problem: DeviceProblem::of(&e, worked),
                        message: e.to_string(),
                    });
                }
            });
        match spawned {
            Ok(thread) => *self.capture.lock() = Some(Capture { stop, thread }),
            Err(e) => tracing::error!(error = %e, "cannot start a capture thread"),
        }
    }
}

impl Drop for SendStream {
    fn drop(&mut self) {
        if let Some(c) = self.capture.get_mut().take() {
            c.stop.store(true, Ordering::Relaxed);
        }
    }
}

pub(crate) fn open_video(spec: &VideoSpec) -> Result<Box<dyn VideoSource>, MediaError> {
    Ok(match spec {
        VideoSpec::Synthetic { width, height, fps } => Box::new(TestPattern::new(*width, *height, *fps)),
        VideoSpec::SyntheticScreen { width, height, fps } => {
            Box::new(TestPattern::screen(*width, *height, *fps))
        }
        VideoSpec::Camera { id, width, height, fps } => {
            let id = match id {
                Some(id) => id.clone(),
                None => hearth_media::camera::list()?.into_iter().next().map(|d| d.id).ok_or_else(|| {
                    MediaError::Device {
                        kind: hearth_media::DeviceKind::Camera,
                        id: None,
                        message: "no camera found; the call goes on without video".into(),
                    }
                })?,
            };
            Box::new(hearth_media::Camera::open(&id, *width, *height, *fps)?)
        }
        VideoSpec::Screen { id, fps } => Box::new(hearth_media::Screen::open(id.as_deref(), *fps)?),
    })
}

/// How often the encoding thread looks for a keyframe wanted between two captured frames.
const KEYFRAME_POLL: std::time::Duration = std::time::Duration::from_millis(4);

/// Capture on this thread (a camera's handle may not move between threads), encode on a
/// second one (`encode_loop`), so that a keyframe wanted between two captures (a peer's link
/// just connected, or a receiver asked) is encoded at once from the last picture instead of
/// waiting up to a frame interval for the next capture.
fn video_loop(
    stream: &SendStream,
    spec: &VideoSpec,
    clock: MediaClock,
    stop: &AtomicBool,
    worked: &mut bool,
) -> Result<(), MediaError> {
    let mut source = open_video(spec)?;
    // After opening: threads a device backend starts must not inherit a raised priority (the
    // PulseAudio backend's own threads poll busily and would starve the network tasks).
    hearth_media::raise_current_thread(hearth_media::MediaThread::Video);
    // The source's own size (what adaptation scales down from).
    let info = source.info();
    let (frames_tx, frames_rx) = std::sync::mpsc::sync_channel::<VideoFrame>(1);
    let (spare_tx, spare_rx) = std::sync::mpsc::channel::<VideoFrame>();
    // The size the encoder wants the source to draw at (synthetic sources draw at any size).
    let wanted_size = std::sync::atomic::AtomicU64::new(pack_size(info.width, info.height));
    std::thread::scope(|scope| {
        let encoder = std::thread::Builder::new()
            .name(format!("hearth-enc-{}", stream.kind.id()))
            .spawn_scoped(scope, || {
                hearth_media::raise_current_thread(hearth_media::MediaThread::Video);
                encode_loop(stream, &info, clock, frames_rx, spare_tx, &wanted_size, stop)
            })
            .map_err(|e| MediaError::Convert(format!("cannot start the encoding thread: {e}")))?;
        let mut shown = FramePool::new(DisplayFrame::MAX_IN_FLIGHT + 2);
        let mut source_size = (info.width, info.height);
        let mut captured = Ok(());
        while !stop.load(Ordering::Relaxed) && !encoder.is_finished() {
            let size = unpack_size(wanted_size.load(Ordering::Relaxed));
            if source_size != size {
                // Synthetic sources draw at the new size from the next frame; others are scaled.
                source.set_output_size(size.0, size.1);
                source_size = size;
            }
            let mut frame = spare_rx.try_recv().unwrap_or_else(|_| VideoFrame::new(info.width, info.height));
            if let Err(e) = source.capture(&mut frame) {
                captured = Err(e);
                break;
            }
            *worked = true;
            if !stream.enabled.load(Ordering::Relaxed) {
                continue;
            }
            if let Some(view) = stream.self_view.get() {
                view.show(stream.kind, &frame, &mut shown);
            }
            if frames_tx.send(frame).is_err() {
                break;
            }
        }
        // Closing the channel ends the encoding thread.
        drop(frames_tx);
        let encoded = encoder
            .join()
            .unwrap_or_else(|_| Err(MediaError::Convert("the encoding thread panicked".into())));
        captured.and(encoded)
    })
}

fn pack_size(width: u32, height: u32) -> u64 {
    (u64::from(width) << 32) | u64::from(height)
}

fn unpack_size(packed: u64) -> (u32, u32) {
    ((packed >> 32) as u32, packed as u32)
}

/// The encoding half of `video_loop`: sizes and rates from the peers' paths (see `adapt`),
/// the main encoding and the low layer, and keyframes wanted between captures.
fn encode_loop(
    stream: &SendStream,
    info: &hearth_media::SourceInfo,
    clock: MediaClock,
    frames: std::sync::mpsc::Receiver<VideoFrame>,
    spare: std::sync::mpsc::Sender<VideoFrame>,
    wanted_size: &std::sync::atomic::AtomicU64,
    stop: &AtomicBool,
) -> Result<(), MediaError> {
    let full = (info.width, info.height);
    let mut main = LayerEncoder::new(stream, MAIN_LAYER, stream.sequencer.clone_to(), info);
    let mut adapter = VideoAdapter::new(full.0, full.1, info.fps, info.kind);
    // The low layer, while some peer gets it (see `adapt::split_layers`): its own adapter
    // (size and rate follow those peers' estimates, up to the main encoding's size).
    let mut low: Option<(VideoAdapter, LayerEncoder)> = None;
    // The last picture the main encoding took, its RTP timestamp, and whether it is a captured
    // buffer (to go back to the capture thread) or a scaled copy.
    let mut last: Option<(VideoFrame, u32, bool)> = None;
    // Stopped: a capture thread blocked in a device read may outlive its stop by seconds, and a
    // new capture may have started meanwhile; this one's last picture must not be sent then.
    while !stop.load(Ordering::Relaxed) {
        let frame = match frames.recv_timeout(KEYFRAME_POLL) {
            Ok(frame) => frame,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // A keyframe wanted now (a peer's link just connected, a receiver lost
                // video): the last picture again, as a keyframe, one tick after it, at the
                // size and rate the paths want now (a new peer's path may carry far less than
                // what the picture was encoded for).
                // Never while the video is off: the last picture is from before.
                if let Some((picture, ts, _)) = &last
                    && stream.enabled.load(Ordering::Relaxed)
                    && main.keyframe_ready(stream)
                {
                    encode_main(stream, &mut main, &mut adapter, wanted_size, picture, |_| {
                        ts.wrapping_add(1)
                    })?;
                }
                continue;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        };
        let (budgets, scaled, ts) =
            encode_main(stream, &mut main, &mut adapter, wanted_size, &frame, |input| {
                clock.rtp_ts(input.capture_us, 90_000)
            })?;
        let input = scaled.as_ref().unwrap_or(&frame);
        match budgets.low {
            Some(budget) => {
                let (adapter, layer) = low.get_or_insert_with(|| {
                    let adapter = VideoAdapter::new(full.0, full.1, info.fps, info.kind);
                    (adapter, LayerEncoder::new(stream, LOW_LAYER, Box::new(new_random_sequencer()), info))
                });
                let want = adapter.update(Some(budget), Instant::now());
                let smaller = scaled_to(input, (want.width, want.height));
                match layer.send(stream, smaller.as_ref().unwrap_or(input), want.bitrate_bps, ts) {
                    Ok(bytes) => adapter.observe_output(bytes, Instant::now()),
                    Err(e) => {
                        tracing::warn!(error = %e, "low-layer encoding failed");
                        low = None;
                    }
                }
            }
            // Nobody gets it: no second encoder running.
            None => low = None,
        }
        // Keep what was encoded; a captured buffer no longer needed goes back for reuse.
        let (picture, captured) = match scaled {
            Some(scaled) => {
                let _ = spare.send(frame);
                (scaled, false)
            }
            None => (frame, true),
        };
        if let Some((old, _, true)) = last.replace((picture, ts, captured)) {
            let _ = spare.send(old);
        }
    }
    Ok(())
}

/// The main encoding of `picture`, stamped `ts(input)`: what the paths to the peers carry
/// decides the size and rate (see `adapt`); the picture is scaled when larger than wanted (a
/// source that resized itself is right from the next frame on; a smaller picture is never
/// scaled up). Returns the paths' budgets, the scaled copy if one was made, and the stamp.
fn encode_main(
    stream: &SendStream,
    main: &mut LayerEncoder,
    adapter: &mut VideoAdapter,
    wanted_size: &std::sync::atomic::AtomicU64,
    picture: &VideoFrame,
    ts: impl FnOnce(&VideoFrame) -> u32,
) -> Result<(LayerBudgets, Option<VideoFrame>, u32), MediaError> {
    let budgets = stream.budgets(Instant::now());
    let want = adapter.update(budgets.main, Instant::now());
    wanted_size.store(pack_size(want.width, want.height), Ordering::Relaxed);
    let scaled = scaled_to(picture, (want.width, want.height));
    let input = scaled.as_ref().unwrap_or(picture);
    let ts = ts(input);
    let bytes = main.send(stream, input, want.bitrate_bps, ts)?;
    adapter.observe_output(bytes, Instant::now());
    Ok((budgets, scaled, ts))
}

/// `frame` scaled down to fit `size`, or `None` when it already fits (never scaled up). A
/// stamped (synthetic) frame keeps its stamp readable at the smaller size.
fn scaled_to(frame: &VideoFrame, size: (u32, u32)) -> Option<VideoFrame> {
    if frame.width <= size.0 && frame.height <= size.1 {
        return None;
    }
    let mut scaled = hearth_media::scale::scale_i420(frame, size.0, size.1);
    if let Some(stamp) = hearth_media::marker::read_stamp(&frame.view()) {
        hearth_media::marker::write_stamp(&mut scaled, stamp);
    }
    Some(scaled)
}

/// One encoding of a video stream (the main one or the low layer): its encoder (made again
/// when the size changes, its bitrate changed on the fly), packetizer and keyframe spacing.
/// The main layer's settings are what `SendStream::encoder_info` reports.
struct LayerEncoder {
    layer: u8,
    encoder: Option<(H264Encoder, (u32, u32))>,
    packetizer: Box<dyn Packetizer + Send>,
    fps: f32,
    kind: hearth_media::VideoKind,
    last_keyframe: Option<Instant>,
}

impl LayerEncoder {
    fn new(
        stream: &SendStream,
        layer: u8,
        sequencer: Box<dyn Sequencer>,
        info: &hearth_media::SourceInfo,
    ) -> LayerEncoder {
        let payloader = Box::new(H264Payloader::default());
        LayerEncoder {
            layer,
            encoder: None,
            packetizer: Box::new(new_packetizer(
                Instant::now(),
                1200,
                H264_PT,
                stream.ssrc,
                payloader,
                sequencer,
                90_000,
            )),
            fps: info.fps,
            kind: info.kind,
            last_keyframe: None,
        }
    }

    /// Whether a keyframe is wanted of this layer and may be sent now (spacing allows it).
    fn keyframe_ready(&self, stream: &SendStream) -> bool {
        let wanted =
            if self.layer == MAIN_LAYER { &stream.keyframe_wanted } else { &stream.low_keyframe_wanted };
        self.encoder.is_some()
            && wanted.load(Ordering::Relaxed)
            && self.last_keyframe.is_none_or(|t| t.elapsed() >= KEYFRAME_MIN_INTERVAL)
    }

    /// Encode `frame` at `bitrate_bps` and send it as this layer's packets, stamped `ts`;
    /// returns the encoded size in bytes (0: no frame came out).
    fn send(
        &mut self,
        stream: &SendStream,
        frame: &VideoFrame,
        bitrate_bps: u32,
        ts: u32,
    ) -> Result<usize, MediaError> {
        let main = self.layer == MAIN_LAYER;
        let dims = (frame.width, frame.height);
        if self.encoder.as_ref().is_none_or(|(_, d)| *d != dims) {
            let mut cfg = VideoEncoderConfig::for_source(dims.0, dims.1, self.fps, self.kind);
            cfg.bitrate_bps = bitrate_bps;
            self.encoder =
                Some((H264Encoder::new(cfg).map_err(|e| MediaError::Convert(e.to_string()))?, dims));
            if main {
                *stream.encoder.lock() = Some(EncoderInfo {
                    kind: stream.kind,
                    codec: "H.264",
                    profile: None,
                    width: dims.0,
                    height: dims.1,
                    fps: f64::from(self.fps),
                    bitrate_kbps: f64::from(cfg.bitrate_bps) / 1000.0,
                });
            }
        } else if let Some((enc, _)) = self.encoder.as_mut()
            && enc.config().bitrate_bps != bitrate_bps
        {
            match enc.set_target_bitrate(bitrate_bps) {
                Ok(()) if main => {
                    if let Some(info) = stream.encoder.lock().as_mut() {
                        info.bitrate_kbps = f64::from(enc.config().bitrate_bps) / 1000.0;
                    }
                }
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, layer = self.layer, "cannot change the video bitrate"),
            }
        }
        let Some((enc, _)) = self.encoder.as_mut() else { return Ok(0) };
        // Keyframe requests (PLI/FIR from every peer, new peers, slow peers, a peer moved to
        // this layer) are served at most once per KEYFRAME_MIN_INTERVAL; one arriving sooner
        // waits (it is kept, not lost).
        let wanted = if main { &stream.keyframe_wanted } else { &stream.low_keyframe_wanted };
        let spaced = self.last_keyframe.is_none_or(|t| t.elapsed() >= KEYFRAME_MIN_INTERVAL);
        if spaced && wanted.swap(false, Ordering::Relaxed) {
            enc.request_keyframe();
        }
        let au = match enc.encode(frame) {
            Ok(Some(au)) => au,
            Ok(None) => return Ok(0),
            Err(e) => {
                tracing::warn!(error = %e, layer = self.layer, "encoding failed; skipping a frame");
                return Ok(0);
            }
        };
        let bytes = au.data.len();
        if au.keyframe {
            tracing::debug!(target: "hearth_engine::bwe", bytes, width = au.width, bitrate_bps, layer = self.layer, "keyframe");
        }
        if au.keyframe {
            self.last_keyframe = Some(Instant::now());
            if main
                && let Some(info) = stream.encoder.lock().as_mut()
                && info.profile.is_none()
            {
                info.profile = H264Profile::of(&au.data).map(|p| p.name());
            }
        }
        match self.packetizer.packetize(Instant::now(), &Bytes::from(au.data), 0) {
            Ok(mut packets) => {
                for p in &mut packets {
                    p.header.timestamp = ts;
                }
                stream.send_layer(packets, au.keyframe, self.layer);
            }
            Err(e) => tracing::warn!(error = %e, "packetizing failed; skipping a frame"),
        }
        Ok(bytes)
    }
}

pub(crate) fn open_audio(spec: &AudioSpec) -> Result<Box<dyn AudioSource>, MediaError> {
    Ok(match spec {
        AudioSpec::Synthetic => Box::new(ToneBursts::new()),
        AudioSpec::Microphone { id } => Box::new(hearth_media::Microphone::open(id.as_deref())?),
        AudioSpec::Speech { seed } => {
            Box::new(hearth_media::SpeechSource::new(*seed, 120.0 + (*seed % 5) as f32 * 20.0, 0.5))
        }
    })
}

fn audio_loop(
    stream: &SendStream,
    spec: &AudioSpec,
    clock: MediaClock,
    stop: &AtomicBool,
    worked: &mut bool,
) -> Result<(), MediaError> {
    let mut source = open_audio(spec)?;
    hearth_media::raise_current_thread(hearth_media::MediaThread::Audio);
    // A microphone's sound is processed (echo, noise, gain); synthetic tone bursts are not
    // (receivers measure them as sent).
    let (cfg, far_end) = stream.processing.lock().clone();
    let mut processor: Option<Box<dyn CaptureProcessor>> = (matches!(spec, AudioSpec::Microphone { .. })
        && cfg.any())
    .then(|| Box::new(WebrtcProcessor::new(cfg)) as Box<dyn CaptureProcessor>);
    let mut far = vec![0i16; hearth_media::FRAME_SAMPLES];
    if let Some(f) = &far_end {
        f.clear();
    }
    const OPUS_BPS: i32 = 32_000;
    let mut encoder = OpusEncoder::new(OPUS_BPS).map_err(|e| MediaError::Convert(e.to_string()))?;
    *stream.encoder.lock() = Some(EncoderInfo {
        kind: stream.kind,
        codec: "Opus",
        profile: None,
        width: 0,
        height: 0,
        fps: 1_000_000.0 / hearth_media::FRAME_US as f64,
        bitrate_kbps: f64::from(OPUS_BPS) / 1000.0,
    });
    let mut frame = AudioFrame::default();
    let sequencer = stream.sequencer.clone_to();
    let mut talkspurt = true;
    let mut dtx = DtxGate::default();
    let mut loss = crate::adapt::OpusLoss::default();
    let mut loss_perc = OpusEncoder::DEFAULT_LOSS_PERC;
    let mut frames = 0u64;
    let mut processed = 0u64;
    while !stop.load(Ordering::Relaxed) {
        source.capture(&mut frame)?;
        *worked = true;
        if let Some(p) = processor.as_mut() {
            // What was played since the last frame, then what the microphone heard.
            let mut real = 0;
            if let Some(f) = &far_end {
                real = f.take(&mut far, frame.capture_us);
                p.render(&far);
            }
            p.capture(&mut frame.samples);
            processed += 1;
            if processed.is_multiple_of(50) {
                tracing::debug!(stats = ?p.stats(), real, "audio processing");
            }
        }
        // Measured before the mute gate: the app can tell someone speaking while muted.
        stream.level.record(hearth_media::level::level(&frame.samples));
        if !stream.enabled.load(Ordering::Relaxed) {
            talkspurt = true;
            continue;
        }
        frames += 1;
        // Once a second (receiver reports come about that often): FEC for the loss reported.
        if frames.is_multiple_of(50) {
            let perc = loss.update(stream.worst_loss_pct());
            if perc != loss_perc && encoder.set_loss_perc(perc).is_ok() {
                loss_perc = perc;
            }
        }
        let payload = match encoder.encode(&frame) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "audio encoding failed; skipping a frame");
                continue;
            }
        };
        // Silence: most DTX packets are not sent.
        let Some(after_silence) = dtx.admit(payload.len()) else { continue };
        talkspurt |= after_silence;
        let payload = Bytes::copy_from_slice(payload);
        let packet = rtc::rtp::Packet {
            header: Header {
                version: 2,
                // RFC 3551: the marker flags the first packet of a talkspurt (after mute).
                marker: std::mem::take(&mut talkspurt),
                payload_type: OPUS_PT,
                sequence_number: sequencer.next_sequence_number(),
                timestamp: clock.rtp_ts(frame.capture_us, 48_000),
                ssrc: stream.ssrc,
                ..Default::default()
            },
            payload,
        };
        stream.send_batch(vec![packet], false);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Records the sequence numbers written to it; writes wait for a permit of `gate`.
    struct Sink {
        gate: tokio::sync::Semaphore,
        got: Mutex<Vec<u16>>,
    }

    impl Sink {
        fn new(open: bool) -> Arc<Sink> {
            let permits = if open { tokio::sync::Semaphore::MAX_PERMITS } else { 0 };
            Arc::new(Sink { gate: tokio::sync::Semaphore::new(permits), got: Mutex::new(Vec::new()) })
        }
        fn frames(&self) -> Vec<u16> {
            let got = self.got.lock();
            got.chunks(3).map(|c| c[0] / 3).collect()
        }
    }

    #[async_trait::async_trait]
    impl RtpSink for Sink {
        async fn write(&self, p: rtc::rtp::Packet) -> bool {
            self.gate.acquire().await.unwrap().forget();
            self.got.lock().push(p.header.sequence_number);
            true
        }
    }

    /// Frame `f`: three packets numbered 3f, 3f+1, 3f+2.
    fn frame(f: u16) -> Vec<rtc::rtp::Packet> {
        (0..3)
            .map(|i| rtc::rtp::Packet {
                header: Header { sequence_number: f * 3 + i, ..Default::default() },
                payload: Bytes::from_static(&[0]),
            })
            .collect()
    }

    async fn until(what: &str, mut ok: impl FnMut() -> bool) {
        for _ in 0..500 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn a_blocked_peer_does_not_hold_up_the_others() {
        let stream = SendStream::new(TrackKind::Camera, "s".into());
        let (fast, slow) = (Sink::new(true), Sink::new(false));
        let fast_t = stream.test_target("fast", fast.clone());
        let slow_t = stream.test_target("slow", slow.clone());
        stream.attach(fast_t.clone());
        stream.attach(slow_t.clone());
        stream.keyframe_wanted.store(false, Ordering::Relaxed);
        // Two seconds of video (keyframes at 0 and 30); the slow peer takes nothing.
        for f in 0..60 {
            stream.send_batch(frame(f), f % 30 == 0);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        until("the fast peer to get every frame", || fast.got.lock().len() == 180).await;
        assert_eq!(fast.frames(), (0..60).collect::<Vec<_>>(), "in order, none lost");
        assert_eq!(fast_t.dropped_batches.load(Ordering::Relaxed), 0);
        // The slow one holds frame 0 in its writer and 1..=8 in its queue; the rest was dropped,
        // and it asked for a keyframe once (not once per dropped frame).
        assert_eq!(slow_t.dropped_batches.load(Ordering::Relaxed), 60 - 9);
        assert!(slow_t.awaiting_keyframe.load(Ordering::Relaxed));
        assert!(stream.keyframe_wanted.swap(false, Ordering::Relaxed), "the slow peer wants a keyframe");

        // It catches up: it gets what was queued, then nothing until the next keyframe (65),
        // and from there every frame again.
        slow.gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
        until("the slow peer to drain its queue", || slow.got.lock().len() == 27).await;
        for f in 60..70 {
            stream.send_batch(frame(f), f == 65);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        until("the slow peer to resume", || slow.got.lock().len() == 27 + 15).await;
        assert_eq!(slow.frames(), (0..9).chain(65..70).collect::<Vec<_>>());
        assert!(!slow_t.awaiting_keyframe.load(Ordering::Relaxed));
        assert!(!stream.keyframe_wanted.load(Ordering::Relaxed), "no keyframe asked for once it keeps up");
        until("the fast peer to get the rest", || fast.got.lock().len() == 210).await;
    }

    #[tokio::test]
    async fn a_new_video_peer_starts_at_a_keyframe_and_audio_at_once() {
        let video = SendStream::new(TrackKind::Camera, "v".into());
        let sink = Sink::new(true);
        let t = video.test_target("new", sink.clone());
        video.keyframe_wanted.store(false, Ordering::Relaxed);
        video.attach(t.clone());
        assert!(video.keyframe_wanted.load(Ordering::Relaxed), "attaching asks for a keyframe");
        // The encoder's frames in flight when the peer joined are deltas: not sent to it.
        for f in 0..6 {
            video.send_batch(frame(f), f == 3);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        until("the keyframe and what follows", || sink.got.lock().len() == 9).await;
        assert_eq!(sink.frames(), vec![3, 4, 5]);
        assert_eq!(t.dropped_batches.load(Ordering::Relaxed), 3);

        let audio = SendStream::new(TrackKind::Audio, "a".into());
        let heard = Sink::new(true);
        audio.attach(audio.test_target("new", heard.clone()));
        for f in 0..3 {
            audio.send_batch(frame(f), false);
        }
        until("every audio packet", || heard.got.lock().len() == 9).await;
    }

    /// A keyframe wanted between two captures (a peer's link just connected) is encoded at
    /// once from the last picture, not at the next capture: at 2 fps the next one is up to
    /// 500 ms away.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_peer_gets_a_keyframe_without_waiting_for_the_next_capture() {
        let stream = SendStream::new(TrackKind::Camera, "v".into());
        let (events, _rx) = mpsc::unbounded_channel();
        stream.start_video(
            VideoSpec::Synthetic { width: 640, height: 360, fps: 2.0 },
            MediaClock::new(),
            events,
        );
        // Let the encoder take its first picture (no peer yet: nothing is sent).
        until("the first frame", || stream.encoder_info().is_some()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(stream.encoder_info().map(|e| e.width), Some(640), "no peer: the source's size");
        let sink = Sink::new(true);
        let t = stream.test_target("new", sink.clone());
        // The new peer's path starts at 10 kbit/s (a 640x360 picture at 2 fps needs ~32): its
        // keyframe is sized for that, not for what the last picture was encoded at.
        t.estimate.set(10_000.0);
        let attached = Instant::now();
        stream.attach(t.clone());
        until("the keyframe", || !sink.got.lock().is_empty()).await;
        let waited = attached.elapsed();
        let width = stream.encoder_info().map(|e| e.width);
        stream.stop_capture();
        assert!(
            waited < Duration::from_millis(200),
            "the keyframe came {waited:?} after the peer was attached"
        );
        assert!(!t.awaiting_keyframe.load(Ordering::Relaxed), "what was sent was a keyframe");
        assert!(width.is_some_and(|w| w < 640), "keyframe encoded {width:?} wide for a 10 kbit/s path");
    }

    /// With the video off, a peer that joins gets no keyframe made from the last picture
    /// taken before it was turned off.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_picture_is_sent_again_while_the_video_is_off() {
        let stream = SendStream::new(TrackKind::Camera, "v".into());
        let (events, _rx) = mpsc::unbounded_channel();
        stream.start_video(
            VideoSpec::Synthetic { width: 160, height: 90, fps: 2.0 },
            MediaClock::new(),
            events,
        );
        until("the first frame", || stream.encoder_info().is_some()).await;
        // The first picture is encoded and sent (to nobody) before the video goes off; the next
        // capture is 500 ms away.
        tokio::time::sleep(Duration::from_millis(100)).await;
        stream.enabled.store(false, Ordering::Relaxed);
        let sink = Sink::new(true);
        stream.attach(stream.test_target("new", sink.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let sent = sink.got.lock().len();
        stream.stop_capture();
        assert_eq!(sent, 0, "packets sent while the video was off");
    }

    #[tokio::test]
    async fn a_slow_peer_loses_audio_packets_only_while_its_queue_is_full() {
        let stream = SendStream::new(TrackKind::Audio, "s".into());
        let slow = Sink::new(false);
        let t = stream.test_target("slow", slow.clone());
        stream.attach(t.clone());
        for f in 0..30 {
            stream.send_batch(frame(f), false);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // One packet in the writer, 12 queued, the rest dropped.
        until("the drops to be counted", || t.dropped_batches.load(Ordering::Relaxed) == 30 - 13).await;
        slow.gate.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
        until("the queue to drain", || slow.got.lock().len() == 13 * 3).await;
        stream.send_batch(frame(30), false);
        until("the next packet", || slow.got.lock().len() == 14 * 3).await;
        assert_eq!(slow.frames().last(), Some(&30));
    }

    #[tokio::test]
    async fn a_slow_peer_gets_the_low_layer_and_everyone_sees_one_sequence() {
        let stream = SendStream::new(TrackKind::Camera, "s".into());
        let (fast, slow) = (Sink::new(true), Sink::new(true));
        let fast_t = stream.test_target("fast", fast.clone());
        let slow_t = stream.test_target("slow", slow.clone());
        stream.attach(fast_t.clone());
        stream.attach(slow_t.clone());
        fast_t.estimate.set(2_000_000.0);
        slow_t.estimate.set(2_000_000.0);
        let t0 = Instant::now();
        let b = stream.budgets(t0);
        assert!(b.main.is_some() && b.low.is_none(), "{b:?}");
        stream.keyframe_wanted.store(false, Ordering::Relaxed);
        // The main layer numbers 0.., the low layer 1000.. (its own sequencer).
        let low = |f: u16| -> Vec<rtc::rtp::Packet> {
            frame(f)
                .into_iter()
                .map(|mut p| {
                    p.header.sequence_number += 1000;
                    p
                })
                .collect()
        };
        for f in 0..5 {
            stream.send_layer(frame(f), f == 0, MAIN_LAYER);
        }
        until("both peers to get the main layer", || {
            fast.got.lock().len() == 15 && slow.got.lock().len() == 15
        })
        .await;
        // The slow peer's path falls to a fifth: it moves to the low layer, which is wanted
        // with a keyframe, and the main layer follows the fast peer alone.
        slow_t.estimate.set(400_000.0);
        let b = stream.budgets(t0 + LAYER_MIN_DWELL);
        assert!(b.low.is_some() && b.main.unwrap() > 2.0 * b.low.unwrap(), "{b:?}");
        assert_eq!(slow_t.layer.load(Ordering::Relaxed), LOW_LAYER);
        assert!(stream.low_keyframe_wanted.swap(false, Ordering::Relaxed));
        assert!(!stream.keyframe_wanted.load(Ordering::Relaxed), "the fast peer needs no keyframe");
        for f in 5..10 {
            stream.send_layer(frame(f), false, MAIN_LAYER);
            // The low layer: nothing for the slow peer until its keyframe (frame 7).
            stream.send_layer(low(f), f == 7, LOW_LAYER);
        }
        until("the fast peer's frames", || fast.got.lock().len() == 30).await;
        until("the slow peer's low frames", || slow.got.lock().len() == 15 + 9).await;
        assert_eq!(*fast.got.lock(), (0..30).collect::<Vec<u16>>(), "the fast peer never sees the low layer");
        // The slow peer's numbering continues across the change: 15 packets of the main
        // layer, then the low layer's frames 7..10 as 15.., no gap.
        assert_eq!(*slow.got.lock(), (0..24).collect::<Vec<u16>>());
        // It does not move back at once (changes are spaced), nor while its path is slow.
        slow_t.estimate.set(1_900_000.0);
        stream.budgets(t0 + LAYER_MIN_DWELL + Duration::from_secs(1));
        assert_eq!(slow_t.layer.load(Ordering::Relaxed), LOW_LAYER);
        let b = stream.budgets(t0 + LAYER_MIN_DWELL * 2 + Duration::from_secs(1));
        assert_eq!(slow_t.layer.load(Ordering::Relaxed), MAIN_LAYER);
        assert!(b.low.is_none(), "no peer on the low layer: its encoder stops");
    }
}
