//! What the hub holds is bounded, and what guards a session or a room cannot be taken over:
//! byte bounds on held relays and chat logs, per-address and per-connection limits, resume token
//! rotation and expiry, kept and fixed room locks, wrong-password backoff. All in virtual time.

use super::*;
use crate::hub::chat_log::chat_bytes;
use crate::hub::held_bytes;
use hearth_proto::Resume;
use std::net::{IpAddr, Ipv4Addr};

const SECS: Duration = Duration::from_secs(1);

fn ip(last: u8) -> IpAddr {
    Ipv4Addr::new(198, 51, 100, last).into()
}

fn offer(to: &PeerId, sdp: &str) -> ClientMessage {
    ClientMessage::Offer { to: to.clone(), sdp: sdp.into() }
}

fn resume_join(room: &str, token: &str, last_seq: u64) -> ClientMessage {
    let mut j = Join::new(room, "again");
    j.resume = Some(Resume { token: token.into(), last_seq });
    ClientMessage::Join(j)
}

fn welcome_of(msgs: Vec<ServerMessage>) -> (Welcome, Vec<ServerMessage>) {
    let mut it = msgs.into_iter();
    match it.next() {
        Some(ServerMessage::Welcome(w)) => (w, it.collect()),
        other => panic!("expected a welcome, got {other:?}"),
    }
}

fn error_text(h: &mut Harness, c: u64) -> (ErrorCode, String) {
    match h.take(c).as_slice() {
        [ServerMessage::Error { code, message, .. }] => (*code, message.clone()),
        other => panic!("expected one error, got {other:?}"),
    }
}

fn join_with_password(h: &mut Harness, c: u64, room: &str, password: Option<&str>) -> Vec<ServerMessage> {
    let mut j = Join::new(room, format!("n{c}"));
    j.password = password.map(str::to_owned);
    h.send(c, ClientMessage::Join(j));
    h.take(c)
}

// --- 1. Memory bounds -------------------------------------------------------------------------

#[test]
fn held_relays_are_bounded_in_bytes_per_peer_per_room_and_in_total() {
    let sdp = "v=0 ".repeat(1000);
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "A");
    let one = held_bytes(&ServerMessage::Offer { from: a.peer_id.clone(), sdp: sdp.clone() });
    h.hub.cfg.held_relay_bytes_per_peer = 2 * one;
    h.hub.cfg.held_relay_bytes_per_room = 3 * one;
    h.hub.cfg.held_relay_bytes_total = 4 * one;
    let b = h.join(2, "r", "B");
    let c = h.join(3, "r", "C");
    h.join(4, "q", "D");
    let e = h.join(5, "q", "E");
    for conn in [2, 3, 5] {
        h.drop_conn(conn);
    }
    h.inbox.clear();

    // Per peer: two fit, the third is refused (the count limit of 256 is far away).
    h.send(1, offer(&b.peer_id, &sdp));
    h.send(1, offer(&b.peer_id, &sdp));
    assert!(h.take(1).is_empty());
    h.send(1, offer(&b.peer_id, &sdp));
    let (code, message) = error_text(&mut h, 1);
    assert_eq!(code, ErrorCode::PeerUnavailable);
    assert!(message.contains("too many bytes"), "{message}");
    // Per room: B holds two, so C gets one before the room is full.
    h.send(1, offer(&c.peer_id, &sdp));
    assert!(h.take(1).is_empty());
    h.send(1, offer(&c.peer_id, &sdp));
    let (code, message) = error_text(&mut h, 1);
    assert_eq!(code, ErrorCode::PeerUnavailable);
    assert!(message.contains("its room"), "{message}");
    // In total: room q gets one more, then the server is full.
    h.send(4, offer(&e.peer_id, &sdp));
    assert!(h.take(4).is_empty());
    h.send(4, offer(&e.peer_id, &sdp));
    let (code, message) = error_text(&mut h, 4);
    assert_eq!(code, ErrorCode::PeerUnavailable);
    assert!(message.contains("the server"), "{message}");
    assert_eq!(h.hub.held_relay_bytes(), 4 * one);

    // B resumes: its two offers are delivered and their bytes given back, so E can take one more.
    h.connect(6);
    h.send(6, resume_join("r", &b.resume_token, 0));
    let (_, after) = welcome_of(h.take(6));
    assert_eq!(after.len(), 2);
    assert_eq!(h.hub.held_relay_bytes(), 2 * one);
    h.send(4, offer(&e.peer_id, &sdp));
    assert!(h.take(4).is_empty());
    // Sessions that time out give their bytes back too.
    h.advance(30 * SECS);
    assert_eq!(h.hub.held_relay_bytes(), 0);
    assert!(h.hub.rooms.values().all(|r| r.pending_bytes == 0));
}

