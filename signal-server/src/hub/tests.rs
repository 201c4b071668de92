//! Unit tests of the hub, without sockets: each test drives it and reads what each connection
//! would have received.

use super::*;
use hearth_proto::{IceCandidate, Resume};
use std::collections::BTreeMap;

pub(super) struct Harness {
    pub hub: Hub,
    pub now: Instant,
    pub inbox: BTreeMap<ConnId, Vec<ServerMessage>>,
    pub closed: Vec<ConnId>,
    pub reports: Vec<(CallOutcome, Option<u64>)>,
    /// Rooms that emptied: (lived, peak members).
    pub rooms_closed: Vec<(Duration, usize)>,
}

impl Harness {
    pub fn new(cfg: HubConfig) -> Harness {
        let now = Instant::now();
        Harness {
            hub: Hub::new(cfg, Some(42), now, 1_800_000_000_000),
            now,
            inbox: BTreeMap::new(),
            closed: Vec::new(),
            reports: Vec::new(),
            rooms_closed: Vec::new(),
        }
    }

    pub fn pump(&mut self) {
        while let Some(o) = self.hub.poll_output() {
            match o {
                Output::Deliver { to, msg } => {
                    for c in to {
                        self.inbox.entry(c).or_default().push(msg.clone());
                    }
                }
                Output::Close { conn, .. } => self.closed.push(conn),
                Output::CallReport { outcome, connect_ms, .. } => self.reports.push((outcome, connect_ms)),
                Output::RoomClosed { lived, peak_members } => self.rooms_closed.push((lived, peak_members)),
            }
        }
    }

    pub fn send(&mut self, c: u64, msg: ClientMessage) {
        self.hub.message(self.now, ConnId(c), msg);
        self.pump();
    }

    /// Connect `c` from an address of its own (192.0.2.x).
    pub fn connect(&mut self, c: u64) {
        let ip = std::net::Ipv4Addr::new(192, 0, 2, u8::try_from(c % 250).unwrap() + 1);
        self.connect_from(c, ip.into());
    }

    pub fn connect_from(&mut self, c: u64, ip: std::net::IpAddr) {
        self.hub.connect(ConnId(c), ip);
    }

    pub fn drop_conn(&mut self, c: u64) {
        self.hub.disconnect(self.now, ConnId(c));
        self.pump();
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.hub.tick(self.now);
        self.pump();
    }

    /// Connect `c` and join `room` as `name`; returns the welcome.
    pub fn join(&mut self, c: u64, room: &str, name: &str) -> Welcome {
        self.connect(c);
        self.send(c, ClientMessage::Join(Join::new(room, name)));
        match self.take(c).into_iter().next() {
            Some(ServerMessage::Welcome(w)) => w,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub fn take(&mut self, c: u64) -> Vec<ServerMessage> {
        self.inbox.remove(&ConnId(c)).unwrap_or_default()
    }

    pub fn take_error(&mut self, c: u64) -> ErrorCode {
        match self.take(c).as_slice() {
            [ServerMessage::Error { code, .. }] => *code,
            other => panic!("expected one error, got {other:?}"),
        }
    }
}

fn chat(text: &str) -> ClientMessage {
    ClientMessage::Chat { text: text.into(), to: None }
}

#[test]
fn join_creates_room_and_others_see_the_newcomer() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "Ada");
    assert!(a.peers.is_empty());
    assert_eq!(a.protocol, PROTOCOL_VERSION);
    assert_eq!(h.hub.room_count(), 1);
    let g = h.join(2, "r", "Grace");
    assert_eq!(g.peers.len(), 1);
    assert_eq!(g.peers[0].id, a.peer_id);
    assert_eq!(g.peers[0].name, "Ada");
    match h.take(1).as_slice() {
        [ServerMessage::PeerJoined { peer }] => assert_eq!(peer.id, g.peer_id),
        other => panic!("{other:?}"),
    }
    assert_ne!(a.peer_id, g.peer_id);
    assert_ne!(a.resume_token, g.resume_token);
}

