//! `scripts/netlab.sh` end to end: a real `hearth-call` call between two network namespaces,
//! one peer behind a masquerading NAT, across the emulator with 20 ms each way; both sides
//! must report media flowing (exit 0) and a connected pair each way. Debug builds (built by
//! `scripts/test.sh` beforehand). Needs root and /dev/net/tun; without them it says so.

use std::process::Command;

#[test]
fn call_across_a_natted_delayed_link() {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    if !root || !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("SKIPPED: the network lab needs root and /dev/net/tun");
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
    let pairs: Vec<&str> = stdout.lines().filter(|l| l.contains(" -> ") && l.contains("connected=True")).collect();
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
