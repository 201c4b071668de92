//! The relay's protocol core, sans-IO: STUN/TURN messages and peer datagrams in, datagrams out.
//!
//! ```text
//! loop {
//!     relay.handle_client(from, bytes, now, &mut ports)   // a datagram or a framed TCP/TLS message
//!     relay.handle_peer(relay_addr, peer, bytes, now)     // a datagram on a relayed socket
//!     relay.tick(now)                                     // about once a second
//!     while let Some(out) = relay.poll_output() { send it / close the relayed socket }
//! }
//! ```
//! Invariants: no input panics; every request gets exactly one response (or, for a retransmitted
//! Allocate, the same one again); nothing reaches a peer without a live permission for its IP; a
//! denied address never gets a permission. The only I/O the core asks for is a new relayed UDP
//! socket, through [`RelayPorts::bind`], while it answers an Allocate.

use crate::auth::{self, NonceKey};
use crate::metrics::RelayMetrics;
use ipnet::IpNet;
use rtc_crypto::providers::RingCrypto;
use rtc_stun::attributes::*;
use rtc_stun::error_code::{ErrorCode, ErrorCodeAttribute};
use rtc_stun::fingerprint::FINGERPRINT;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::*;
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use rtc_turn::proto::chandata::ChannelData;
use rtc_turn::proto::channum::ChannelNumber;
use rtc_turn::proto::lifetime::Lifetime;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How a client reached the relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

/// A client's 5-tuple as the relay sees it: transport, the relay's address, the client's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    pub transport: Transport,
    pub server: SocketAddr,
    pub client: SocketAddr,
}

/// The address family of a relayed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// What the driver must do.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// Send to a client (as one datagram over UDP, as bytes on its stream over TCP/TLS).
    ToClient { to: ClientAddr, data: Vec<u8> },
    /// Send one datagram from the relayed socket bound at `relay` to `peer`.
    ToPeer { relay: SocketAddr, peer: SocketAddr, data: Vec<u8> },
    /// The allocation using the relayed socket bound at `relay` ended: close the socket.
    CloseRelay { relay: SocketAddr },
}

/// The relay could not get a relayed socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no relayed port available")]
pub struct BindFailed;

/// The one piece of I/O the core needs: a new UDP socket for an allocation.
pub trait RelayPorts {
    /// Bind a UDP socket of `family` for relaying and return its local address (the driver
    /// starts reading it; datagrams arriving there go to [`Relay::handle_peer`]).
    fn bind(&mut self, family: Family) -> Result<SocketAddr, BindFailed>;
}

/// Everything the relay is told by its operator.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// REALM of the long-term credentials.
    pub realm: String,
    /// Shared secret of the TURN REST credentials (coturn's `static-auth-secret`).
    pub secret: Vec<u8>,
    /// The address peers reach relayed ports at (IPv4); `None` refuses IPv4 allocations.
    pub public_v4: Option<Ipv4Addr>,
    /// The address peers reach relayed ports at (IPv6); `None` refuses IPv6 allocations.
    pub public_v6: Option<Ipv6Addr>,
    /// Allocations at once, all users together.
    pub max_allocations: usize,
    /// Allocations at once per user (the part of the REST user name after the expiry).
    pub max_allocations_per_user: usize,
    /// Relayed bytes per second per allocation, each direction together; 0 = no limit.
    pub allocation_bytes_per_sec: u64,
    /// Relayed bytes per second for the whole relay; 0 = no limit.
    pub total_bytes_per_sec: u64,
    /// Peer address ranges never relayed to (besides the built-in ones).
    pub denied_peers: Vec<IpNet>,
    /// The server's own sockets (signaling, TURN listeners, metrics): never relayed to.
    pub own_addresses: Vec<SocketAddr>,
    /// Relay to loopback peers (tests on one machine only; off in production).
    pub allow_loopback_peers: bool,
    /// How long a NONCE stays valid.
    pub nonce_ttl: Duration,
    /// Longest allocation lifetime granted per Allocate/Refresh.
    pub max_lifetime: Duration,
}

