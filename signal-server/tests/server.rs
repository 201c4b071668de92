//! Integration tests: a real hearth-signal on 127.0.0.1:0 and real WebSocket clients.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use futures_util::SinkExt;
use hearth_proto::{
    CallOutcome, ClientMessage, ErrorCode, IceCandidate, Join, LeaveReason, MediaState, PeerId, Resume,
    ServerMessage, close_code,
};
use hearth_signal::Config;
use hearth_signal::auth::{JoinAuth, TurnConfig};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn config() -> Config {
    Config::default()
}

fn chat(text: &str) -> ClientMessage {
    ClientMessage::Chat { text: text.into(), to: None }
}

fn chat_seq(m: &ServerMessage) -> Option<(u64, String)> {
    match m {
        ServerMessage::Chat { message } => Some((message.seq, message.text.clone())),
        _ => None,
    }
}

#[tokio::test]
async fn health_ready_metrics_and_unknown_paths() {
    let s = TestServer::start(config()).await;
    assert_eq!(http_get(s.addr, "/healthz").await, (200, "ok\n".into()));
    assert_eq!(http_get(s.addr, "/readyz").await, (200, "ready\n".into()));
    let (status, body) = http_get(s.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("hearth_connections "), "{body}");
    assert_eq!(http_get(s.addr, "/nope").await.0, 404);
    // A plain GET on /ws is not an upgrade.
    assert_eq!(http_get(s.addr, "/ws").await.0, 426);
}

