//! The Linux packages (issue 15), installed on this machine: the app's `.deb` with `apt`, its
//! `--version` and `--self-test` under Xvfb, its desktop entry for `hearth://` links; the server's
//! `.deb`, its unit's command line run as an unprivileged user with the packaged config,
//! `/healthz`, a `hearth-call join` smoke call and `/metrics` (every metric the Grafana dashboard
//! plots); then both packages purged, leaving nothing behind.
//!
//! The packages come from `installers/build-linux.sh` (scripts/test.sh builds them before the
//! tests); when they are missing this test builds them (a release build, minutes). Needs root,
//! as CI runs; systemd is used when it runs (`/run/systemd/system`), else the unit's `ExecStart`
//! is run directly.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use common::{Desk, Peer, free_port, run_bounded};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const APP_DEB_LIMIT: u64 = 25_000_000;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn installers_dir() -> PathBuf {
    // target/debug/deps/<test> -> target/installers (honours CARGO_TARGET_DIR).
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("installers")
}

fn find(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with(prefix) && n.ends_with(suffix)
        })
        .collect();
    found.sort();
    found.pop()
}

/// Runs a command to its end; panics with its output unless it succeeds.
fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed ({})\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    stdout
}

fn apt(args: &[&str]) -> Command {
    let mut c = Command::new("apt-get");
    c.args(["-y", "-q", "--no-install-recommends"]).args(args).env("DEBIAN_FRONTEND", "noninteractive");
    c
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Purges both packages when the test ends, passed or not, so a failure leaves no install.
struct Purge;
impl Drop for Purge {
    fn drop(&mut self) {
        for p in ["hearth", "hearth-signal"] {
            if installed(p) {
                let _ = apt(&["purge", p]).output();
            }
        }
    }
}

async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut text)).await.ok()?.ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

/// The unit's `ExecStart=` command line, split into words (it has no quoting).
fn exec_start(unit: &str) -> Vec<String> {
    let line =
        unit.lines().find_map(|l| l.strip_prefix("ExecStart=")).expect("the unit has an ExecStart= line");
    line.split_whitespace().map(str::to_string).collect()
}