#[test]
fn room_removed_when_empty() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    h.join(2, "r", "B");
    h.send(1, ClientMessage::Leave);
    assert_eq!(h.hub.room_count(), 1);
    h.send(2, ClientMessage::Leave);
    assert_eq!(h.hub.room_count(), 0);
    assert_eq!(h.hub.peer_count(), 0);
}

#[test]
fn room_full_is_a_clear_error() {
    let cfg = HubConfig { max_room_size: 2, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.join(1, "r", "A");
    h.join(2, "r", "B");
    h.connect(3);
    h.send(3, ClientMessage::Join(Join::new("r", "C")));
    let msgs = h.take(3);
    match msgs.as_slice() {
        [ServerMessage::Error { code, message, ref_type }] => {
            assert_eq!(*code, ErrorCode::RoomFull);
            assert!(message.contains("full (2 of 2)"), "{message}");
            assert_eq!(ref_type.as_deref(), Some("join"));
        }
        other => panic!("{other:?}"),
    }
    // The connection is still usable: another room works.
    h.send(3, ClientMessage::Join(Join::new("other", "C")));
    assert!(matches!(h.take(3).as_slice(), [ServerMessage::Welcome(_)]));
}

#[test]
fn version_mismatch_is_refused() {
    let mut h = Harness::new(HubConfig::default());
    h.connect(1);
    let mut j = Join::new("r", "A");
    j.protocol = PROTOCOL_VERSION + 1;
    h.send(1, ClientMessage::Join(j));
    assert_eq!(h.take_error(1), ErrorCode::VersionMismatch);
}

#[test]
fn messages_before_join_and_double_join() {
    let mut h = Harness::new(HubConfig::default());
    h.connect(1);
    h.send(1, chat("hi"));
    assert_eq!(h.take_error(1), ErrorCode::NotJoined);
    h.send(1, ClientMessage::Ping { nonce: 9 });
    assert!(matches!(h.take(1).as_slice(), [ServerMessage::Pong { nonce: 9, .. }]));
    h.send(1, ClientMessage::Join(Join::new("r", "A")));
    h.take(1);
    h.send(1, ClientMessage::Join(Join::new("r", "A")));
    assert_eq!(h.take_error(1), ErrorCode::AlreadyJoined);
}

#[test]
fn invalid_fields_are_refused() {
    let mut h = Harness::new(HubConfig::default());
    h.connect(1);
    h.send(1, ClientMessage::Join(Join::new("", "A")));
    assert_eq!(h.take_error(1), ErrorCode::InvalidField);
    h.send(1, ClientMessage::Join(Join::new("r", "A")));
    h.take(1);
    h.send(1, chat("   "));
    assert_eq!(h.take_error(1), ErrorCode::InvalidField);
}

#[test]
fn relay_goes_only_to_the_addressed_peer_in_the_same_room() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    let c = h.join(3, "r", "C");
    let x = h.join(4, "other", "X");
    h.inbox.clear();
    h.send(1, ClientMessage::Offer { to: b.peer_id.clone(), sdp: "v=0".into() });
    assert_eq!(h.take(2), vec![ServerMessage::Offer { from: a.peer_id.clone(), sdp: "v=0".into() }]);
    assert!(h.take(3).is_empty());
    assert!(h.take(1).is_empty());
    // Another room's peer is not reachable.
    h.send(1, ClientMessage::Answer { to: x.peer_id.clone(), sdp: "v=0".into() });
    assert_eq!(h.take_error(1), ErrorCode::PeerNotFound);
    assert!(h.take(4).is_empty());
    // Nor is oneself, nor a made-up id.
    h.send(1, ClientMessage::IceCandidate { to: a.peer_id.clone(), candidate: None });
    assert_eq!(h.take_error(1), ErrorCode::PeerNotFound);
    h.send(1, ClientMessage::IceCandidate { to: PeerId::from("nobody"), candidate: None });
    assert_eq!(h.take_error(1), ErrorCode::PeerNotFound);
    let cand = IceCandidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 9 typ host".into(),
        sdp_mid: None,
        sdp_mline_index: Some(0),
    };
    h.send(3, ClientMessage::IceCandidate { to: a.peer_id.clone(), candidate: Some(cand.clone()) });
    assert_eq!(h.take(1), vec![ServerMessage::IceCandidate { from: c.peer_id, candidate: Some(cand) }]);
}