impl RelayConfig {
    /// Defaults for everything but the realm and secret.
    pub fn new(realm: impl Into<String>, secret: impl Into<Vec<u8>>) -> RelayConfig {
        RelayConfig {
            realm: realm.into(),
            secret: secret.into(),
            public_v4: None,
            public_v6: None,
            max_allocations: 2000,
            max_allocations_per_user: 16,
            allocation_bytes_per_sec: 1_250_000, // 10 Mbit/s
            total_bytes_per_sec: 0,
            denied_peers: Vec::new(),
            own_addresses: Vec::new(),
            allow_loopback_peers: false,
            nonce_ttl: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(3600),
        }
    }
}

const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
const PROTO_UDP: u8 = 17;

/// A token bucket over bytes; `rate` 0 means unlimited.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(bytes_per_sec: u64, now: Instant) -> Bucket {
        Bucket { rate: bytes_per_sec as f64, tokens: bytes_per_sec as f64, last: now }
    }

    fn take(&mut self, bytes: usize, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        // Burst: one second's worth.
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= bytes as f64 {
            self.tokens -= bytes as f64;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Allocation {
    relay: SocketAddr,
    relayed: SocketAddr,
    username: String,
    user: String,
    key: Vec<u8>,
    expires: Instant,
    permissions: HashMap<IpAddr, Instant>,
    channels: HashMap<u16, (SocketAddr, Instant)>,
    peer_channels: HashMap<SocketAddr, u16>,
    bucket: Bucket,
    allocate_txn: TransactionId,
    allocate_response: Vec<u8>,
}

impl Allocation {
    fn permitted(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|until| *until > now)
    }
}

/// Why a request was refused or a packet dropped (the label in `/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    BadRequest,
    Forged,
    Expired,
    BadUsername,
    WrongCredentials,
    StaleNonce,
    AllocationMismatch,
    UnsupportedTransport,
    AddressFamily,
    UserQuota,
    Capacity,
    DeniedPeer,
    UnknownMethod,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::BadRequest => "bad_request",
            Refusal::Forged => "forged_credentials",
            Refusal::Expired => "expired_credentials",
            Refusal::BadUsername => "bad_username",
            Refusal::WrongCredentials => "wrong_credentials",
            Refusal::StaleNonce => "stale_nonce",
            Refusal::AllocationMismatch => "allocation_mismatch",
            Refusal::UnsupportedTransport => "unsupported_transport",
            Refusal::AddressFamily => "address_family",
            Refusal::UserQuota => "user_quota",
            Refusal::Capacity => "capacity",
            Refusal::DeniedPeer => "denied_peer",
            Refusal::UnknownMethod => "unknown_method",
        }
    }
}

/// The TURN relay state machine.
#[derive(Debug)]
pub struct Relay {
    config: RelayConfig,
    metrics: RelayMetrics,
    nonce_key: NonceKey,
    clock_base: (Instant, u64),
    allocations: HashMap<ClientAddr, Allocation>,
    by_relay: HashMap<SocketAddr, ClientAddr>,
    per_user: HashMap<String, usize>,
    total: Bucket,
    out: VecDeque<Output>,
}

/// An authenticated request: who, and the key to sign the response with.
struct Authed {
    username: String,
    key: Vec<u8>,
}