/// Metric names (without `_total`, `_bucket`, ...) a Grafana dashboard's queries use.
fn dashboard_metrics(json: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    for panel in json["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(i) = rest.find("hearth_") {
                let tail = &rest[i..];
                let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
                names.push(tail[..end].to_string());
                rest = &tail[end..];
            }
        }
    }
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_packages_install_run_and_remove() {
    assert_eq!(euid(), 0, "installing packages needs root (CI runs as root); run this test with sudo");
    let dir = installers_dir();
    if find(&dir, "hearth_", ".deb").is_none() || find(&dir, "hearth-signal_", ".deb").is_none() {
        eprintln!("no packages in {}: running installers/build-linux.sh (release build)", dir.display());
        sh(Command::new(workspace_root().join("installers/build-linux.sh")).arg("--skip-setup"));
    }
    let app_deb = find(&dir, "hearth_", ".deb").expect("the app's .deb");
    let server_deb = find(&dir, "hearth-signal_", ".deb").expect("the server's .deb");
    let rpm = find(&dir, "hearth-", ".rpm").expect("the app's .rpm");
    let version = env!("CARGO_PKG_VERSION");
    for p in [&app_deb, &server_deb, &rpm] {
        let size = std::fs::metadata(p).unwrap().len();
        println!("package {}: {:.1} MB", p.file_name().unwrap().to_string_lossy(), size as f64 / 1e6);
    }
    for deb in [&app_deb, &server_deb] {
        let v = sh(Command::new("dpkg-deb").arg("--field").arg(deb).arg("Version"));
        assert_eq!(v.trim(), version, "{} is version {version} (the workspace's)", deb.display());
    }
    let app_size = std::fs::metadata(&app_deb).unwrap().len();
    assert!(app_size < APP_DEB_LIMIT, "the app's .deb is {app_size} bytes, over {APP_DEB_LIMIT}");

    let _purge = Purge;
    for p in ["hearth", "hearth-signal"] {
        if installed(p) {
            sh(&mut apt(&["purge", p]));
        }
    }

    // ---- the app ----
    let control = sh(Command::new("dpkg-deb").arg("--field").arg(&app_deb));
    println!("{control}");
    for dep in ["libwebkit2gtk-4.1-0", "libgtk-3-0", "libasound2"] {
        assert!(control.contains(dep), "the app's .deb depends on {dep}:\n{control}");
    }
    assert!(control.contains("Package: hearth\n"), "the app's package is called hearth:\n{control}");
    sh(&mut apt(&["install", app_deb.to_str().unwrap()]));
    assert!(installed("hearth"), "dpkg says hearth is installed");
    let v = sh(Command::new("/usr/bin/hearth").arg("--version"));
    assert_eq!(v.trim(), format!("hearth {version}"), "hearth --version");
    let files = sh(Command::new("dpkg").args(["-L", "hearth"]));
    let desktop =
        files.lines().find(|l| l.ends_with(".desktop")).expect("the package installs a desktop entry");
    let entry = std::fs::read_to_string(desktop).unwrap();
    println!("{desktop}:\n{entry}");
    assert!(entry.contains("x-scheme-handler/hearth"), "the desktop entry opens hearth:// links:\n{entry}");
    let exec = entry.lines().find(|l| l.starts_with("Exec=")).unwrap();
    assert!(
        exec.starts_with("Exec=hearth") && exec.contains("%U"),
        "the launcher passes the link on: {exec}"
    );
    assert!(
        files.lines().any(|l| l.contains("/icons/hicolor/") && l.ends_with(".png")),
        "icons installed:\n{files}"
    );

    let desk = Desk::start("linux_packages");
    let config = desk.art.path("config");
    std::fs::create_dir_all(&config).unwrap();
    let mut cmd = Command::new("/usr/bin/hearth");
    cmd.args(["--self-test", "--timeout", "60"])
        .env("HEARTH_CONFIG_DIR", &config)
        .env("HEARTH_EMBEDDED_PORT", free_port().to_string());
    let (out, err, status) = run_bounded(&mut cmd, Duration::from_secs(90)).await;
    desk.art.write("self-test.stdout", &out);
    desk.art.write("self-test.stderr", &err);
    println!("{out}");
    let status = status
        .unwrap_or_else(|| panic!("the installed hearth --self-test did not end in 90 s\n{out}\n{err}"));
    assert!(
        status.success() && out.contains("self-test passed"),
        "installed hearth --self-test: {status}\n{out}\n{err}"
    );

    // ---- the server ----
    sh(&mut apt(&["install", server_deb.to_str().unwrap()]));
    assert!(installed("hearth-signal"), "dpkg says hearth-signal is installed");
    let v = sh(Command::new("/usr/bin/hearth-signal").arg("--version"));
    assert_eq!(v.trim(), format!("hearth-signal {version}"), "hearth-signal --version");
    let unit_path = Path::new("/usr/lib/systemd/system/hearth-signal.service");
    let unit = std::fs::read_to_string(unit_path).expect("the unit is installed");
    for hardening in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(hardening), "the unit has {hardening}");
    }
    let conf = std::fs::read_to_string("/etc/hearth/signal.toml").expect("the config is installed");
    assert!(conf.contains("listen = \"127.0.0.1:7878\""), "the packaged config listens on loopback");
    if Path::new("/usr/bin/systemd-analyze").exists() {
        // Checks the unit's syntax and that its ExecStart binary exists.
        let out =
            Command::new("systemd-analyze").args(["verify", unit_path.to_str().unwrap()]).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "systemd-analyze verify: {text}");
    }

    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let systemd = Path::new("/run/systemd/system").exists();
    let mut server = None;
    if systemd {
        // A drop-in moves it to a free port for the test; the packaged config stays as it is.
        std::fs::create_dir_all("/run/systemd/system/hearth-signal.service.d").unwrap();
        std::fs::write(
            "/run/systemd/system/hearth-signal.service.d/test.conf",
            format!("[Service]\nEnvironment=HEARTH_LISTEN={addr}\n"),
        )
        .unwrap();
        sh(Command::new("systemctl").arg("daemon-reload"));
        sh(Command::new("systemctl").args(["restart", "hearth-signal"]));
    } else {
        // No systemd here: the unit's own command line, as an unprivileged user as the unit's
        // DynamicUser would be, with the listen address moved by the environment (which
        // overrides the file).
        let argv = exec_start(&unit);
        println!("systemd is not running: running ExecStart as nobody: {}", argv.join(" "));
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
            .args(&argv)
            .env("HEARTH_LISTEN", &addr)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(desk.art.path("hearth-signal.log")).unwrap());
        server = Some(KillOnDrop(c.spawn().expect("start hearth-signal")));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match http_get(&addr, "/healthz").await {
            Some((200, body)) => {
                assert_eq!(body.trim(), "ok");
                break;
            }
            other => {
                if let Some(s) = server.as_mut()
                    && let Ok(Some(st)) = s.0.try_wait()
                {
                    let log = std::fs::read_to_string(desk.art.path("hearth-signal.log")).unwrap_or_default();
                    panic!("the installed hearth-signal exited ({st}) before answering /healthz:\n{log}");
                }
                assert!(Instant::now() < deadline, "/healthz never answered 200 (last: {other:?})");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    let url = format!("ws://{addr}");
    let args = ["--seconds", "8", "--expect-peers", "1"];
    let a = Peer::start(&desk.art, &url, "smoke", "runner-1", &args);
    let b = Peer::start(&desk.art, &url, "smoke", "runner-2", &args);
    let (ra, rb) = (a.report(Duration::from_secs(60)).await, b.report(Duration::from_secs(60)).await);
    for r in [&ra, &rb] {
        assert_eq!(r["ok"], true, "the smoke call against the installed server passed: {r}");
    }

    let (status, metrics) = http_get(&addr, "/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200);
    assert!(metrics.contains("hearth_joins_total{kind=\"fresh\"} 2"), "two fresh joins counted:\n{metrics}");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("/usr/share/doc/hearth-signal/grafana-dashboard.json")
            .expect("the dashboard is installed"),
    )
    .expect("the dashboard is JSON");
    // Families with labels appear once something was counted; these stay empty in a clean call.
    let counted_on_trouble = [
        "hearth_errors_total",
        "hearth_auth_rejected_total",
        "hearth_upgrades_refused_total",
        "hearth_call_failures_total",
        "hearth_turn_relayed_bytes_total",
        "hearth_turn_refused_requests_total",
        "hearth_turn_dropped_packets_total",
        "hearth_turn_client_connections",
    ];
    let names = dashboard_metrics(&dashboard);
    assert!(names.len() >= 15, "the dashboard plots the server's metrics: {names:?}");
    for name in names {
        let base = name.trim_end_matches("_bucket");
        // A sample of exactly this name (`name{labels} v` or `name v`), or its family's TYPE line.
        let exported = metrics.lines().any(|l| {
            l.strip_prefix(name.as_str()).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                || l.starts_with(&format!("# TYPE {base} "))
        });
        assert!(
            exported || counted_on_trouble.contains(&name.as_str()),
            "the dashboard's {name} is in /metrics:\n{metrics}"
        );
    }

    if systemd {
        sh(Command::new("systemctl").args(["stop", "hearth-signal"]));
        let _ = std::fs::remove_dir_all("/run/systemd/system/hearth-signal.service.d");
    } else if let Some(mut s) = server {
        // SIGTERM, as systemd stops it: drains and exits 0.
        let _ = Command::new("kill").args(["-TERM", &s.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        let st = loop {
            if let Some(st) = s.0.try_wait().unwrap() {
                break st;
            }
            assert!(Instant::now() < deadline, "hearth-signal exits within 10 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(st.success(), "hearth-signal exits 0 on SIGTERM ({st})");
    }

    // ---- removal ----
    sh(&mut apt(&["purge", "hearth", "hearth-signal"]));
    for p in ["hearth", "hearth-signal"] {
        assert!(!installed(p), "{p} is gone");
    }
    for f in [
        "/usr/bin/hearth",
        "/usr/bin/hearth-signal",
        "/usr/lib/systemd/system/hearth-signal.service",
        "/etc/hearth",
        desktop,
    ] {
        assert!(!Path::new(f).exists(), "{f} is removed with the packages");
    }
}

/// A child process killed if the test ends before it does.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn euid() -> u32 {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("id -u prints a number")
}
