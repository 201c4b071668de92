//! The client's way to TURN over TCP and TLS: a UDP socket on 127.0.0.1 that webrtc-rs talks
//! plain UDP TURN to, each of its sources carried over its own TCP or TLS stream to the real
//! server (optionally through an HTTP CONNECT proxy).
//!
//! webrtc-rs 0.21 only speaks TURN over UDP (upstream issues #539, #848). A TURN client's
//! messages are self-delimiting, so a datagram maps onto the stream one to one; replies are split
//! back with `TurnStreamDecoder` (RFC 8656 §12.5: ChannelData arrives padded to 4 bytes, which
//! TURN clients accept) and sent back from the shim's own address, which is the server address
//! the TURN client was given. Being bound on 127.0.0.1, it can only be reached from this machine.

use crate::TurnError;
use rustls::pki_types::ServerName;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// How to reach the TURN server.
#[derive(Clone)]
pub struct Upstream {
    /// Host name or address of the TURN server (what the URL said).
    pub host: String,
    pub port: u16,
    /// TLS (`turns:`) with this client configuration, or plain TCP when `None`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// An HTTP proxy (`host:port`) to open the connection through with CONNECT.
    pub proxy: Option<String>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls.is_some())
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// A running shim; dropping it stops it and closes its streams.
#[derive(Debug)]
pub struct TurnShim {
    local: SocketAddr,
    relayed: Relayed,
    _tasks: JoinSet<()>,
}

/// Relayed addresses the server granted through this shim (seen in Allocate responses), so a
/// relay candidate can be told apart as relayed over TCP/TLS.
type Relayed = Arc<Mutex<HashSet<SocketAddr>>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a shim waits before opening its stream: a relay over TCP/TLS stalls through loss
/// and outages (retransmission backoff), so when UDP to the relay works its candidate should be
/// the one that is ready first (at 150 ms a TCP relay still won 3 calls in 10 in the NAT lab). With UDP
/// blocked this is 400 ms more to connect.
const START_DELAY: Duration = Duration::from_millis(400);
const QUEUE: usize = 512;

impl TurnShim {
    /// Bind on 127.0.0.1 and start relaying. Streams open on the first datagram of each source.
    pub async fn start(upstream: Upstream) -> Result<TurnShim, TurnError> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.map_err(TurnError::Io)?;
        let local = socket.local_addr().map_err(TurnError::Io)?;
        let mut tasks = JoinSet::new();
        let relayed = Relayed::default();
        tasks.spawn(serve(Arc::new(socket), upstream, relayed.clone()));
        Ok(TurnShim { local, relayed, _tasks: tasks })
    }

    /// Whether the server gave `addr` as a relayed address through this shim.
    pub fn relayed(&self, addr: SocketAddr) -> bool {
        self.relayed.lock().map(|set| set.contains(&addr)).unwrap_or(false)
    }

    /// The address to give webrtc-rs as a UDP TURN server.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

async fn serve(socket: Arc<UdpSocket>, upstream: Upstream, relayed: Relayed) {
    let mut streams: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut conns = JoinSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, src)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        // Every source is this machine: the kernel delivers nothing from outside to 127.0.0.1
        // (webrtc-rs sends from its interface-bound sockets, e.g. 192.168.1.2, not loopback).
        while conns.try_join_next().is_some() {}
        streams.retain(|_, tx| !tx.is_closed());
        let tx = streams.entry(src).or_insert_with(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            conns.spawn(carry(socket.clone(), src, upstream.clone(), rx, relayed.clone()));
            tx
        });
        // A full queue means the stream is stuck: drop, as UDP would.
        let _ = tx.try_send(buf[..n].to_vec());
    }
}