impl Relay {
    /// A relay whose clock reads `unix_now` (seconds since 1970) at `now`.
    pub fn new(config: RelayConfig, metrics: RelayMetrics, now: Instant, unix_now: u64) -> Relay {
        let total = Bucket::new(config.total_bytes_per_sec, now);
        Relay {
            nonce_key: NonceKey::random(),
            config,
            metrics,
            clock_base: (now, unix_now),
            allocations: HashMap::new(),
            by_relay: HashMap::new(),
            per_user: HashMap::new(),
            total,
            out: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Allocations alive now.
    pub fn allocation_count(&self) -> usize {
        self.allocations.len()
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn unix(&self, now: Instant) -> u64 {
        self.clock_base.1 + now.saturating_duration_since(self.clock_base.0).as_secs()
    }

    /// A datagram (UDP) or one framed message (TCP/TLS) from a client.
    pub fn handle_client(&mut self, from: ClientAddr, data: &[u8], now: Instant, ports: &mut dyn RelayPorts) {
        if data.len() < 4 {
            self.metrics.dropped("malformed");
            return;
        }
        if data[0] >> 6 == 0b01 {
            self.channel_data_from_client(from, data, now);
            return;
        }
        if !is_stun_message(data) {
            self.metrics.dropped("malformed");
            return;
        }
        let mut m = Message::new();
        if m.unmarshal_binary(data).is_err() {
            self.metrics.dropped("malformed");
            return;
        }
        match m.typ.class {
            CLASS_REQUEST => self.request(from, m, now, ports),
            CLASS_INDICATION if m.typ.method == METHOD_SEND => self.send_indication(from, &m, now),
            _ => self.metrics.dropped("unexpected_message"),
        }
    }

    /// A datagram that arrived from `peer` on the relayed socket bound at `relay`.
    pub fn handle_peer(&mut self, relay: SocketAddr, peer: SocketAddr, data: &[u8], now: Instant) {
        let Some(client) = self.by_relay.get(&relay).copied() else { return };
        let Some(alloc) = self.allocations.get_mut(&client) else { return };
        if !alloc.permitted(peer.ip(), now) {
            self.metrics.dropped("no_permission");
            return;
        }
        if !alloc.bucket.take(data.len(), now) || !self.total.take(data.len(), now) {
            self.metrics.dropped("bandwidth");
            return;
        }
        let channel = alloc
            .peer_channels
            .get(&peer)
            .copied()
            .filter(|n| alloc.channels.get(n).is_some_and(|(_, until)| *until > now));
        let framed = match channel {
            Some(number) => {
                let mut cd =
                    ChannelData { data: data.to_vec(), number: ChannelNumber(number), raw: Vec::new() };
                cd.encode();
                cd.raw
            }
            None => {
                let mut m = Message::new();
                let built = m.build(&[
                    Box::new(TransactionId::new()),
                    Box::new(MessageType::new(METHOD_DATA, CLASS_INDICATION)),
                    Box::new(rtc_turn::proto::peeraddr::PeerAddress { ip: peer.ip(), port: peer.port() }),
                    Box::new(rtc_turn::proto::data::Data(data.to_vec())),
                ]);
                if built.is_err() {
                    return;
                }
                m.raw
            }
        };
        self.metrics.relayed("to_client", data.len());
        self.out.push_back(Output::ToClient { to: client, data: framed });
    }

    /// A TCP or TLS client went away: its allocation ends with it (RFC 8656 §3.1).
    pub fn client_closed(&mut self, from: ClientAddr) {
        self.remove(&from);
    }

    /// Expire allocations, permissions and channels. Call about once a second.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<ClientAddr> =
            self.allocations.iter().filter(|(_, a)| a.expires <= now).map(|(c, _)| *c).collect();
        for client in expired {
            self.remove(&client);
        }
        for alloc in self.allocations.values_mut() {
            alloc.permissions.retain(|_, until| *until > now);
            let mut gone = Vec::new();
            alloc.channels.retain(|_, (peer, until)| {
                let keep = *until > now;
                if !keep {
                    gone.push(*peer);
                }
                keep
            });
            for peer in gone {
                alloc.peer_channels.remove(&peer);
            }
        }
    }

    fn remove(&mut self, client: &ClientAddr) {
        let Some(alloc) = self.allocations.remove(client) else { return };
        self.by_relay.remove(&alloc.relay);
        if let Some(n) = self.per_user.get_mut(&alloc.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&alloc.user);
            }
        }
        self.metrics.allocations.dec();
        self.out.push_back(Output::CloseRelay { relay: alloc.relay });
    }

