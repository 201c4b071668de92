//! The signaling client: one WebSocket to `hearth-signal`, a read task and a write task.

use crate::error::EngineError;
use futures_util::{SinkExt, StreamExt};
use hearth_proto::{ClientFrame, ClientMessage, ServerMessage, decode_server, encode};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// How often the client pings the server (a few bytes; the server answers each).
const PING_INTERVAL: Duration = Duration::from_secs(3);
/// A connection silent for this long (three pings unanswered) is treated as dead, so a client
/// whose network went away starts reconnecting within ~10 s instead of when TCP gives up.
const SILENCE_LIMIT: Duration = Duration::from_secs(9);

/// What the read task reports, tagged with the connection's generation.
#[derive(Debug)]
pub enum SignalEvent {
    Message(ServerMessage),
    Closed(String),
}

/// An open signaling connection. Dropping it closes the socket.
#[derive(Debug)]
pub struct SignalConn {
    pub generation: u64,
    tx: mpsc::UnboundedSender<ClientFrame>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl SignalConn {
    /// Queue a message (numbered or not); `false` if the connection is gone. Queued is not
    /// delivered: the engine keeps numbered messages until the server confirms their `cseq`.
    pub fn send(&self, msg: impl Into<ClientFrame>) -> bool {
        self.tx.send(msg.into()).is_ok()
    }
}

impl Drop for SignalConn {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// `ws://host:port` with the path defaulted to `/ws`; `http(s)://` is accepted as `ws(s)://`.
pub fn normalize_url(url: &str) -> Result<String, EngineError> {
    let bad = |message: &str| EngineError::BadUrl { url: url.to_owned(), message: message.to_owned() };
    let trimmed = url.trim();
    let (scheme, rest) =
        trimmed.split_once("://").ok_or_else(|| bad("expected ws://host:port or wss://host"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        _ => return Err(bad("the scheme must be ws or wss")),
    };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let path = if path.is_empty() { "ws" } else { path };
    Ok(format!("{scheme}://{host}/{path}"))
}

/// True when the URL points at this machine (a local call can bind ICE to loopback only).
pub fn is_loopback_url(url: &str) -> bool {
    let host = url_host(url).unwrap_or_default();
    matches!(host, "localhost" | "::1") || host.starts_with("127.")
}

/// The host of a `ws://host:port/...` URL, without brackets.
pub fn url_host(url: &str) -> Option<&str> {
    let host = url.split_once("://").map_or(url, |(_, r)| r).split('/').next()?;
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    Some(host.trim_matches(['[', ']']))
}

/// The port of a `ws://` / `wss://` URL (80 / 443 when not given).
pub fn url_port(url: &str) -> u16 {
    let authority = url.split_once("://").map_or(url, |(_, r)| r).split('/').next().unwrap_or("");
    let explicit = authority.rsplit_once(':').and_then(|(h, p)| (!h.ends_with('[')).then(|| p.parse::<u16>().ok()).flatten());
    explicit.unwrap_or(if url.starts_with("wss:") { 443 } else { 80 })
}

/// Connect and start the read/write tasks. Events go to `events` tagged with `generation`.
pub async fn connect(
    url: &str,
    timeout: Duration,
    generation: u64,
    events: mpsc::UnboundedSender<(u64, SignalEvent)>,
    proxy: Option<&str>,
) -> Result<SignalConn, EngineError> {
    let fail = |message: String| EngineError::Connect { url: url.to_owned(), message };
    let open = async {
        match proxy {
            // Without Nagle: a burst of small messages (an answer, then its ICE candidates) would
            // otherwise hold the second one until the first is acknowledged, and the server's
            // delayed ACK made that ~40 ms (seen as a late host candidate, a slower connect).
            None => tokio_tungstenite::connect_async_with_config(url, None, true)
                .await
                .map(|(ws, _)| ws)
                .map_err(|e| e.to_string()),
            Some(proxy) => {
                // Through an HTTP proxy (corporate networks): a CONNECT tunnel, then the
                // WebSocket (and TLS for wss) inside it.
                let host = url_host(url).ok_or("no host in the server URL")?.to_owned();
                let port = url_port(url);
                let tcp = tokio::net::TcpStream::connect(proxy)
                    .await
                    .map_err(|e| format!("cannot reach the proxy {proxy}: {e}"))?;
                let _ = tcp.set_nodelay(true);
                let tunnel = hearth_turn::shim::http_connect(tcp, &host, port).await.map_err(|e| e.to_string())?;
                tokio_tungstenite::client_async_tls(url, tunnel).await.map(|(ws, _)| ws).map_err(|e| e.to_string())
            }
        }
    };
    let ws = tokio::time::timeout(timeout, open)
        .await
        .map_err(|_| fail(format!("no answer within {} s", timeout.as_secs())))?
        .map_err(fail)?;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<ClientFrame>();
    let writer = tokio::spawn(async move {
        // Our own pings make the server answer even if it does not ping us, so the reader can
        // tell a dead connection (no frame at all for SILENCE_LIMIT) from a quiet one.
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut nonce = 0u64;
        loop {
            let msg = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = ping.tick() => {
                    nonce += 1;
                    ClientFrame::from(ClientMessage::Ping { nonce })
                }
            };
            let sent =
                tokio::time::timeout(SILENCE_LIMIT, sink.send(Message::Text(encode(&msg).into()))).await;
            if !matches!(sent, Ok(Ok(()))) {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    });
    let reader = tokio::spawn(async move {
        let reason = loop {
            let next = match tokio::time::timeout(SILENCE_LIMIT, stream.next()).await {
                Ok(n) => n,
                Err(_) => break format!("no answer from the server for {} s", SILENCE_LIMIT.as_secs()),
            };
            match next {
                Some(Ok(Message::Text(t))) => match decode_server(&t) {
                    Ok(m) => {
                        if events.send((generation, SignalEvent::Message(m))).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "undecodable message from the server; ignored"),
                },
                Some(Ok(Message::Close(frame))) => {
                    break frame.map_or_else(
                        || "closed by the server".to_owned(),
                        |f| format!("closed by the server: {} ({})", f.reason, u16::from(f.code)),
                    );
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break format!("connection error: {e}"),
                None => break "connection closed".to_owned(),
            }
        };
        let _ = events.send((generation, SignalEvent::Closed(reason)));
    });
    Ok(SignalConn { generation, tx, reader, writer })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        assert_eq!(normalize_url("ws://127.0.0.1:7878").unwrap(), "ws://127.0.0.1:7878/ws");
        assert_eq!(normalize_url("http://h:1/").unwrap(), "ws://h:1/ws");
        assert_eq!(
            normalize_url("wss://meet.example.org/custom/ws").unwrap(),
            "wss://meet.example.org/custom/ws"
        );
        assert!(normalize_url("ftp://x").is_err());
        assert!(normalize_url("127.0.0.1:7878").is_err());
        assert!(normalize_url("ws:///ws").is_err());
        assert!(is_loopback_url("ws://127.0.0.1:7878/ws"));
        assert!(is_loopback_url("ws://localhost/ws"));
        assert!(is_loopback_url("ws://[::1]:80/ws"));
        assert!(!is_loopback_url("wss://meet.example.org/ws"));
    }
}
