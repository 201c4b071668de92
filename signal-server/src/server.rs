//! The I/O around the [`Hub`]: the accept loop, HTTP endpoints, WebSocket connections and the
//! task that owns the hub.
//!
//! Tasks: one accept loop; one task per TCP connection serving HTTP (it ends after a WebSocket
//! upgrade); one task per WebSocket reading, writing and heartbeating it; one hub task owning
//! the [`Hub`] and every connection's send queue. Connections talk to the hub over a bounded
//! channel, the hub answers through each connection's bounded queue; a connection whose queue is
//! full is dropped (it may resume) rather than slowing everyone else.

use crate::ServerError;
use crate::config::Config;
use crate::hub::{ConnId, Hub, Output};
use crate::metrics::Metrics;
use crate::per_ip::ConnectionsPerIp;
use crate::rate::{Throttle, TokenBucket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hearth_proto::{ClientFrame, ErrorCode, ServerMessage, close_code, decode_client_frame, encode};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};

/// What a connection task tells the hub task.
#[derive(Debug)]
enum HubEvent {
    Connected { conn: ConnId, tx: mpsc::Sender<Outbound>, ip: IpAddr },
    Message { conn: ConnId, msg: ClientFrame },
    Disconnected { conn: ConnId },
    Shutdown,
}

/// What the hub task tells a connection task.
#[derive(Debug)]
enum Outbound {
    Text(Utf8Bytes),
    Close(u16, &'static str),
}

struct Shared {
    config: Config,
    metrics: Arc<Metrics>,
    hub_tx: mpsc::Sender<HubEvent>,
    ws_permits: Arc<Semaphore>,
    conns_per_ip: Arc<ConnectionsPerIp>,
    next_conn: AtomicU64,
    draining: AtomicBool,
    shutdown: watch::Receiver<bool>,
    ws_config: WebSocketConfig,
    /// Held by every connection task; shutdown waits until all clones are dropped.
    alive: mpsc::Sender<()>,
}

/// A running server's handle on its metrics (for embedding and tests).
pub type SharedMetrics = Arc<Metrics>;

pub(crate) async fn serve(
    listener: TcpListener,
    config: Config,
    metrics: SharedMetrics,
    shutdown_signal: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let tls = match &config.tls {
        Some(files) => Some(crate::tls::acceptor(files)?),
        None => None,
    };
    let (hub_tx, hub_rx) = mpsc::channel(16 * 1024);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(config.max_message_bytes.saturating_mul(4).max(1 << 20))
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let mut hub_config = config.hub.clone();
    hub_config.limits = hearth_proto::ServerLimits {
        max_message_bytes: config.max_message_bytes as u64,
        max_room_size: u32::try_from(hub_config.max_room_size).unwrap_or(u32::MAX),
        rate_per_sec: config.rate_per_sec,
        rate_burst: config.rate_burst,
    };
    let hub = Hub::new(hub_config, None, Instant::now(), unix_ms());
    let hub_task = tokio::spawn(hub_loop(hub, hub_rx, metrics.clone(), config.shutdown_retry_after));
    let shared = Arc::new(Shared {
        ws_permits: Arc::new(Semaphore::new(config.max_connections)),
        conns_per_ip: ConnectionsPerIp::new(config.max_connections_per_ip, config.hub.ip_limits_include_loopback),
        config,
        metrics,
        hub_tx,
        next_conn: AtomicU64::new(1),
        draining: AtomicBool::new(false),
        shutdown: shutdown_rx,
        ws_config,
        alive: alive_tx,
    });

    tokio::pin!(shutdown_signal);
    loop {
        tokio::select! {
            () = &mut shutdown_signal => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        None => serve_http(stream, peer, shared).await,
                        Some(acceptor) => match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => serve_http(tls_stream, peer, shared).await,
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                });
            }
        }
    }

    tracing::info!("shutting down: telling clients and draining connections");
    drop(listener);
    shared.draining.store(true, Ordering::SeqCst);
    let _ = shutdown_tx.send(true);
    let _ = shared.hub_tx.send(HubEvent::Shutdown).await;
    let drain_timeout = shared.config.drain_timeout;
    drop(shared);
    if tokio::time::timeout(drain_timeout, alive_rx.recv()).await.is_err() {
        tracing::warn!("drain timeout passed with connections still open; closing them");
    }
    hub_task.abort();
    tracing::info!("shutdown complete");
    Ok(())
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The task that owns the hub: it applies events in arrival order and routes outputs.
async fn hub_loop(
    mut hub: Hub,
    mut rx: mpsc::Receiver<HubEvent>,
    metrics: SharedMetrics,
    retry_after: Duration,
) {
    let mut queues: HashMap<ConnId, mpsc::Sender<Outbound>> = HashMap::new();
    let mut batch = Vec::with_capacity(64);
    let mut draining = false;
    loop {
        let deadline = hub.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rx.recv_many(&mut batch, 64) => {
                if n == 0 {
                    return;
                }
                let now = Instant::now();
                for event in batch.drain(..) {
                    match event {
                        HubEvent::Connected { conn, tx, ip } if draining => {
                            let _ = tx.try_send(Outbound::Close(close_code::GOING_AWAY, "server shutting down"));
                            hub.connect(conn, ip);
                        }
                        HubEvent::Connected { conn, tx, ip } => {
                            queues.insert(conn, tx);
                            hub.connect(conn, ip);
                        }
                        HubEvent::Message { conn, msg } => hub.message(now, conn, msg),
                        HubEvent::Disconnected { conn } => {
                            queues.remove(&conn);
                            hub.disconnect(now, conn);
                        }
                        HubEvent::Shutdown => {
                            draining = true;
                            let retry = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
                            hub.shutdown("the server is shutting down", retry);
                            route(&mut hub, &mut queues, &metrics);
                            for (_, q) in queues.drain() {
                                let _ = q.try_send(Outbound::Close(close_code::GOING_AWAY, "server shutting down"));
                            }
                        }
                    }
                    route(&mut hub, &mut queues, &metrics);
                }
            }
            () = sleep => hub.tick(Instant::now()),
        }
        route(&mut hub, &mut queues, &metrics);
        metrics.rooms.set(i64::try_from(hub.room_count()).unwrap_or(i64::MAX));
        metrics.peers.set(i64::try_from(hub.peer_count()).unwrap_or(i64::MAX));
        metrics.held_relay_bytes.set(i64::try_from(hub.held_relay_bytes()).unwrap_or(i64::MAX));
        metrics.chat_log_bytes.set(i64::try_from(hub.chat_log_bytes()).unwrap_or(i64::MAX));
        metrics.kept_room_locks.set(i64::try_from(hub.kept_lock_count()).unwrap_or(i64::MAX));
    }
}

