//! Building webrtc-rs 0.21 peer connections the way Hearth needs them.
//!
//! Notes from measuring 0.21.1 here (docs/decisions.md has the list):
//! - ICE checks every 10 ms and no wait for peer-reflexive pairs connect in ~25 ms on loopback
//!   (defaults: ~200 ms, with 1 s outliers).
//! - Inbound RTCP reaches the application only if an interceptor marks it; [`RtcpToApp`] does so
//!   for PLI, FIR and receiver reports, which drive keyframes, RTT and "they receive us".
//! - mDNS is off (no multicast socket); only the given UDP addresses are bound.

use crate::error::EngineError;
use hearth_proto::{IceCandidate, IceServer};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::ice::network_type::NetworkType;
use rtc::interceptor::{Attribute, Interceptor, Packet, Slot, StreamInfo, TaggedPacket};
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_H264, MIME_TYPE_OPUS};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtp_transceiver::rtp_sender::{RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind};
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceCandidateType, RTCIceGatheringState, RTCIceProtocol, RTCIceServer,
    RTCIceTransportPolicy, RTCPeerConnectionIceEvent, RTCPeerConnectionState, Registry, SettingEngineBuilder,
    register_default_interceptors,
};

pub const H264_PT: u8 = 102;
pub const OPUS_PT: u8 = 111;

pub fn h264_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_H264.to_owned(),
        clock_rate: 90_000,
        channels: 0,
        sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f".to_owned(),
        rtcp_feedback: vec![],
    }
}

pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// Marks PLI, FIR and receiver reports for delivery to the application (`TrackLocal::poll`),
/// and publishes the send-side bandwidth estimate the congestion controller (wire-ward of
/// here) attaches to the feedback that changed it.
#[derive(Default)]
struct RtcpToApp {
    read_q: VecDeque<TaggedPacket>,
    write_q: VecDeque<TaggedPacket>,
    estimate: Arc<SendEstimate>,
    /// Pass everything on untouched: fills a slot whose default interceptor we do not want
    /// (rtc's `NoopInterceptor` is a terminus that drops inbound RTCP).
    pass_only: bool,
}

/// A link's send-side bandwidth estimate (GCC over transport-wide feedback), in bits per second;
/// 0 until the first feedback.
#[derive(Debug, Default)]
pub struct SendEstimate {
    bps: std::sync::atomic::AtomicU64,
    /// When the link's video writer last finished sending a keyframe (for the estimator: the
    /// queue such a burst builds is not congestion).
    keyframe_sent: parking_lot::Mutex<Option<Instant>>,
}

impl SendEstimate {
    pub fn keyframe_sent(&self, at: Instant) {
        *self.keyframe_sent.lock() = Some(at);
    }
    pub fn last_keyframe(&self) -> Option<Instant> {
        *self.keyframe_sent.lock()
    }
    pub fn bps(&self) -> Option<u64> {
        Some(self.bps.load(std::sync::atomic::Ordering::Relaxed)).filter(|b| *b > 0)
    }
    pub fn set(&self, bps: f64) {
        if bps.is_finite() && bps > 0.0 {
            self.bps.store(bps as u64, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpToApp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if self.pass_only {
            self.read_q.push_back(msg);
            return Ok(());
        }
        for a in &msg.message.attributes {
            if let Attribute::TargetBitrateChanged { bits_per_second } = a {
                self.estimate.set(*bits_per_second);
            }
        }
        if let Packet::Rtcp(pkts) = &msg.message.packet {
            let keep: Vec<Box<dyn rtc::rtcp::Packet>> = pkts
                .iter()
                .filter(|p| {
                    let a = p.as_any();
                    a.is::<PictureLossIndication>() || a.is::<FullIntraRequest>() || a.is::<ReceiverReport>()
                })
                .cloned()
                .collect();
            if keep.is_empty() {
                return Ok(());
            }
            msg.message.packet = Packet::Rtcp(keep);
            msg.message.add(Attribute::DeliverToApplication);
        }
        self.read_q.push_back(msg);
        Ok(())
    }
    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_q.pop_front()
    }
    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_q.push_back(msg);
        Ok(())
    }
    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_q.pop_front()
    }
}

impl Interceptor for RtcpToApp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// What a peer connection reports, forwarded from its callbacks to the link task.
pub enum PcEvent {
    /// A local candidate to trickle (`None`: gathering complete).
    Candidate(Option<IceCandidate>),
    State(RTCPeerConnectionState),
    Track(Arc<dyn TrackRemote>),
}

struct Handler {
    tx: mpsc::UnboundedSender<PcEvent>,
}

