//! `hearth-signal`: the signaling server binary. See `--help`.

use anyhow::Context as _;
use clap::Parser as _;
use hearth_signal::config::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Cli::parse().resolve()?;
    let filter = EnvFilter::try_new(&settings.log)
        .with_context(|| format!("invalid log filter {:?}", settings.log))?;
    match settings.log_format {
        LogFormat::Text => {
            tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).init()
        }
        LogFormat::Json => {
            tracing_subscriber::fmt().json().with_writer(std::io::stderr).with_env_filter(filter).init()
        }
    }
    check_open_file_limit(settings.config.max_connections);
    // Before anything is served: a SIGTERM that arrives once the server answers must stop it
    // cleanly, not kill it (tokio installs a signal's handler when it is first asked for).
    let shutdown = shutdown_signal();
    let listener = hearth_signal::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if settings.config.tls.is_some() { "wss" } else { "ws" };
    // Printed on stdout (not only logged) so scripts can read the port when --listen uses port 0.
    println!("hearth-signal listening on {scheme}://{addr}/ws");
    tracing::info!(%addr, tls = settings.config.tls.is_some(), "listening");
    let relay = match &settings.config.relay {
        Some(relay) => {
            let bound = hearth_signal::relay::bind(relay, settings.config.tls.as_ref())
                .await
                .with_context(|| format!("cannot start the TURN relay on {}", relay.listen))?;
            println!("hearth-signal TURN relay on udp+tcp {}", bound.udp_tcp);
            if let Some(tls) = bound.tls {
                println!("hearth-signal TURN relay on tls {tls}");
            }
            Some(bound)
        }
        None => None,
    };
    let metrics = std::sync::Arc::new(hearth_signal::Metrics::new());
    hearth_signal::run_bound(listener, relay, settings.config, metrics, shutdown).await?;
    Ok(())
}

/// Take the most open files the system allows (every connection is one) and warn when the
/// connection limit still does not fit.
fn check_open_file_limit(max_connections: usize) {
    match hearth_signal::fd_limit::raise_nofile_limit() {
        Ok(lim) => {
            tracing::debug!(soft = lim.soft, hard = lim.hard, "open-file limit");
            if let Some(warning) = hearth_signal::fd_limit::check_max_connections(max_connections, lim.soft) {
                tracing::warn!(nofile = lim.soft, max_connections, "{warning}");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

/// Installs the Ctrl-C and SIGTERM handlers now; the future completes on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let (interrupt, term) = {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        (listen(SignalKind::interrupt(), "Ctrl-C"), listen(SignalKind::terminate(), "SIGTERM"))
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => tracing::info!("Ctrl-C received"),
                () = wait(term) => tracing::info!("SIGTERM received"),
            }
        }
        #[cfg(not(unix))]
        {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
            tracing::info!("Ctrl-C received");
        }
    }
}