/// Carry out the hub's outputs. A connection whose queue is full is evicted and, at once,
/// treated as disconnected by the hub (so its session enters the grace period and relays to it
/// are held for its resume instead of going to a dead queue).
fn route(hub: &mut Hub, queues: &mut HashMap<ConnId, mpsc::Sender<Outbound>>, metrics: &Metrics) {
    loop {
        let evicted = route_once(hub, queues, metrics);
        if evicted.is_empty() {
            return;
        }
        let now = Instant::now();
        for conn in evicted {
            hub.disconnect(now, conn);
        }
    }
}

fn route_once(
    hub: &mut Hub,
    queues: &mut HashMap<ConnId, mpsc::Sender<Outbound>>,
    metrics: &Metrics,
) -> Vec<ConnId> {
    let mut evicted = Vec::new();
    while let Some(out) = hub.poll_output() {
        match out {
            Output::Deliver { to, msg } => {
                count_outgoing(&msg, metrics);
                // Serialize once, whatever the number of recipients.
                let text = Utf8Bytes::from(encode(&msg));
                for conn in to {
                    let Some(q) = queues.get(&conn) else { continue };
                    if q.try_send(Outbound::Text(text.clone())).is_err() {
                        // Full (too slow) or gone: dropping the queue closes the connection,
                        // whose session may then resume.
                        tracing::info!(conn = conn.0, "send queue full; disconnecting slow client");
                        queues.remove(&conn);
                        evicted.push(conn);
                    }
                }
            }
            Output::Close { conn, code, reason } => {
                if let Some(q) = queues.remove(&conn) {
                    let _ = q.try_send(Outbound::Close(code, reason));
                }
            }
            Output::CallReport { outcome, connect_ms, path, reason } => {
                let label = match outcome {
                    hearth_proto::CallOutcome::Connected => "connected",
                    hearth_proto::CallOutcome::Failed => "failed",
                };
                metrics.call_outcomes.get_or_create(&[("outcome", label)]).inc();
                if let Some(ms) = connect_ms {
                    metrics.call_connect_seconds.observe(ms as f64 / 1000.0);
                }
                if let Some(r) = reason {
                    metrics.call_failures.get_or_create(&[("reason", r.as_str())]).inc();
                }
                if let Some(p) = path {
                    let relay = p.relay.map_or("none", |r| r.as_str());
                    metrics
                        .call_paths
                        .get_or_create(&[("local", p.local.as_str()), ("remote", p.remote.as_str()), ("relay", relay)])
                        .inc();
                }
            }
            Output::RoomClosed { lived, peak_members } => {
                metrics.room_seconds.observe(lived.as_secs_f64());
                metrics.room_peak_members.observe(peak_members as f64);
            }
        }
    }
    evicted
}