#[test]
fn private_chat_reaches_only_sender_and_addressee() {
    let mut h = Harness::new(HubConfig::default());
    let _a = h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.join(3, "r", "C");
    h.inbox.clear();
    h.send(1, ClientMessage::Chat { text: "psst".into(), to: Some(b.peer_id.clone()) });
    let to_a = h.take(1);
    let to_b = h.take(2);
    assert_eq!(to_a, to_b);
    assert!(
        matches!(&to_b[..], [ServerMessage::Chat { message }] if message.to.as_ref() == Some(&b.peer_id) && message.text == "psst")
    );
    assert!(h.take(3).is_empty());
    // A late joiner's history has room chat only.
    h.send(1, chat("public"));
    let d = h.join(4, "r", "D");
    let texts: Vec<_> = d.history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["public"]);
}

#[test]
fn room_chat_reaches_everyone_once_in_order_with_echo() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    h.join(2, "r", "B");
    h.join(3, "other", "C");
    h.inbox.clear();
    for i in 0..5 {
        h.send(1 + (i % 2), chat(&format!("m{i}")));
    }
    for c in [1, 2] {
        let seqs: Vec<u64> = h
            .take(c)
            .iter()
            .map(|m| match m {
                ServerMessage::Chat { message } => message.seq,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
    }
    assert!(h.take(3).is_empty());
}

#[test]
fn history_is_bounded() {
    let cfg = HubConfig { history_len: 3, log_len: 5, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.join(1, "r", "A");
    for i in 0..10 {
        h.send(1, chat(&format!("m{i}")));
    }
    let w = h.join(2, "r", "B");
    let seqs: Vec<u64> = w.history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [8, 9, 10]);
}

#[test]
fn drop_then_resume_keeps_peer_id_and_replays_missed_chat_and_relays() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.send(1, chat("before"));
    h.inbox.clear();
    h.drop_conn(2);
    assert_eq!(h.take(1), vec![ServerMessage::PeerReconnecting { peer_id: b.peer_id.clone() }]);
    h.send(1, chat("while away"));
    h.send(1, ClientMessage::Chat { text: "private while away".into(), to: Some(b.peer_id.clone()) });
    h.send(1, ClientMessage::Offer { to: b.peer_id.clone(), sdp: "v=0 restart".into() });
    assert!(h.take(1).iter().all(|m| matches!(m, ServerMessage::Chat { .. })), "no error for the held offer");
    h.advance(Duration::from_secs(10));

    h.connect(5);
    let mut j = Join::new("r", "B");
    j.resume = Some(Resume { token: b.resume_token.clone(), last_seq: 1 });
    h.send(5, ClientMessage::Join(j));
    let msgs = h.take(5);
    let ServerMessage::Welcome(w) = &msgs[0] else { panic!("{msgs:?}") };
    assert!(w.resumed);
    assert_eq!(w.peer_id, b.peer_id);
    let missed: Vec<_> = w.history.iter().map(|m| (m.seq, m.text.as_str())).collect();
    assert_eq!(missed, [(2, "while away"), (3, "private while away")]);
    assert_eq!(msgs[1], ServerMessage::Offer { from: a.peer_id.clone(), sdp: "v=0 restart".into() });
    assert_eq!(msgs.len(), 2);
    assert_eq!(h.take(1), vec![ServerMessage::PeerReconnected { peer_id: b.peer_id.clone() }]);
    // The resumed connection works normally.
    h.send(1, chat("welcome back"));
    assert!(matches!(&h.take(5)[..], [ServerMessage::Chat { message }] if message.seq == 4));
}

