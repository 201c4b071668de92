//! The emulator in a real network: three namespaces made by the test (A — M — B, veths,
//! addresses that exist only inside them), `hearth-netem bridge` in M with policy routing that
//! sends everything crossing M through its two TUN devices, a UDP echo in B and a probe in A.
//! Needs root and /dev/net/tun (CI has both); without them it says so and does nothing.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hearth-netem");

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip (iproute2; scripts/setup.sh installs it)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

fn in_ns(ns: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).args(args);
    c
}

fn sysctl(ns: &str, kv: &str) {
    let out = in_ns(ns, &["sysctl", "-q", "-w", kv]).output().unwrap();
    assert!(out.status.success(), "sysctl {kv} in {ns}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Lab {
    a: String,
    m: String,
    b: String,
    procs: Vec<Child>,
    bridge: Option<Child>,
}

impl Lab {
    fn new() -> Lab {
        let tag = format!("hn{}", std::process::id() % 100_000);
        let lab = Lab { a: format!("{tag}a"), m: format!("{tag}m"), b: format!("{tag}b"), procs: vec![], bridge: None };
        for ns in [&lab.a, &lab.m, &lab.b] {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // A (10.77.1.2) — M (10.77.1.1 | 10.77.2.1) — B (10.77.2.2)
        ip(&["-n", &lab.a, "link", "add", "va", "type", "veth", "peer", "name", "vma", "netns", &lab.m]);
        ip(&["-n", &lab.b, "link", "add", "vb", "type", "veth", "peer", "name", "vmb", "netns", &lab.m]);
        ip(&["-n", &lab.a, "addr", "add", "10.77.1.2/24", "dev", "va"]);
        ip(&["-n", &lab.b, "addr", "add", "10.77.2.2/24", "dev", "vb"]);
        ip(&["-n", &lab.m, "addr", "add", "10.77.1.1/24", "dev", "vma"]);
        ip(&["-n", &lab.m, "addr", "add", "10.77.2.1/24", "dev", "vmb"]);
        for (ns, dev) in [(&lab.a, "va"), (&lab.b, "vb"), (&lab.m, "vma"), (&lab.m, "vmb")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        ip(&["-n", &lab.a, "route", "add", "default", "via", "10.77.1.1"]);
        ip(&["-n", &lab.b, "route", "add", "default", "via", "10.77.2.1"]);
        sysctl(&lab.m, "net.ipv4.ip_forward=1");
        // Packets come back out of the TUN devices with sources that route via the veths.
        sysctl(&lab.m, "net.ipv4.conf.all.rp_filter=0");
        sysctl(&lab.m, "net.ipv4.conf.default.rp_filter=0");
        // Whatever enters M from A goes to TUN a, from B to TUN b; what the bridge writes back
        // (arriving on the TUN devices) is routed normally.
        ip(&["-n", &lab.m, "rule", "add", "iif", "vma", "lookup", "100"]);
        ip(&["-n", &lab.m, "rule", "add", "iif", "vmb", "lookup", "101"]);
        lab
    }

    /// (Re)starts the bridge with this profile (both directions) and routes through it.
    fn bridge(&mut self, profile: &str) {
        if let Some(mut b) = self.bridge.take() {
            let _ = b.kill();
            let _ = b.wait();
        }
        let child = in_ns(&self.m, &[BIN, "bridge", "--tun-a", "neta", "--tun-b", "netb", "--profile", profile])
            .stdin(Stdio::null())
            .spawn()
            .expect("start hearth-netem bridge");
        self.bridge = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !["neta", "netb"].iter().all(|d| in_ns(&self.m, &["ip", "link", "show", d]).output().is_ok_and(|o| o.status.success())) {
            assert!(Instant::now() < deadline, "the bridge's TUN devices did not appear");
            std::thread::sleep(Duration::from_millis(20));
        }
        for (dev, table) in [("neta", "100"), ("netb", "101")] {
            ip(&["-n", &self.m, "link", "set", dev, "up"]);
            sysctl(&self.m, &format!("net.ipv4.conf.{dev}.rp_filter=0"));
            ip(&["-n", &self.m, "route", "replace", "default", "dev", dev, "table", table]);
        }
    }

    fn echo(&mut self) {
        let c = in_ns(&self.b, &[BIN, "echo", "--listen", "10.77.2.2:9000"]).stdin(Stdio::null()).spawn().unwrap();
        self.procs.push(c);
        std::thread::sleep(Duration::from_millis(200));
    }

    fn probe(&self, count: u32) -> serde_json::Value {
        let out = in_ns(&self.a, &[BIN, "probe", "--to", "10.77.2.2:9000", "--count", &count.to_string(), "--interval-ms", "10"])
            .output()
            .unwrap();
        assert!(out.status.success(), "probe: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("probe printed {:?}: {e}", String::from_utf8_lossy(&out.stdout)))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for mut c in self.procs.drain(..).chain(self.bridge.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.a, &self.m, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn can_run() -> bool {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let tun = std::path::Path::new("/dev/net/tun").exists();
    let ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    if !(root && tun && ip) {
        eprintln!("SKIPPED: the network lab needs root, /dev/net/tun and iproute2 (root={root} tun={tun} ip={ip})");
    }
    root && tun && ip
}

#[test]
fn delay_loss_and_clean_links_through_namespaces() {
    if !can_run() {
        return;
    }
    let mut lab = Lab::new();
    lab.echo();

    // Clean: round trips in well under a millisecond or two.
    lab.bridge("{}");
    let r = lab.probe(100);
    eprintln!("clean: {r}");
    assert_eq!(r["received"], 100, "{r}");
    assert!(r["rtt_ms"]["p50"].as_f64().unwrap() < 5.0, "{r}");

    // 30 ms each way: a 60 ms round trip.
    lab.bridge(r#"{"delay_ms": 30}"#);
    let r = lab.probe(100);
    eprintln!("30 ms each way: {r}");
    assert_eq!(r["received"], 100, "{r}");
    let p50 = r["rtt_ms"]["p50"].as_f64().unwrap();
    assert!((59.0..70.0).contains(&p50), "{r}");
    assert!(r["rtt_ms"]["min"].as_f64().unwrap() >= 59.5, "never early: {r}");

    // 10% loss each way: ~19% of round trips lost.
    lab.bridge(r#"{"loss": 0.1}"#);
    let r = lab.probe(400);
    eprintln!("10% loss each way: {r}");
    let loss = r["loss"].as_f64().unwrap();
    assert!((0.1..0.3).contains(&loss), "{r}");

    // A blackout from 0.5 s to 1.5 s of the link: the probes sent then are lost.
    lab.bridge(r#"{"blackouts": [[0.5, 1.0]]}"#);
    let r = lab.probe(200);
    eprintln!("1 s blackout in 2 s: {r}");
    let loss = r["loss"].as_f64().unwrap();
    assert!((0.35..0.65).contains(&loss), "{r}");
}