impl std::fmt::Debug for PcEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PcEvent::Candidate(c) => f.debug_tuple("Candidate").field(c).finish(),
            PcEvent::State(s) => f.debug_tuple("State").field(s).finish(),
            PcEvent::Track(_) => f.write_str("Track"),
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.tx.send(PcEvent::Candidate(Some(IceCandidate {
                candidate: init.candidate,
                sdp_mid: init.sdp_mid,
                sdp_mline_index: init.sdp_mline_index,
            })));
        }
    }
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.tx.send(PcEvent::Candidate(None));
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.tx.send(PcEvent::State(state));
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tx.send(PcEvent::Track(track));
    }
}

/// Settings for every peer connection of one engine.
#[derive(Debug, Clone)]
pub struct RtcSettings {
    pub udp_bind: Vec<String>,
    /// Already prepared by [`crate::turn_paths::prepare`]: UDP URLs only.
    pub ice_servers: Vec<IceServer>,
    pub ice_check_interval: Duration,
    pub relay_only: bool,
    /// The TCP/TLS TURN shims these servers go through.
    pub turn_paths: Arc<crate::turn_paths::TurnPaths>,
}

/// Only UDP STUN/TURN URLs: webrtc-rs 0.21's async layer refuses TCP/TLS TURN (those went
/// through [`crate::turn_paths`] before reaching here).
fn usable_ice_servers(servers: &[IceServer]) -> Vec<RTCIceServer> {
    servers
        .iter()
        .filter_map(|s| {
            let urls: Vec<String> = s
                .urls
                .iter()
                .filter(|u| {
                    let ok = !(u.starts_with("turns:") || u.contains("transport=tcp"));
                    if !ok {
                        tracing::info!(url = %u, "skipping a TURN URL webrtc-rs cannot use (TCP/TLS)");
                    }
                    ok
                })
                .cloned()
                .collect();
            (!urls.is_empty()).then(|| RTCIceServer {
                urls,
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
        })
        .collect()
}

/// Where GCC starts: enough for a 720p camera to start at full size (at 60% of its full rate,
/// reached in ~6 s on a clean path), so a call starts sharp on any path that carries it; a path
/// that does not is found within a second or two (loss and queue growth cut the estimate at
/// once). The stock 300 kbit/s start with +8%/s took ~20 s to reach 720p (docs/decisions.md,
/// "Congestion control").
pub const GCC_START_BPS: f64 = 700_000.0;
/// Below this a video call is not worth having; audio alone needs ~40 kbit/s.
pub const GCC_MIN_BPS: f64 = 100_000.0;
/// The most a link is asked to carry (one 720p camera and a 1080p screen).
pub const GCC_MAX_BPS: f64 = 6_000_000.0;

/// A new peer connection with H.264 + Opus, NACK, RTCP reports, send-side congestion control
/// (GCC on transport-wide feedback; its estimate lands in `estimate`) and RTCP to the app.
pub async fn new_peer_connection(
    settings: &RtcSettings,
    events: mpsc::UnboundedSender<PcEvent>,
    estimate: Arc<SendEstimate>,
) -> Result<Arc<dyn PeerConnection>, EngineError> {
    let mut me = MediaEngine::default();
    me.register_codec(
        RTCRtpCodecParameters { rtp_codec: h264_codec(), payload_type: H264_PT },
        RtpCodecKind::Video,
    )?;
    me.register_codec(
        RTCRtpCodecParameters { rtp_codec: opus_codec(), payload_type: OPUS_PT },
        RtpCodecKind::Audio,
    )?;
    me.register_feedback(RTCPFeedback { typ: "ccm".into(), parameter: "fir".into() }, RtpCodecKind::Video);
    let registry = register_default_interceptors(Registry::new(), &mut me)?
        // NACKs come from the video receiver (receive.rs), which knows the gaps its reorder
        // buffer waits for and the link's round trip: one request at once, repeats a round trip
        // apart. webrtc-rs's generator repeated every gap on a fixed tick until it was filled,
        // and each repeat was answered: a retransmission storm on long round trips. The NACK
        // responder (our sent packets' history) stays.
        .with(Slot::NackGenerator, RtcpToApp { pass_only: true, ..RtcpToApp::default() })
        // Send-side congestion control without the pacer: transport-wide sequence numbers on
        // what we send, GCC on the peer's feedback (the default interceptors already report
        // what we receive). The pacer is left out: a frame leaves as a burst, as before, and
        // its timer would depend on webrtc-rs 0.21's driver waking (see ICE_KEEPALIVE); the
        // encoder follows the estimate instead, so the queue it would hold stays short.
        .with(Slot::TwccSender, rtc::interceptor::TwccSenderBuilder::new().build())
        .with(
            Slot::CongestionControl,
            rtc::interceptor::CongestionControlBuilder::new(
                crate::adapt::CappedGcc::new(GCC_START_BPS, GCC_MIN_BPS, GCC_MAX_BPS)
                    .with_keyframe_hints(estimate.clone()),
            )
            .build(),
        )
        .with(Slot::from(14_000), RtcpToApp { estimate, ..RtcpToApp::default() });
    let se = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_network_types(vec![NetworkType::Udp4, NetworkType::Udp6])
        // A candidate pair fails after interval x max requests; keep that at ~2 s so fast checks
        // still work across the internet (the default 7 requests at 20 ms would give up after
        // 140 ms, shorter than many WAN round trips).
        .with_ice_connection_attempts(
            Some(settings.ice_check_interval),
            Some(max_binding_requests(settings.ice_check_interval)),
        )
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        // webrtc-rs waits 2 s before nominating a relay pair (hoping a direct one succeeds), so
        // every relayed call took 2 s more to connect. A direct pair that works answers its
        // checks within a round trip, so a short wait keeps the preference; relay-only has
        // nothing to wait for.
        .with_relay_acceptance_min_wait(Some(if settings.relay_only {
            Duration::ZERO
        } else {
            RELAY_ACCEPTANCE_WAIT
        }))
        // An ICE restart rebinds the sockets on the interfaces there are now (a changed address).
        .with_discard_local_candidates_during_ice_restart(true)
        // A path that stops answering is "disconnected" after 2 s (the app shows it) and keeps
        // being checked: an outage shorter than 10 s heals by itself, with no signaling, as soon
        // as checks get through again; after 10 s the link is "failed" and ICE is restarted.
        // The keepalive
        // interval is also how often webrtc-rs 0.21's driver wakes when no packet arrives: it
        // sends what the core produced from TURN-relayed packets (DTLS replies) only on its next
        // wake, so at 500 ms a relayed DTLS handshake took ~1 s more. Keepalives are only
        // sent on an idle pair, so this costs nothing while media flows.
        .with_ice_timeouts(Some(ICE_DISCONNECTED_AFTER), Some(ICE_FAILED_AFTER), Some(ICE_KEEPALIVE))
        .build();
    let policy = if settings.relay_only { RTCIceTransportPolicy::Relay } else { RTCIceTransportPolicy::All };
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(usable_ice_servers(&settings.ice_servers))
        .with_ice_transport_policy(policy)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(me)
        .with_setting_engine(se)
        .with_interceptor_registry(registry)
        .with_handler(Arc::new(Handler { tx: events }))
        .with_udp_addrs(settings.udp_bind.clone())
        .with_runtime(handshake_copy_runtime()?)
        .build()
        .await?;
    Ok(Arc::new(pc))
}

/// The runtime every peer connection runs on: webrtc-rs's own (tokio), with each DTLS
/// handshake datagram sent twice ([`crate::handshake_copy`]).
fn handshake_copy_runtime() -> Result<Arc<dyn webrtc::runtime::Runtime>, EngineError> {
    let inner = webrtc::runtime::default_runtime()
        .ok_or_else(|| EngineError::Rtc("webrtc-rs was built without an async runtime".into()))?;
    Ok(Arc::new(crate::handshake_copy::HandshakeCopyRuntime::new(inner)))
}

/// Who and how a link talks to: certificate fingerprints and the selected candidate pair (see
/// the fields of the same names in [`crate::PeerStats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkSecurity {
    pub local_fingerprint: Option<String>,
    pub remote_fingerprint: Option<String>,
    pub local_candidate: Option<String>,
    pub remote_candidate: Option<String>,
    pub candidate_protocol: Option<String>,
    pub relay_transport: Option<String>,
}

/// Read a connection's fingerprints (from the applied session descriptions) and its selected
/// candidate pair (through the ICE transport under any sender or receiver: a media-only
/// connection has no SCTP transport to reach it from).
pub async fn link_security(
    pc: &Arc<dyn PeerConnection>,
    turn_paths: &crate::turn_paths::TurnPaths,
) -> LinkSecurity {
    use webrtc::peer_connection::transport::{DtlsTransport, IceTransport};
    let mut out = LinkSecurity {
        local_fingerprint: pc
            .local_description()
            .await
            .and_then(|d| hearth_session::security::fingerprint(&d.sdp)),
        remote_fingerprint: pc
            .remote_description()
            .await
            .and_then(|d| hearth_session::security::fingerprint(&d.sdp)),
        ..LinkSecurity::default()
    };
    for t in pc.get_transceivers().await {
        let mut dtls: Option<Arc<dyn DtlsTransport>> = match t.sender().await {
            Ok(Some(s)) => s.transport().await.ok().flatten(),
            _ => None,
        };
        if dtls.is_none() {
            dtls = match t.receiver().await {
                Ok(Some(r)) => r.transport().await.ok().flatten(),
                _ => None,
            };
        }
        let Some(dtls) = dtls else { continue };
        let ice: Arc<dyn IceTransport> = dtls.ice_transport();
        if let Ok(Some(pair)) = ice.get_selected_candidate_pair().await {
            out.local_candidate = candidate_type(pair.local().typ).map(str::to_owned);
            out.remote_candidate = candidate_type(pair.remote().typ).map(str::to_owned);
            out.candidate_protocol = match pair.local().protocol {
                RTCIceProtocol::Udp => Some("udp".to_owned()),
                RTCIceProtocol::Tcp => Some("tcp".to_owned()),
                _ => None,
            };
            if pair.local().typ == RTCIceCandidateType::Relay {
                let relayed = pair.local().address.parse::<std::net::IpAddr>().ok();
                out.relay_transport = Some(
                    relayed
                        .map(|ip| {
                            turn_paths.relay_transport(std::net::SocketAddr::new(ip, pair.local().port))
                        })
                        .unwrap_or("udp")
                        .to_owned(),
                );
            }
            break;
        }
    }
    out
}

fn candidate_type(t: RTCIceCandidateType) -> Option<&'static str> {
    match t {
        RTCIceCandidateType::Host => Some("host"),
        RTCIceCandidateType::Srflx => Some("srflx"),
        RTCIceCandidateType::Prflx => Some("prflx"),
        RTCIceCandidateType::Relay => Some("relay"),
        _ => None,
    }
}