#[test]
fn grace_period_expiry_removes_the_peer() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.inbox.clear();
    h.drop_conn(2);
    h.take(1);
    assert_eq!(h.hub.poll_timeout(), Some(h.now + Duration::from_secs(30)));
    h.advance(Duration::from_millis(29_999));
    assert!(h.take(1).is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.take(1),
        vec![ServerMessage::PeerLeft { peer_id: b.peer_id.clone(), reason: LeaveReason::Timeout }]
    );
    assert_eq!(h.hub.peer_count(), 1);
    assert_eq!(h.hub.poll_timeout(), None);
    // A late resume fails clearly.
    h.connect(5);
    let mut j = Join::new("r", "B");
    j.resume = Some(Resume { token: b.resume_token, last_seq: 0 });
    h.send(5, ClientMessage::Join(j));
    assert_eq!(h.take_error(5), ErrorCode::ResumeFailed);
}

#[test]
fn resume_on_a_new_socket_before_the_old_one_is_noticed_closes_the_old() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.inbox.clear();
    h.connect(3);
    let mut j = Join::new("r", "B");
    j.resume = Some(Resume { token: b.resume_token.clone(), last_seq: 0 });
    h.send(3, ClientMessage::Join(j));
    assert_eq!(h.closed, vec![ConnId(2)]);
    assert!(matches!(&h.take(3)[..], [ServerMessage::Welcome(w)] if w.resumed && w.peer_id == b.peer_id));
    // Others were never told it was reconnecting, so they get nothing.
    assert!(h.take(1).is_empty());
    // The old socket's late close does not disturb the session.
    h.drop_conn(2);
    assert!(h.take(1).is_empty());
    h.send(1, chat("x"));
    assert_eq!(h.take(3).len(), 1);
}

#[test]
fn resume_with_wrong_room_or_unknown_token_fails() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "A");
    h.drop_conn(1);
    h.connect(2);
    let mut j = Join::new("elsewhere", "A");
    j.resume = Some(Resume { token: a.resume_token.clone(), last_seq: 0 });
    h.send(2, ClientMessage::Join(j));
    assert_eq!(h.take_error(2), ErrorCode::ResumeFailed);
    let mut j = Join::new("r", "A");
    j.resume = Some(Resume { token: "0".repeat(32), last_seq: 0 });
    h.send(2, ClientMessage::Join(j));
    assert_eq!(h.take_error(2), ErrorCode::ResumeFailed);
}