    fn channel_data_from_client(&mut self, from: ClientAddr, data: &[u8], now: Instant) {
        let mut cd = ChannelData { raw: data.to_vec(), ..Default::default() };
        if cd.decode().is_err() {
            self.metrics.dropped("malformed");
            return;
        }
        let Some(alloc) = self.allocations.get_mut(&from) else {
            self.metrics.dropped("no_allocation");
            return;
        };
        let Some((peer, until)) = alloc.channels.get(&cd.number.0).copied() else {
            self.metrics.dropped("no_channel");
            return;
        };
        if until <= now || !alloc.permitted(peer.ip(), now) {
            self.metrics.dropped("no_permission");
            return;
        }
        if !alloc.bucket.take(cd.data.len(), now) || !self.total.take(cd.data.len(), now) {
            self.metrics.dropped("bandwidth");
            return;
        }
        self.metrics.relayed("to_peer", cd.data.len());
        self.out.push_back(Output::ToPeer { relay: alloc.relay, peer, data: cd.data });
    }

    fn send_indication(&mut self, from: ClientAddr, m: &Message, now: Instant) {
        let Some(alloc) = self.allocations.get_mut(&from) else {
            self.metrics.dropped("no_allocation");
            return;
        };
        let (Some(peer), Ok(data)) = (peer_addresses(m).into_iter().next(), m.get(ATTR_DATA)) else {
            self.metrics.dropped("malformed");
            return;
        };
        if !alloc.permitted(peer.ip(), now) {
            self.metrics.dropped("no_permission");
            return;
        }
        if !alloc.bucket.take(data.len(), now) || !self.total.take(data.len(), now) {
            self.metrics.dropped("bandwidth");
            return;
        }
        self.metrics.relayed("to_peer", data.len());
        self.out.push_back(Output::ToPeer { relay: alloc.relay, peer, data });
    }

    fn request(&mut self, from: ClientAddr, mut m: Message, now: Instant, ports: &mut dyn RelayPorts) {
        let method = m.typ.method;
        if method == METHOD_BINDING {
            let reply = build(
                &m,
                METHOD_BINDING,
                CLASS_SUCCESS_RESPONSE,
                |r| XorMappedAddress { ip: canonical(from.client.ip()), port: from.client.port() }.add_to(r),
                None,
            );
            self.reply(from, reply);
            return;
        }
        if ![METHOD_ALLOCATE, METHOD_REFRESH, METHOD_CREATE_PERMISSION, METHOD_CHANNEL_BIND].contains(&method)
        {
            self.refuse(from, &m, Refusal::UnknownMethod, 400, "Bad Request: unsupported method", None);
            return;
        }
        let Some(authed) = self.authenticate(from, &mut m, now) else { return };
        match method {
            METHOD_ALLOCATE => self.allocate(from, &m, authed, now, ports),
            METHOD_REFRESH => self.refresh(from, &m, authed, now),
            METHOD_CREATE_PERMISSION => self.create_permission(from, &m, authed, now),
            _ => self.channel_bind(from, &m, authed, now),
        }
    }

