//! The relay's tokio driver: UDP, TCP and TLS listeners and relayed UDP sockets around [`Relay`].
//!
//! One task owns the [`Relay`]; every socket task sends it [`Event`]s over one bounded channel and
//! it answers with sends on the sockets. TCP and TLS clients get a reader task (RFC 8656 §12.5
//! framing, split by `TurnStreamDecoder`) and a writer task each.

use crate::relay::{BindFailed, ClientAddr, Family, Output, Relay, RelayConfig, RelayPorts, Transport};
use crate::{RelayMetrics, TurnError};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

/// The sockets the relay serves clients on. Any may be absent.
#[derive(Default)]
pub struct RelayListeners {
    pub udp: Option<UdpSocket>,
    pub tcp: Option<TcpListener>,
    pub tls: Option<(TcpListener, TlsAcceptor)>,
}

impl std::fmt::Debug for RelayListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayListeners")
            .field("udp", &self.udp.as_ref().and_then(|s| s.local_addr().ok()))
            .field("tcp", &self.tcp.as_ref().and_then(|s| s.local_addr().ok()))
            .field("tls", &self.tls.as_ref().and_then(|(s, _)| s.local_addr().ok()))
            .finish()
    }
}

/// Where relayed sockets are bound.
#[derive(Clone, Debug)]
pub struct RelaySockets {
    /// Local address to bind IPv4 relayed sockets on (usually 0.0.0.0 or the public address).
    pub bind_v4: Option<Ipv4Addr>,
    /// Local address to bind IPv6 relayed sockets on.
    pub bind_v6: Option<Ipv6Addr>,
    /// Ports relayed sockets use.
    pub ports: RangeInclusive<u16>,
}

impl Default for RelaySockets {
    fn default() -> Self {
        RelaySockets { bind_v4: Some(Ipv4Addr::UNSPECIFIED), bind_v6: None, ports: 49152..=65535 }
    }
}

/// Most TCP/TLS clients at once.
const MAX_STREAM_CLIENTS: usize = 4096;
/// Longest a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued toward one stream client before newer ones are dropped.
const STREAM_QUEUE: usize = 512;

#[derive(Debug)]
enum Event {
    Client { from: ClientAddr, data: Vec<u8> },
    Peer { relay: SocketAddr, peer: SocketAddr, data: Vec<u8> },
    StreamOpened { from: ClientAddr, tx: mpsc::Sender<Vec<u8>> },
    StreamClosed { from: ClientAddr },
}

/// Serve until `shutdown` resolves.
pub async fn run(
    listeners: RelayListeners,
    config: RelayConfig,
    sockets: RelaySockets,
    metrics: RelayMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TurnError> {
    let (tx, mut rx) = mpsc::channel::<Event>(8192);
    let mut tasks = JoinSet::new();
    let udp = listeners.udp.map(Arc::new);
    if let Some(udp) = &udp {
        let server = udp.local_addr().map_err(TurnError::Io)?;
        tasks.spawn(read_udp_clients(udp.clone(), server, tx.clone()));
    }
    if let Some(tcp) = listeners.tcp {
        tasks.spawn(accept_streams(tcp, None, tx.clone(), metrics.clone()));
    }
    if let Some((tcp, acceptor)) = listeners.tls {
        tasks.spawn(accept_streams(tcp, Some(acceptor), tx.clone(), metrics.clone()));
    }
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut relay = Relay::new(config, metrics, Instant::now(), unix);
    let mut ports = Ports { sockets, bound: HashMap::new(), tasks: JoinSet::new(), events: tx.clone() };
    let mut streams: HashMap<ClientAddr, mpsc::Sender<Vec<u8>>> = HashMap::new();
    drop(tx);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => relay.tick(Instant::now()),
            event = rx.recv() => {
                let Some(event) = event else { break };
                let now = Instant::now();
                match event {
                    Event::Client { from, data } => relay.handle_client(from, &data, now, &mut ports),
                    Event::Peer { relay: at, peer, data } => relay.handle_peer(at, peer, &data, now),
                    Event::StreamOpened { from, tx } => { streams.insert(from, tx); }
                    Event::StreamClosed { from } => {
                        streams.remove(&from);
                        relay.client_closed(from);
                    }
                }
            }
        }
        while let Some(out) = relay.poll_output() {
            match out {
                Output::ToClient { to, data } => match to.transport {
                    Transport::Udp => {
                        if let Some(udp) = &udp {
                            let _ = udp.try_send_to(&data, to.client);
                        }
                    }
                    Transport::Tcp | Transport::Tls => {
                        if let Some(stream) = streams.get(&to) {
                            let _ = stream.try_send(data);
                        }
                    }
                },
                Output::ToPeer { relay: at, peer, data } => {
                    if let Some((socket, _)) = ports.bound.get(&at) {
                        let _ = socket.try_send_to(&data, peer);
                    }
                }
                Output::CloseRelay { relay: at } => {
                    if let Some((_, reader)) = ports.bound.remove(&at) {
                        reader.abort();
                    }
                }
            }
        }
    }
    tasks.abort_all();
    ports.tasks.abort_all();
    Ok(())
}