fn count_outgoing(msg: &ServerMessage, metrics: &Metrics) {
    match msg {
        ServerMessage::Welcome(w) => {
            let kind = if w.resumed { "resume" } else { "fresh" };
            metrics.joins.get_or_create(&[("kind", kind)]).inc();
        }
        ServerMessage::Error { code, .. } => count_error(*code, metrics),
        _ => {}
    }
}

fn count_error(code: ErrorCode, metrics: &Metrics) {
    metrics.errors.get_or_create(&[("code", code.as_str())]).inc();
    if code.is_auth_rejection() {
        metrics.auth_rejected.get_or_create(&[("code", code.as_str())]).inc();
    }
}

type Body = Full<Bytes>;

fn text_response(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn serve_http<S>(stream: S, peer: SocketAddr, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut shutdown = shared.shutdown.clone();
    let svc_shared = shared.clone();
    let service = hyper::service::service_fn(move |req| {
        let shared = svc_shared.clone();
        async move { Ok::<_, std::convert::Infallible>(route_http(req, peer, shared)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .max_buf_size(64 * 1024)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

fn route_http(req: Request<Incoming>, peer: SocketAddr, shared: Arc<Shared>) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text_response(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if shared.draining.load(Ordering::SeqCst) {
                text_response(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text_response(StatusCode::OK, "ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(Full::new(Bytes::from(shared.metrics.render())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (&Method::GET, hearth_proto::WS_PATH) => upgrade(req, peer, shared),
        (&Method::GET, "/") => text_response(
            StatusCode::OK,
            "Hearth signaling server. WebSocket endpoint: /ws. Health: /healthz, /readyz. Metrics: /metrics.\n",
        ),
        (_, "/healthz" | "/readyz" | "/metrics" | "/ws" | "/") => {
            text_response(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
        }
        _ => text_response(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn header_has_token(req: &Request<Incoming>, name: header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str().map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))).unwrap_or(false)
    })
}

fn refuse(shared: &Shared, status: StatusCode, reason: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    shared.metrics.upgrades_refused.get_or_create(&[("reason", reason)]).inc();
    text_response(status, body)
}

fn upgrade(mut req: Request<Incoming>, peer: SocketAddr, shared: Arc<Shared>) -> Response<Body> {
    if !header_has_token(&req, header::CONNECTION, "upgrade")
        || !header_has_token(&req, header::UPGRADE, "websocket")
    {
        return refuse(
            &shared,
            StatusCode::UPGRADE_REQUIRED,
            "not_websocket",
            "this endpoint speaks WebSocket only\n",
        );
    }
    if req.headers().get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return refuse(&shared, StatusCode::BAD_REQUEST, "bad_version", "Sec-WebSocket-Version must be 13\n");
    }
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY).map(|k| k.as_bytes().to_vec()) else {
        return refuse(&shared, StatusCode::BAD_REQUEST, "no_key", "missing Sec-WebSocket-Key\n");
    };
    if let Some(origin) = req.headers().get(header::ORIGIN)
        && !shared.config.allowed_origins.is_empty()
        && !shared
            .config
            .allowed_origins
            .iter()
            .any(|allowed| origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(allowed)))
    {
        return refuse(&shared, StatusCode::FORBIDDEN, "origin", "this origin is not allowed to connect\n");
    }
    if shared.draining.load(Ordering::SeqCst) {
        return refuse(&shared, StatusCode::SERVICE_UNAVAILABLE, "draining", "server is shutting down\n");
    }
    let ip = peer.ip();
    let Some(ip_slot) = shared.conns_per_ip.try_acquire(ip) else {
        return refuse(
            &shared,
            StatusCode::TOO_MANY_REQUESTS,
            "ip_limit",
            format!(
                "too_many_connections: your address already has {} connections open, the most allowed; close one or retry later\n",
                shared.config.max_connections_per_ip
            ),
        );
    };
    let Ok(permit) = shared.ws_permits.clone().try_acquire_owned() else {
        return refuse(
            &shared,
            StatusCode::SERVICE_UNAVAILABLE,
            "server_full",
            "server_full: too many connections, retry later\n",
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let conn = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    tokio::spawn(async move {
        // Held until the connection ends.
        let _ip_slot = ip_slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(shared.ws_config),
                )
                .await;
                serve_ws(ws, conn, ip, shared, permit).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, header::HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, header::HeaderValue::from_static("websocket"));
    if let Ok(accept) = header::HeaderValue::from_str(&tungstenite::handshake::derive_accept_key(&key)) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    r
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::from_static(reason) }))
}

async fn serve_ws<S>(
    mut ws: WebSocketStream<S>,
    conn: ConnId,
    ip: IpAddr,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _alive = shared.alive.clone();
    let cfg = &shared.config;
    let metrics = &shared.metrics;
    metrics.connections.inc();
    metrics.connections_accepted.inc();
    let (tx, mut rx) = mpsc::channel(cfg.send_queue);
    if shared.hub_tx.send(HubEvent::Connected { conn, tx, ip }).await.is_err() {
        within(CLOSE_TIMEOUT, ws.send(close_frame(close_code::GOING_AWAY, "server shutting down"))).await;
        metrics.connections.dec();
        return;
    }
    let mut bucket = TokenBucket::new(cfg.rate_per_sec, cfg.rate_burst, Instant::now());
    // A client that cannot take a write for this long is not reading: treat it as gone, so
    // heartbeats, eviction and the grace period still apply to it.
    let write_timeout = cfg.heartbeat_timeout;
    let mut rate_error = Throttle::new(Duration::from_secs(1));
    let mut last_heard = Instant::now();
    let mut heartbeat = tokio::time::interval_at(
        tokio::time::Instant::now() + cfg.heartbeat_interval,
        cfg.heartbeat_interval,
    );
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            frame = ws.next() => {
                let msg = match frame {
                    None => break,
                    Some(Ok(m)) => m,
                    Some(Err(tungstenite::Error::Capacity(e))) => {
                        tracing::debug!(conn = conn.0, error = %e, "message too large");
                        count_error_name(metrics, "message_too_large");
                        close_and_drain(&mut ws, close_code::TOO_BIG, "message too large").await;
                        break;
                    }
                    Some(Err(tungstenite::Error::Utf8(e))) => {
                        tracing::debug!(conn = conn.0, error = %e, "text frame is not UTF-8");
                        count_error_name(metrics, "invalid_utf8");
                        close_and_drain(&mut ws, close_code::INVALID_DATA, "text frame is not valid UTF-8").await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::debug!(conn = conn.0, error = %e, "WebSocket read failed");
                        break;
                    }
                };
                last_heard = Instant::now();
                let is_data = matches!(msg, Message::Text(_) | Message::Binary(_));
                let limited = is_data && !bucket.try_take(last_heard);
                let reply = match msg {
                    _ if limited => {
                        metrics.rate_limited.inc();
                        rate_error.allow(last_heard).then(|| {
                            ServerMessage::error(
                                ErrorCode::RateLimited,
                                format!("more than {} messages per second; message dropped, slow down", cfg.rate_per_sec),
                                None,
                            )
                        })
                    }
                    Message::Text(text) => match decode_client_frame(&text) {
                        Ok(msg) => {
                            metrics.messages.get_or_create(&[("type", msg.message.type_name())]).inc();
                            if shared.hub_tx.send(HubEvent::Message { conn, msg }).await.is_err() {
                                break;
                            }
                            None
                        }
                        Err(e) => Some(ServerMessage::error(e.code(), e.to_string(), e.type_name())),
                    },
                    Message::Binary(_) => Some(ServerMessage::error(
                        ErrorCode::MalformedJson,
                        "binary frames are not accepted; send JSON text frames",
                        None,
                    )),
                    // tungstenite answers pings and close frames itself.
                    Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => None,
                };
                if let Some(reply) = reply {
                    if let ServerMessage::Error { code, .. } = &reply {
                        count_error(*code, metrics);
                    }
                    if !within(write_timeout, ws.send(Message::Text(encode(&reply).into()))).await {
                        break;
                    }
                }
            }
            out = rx.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if !within(write_timeout, ws.feed(Message::Text(text))).await {
                        break;
                    }
                    // Write whatever else is queued in the same flush.
                    let mut closing = None;
                    while let Ok(more) = rx.try_recv() {
                        match more {
                            Outbound::Text(t) => {
                                if !within(write_timeout, ws.feed(Message::Text(t))).await {
                                    break;
                                }
                            }
                            Outbound::Close(code, reason) => {
                                closing = Some((code, reason));
                                break;
                            }
                        }
                    }
                    if !within(write_timeout, ws.flush()).await {
                        break;
                    }
                    if let Some((code, reason)) = closing {
                        within(CLOSE_TIMEOUT, ws.send(close_frame(code, reason))).await;
                        break;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    within(CLOSE_TIMEOUT, ws.send(close_frame(code, reason))).await;
                    break;
                }
                None => {
                    within(CLOSE_TIMEOUT, ws.send(close_frame(close_code::POLICY, "too slow: send queue overflowed"))).await;
                    break;
                }
            },
            _ = heartbeat.tick() => {
                if last_heard.elapsed() >= cfg.heartbeat_timeout {
                    tracing::debug!(conn = conn.0, "heartbeat timeout");
                    within(CLOSE_TIMEOUT, ws.send(close_frame(close_code::GOING_AWAY, "heartbeat timeout"))).await;
                    break;
                }
                if !within(write_timeout, ws.send(Message::Ping(Bytes::new()))).await {
                    break;
                }
            }
        }
    }
    // Closing the socket may block on a dead peer: bound it.
    within(CLOSE_TIMEOUT, ws.close(None)).await;
    let _ = shared.hub_tx.send(HubEvent::Disconnected { conn }).await;
    metrics.connections.dec();
    drop(permit);
}

