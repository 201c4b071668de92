//! A second copy of every DTLS handshake datagram, sent a few milliseconds after the first.
//!
//! webrtc-rs 0.21 retransmits a lost DTLS flight after a fixed 1 s (no setting reaches its
//! `flight_interval` through the peer connection's API), so one lost handshake packet delays
//! the first frame by a second: 1.6 s instead of ~0.5 s to first frame at 100 ms RTT and 1%
//! loss, 2.2 s instead of ~1.1 s at 200 ms and 3% (a handshake is 8-12 datagrams). libwebrtc
//! instead starts its DTLS timer at twice the ICE round trip. Sending each handshake datagram
//! twice makes a lost flight need both copies lost (p² instead of p); the receiver's DTLS
//! replay window drops the byte-identical copy silently, so it costs ~10 KB per link and never
//! changes the handshake's state machine.
//!
//! It sits in the one place webrtc-rs lets us touch packets: a [`Runtime`] whose
//! `wrap_udp_socket` wraps each socket the peer connection binds in [`CopyingSocket`], which
//! passes every call through and, after a datagram that starts a DTLS handshake or
//! ChangeCipherSpec record (RFC 7983 demultiplexing; also inside a TURN ChannelData frame)
//! went out, schedules its copy. At most [`MAX_COPIES`] per socket.
//!
//! The first frame of each RTP stream is copied the same way. A link's first video frame is a
//! keyframe of 10-40 packets; at 3% loss one of them is lost in about half the calls, and its
//! retransmission costs a round trip and the NACK wait: first frame 1.05-1.39 s at 200 ms RTT
//! (floor 1.1 s). With each packet sent twice a lost packet needs both copies lost. A stream's
//! first frame ends at its first packet with the marker bit (an RTP header is clear text under
//! SRTP), and at most [`FIRST_FRAME_COPY_BYTES`] of it are copied. The receiver's SRTP replay
//! check drops the second copy to arrive; webrtc-rs logs that as an error, which
//! [`QuietDuplicates`] keeps out of our logs. (Dropping copies in the receiving socket was
//! tried and not kept: it cannot tell a copy from a forged packet with the same header before
//! SRTP authenticates it, and it dropped copies SRTP needed when the originals had arrived
//! before the handshake finished.)

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use webrtc::runtime::{
    AsyncInterval, AsyncTcpListener, AsyncTcpStream, AsyncUdpSocket, JoinHandle, RecvMeta, Runtime, Transmit,
};

/// How long after the first copy the second goes: long enough to leave a short burst of loss
/// behind, short enough to be well under any round trip's worth of waiting.
pub const COPY_DELAY: Duration = Duration::from_millis(10);

/// Copies one socket may send in all. A handshake is at most a dozen datagrams each way, and
/// a completed DTLS endpoint answers at most 7 repeats of the peer's last flight: this bounds
/// what a peer that keeps repeating its handshake can make us send.
pub const MAX_COPIES: usize = 64;

/// Bytes of each RTP stream's first frame that are copied (a keyframe at 720p is 20-60 KB).
pub const FIRST_FRAME_COPY_BYTES: usize = 96 * 1024;

/// RTP streams per socket whose first frame is copied (a link carries audio, camera, screen
/// and their retransmission streams).
const FIRST_FRAME_STREAMS: usize = 16;

/// DTLS record content types (RFC 6347): ChangeCipherSpec and Handshake.
const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;

/// The datagram a peer's transport sees: `datagram` itself, or the payload of a TURN
/// ChannelData message (RFC 8656 12.4: channel 0x4000-0x4FFF, 2-byte length); `None` when a
/// ChannelData length runs past the datagram.
fn unwrap_channel_data(datagram: &[u8]) -> Option<&[u8]> {
    match datagram.first() {
        Some(0x40..=0x4F) if datagram.len() >= 4 => {
            let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
            datagram.get(4..4 + len)
        }
        _ => Some(datagram),
    }
}

/// Whether `datagram` (as sent on the wire) is a DTLS handshake datagram: its first record is
/// a Handshake or ChangeCipherSpec record of DTLS 1.0/1.2, either bare or as the payload of a
/// TURN ChannelData message.
pub fn is_dtls_handshake(datagram: &[u8]) -> bool {
    let Some(record) = unwrap_channel_data(datagram) else { return false };
    // Type, then the version: 0xFEFF (DTLS 1.0, used in ClientHello) or 0xFEFD (DTLS 1.2).
    // A record header is 13 bytes.
    record.len() >= 13
        && matches!(record[0], CHANGE_CIPHER_SPEC | HANDSHAKE)
        && record[1] == 0xFE
        && matches!(record[2], 0xFF | 0xFD)
}

