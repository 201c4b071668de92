//! Hearth's TURN: the relay `hearth-signal` embeds, and the client's TCP/TLS TURN shim.
//!
//! **Relay.** [`relay::Relay`] is the sans-IO core (RFC 8656 Allocate, Refresh, CreatePermission,
//! ChannelBind, Send/Data indications, ChannelData; TURN REST credentials; quotas; no open relay).
//! [`server::run`] drives it with tokio over UDP, TCP and TLS:
//!
//! ```no_run
//! # async fn demo() -> Result<(), hearth_turn::TurnError> {
//! use hearth_turn::{RelayConfig, RelayMetrics, server};
//! let mut config = RelayConfig::new("hearth", b"shared secret".to_vec());
//! config.public_v4 = "203.0.113.7".parse().ok();
//! let listeners = server::RelayListeners {
//!     udp: Some(tokio::net::UdpSocket::bind("0.0.0.0:3478").await?),
//!     tcp: Some(tokio::net::TcpListener::bind("0.0.0.0:3478").await?),
//!     tls: None,
//! };
//! server::run(listeners, config, server::RelaySockets::default(), RelayMetrics::default(),
//!     std::future::pending()).await
//! # }
//! ```
//!
//! **Shim.** [`shim::TurnShim`] gives webrtc-rs (UDP-only TURN) a 127.0.0.1 address that carries
//! its TURN traffic over TCP or TLS, optionally through an HTTP CONNECT proxy.

pub mod auth;
pub mod metrics;
pub mod relay;
pub mod server;
pub mod shim;
mod stream;

pub use auth::rest_credentials;
pub use metrics::RelayMetrics;
pub use relay::{Relay, RelayConfig};

/// Errors of the TURN layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TurnError {
    /// A socket could not be opened or used (not retryable with the same address).
    #[error("TURN socket error: {0}")]
    Io(#[from] std::io::Error),
}
