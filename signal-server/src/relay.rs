//! The embedded TURN relay: settings, binding its sockets, and the URLs it adds to `welcome`.
//!
//! One process is a whole deployment: the relay (hearth-turn) serves UDP and TCP on one port and
//! TLS on another (sharing the wss certificate), with credentials the signaling server itself
//! hands out, so there is nothing to keep in step with another daemon.

use crate::ServerError;
use crate::auth::TurnConfig;
use crate::config::TlsFiles;
use hearth_turn::RelayConfig;
use hearth_turn::server::{RelayListeners, RelaySockets};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

/// How the embedded relay is set up (see `hearth-signal --help`, the `--turn-*` flags).
#[derive(Clone, Debug)]
pub struct RelaySettings {
    /// UDP and TCP listen address (one port for both).
    pub listen: SocketAddr,
    /// TLS listen address (TURN over TLS), using the server's certificate.
    pub tls_listen: Option<SocketAddr>,
    /// The addresses clients and peers reach this machine at (at most one IPv4 and one IPv6).
    pub public_ips: Vec<IpAddr>,
    /// The host name on the certificate, for `turns:` URLs. Defaults to the public address.
    pub tls_name: Option<String>,
    /// Ports of relayed addresses.
    pub relay_ports: RangeInclusive<u16>,
    pub max_allocations: usize,
    pub max_allocations_per_user: usize,
    /// Per allocation, kbit/s; 0 = no cap.
    pub allocation_kbps: u64,
    /// Whole relay, Mbit/s; 0 = no cap.
    pub total_mbps: u64,
    pub denied_peers: Vec<ipnet::IpNet>,
    pub allow_loopback_peers: bool,
}

impl RelaySettings {
    /// Settings with defaults for everything but where it listens and is reached.
    pub fn new(listen: SocketAddr, public_ips: Vec<IpAddr>) -> RelaySettings {
        RelaySettings {
            listen,
            tls_listen: None,
            public_ips,
            tls_name: None,
            relay_ports: 49152..=65535,
            max_allocations: 2000,
            max_allocations_per_user: 16,
            allocation_kbps: 10_000,
            total_mbps: 0,
            denied_peers: Vec::new(),
            allow_loopback_peers: false,
        }
    }

    fn public_v4(&self) -> Option<Ipv4Addr> {
        self.public_ips.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
    }

    fn public_v6(&self) -> Option<Ipv6Addr> {
        self.public_ips.iter().find_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
    }
}

/// The relay's bound sockets, ready to serve.
pub struct BoundRelay {
    pub listeners: RelayListeners,
    pub udp_tcp: SocketAddr,
    pub tls: Option<SocketAddr>,
}

impl std::fmt::Debug for BoundRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundRelay").field("udp_tcp", &self.udp_tcp).field("tls", &self.tls).finish()
    }
}

/// Bind the relay's UDP and TCP listeners on one port (port 0 picks one free for both) and its
/// TLS listener.
pub async fn bind(settings: &RelaySettings, tls: Option<&TlsFiles>) -> Result<BoundRelay, ServerError> {
    let mut attempts = if settings.listen.port() == 0 { 20 } else { 1 };
    let (udp, tcp) = loop {
        attempts -= 1;
        let udp = tokio::net::UdpSocket::bind(settings.listen).await?;
        let port = udp.local_addr()?.port();
        match crate::bind(&SocketAddr::new(settings.listen.ip(), port).to_string()).await {
            Ok(tcp) => break (udp, tcp),
            Err(e) if attempts == 0 => return Err(e.into()),
            Err(_) => continue,
        }
    };
    let udp_tcp = udp.local_addr()?;
    let tls_listener = match settings.tls_listen {
        None => None,
        Some(addr) => {
            let Some(files) = tls else {
                return Err(ServerError::Tls {
                    message: "the TURN TLS listener needs --tls-cert and --tls-key".into(),
                });
            };
            Some((crate::bind(&addr.to_string()).await?, crate::tls::acceptor(files)?))
        }
    };
    let tls_addr = match &tls_listener {
        Some((l, _)) => Some(l.local_addr()?),
        None => None,
    };
    Ok(BoundRelay {
        listeners: RelayListeners { udp: Some(udp), tcp: Some(tcp), tls: tls_listener },
        udp_tcp,
        tls: tls_addr,
    })
}

/// The relay's core configuration; `own` are the server's sockets (never relayed to).
pub fn relay_config(settings: &RelaySettings, secret: &[u8], own: Vec<SocketAddr>) -> RelayConfig {
    let mut c = RelayConfig::new("hearth", secret.to_vec());
    c.public_v4 = settings.public_v4();
    c.public_v6 = settings.public_v6();
    c.max_allocations = settings.max_allocations;
    c.max_allocations_per_user = settings.max_allocations_per_user;
    c.allocation_bytes_per_sec = settings.allocation_kbps * 1000 / 8;
    c.total_bytes_per_sec = settings.total_mbps * 1_000_000 / 8;
    c.denied_peers = settings.denied_peers.clone();
    c.own_addresses = own;
    c.allow_loopback_peers = settings.allow_loopback_peers;
    c
}

/// Where relayed sockets bind: the public address when it is this machine's, else any.
pub fn relay_sockets(settings: &RelaySettings) -> RelaySockets {
    let local = |ip: IpAddr| std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok();
    RelaySockets {
        bind_v4: settings.public_v4().map(|ip| if local(ip.into()) { ip } else { Ipv4Addr::UNSPECIFIED }),
        bind_v6: settings.public_v6().map(|ip| if local(ip.into()) { ip } else { Ipv6Addr::UNSPECIFIED }),
        ports: settings.relay_ports.clone(),
    }
}

fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The URLs clients are given: TURN over UDP, TCP and TLS at each public address.
pub fn urls(settings: &RelaySettings, bound: &BoundRelay) -> (Vec<String>, Vec<String>) {
    let mut stun = Vec::new();
    let mut turn = Vec::new();
    for ip in &settings.public_ips {
        let h = host(*ip);
        stun.push(format!("stun:{h}:{}", bound.udp_tcp.port()));
        turn.push(format!("turn:{h}:{}?transport=udp", bound.udp_tcp.port()));
        turn.push(format!("turn:{h}:{}?transport=tcp", bound.udp_tcp.port()));
    }
    if let Some(tls) = bound.tls {
        let name = settings.tls_name.clone().or_else(|| settings.public_ips.first().map(|ip| host(*ip)));
        if let Some(name) = name {
            turn.push(format!("turns:{name}:{}?transport=tcp", tls.port()));
        }
    }
    (stun, turn)
}

/// Announce the relay (and keep any external TURN servers) with one shared secret.
pub fn announce(
    hub_turn: &mut Option<TurnConfig>,
    stun_urls: &mut Vec<String>,
    secret: &[u8],
    relay: (Vec<String>, Vec<String>),
) {
    let (stun, turn) = relay;
    for url in stun.into_iter().rev() {
        stun_urls.insert(0, url);
    }
    match hub_turn {
        Some(t) => {
            for url in turn.into_iter().rev() {
                t.urls.insert(0, url);
            }
        }
        None => *hub_turn = Some(TurnConfig { urls: turn, secret: secret.to_vec(), ttl_secs: 600 }),
    }
}