/// An RTP packet's header as seen on the wire (bare or in ChannelData; not RTCP): its stream,
/// and whether it ends a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub ssrc: u32,
    pub marker: bool,
}

/// The RTP header of `datagram`, if it carries RTP: RFC 7983 puts RTP and RTCP at first bytes
/// 128-191, and RFC 5761 tells RTCP by its packet type (192-223, i.e. 64-95 without the
/// marker bit).
pub fn rtp_header(datagram: &[u8]) -> Option<RtpHeader> {
    let p = unwrap_channel_data(datagram)?;
    let fixed: [u8; 12] = p.get(..12)?.try_into().ok()?;
    if !(128..=191).contains(&fixed[0]) || (64..=95).contains(&(fixed[1] & 0x7F)) {
        return None;
    }
    Some(RtpHeader {
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        marker: fixed[1] & 0x80 != 0,
    })
}

/// Which outgoing RTP datagrams are copied: those of each stream's first frame.
#[derive(Debug, Default)]
struct FirstFrames {
    /// Per stream: bytes of its first frame copied so far, `None` once that frame ended.
    streams: Vec<(u32, Option<usize>)>,
}

impl FirstFrames {
    /// Whether this datagram (`len` bytes, with header `h`) is to be copied.
    fn copy(&mut self, h: &RtpHeader, len: usize) -> bool {
        let i = match self.streams.iter().position(|(ssrc, _)| *ssrc == h.ssrc) {
            Some(i) => i,
            None if self.streams.len() < FIRST_FRAME_STREAMS => {
                self.streams.push((h.ssrc, Some(0)));
                self.streams.len() - 1
            }
            None => return false,
        };
        let state = &mut self.streams[i].1;
        let Some(copied) = *state else { return false };
        let copied = copied + len;
        *state = (!h.marker && copied < FIRST_FRAME_COPY_BYTES).then_some(copied);
        copied <= FIRST_FRAME_COPY_BYTES
    }
}

/// A log filter that drops webrtc-rs's error for a duplicated SRTP/SRTCP packet (SRTP's replay
/// check at work: a first-frame or handshake copy, or a retransmission that arrived twice);
/// every other event passes. Add it to the subscriber's output layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietDuplicates;

impl QuietDuplicates {
    /// Whether a log message is the duplicate-packet error.
    pub fn is_duplicate(message: &str) -> bool {
        message.contains("handle_read error") && message.trim_end().ends_with(": duplicated")
    }
}

/// Logs to standard error at `filter` (a `RUST_LOG`-style filter; "warn" if it does not
/// parse), without the duplicated-packet error ([`QuietDuplicates`]). For the binaries.
pub fn init_logging(filter: &str) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let env = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let out = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(QuietDuplicates);
    let _ = tracing_subscriber::registry().with(env).with(out).try_init();
}

impl<S: tracing::Subscriber> tracing_subscriber::layer::Filter<S> for QuietDuplicates {
    fn enabled(&self, _: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>) -> bool {
        true
    }

    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if !event.metadata().target().starts_with("webrtc") {
            return true;
        }
        struct Message(Option<String>);
        impl tracing::field::Visit for Message {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "message" {
                    self.0 = Some(value.to_string());
                }
            }
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut m = Message(None);
        event.record(&mut m);
        !m.0.is_some_and(|m| QuietDuplicates::is_duplicate(&m))
    }
}

/// A [`Runtime`] that behaves as `inner` in everything but the UDP sockets it wraps, which
/// are [`CopyingSocket`]s.
#[derive(Debug)]
pub struct HandshakeCopyRuntime {
    inner: Arc<dyn Runtime>,
}

impl HandshakeCopyRuntime {
    pub fn new(inner: Arc<dyn Runtime>) -> Self {
        Self { inner }
    }
}