    /// Checks the long-term credentials of a request; answers it (challenge or error) when they
    /// do not hold.
    fn authenticate(&mut self, from: ClientAddr, m: &mut Message, now: Instant) -> Option<Authed> {
        let unix = self.unix(now);
        if !m.contains(ATTR_MESSAGE_INTEGRITY) {
            // The normal first round trip: tell the client the realm and a nonce.
            let reply = self.challenge(m, 401, "Unauthorized", unix);
            self.reply(from, reply);
            return None;
        }
        let text = |m: &Message, attr| TextAttribute::get_from_as(m, attr).ok().map(|t| t.text);
        let (Some(username), Some(realm), Some(nonce)) =
            (text(m, ATTR_USERNAME), text(m, ATTR_REALM), text(m, ATTR_NONCE))
        else {
            self.refuse(
                from,
                m,
                Refusal::BadRequest,
                400,
                "Bad Request: missing USERNAME, REALM or NONCE",
                None,
            );
            return None;
        };
        if realm != self.config.realm || !self.nonce_key.check(&nonce, unix, self.config.nonce_ttl.as_secs())
        {
            self.metrics.refused(Refusal::StaleNonce);
            let reply = self.challenge(m, 438, "Stale Nonce", unix);
            self.reply(from, reply);
            return None;
        }
        let existing = self.allocations.get(&from).map(|a| (a.username.clone(), a.key.clone()));
        if let Some((alloc_username, key)) = existing {
            if username != alloc_username {
                self.refuse(from, m, Refusal::WrongCredentials, 441, "Wrong Credentials", None);
                return None;
            }
            if MessageIntegrity::check(m, &key, &RingCrypto).is_err() {
                self.refuse_challenge(from, m, Refusal::Forged, unix);
                return None;
            }
            return Some(Authed { username, key });
        }
        let Some((expiry, _user)) = auth::split_username(&username) else {
            self.refuse_challenge(from, m, Refusal::BadUsername, unix);
            return None;
        };
        let password = auth::rest_password(&self.config.secret, &username);
        let Ok(key) = MessageIntegrity::long_term_integrity_key(
            username.clone(),
            self.config.realm.clone(),
            password,
            &RingCrypto,
        ) else {
            self.refuse(from, m, Refusal::BadRequest, 500, "Server Error", None);
            return None;
        };
        if MessageIntegrity::check(m, &key, &RingCrypto).is_err() {
            self.refuse_challenge(from, m, Refusal::Forged, unix);
            return None;
        }
        if expiry < unix {
            self.refuse_challenge(from, m, Refusal::Expired, unix);
            return None;
        }
        Some(Authed { username, key })
    }

    fn allocate(
        &mut self,
        from: ClientAddr,
        m: &Message,
        authed: Authed,
        now: Instant,
        ports: &mut dyn RelayPorts,
    ) {
        let key = Some(authed.key.as_slice());
        if let Some(alloc) = self.allocations.get(&from) {
            if alloc.allocate_txn == m.transaction_id {
                let again = alloc.allocate_response.clone();
                self.reply(from, again);
            } else {
                self.refuse(from, m, Refusal::AllocationMismatch, 437, "Allocation Mismatch", key);
            }
            return;
        }
        match m.get(ATTR_REQUESTED_TRANSPORT) {
            Ok(v) if v.first() == Some(&PROTO_UDP) => {}
            Ok(_) => {
                self.refuse(
                    from,
                    m,
                    Refusal::UnsupportedTransport,
                    442,
                    "Unsupported Transport Protocol",
                    key,
                );
                return;
            }
            Err(_) => {
                self.refuse(from, m, Refusal::BadRequest, 400, "Bad Request: no REQUESTED-TRANSPORT", key);
                return;
            }
        }
        if m.contains(ATTR_RESERVATION_TOKEN) {
            self.refuse(from, m, Refusal::Capacity, 508, "Insufficient Capacity: no reservations", key);
            return;
        }
        let family = match m.get(ATTR_REQUESTED_ADDRESS_FAMILY).ok().and_then(|v| v.first().copied()) {
            None | Some(0x01) => Family::V4,
            Some(0x02) => Family::V6,
            Some(_) => {
                self.refuse(from, m, Refusal::BadRequest, 400, "Bad Request: unknown address family", key);
                return;
            }
        };
        let public_ip: Option<IpAddr> = match family {
            Family::V4 => self.config.public_v4.map(IpAddr::V4),
            Family::V6 => self.config.public_v6.map(IpAddr::V6),
        };
        let Some(public_ip) = public_ip else {
            self.refuse(from, m, Refusal::AddressFamily, 440, "Address Family not Supported", key);
            return;
        };
        let user = auth::split_username(&authed.username).map(|(_, u)| u.to_string()).unwrap_or_default();
        if self.allocations.len() >= self.config.max_allocations {
            self.refuse(from, m, Refusal::Capacity, 508, "Insufficient Capacity", key);
            return;
        }
        if self.per_user.get(&user).copied().unwrap_or(0) >= self.config.max_allocations_per_user {
            self.refuse(from, m, Refusal::UserQuota, 486, "Allocation Quota Reached", key);
            return;
        }
        let Ok(relay) = ports.bind(family) else {
            self.refuse(from, m, Refusal::Capacity, 508, "Insufficient Capacity: no relayed port", key);
            return;
        };
        let lifetime = self.lifetime(m);
        let relayed = SocketAddr::new(public_ip, relay.port());
        let response = build(
            m,
            METHOD_ALLOCATE,
            CLASS_SUCCESS_RESPONSE,
            |r| {
                XorMappedAddress { ip: relayed.ip(), port: relayed.port() }
                    .add_to_as(r, ATTR_XOR_RELAYED_ADDRESS)?;
                Lifetime(lifetime).add_to(r)?;
                XorMappedAddress { ip: canonical(from.client.ip()), port: from.client.port() }.add_to(r)
            },
            key,
        );
        *self.per_user.entry(user.clone()).or_insert(0) += 1;
        self.metrics.allocations.inc();
        self.metrics.allocations_total.inc();
        self.by_relay.insert(relay, from);
        self.allocations.insert(
            from,
            Allocation {
                relay,
                relayed,
                username: authed.username,
                user,
                key: authed.key,
                expires: now + lifetime,
                permissions: HashMap::new(),
                channels: HashMap::new(),
                peer_channels: HashMap::new(),
                bucket: Bucket::new(self.config.allocation_bytes_per_sec, now),
                allocate_txn: m.transaction_id,
                allocate_response: response.clone(),
            },
        );
        self.reply(from, response);
    }

