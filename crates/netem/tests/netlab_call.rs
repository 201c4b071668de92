//! `scripts/netlab.sh` end to end: a real `hearth-call` call between two network namespaces,
//! one peer behind a masquerading NAT, across the emulator with 20 ms each way; both sides
//! must report media flowing (exit 0) and a connected pair each way. Debug builds (built by
//! `scripts/test.sh` beforehand). Needs root and /dev/net/tun; without them it says so.

use std::process::Command;

/// Root and /dev/net/tun, or a SKIPPED line and false.
fn lab_available() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let ok = root && std::path::Path::new("/dev/net/tun").exists();
    if !ok {
        eprintln!("SKIPPED: the network lab needs root and /dev/net/tun");
    }
    ok
}

#[test]
fn call_across_a_natted_delayed_link() {
    if !lab_available() {
        return;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/netlab.sh");
    let out = Command::new("bash")
        .args([script, "--debug", "--nat", "--seconds", "5", "--width", "320", "--height", "180"])
        .args(["--profile", r#"{"delay_ms": 20}"#])
        .output()
        .expect("run scripts/netlab.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "netlab failed ({}):\n{stdout}\n{stderr}", out.status);
    let pairs: Vec<&str> =
        stdout.lines().filter(|l| l.contains(" -> ") && l.contains("connected=True")).collect();
    assert_eq!(pairs.len(), 2, "one connected pair each way:\n{stdout}");
    // 20 ms each way: the round trip the peers measure is at least 40 ms.
    for line in &pairs {
        let rtt: f64 = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("rtt_ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no rtt in {line}"));
        assert!((39.0..80.0).contains(&rtt), "rtt {rtt} ms through a 20 ms-each-way link: {line}");
    }
}

/// Congestion control end to end: a 640x360 call (its full rate ~480 kbit/s) across a link
/// capped at 300 kbit/s each way. Each sender must come down under the cap and video must
/// keep flowing there. Debug builds, like the test above.
#[test]
fn the_send_rate_falls_under_a_capped_link() {
    if !lab_available() {
        return;
    }
    let keep = std::env::temp_dir().join(format!("hearth-netlab-cap-{}", std::process::id()));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/netlab.sh");
    let out = Command::new("bash")
        .args([script, "--debug", "--seconds", "14", "--width", "640", "--height", "360"])
        .args(["--profile", r#"{"delay_ms": 20, "rate_kbps": 300, "queue_ms": 200}"#])
        .arg("--keep")
        .arg(&keep)
        .output()
        .expect("run scripts/netlab.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "netlab failed ({}):\n{stdout}", out.status);
    for who in ["alice", "bob"] {
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(keep.join(format!("{who}.json"))).unwrap())
                .unwrap();
        let timeline = report["timeline"].as_array().unwrap();
        assert!(timeline.len() >= 12, "{who}: {} samples", timeline.len());
        // The last 5 seconds: our encoder runs under the cap (without congestion control it
        // stays at ~480 kbit/s and almost nothing gets through), our estimate of the path is
        // near it, and video is shown at a usable rate.
        let last = &timeline[timeline.len() - 5..];
        let received: Vec<f64> =
            last.iter().map(|t| t["peers"][0]["received_kbps"].as_f64().unwrap()).collect();
        let sending: Vec<f64> =
            last.iter().map(|t| t["sending"][0]["bitrate_kbps"].as_f64().unwrap()).collect();
        let estimate = last[4]["peers"][0]["send_estimate_kbps"].as_f64().unwrap();
        let fps: f64 = last.iter().map(|t| t["peers"][0]["video_fps"].as_f64().unwrap()).sum::<f64>() / 5.0;
        let mean = received.iter().sum::<f64>() / 5.0;
        assert!(sending.iter().all(|s| *s < 300.0), "{who} encodes at {sending:?} kbit/s");
        assert!(estimate < 450.0, "{who} estimates {estimate} kbit/s");
        assert!(mean > 60.0 && fps >= 15.0, "{who}: {mean} kbit/s, {fps} fps shown");
    }
    let _ = std::fs::remove_dir_all(&keep);
}
