//! A real server on 127.0.0.1:0 and real WebSocket clients for the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use futures_util::{SinkExt, StreamExt};
use hearth_proto::{ClientMessage, ErrorCode, Join, ServerMessage, Welcome, decode_server, encode};
use hearth_signal::{Config, Metrics};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<Result<(), hearth_signal::ServerError>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(hearth_signal::run_with_metrics(listener, config, metrics.clone(), async {
            let _ = stopped.await;
        }));
        TestServer { addr, metrics, stop: Some(stop), task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.url()).await
    }

    /// Join `room` as `name` on a new connection.
    pub async fn joined(&self, room: &str, name: &str) -> (Client, Welcome) {
        let mut c = self.client().await;
        let w = c.join(room, name).await;
        (c, w)
    }

    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    pub async fn metrics_text(&self) -> String {
        http_get(self.addr, "/metrics").await.1
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub enum Event {
    Msg(ServerMessage),
    Closed(Option<CloseFrame>),
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("connect");
        Client { ws }
    }

    pub async fn send(&mut self, msg: &ClientMessage) {
        self.send_raw(&encode(msg)).await;
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.expect("send");
    }

    /// The next server message or close, skipping pings.
    pub async fn event(&mut self) -> Event {
        loop {
            let frame =
                tokio::time::timeout(WAIT, self.ws.next()).await.expect("timed out waiting for the server");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return Event::Msg(
                        decode_server(&t).unwrap_or_else(|e| panic!("server sent undecodable {t}: {e}")),
                    );
                }
                Some(Ok(Message::Close(f))) => return Event::Closed(f),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(None),
            }
        }
    }

    pub async fn recv(&mut self) -> ServerMessage {
        match self.event().await {
            Event::Msg(m) => m,
            Event::Closed(f) => panic!("connection closed: {f:?}"),
        }
    }

    /// Receive until `pick` returns something, failing on timeout.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&ServerMessage) -> Option<T>) -> T {
        loop {
            let m = self.recv().await;
            if let Some(t) = pick(&m) {
                return t;
            }
        }
    }

    pub async fn expect_error(&mut self) -> ErrorCode {
        match self.recv().await {
            ServerMessage::Error { code, .. } => code,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Nothing arrives within `d`.
    pub async fn expect_silence(&mut self, d: Duration) {
        match tokio::time::timeout(d, self.ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(other) => panic!("expected silence, got {other:?}"),
        }
    }

    pub async fn join_with(&mut self, join: Join) -> Welcome {
        self.send(&ClientMessage::Join(join)).await;
        match self.recv().await {
            ServerMessage::Welcome(w) => w,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    pub async fn join(&mut self, room: &str, name: &str) -> Welcome {
        self.join_with(Join::new(room, name)).await
    }

    /// Round trip a ping: proves the connection is still usable.
    pub async fn ping(&mut self, nonce: u64) {
        self.send(&ClientMessage::Ping { nonce }).await;
        let got = self
            .recv_until(|m| match m {
                ServerMessage::Pong { nonce, .. } => Some(*nonce),
                _ => None,
            })
            .await;
        assert_eq!(got, nonce);
    }
}

/// A plain HTTP/1.1 GET; returns (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(addr, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")).await
}

pub async fn http_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf)).await.expect("HTTP timeout").unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

/// The value of a metric line `name{labels} value` (or `name value`) in Prometheus text.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
