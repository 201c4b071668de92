//! TURN over TCP and TLS for webrtc-rs, which only speaks TURN over UDP: every `turn:…?transport=tcp`
//! and `turns:` URL in `welcome` becomes a local shim (hearth-turn) on 127.0.0.1, and the URL
//! handed to webrtc-rs becomes `turn:127.0.0.1:<shim port>?transport=udp` with the same
//! credentials. The shims live as long as the engine's call.

use hearth_proto::IceServer;
use hearth_turn::shim::{TurnShim, Upstream};
use std::net::SocketAddr;
use std::sync::Arc;

/// The shims of one call, and which relayed addresses came through which.
#[derive(Debug, Default)]
pub struct TurnPaths {
    shims: Vec<(TurnShim, &'static str)>,
}

impl TurnPaths {
    /// "udp", "tcp" or "tls": how our relay candidate at `relayed` reaches its TURN server.
    pub fn relay_transport(&self, relayed: SocketAddr) -> &'static str {
        self.shims.iter().find(|(shim, _)| shim.relayed(relayed)).map(|(_, t)| *t).unwrap_or("udp")
    }
}

/// A TURN URL split up: `turn[s]:host[:port][?transport=udp|tcp]`.
#[derive(Debug, PartialEq, Eq)]
pub struct TurnUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub tcp: bool,
}

pub fn parse_turn_url(url: &str) -> Option<TurnUrl> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("turns:") {
        (true, r)
    } else {
        (false, url.strip_prefix("turn:")?)
    };
    let (hostport, query) = rest.split_once('?').unwrap_or((rest, ""));
    let tcp = tls || query.split('&').any(|kv| kv.eq_ignore_ascii_case("transport=tcp"));
    if query.split('&').any(|kv| kv.eq_ignore_ascii_case("transport=udp")) && tls {
        return None;
    }
    let default_port = if tls { 5349 } else { 3478 };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default_port,
            None => return None,
        };
        (h.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().ok()?),
            None => (hostport.to_owned(), default_port),
        }
    };
    if host.is_empty() || port == 0 {
        return None;
    }
    Some(TurnUrl { tls, host, port, tcp })
}

/// TLS client settings for `turns:`: the system's roots (which honour `SSL_CERT_FILE`).
fn tls_config() -> Option<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let loaded = rustls_native_certs::load_native_certs();
    for cert in loaded.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        tracing::warn!("no TLS root certificates found: TURN over TLS is off");
        return None;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// Rewrite `servers` for webrtc-rs: TCP and TLS TURN URLs go through a shim each (through
/// `proxy`, an HTTP CONNECT proxy `host:port`, when given). URLs that cannot be used are dropped
/// with a log line.
/// With `only` non-empty, TURN URLs of other transports ("udp", "tcp", "tls") are dropped.
pub async fn prepare(
    servers: &[IceServer],
    proxy: Option<&str>,
    only: &[String],
) -> (Vec<IceServer>, TurnPaths) {
    let wanted = |t: &str| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(t));
    let mut paths = TurnPaths::default();
    let mut tls: Option<Option<Arc<rustls::ClientConfig>>> = None;
    let mut out = Vec::new();
    for server in servers {
        let mut urls = Vec::new();
        for url in &server.urls {
            if url.starts_with("stun:") || url.starts_with("stuns:") {
                if proxy.is_none() {
                    urls.push(url.clone());
                }
                continue;
            }
            let Some(parsed) = parse_turn_url(url) else {
                tracing::info!(%url, "skipping an ICE server URL that is not usable");
                continue;
            };
            let transport = if parsed.tls {
                "tls"
            } else if parsed.tcp {
                "tcp"
            } else {
                "udp"
            };
            if !wanted(transport) {
                continue;
            }
            if !parsed.tcp {
                // Behind a proxy, UDP does not get out; only the proxied paths are worth trying.
                if proxy.is_none() {
                    urls.push(url.clone());
                }
                continue;
            }
            let tls_config = if parsed.tls {
                match tls.get_or_insert_with(tls_config) {
                    Some(c) => Some(c.clone()),
                    None => continue,
                }
            } else {
                None
            };
            let label = if parsed.tls { "tls" } else { "tcp" };
            let upstream = Upstream {
                host: parsed.host,
                port: parsed.port,
                tls: tls_config,
                proxy: proxy.map(str::to_owned),
            };
            match TurnShim::start(upstream).await {
                Ok(shim) => {
                    urls.push(format!("turn:{}?transport=udp", shim.local_addr()));
                    tracing::debug!(%url, shim = %shim.local_addr(), "TURN over {label} through a local shim");
                    paths.shims.push((shim, label));
                }
                Err(e) => tracing::warn!(%url, error = %e, "cannot start the TURN over TCP/TLS shim"),
            }
        }
        if !urls.is_empty() {
            out.push(IceServer {
                urls,
                username: server.username.clone(),
                credential: server.credential.clone(),
            });
        }
    }
    (out, paths)
}

