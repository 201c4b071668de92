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
//! went out, schedules its copy. Nothing else is copied, and at most [`MAX_COPIES`] per socket.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

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

/// DTLS record content types (RFC 6347): ChangeCipherSpec and Handshake.
const CHANGE_CIPHER_SPEC: u8 = 20;
const HANDSHAKE: u8 = 22;

/// Whether `datagram` (as sent on the wire) is a DTLS handshake datagram: its first record is
/// a Handshake or ChangeCipherSpec record of DTLS 1.0/1.2, either bare or as the payload of a
/// TURN ChannelData message (RFC 8656 12.4: channel 0x4000-0x4FFF, 2-byte length).
pub fn is_dtls_handshake(datagram: &[u8]) -> bool {
    let record = match datagram.first() {
        Some(0x40..=0x4F) if datagram.len() >= 4 => {
            let len = u16::from_be_bytes([datagram[2], datagram[3]]) as usize;
            match datagram.get(4..4 + len) {
                Some(inner) => inner,
                None => return false,
            }
        }
        _ => datagram,
    };
    // Type, then the version: 0xFEFF (DTLS 1.0, used in ClientHello) or 0xFEFD (DTLS 1.2).
    // A record header is 13 bytes.
    record.len() >= 13
        && matches!(record[0], CHANGE_CIPHER_SPEC | HANDSHAKE)
        && record[1] == 0xFE
        && matches!(record[2], 0xFF | 0xFD)
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
        Ok(Arc::new(CopyingSocket { inner, runtime: self.inner.clone(), copies: AtomicUsize::new(0) }))
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

/// A UDP socket that sends a DTLS handshake datagram a second time [`COPY_DELAY`] after it
/// went out; everything else passes straight through.
pub struct CopyingSocket {
    inner: Arc<dyn AsyncUdpSocket>,
    runtime: Arc<dyn Runtime>,
    copies: AtomicUsize,
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
        if self.copies.fetch_add(1, Ordering::Relaxed) >= MAX_COPIES {
            self.copies.store(MAX_COPIES, Ordering::Relaxed);
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
                if is_dtls_handshake(datagram) {
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