impl Runtime for HandshakeCopyRuntime {
    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) -> Box<dyn JoinHandle> {
        self.inner.spawn(future)
    }

    fn spawn_reactor(
        &self,
        reactor_pool_size: usize,
        future: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn JoinHandle> {
        self.inner.spawn_reactor(reactor_pool_size, future)
    }

    fn wrap_udp_socket(&self, socket: std::net::UdpSocket) -> io::Result<Arc<dyn AsyncUdpSocket>> {
        let inner = self.inner.wrap_udp_socket(socket)?;
        Ok(Arc::new(CopyingSocket {
            inner,
            runtime: self.inner.clone(),
            copies: AtomicUsize::new(0),
            first_frames: Mutex::new(FirstFrames::default()),
        }))
    }

    fn wrap_tcp_listener(&self, listener: std::net::TcpListener) -> io::Result<Arc<dyn AsyncTcpListener>> {
        self.inner.wrap_tcp_listener(listener)
    }

    fn connect_tcp<'a>(
        &'a self,
        remote_addr: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Arc<dyn AsyncTcpStream>>> + Send + 'a>> {
        self.inner.connect_tcp(remote_addr)
    }

    fn resolve_host<'a>(
        &'a self,
        host: &'a str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.inner.resolve_host(host)
    }

    fn now(&self) -> Instant {
        self.inner.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.sleep(duration)
    }

    fn interval(&self, period: Duration) -> Box<dyn AsyncInterval> {
        self.inner.interval(period)
    }

    fn block_on(&self, future: Pin<Box<dyn Future<Output = ()> + '_>>) {
        self.inner.block_on(future)
    }

    fn yield_now(&self) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        self.inner.yield_now()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// A UDP socket that sends a DTLS handshake datagram, and the datagrams of each RTP stream's
/// first frame, a second time [`COPY_DELAY`] after they went out; everything else passes
/// straight through.
pub struct CopyingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    runtime: Arc<dyn Runtime>,
    copies: AtomicUsize,
    first_frames: Mutex<FirstFrames>,
}

impl fmt::Debug for CopyingSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyingSocket")
            .field("inner", &self.inner)
            .field("copies", &self.copies.load(Ordering::Relaxed))
            .finish()
    }
}

impl CopyingSocket {
    fn schedule_copy(&self, datagram: &[u8], destination: SocketAddr, src_ip: Option<IpAddr>) {
        // The copy is a task on the runtime that sends: outside one (never seen: webrtc-rs
        // sends from its driver task) there is nothing to run it on, and no copy.
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let bytes = datagram.to_vec();
        let inner = self.inner.clone();
        let sleep = self.runtime.sleep(COPY_DELAY);
        // Detached: the copy is best effort, and a socket closed meanwhile only fails the send.
        drop(self.runtime.spawn(Box::pin(async move {
            sleep.await;
            let transmit = Transmit { destination, ecn: None, contents: &bytes, segment_size: None, src_ip };
            if let Err(e) = futures_util::future::poll_fn(|cx| inner.poll_send(cx, &transmit)).await {
                tracing::debug!(error = %e, %destination, "the DTLS handshake copy was not sent");
            }
        })));
    }
}

impl AsyncUdpSocket for CopyingSocket {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    fn poll_send(&self, cx: &mut Context<'_>, transmit: &Transmit<'_>) -> Poll<io::Result<usize>> {
        let sent = self.inner.poll_send(cx, transmit);
        if let Poll::Ready(Ok(_)) = sent {
            // One datagram, or several of `segment_size` bytes each (GSO).
            let size = transmit.segment_size.filter(|&n| n > 0).unwrap_or(transmit.contents.len().max(1));
            for datagram in transmit.contents.chunks(size) {
                let copy = if is_dtls_handshake(datagram) {
                    let spent = self.copies.fetch_add(1, Ordering::Relaxed) >= MAX_COPIES;
                    if spent {
                        self.copies.store(MAX_COPIES, Ordering::Relaxed);
                    }
                    !spent
                } else {
                    rtp_header(datagram).is_some_and(|h| self.first_frames.lock().copy(&h, datagram.len()))
                };
                if copy {
                    self.schedule_copy(datagram, transmit.destination, transmit.src_ip);
                }
            }
        }
        sent
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.inner.poll_recv(cx, bufs, meta)
    }

    fn max_gso_segments(&self) -> usize {
        self.inner.max_gso_segments()
    }