#[test]
fn chat_logs_are_bounded_in_bytes_and_history_and_replay_start_later() {
    let text = "x".repeat(1000);
    let mut h = Harness::new(HubConfig::default());
    let a = h.join(1, "r", "A");
    let sample = ChatMessage {
        id: format!("m{:08x}{:x}", h.hub.msg_id_prefix, 1),
        seq: 1,
        ts_ms: 0,
        from: a.peer_id.clone(),
        from_name: "A".into(),
        to: None,
        text: text.clone(),
    };
    let one = chat_bytes("r", &sample);
    // Message ids keep their length over these few messages, so every message weighs `one`.
    let limits = ChatLogLimits { len_per_room: 500, bytes_per_room: 3 * one, bytes_total: 5 * one };
    h.hub.chat = ChatLogs::new(limits);
    let b = h.join(2, "r", "B");
    h.drop_conn(2);
    for _ in 0..5 {
        h.send(1, ClientMessage::Chat { text: text.clone(), to: None });
    }
    assert_eq!(h.hub.chat_log_bytes(), 3 * one);
    // A late joiner's history starts where the log now starts.
    let late = h.join(3, "r", "Late");
    assert_eq!(late.history.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
    // A resume whose last_seq is older than the log gets what remains.
    h.connect(4);
    h.send(4, resume_join("r", &b.resume_token, 0));
    let (w, _) = welcome_of(h.take(4));
    assert_eq!(w.history.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
    // The total bound takes the oldest messages of any room.
    h.join(5, "q", "Q");
    for _ in 0..3 {
        h.send(5, ClientMessage::Chat { text: text.clone(), to: None });
    }
    assert_eq!(h.hub.chat_log_bytes(), 5 * one);
    let late = h.join(6, "r", "Later");
    assert_eq!(late.history.iter().map(|m| m.seq).collect::<Vec<_>>(), [4, 5]);
    // A removed room gives its bytes back.
    h.send(5, ClientMessage::Leave);
    assert_eq!(h.hub.chat_log_bytes(), 2 * one);
}

#[test]
fn sessions_per_address_are_capped_counting_reconnecting_ones() {
    let cfg = HubConfig { max_sessions_per_ip: 2, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    for c in 1..=3 {
        h.connect_from(c, ip(7));
    }
    for (c, room) in [(1, "a"), (2, "b")] {
        h.send(c, ClientMessage::Join(Join::new(room, "n")));
        assert!(matches!(&h.take(c)[..], [ServerMessage::Welcome(_)]));
    }
    h.send(3, ClientMessage::Join(Join::new("c", "n")));
    let (code, message) = error_text(&mut h, 3);
    assert_eq!(code, ErrorCode::ServerFull);
    assert!(message.contains("your address"), "{message}");
    // A dropped session still counts while it may resume...
    h.drop_conn(1);
    h.send(3, ClientMessage::Join(Join::new("c", "n")));
    assert_eq!(h.take_error(3), ErrorCode::ServerFull);
    // ...and stops counting once its grace period is over.
    h.advance(30 * SECS);
    h.send(3, ClientMessage::Join(Join::new("c", "n")));
    assert!(matches!(&h.take(3)[..], [ServerMessage::Welcome(_)]));
    // Another address has its own count, and loopback is exempt by default.
    h.connect_from(4, ip(8));
    h.send(4, ClientMessage::Join(Join::new("d", "n")));
    assert!(matches!(&h.take(4)[..], [ServerMessage::Welcome(_)]));
    for c in 10..15 {
        h.connect_from(c, Ipv4Addr::LOCALHOST.into());
        h.send(c, ClientMessage::Join(Join::new("lo", format!("n{c}").as_str())));
        assert!(matches!(&h.take(c)[..], [ServerMessage::Welcome(_)]), "loopback join {c}");
    }
    // Leaving frees a place at once.
    h.send(2, ClientMessage::Leave);
    h.connect_from(5, ip(7));
    h.send(5, ClientMessage::Join(Join::new("e", "n")));
    assert!(matches!(&h.take(5)[..], [ServerMessage::Welcome(_)]));
    assert_eq!(h.hub.sessions_per_ip.get(&ip(7)), Some(&2));
}

#[test]
fn loopback_counts_when_included() {
    let cfg = HubConfig { max_sessions_per_ip: 1, ip_limits_include_loopback: true, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.connect_from(1, Ipv4Addr::LOCALHOST.into());
    h.connect_from(2, Ipv4Addr::LOCALHOST.into());
    h.send(1, ClientMessage::Join(Join::new("a", "n")));
    h.take(1);
    h.send(2, ClientMessage::Join(Join::new("b", "n")));
    assert_eq!(h.take_error(2), ErrorCode::ServerFull);
}

#[test]
fn a_resume_moves_the_session_to_its_new_address() {
    let cfg = HubConfig { max_sessions_per_ip: 1, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.connect_from(1, ip(1));
    h.send(1, ClientMessage::Join(Join::new("r", "A")));
    let (w, _) = welcome_of(h.take(1));
    h.drop_conn(1);
    // The client comes back from another network: the session now counts there.
    h.connect_from(2, ip(2));
    h.send(2, resume_join("r", &w.resume_token, 0));
    welcome_of(h.take(2));
    assert_eq!(h.hub.sessions_per_ip.get(&ip(1)), None);
    assert_eq!(h.hub.sessions_per_ip.get(&ip(2)), Some(&1));
    h.connect_from(3, ip(1));
    h.send(3, ClientMessage::Join(Join::new("q", "B")));
    assert!(matches!(&h.take(3)[..], [ServerMessage::Welcome(_)]));
}

#[test]
fn a_connection_creates_at_most_n_rooms_per_minute() {
    let cfg = HubConfig { max_rooms_created_per_min: 3, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.join(2, "existing", "Host");
    h.connect(1);
    for room in ["a", "b", "c"] {
        h.send(1, ClientMessage::Join(Join::new(room, "churn")));
        welcome_of(h.take(1));
        h.send(1, ClientMessage::Leave);
        h.advance(10 * SECS);
    }
    h.send(1, ClientMessage::Join(Join::new("d", "churn")));
    let (code, message) = error_text(&mut h, 1);
    assert_eq!(code, ErrorCode::RateLimited);
    assert!(message.contains("3 rooms") && message.contains("try again in 30 s"), "{message}");
    // Joining a room that exists creates nothing.
    h.send(1, ClientMessage::Join(Join::new("existing", "churn")));
    welcome_of(h.take(1));
    h.send(1, ClientMessage::Leave);
    // A minute after the first creation there is room for one more.
    h.advance(30 * SECS);
    h.send(1, ClientMessage::Join(Join::new("d", "churn")));
    welcome_of(h.take(1));
    // Other connections have their own count.
    h.connect(3);
    h.send(3, ClientMessage::Join(Join::new("e", "other")));
    welcome_of(h.take(3));
}

// --- 2. Resume tokens -------------------------------------------------------------------------

#[test]
fn every_welcome_rotates_the_resume_token_and_the_old_one_stops_working() {
    let mut h = Harness::new(HubConfig::default());
    h.join(1, "r", "A");
    let b = h.join(2, "r", "B");
    h.drop_conn(2);
    h.connect(3);
    h.send(3, resume_join("r", &b.resume_token, 0));
    let (w1, _) = welcome_of(h.take(3));
    assert_eq!(w1.peer_id, b.peer_id);
    assert_ne!(w1.resume_token, b.resume_token);
    // Someone replaying the old token gets nothing, and the live session is undisturbed.
    h.connect(4);
    h.send(4, resume_join("r", &b.resume_token, 0));
    assert_eq!(h.take_error(4), ErrorCode::ResumeFailed);
    assert!(h.closed.is_empty());
    h.send(1, chat("still here?"));
    assert_eq!(h.take(3).len(), 1);
    // The new token works once, and is replaced in turn.
    h.connect(5);
    h.send(5, resume_join("r", &w1.resume_token, 0));
    let (w2, _) = welcome_of(h.take(5));
    assert_ne!(w2.resume_token, w1.resume_token);
    assert_eq!(h.closed, vec![ConnId(3)]);
    h.connect(6);
    h.send(6, resume_join("r", &w1.resume_token, 0));
    assert_eq!(h.take_error(6), ErrorCode::ResumeFailed);
    assert_eq!(h.hub.tokens.len(), 2, "one live token per session");
}

fn jwt_harness(leeway_secs: u64) -> Harness {
    let cfg = HubConfig {
        auth: JoinAuth::Jwt { secret: b"k".to_vec(), leeway_secs },
        resume_grace: Duration::from_secs(600),
        ..HubConfig::default()
    };
    Harness::new(cfg)
}

const NOW_S: u64 = 1_800_000_000;

fn room_token(room: &str, exp: u64, password: Option<&str>) -> String {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let mut claims = serde_json::json!({"room": room, "exp": exp});
    if let Some(p) = password {
        claims["password"] = p.into();
    }
    encode(&Header::default(), &claims, &EncodingKey::from_secret(b"k")).unwrap()
}

fn join_with_token(h: &mut Harness, c: u64, room: &str, token: String) -> Vec<ServerMessage> {
    let mut j = Join::new(room, format!("n{c}"));
    j.token = Some(token);
    h.send(c, ClientMessage::Join(j));
    h.take(c)
}

#[test]
fn a_resume_after_the_room_token_expired_is_refused_and_ends_the_session() {
    let mut h = jwt_harness(30);
    h.connect(1);
    h.connect(2);
    join_with_token(&mut h, 1, "r", room_token("r", NOW_S + 3600, None));
    let (b, _) = welcome_of(join_with_token(&mut h, 2, "r", room_token("r", NOW_S + 60, None)));
    // Within the leeway a resume still works.
    h.drop_conn(2);
    h.advance(80 * SECS);
    h.connect(3);
    h.send(3, resume_join("r", &b.resume_token, 0));
    let (b2, _) = welcome_of(h.take(3));
    // Past it, the resume is refused and the session ends at once (no resume can succeed).
    h.drop_conn(3);
    h.advance(20 * SECS);
    h.inbox.clear();
    h.connect(4);
    h.send(4, resume_join("r", &b2.resume_token, 0));
    assert_eq!(h.take_error(4), ErrorCode::TokenExpired);
    assert_eq!(
        h.take(1),
        vec![ServerMessage::PeerLeft { peer_id: b.peer_id.clone(), reason: LeaveReason::Timeout }]
    );
    assert_eq!(h.hub.peer_count(), 1);
    h.send(4, resume_join("r", &b2.resume_token, 0));
    assert_eq!(h.take_error(4), ErrorCode::ResumeFailed);
}

#[test]
fn a_resume_may_bring_a_fresh_room_token() {
    let mut h = jwt_harness(0);
    h.connect(1);
    let (b, _) = welcome_of(join_with_token(&mut h, 1, "r", room_token("r", NOW_S + 60, None)));
    h.drop_conn(1);
    h.advance(120 * SECS);
    // A fresh token for another room is refused and leaves the session alone.
    h.connect(2);
    let mut j = Join::new("r", "B");
    j.resume = Some(Resume { token: b.resume_token.clone(), last_seq: 0 });
    j.token = Some(room_token("elsewhere", NOW_S + 3600, None));
    h.send(2, ClientMessage::Join(j.clone()));
    assert_eq!(h.take_error(2), ErrorCode::TokenWrongRoom);
    assert_eq!(h.hub.peer_count(), 1);
    j.token = Some(room_token("r", NOW_S + 3600, None));
    h.send(2, ClientMessage::Join(j));
    let (w, _) = welcome_of(h.take(2));
    assert!(w.resumed);
    assert_eq!(h.hub.sessions[&b.peer_id].token_exp, Some(NOW_S + 3600));
}

#[test]
fn a_refused_resume_leaves_a_live_session_alone() {
    let mut h = jwt_harness(0);
    h.connect(1);
    let (b, _) = welcome_of(join_with_token(&mut h, 1, "r", room_token("r", NOW_S + 60, None)));
    h.advance(120 * SECS);
    h.connect(2);
    h.send(2, resume_join("r", &b.resume_token, 0));
    assert_eq!(h.take_error(2), ErrorCode::TokenExpired);
    assert_eq!(h.hub.peer_count(), 1);
    assert!(h.closed.is_empty());
}

// --- 3. Locked rooms --------------------------------------------------------------------------

#[test]
fn an_emptied_locked_room_keeps_its_password_for_the_configured_time() {
    let mut h = Harness::new(HubConfig { room_lock_keep: Duration::from_secs(3600), ..HubConfig::default() });
    h.connect(1);
    welcome_of(join_with_password(&mut h, 1, "r", Some("hunter2")));
    h.send(1, ClientMessage::Leave);
    assert_eq!((h.hub.room_count(), h.hub.kept_lock_count()), (0, 1));
    h.connect(2);
    assert!(matches!(
        &join_with_password(&mut h, 2, "r", None)[..],
        [ServerMessage::Error { code: ErrorCode::PasswordRequired, .. }]
    ));
    // The rightful owner comes back: the room is recreated with the same lock.
    welcome_of(join_with_password(&mut h, 1, "r", Some("hunter2")));
    assert_eq!(h.hub.kept_lock_count(), 0);
    assert!(matches!(
        &join_with_password(&mut h, 2, "r", Some("mine"))[..],
        [ServerMessage::Error { code: ErrorCode::WrongPassword, .. }]
    ));
    h.send(1, ClientMessage::Leave);
    // After the keep time the name is free again.
    h.advance(3599 * SECS);
    assert!(matches!(
        &join_with_password(&mut h, 2, "r", None)[..],
        [ServerMessage::Error { code: ErrorCode::PasswordRequired, .. }]
    ));
    h.advance(SECS);
    assert_eq!(h.hub.kept_lock_count(), 1, "an expired lock waits for the next sweep, but no longer counts");
    welcome_of(join_with_password(&mut h, 2, "r", Some("mine")));
    h.advance(SWEEP_INTERVAL);
    assert_eq!(h.hub.kept_lock_count(), 0);
    assert_eq!(h.hub.poll_timeout(), None, "nothing left to sweep");
}

#[test]
fn kept_locks_are_bounded_and_zero_keep_forgets_with_the_room() {
    let cfg = HubConfig { max_kept_locks: 2, ..HubConfig::default() };
    let mut h = Harness::new(cfg);
    h.connect(1);
    for room in ["a", "b", "c"] {
        welcome_of(join_with_password(&mut h, 1, room, Some("pw")));
        h.send(1, ClientMessage::Leave);
        h.advance(SECS);
    }
    assert_eq!(h.hub.kept_lock_count(), 2);
    assert!(!h.hub.kept_locks.contains_key("a"), "the lock closest to expiry went first");

    let mut h = Harness::new(HubConfig { room_lock_keep: Duration::ZERO, ..HubConfig::default() });
    h.connect(1);
    welcome_of(join_with_password(&mut h, 1, "r", Some("pw")));
    h.send(1, ClientMessage::Leave);
    welcome_of(join_with_password(&mut h, 1, "r", None));
}

#[test]
fn fixed_rooms_always_need_the_administrators_password() {
    let mut fixed = crate::auth::FixedRooms::default();
    fixed.0.insert("board".into(), "s3cret".into());
    let mut h = Harness::new(HubConfig { fixed_rooms: fixed, ..HubConfig::default() });
    h.connect(1);
    // Even the first joiner cannot set a password of its own.
    assert!(matches!(
        &join_with_password(&mut h, 1, "board", None)[..],
        [ServerMessage::Error { code: ErrorCode::PasswordRequired, .. }]
    ));
    assert!(matches!(
        &join_with_password(&mut h, 1, "board", Some("mine"))[..],
        [ServerMessage::Error { code: ErrorCode::WrongPassword, .. }]
    ));
    welcome_of(join_with_password(&mut h, 1, "board", Some("s3cret")));
    h.send(1, ClientMessage::Leave);
    // Its lock is the configuration's, not a kept one, and never expires.
    assert_eq!(h.hub.kept_lock_count(), 0);
    h.advance(Duration::from_secs(100_000));
    h.connect(2);
    assert!(matches!(
        &join_with_password(&mut h, 2, "board", None)[..],
        [ServerMessage::Error { code: ErrorCode::PasswordRequired, .. }]
    ));
    // Other rooms are unaffected.
    welcome_of(join_with_password(&mut h, 2, "open", None));
}

#[test]
fn a_token_password_claim_locks_the_room_it_creates_and_opens_it() {
    let mut h = jwt_harness(0);
    h.connect(1);
    welcome_of(join_with_token(&mut h, 1, "r", room_token("r", NOW_S + 600, Some("hunter2"))));
    // A token without the claim needs the password like anyone.
    h.connect(2);
    assert!(matches!(
        &join_with_token(&mut h, 2, "r", room_token("r", NOW_S + 600, None))[..],
        [ServerMessage::Error { code: ErrorCode::PasswordRequired, .. }]
    ));
    let mut j = Join::new("r", "typed");
    j.token = Some(room_token("r", NOW_S + 600, None));
    j.password = Some("hunter2".into());
    h.send(2, ClientMessage::Join(j));
    welcome_of(h.take(2));
    // A claim that matches opens it; one that does not is a wrong password.
    h.connect(3);
    assert!(matches!(
        &join_with_token(&mut h, 3, "r", room_token("r", NOW_S + 600, Some("other")))[..],
        [ServerMessage::Error { code: ErrorCode::WrongPassword, .. }]
    ));
    welcome_of(join_with_token(&mut h, 3, "r", room_token("r", NOW_S + 600, Some("hunter2"))));
}

fn attempt(h: &mut Harness, c: u64, room: &str, password: &str) -> Result<(), (ErrorCode, String)> {
    let msgs = join_with_password(h, c, room, Some(password));
    match msgs.as_slice() {
        [ServerMessage::Welcome(_)] => {
            h.send(c, ClientMessage::Leave);
            Ok(())
        }
        [ServerMessage::Error { code, message, .. }] => Err((*code, message.clone())),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_passwords_back_off_exponentially_per_room_and_per_address() {
    let mut h = Harness::new(HubConfig::default());
    for (c, room) in [(1, "r"), (2, "q")] {
        h.connect(c);
        welcome_of(join_with_password(&mut h, c, room, Some("right")));
    }
    h.connect_from(10, ip(66));
    // Three free failures...
    for _ in 0..3 {
        assert_eq!(attempt(&mut h, 10, "r", "guess").unwrap_err().0, ErrorCode::WrongPassword);
    }
    // ...then even the right password is refused unchecked until the delay has passed.
    let (code, message) = attempt(&mut h, 10, "r", "right").unwrap_err();
    assert_eq!(code, ErrorCode::TooManyAttempts);
    assert!(message.contains("try again in 1 s"), "{message}");
    // The delay doubles with each further failure, up to 60 s.
    let mut delays = Vec::new();
    for _ in 0..8 {
        let wait = h.hub.room_attempts.blocked(&"r".to_owned(), h.now).unwrap();
        delays.push(wait.as_secs());
        h.advance(wait);
        assert_eq!(attempt(&mut h, 10, "r", "guess").unwrap_err().0, ErrorCode::WrongPassword);
    }
    assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60]);
    let (code, message) = attempt(&mut h, 10, "r", "guess").unwrap_err();
    assert_eq!(code, ErrorCode::TooManyAttempts);
    assert!(message.contains("try again in 60 s"), "{message}");

    // Per address: the same guesser is blocked on another room too...
    assert_eq!(attempt(&mut h, 10, "q", "right").unwrap_err().0, ErrorCode::TooManyAttempts);
    // ...while someone else may still try that room.
    h.connect_from(11, ip(67));
    assert_eq!(attempt(&mut h, 11, "q", "right"), Ok(()));
    // Per room: someone else is blocked on the guessed room too.
    assert_eq!(attempt(&mut h, 11, "r", "right").unwrap_err().0, ErrorCode::TooManyAttempts);

    // A success clears the room's record (the guesser's own address stays blocked).
    h.advance(60 * SECS);
    assert_eq!(attempt(&mut h, 11, "r", "right"), Ok(()));
    assert_eq!(h.hub.room_attempts.blocked(&"r".to_owned(), h.now), None);
    assert!(h.hub.ip_attempts.blocked(&ip(66), h.now).is_none(), "its 60 s passed as well");
    assert_eq!(attempt(&mut h, 10, "r", "guess").unwrap_err().0, ErrorCode::WrongPassword);
    assert_eq!(attempt(&mut h, 10, "r", "guess").unwrap_err().0, ErrorCode::TooManyAttempts);

    // Records are forgotten once quiet for long enough.
    h.advance(Duration::from_secs(3600));
    assert!(h.hub.room_attempts.is_empty() && h.hub.ip_attempts.is_empty());
}

#[test]
fn a_missing_password_is_not_a_guess() {
    let mut h = Harness::new(HubConfig::default());
    h.connect(1);
    welcome_of(join_with_password(&mut h, 1, "r", Some("right")));
    h.connect(2);
    for _ in 0..10 {
        assert!(matches!(
            &join_with_password(&mut h, 2, "r", None)[..],
            [ServerMessage::Error { code: ErrorCode::PasswordRequired, .. }]
        ));
    }
    assert!(h.hub.room_attempts.is_empty());
}