    /// The lifetime granted: what was asked, within [default, max] (RFC 8656 §7.2).
    fn lifetime(&self, m: &Message) -> Duration {
        let mut asked = Lifetime::default();
        let asked = if asked.get_from(m).is_ok() { asked.0 } else { DEFAULT_LIFETIME };
        asked.min(self.config.max_lifetime).max(DEFAULT_LIFETIME.min(self.config.max_lifetime))
    }

    fn refresh(&mut self, from: ClientAddr, m: &Message, authed: Authed, now: Instant) {
        let key = Some(authed.key.as_slice());
        if !self.allocations.contains_key(&from) {
            self.refuse(from, m, Refusal::AllocationMismatch, 437, "Allocation Mismatch", key);
            return;
        }
        let mut asked = Lifetime::default();
        let zero = asked.get_from(m).is_ok() && asked.0.is_zero();
        let lifetime = if zero { Duration::ZERO } else { self.lifetime(m) };
        if zero {
            self.remove(&from);
        } else if let Some(alloc) = self.allocations.get_mut(&from) {
            alloc.expires = now + lifetime;
        }
        let reply = build(m, METHOD_REFRESH, CLASS_SUCCESS_RESPONSE, |r| Lifetime(lifetime).add_to(r), key);
        self.reply(from, reply);
    }

    fn create_permission(&mut self, from: ClientAddr, m: &Message, authed: Authed, now: Instant) {
        let key = Some(authed.key.as_slice());
        let Some(relayed) = self.allocations.get(&from).map(|a| a.relayed) else {
            self.refuse(from, m, Refusal::AllocationMismatch, 437, "Allocation Mismatch", key);
            return;
        };
        let peers = peer_addresses(m);
        if peers.is_empty() {
            self.refuse(from, m, Refusal::BadRequest, 400, "Bad Request: no XOR-PEER-ADDRESS", key);
            return;
        }
        if !self.peers_usable(from, m, key, relayed, &peers) {
            return;
        }
        if let Some(alloc) = self.allocations.get_mut(&from) {
            for p in peers {
                alloc.permissions.insert(p.ip(), now + PERMISSION_LIFETIME);
            }
        }
        let reply = build(m, METHOD_CREATE_PERMISSION, CLASS_SUCCESS_RESPONSE, |_| Ok(()), key);
        self.reply(from, reply);
    }