/// Bound on sending a close frame (the peer may be gone).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Input read and thrown away after a close frame that ends a connection in the middle of the
/// client's input (see [`close_and_drain`]).
const DRAIN_MAX_BYTES: usize = 4 << 20;

/// Send a close frame, then end the connection in order: shut down our sending side (FIN) and
/// read and discard what the client still sends until it closes, for at most [`CLOSE_TIMEOUT`]
/// and [`DRAIN_MAX_BYTES`].
///
/// For a connection refused mid-frame (too large, not UTF-8), most of the frame is still unread.
/// Dropping a socket with unread input makes the kernel reset the connection, and a reset can
/// destroy the close frame before the client reads it (Windows drops received data on a reset),
/// so the client would never learn why it was closed.
async fn close_and_drain<S>(ws: &mut WebSocketStream<S>, code: u16, reason: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !within(CLOSE_TIMEOUT, ws.send(close_frame(code, reason))).await {
        return;
    }
    let stream = ws.get_mut();
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        let _ = stream.shutdown().await;
        let mut buf = [0u8; 16 * 1024];
        let mut left = DRAIN_MAX_BYTES;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

/// Run a socket write for at most `limit`; true if it completed without error.
async fn within<F>(limit: Duration, write: F) -> bool
where
    F: Future<Output = Result<(), tungstenite::Error>>,
{
    matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())))
}

fn count_error_name(metrics: &Metrics, name: &'static str) {
    metrics.errors.get_or_create(&[("code", name)]).inc();
}
