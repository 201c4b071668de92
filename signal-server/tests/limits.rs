//! Limits that need the real server: per-address connection and session limits (the client
//! address comes from the socket), memory gauges in /metrics, resume token rotation and
//! wrong-password backoff over real WebSockets.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use common::*;
use hearth_proto::{ClientMessage, ErrorCode, Join, Resume, ServerMessage};
use hearth_signal::Config;
use std::time::Duration;

/// An upgrade request that asks the server to close the connection after answering, so a
/// refusal can be read to its end.
const UPGRADE_THEN_CLOSE: &str = "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, close\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

fn config() -> Config {
    Config::default()
}

/// Poll /metrics until `series` has `want`, or fail after a few seconds.
async fn wait_metric(s: &TestServer, series: &str, want: impl Fn(f64) -> bool) -> f64 {
    let started = std::time::Instant::now();
    loop {
        let v = metric(&s.metrics_text().await, series);
        if want(v) {
            return v;
        }
        assert!(started.elapsed() < WAIT, "{series} stayed at {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_per_address_are_refused_with_429_past_the_limit() {
    let mut cfg = config();
    cfg.max_connections_per_ip = 2;
    cfg.hub.ip_limits_include_loopback = true;
    let s = TestServer::start(cfg).await;
    let mut a = s.client().await;
    let _b = s.client().await;
    let (status, body) = http_request(s.addr, UPGRADE_THEN_CLOSE).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too_many_connections") && body.contains("2 connections"), "{body}");
    a.ping(1).await;
    drop(a);
    // The address's slot frees once the server sees the close.
    let mut ok = false;
    for _ in 0..100 {
        if tokio_tungstenite::connect_async(s.url()).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a freed slot was not reused");
    assert!(metric(&s.metrics_text().await, r#"hearth_upgrades_refused_total{reason="ip_limit"}"#) >= 1.0);
}

#[tokio::test]
async fn loopback_is_exempt_from_per_address_limits_by_default() {
    let mut cfg = config();
    cfg.max_connections_per_ip = 2;
    cfg.hub.max_sessions_per_ip = 2;
    let s = TestServer::start(cfg).await;
    let mut clients = Vec::new();
    for i in 0..5 {
        let (c, _) = s.joined(&format!("room{i}"), "n").await;
        clients.push(c);
    }
    assert_eq!(metric(&s.metrics_text().await, "hearth_connections"), 5.0);
}

#[tokio::test]
async fn sessions_per_address_are_capped() {
    let mut cfg = config();
    cfg.max_connections_per_ip = 0;
    cfg.hub.max_sessions_per_ip = 1;
    cfg.hub.ip_limits_include_loopback = true;
    let s = TestServer::start(cfg).await;
    let (a, _) = s.joined("a", "A").await;
    let mut b = s.client().await;
    b.send(&ClientMessage::Join(Join::new("b", "B"))).await;
    assert_eq!(b.expect_error().await, ErrorCode::ServerFull);
    // A dropped session keeps counting until its grace period ends (30 s here), so the place
    // frees with a leave, not a drop.
    let mut a = a;
    a.send(&ClientMessage::Leave).await;
    a.ping(1).await;
    b.join("b", "B").await;
}

#[tokio::test]
async fn memory_gauges_follow_held_relays_and_chat() {
    let s = TestServer::start(Config::default()).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    let (b, wb) = s.joined("r", "Bob").await;
    a.recv().await; // Bob joined
    drop(b);
    assert_eq!(a.recv().await, ServerMessage::PeerReconnecting { peer_id: wb.peer_id.clone() });
    a.send(&ClientMessage::Offer { to: wb.peer_id.clone(), sdp: "v=0 ".repeat(500) }).await;
    a.send(&ClientMessage::Chat { text: "hello".into(), to: None }).await;
    a.recv().await; // the chat's echo: both were handled
    let held = wait_metric(&s, "hearth_held_relay_bytes", |v| v > 0.0).await;
    assert!(held >= 2000.0, "{held}");
    assert!(wait_metric(&s, "hearth_chat_log_bytes", |v| v > 0.0).await > 5.0);
    let mut b2 = s.client().await;
    let mut j = Join::new("r", "Bob");
    j.resume = Some(Resume { token: wb.resume_token.clone(), last_seq: 0 });
    b2.join_with(j).await;
    wait_metric(&s, "hearth_held_relay_bytes", |v| v == 0.0).await;
    // The room goes when both leave, and its chat with it.
    a.send(&ClientMessage::Leave).await;
    b2.send(&ClientMessage::Leave).await;
    wait_metric(&s, "hearth_chat_log_bytes", |v| v == 0.0).await;
}

#[tokio::test]
async fn a_used_resume_token_cannot_take_the_session_over() {
    let s = TestServer::start(Config::default()).await;
    let (mut a, _) = s.joined("r", "Ada").await;
    let (b, wb) = s.joined("r", "Bob").await;
    a.recv().await;
    drop(b);
    a.recv().await; // reconnecting
    let mut b2 = s.client().await;
    let mut j = Join::new("r", "Bob");
    j.resume = Some(Resume { token: wb.resume_token.clone(), last_seq: 0 });
    let w = b2.join_with(j.clone()).await;
    assert!(w.resumed);
    assert_ne!(w.resume_token, wb.resume_token);
    // Someone who saw the first token replays it: refused, and Bob keeps his session.
    let mut thief = s.client().await;
    thief.send(&ClientMessage::Join(j)).await;
    assert_eq!(thief.expect_error().await, ErrorCode::ResumeFailed);
    a.send(&ClientMessage::Chat { text: "still you?".into(), to: Some(wb.peer_id.clone()) }).await;
    let got = b2
        .recv_until(|m| match m {
            ServerMessage::Chat { message } => Some(message.text.clone()),
            _ => None,
        })
        .await;
    assert_eq!(got, "still you?");
}

#[tokio::test]
async fn wrong_passwords_are_slowed_down() {
    let s = TestServer::start(Config::default()).await;
    let mut owner = s.client().await;
    let mut j = Join::new("locked", "Owner");
    j.password = Some("right".into());
    owner.join_with(j).await;
    let mut guesser = s.client().await;
    let mut codes = Vec::new();
    for guess in ["a", "b", "c", "right"] {
        let mut j = Join::new("locked", "Guesser");
        j.password = Some(guess.into());
        guesser.send(&ClientMessage::Join(j)).await;
        match guesser.recv().await {
            ServerMessage::Error { code, message, .. } => {
                if code == ErrorCode::TooManyAttempts {
                    assert!(message.contains("try again in 1 s"), "{message}");
                }
                codes.push(code);
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        codes,
        [
            ErrorCode::WrongPassword,
            ErrorCode::WrongPassword,
            ErrorCode::WrongPassword,
            ErrorCode::TooManyAttempts
        ]
    );
    let text = s.metrics_text().await;
    assert_eq!(metric(&text, r#"hearth_auth_rejected_total{code="too_many_attempts"}"#), 1.0);
}
