//! The `hearth-signal` binary: port 0 prints the bound address, SIGTERM drains and exits 0,
//! `--help` documents the options, bad configuration is a clear error.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hearth-signal"))
}

#[test]
fn prints_bound_address_serves_and_exits_zero_on_sigterm() {
    let mut child = bin()
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("HEARTH_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("hearth-signal listening on ").expect(&line).to_owned();
    let addr = url.strip_prefix("ws://").unwrap().strip_suffix("/ws").unwrap().to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        use futures_util::{SinkExt, StreamExt};
        ws.send(tokio_tungstenite::tungstenite::Message::Text(r#"{"type":"ping","nonce":1}"#.into()))
            .await
            .unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert!(reply.to_text().unwrap().contains("pong"));
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).await.unwrap();
        assert!(buf.starts_with("HTTP/1.1 200"), "{buf}");

        // SIGTERM: the client is told, then the process exits 0.
        let pid = child.id() as i32;
        assert_eq!(send_sigterm(pid), 0);
        let shutdown = ws.next().await.unwrap().unwrap();
        assert!(shutdown.to_text().unwrap().contains(r#""type":"shutdown""#), "{shutdown:?}");
    });
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut logs).unwrap();
    let last = logs.lines().last().unwrap_or_default();
    assert!(last.starts_with('{') && last.contains("shutdown complete"), "JSON logs expected: {logs}");
}

fn send_sigterm(pid: i32) -> i32 {
    // `kill` from the shell keeps this test free of unsafe code.
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    if status.success() { 0 } else { 1 }
}

#[test]
fn help_explains_every_option() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--config",
        "--max-room-size",
        "--max-connections",
        "--max-connections-per-ip",
        "--max-sessions-per-ip",
        "--ip-limits-include-loopback",
        "--max-rooms-per-min",
        "--room-lock-keep-secs",
        "--held-relay-bytes-per-peer",
        "--held-relay-bytes-per-room",
        "--held-relay-bytes-total",
        "--chat-log-bytes-per-room",
        "--chat-log-bytes-total",
        "--max-message-bytes",
        "--rate-per-sec",
        "--rate-burst",
        "--history",
        "--resume-grace-secs",
        "--heartbeat-secs",
        "--heartbeat-timeout-secs",
        "--allowed-origin",
        "--jwt-secret",
        "--jwt-secret-file",
        "--jwt-leeway-secs",
        "--stun-url",
        "--turn-url",
        "--turn-secret",
        "--turn-secret-file",
        "--turn-ttl-secs",
        "--tls-cert",
        "--tls-key",
        "--drain-secs",
        "--log-format",
        "--log",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(help.contains("HEARTH_LISTEN"));
    assert!(help.contains("[[rooms]]"), "--help lacks the fixed rooms of the config file");
}

/// Start the binary under an open-file limit of `nofile` (set by the shell, soft and hard) and
/// return what it logged before it was listening.
fn start_under_nofile_limit(nofile: u32, args: &[&str]) -> String {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_hearth-signal"))
        .args(["--listen", "127.0.0.1:0", "--log", "hearth_signal=debug"])
        .args(args)
        .env_remove("HEARTH_LISTEN")
        .env_remove("HEARTH_MAX_CONNECTIONS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    assert!(line.contains("listening on"), "{line}");
    // Once it answers HTTP its SIGTERM handler is in place.
    let addr = line.trim().rsplit("ws://").next().unwrap().trim_end_matches("/ws").to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(send_sigterm(child.id() as i32), 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn warns_when_max_connections_exceed_the_open_file_limit() {
    let logs = start_under_nofile_limit(512, &["--max-connections", "20000"]);
    assert!(logs.contains("exceeds what the open-file limit allows"), "{logs}");
    assert!(logs.contains("512") && logs.contains("256 connections"), "{logs}");
    let logs = start_under_nofile_limit(512, &["--max-connections", "200"]);
    assert!(!logs.contains("exceeds what the open-file limit allows"), "{logs}");
}

#[test]
fn bad_configuration_fails_with_a_clear_message() {
    let out = bin().args(["--tls-cert", "x.pem", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls_cert / tls_key"), "{err}");
    let out = bin().args(["--listen", "256.0.0.1:1"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot listen on 256.0.0.1:1"));
}
