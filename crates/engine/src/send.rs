//! The send side: one capture-and-encode thread per local source, encoding once whatever the
//! number of peers, and one task fanning the RTP packets out to every peer's track.
//!
//! A [`SendStream`] is the stable identity of a local stream (SSRC, track id, fan-out). Its
//! capture thread can stop and restart (camera off/on) without touching the peer connections.

use crate::config::{AudioSpec, DeviceProblem, DisplayFrame, EncoderInfo, EngineEvent, TrackKind, VideoSpec};
use crate::rtc_setup::{H264_PT, OPUS_PT};
use bytes::Bytes;
use hearth_codec::{H264Encoder, H264Profile, OpusEncoder, VideoEncoderConfig};
use hearth_media::{
    AudioFrame, AudioSource, FramePool, MediaError, PeakLevel, TestPattern, ToneBursts, VideoFrame,
    VideoSource,
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

/// One peer's track for a stream.
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
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("peer", &self.peer).field("pt", &self.pt).finish_non_exhaustive()
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
    /// Whether media is sent at all (mute / camera off).
    pub enabled: AtomicBool,
    packets_tx: mpsc::Sender<Vec<rtc::rtp::Packet>>,
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
        let (packets_tx, mut packets_rx) = mpsc::channel::<Vec<rtc::rtp::Packet>>(16);
        let stream = Arc::new(SendStream {
            kind,
            ssrc: rand::random::<u32>() | 1,
            stream_id,
            targets: Mutex::new(Vec::new()),
            keyframe_wanted: AtomicBool::new(true),
            enabled: AtomicBool::new(true),
            packets_tx,
            sequencer: Box::new(new_random_sequencer()),
            capture: Mutex::new(None),
            rewrite: std::sync::OnceLock::new(),
            encoder: Mutex::new(None),
            self_view: std::sync::OnceLock::new(),
            level: PeakLevel::new(),
        });
        let weak = Arc::downgrade(&stream);
        tokio::spawn(async move {
            while let Some(batch) = packets_rx.recv().await {
                let Some(stream) = weak.upgrade() else { break };
                let targets: Vec<Arc<Target>> = stream.targets.lock().clone();
                drop(stream);
                for t in targets {
                    let pt = t.pt.load(Ordering::Relaxed);
                    if let Some(first) = batch.first() {
                        let _ = t.first_seq.compare_exchange(
                            u32::MAX,
                            u32::from(first.header.sequence_number),
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                    for p in &batch {
                        let mut p = p.clone();
                        p.header.payload_type = pt;
                        // Fails only before the link is up or after it closed: nothing to do.
                        if t.track.write_rtp(p).await.is_ok() {
                            t.sent_packets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        stream
    }

    /// A new track of this stream for `peer` (add it to that peer's connection).
    pub fn new_target(&self, peer: &PeerId) -> Arc<Target> {
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
        Arc::new(Target {
            peer: peer.clone(),
            track: Arc::new(TrackLocalStaticRTP::new(track)),
            pt: AtomicU8::new(pt),
            first_seq: std::sync::atomic::AtomicU32::new(u32::MAX),
            sent_packets: std::sync::atomic::AtomicU64::new(0),
        })
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

    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
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

    fn send_batch(&self, mut batch: Vec<rtc::rtp::Packet>) {
        if let Some(r) = self.rewrite.get() {
            (r.0)(self.kind, &mut batch);
        }
        if self.packets_tx.try_send(batch).is_err() && self.kind != TrackKind::Audio {
            // The network side is behind: start afresh with a keyframe rather than queue.
            self.keyframe_wanted.store(true, Ordering::Relaxed);
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
    let info = source.info();
    let mut encoder: Option<(H264Encoder, (u32, u32))> = None;
    let mut frame = VideoFrame::new(info.width, info.height);
    let mut packetizer = new_packetizer(
        Instant::now(),
        1200,
        H264_PT,
        stream.ssrc,
        Box::new(H264Payloader::default()),
        stream.sequencer.clone_to(),
        90_000,
    );
    let mut shown = FramePool::new(DisplayFrame::MAX_IN_FLIGHT + 2);
    while !stop.load(Ordering::Relaxed) {
        source.capture(&mut frame)?;
        *worked = true;
        if !stream.enabled.load(Ordering::Relaxed) {
            continue;
        }
        if let Some(view) = stream.self_view.get() {
            view.show(stream.kind, &frame, &mut shown);
        }
        let dims = (frame.width, frame.height);
        if encoder.as_ref().is_none_or(|(_, d)| *d != dims) {
            let cfg = VideoEncoderConfig::for_source(frame.width, frame.height, info.fps, info.kind);
            encoder = Some((H264Encoder::new(cfg).map_err(|e| MediaError::Convert(e.to_string()))?, dims));
            *stream.encoder.lock() = Some(EncoderInfo {
                kind: stream.kind,
                codec: "H.264",
                profile: None,
                width: frame.width,
                height: frame.height,
                fps: f64::from(info.fps),
                bitrate_kbps: f64::from(cfg.bitrate_bps) / 1000.0,
            });
        }
        let Some((enc, _)) = encoder.as_mut() else { continue };
        if stream.keyframe_wanted.swap(false, Ordering::Relaxed) {
            enc.request_keyframe();
        }
        let au = match enc.encode(&frame) {
            Ok(Some(au)) => au,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "encoding failed; skipping a frame");
                continue;
            }
        };
        if au.keyframe
            && let Some(info) = stream.encoder.lock().as_mut()
            && info.profile.is_none()
        {
            info.profile = H264Profile::of(&au.data).map(|p| p.name());
        }
        let ts = clock.rtp_ts(frame.capture_us, 90_000);
        match packetizer.packetize(Instant::now(), &Bytes::from(au.data), 0) {
            Ok(mut packets) => {
                for p in &mut packets {
                    p.header.timestamp = ts;
                }
                stream.send_batch(packets);
            }
            Err(e) => tracing::warn!(error = %e, "packetizing failed; skipping a frame"),
        }
    }
    Ok(())
}

pub(crate) fn open_audio(spec: &AudioSpec) -> Result<Box<dyn AudioSource>, MediaError> {
    Ok(match spec {
        AudioSpec::Synthetic => Box::new(ToneBursts::new()),
        AudioSpec::Microphone { id } => Box::new(hearth_media::Microphone::open(id.as_deref())?),
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
    while !stop.load(Ordering::Relaxed) {
        source.capture(&mut frame)?;
        *worked = true;
        // Measured before the mute gate: the app can tell someone speaking while muted.
        stream.level.record(hearth_media::level::level(&frame.samples));
        if !stream.enabled.load(Ordering::Relaxed) {
            talkspurt = true;
            continue;
        }
        let payload = match encoder.encode(&frame) {
            Ok(p) => Bytes::copy_from_slice(p),
            Err(e) => {
                tracing::warn!(error = %e, "audio encoding failed; skipping a frame");
                continue;
            }
        };
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
        stream.send_batch(vec![packet]);
    }
    Ok(())
}
