//! The embedded default: with no server configured, the app runs `hearth-signal` in-process on
//! loopback. It listens on a fixed port ([`DEFAULT_PORT`]) so that a second app instance on the
//! same machine finds the first one's server and both are in the same call. If the instance
//! that runs the server quits, the others take the port over when they reconnect.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// 127.0.0.1:47878 unless `HEARTH_EMBEDDED_PORT` says otherwise.
pub const DEFAULT_PORT: u16 = 47878;

pub fn port() -> u16 {
    std::env::var("HEARTH_EMBEDDED_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(DEFAULT_PORT)
}

/// A server this process runs, or one another instance runs.
#[derive(Debug)]
pub struct Embedded {
    pub addr: SocketAddr,
    /// We run it (else another Hearth instance on this machine does).
    pub owned: bool,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("port {0} on 127.0.0.1 is used by another program that is not a Hearth server")]
    PortTaken(u16),
    #[error("cannot start the local server: {0}")]
    Io(#[from] std::io::Error),
}

impl Embedded {
    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Start the server on 127.0.0.1:[`port`], or use the Hearth server already there.
    pub async fn ensure(port: u16) -> Result<Embedded, EmbeddedError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let addr = listener.local_addr()?;
                let (stop, stopped) = oneshot::channel::<()>();
                let config = hearth_signal::Config::default();
                let task = tokio::spawn(async move {
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    if let Err(e) = hearth_signal::run(listener, config, shutdown).await {
                        tracing::error!("embedded server stopped: {e}");
                    }
                });
                tracing::info!("embedded signaling server on {addr}");
                Ok(Embedded { addr, owned: true, stop: Some(stop), task: Some(task) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if is_hearth(addr).await {
                    tracing::info!("using the Hearth server another instance runs on {addr}");
                    Ok(Embedded { addr, owned: false, stop: None, task: None })
                } else {
                    Err(EmbeddedError::PortTaken(port))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stop the server (peers get the server's shutdown message and reconnect elsewhere).
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), t).await;
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Whether `addr` answers `/healthz` like a Hearth server.
pub async fn is_hearth(addr: SocketAddr) -> bool {
    let probe = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        let _ = (&mut s).take(4096).read_to_end(&mut buf).await;
        Some(String::from_utf8_lossy(&buf).contains("Hearth signaling server"))
    };
    tokio::time::timeout(Duration::from_secs(2), probe).await.ok().flatten().unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_instance_shares_the_first_ones_server_and_refuses_strangers() {
        let first = Embedded::ensure(0).await.unwrap();
        assert!(first.owned);
        let port = first.addr.port();
        let second = Embedded::ensure(port).await.unwrap();
        assert!(!second.owned, "the second instance uses the first one's server");
        assert_eq!(second.url(), first.url());
        first.stop().await;
        // The port is free again: the next one takes it over.
        let third = Embedded::ensure(port).await.unwrap();
        assert!(third.owned);
        third.stop().await;
        // A port held by something else is reported as such.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = other.local_addr().unwrap().port();
        let err = Embedded::ensure(p).await.unwrap_err();
        assert!(matches!(err, EmbeddedError::PortTaken(x) if x == p), "{err}");
    }
}