#[test]
fn relay_to_a_reconnecting_peer_overflows_with_an_error() {
    let cfg = HubConfig { pending_limit: 2, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.drop_conn(2);
    h.inbox.clear();
    for _ in 0..2 {
        h.send(1, ClientMessage::IceCandidate { to: b.peer_id.clone(), candidate: None });
    }
    assert!(h.take(1).is_empty());
    h.send(1, ClientMessage::IceCandidate { to: b.peer_id.clone(), candidate: None });
    assert_eq!(h.take_error(1), ErrorCode::PeerUnavailable);
}

#[test]
fn password_locks_the_room() {
    let mut h = Harness::new(HubConfig::default());
    h.connect(1);
    let mut j = Join::new("r", "A");
    j.password = Some("hunter2".into());
    h.send(1, ClientMessage::Join(j.clone()));
    h.take(1);
    h.connect(2);
    h.send(2, ClientMessage::Join(Join::new("r", "B")));
    assert_eq!(h.take_error(2), ErrorCode::PasswordRequired);
    let mut wrong = Join::new("r", "B");
    wrong.password = Some("hunter3".into());
    h.send(2, ClientMessage::Join(wrong));
    assert_eq!(h.take_error(2), ErrorCode::WrongPassword);
    j.name = "B".into();
    h.send(2, ClientMessage::Join(j));
    assert!(matches!(&h.take(2)[..], [ServerMessage::Welcome(_)]));
    // When everyone leaves the lock stays for a while (room_lock_keep), so nobody else can
    // recreate the room with a password of their own.
    h.send(1, ClientMessage::Leave);
    h.send(2, ClientMessage::Leave);
    assert_eq!(h.hub.room_count(), 0);
    h.inbox.clear();
    let mut steal = Join::new("r", "Mallory");
    steal.password = Some("mine".into());
    h.send(2, ClientMessage::Join(steal));
    assert_eq!(h.take_error(2), ErrorCode::WrongPassword);
}

#[test]
fn jwt_auth_requires_a_valid_token_and_takes_its_name() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let cfg =
        HubConfig { auth: JoinAuth::Jwt { secret: b"k".to_vec(), leeway_secs: 0 }, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    let now_s = 1_800_000_000u64;
    let tok = |room: &str, exp: u64| {
        encode(
            &Header::default(),
            &serde_json::json!({"room": room, "name": "Dr. Ada", "exp": exp}),
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap()
    };
    h.connect(1);
    h.send(1, ClientMessage::Join(Join::new("r", "A")));
    assert_eq!(h.take_error(1), ErrorCode::TokenRequired);
    for (t, code) in [
        (tok("r", now_s - 1), ErrorCode::TokenExpired),
        (tok("q", now_s + 60), ErrorCode::TokenWrongRoom),
        ("garbage".to_owned(), ErrorCode::TokenInvalid),
    ] {
        let mut j = Join::new("r", "A");
        j.token = Some(t);
        h.send(1, ClientMessage::Join(j));
        assert_eq!(h.take_error(1), code);
    }
    let mut j = Join::new("r", "A");
    j.token = Some(tok("r", now_s + 60));
    h.send(1, ClientMessage::Join(j));
    assert!(matches!(&h.take(1)[..], [ServerMessage::Welcome(w)] if w.name == "Dr. Ada"));
}

#[test]
fn media_state_hand_and_reactions_are_broadcast_with_echo() {
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "A");
    h.join(2, "r", "B");
    h.inbox.clear();
    let state = MediaState { audio_muted: true, video_off: false, screen_sharing: true };
    h.send(1, ClientMessage::MediaState { state });
    h.send(1, ClientMessage::RaiseHand { raised: true });
    h.send(1, ClientMessage::Reaction { emoji: "🎉".into() });
    for c in [1, 2] {
        let got = h.take(c);
        assert_eq!(got[0], ServerMessage::MediaState { peer_id: a.peer_id.clone(), state });
        assert_eq!(got[1], ServerMessage::RaiseHand { peer_id: a.peer_id.clone(), raised: true });
        assert!(matches!(&got[2], ServerMessage::Reaction { emoji, .. } if emoji == "🎉"));
    }
    // A late joiner sees the state in the welcome.
    let c = h.join(3, "r", "C");
    let info = c.peers.iter().find(|p| p.id == a.peer_id).unwrap();
    assert_eq!(info.media, state);
    assert!(info.hand_raised);
}

#[test]
fn call_reports_are_emitted_for_room_peers_only() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.inbox.clear();
    h.send(
        1,
        ClientMessage::CallReport { peer: b.peer_id, outcome: CallOutcome::Connected, connect_ms: Some(42), path: None, reason: None },
    );
    assert_eq!(h.reports, vec![(CallOutcome::Connected, Some(42))]);
    h.send(
        1,
        ClientMessage::CallReport { peer: PeerId::from("x"), outcome: CallOutcome::Failed, connect_ms: None, path: None, reason: None },
    );
    assert_eq!(h.take_error(1), ErrorCode::PeerNotFound);
    assert_eq!(h.reports.len(), 1);
}