    fn channel_bind(&mut self, from: ClientAddr, m: &Message, authed: Authed, now: Instant) {
        let key = Some(authed.key.as_slice());
        let Some(relayed) = self.allocations.get(&from).map(|a| a.relayed) else {
            self.refuse(from, m, Refusal::AllocationMismatch, 437, "Allocation Mismatch", key);
            return;
        };
        let mut number = ChannelNumber::default();
        let peer = peer_addresses(m).into_iter().next();
        let (true, Some(peer)) = (number.get_from(m).is_ok() && number.valid(), peer) else {
            self.refuse(from, m, Refusal::BadRequest, 400, "Bad Request: channel number or peer", key);
            return;
        };
        if !self.peers_usable(from, m, key, relayed, &[peer]) {
            return;
        }
        let conflict = self.allocations.get(&from).is_some_and(|a| {
            a.channels.get(&number.0).is_some_and(|(p, _)| *p != peer)
                || a.peer_channels.get(&peer).is_some_and(|n| *n != number.0)
        });
        if conflict {
            self.refuse(from, m, Refusal::BadRequest, 400, "Bad Request: channel bound to another peer", key);
            return;
        }
        if let Some(alloc) = self.allocations.get_mut(&from) {
            alloc.channels.insert(number.0, (peer, now + CHANNEL_LIFETIME));
            alloc.peer_channels.insert(peer, number.0);
            alloc.permissions.insert(peer.ip(), now + PERMISSION_LIFETIME);
        }
        let reply = build(m, METHOD_CHANNEL_BIND, CLASS_SUCCESS_RESPONSE, |_| Ok(()), key);
        self.reply(from, reply);
    }

    /// Whether every peer may get a permission on the allocation relayed at `relayed`: the same
    /// address family (else 443) and not a denied address (else 403, see [`Relay::peer_allowed`]).
    /// Answers the request when not.
    fn peers_usable(
        &mut self,
        from: ClientAddr,
        m: &Message,
        key: Option<&[u8]>,
        relayed: SocketAddr,
        peers: &[SocketAddr],
    ) -> bool {
        if peers.iter().any(|p| p.is_ipv4() != relayed.is_ipv4()) {
            self.refuse(from, m, Refusal::AddressFamily, 443, "Peer Address Family Mismatch", key);
            return false;
        }
        if peers.iter().any(|p| !self.peer_allowed(*p)) {
            self.refuse(from, m, Refusal::DeniedPeer, 403, "Forbidden: peer address not allowed", key);
            return false;
        }
        true
    }

    /// No open relay: loopback, link-local, unspecified, multicast and broadcast addresses, the
    /// operator's denied ranges and the server's own sockets are never peers.
    pub fn peer_allowed(&self, peer: SocketAddr) -> bool {
        let ip = canonical(peer.ip());
        let built_in_denied = match ip {
            IpAddr::V4(v4) => {
                v4.is_unspecified()
                    || v4.is_multicast()
                    || v4.is_broadcast()
                    || v4.is_link_local()
                    || v4.octets()[0] == 0
                    || (v4.is_loopback() && !self.config.allow_loopback_peers)
            }
            IpAddr::V6(v6) => {
                v6.is_unspecified()
                    || v6.is_multicast()
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
                    || (v6.is_loopback() && !self.config.allow_loopback_peers)
            }
        };
        if built_in_denied || self.config.denied_peers.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        let peer = SocketAddr::new(ip, peer.port());
        !self.config.own_addresses.iter().any(|own| {
            own.port() == peer.port()
                && (canonical(own.ip()) == ip || own.ip().is_unspecified() && self.is_own_ip(ip))
        })
    }

    fn is_own_ip(&self, ip: IpAddr) -> bool {
        ip.is_loopback()
            || self.config.public_v4.map(IpAddr::V4) == Some(ip)
            || self.config.public_v6.map(IpAddr::V6) == Some(ip)
    }

    fn reply(&mut self, to: ClientAddr, data: Vec<u8>) {
        if !data.is_empty() {
            self.out.push_back(Output::ToClient { to, data });
        }
    }