/// One source's stream: datagrams from `rx` go out on it, messages from it go back to `src`.
async fn carry(
    socket: Arc<UdpSocket>,
    src: SocketAddr,
    upstream: Upstream,
    mut rx: mpsc::Receiver<Vec<u8>>,
    relayed: Relayed,
) {
    tokio::time::sleep(START_DELAY).await;
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, open_tcp(&upstream)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            tracing::warn!(host = %upstream.host, port = upstream.port, error = %e, "TURN over TCP: cannot connect");
            return;
        }
        Err(_) => {
            tracing::warn!(host = %upstream.host, port = upstream.port, "TURN over TCP: connecting timed out");
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    match &upstream.tls {
        None => pump(tcp, socket, src, &mut rx, &relayed).await,
        Some(config) => {
            let Ok(name) = ServerName::try_from(upstream.host.clone()) else {
                tracing::warn!(host = %upstream.host, "TURN over TLS: not a valid server name");
                return;
            };
            let connector = tokio_rustls::TlsConnector::from(config.clone());
            match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
                Ok(Ok(tls)) => pump(tls, socket, src, &mut rx, &relayed).await,
                Ok(Err(e)) => {
                    tracing::warn!(host = %upstream.host, error = %e, "TURN over TLS: handshake failed")
                }
                Err(_) => tracing::warn!(host = %upstream.host, "TURN over TLS: handshake timed out"),
            }
        }
    }
}

async fn pump<S: AsyncRead + AsyncWrite>(
    stream: S,
    socket: Arc<UdpSocket>,
    src: SocketAddr,
    rx: &mut mpsc::Receiver<Vec<u8>>,
    relayed: &Relayed,
) {
    let (reader, mut writer) = tokio::io::split(stream);
    let up = async {
        while let Some(data) = rx.recv().await {
            if writer.write_all(&data).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        let mut messages = crate::stream::MessageReader::new(reader);
        while let Some(message) = messages.next().await {
            if let Some(addr) = allocated_address(&message)
                && let Ok(mut set) = relayed.lock()
            {
                set.insert(addr);
            }
            let _ = socket.send_to(&message, src).await;
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// The XOR-RELAYED-ADDRESS of an Allocate success response.
fn allocated_address(message: &[u8]) -> Option<SocketAddr> {
    // Allocate success response: method 0x003, class 0b10.
    if message.get(..2)? != [0x01, 0x03] {
        return None;
    }
    let mut m = rtc_stun::message::Message::new();
    m.unmarshal_binary(message).ok()?;
    let mut a = rtc_stun::xoraddr::XorMappedAddress::default();
    a.get_from_as(&m, rtc_stun::attributes::ATTR_XOR_RELAYED_ADDRESS).ok()?;
    Some(SocketAddr::new(a.ip, a.port))
}

/// A TCP connection to the server, through the proxy when one is set.
async fn open_tcp(upstream: &Upstream) -> std::io::Result<TcpStream> {
    let Some(proxy) = &upstream.proxy else {
        return TcpStream::connect((upstream.host.as_str(), upstream.port)).await;
    };
    let tcp = TcpStream::connect(proxy.as_str()).await?;
    http_connect(tcp, &upstream.host, upstream.port).await
}

/// Ask an HTTP proxy for a tunnel to `host:port` (RFC 9110 §9.3.6) and return the tunnel.
pub async fn http_connect(mut tcp: TcpStream, host: &str, port: u16) -> std::io::Result<TcpStream> {
    let authority = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: hearth\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut reader = BufReader::new(tcp);
    // Every line is read with a cap: a proxy that never sends a newline cannot grow memory.
    let mut status = String::new();
    (&mut reader).take(8192).read_line(&mut status).await?;
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if !code.starts_with('2') {
        return Err(std::io::Error::other(format!(
            "the proxy refused CONNECT {authority}: {}",
            status.trim()
        )));
    }
    // Skip the headers, up to the empty line; keep them bounded.
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = (&mut reader).take(8192).read_line(&mut line).await?;
        total += n;
        if n == 0 || total > 16384 {
            return Err(std::io::Error::other("the proxy's CONNECT reply did not end"));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
    }
    if !reader.buffer().is_empty() {
        return Err(std::io::Error::other("the proxy sent data before the tunnel opened"));
    }
    Ok(reader.into_inner())
}
