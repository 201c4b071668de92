//! `http_connect` against a small HTTP proxy on loopback: the tunnel carries bytes both ways; a
//! refusal, a reply that never ends its headers and a proxy that talks too early are errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hearth_turn::shim::http_connect;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy that reads the CONNECT request, answers `reply`, then echoes.
async fn proxy(reply: &'static [u8]) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 1024];
        while !req.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            req.extend_from_slice(&buf[..n]);
        }
        s.write_all(reply).await.unwrap();
        let mut echo = [0u8; 64];
        if let Ok(n) = s.read(&mut echo).await {
            let _ = s.write_all(&echo[..n]).await;
        }
        String::from_utf8_lossy(&req).into_owned()
    });
    (addr, task)
}

#[tokio::test]
async fn a_tunnel_carries_bytes_both_ways() {
    let (addr, task) = proxy(b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test\r\n\r\n").await;
    let mut t = http_connect(TcpStream::connect(addr).await.unwrap(), "10.80.0.3", 443).await.unwrap();
    t.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    t.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");
    let req = task.await.unwrap();
    assert!(req.starts_with("CONNECT 10.80.0.3:443 HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("Host: 10.80.0.3:443\r\n"), "{req}");
}

#[tokio::test]
async fn ipv6_targets_are_bracketed() {
    let (addr, task) = proxy(b"HTTP/1.1 200 OK\r\n\r\n").await;
    let _t = http_connect(TcpStream::connect(addr).await.unwrap(), "fd80::3", 443).await.unwrap();
    drop(_t);
    assert!(task.await.unwrap().starts_with("CONNECT [fd80::3]:443 HTTP/1.1"));
}

#[tokio::test]
async fn refusals_and_bad_replies_are_errors() {
    let (addr, _task) = proxy(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
    let e = http_connect(TcpStream::connect(addr).await.unwrap(), "h", 443).await.unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");

    let (addr, _task) = proxy(b"HTTP/1.1 200 OK\r\n\r\nearly").await;
    assert!(http_connect(TcpStream::connect(addr).await.unwrap(), "h", 443).await.is_err());

    // Headers that never end (and no newline at all) stop at the caps instead of growing.
    static ENDLESS: [u8; 40_000] = [b'x'; 40_000];
    let (addr, _task) = proxy(&ENDLESS).await;
    assert!(http_connect(TcpStream::connect(addr).await.unwrap(), "h", 443).await.is_err());
}
