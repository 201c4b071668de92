//! Calls through the embedded TURN relay, one per client transport (UDP, TCP, TLS): two real
//! `hearth-call` processes forced onto relay candidates (`--relay-only`) and onto one TURN
//! transport (`--turn-transport`), against a real `hearth-signal` with its relay on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use hearth_signal::relay::RelaySettings;
use serde_json::Value;
use std::sync::Arc;

mod common;
use common::{hearth_call, join_args};

struct Relayed {
    url: String,
    metrics: Arc<hearth_signal::Metrics>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    cert_file: Option<std::path::PathBuf>,
}

impl Drop for Relayed {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn start(tls: bool) -> Relayed {
    let mut config = hearth_signal::Config::default();
    let mut relay = RelaySettings::new("127.0.0.1:0".parse().unwrap(), vec!["127.0.0.1".parse().unwrap()]);
    relay.allow_loopback_peers = true;
    let mut cert_file = None;
    if tls {
        let dir = std::env::temp_dir().join(format!("hearth-turn-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert.cert.pem()).unwrap();
        std::fs::write(&k, cert.signing_key.serialize_pem()).unwrap();
        config.tls = Some(hearth_signal::TlsFiles { cert: c.clone(), key: k });
        relay.tls_listen = Some("127.0.0.1:0".parse().unwrap());
        relay.tls_name = Some("localhost".into());
        cert_file = Some(c);
    }
    config.relay = Some(relay);
    let listener = hearth_signal::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let metrics = Arc::new(hearth_signal::Metrics::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hearth_signal::run_with_metrics(listener, config, metrics.clone(), async {
        let _ = stopped.await;
    }));
    let url = if tls { format!("wss://localhost:{port}/ws") } else { format!("ws://127.0.0.1:{port}/ws") };
    Relayed { url, metrics, stop: Some(stop), cert_file }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn relayed_call(transport: &'static str) {
    let server = start(transport == "tls").await;
    let kids: Vec<_> = ["ada", "bob"]
        .iter()
        .map(|name| {
            let mut c = hearth_call();
            c.args(join_args(
                &server.url,
                name,
                &["--seconds", "3", "--relay-only", "--turn-transport", transport],
            ));
            if let Some(cert) = &server.cert_file {
                c.env("SSL_CERT_FILE", cert);
            }
            c.spawn().unwrap()
        })
        .collect();
    let results = tokio::task::spawn_blocking(move || {
        kids.into_iter().map(|k| k.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for out in results {
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{json:#}\n{stderr}");
        let pair = &json["pairs"][0];
        assert_eq!(pair["local_candidate"], "relay", "{pair:#}");
        assert_eq!(pair["remote_candidate"], "relay", "{pair:#}");
        assert_eq!(pair["relay_transport"], transport, "{pair:#}");
        assert!(pair["video_frames_decoded"].as_u64().unwrap() > 30, "{pair:#}");
        assert!(pair["audio_frames_decoded"].as_u64().unwrap() > 50, "{pair:#}");
    }
    let text = server.metrics.render();
    assert!(metric(&text, "hearth_turn_allocations_made_total") >= 2.0, "{text}");
    assert!(metric(&text, "hearth_turn_relayed_bytes_total{direction=\"to_peer\"}") > 50_000.0, "{text}");
    assert!(metric(&text, "hearth_turn_relayed_bytes_total{direction=\"to_client\"}") > 50_000.0, "{text}");
    // Both clients reported their link's path: relay to relay, over this transport.
    let path = format!("hearth_call_paths_total{{local=\"relay\",remote=\"relay\",relay=\"{transport}\"}}");
    assert_eq!(metric(&text, &path), 2.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_relayed_over_udp() {
    relayed_call("udp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_relayed_over_tcp() {
    relayed_call("tcp").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_relayed_over_tls_with_the_wss_certificate() {
    relayed_call("tls").await;
}