/// Binds relayed sockets and starts their readers.
struct Ports {
    sockets: RelaySockets,
    bound: HashMap<SocketAddr, (Arc<UdpSocket>, AbortHandle)>,
    tasks: JoinSet<()>,
    events: mpsc::Sender<Event>,
}

impl RelayPorts for Ports {
    fn bind(&mut self, family: Family) -> Result<SocketAddr, BindFailed> {
        let ip: IpAddr = match family {
            Family::V4 => self.sockets.bind_v4.ok_or(BindFailed)?.into(),
            Family::V6 => self.sockets.bind_v6.ok_or(BindFailed)?.into(),
        };
        let (lo, hi) = (*self.sockets.ports.start(), *self.sockets.ports.end());
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        let start = rand::random::<u32>() % span;
        // Try up to 64 ports from a random start; a busy range means no capacity.
        for i in 0..span.min(64) {
            let port = lo as u32 + (start + i) % span;
            let Ok(port) = u16::try_from(port) else { continue };
            let Ok(std_socket) = std::net::UdpSocket::bind(SocketAddr::new(ip, port)) else { continue };
            if std_socket.set_nonblocking(true).is_err() {
                continue;
            }
            let Ok(socket) = UdpSocket::from_std(std_socket) else { continue };
            let Ok(local) = socket.local_addr() else { continue };
            let socket = Arc::new(socket);
            let reader = self.tasks.spawn(read_peers(socket.clone(), local, self.events.clone()));
            self.bound.insert(local, (socket, reader));
            return Ok(local);
        }
        Err(BindFailed)
    }
}

async fn read_udp_clients(udp: Arc<UdpSocket>, server: SocketAddr, events: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = udp.recv_from(&mut buf).await else {
            // ICMP errors surface as recv errors on some systems: keep serving.
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        let from = ClientAddr { transport: Transport::Udp, server, client };
        if events.send(Event::Client { from, data: buf[..n].to_vec() }).await.is_err() {
            return;
        }
    }
}

async fn read_peers(socket: Arc<UdpSocket>, relay: SocketAddr, events: mpsc::Sender<Event>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        };
        if events.send(Event::Peer { relay, peer, data: buf[..n].to_vec() }).await.is_err() {
            return;
        }
    }
}

async fn accept_streams(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    events: mpsc::Sender<Event>,
    metrics: RelayMetrics,
) {
    let Ok(server) = listener.local_addr() else { return };
    let transport = if tls.is_some() { Transport::Tls } else { Transport::Tcp };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_STREAM_CLIENTS));
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, client)) = listener.accept().await else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let _ = stream.set_nodelay(true);
        let from = ClientAddr { transport, server, client };
        let events = events.clone();
        let tls = tls.clone();
        let gauge = metrics.client_connections.get_or_create(&[("transport", transport.as_str())]).clone();
        conns.spawn(async move {
            let _permit = permit;
            gauge.inc();
            match tls {
                None => serve_stream(stream, from, events).await,
                Some(acceptor) => {
                    if let Ok(Ok(stream)) =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        serve_stream(stream, from, events).await;
                    }
                }
            }
            gauge.dec();
        });
    }
}

async fn serve_stream<S: AsyncRead + AsyncWrite + Send + 'static>(
    stream: S,
    from: ClientAddr,
    events: mpsc::Sender<Event>,
) {
    let (reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(STREAM_QUEUE);
    if events.send(Event::StreamOpened { from, tx }).await.is_err() {
        return;
    }
    let write = async move {
        while let Some(data) = rx.recv().await {
            if writer.write_all(&data).await.is_err() {
                break;
            }
        }
    };
    let events_in = events.clone();
    let read = async move {
        let mut messages = crate::stream::MessageReader::new(reader);
        while let Some(data) = messages.next().await {
            if events_in.send(Event::Client { from, data }).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = read => {}
        _ = write => {}
    }
    let _ = events.send(Event::StreamClosed { from }).await;
}
