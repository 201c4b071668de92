//! The relay core without sockets: authentication, allocations, permissions, channels, quotas and
//! the no-open-relay rules, with messages built by rtc-stun the way a TURN client builds them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hearth_turn::relay::{BindFailed, ClientAddr, Family, Output, RelayPorts, Transport};
use hearth_turn::{Relay, RelayConfig, RelayMetrics, rest_credentials};
use proptest::prelude::*;
use rtc_crypto::providers::RingCrypto;
use rtc_stun::attributes::*;
use rtc_stun::error_code::ErrorCodeAttribute;
use rtc_stun::integrity::MessageIntegrity;
use rtc_stun::message::*;
use rtc_stun::textattrs::TextAttribute;
use rtc_stun::xoraddr::XorMappedAddress;
use rtc_turn::proto::chandata::ChannelData;
use rtc_turn::proto::channum::ChannelNumber;
use rtc_turn::proto::data::Data;
use rtc_turn::proto::lifetime::Lifetime;
use rtc_turn::proto::peeraddr::PeerAddress;
use rtc_turn::proto::reqtrans::RequestedTransport;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"relay-test-secret";
const UNIX: u64 = 1_800_000_000;

struct FakePorts {
    next: u16,
    fail: bool,
}

impl RelayPorts for FakePorts {
    fn bind(&mut self, family: Family) -> Result<SocketAddr, BindFailed> {
        assert_eq!(family, Family::V4);
        if self.fail {
            return Err(BindFailed);
        }
        self.next += 1;
        Ok(SocketAddr::from(([0, 0, 0, 0], self.next)))
    }
}

struct Lab {
    relay: Relay,
    ports: FakePorts,
    now: Instant,
    metrics: RelayMetrics,
}

fn client(port: u16) -> ClientAddr {
    ClientAddr {
        transport: Transport::Udp,
        server: "10.0.0.1:3478".parse().unwrap(),
        client: SocketAddr::from(([10, 0, 1, 2], port)),
    }
}

fn lab_with(edit: impl FnOnce(&mut RelayConfig)) -> Lab {
    let mut config = RelayConfig::new("hearth", SECRET.to_vec());
    config.public_v4 = Some("203.0.113.7".parse().unwrap());
    config.own_addresses = vec!["10.0.0.1:3478".parse().unwrap(), "0.0.0.0:7878".parse().unwrap()];
    edit(&mut config);
    let metrics = RelayMetrics::default();
    let now = Instant::now();
    Lab {
        relay: Relay::new(config, metrics.clone(), now, UNIX),
        ports: FakePorts { next: 50000, fail: false },
        now,
        metrics,
    }
}

fn lab() -> Lab {
    lab_with(|_| {})
}

fn parse(data: &[u8]) -> Message {
    let mut m = Message::new();
    m.unmarshal_binary(data).expect("a STUN message");
    m
}

fn error_code(m: &Message) -> Option<u16> {
    let mut e = ErrorCodeAttribute::default();
    e.get_from(m).ok().map(|_| e.code.0)
}

struct Creds {
    username: String,
    password: String,
    realm: String,
    nonce: String,
}

impl Lab {
    fn send(&mut self, from: ClientAddr, data: &[u8]) -> Vec<Output> {
        self.relay.handle_client(from, data, self.now, &mut self.ports);
        std::iter::from_fn(|| self.relay.poll_output()).collect()
    }