/// Silence after which a path is "disconnected" (the link's state says so; it keeps being checked).
pub const ICE_DISCONNECTED_AFTER: Duration = Duration::from_secs(2);

/// Silence after which a path is failed (and ICE restarted); shorter outages heal on their own.
pub const ICE_FAILED_AFTER: Duration = Duration::from_secs(10);

/// ICE keepalive interval (see the comment where it is set).
pub const ICE_KEEPALIVE: Duration = Duration::from_millis(40);

/// How long a working relay pair waits for a direct pair to succeed before it is nominated.
pub const RELAY_ACCEPTANCE_WAIT: Duration = Duration::from_millis(300);

/// Binding requests per candidate pair so that checks last about 2 s at `interval`.
pub fn max_binding_requests(interval: Duration) -> u16 {
    let ms = interval.as_millis().max(1);
    u16::try_from(2000u128.div_ceil(ms)).unwrap_or(u16::MAX).max(7)
}

pub fn candidate_init(c: &IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_mline_index,
        ..Default::default()
    }
}

/// RTT in milliseconds from a receiver report block (RFC 3550 A - LSR - DLSR), if it refers to
/// a sender report. The SR interceptor stamps wall-clock NTP time.
pub fn rtt_from_report(last_sender_report: u32, delay: u32) -> Option<f64> {
    if last_sender_report == 0 {
        return None;
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    let ntp_mid = ((((now.as_secs() + 0x83AA_7E80) << 16) & 0xffff_ffff_0000)
        | ((u64::from(now.subsec_nanos()) << 16) / 1_000_000_000)) as u32;
    let rtt = ntp_mid.wrapping_sub(last_sender_report).wrapping_sub(delay);
    // A wrapped negative value means clocks disagree; ignore it.
    (rtt < 0x8000_0000).then(|| f64::from(rtt) * 1000.0 / 65536.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_last_about_two_seconds() {
        assert_eq!(max_binding_requests(Duration::from_millis(20)), 100);
        assert_eq!(max_binding_requests(Duration::from_millis(200)), 10);
        assert_eq!(max_binding_requests(Duration::from_millis(500)), 7);
        assert_eq!(max_binding_requests(Duration::ZERO), 2000);
    }

    #[test]
    fn only_udp_ice_servers_are_used() {
        let servers = vec![IceServer {
            urls: vec![
                "turn:h:3478?transport=udp".into(),
                "turn:h:3478?transport=tcp".into(),
                "turns:h:5349".into(),
            ],
            username: Some("u".into()),
            credential: Some("c".into()),
        }];
        let usable = usable_ice_servers(&servers);
        assert_eq!(usable.len(), 1);
        assert_eq!(usable[0].urls, vec!["turn:h:3478?transport=udp".to_owned()]);
        assert_eq!(usable[0].username, "u");
        assert!(
            usable_ice_servers(&[IceServer {
                urls: vec!["turns:h".into()],
                username: None,
                credential: None
            }])
            .is_empty()
        );
    }

    #[test]
    fn rtt_needs_a_sender_report() {
        assert_eq!(rtt_from_report(0, 0), None);
    }
}