    fn refuse(
        &mut self,
        to: ClientAddr,
        m: &Message,
        why: Refusal,
        code: u16,
        reason: &str,
        key: Option<&[u8]>,
    ) {
        self.metrics.refused(why);
        tracing::debug!(client = %to.client, transport = to.transport.as_str(), reason = why.as_str(), "TURN request refused");
        let reply = build(
            m,
            m.typ.method,
            CLASS_ERROR_RESPONSE,
            |r| ErrorCodeAttribute { code: ErrorCode(code), reason: reason.as_bytes().to_vec() }.add_to(r),
            key,
        );
        self.reply(to, reply);
    }

    /// A 401 with a fresh nonce, counted as a refusal.
    fn refuse_challenge(&mut self, to: ClientAddr, m: &Message, why: Refusal, unix: u64) {
        self.metrics.refused(why);
        tracing::debug!(client = %to.client, transport = to.transport.as_str(), reason = why.as_str(), "TURN credentials refused");
        let reply = self.challenge(m, 401, "Unauthorized", unix);
        self.reply(to, reply);
    }

    /// An error response that (re)starts authentication: REALM and a fresh NONCE, no integrity
    /// (the client has no usable key yet).
    fn challenge(&self, m: &Message, code: u16, reason: &str, unix: u64) -> Vec<u8> {
        let realm = self.config.realm.clone();
        let nonce = self.nonce_key.make(unix);
        build(
            m,
            m.typ.method,
            CLASS_ERROR_RESPONSE,
            |r| {
                ErrorCodeAttribute { code: ErrorCode(code), reason: reason.as_bytes().to_vec() }.add_to(r)?;
                TextAttribute::new(ATTR_REALM, realm).add_to(r)?;
                TextAttribute::new(ATTR_NONCE, nonce).add_to(r)
            },
            None,
        )
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A response to `req`: same transaction, `attrs`, then MESSAGE-INTEGRITY (with `key`) and
/// FINGERPRINT. Empty if it cannot be built (it then goes unanswered, as a lost datagram would).
fn build(
    req: &Message,
    method: Method,
    class: MessageClass,
    attrs: impl FnOnce(&mut Message) -> Result<(), rtc_shared::error::Error>,
    key: Option<&[u8]>,
) -> Vec<u8> {
    let mut r = Message::new();
    r.transaction_id = req.transaction_id;
    r.typ = MessageType::new(method, class);
    r.write_header();
    let result = (|| {
        attrs(&mut r)?;
        TextAttribute::new(ATTR_SOFTWARE, "hearth-turn".into()).add_to(&mut r)?;
        if let Some(key) = key {
            MessageIntegrity::new_raw_integrity_with_provider(key.to_vec(), &RingCrypto).add_to(&mut r)?;
        }
        FINGERPRINT.add_to(&mut r)
    })();
    match result {
        Ok(()) => r.raw,
        Err(_) => Vec::new(),
    }
}

/// Every XOR-PEER-ADDRESS of a message (CreatePermission may carry several).
fn peer_addresses(m: &Message) -> Vec<SocketAddr> {
    let mut cookie_and_txn = [0u8; 16];
    cookie_and_txn[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    cookie_and_txn[4..].copy_from_slice(&m.transaction_id.0);
    m.attributes
        .0
        .iter()
        .filter(|a| a.typ == ATTR_XOR_PEER_ADDRESS)
        .filter_map(|a| {
            let v = &a.value;
            if v.len() < 4 {
                return None;
            }
            let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
            let ip = match (v[1], v.len()) {
                (0x01, 8) => {
                    let mut b = [0u8; 4];
                    for i in 0..4 {
                        b[i] = v[4 + i] ^ cookie_and_txn[i];
                    }
                    IpAddr::V4(Ipv4Addr::from(b))
                }
                (0x02, 20) => {
                    let mut b = [0u8; 16];
                    for i in 0..16 {
                        b[i] = v[4 + i] ^ cookie_and_txn[i];
                    }
                    IpAddr::V6(Ipv6Addr::from(b))
                }
                _ => return None,
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect()
}