/// The HTTP CONNECT proxy for a call to the signaling server at `url`: the configured one, else
/// the environment's.
pub fn proxy_for(configured: Option<&str>, url: &str) -> Option<String> {
    match configured {
        Some(p) => proxy_authority(p),
        None => proxy_from_env(crate::signal::url_host(url).unwrap_or_default()),
    }
}

/// The HTTP proxy from the environment (`HTTPS_PROXY`, `https_proxy`, `ALL_PROXY`, `all_proxy`),
/// as `host:port`, unless `NO_PROXY` names `host`.
pub fn proxy_from_env(host: &str) -> Option<String> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let no_proxy = get("NO_PROXY").or_else(|| get("no_proxy")).unwrap_or_default();
    if no_proxy
        .split(',')
        .map(str::trim)
        .any(|n| !n.is_empty() && (n == "*" || host.ends_with(n.trim_start_matches('.'))))
    {
        return None;
    }
    let raw = get("HTTPS_PROXY")
        .or_else(|| get("https_proxy"))
        .or_else(|| get("ALL_PROXY"))
        .or_else(|| get("all_proxy"))?;
    proxy_authority(&raw)
}

/// `http://host:port/` (or `host:port`) as `host:port`; other schemes are not HTTP proxies.
pub fn proxy_authority(raw: &str) -> Option<String> {
    let rest = match raw.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some(_) => return None,
        None => raw,
    };
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    Some(
        if authority.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !authority.ends_with(']')
        {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        },
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_parse() {
        assert_eq!(
            parse_turn_url("turn:10.0.0.1:3478?transport=tcp"),
            Some(TurnUrl { tls: false, host: "10.0.0.1".into(), port: 3478, tcp: true })
        );
        assert_eq!(
            parse_turn_url("turns:turn.example.org?transport=tcp"),
            Some(TurnUrl { tls: true, host: "turn.example.org".into(), port: 5349, tcp: true })
        );
        assert_eq!(
            parse_turn_url("turn:[2001:db8::1]:3478"),
            Some(TurnUrl { tls: false, host: "2001:db8::1".into(), port: 3478, tcp: false })
        );
        assert_eq!(parse_turn_url("turn:h:0"), None);
        assert_eq!(parse_turn_url("turn::3478"), None);
        assert_eq!(parse_turn_url("stun:h:3478"), None);
        assert_eq!(parse_turn_url("turns:h:443?transport=udp"), None);
        assert_eq!(parse_turn_url("turn:[::1"), None);
    }

    #[test]
    fn proxies_parse() {
        assert_eq!(proxy_authority("http://proxy.corp:3128/"), Some("proxy.corp:3128".into()));
        assert_eq!(proxy_authority("http://user:pw@10.0.0.1:8080"), Some("10.0.0.1:8080".into()));
        assert_eq!(proxy_authority("proxy.corp"), Some("proxy.corp:80".into()));
        assert_eq!(proxy_authority("socks5://h:1080"), None);
    }

    #[tokio::test]
    async fn tcp_and_tls_urls_get_a_shim_and_udp_ones_stay() {
        let servers = vec![IceServer {
            urls: vec![
                "stun:10.0.0.1:3478".into(),
                "turn:10.0.0.1:3478?transport=udp".into(),
                "turn:10.0.0.1:3478?transport=tcp".into(),
            ],
            username: Some("u".into()),
            credential: Some("p".into()),
        }];
        let (out, paths) = prepare(&servers, None, &[]).await;
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].urls.len(), 3);
        assert_eq!(out[0].urls[1], "turn:10.0.0.1:3478?transport=udp");
        assert!(out[0].urls[2].starts_with("turn:127.0.0.1:"), "{:?}", out[0].urls);
        assert_eq!(out[0].username.as_deref(), Some("u"));
        assert_eq!(paths.shims.len(), 1);
        // Behind a proxy only the TCP path is kept.
        let (out, _) = prepare(&servers, Some("10.0.0.9:3128"), &[]).await;
        assert_eq!(out[0].urls.len(), 1);
        // Only the transports asked for.
        let (out, _) = prepare(&servers, None, &["udp".into()]).await;
        assert_eq!(
            out[0].urls,
            vec!["stun:10.0.0.1:3478".to_owned(), "turn:10.0.0.1:3478?transport=udp".to_owned()]
        );
    }
}
