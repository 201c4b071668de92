//! Test harness: the real pieces, started and torn down by the test itself.
//!
//! - [`Server`]: `hearth-signal` in-process on `127.0.0.1:0`.
//! - [`PulseAudio`]: a private PulseAudio daemon with a null sink (`vsink`), its monitor as the
//!   default source, so cpal has a clocked "sound card" on a machine without one.
//! - [`Xvfb`]: a private X display to capture from.
//!
//! Each sets process environment variables (`XDG_RUNTIME_DIR`, `DISPLAY`); run such tests one
//! per process (cargo-nextest does).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A signaling server on loopback, stopped on drop.
#[derive(Debug)]
pub struct Server {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), hearth_signal::ServerError>>>,
}

impl Server {
    /// Start with `config` (call from within a tokio runtime).
    pub async fn start(config: hearth_signal::Config) -> anyhow::Result<Server> {
        Self::start_at("127.0.0.1:0", config).await
    }

    /// Start on a given address (e.g. the address of a server that was just stopped).
    pub async fn start_at(addr: &str, config: hearth_signal::Config) -> anyhow::Result<Server> {
        let listener = hearth_signal::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(hearth_signal::run(listener, config, async {
            let _ = stopped.await;
        }));
        Ok(Server { addr, stop: Some(stop), task: Some(task) })
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stop and wait for the server to drain.
    pub async fn shutdown(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn tool_exists(name: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn temp_dir(prefix: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A private PulseAudio daemon with a null sink `vsink` (default sink) whose monitor
/// `vsink.monitor` is the default source. Stopped on drop.
#[derive(Debug)]
pub struct PulseAudio {
    runtime_dir: PathBuf,
}

impl PulseAudio {
    /// Start it and point this process at it (sets `XDG_RUNTIME_DIR`).
    pub fn start() -> anyhow::Result<PulseAudio> {
        anyhow::ensure!(
            tool_exists("pulseaudio") && tool_exists("pactl"),
            "pulseaudio/pactl not installed (scripts/setup.sh installs them)"
        );
        let runtime_dir = temp_dir("hearth-pulse")?;
        let status = Command::new("pulseaudio")
            .env("XDG_RUNTIME_DIR", &runtime_dir)
            .env("HOME", &runtime_dir)
            .args([
                "-n",
                "--daemonize=yes",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-L",
                // No cookie: the daemon and this process need not share a HOME.
                "module-native-protocol-unix auth-anonymous=1",
                "-L",
                "module-null-sink sink_name=vsink rate=48000",
                "-L",
                "module-always-sink",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        anyhow::ensure!(status.success(), "pulseaudio did not start");
        let pa = PulseAudio { runtime_dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = pa.pactl(&["set-default-sink", "vsink"]).is_ok()
                && pa.pactl(&["set-default-source", "vsink.monitor"]).is_ok();
            if ok {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "pulseaudio did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        // The pure-Rust client (cpal's `pulseaudio` backend) sends the cookie it finds in
        // $PULSE_COOKIE or ~/.config/pulse/cookie, and an empty one when there is none, which the
        // daemon answers by hanging up (seen on a fresh machine as "failed to fill whole buffer").
        // The daemon takes anonymous clients, so any 256 bytes will do.
        let cookie = pa.runtime_dir.join("cookie");
        std::fs::write(&cookie, [0x48u8; 256])?;
        // SAFETY-free: tests run one per process (nextest), so changing the environment of this
        // process affects only this test.
        set_env("XDG_RUNTIME_DIR", &pa.runtime_dir);
        set_env("PULSE_COOKIE", &cookie);
        Ok(pa)
    }

    pub fn pactl(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("pactl")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("HOME", &self.runtime_dir)
            .args(args)
            .output()?;
        anyhow::ensure!(out.status.success(), "pactl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for PulseAudio {
    fn drop(&mut self) {
        let _ = Command::new("pulseaudio")
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .env("HOME", &self.runtime_dir)
            .arg("--kill")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.runtime_dir);
    }
}

/// Environment changes are process-wide; each test that makes them runs in its own process.
fn set_env(key: &str, value: impl AsRef<std::ffi::OsStr>) {
    // `set_var` is unsafe in edition 2024 because other threads may read the environment; the
    // harness sets it before starting any thread that reads these variables.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(key, value);
    }
}

/// A private X server (Xvfb), stopped on drop. Started with `-noreset` so it survives its
/// clients disconnecting.
#[derive(Debug)]
pub struct Xvfb {
    child: Child,
    pub display: String,
    pub width: u32,
    pub height: u32,
}

impl Xvfb {
    /// Start on a free display and point this process at it (sets `DISPLAY`).
    pub fn start(width: u32, height: u32) -> anyhow::Result<Xvfb> {
        anyhow::ensure!(tool_exists("Xvfb"), "Xvfb not installed (scripts/setup.sh installs it)");
        for n in 90..140 {
            let lock = format!("/tmp/.X{n}-lock");
            let socket = format!("/tmp/.X11-unix/X{n}");
            // A lock whose server is gone (killed with SIGKILL, or a crashed run) is stale:
            // clear it, or the displays run out after enough runs on one machine.
            if lock_is_stale(&lock) {
                let _ = std::fs::remove_file(&lock);
                let _ = std::fs::remove_file(&socket);
            }
            if std::path::Path::new(&socket).exists() || std::path::Path::new(&lock).exists() {
                continue;
            }
            let display = format!(":{n}");
            let mut child = Command::new("Xvfb")
                .args([
                    &display,
                    "-screen",
                    "0",
                    &format!("{width}x{height}x24"),
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(status) = child.try_wait()? {
                    anyhow::bail!("Xvfb {display} exited: {status}");
                }
                if std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
                    set_env("DISPLAY", &display);
                    return Ok(Xvfb { child, display, width, height });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
        }
        anyhow::bail!("no free X display found")
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SIGTERM lets Xvfb remove its lock file and socket; SIGKILL after a grace period.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether an X lock file names a process that no longer exists.
fn lock_is_stale(lock: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(lock) else { return false };
    match text.trim().parse::<u32>() {
        Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}

/// A TCP relay in front of a server, whose connections the test can cut (to simulate a network
/// drop on one side without stopping the server).
#[derive(Debug)]
pub struct CuttableProxy {
    pub addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

/// Copy `from` to `to` until either side ends; while `stalled`, what is read is thrown away
/// (the connection looks alive to both ends, but nothing gets through).
async fn relay_one_way(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl CuttableProxy {
    /// Relay connections made to [`CuttableProxy::addr`] to `target`.
    pub async fn start(target: std::net::SocketAddr) -> anyhow::Result<CuttableProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = tokio::sync::watch::channel(0u64);
        let blocked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refuse = blocked.clone();
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stall = stalled.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if refuse.load(std::sync::atomic::Ordering::Relaxed) {
                    continue; // dropped at once: the network is "down"
                }
                let mut cut_rx = cut_rx.clone();
                let generation = *cut_rx.borrow_and_update();
                let stall = stall.clone();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let (in_r, in_w) = inbound.into_split();
                    let (out_r, out_w) = outbound.into_split();
                    tokio::select! {
                        () = relay_one_way(in_r, out_w, stall.clone()) => {}
                        () = relay_one_way(out_r, in_w, stall) => {}
                        _ = cut_rx.wait_for(|g| *g != generation) => {}
                    }
                    // Dropping both sockets ends the connection abruptly (no close frames).
                });
            }
        });
        Ok(CuttableProxy { addr, cut, blocked, stalled, task })
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Drop every connection relayed so far; new ones are relayed again.
    pub fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }

    /// While stalled, open connections stay open but carry nothing either way: a dead network
    /// that neither end has noticed yet (what is written "succeeds" and is lost).
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, std::sync::atomic::Ordering::Relaxed);
    }

    /// While blocked, new connections are dropped as soon as they are accepted.
    pub fn set_blocked(&self, blocked: bool) {
        self.blocked.store(blocked, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Poll `f` every 20 ms until it returns `Some`, or fail after `timeout`.
pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut f: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        anyhow::ensure!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