#[tokio::test]
async fn three_peers_relay_reaches_only_the_addressee() {
    let s = TestServer::start(config()).await;
    let (mut a, wa) = s.joined("r", "Ada").await;
    let (mut b, wb) = s.joined("r", "Bob").await;
    let (mut c, wc) = s.joined("r", "Cy").await;
    assert_eq!(wc.peers.len(), 2);
    let joined = a.recv().await;
    assert!(
        matches!(joined, ServerMessage::PeerJoined { ref peer } if peer.id == wb.peer_id && peer.name == "Bob")
    );
    a.recv().await; // Cy joined
    b.recv().await; // Cy joined

    a.send(&ClientMessage::Offer { to: wb.peer_id.clone(), sdp: "v=0 offer".into() }).await;
    assert_eq!(b.recv().await, ServerMessage::Offer { from: wa.peer_id.clone(), sdp: "v=0 offer".into() });
    b.send(&ClientMessage::Answer { to: wa.peer_id.clone(), sdp: "v=0 answer".into() }).await;
    assert_eq!(a.recv().await, ServerMessage::Answer { from: wb.peer_id.clone(), sdp: "v=0 answer".into() });
    let cand = IceCandidate {
        candidate: "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host".into(),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
    };
    a.send(&ClientMessage::IceCandidate { to: wb.peer_id.clone(), candidate: Some(cand.clone()) }).await;
    assert_eq!(
        b.recv().await,
        ServerMessage::IceCandidate { from: wa.peer_id.clone(), candidate: Some(cand) }
    );
    // Cy saw none of it.
    c.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn private_chat_reaches_only_sender_and_addressee() {
    let s = TestServer::start(config()).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    let (mut b, wb) = s.joined("r", "Bob").await;
    let (mut c, _) = s.joined("r", "Cy").await;
    a.recv().await;
    a.recv().await;
    b.recv().await;
    a.send(&ClientMessage::Chat { text: "psst".into(), to: Some(wb.peer_id.clone()) }).await;
    for client in [&mut a, &mut b] {
        match client.recv().await {
            ServerMessage::Chat { message } => {
                assert_eq!(message.text, "psst");
                assert_eq!(message.to.as_ref(), Some(&wb.peer_id));
            }
            other => panic!("{other:?}"),
        }
    }
    c.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn room_chat_reaches_every_member_once_in_order_and_late_joiners_get_history() {
    let s = TestServer::start(config()).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    let (mut b, _) = s.joined("r", "Bob").await;
    let (mut other, _) = s.joined("elsewhere", "Zed").await;
    a.recv().await; // Bob joined
    for i in 0..20 {
        let sender = if i % 2 == 0 { &mut a } else { &mut b };
        sender.send(&chat(&format!("m{i}"))).await;
    }
    for client in [&mut a, &mut b] {
        let mut got = Vec::new();
        while got.len() < 20 {
            got.push(client.recv_until(chat_seq).await);
        }
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
        client.expect_silence(Duration::from_millis(100)).await;
    }
    other.expect_silence(Duration::from_millis(100)).await;
    let (_late, w) = s.joined("r", "Late").await;
    assert_eq!(w.history.len(), 20);
    assert_eq!(w.history[0].text, "m0");
    assert!(w.history.iter().all(|m| m.from_name == "Ada" || m.from_name == "Bob"));
}

#[tokio::test]
async fn history_bound_is_configurable() {
    let mut cfg = config();
    cfg.hub.history_len = 5;
    let s = TestServer::start(cfg).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    for i in 0..12 {
        a.send(&chat(&format!("m{i}"))).await;
    }
    for _ in 0..12 {
        a.recv().await;
    }
    let (_b, w) = s.joined("r", "Bob").await;
    let seqs: Vec<u64> = w.history.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [8, 9, 10, 11, 12]);
}

#[tokio::test]
async fn room_full_and_rooms_removed_when_empty() {
    let mut cfg = config();
    cfg.hub.max_room_size = 2;
    let s = TestServer::start(cfg).await;
    let (mut a, _) = s.joined("r", "A").await;
    let (mut b, _) = s.joined("r", "B").await;
    let mut c = s.client().await;
    c.send(&ClientMessage::Join(Join::new("r", "C"))).await;
    match c.recv().await {
        ServerMessage::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::RoomFull);
            assert!(message.contains("full"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    c.ping(1).await;
    assert_eq!(metric(&s.metrics_text().await, "hearth_rooms"), 1.0);
    a.send(&ClientMessage::Leave).await;
    b.send(&ClientMessage::Leave).await;
    // Once both have left, the room is gone and C can create it afresh.
    a.ping(2).await;
    b.ping(3).await;
    let w = c.join("r", "C").await;
    assert!(w.peers.is_empty());
    assert!(w.history.is_empty());
}

#[tokio::test]
async fn bad_input_gets_errors_and_the_connection_stays_usable() {
    let s = TestServer::start(config()).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    let cases: &[(&str, ErrorCode)] = &[
        ("{not json", ErrorCode::MalformedJson),
        ("", ErrorCode::MalformedJson),
        ("[1,2,3]", ErrorCode::MissingType),
        (r#"{"room":"r"}"#, ErrorCode::MissingType),
        (r#"{"type":"teleport"}"#, ErrorCode::UnknownType),
        (r#"{"type":"chat","text":42}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"offer","to":"x"}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"ping","nonce":-1}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"chat","text":"   "}"#, ErrorCode::InvalidField),
        (r#"["ping",5]"#, ErrorCode::MissingType),
        (r#"{"type":"media_state","state":[true,true,true]}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"chat","text":"beep\u0007"}"#, ErrorCode::InvalidField),
        (r#"{"type":"chat","text":"hi","cseq":0}"#, ErrorCode::InvalidField),
        (r#"{"type":"chat","text":"hi","cseq":-1}"#, ErrorCode::InvalidMessage),
        (r#"{"type":"offer","to":"nobody","sdp":"v=0"}"#, ErrorCode::PeerNotFound),
        (r#"{"type":"chat","text":"hi","to":"nobody"}"#, ErrorCode::PeerNotFound),
        (r#"{"type":"join","protocol":1,"room":"r","name":"again"}"#, ErrorCode::AlreadyJoined),
    ];
    for (i, (input, code)) in cases.iter().enumerate() {
        a.send_raw(input).await;
        match a.recv().await {
            ServerMessage::Error { code: got, message, .. } => {
                assert_eq!(got, *code, "input {input:?}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("input {input:?}: expected error, got {other:?}"),
        }
        a.ping(i as u64).await;
    }
    a.ws.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    assert_eq!(a.expect_error().await, ErrorCode::MalformedJson);
    a.ping(100).await;
    let text = s.metrics_text().await;
    assert_eq!(metric(&text, r#"hearth_errors_total{code="malformed_json"}"#), 3.0);
    assert_eq!(metric(&text, r#"hearth_errors_total{code="peer_not_found"}"#), 2.0);
}

#[tokio::test]
async fn messages_before_join_and_version_mismatch() {
    let s = TestServer::start(config()).await;
    let mut c = s.client().await;
    c.send(&chat("hello?")).await;
    assert_eq!(c.expect_error().await, ErrorCode::NotJoined);
    let mut j = Join::new("r", "A");
    j.protocol = 99;
    c.send(&ClientMessage::Join(j)).await;
    match c.recv().await {
        ServerMessage::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::VersionMismatch);
            assert!(message.contains("protocol 1") && message.contains("99"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    c.join("r", "A").await;
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let mut cfg = config();
    cfg.max_message_bytes = 4096;
    let s = TestServer::start(cfg).await;
    let (mut a, _) = s.joined("r", "A").await;
    a.send(&chat(&"x".repeat(3000))).await;
    assert!(a.recv_until(chat_seq).await.1.len() == 3000);
    let big = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(5000));
    a.send_raw(&big).await;
    match a.event().await {
        Event::Closed(Some(frame)) => assert_eq!(u16::from(frame.code), close_code::TOO_BIG),
        Event::Closed(None) => panic!("closed without a close frame"),
        Event::Msg(m) => panic!("expected close, got {m:?}"),
    }
}

/// A frame far over the limit leaves most of itself unread when the server gives up on it;
/// closing the socket then would reset the connection and lose the 1009 close frame.
#[tokio::test]
async fn a_much_larger_frame_still_gets_its_1009_close() {
    let mut cfg = config();
    cfg.max_message_bytes = 64 * 1024;
    let s = TestServer::start(cfg).await;
    let big = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(200_000));
    for round in 0..5 {
        let (mut a, _) = s.joined(&format!("r{round}"), "A").await;
        // The server may stop reading mid-frame, so the send itself may or may not complete.
        let _ = a.ws.send(Message::Text(big.clone().into())).await;
        match a.event().await {
            Event::Closed(Some(frame)) => {
                assert_eq!(u16::from(frame.code), close_code::TOO_BIG, "round {round}")
            }
            Event::Closed(None) => panic!("round {round}: connection lost without the 1009 close frame"),
            Event::Msg(m) => panic!("round {round}: expected close, got {m:?}"),
        }
    }
}

#[tokio::test]
async fn rate_limit_drops_with_one_error_and_recovers() {
    let mut cfg = config();
    cfg.rate_per_sec = 10;
    cfg.rate_burst = 5;
    let s = TestServer::start(cfg).await;
    let mut c = s.client().await;
    for n in 0..20 {
        c.send(&ClientMessage::Ping { nonce: n }).await;
    }
    let mut pongs = 0;
    let mut limited = 0;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), c.ws.next_text()).await {
            Ok(Some(ServerMessage::Pong { .. })) => pongs += 1,
            Ok(Some(ServerMessage::Error { code: ErrorCode::RateLimited, .. })) => limited += 1,
            Ok(other) => panic!("{other:?}"),
            Err(_) => break,
        }
    }
    assert!((5..=7).contains(&pongs), "pongs {pongs}");
    assert_eq!(limited, 1, "one rate_limited error per second");
    tokio::time::sleep(Duration::from_millis(600)).await;
    c.ping(99).await;
    assert!(metric(&s.metrics_text().await, "hearth_rate_limited_total") >= 13.0);
}

trait NextText {
    async fn next_text(&mut self) -> Option<ServerMessage>;
}

impl NextText
    for tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
{
    async fn next_text(&mut self) -> Option<ServerMessage> {
        use futures_util::StreamExt;
        loop {
            match self.next().await? {
                Ok(Message::Text(t)) => return hearth_proto::decode_server(&t).ok(),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }
}

#[tokio::test]
async fn max_connections_refuses_upgrades_with_503() {
    let mut cfg = config();
    cfg.max_connections = 2;
    let s = TestServer::start(cfg).await;
    let mut a = s.client().await;
    let _b = s.client().await;
    let err = tokio_tungstenite::connect_async(s.url()).await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    a.ping(1).await;
    drop(a);
    // The slot frees once the server sees the close.
    let mut ok = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(s.url()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed slot was not reused");
    assert!(metric(&s.metrics_text().await, r#"hearth_upgrades_refused_total{reason="server_full"}"#) >= 1.0);
}

fn upgrade_request(origin: Option<&str>) -> String {
    let origin = origin.map(|o| format!("Origin: {o}\r\n")).unwrap_or_default();
    format!(
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
    )
}

#[tokio::test]
async fn origin_allow_list() {
    let mut cfg = config();
    cfg.allowed_origins = vec!["https://meet.example.org".into()];
    let s = TestServer::start(cfg).await;
    let status = status_line(s.addr, &upgrade_request(Some("https://evil.example.com"))).await;
    assert_eq!(status, 403);
    // Upgrades answer 101 and keep the socket open, so read just the status line.
    for origin in [Some("https://meet.example.org"), None] {
        let status = status_line(s.addr, &upgrade_request(origin)).await;
        assert_eq!(status, 101, "origin {origin:?}");
    }
}

async fn status_line(addr: std::net::SocketAddr, req: &str) -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).await.unwrap();
    line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn dropped_client_resumes_with_same_peer_id_and_missed_messages() {
    let s = TestServer::start(config()).await;
    let (mut a, wa) = s.joined("r", "Ada").await;
    let (b, wb) = s.joined("r", "Bob").await;
    a.recv().await; // Bob joined
    drop(b); // The TCP connection vanishes without a close frame.
    assert_eq!(a.recv().await, ServerMessage::PeerReconnecting { peer_id: wb.peer_id.clone() });
    a.send(&chat("while you were away")).await;
    a.send(&ClientMessage::Chat { text: "private".into(), to: Some(wb.peer_id.clone()) }).await;
    a.send(&ClientMessage::Offer { to: wb.peer_id.clone(), sdp: "v=0 restart".into() }).await;
    a.recv().await;
    a.recv().await;

    let mut b2 = s.client().await;
    let mut j = Join::new("r", "Bob");
    j.resume = Some(Resume { token: wb.resume_token.clone(), last_seq: 0 });
    let w = b2.join_with(j).await;
    assert!(w.resumed);
    assert_eq!(w.peer_id, wb.peer_id);
    let texts: Vec<&str> = w.history.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["while you were away", "private"]);
    assert_eq!(b2.recv().await, ServerMessage::Offer { from: wa.peer_id.clone(), sdp: "v=0 restart".into() });
    assert_eq!(a.recv().await, ServerMessage::PeerReconnected { peer_id: wb.peer_id.clone() });
    a.send(&chat("welcome back")).await;
    assert_eq!(b2.recv_until(chat_seq).await, (3, "welcome back".into()));
    let text = s.metrics_text().await;
    assert_eq!(metric(&text, r#"hearth_joins_total{kind="resume"}"#), 1.0);
}

/// A client numbers what it sends; after a resume it resends what it is not sure arrived, and
/// the server takes each message once.
#[tokio::test]
async fn messages_resent_after_a_resume_are_taken_once() {
    use hearth_proto::encode_numbered;
    let s = TestServer::start(config()).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    let (mut b, wb) = s.joined("r", "Bob").await;
    assert_eq!(wb.last_cseq, 0);
    a.recv().await; // Bob joined
    b.send_raw(&encode_numbered(&chat("one"), 1)).await;
    b.send_raw(&encode_numbered(&chat("two"), 2)).await;
    assert_eq!(a.recv_until(chat_seq).await, (1, "one".into()));
    assert_eq!(a.recv_until(chat_seq).await, (2, "two".into()));
    b.send(&ClientMessage::Ping { nonce: 7 }).await;
    let confirmed = b
        .recv_until(|m| match m {
            ServerMessage::Pong { last_cseq, .. } => Some(*last_cseq),
            _ => None,
        })
        .await;
    assert_eq!(confirmed, Some(2));
    drop(b);
    assert_eq!(a.recv().await, ServerMessage::PeerReconnecting { peer_id: wb.peer_id.clone() });

    let mut b2 = s.client().await;
    let mut j = Join::new("r", "Bob");
    j.resume = Some(Resume { token: wb.resume_token.clone(), last_seq: 2 });
    let w = b2.join_with(j).await;
    assert_eq!(w.last_cseq, 2);
    // A client that resends everything it kept: "two" again, then the new "three".
    b2.send_raw(&encode_numbered(&chat("two"), 2)).await;
    b2.send_raw(&encode_numbered(&chat("three"), 3)).await;
    assert_eq!(a.recv().await, ServerMessage::PeerReconnected { peer_id: wb.peer_id.clone() });
    assert_eq!(a.recv_until(chat_seq).await, (3, "three".into()));
    assert_eq!(b2.recv_until(chat_seq).await, (3, "three".into()));
    a.expect_silence(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn peer_error_is_relayed_and_names_are_normalized() {
    let s = TestServer::start(config()).await;
    let (mut a, wa) = s.joined(" standup ", "Ada").await;
    assert_eq!(wa.room, "standup");
    let (mut b, wb) = s.joined("standup", "Bob").await;
    assert_eq!(wb.peers.len(), 1);
    a.recv().await; // Bob joined
    let mut c = s.client().await;
    c.send(&ClientMessage::Join(Join::new("standup", "B\u{43e}b"))).await; // Cyrillic o
    assert_eq!(c.expect_error().await, ErrorCode::InvalidField);
    c.send(&ClientMessage::Join(Join::new("standup", "\u{FF22}ob"))).await; // fullwidth B
    assert_eq!(c.expect_error().await, ErrorCode::NameTaken);
    b.send(&ClientMessage::PeerError {
        to: wa.peer_id.clone(),
        code: "no_common_codec".into(),
        message: "your client offers no H.264 (packetization-mode=1)".into(),
    })
    .await;
    assert_eq!(
        a.recv().await,
        ServerMessage::PeerError {
            from: wb.peer_id.clone(),
            code: "no_common_codec".into(),
            message: "your client offers no H.264 (packetization-mode=1)".into(),
        }
    );
}

#[tokio::test]
async fn peer_that_never_returns_is_reported_left_after_grace() {
    let mut cfg = config();
    cfg.hub.resume_grace = Duration::from_millis(300);
    let s = TestServer::start(cfg).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    let (b, wb) = s.joined("r", "Bob").await;
    a.recv().await;
    drop(b);
    assert_eq!(a.recv().await, ServerMessage::PeerReconnecting { peer_id: wb.peer_id.clone() });
    let started = std::time::Instant::now();
    assert_eq!(
        a.recv().await,
        ServerMessage::PeerLeft { peer_id: wb.peer_id.clone(), reason: LeaveReason::Timeout }
    );
    assert!(started.elapsed() >= Duration::from_millis(250));
    let mut b2 = s.client().await;
    let mut j = Join::new("r", "Bob");
    j.resume = Some(Resume { token: wb.resume_token, last_seq: 0 });
    b2.send(&ClientMessage::Join(j)).await;
    assert_eq!(b2.expect_error().await, ErrorCode::ResumeFailed);
}

#[tokio::test]
async fn dead_socket_is_detected_by_heartbeat() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(100);
    cfg.heartbeat_timeout = Duration::from_millis(400);
    let s = TestServer::start(cfg).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    // A raw client that completes the handshake, joins, then goes silent: it never reads, so it
    // never answers the server's pings.
    use tokio::io::AsyncWriteExt;
    let mut raw = raw_upgrade(tokio::net::TcpStream::connect(s.addr).await.unwrap()).await;
    raw.write_all(&masked_text_frame(r#"{"type":"join","protocol":1,"room":"r","name":"Ghost"}"#))
        .await
        .unwrap();
    let ghost = a
        .recv_until(|m| match m {
            ServerMessage::PeerJoined { peer } => Some(peer.id.clone()),
            _ => None,
        })
        .await;
    let started = std::time::Instant::now();
    let reconnecting = a
        .recv_until(|m| match m {
            ServerMessage::PeerReconnecting { peer_id } => Some(peer_id.clone()),
            _ => None,
        })
        .await;
    assert_eq!(reconnecting, ghost);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    drop(raw);
}

/// Complete a WebSocket handshake by hand on `raw` (reading exactly the response head), for
/// clients that then misbehave at the frame level.
async fn raw_upgrade(mut raw: tokio::net::TcpStream) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(upgrade_request(None).as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        raw.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    raw
}

/// One masked client text frame.
fn masked_text_frame(text: &str) -> Vec<u8> {
    masked_frame(0x1, text.as_bytes())
}

/// One final masked client frame with `opcode` and any payload (even one that is not UTF-8).
fn masked_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Everything the server sends on `raw` until it ends the connection, and how it ended:
/// `true` for an orderly end (FIN), `false` for a reset.
async fn read_until_end(raw: &mut tokio::io::ReadHalf<tokio::net::TcpStream>) -> (Vec<u8>, bool) {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(WAIT, raw.read(&mut buf))
            .await
            .expect("the server never ended the connection")
        {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, false),
        }
    }
}

/// The status code of the first close frame (unmasked, from the server) in `bytes`, skipping
/// any frames before it.
fn close_code_in(mut bytes: &[u8]) -> Option<u16> {
    while bytes.len() >= 2 {
        let (opcode, len) = (bytes[0] & 0x0f, usize::from(bytes[1] & 0x7f));
        let (header, len) = match len {
            126 => (4, usize::from(u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]))),
            127 => return None, // the server sends nothing that large here
            n => (2, n),
        };
        let payload = bytes.get(header..header + len)?;
        if opcode == 0x8 {
            return payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
        }
        bytes = &bytes[header + len..];
    }
    None
}

/// A frame far over the limit is refused after its header, with most of it still unsent or
/// unread. Closing the socket with unread input resets the connection, and a reset may destroy
/// the 1009 close frame before the client reads it (Windows drops received data on a reset);
/// the server must end the connection in order instead.
#[tokio::test]
async fn oversized_frame_gets_1009_and_an_orderly_end_not_a_reset() {
    use tokio::io::AsyncWriteExt;
    let mut cfg = config();
    cfg.max_message_bytes = 64 * 1024;
    let s = TestServer::start(cfg).await;
    for round in 0..3 {
        let raw = raw_upgrade(tokio::net::TcpStream::connect(s.addr).await.unwrap()).await;
        let (mut rd, mut wr) = tokio::io::split(raw);
        let frame = masked_frame(0x1, &[b'x'; 200_000]);
        let writer = tokio::spawn(async move {
            let _ = wr.write_all(&frame).await;
            wr
        });
        let (got, orderly) = read_until_end(&mut rd).await;
        assert_eq!(close_code_in(&got), Some(close_code::TOO_BIG), "round {round}: got {got:?}");
        assert!(orderly, "round {round}: the connection was reset after the close frame");
        drop(writer.await.unwrap());
    }
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    use tokio::io::AsyncWriteExt;
    let s = TestServer::start(config()).await;
    let raw = raw_upgrade(tokio::net::TcpStream::connect(s.addr).await.unwrap()).await;
    let (mut rd, mut wr) = tokio::io::split(raw);
    wr.write_all(&masked_frame(0x1, b"{\"type\":\"chat\",\"text\":\"\xff\xfe\"}")).await.unwrap();
    let (got, _) = read_until_end(&mut rd).await;
    assert_eq!(close_code_in(&got), Some(close_code::INVALID_DATA), "got {got:?}");
    assert_eq!(metric(&s.metrics_text().await, r#"hearth_errors_total{code="invalid_utf8"}"#), 1.0);
}

#[tokio::test]
async fn room_password_is_enforced() {
    let s = TestServer::start(config()).await;
    let mut a = s.client().await;
    let mut j = Join::new("locked", "A");
    j.password = Some("hunter2".into());
    a.join_with(j.clone()).await;
    let mut b = s.client().await;
    b.send(&ClientMessage::Join(Join::new("locked", "B"))).await;
    assert_eq!(b.expect_error().await, ErrorCode::PasswordRequired);
    let mut wrong = Join::new("locked", "B");
    wrong.password = Some("nope".into());
    b.send(&ClientMessage::Join(wrong)).await;
    assert_eq!(b.expect_error().await, ErrorCode::WrongPassword);
    j.name = "B".into();
    b.join_with(j).await;
    let text = s.metrics_text().await;
    assert_eq!(metric(&text, r#"hearth_auth_rejected_total{code="wrong_password"}"#), 1.0);
    assert_eq!(metric(&text, r#"hearth_auth_rejected_total{code="password_required"}"#), 1.0);
}

#[tokio::test]
async fn jwt_room_tokens() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    let secret = b"0123456789abcdef0123456789abcdef";
    let mut cfg = config();
    cfg.hub.auth = JoinAuth::Jwt { secret: secret.to_vec(), leeway_secs: 0 };
    let s = TestServer::start(cfg).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sign = |claims: serde_json::Value, key: &[u8]| {
        encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).unwrap()
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let alg_none = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(format!(r#"{{"room":"r","exp":{}}}"#, now + 600))
    );
    let cases = [
        (None, ErrorCode::TokenRequired),
        (Some(sign(serde_json::json!({"room": "r", "exp": now - 10}), secret)), ErrorCode::TokenExpired),
        (
            Some(sign(serde_json::json!({"room": "r", "exp": now + 600, "nbf": now + 300}), secret)),
            ErrorCode::TokenNotYetValid,
        ),
        (
            Some(sign(serde_json::json!({"room": "other", "exp": now + 600}), secret)),
            ErrorCode::TokenWrongRoom,
        ),
        (
            Some(sign(
                serde_json::json!({"room": "r", "exp": now + 600}),
                b"wrong-key-wrong-key-wrong-key!!!",
            )),
            ErrorCode::TokenInvalid,
        ),
        (Some(alg_none), ErrorCode::TokenInvalid),
    ];
    let mut c = s.client().await;
    for (token, code) in cases {
        let mut j = Join::new("r", "A");
        j.token = token;
        c.send(&ClientMessage::Join(j)).await;
        assert_eq!(c.expect_error().await, code);
    }
    let mut j = Join::new("r", "ignored");
    j.token =
        Some(sign(serde_json::json!({"room": "r", "name": "Ada (verified)", "exp": now + 600}), secret));
    let w = c.join_with(j).await;
    assert_eq!(w.name, "Ada (verified)");
    let text = s.metrics_text().await;
    assert_eq!(metric(&text, r#"hearth_auth_rejected_total{code="token_invalid"}"#), 2.0);
}

#[tokio::test]
async fn welcome_carries_turn_credentials() {
    let mut cfg = config();
    cfg.hub.stun_urls = vec!["stun:127.0.0.1:3478".into()];
    cfg.hub.turn = Some(TurnConfig {
        urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
        secret: b"north".to_vec(),
        ttl_secs: 600,
    });
    let s = TestServer::start(cfg).await;
    let (_a, w) = s.joined("r", "A").await;
    assert_eq!(w.ice_servers.len(), 2);
    let turn = &w.ice_servers[1];
    let username = turn.username.clone().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, w.peer_id.as_str());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry));
    let (_, expected) = hearth_signal::auth::turn_credentials(b"north", user, expiry);
    assert_eq!(turn.credential.as_deref(), Some(expected.as_str()));
}

#[tokio::test]
async fn media_state_reactions_hands_and_call_reports() {
    let s = TestServer::start(config()).await;
    let (mut a, wa) = s.joined("r", "A").await;
    let (mut b, wb) = s.joined("r", "B").await;
    a.recv().await;
    let state = MediaState { audio_muted: true, video_off: true, screen_sharing: false };
    a.send(&ClientMessage::MediaState { state }).await;
    assert_eq!(b.recv().await, ServerMessage::MediaState { peer_id: wa.peer_id.clone(), state });
    a.send(&ClientMessage::RaiseHand { raised: true }).await;
    assert_eq!(b.recv().await, ServerMessage::RaiseHand { peer_id: wa.peer_id.clone(), raised: true });
    a.send(&ClientMessage::Reaction { emoji: "👏".into() }).await;
    assert!(
        matches!(b.recv().await, ServerMessage::Reaction { from, emoji, .. } if from == wa.peer_id && emoji == "👏")
    );
    b.send(&ClientMessage::CallReport {
        peer: wa.peer_id.clone(),
        outcome: CallOutcome::Connected,
        connect_ms: Some(80),
        path: Some(hearth_proto::CallPath {
            local: hearth_proto::CandidateType::Relay,
            remote: hearth_proto::CandidateType::Host,
            relay: Some(hearth_proto::RelayTransport::Tls),
        }),
        reason: None,
    })
    .await;
    a.send(&ClientMessage::CallReport {
        peer: wb.peer_id.clone(),
        outcome: CallOutcome::Failed,
        connect_ms: None,
        path: None,
        reason: Some(hearth_proto::CallFailure::Timeout),
    })
    .await;
    b.ping(1).await;
    a.recv_until(|m| matches!(m, ServerMessage::Reaction { .. }).then_some(())).await;
    a.ping(2).await;
    let text = s.metrics_text().await;
    assert_eq!(metric(&text, r#"hearth_call_outcomes_total{outcome="connected"}"#), 1.0);
    assert_eq!(metric(&text, r#"hearth_call_outcomes_total{outcome="failed"}"#), 1.0);
    assert_eq!(metric(&text, "hearth_call_connect_seconds_count"), 1.0);
    assert_eq!(metric(&text, r#"hearth_call_paths_total{local="relay",remote="host",relay="tls"}"#), 1.0);
    assert_eq!(metric(&text, r#"hearth_call_failures_total{reason="timeout"}"#), 1.0);
    assert_eq!(metric(&text, r#"hearth_messages_total{type="media_state"}"#), 1.0);
    assert_eq!(metric(&text, r#"hearth_joins_total{kind="fresh"}"#), 2.0);
    assert_eq!(metric(&text, "hearth_peers"), 2.0);
    let c = PeerId::from("x");
    assert_ne!(c, wa.peer_id);
}

#[tokio::test]
async fn graceful_shutdown_tells_clients_and_returns() {
    let mut s = TestServer::start(config()).await;
    let (mut a, _) = s.joined("r", "A").await;
    let mut idle = s.client().await;
    s.stop();
    for c in [&mut a, &mut idle] {
        assert!(matches!(c.recv().await, ServerMessage::Shutdown { retry_after_ms: 2000, .. }));
        match c.event().await {
            Event::Closed(Some(f)) => assert_eq!(u16::from(f.code), close_code::GOING_AWAY),
            other => panic!("expected close 1001, got {:?}", matches!(other, Event::Msg(_))),
        }
    }
    let result =
        tokio::time::timeout(Duration::from_secs(3), &mut s.task).await.expect("run() did not return");
    assert!(result.unwrap().is_ok());
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(s.addr).await.is_err());
}

#[tokio::test]
async fn tls_wss_works() {
    let dir = std::env::temp_dir().join(format!("hearth-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let mut cfg = config();
    cfg.tls = Some(hearth_signal::TlsFiles { cert: cert_path, key: key_path });
    let s = TestServer::start(cfg).await;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let tls =
        connector.connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let (mut ws, _) =
        tokio_tungstenite::client_async(format!("wss://localhost:{}/ws", s.addr.port()), tls).await.unwrap();
    ws.send(Message::Text(hearth_proto::encode(&ClientMessage::Ping { nonce: 5 }).into())).await.unwrap();
    use futures_util::StreamExt;
    let reply = ws.next().await.unwrap().unwrap();
    assert!(reply.to_text().unwrap().contains(r#""nonce":5"#));
    // Plain ws on a TLS port fails instead of hanging.
    assert!(
        tokio::time::timeout(Duration::from_secs(5), tokio_tungstenite::connect_async(s.url()))
            .await
            .unwrap()
            .is_err()
    );
}

#[tokio::test]
async fn bad_tls_files_are_a_clear_error() {
    let mut cfg = config();
    cfg.tls = Some(hearth_signal::TlsFiles {
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = hearth_signal::run(listener, cfg, std::future::pending()).await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_reported() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(200);
    cfg.heartbeat_timeout = Duration::from_secs(1);
    cfg.rate_per_sec = 10_000;
    cfg.rate_burst = 10_000;
    cfg.hub.resume_grace = Duration::from_secs(1);
    let s = TestServer::start(cfg).await;
    let (mut flooder, _) = s.joined("r", "Flooder").await;
    // A raw client with a tiny receive buffer that joins and then never reads again.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut raw = raw_upgrade(sock.connect(s.addr).await.unwrap()).await;
    use tokio::io::AsyncWriteExt;
    raw.write_all(&masked_text_frame(r#"{"type":"join","protocol":1,"room":"r","name":"Stuck"}"#))
        .await
        .unwrap();
    let stuck = flooder
        .recv_until(|m| match m {
            ServerMessage::PeerJoined { peer } => Some(peer.id.clone()),
            _ => None,
        })
        .await;
    // Flood the room (while reading our own echoes, as a live client does): the stuck client's
    // socket and queue fill up.
    use futures_util::StreamExt;
    let (mut sink, mut stream) = flooder.ws.split();
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            // Pings and other control frames are skipped; a close or an error ends the reader.
            let t = match stream.next().await {
                Some(Ok(Message::Text(t))) => t,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            };
            match hearth_proto::decode_server(&t) {
                Ok(ServerMessage::PeerReconnecting { peer_id }) => {
                    let _ = events_tx.send(("reconnecting", peer_id));
                }
                Ok(ServerMessage::PeerLeft { peer_id, .. }) => {
                    let _ = events_tx.send(("left", peer_id));
                }
                _ => {}
            }
        }
    });
    let big = "x".repeat(3900);
    let started = std::time::Instant::now();
    let flood = tokio::spawn(async move {
        // ~12 MB in 3 s: more than the stuck client's socket buffers can take.
        for _ in 0..3000 {
            if sink.send(Message::Text(hearth_proto::encode(&chat(&big)).into())).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(10), events_rx.recv()).await.unwrap().unwrap();
    assert_eq!(first, ("reconnecting", stuck.clone()));
    let second = tokio::time::timeout(Duration::from_secs(10), events_rx.recv()).await.unwrap().unwrap();
    assert_eq!(second, ("left", stuck));
    flood.abort();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(metric(&s.metrics_text().await, "hearth_peers"), 1.0);
    drop(raw);
}
