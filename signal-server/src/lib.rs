//! Hearth's signaling server: rooms, presence, SDP/ICE relay and chat over WebSocket, with
//! health and metrics endpoints.
//!
//! # Running it
//! The library entry is [`run`]: give it a bound listener, a [`Config`] and a future that
//! resolves when the server should stop. It serves until then, tells every client, drains, and
//! returns.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_signal::ServerError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! println!("listening on {}", listener.local_addr()?);
//! hearth_signal::run(listener, hearth_signal::Config::default(), async {
//!     let _ = tokio::signal::ctrl_c().await;
//! })
//! .await
//! # }
//! ```
//!
//! # Layout
//! - [`hub`]: the rooms as a sans-IO state machine (all the rules; no sockets, no clock).
//! - `server`: the I/O around the hub: accept loop, HTTP endpoints, WebSocket connections.
//! - [`auth`]: JWT room tokens, room passwords, TURN credentials.
//! - [`config`]: defaults, TOML file, environment, flags.
//! - [`per_ip`]: which address a per-address limit counts; open connections per address.
//! - [`fd_limit`]: the open-file limit the connection limit must fit under.
//! - [`relay`]: the embedded TURN relay (hearth-turn): settings, sockets, announced URLs.
//! - [`metrics`]: Prometheus metrics.

pub mod auth;
pub mod config;
pub mod fd_limit;
pub mod hub;
pub mod metrics;
pub mod per_ip;
pub mod rate;
pub mod relay;
mod server;
mod tls;

pub use config::{Config, TlsFiles};
pub use metrics::Metrics;

use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Errors that stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding or accepting failed. Not retryable without a change (address in use, permissions).
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS certificate or key could not be used.
    #[error("TLS setup failed: {message}")]
    Tls { message: String },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

/// Bind a listener for [`run`] with a deep accept queue (4096), so bursts of connections are
/// not dropped and retried a second later as with the usual backlog of 128. Port 0 picks a free
/// port. Accepts `HOST:PORT` and resolves host names.
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last_err = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket =
            if a.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(4096)) {
            Ok(l) => return Ok(l),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr} resolves to no address"))
    }))
}

/// Serve on `listener` until `shutdown` resolves, then tell clients, drain and return.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    run_with_metrics(listener, config, Arc::new(Metrics::new()), shutdown).await
}

/// [`run`], exporting into the given metrics (so an embedding program can read them).
pub async fn run_with_metrics(
    listener: TcpListener,
    config: Config,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let relay = match &config.relay {
        Some(settings) => Some(relay::bind(settings, config.tls.as_ref()).await?),
        None => None,
    };
    run_bound(listener, relay, config, metrics, shutdown).await
}

/// [`run_with_metrics`] with the embedded relay's sockets already bound ([`relay::bind`]), so the
/// caller can print their addresses first.
pub async fn run_bound(
    listener: TcpListener,
    relay: Option<relay::BoundRelay>,
    mut config: Config,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let (Some(settings), Some(bound)) = (config.relay.clone(), relay) else {
        return server::serve(listener, config, metrics, shutdown).await;
    };
    let secret = match &config.hub.turn {
        Some(t) => t.secret.clone(),
        None => rand::random::<[u8; 32]>().to_vec(),
    };
    let mut own = vec![listener.local_addr()?, bound.udp_tcp];
    own.extend(bound.tls);
    let urls = relay::urls(&settings, &bound);
    tracing::info!(udp_tcp = %bound.udp_tcp, tls = ?bound.tls, urls = ?urls.1, "TURN relay listening");
    relay::announce(&mut config.hub.turn, &mut config.hub.stun_urls, &secret, urls);
    let relay_config = relay::relay_config(&settings, &secret, own);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay_task = tokio::spawn(hearth_turn::server::run(
        bound.listeners,
        relay_config,
        relay::relay_sockets(&settings),
        metrics.turn.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let result = server::serve(listener, config, metrics, shutdown).await;
    drop(stop_tx);
    let _ = relay_task.await;
    result
}