#[test]
fn an_emptied_room_reports_how_long_it_lived_and_its_peak() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    h.join(2, "r", "B");
    h.advance(Duration::from_secs(30));
    h.send(2, ClientMessage::Leave);
    h.join(3, "r", "C");
    h.join(4, "r", "D");
    assert!(h.rooms_closed.is_empty());
    h.advance(Duration::from_secs(60));
    for c in [1, 3, 4] {
        h.send(c, ClientMessage::Leave);
    }
    assert_eq!(h.rooms_closed, vec![(Duration::from_secs(90), 3)]);
}

#[test]
fn shutdown_tells_everyone_and_refuses_joins() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    h.connect(2);
    h.inbox.clear();
    h.hub.shutdown("bye", 1500);
    h.pump();
    for c in [1, 2] {
        assert!(matches!(&h.take(c)[..], [ServerMessage::Shutdown { retry_after_ms: 1500, .. }]));
    }
    h.send(2, ClientMessage::Join(Join::new("r", "B")));
    assert_eq!(h.take_error(2), ErrorCode::ShuttingDown);
}

#[test]
fn welcome_carries_turn_credentials_and_limits() {
    let cfg = HubConfig {
        turn: Some(TurnConfig {
            urls: vec!["turn:127.0.0.1:3478".into()],
            secret: b"s".to_vec(),
            ttl_secs: 600,
        }),
        ..HubConfig::default()
    };
    let mut h = Harness::new(cfg);
    let w = h.join(1, "r", "A");
    let turn = &w.ice_servers[0];
    let expected = format!("{}:{}", 1_800_000_000 + 600, w.peer_id);
    assert_eq!(turn.username.as_deref(), Some(expected.as_str()));
    assert_eq!(w.limits.max_room_size, 8);
    assert_eq!(w.resume_grace_ms, 30_000);
}

#[test]
fn zero_grace_means_immediate_leave() {
    let cfg = HubConfig { resume_grace: Duration::ZERO, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.inbox.clear();
    h.drop_conn(2);
    assert_eq!(h.take(1), vec![ServerMessage::PeerLeft { peer_id: b.peer_id, reason: LeaveReason::Timeout }]);
}

#[test]
fn unknown_connection_is_ignored() {
    let mut h = Harness::new(HubConfig::default());
    h.send(99, chat("x"));
    h.drop_conn(99);
    assert!(h.inbox.is_empty());
}

#[test]
fn resume_applies_the_media_state_of_the_join() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.drop_conn(2);
    h.inbox.clear();
    // B muted while it was offline; its resume says so.
    h.connect(3);
    let mut j = Join::new("r", "B");
    j.resume = Some(Resume { token: b.resume_token.clone(), last_seq: 0 });
    j.media = MediaState { audio_muted: true, ..MediaState::default() };
    h.send(3, ClientMessage::Join(j));
    let to_a = h.take(1);
    assert_eq!(to_a.len(), 2, "{to_a:?}");
    assert_eq!(
        to_a[1],
        ServerMessage::MediaState {
            peer_id: b.peer_id.clone(),
            state: MediaState { audio_muted: true, ..MediaState::default() }
        }
    );
    let resumed = match h.take(3).into_iter().next() {
        Some(ServerMessage::Welcome(w)) => w,
        other => panic!("{other:?}"),
    };
    // A resume with the same state announces nothing more.
    h.drop_conn(3);
    h.inbox.clear();
    h.connect(4);
    let mut j = Join::new("r", "B");
    j.resume = Some(Resume { token: resumed.resume_token, last_seq: 0 });
    j.media = MediaState { audio_muted: true, ..MediaState::default() };
    h.send(4, ClientMessage::Join(j));
    assert_eq!(h.take(1).len(), 1);
}

/// Memory bounds, per-address limits, resume tokens, kept and fixed room locks, password backoff.
mod bounds;

/// Client sequence numbers across resumes; peer_error relays.
mod resend;

/// Room and display names: normalization, look-alikes.
mod names;