    fn max_gro_segments(&self) -> usize {
        self.inner.max_gro_segments()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(content_type: u8, version: [u8; 2]) -> Vec<u8> {
        let mut r = vec![content_type, version[0], version[1]];
        r.extend_from_slice(&[0; 10]); // epoch, sequence number, length
        r.extend_from_slice(&[1, 2, 3]);
        r
    }

    #[test]
    fn handshake_and_change_cipher_spec_records_are_recognised() {
        assert!(is_dtls_handshake(&record(22, [0xFE, 0xFF])));
        assert!(is_dtls_handshake(&record(22, [0xFE, 0xFD])));
        assert!(is_dtls_handshake(&record(20, [0xFE, 0xFD])));
    }

    #[test]
    fn application_data_alerts_rtp_and_stun_are_not() {
        assert!(!is_dtls_handshake(&record(23, [0xFE, 0xFD]))); // application data (SCTP)
        assert!(!is_dtls_handshake(&record(21, [0xFE, 0xFD]))); // alert
        assert!(!is_dtls_handshake(&record(22, [0x03, 0x03]))); // TLS, not DTLS
        assert!(!is_dtls_handshake(&[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])); // RTP
        assert!(!is_dtls_handshake(&[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0])); // STUN
        assert!(!is_dtls_handshake(&[22, 0xFE, 0xFD])); // shorter than a record header
        assert!(!is_dtls_handshake(&[]));
    }

    #[test]
    fn a_handshake_inside_turn_channel_data_is_recognised() {
        let inner = record(22, [0xFE, 0xFD]);
        let mut frame = vec![0x40, 0x01];
        frame.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        frame.extend_from_slice(&inner);
        assert!(is_dtls_handshake(&frame));
        // A length that runs past the datagram is not trusted.
        frame[3] = frame[3].wrapping_add(40);
        assert!(!is_dtls_handshake(&frame));
        // ChannelData carrying RTP is not a handshake.
        let mut rtp = vec![0x40, 0x01, 0, 14];
        rtp.extend_from_slice(&[0x80, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(!is_dtls_handshake(&rtp));
    }

    /// An RTP datagram of `ssrc` with sequence number `seq`, `len` bytes, marker bit as given.
    fn rtp(ssrc: u32, seq: u16, marker: bool, len: usize) -> Vec<u8> {
        let mut p = vec![0x80, if marker { 0x80 | 96 } else { 96 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x10, 0]); // timestamp
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.resize(len.max(12), 0xAB);
        p
    }

    #[test]
    fn rtp_is_told_from_rtcp_stun_and_dtls() {
        let h = rtp_header(&rtp(7, 1, true, 100)).unwrap();
        assert_eq!((h.ssrc, h.marker), (7, true));
        assert!(!rtp_header(&rtp(7, 1, false, 100)).unwrap().marker);
        // RTCP: a sender report (200) and a NACK (205), with and without the "marker" bit.
        assert_eq!(rtp_header(&[0x80, 200, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0]), None);
        assert_eq!(rtp_header(&[0x81, 205, 0, 3, 0, 0, 0, 7, 0, 0, 0, 7]), None);
        assert_eq!(rtp_header(&record(22, [0xFE, 0xFD])), None);
        assert_eq!(rtp_header(&[0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42, 0, 0, 0, 0, 0]), None);
        assert_eq!(rtp_header(&rtp(7, 1, false, 12)[..11]), None);
        // Inside ChannelData; a length past the datagram is not trusted.
        let inner = rtp(9, 5, false, 40);
        let mut frame = vec![0x40, 0x01, 0, inner.len() as u8];
        frame.extend_from_slice(&inner);
        assert_eq!(rtp_header(&frame).map(|h| h.ssrc), Some(9));
        frame[3] += 1;
        assert_eq!(rtp_header(&frame), None);
    }

    #[test]
    fn each_stream_has_its_first_frame_copied_up_to_a_budget() {
        let mut f = FirstFrames::default();
        let copy = |f: &mut FirstFrames, d: Vec<u8>| f.copy(&rtp_header(&d).unwrap(), d.len());
        // Stream 1: three packets, the third ends the frame; the next frame is not copied.
        assert!(copy(&mut f, rtp(1, 10, false, 1200)));
        assert!(copy(&mut f, rtp(1, 11, false, 1200)));
        // Another stream (audio: its first packet has the marker bit) in between.
        assert!(copy(&mut f, rtp(2, 500, true, 100)));
        assert!(!copy(&mut f, rtp(2, 501, false, 100)));
        assert!(copy(&mut f, rtp(1, 12, true, 1200)));
        assert!(!copy(&mut f, rtp(1, 13, false, 1200)));
        assert!(!copy(&mut f, rtp(1, 14, true, 1200)));
        // A first frame larger than the budget: copied up to the budget, then not.
        let mut copied = 0;
        for seq in 0..200 {
            if copy(&mut f, rtp(3, seq, false, 1200)) {
                copied += 1200;
            }
        }
        assert!(copied <= FIRST_FRAME_COPY_BYTES && copied > FIRST_FRAME_COPY_BYTES - 1200, "{copied}");
        // A peer's endless new streams: at most FIRST_FRAME_STREAMS of them.
        let streams = (100..200).filter(|&ssrc| copy(&mut f, rtp(ssrc, 0, true, 100))).count();
        assert_eq!(streams, FIRST_FRAME_STREAMS - 3);
    }

    /// A first frame sent through a copying socket arrives twice; the frame after it once.
    #[tokio::test]
    async fn a_first_frame_arrives_twice_and_the_next_once() {
        let runtime = HandshakeCopyRuntime::new(webrtc::runtime::default_runtime().expect("tokio runtime"));
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let a = runtime.wrap_udp_socket(a).unwrap();
        let plain = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let frame = [rtp(1, 1, false, 300), rtp(1, 2, true, 300)];
        let next = rtp(1, 3, true, 300);
        for d in frame.iter().chain([&next]) {
            a.send_to(d, plain.local_addr().unwrap()).await.unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(Ok((n, _))) = tokio::time::timeout(COPY_DELAY * 10, plain.recv_from(&mut buf)).await {
            got.push(buf[..n].to_vec());
        }
        let count = |d: &Vec<u8>| got.iter().filter(|g| *g == d).count();
        assert_eq!((count(&frame[0]), count(&frame[1]), count(&next)), (2, 2, 1), "{} datagrams", got.len());
    }

    /// webrtc-rs's error for a duplicated SRTP packet is kept out of the log; others stay.
    #[test]
    fn only_the_duplicate_packet_error_is_quiet() {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        #[derive(Clone, Default)]
        struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl io::Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .with_filter(QuietDuplicates);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(target: "webrtc::peer_connection::driver", "handle_read error: srtp ssrc=1 index=7: duplicated");
            tracing::error!(target: "webrtc::peer_connection::driver", "handle_read error: srtcp ssrc=1 index=7: duplicated");
            tracing::error!(target: "webrtc::peer_connection::driver", "handle_read error: srtp ssrc=1 index=7: failed to verify auth tag");
            tracing::error!(target: "hearth_engine", "handle_read error: srtp ssrc=1 index=7: duplicated");
        });
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("auth tag") && text.contains("hearth_engine"), "{text}");
        assert!(QuietDuplicates::is_duplicate("handle_read error: srtp ssrc=3 index=65535: duplicated"));
        assert!(!QuietDuplicates::is_duplicate("srtp ssrc=3 index=65535: duplicated"));
    }

    /// Two sockets on loopback: a handshake datagram arrives twice, the second `COPY_DELAY`
    /// later; RTP-like and application-data datagrams arrive once; the copies stop at
    /// `MAX_COPIES`.
    #[tokio::test]
    async fn a_handshake_datagram_arrives_twice_and_nothing_else_does() {
        let runtime = HandshakeCopyRuntime::new(webrtc::runtime::default_runtime().expect("tokio runtime"));
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = b.local_addr().unwrap();
        a.set_nonblocking(true).unwrap();
        let a = runtime.wrap_udp_socket(a).unwrap();

        let hs = record(22, [0xFE, 0xFD]);
        let data = record(23, [0xFE, 0xFD]);
        a.send_to(&hs, to).await.unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &hs[..]);
        let first = Instant::now();
        let (n, _) =
            tokio::time::timeout(Duration::from_secs(2), b.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], &hs[..], "the copy is the same bytes");
        assert!(first.elapsed() >= COPY_DELAY / 2, "the copy waits before it goes");

        a.send_to(&data, to).await.unwrap();
        let (n, _) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], &data[..]);
        let again = tokio::time::timeout(COPY_DELAY * 10, b.recv_from(&mut buf)).await;
        assert!(again.is_err(), "application data is sent once");

        // The budget: MAX_COPIES copies in all, then none.
        for _ in 0..MAX_COPIES + 10 {
            a.send_to(&hs, to).await.unwrap();
        }
        let mut got = 0;
        while tokio::time::timeout(COPY_DELAY * 10, b.recv_from(&mut buf)).await.is_ok() {
            got += 1;
        }
        assert_eq!(got, (MAX_COPIES + 10) + (MAX_COPIES - 1), "one copy already spent above");
    }
}
