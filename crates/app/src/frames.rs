//! Video into the webview: a WebSocket server on 127.0.0.1 (random port, random per-launch
//! token) that streams each tile's frames as binary messages, latest frame wins.
//!
//! Why (measured, see docs/decisions.md): Tauri's IPC channel costs an `eval` plus a fetch per
//! message; a loopback WebSocket carries a 640x360 I420 frame (346 kB) in one binary message
//! the page uploads to WebGL textures as-is. A tile that paints slowly holds back only its own
//! socket: the sender waits for each send to complete and then takes the newest frame, so
//! frames in between are dropped, never queued. The page acknowledges each frame it takes (any
//! small message); at most [`CREDITS`] frames are unacknowledged per socket.
//!
//! The page may also say how large the tile is on screen, as a text message `s WIDTH HEIGHT`
//! (device pixels; not an acknowledgement): frames more than 1.25x larger are scaled down to
//! fit before they are sent ([`crate::scale`]).
//!
//! Message: [`HEADER_BYTES`]-byte little-endian header (`u32` magic [`MAGIC`], `u32` width,
//! `u32` height, `u32` seq, `f64` capture time in Unix ms, `f64` sent time in Unix ms), then
//! the Y, U and V planes packed (chroma `ceil(w/2) x ceil(h/2)`).

use futures_util::{SinkExt, StreamExt};
use hearth_engine::config::DisplayFrame;
use hearth_media::VideoFrame;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Bytes, Message};

pub const MAGIC: u32 = 0x3146_5448; // "HTF1"
pub const HEADER_BYTES: usize = 32;
/// Frames a socket may have sent and not yet had acknowledged (any text or binary message from
/// the page acknowledges one). Two: one being handled by the page, one on the way.
pub const CREDITS: usize = 2;

/// A frame to show: one from the engine (holds its in-flight slot) or one we made.
#[derive(Debug, Clone)]
pub enum TileFrame {
    Engine(DisplayFrame),
    Own(Arc<VideoFrame>),
}

impl TileFrame {
    fn frame(&self) -> &VideoFrame {
        match self {
            TileFrame::Engine(f) => f,
            TileFrame::Own(f) => f,
        }
    }
}

#[derive(Debug, Default)]
struct Slot {
    latest: Mutex<Option<(u64, TileFrame)>>,
    seq: AtomicU64,
    changed: Notify,
    /// Open sockets watching this tile.
    watchers: AtomicUsize,
}

/// Where frames are published (from any thread) and served from.
#[derive(Debug, Clone)]
pub struct FrameHub {
    slots: Arc<Mutex<HashMap<String, Arc<Slot>>>>,
    token: Arc<String>,
    /// Frames published and sent, for the benchmark.
    pub published: Arc<AtomicU64>,
    pub sent: Arc<AtomicU64>,
}

