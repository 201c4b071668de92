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
    let listener = hearth_signal::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if settings.config.tls.is_some() { "wss" } else { "ws" };
    // Printed on stdout (not only logged) so scripts can read the port when --listen uses port 0.
    println!("hearth-signal listening on {scheme}://{addr}/ws");
    tracing::info!(%addr, tls = settings.config.tls.is_some(), "listening");
    hearth_signal::run(listener, settings.config, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