    fn request(&mut self, from: ClientAddr, data: &[u8]) -> Message {
        let out = self.send(from, data);
        assert_eq!(out.len(), 1, "one response: {out:?}");
        match &out[0] {
            Output::ToClient { to, data } => {
                assert_eq!(*to, from);
                parse(data)
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn refused(&self, reason: &str) -> u64 {
        self.metrics.refused.get_or_create(&[("reason", leak(reason))]).get()
    }

    /// Allocate with REST credentials for `user` valid until `expiry`; returns the response and
    /// the credentials to sign later requests with.
    fn allocate(&mut self, from: ClientAddr, user: &str, expiry: u64) -> (Message, Creds) {
        let (username, password) = rest_credentials(SECRET, user, expiry);
        self.allocate_with(from, username, password)
    }

    fn allocate_with(&mut self, from: ClientAddr, username: String, password: String) -> (Message, Creds) {
        let first =
            msg(METHOD_ALLOCATE, |m| RequestedTransport { protocol: rtc_turn::proto::PROTO_UDP }.add_to(m));
        let challenge = self.request(from, &first);
        assert_eq!(error_code(&challenge), Some(401));
        let realm = TextAttribute::get_from_as(&challenge, ATTR_REALM).unwrap().text;
        let nonce = TextAttribute::get_from_as(&challenge, ATTR_NONCE).unwrap().text;
        let creds = Creds { username, password, realm, nonce };
        let signed = signed(&creds, METHOD_ALLOCATE, |m| {
            RequestedTransport { protocol: rtc_turn::proto::PROTO_UDP }.add_to(m)
        });
        (self.request(from, &signed), creds)
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn msg(method: Method, attrs: impl FnOnce(&mut Message) -> Result<(), rtc_shared::error::Error>) -> Vec<u8> {
    let mut m = Message::new();
    m.typ = MessageType::new(method, CLASS_REQUEST);
    m.new_transaction_id().unwrap();
    m.write_header();
    attrs(&mut m).unwrap();
    m.raw
}

fn signed(
    c: &Creds,
    method: Method,
    attrs: impl FnOnce(&mut Message) -> Result<(), rtc_shared::error::Error>,
) -> Vec<u8> {
    msg(method, |m| {
        attrs(m)?;
        TextAttribute::new(ATTR_USERNAME, c.username.clone()).add_to(m)?;
        TextAttribute::new(ATTR_REALM, c.realm.clone()).add_to(m)?;
        TextAttribute::new(ATTR_NONCE, c.nonce.clone()).add_to(m)?;
        MessageIntegrity::new_long_term_integrity_with_provider(
            c.username.clone(),
            c.realm.clone(),
            c.password.clone(),
            &RingCrypto,
        )?
        .add_to(m)
    })
}

fn relayed(m: &Message) -> SocketAddr {
    let mut a = XorMappedAddress::default();
    a.get_from_as(m, ATTR_XOR_RELAYED_ADDRESS).unwrap();
    SocketAddr::new(a.ip, a.port)
}

fn permission(lab: &mut Lab, from: ClientAddr, c: &Creds, peer: SocketAddr) -> Message {
    let req =
        signed(c, METHOD_CREATE_PERMISSION, |m| PeerAddress { ip: peer.ip(), port: peer.port() }.add_to(m));
    lab.request(from, &req)
}

#[test]
fn binding_needs_no_credentials_and_reports_the_mapped_address() {
    let mut lab = lab();
    let m = lab.request(client(4000), &msg(METHOD_BINDING, |_| Ok(())));
    assert_eq!(m.typ, MessageType::new(METHOD_BINDING, CLASS_SUCCESS_RESPONSE));
    let mut a = XorMappedAddress::default();
    a.get_from(&m).unwrap();
    assert_eq!(SocketAddr::new(a.ip, a.port), client(4000).client);
}

#[test]
fn allocate_with_rest_credentials_gives_a_public_relayed_address() {
    let mut lab = lab();
    let (m, _) = lab.allocate(client(4000), "alice", UNIX + 600);
    assert_eq!(m.typ, MessageType::new(METHOD_ALLOCATE, CLASS_SUCCESS_RESPONSE), "{:?}", error_code(&m));
    assert_eq!(relayed(&m), "203.0.113.7:50001".parse().unwrap());
    let mut life = Lifetime::default();
    life.get_from(&m).unwrap();
    assert_eq!(life.0, Duration::from_secs(600));
    assert!(m.contains(ATTR_MESSAGE_INTEGRITY));
    assert_eq!(lab.relay.allocation_count(), 1);
    assert_eq!(lab.metrics.allocations.get(), 1);
}

#[test]
fn forged_and_expired_credentials_are_refused() {
    let mut lab = lab();
    let (username, _) = rest_credentials(SECRET, "mallory", UNIX + 600);
    let (m, _) = lab.allocate_with(client(4000), username, "guessed".into());
    assert_eq!(error_code(&m), Some(401));
    assert_eq!(lab.refused("forged_credentials"), 1);

    let (username, password) = rest_credentials(b"another secret", "mallory", UNIX + 600);
    let (m, _) = lab.allocate_with(client(4001), username, password);
    assert_eq!(error_code(&m), Some(401));
    assert_eq!(lab.refused("forged_credentials"), 2);

    let (m, _) = lab.allocate(client(4002), "bob", UNIX - 1);
    assert_eq!(error_code(&m), Some(401));
    assert_eq!(lab.refused("expired_credentials"), 1);

    let (m, _) = lab.allocate_with(client(4003), "bob".into(), "x".into());
    assert_eq!(error_code(&m), Some(401));
    assert_eq!(lab.refused("bad_username"), 1);
    assert_eq!(lab.relay.allocation_count(), 0);
}

#[test]
fn a_nonce_from_elsewhere_is_stale() {
    let mut lab = lab();
    let (username, password) = rest_credentials(SECRET, "alice", UNIX + 600);
    let creds = Creds { username, password, realm: "hearth".into(), nonce: "0".repeat(32) };
    let req = signed(&creds, METHOD_ALLOCATE, |m| {
        RequestedTransport { protocol: rtc_turn::proto::PROTO_UDP }.add_to(m)
    });
    let m = lab.request(client(4000), &req);
    assert_eq!(error_code(&m), Some(438));
    assert!(m.contains(ATTR_NONCE));
}

#[test]
fn data_flows_through_permissions_and_channels_only() {
    let mut lab = lab();
    let me = client(4000);
    let (m, c) = lab.allocate(me, "alice", UNIX + 600);
    let relay_local: SocketAddr = "0.0.0.0:50001".parse().unwrap();
    assert_eq!(relayed(&m).port(), relay_local.port());
    let peer: SocketAddr = "198.51.100.9:6000".parse().unwrap();

    // No permission yet: the peer's datagram is dropped, and so is a Send.
    lab.relay.handle_peer(relay_local, peer, b"early", lab.now);
    assert_eq!(lab.relay.poll_output(), None);
    let send = send_indication(peer, b"hello");
    assert!(lab.send(me, &send).is_empty());

    let ok = permission(&mut lab, me, &c, peer);
    assert_eq!(ok.typ, MessageType::new(METHOD_CREATE_PERMISSION, CLASS_SUCCESS_RESPONSE));
    let out = lab.send(me, &send);
    assert_eq!(out, vec![Output::ToPeer { relay: relay_local, peer, data: b"hello".to_vec() }]);
    // The peer's reply comes back as a Data indication.
    lab.relay.handle_peer(relay_local, peer, b"hi back", lab.now);
    let Some(Output::ToClient { to, data }) = lab.relay.poll_output() else { panic!("no data indication") };
    assert_eq!(to, me);
    let m = parse(&data);
    assert_eq!(m.typ, MessageType::new(METHOD_DATA, CLASS_INDICATION));
    assert_eq!(m.get(ATTR_DATA).unwrap(), b"hi back");

    // A channel: ChannelData both ways.
    let bind = signed(&c, METHOD_CHANNEL_BIND, |m| {
        ChannelNumber(0x4001).add_to(m)?;
        PeerAddress { ip: peer.ip(), port: peer.port() }.add_to(m)
    });
    let ok = lab.request(me, &bind);
    assert_eq!(ok.typ, MessageType::new(METHOD_CHANNEL_BIND, CLASS_SUCCESS_RESPONSE));
    let mut cd = ChannelData { data: b"abc".to_vec(), number: ChannelNumber(0x4001), raw: vec![] };
    cd.encode();
    assert_eq!(
        lab.send(me, &cd.raw),
        vec![Output::ToPeer { relay: relay_local, peer, data: b"abc".to_vec() }]
    );
    lab.relay.handle_peer(relay_local, peer, b"xyz12", lab.now);
    let Some(Output::ToClient { data, .. }) = lab.relay.poll_output() else { panic!("no channel data") };
    assert_eq!(data, vec![0x40, 0x01, 0, 5, b'x', b'y', b'z', b'1', b'2', 0, 0, 0], "padded to 4 bytes");

    // Another peer IP has no permission.
    lab.relay.handle_peer(relay_local, "198.51.100.10:6000".parse().unwrap(), b"x", lab.now);
    assert_eq!(lab.relay.poll_output(), None);

    // Permissions end after 5 minutes unless refreshed.
    lab.now += Duration::from_secs(301);
    lab.relay.tick(lab.now);
    lab.relay.handle_peer(relay_local, peer, b"late", lab.now);
    assert_eq!(lab.relay.poll_output(), None);
}

fn send_indication(peer: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut m = Message::new();
    m.typ = MessageType::new(METHOD_SEND, CLASS_INDICATION);
    m.new_transaction_id().unwrap();
    m.write_header();
    PeerAddress { ip: peer.ip(), port: peer.port() }.add_to(&mut m).unwrap();
    Data(data.to_vec()).add_to(&mut m).unwrap();
    m.raw
}

#[test]
fn no_open_relay_to_loopback_link_local_own_ports_or_denied_ranges() {
    let mut lab = lab_with(|c| c.denied_peers = vec!["192.0.2.0/24".parse().unwrap()]);
    let me = client(4000);
    let (_, c) = lab.allocate(me, "alice", UNIX + 600);
    for bad in [
        "127.0.0.1:9",
        "169.254.1.1:9",
        "0.0.0.0:9",
        "224.0.0.1:9",
        "255.255.255.255:9",
        "192.0.2.55:9",
        "10.0.0.1:3478",
        "203.0.113.7:7878",
    ] {
        let m = permission(&mut lab, me, &c, bad.parse().unwrap());
        assert_eq!(error_code(&m), Some(403), "{bad} must be refused");
    }
    assert_eq!(lab.refused("denied_peer"), 8);
    // Other ports on the server's address (other relayed ports) are fine.
    let m = permission(&mut lab, me, &c, "203.0.113.7:50002".parse().unwrap());
    assert_eq!(error_code(&m), None);
}

#[test]
fn loopback_peers_only_when_allowed() {
    let mut lab = lab_with(|c| c.allow_loopback_peers = true);
    let me = client(4000);
    let (_, c) = lab.allocate(me, "alice", UNIX + 600);
    assert_eq!(error_code(&permission(&mut lab, me, &c, "127.0.0.1:9000".parse().unwrap())), None);
}

#[test]
fn quotas_per_user_and_in_total() {
    let mut lab = lab_with(|c| {
        c.max_allocations_per_user = 2;
        c.max_allocations = 3;
    });
    for port in 0..2 {
        let (m, _) = lab.allocate(client(5000 + port), "alice", UNIX + 600);
        assert_eq!(error_code(&m), None);
    }
    let (m, _) = lab.allocate(client(5002), "alice", UNIX + 600);
    assert_eq!(error_code(&m), Some(486));
    let (m, _) = lab.allocate(client(5003), "bob", UNIX + 600);
    assert_eq!(error_code(&m), None);
    let (m, _) = lab.allocate(client(5004), "carol", UNIX + 600);
    assert_eq!(error_code(&m), Some(508));
    assert_eq!(lab.refused("user_quota"), 1);
    assert_eq!(lab.refused("capacity"), 1);
    // Out of relayed ports is out of capacity too.
    lab.ports.fail = true;
    lab.relay.client_closed(ClientAddr { transport: Transport::Udp, ..client(5003) });
    assert!(matches!(lab.relay.poll_output(), Some(Output::CloseRelay { .. })));
    let (m, _) = lab.allocate(client(5005), "dave", UNIX + 600);
    assert_eq!(error_code(&m), Some(508));
}

#[test]
fn bandwidth_per_allocation_is_capped() {
    let mut lab = lab_with(|c| c.allocation_bytes_per_sec = 10_000);
    let me = client(4000);
    let (_, c) = lab.allocate(me, "alice", UNIX + 600);
    let peer: SocketAddr = "198.51.100.9:6000".parse().unwrap();
    permission(&mut lab, me, &c, peer);
    let packet = send_indication(peer, &[7u8; 1000]);
    let sent = (0..30).filter(|_| !lab.send(me, &packet).is_empty()).count();
    assert_eq!(sent, 10, "one second of burst at 10 kB/s");
    lab.now += Duration::from_millis(500);
    let sent = (0..30).filter(|_| !lab.send(me, &packet).is_empty()).count();
    assert_eq!(sent, 5);
}

#[test]
fn refresh_extends_and_zero_deletes() {
    let mut lab = lab();
    let me = client(4000);
    let (_, c) = lab.allocate(me, "alice", UNIX + 600);
    lab.now += Duration::from_secs(500);
    let ok = lab.request(me, &signed(&c, METHOD_REFRESH, |m| Lifetime(Duration::from_secs(1200)).add_to(m)));
    assert_eq!(error_code(&ok), None);
    // Credentials expired since, yet the allocation lives on while refreshed.
    lab.now += Duration::from_secs(700);
    lab.relay.tick(lab.now);
    assert_eq!(lab.relay.allocation_count(), 1);
    let out = lab.send(me, &signed(&c, METHOD_REFRESH, |m| Lifetime(Duration::ZERO).add_to(m)));
    assert_eq!(out[0], Output::CloseRelay { relay: "0.0.0.0:50001".parse().unwrap() });
    let Output::ToClient { data, .. } = &out[1] else { panic!("no refresh response: {out:?}") };
    assert_eq!(error_code(&parse(data)), None);
    assert_eq!(lab.relay.allocation_count(), 0);
    // Without the allocation, the expired credentials count again.
    let m = lab.request(me, &signed(&c, METHOD_REFRESH, |_| Ok(())));
    assert_eq!(error_code(&m), Some(401));
    // And a refresh with good credentials but no allocation is a mismatch.
    let (username, password) = rest_credentials(SECRET, "alice", UNIX + 6000);
    let fresh = Creds { username, password, ..c };
    let m = lab.request(me, &signed(&fresh, METHOD_REFRESH, |_| Ok(())));
    assert_eq!(error_code(&m), Some(437));
}

#[test]
fn allocations_expire_and_close_their_socket() {
    let mut lab = lab();
    let (_, _) = lab.allocate(client(4000), "alice", UNIX + 600);
    lab.now += Duration::from_secs(601);
    lab.relay.tick(lab.now);
    assert_eq!(lab.relay.allocation_count(), 0);
    assert!(matches!(lab.relay.poll_output(), Some(Output::CloseRelay { .. })));
    assert_eq!(lab.metrics.allocations.get(), 0);
}

#[test]
fn a_retransmitted_allocate_gets_the_same_answer_and_another_is_a_mismatch() {
    let mut lab = lab();
    let me = client(4000);
    let (_, c) = lab.allocate(me, "alice", UNIX + 600);
    let again = signed(&c, METHOD_ALLOCATE, |m| {
        RequestedTransport { protocol: rtc_turn::proto::PROTO_UDP }.add_to(m)
    });
    let m = lab.request(me, &again);
    assert_eq!(error_code(&m), Some(437));
    assert_eq!(lab.relay.allocation_count(), 1);
}

#[test]
fn another_users_credentials_cannot_touch_an_allocation() {
    let mut lab = lab();
    let me = client(4000);
    lab.allocate(me, "alice", UNIX + 600);
    let (username, password) = rest_credentials(SECRET, "bob", UNIX + 600);
    let challenge = lab.request(me, &msg(METHOD_REFRESH, |_| Ok(())));
    let nonce = TextAttribute::get_from_as(&challenge, ATTR_NONCE).unwrap().text;
    let bob = Creds { username, password, realm: "hearth".into(), nonce };
    let m = lab.request(me, &signed(&bob, METHOD_REFRESH, |m| Lifetime(Duration::ZERO).add_to(m)));
    assert_eq!(error_code(&m), Some(441));
    assert_eq!(lab.relay.allocation_count(), 1);
}

#[test]
fn tcp_clients_lose_their_allocation_when_the_connection_closes() {
    let mut lab = lab();
    let me = ClientAddr { transport: Transport::Tcp, ..client(4000) };
    lab.allocate(me, "alice", UNIX + 600);
    lab.relay.client_closed(me);
    assert_eq!(lab.relay.allocation_count(), 0);
}

#[test]
fn unsupported_transport_and_family_are_refused() {
    let mut lab = lab();
    let me = client(4000);
    let challenge = lab.request(me, &msg(METHOD_ALLOCATE, |_| Ok(())));
    let nonce = TextAttribute::get_from_as(&challenge, ATTR_NONCE).unwrap().text;
    let (username, password) = rest_credentials(SECRET, "alice", UNIX + 600);
    let c = Creds { username, password, realm: "hearth".into(), nonce };
    let tcp = signed(&c, METHOD_ALLOCATE, |m| {
        RequestedTransport { protocol: rtc_turn::proto::PROTO_TCP }.add_to(m)
    });
    assert_eq!(error_code(&lab.request(me, &tcp)), Some(442));
    let v6 = signed(&c, METHOD_ALLOCATE, |m| {
        RequestedTransport { protocol: rtc_turn::proto::PROTO_UDP }.add_to(m)?;
        rtc_turn::proto::reqfamily::REQUESTED_FAMILY_IPV6.add_to(m)
    });
    assert_eq!(error_code(&lab.request(me, &v6)), Some(440));
}

proptest! {
    /// Arbitrary bytes from clients and peers never panic and never make an allocation.
    #[test]
    fn garbage_is_survived(packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let mut lab = lab();
        for p in &packets {
            lab.send(client(4000), p);
            lab.relay.handle_peer("0.0.0.0:50001".parse().unwrap(), "198.51.100.9:1".parse().unwrap(), p, lab.now);
        }
        prop_assert_eq!(lab.relay.allocation_count(), 0);
    }

    /// STUN-shaped garbage: a valid header with random attributes.
    #[test]
    fn stun_shaped_garbage_is_survived(method in 0u16..16, attrs in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut lab = lab();
        let mut data = vec![0u8; 20];
        data[0..2].copy_from_slice(&(method & 0x3eef).to_be_bytes());
        let len = (attrs.len() / 4 * 4) as u16;
        data[2..4].copy_from_slice(&len.to_be_bytes());
        data[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        data.extend_from_slice(&attrs[..len as usize]);
        lab.send(client(4000), &data);
    }
}