impl Default for FrameHub {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameHub {
    pub fn new() -> FrameHub {
        let token: String = {
            use rand::Rng;
            let mut r = rand::rng();
            (0..32).map(|_| format!("{:x}", r.random_range(0..16u8))).collect()
        };
        FrameHub {
            slots: Arc::default(),
            token: Arc::new(token),
            published: Arc::default(),
            sent: Arc::default(),
        }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    fn slot(&self, tile: &str) -> Arc<Slot> {
        self.slots.lock().entry(tile.to_string()).or_default().clone()
    }

    /// Replace the tile's latest frame and wake its sockets.
    pub fn publish(&self, tile: &str, frame: TileFrame) {
        let slot = self.slot(tile);
        let seq = slot.seq.fetch_add(1, Ordering::Relaxed) + 1;
        *slot.latest.lock() = Some((seq, frame));
        slot.changed.notify_waiters();
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether a socket is watching the tile (skip work for tiles nobody shows).
    pub fn watched(&self, tile: &str) -> bool {
        self.slots.lock().get(tile).is_some_and(|s| s.watchers.load(Ordering::Relaxed) > 0)
    }

    /// Forget a tile's last frame (camera turned off, peer left): its sockets stay open and
    /// get the next frame published, if any.
    pub fn clear(&self, tile: &str) {
        if let Some(s) = self.slots.lock().get(tile) {
            *s.latest.lock() = None;
        }
    }

    /// Forget every tile whose id starts with `prefix` (a peer that left).
    pub fn clear_prefix(&self, prefix: &str) {
        for (k, s) in self.slots.lock().iter() {
            if k.starts_with(prefix) {
                *s.latest.lock() = None;
            }
        }
    }

    /// Bind 127.0.0.1:0 and serve until the returned task is aborted. Returns the URL.
    pub async fn serve(&self) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let hub = self.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                if !peer.ip().is_loopback() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let hub = hub.clone();
                tokio::spawn(async move {
                    if let Err(e) = hub.serve_socket(stream, addr.port()).await {
                        tracing::debug!("frame socket ended: {e}");
                    }
                });
            }
        });
        Ok((format!("ws://127.0.0.1:{}/frames", addr.port()), task))
    }

    async fn serve_socket(&self, stream: tokio::net::TcpStream, port: u16) -> anyhow::Result<()> {
        let mut tile = None;
        let token = self.token.clone();
        // The handshake callback's signature is tungstenite's (`Callback`), large error and all.
        #[allow(clippy::result_large_err)]
        let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
            match authorize(req, &token, port) {
                Ok(t) => {
                    tile = Some(t);
                    Ok(resp)
                }
                Err(why) => {
                    let mut r = ErrorResponse::new(Some(why.to_string()));
                    *r.status_mut() = StatusCode::FORBIDDEN;
                    Err(r)
                }
            }
        };
        let config = WebSocketConfig::default().max_message_size(Some(4096)).max_frame_size(Some(4096));
        let ws = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await?;
        let tile = tile.ok_or_else(|| anyhow::anyhow!("no tile"))?;
        let slot = self.slot(&tile);
        slot.watchers.fetch_add(1, Ordering::Relaxed);
        struct Unwatch(Arc<Slot>);
        impl Drop for Unwatch {
            fn drop(&mut self) {
                self.0.watchers.fetch_sub(1, Ordering::Relaxed);
            }
        }
        let _unwatch = Unwatch(slot.clone());
        let (mut tx, mut rx) = ws.split();
        let mut last_sent = 0u64;
        // Frames sent and not yet acknowledged by the page. A WebSocket send completes when the
        // bytes are in the kernel; WebKit then reads them into its own unbounded queue whatever
        // the page does. Without this credit a page that painted slower than frames came queued
        // minutes of video and gigabytes of memory (seen in the benchmark). The page acks each
        // frame as it takes it; with CREDITS in flight the next one waits, and frames published
        // meanwhile replace each other (latest wins).
        let mut in_flight = 0usize;
        // The tile's size on screen, when the page told us.
        let mut shown: Option<(u32, u32)> = None;
        loop {
            let changed = slot.changed.notified();
            if in_flight < CREDITS {
                let next = {
                    let latest = slot.latest.lock();
                    latest.as_ref().filter(|(seq, _)| *seq != last_sent).map(|(seq, f)| (*seq, f.clone()))
                };
                if let Some((seq, frame)) = next {
                    last_sent = seq;
                    let f = frame.frame();
                    let msg = match shown.and_then(|(w, h)| crate::scale::target_size(f.width, f.height, w, h)) {
                        Some((w, h)) => encode(&crate::scale::scale_i420(f, w, h), seq),
                        None => encode(f, seq),
                    };
                    drop(frame);
                    tx.send(Message::Binary(msg)).await?;
                    in_flight += 1;
                    self.sent.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            }
            tokio::select! {
                _ = changed, if in_flight < CREDITS => {}
                m = rx.next() => match m {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(Message::Text(t))) if t.starts_with("s ") => shown = parse_size(&t),
                    Some(Ok(Message::Text(_) | Message::Binary(_))) => in_flight = in_flight.saturating_sub(1),
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

/// `s WIDTH HEIGHT` → the size a tile is shown at (sides 1..=16384); anything else clears it.
fn parse_size(t: &str) -> Option<(u32, u32)> {
    let mut it = t.split_ascii_whitespace().skip(1).map(|v| v.parse::<u32>().ok().filter(|v| (1..=16384).contains(v)));
    match (it.next(), it.next(), it.next()) {
        (Some(Some(w)), Some(Some(h)), None) => Some((w, h)),
        _ => None,
    }
}

/// The tile a frame-socket request asks for, if its token, host and path are right.
fn authorize(req: &Request, token: &str, port: u16) -> Result<String, &'static str> {
    // A web page elsewhere cannot reach us by DNS rebinding: the Host must be our address.
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("");
    if host != format!("127.0.0.1:{port}") && host != format!("localhost:{port}") {
        return Err("wrong host");
    }
    if req.uri().path() != "/frames" {
        return Err("unknown path");
    }
    let query = req.uri().query().unwrap_or("");
    let mut tok = None;
    let mut tile = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "token" => tok = Some(v.into_owned()),
            "tile" => tile = Some(v.into_owned()),
            _ => {}
        }
    }
    let tok = tok.ok_or("no token")?;
    // Constant-time enough for a 128-bit random token compared once per connection.
    if tok.len() != token.len() || !tok.bytes().zip(token.bytes()).fold(true, |ok, (a, b)| ok & (a == b)) {
        return Err("bad token");
    }
    let tile = tile.filter(|t| !t.is_empty() && t.len() <= 200).ok_or("no tile")?;
    Ok(tile)
}

/// One binary message for a frame.
pub fn encode(f: &VideoFrame, seq: u64) -> Bytes {
    let mut out = Vec::with_capacity(HEADER_BYTES + f.data.len());
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&f.width.to_le_bytes());
    out.extend_from_slice(&f.height.to_le_bytes());
    out.extend_from_slice(&(seq as u32).to_le_bytes());
    out.extend_from_slice(&(f.capture_us as f64 / 1000.0).to_le_bytes());
    out.extend_from_slice(&(hearth_media::now_us() as f64 / 1000.0).to_le_bytes());
    out.extend_from_slice(&f.data);
    Bytes::from(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio_tungstenite::connect_async;

    fn frame(w: u32, h: u32, fill: u8) -> TileFrame {
        let mut f = VideoFrame::new(w, h);
        f.data.fill(fill);
        f.capture_us = hearth_media::now_us();
        TileFrame::Own(Arc::new(f))
    }

    #[tokio::test]
    async fn serves_latest_frame_with_header_and_refuses_strangers() {
        let hub = FrameHub::new();
        let (url, task) = hub.serve().await.unwrap();
        hub.publish("p1/camera", frame(6, 4, 7));
        // No token, a wrong token, no tile: refused with 403.
        for bad in [format!("{url}?tile=p1/camera"), format!("{url}?token=00&tile=x"), format!("{url}?token={}", hub.token())] {
            let err = connect_async(bad.as_str()).await.unwrap_err().to_string();
            assert!(err.contains("403"), "{bad}: {err}");
        }
        let (mut ws, _) = connect_async(format!("{url}?token={}&tile=p1%2Fcamera", hub.token())).await.unwrap();
        let m = ws.next().await.unwrap().unwrap().into_data();
        assert_eq!(m.len(), HEADER_BYTES + 6 * 4 + 2 * 3 * 2);
        assert_eq!(u32::from_le_bytes(m[0..4].try_into().unwrap()), MAGIC);
        assert_eq!(u32::from_le_bytes(m[4..8].try_into().unwrap()), 6);
        assert_eq!(u32::from_le_bytes(m[8..12].try_into().unwrap()), 4);
        assert_eq!(m[HEADER_BYTES], 7);
        let cap = f64::from_le_bytes(m[16..24].try_into().unwrap());
        assert!((hearth_media::now_us() as f64 / 1000.0 - cap).abs() < 5_000.0);
        assert!(hub.watched("p1/camera"));
        // Many frames published while the page has not acknowledged the first: one more comes
        // (the second credit), then nothing until an ack.
        for i in 0..50u8 {
            hub.publish("p1/camera", frame(6, 4, i));
        }
        let mut got = Vec::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await {
            got.push(m.into_data()[HEADER_BYTES]);
        }
        assert_eq!(got.len(), CREDITS - 1, "unacknowledged frames are bounded by the credit: {got:?}");
        // Out of credit: frames published now wait, replacing each other.
        for i in 100..110u8 {
            hub.publish("p1/camera", frame(6, 4, i));
        }
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await;
        assert!(waiting.is_err(), "no frame is sent without credit");
        // The ack releases the newest frame, not a backlog.
        ws.send(Message::Text("1".into())).await.unwrap();
        let mut after = Vec::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout(std::time::Duration::from_millis(300), ws.next()).await {
            after.push(m.into_data()[HEADER_BYTES]);
        }
        assert_eq!(after, vec![109], "after one ack, the newest frame and only it");
        // A size hint (not an ack) scales the next frames down to the tile's size.
        ws.send(Message::Text("s 3 2".into())).await.unwrap();
        ws.send(Message::Text("1".into())).await.unwrap();
        ws.send(Message::Text("1".into())).await.unwrap();
        hub.publish("p1/camera", frame(6, 4, 120));
        let m = tokio::time::timeout(std::time::Duration::from_secs(2), ws.next()).await.unwrap().unwrap().unwrap().into_data();
        assert_eq!(u32::from_le_bytes(m[4..8].try_into().unwrap()), 2, "scaled width");
        assert_eq!(u32::from_le_bytes(m[8..12].try_into().unwrap()), 2, "scaled height");
        assert_eq!(m.len(), HEADER_BYTES + 2 * 2 + 2, "I420 of 2x2");
        assert_eq!(m[HEADER_BYTES], 120);
        assert_eq!(parse_size("s 0 10"), None);
        assert_eq!(parse_size("s 10 10 10"), None);
        assert_eq!(parse_size("s x y"), None);
        assert_eq!(parse_size("s 420 236"), Some((420, 236)));
        drop(ws);
        task.abort();
    }
}
