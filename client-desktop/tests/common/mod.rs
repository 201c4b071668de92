//! Harness of the UI tests: the real app in a private X display, driven over WebDriver
//! (tauri-driver → Debian's WebKitWebDriver), against a real `hearth-signal` and real
//! `hearth-call` peers (child processes whose JSON reports say what they saw of the app).
//!
//! Every wait names what it waits for; a wait that times out saves a screenshot and the page's
//! HTML next to the test's other artifacts (`target/ui-artifacts/<test>/`) before failing.

#![allow(dead_code, clippy::unwrap_used)]

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The app under test.
pub const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");
/// tauri-driver (`cargo install tauri-driver`, scripts/setup.sh) and the native driver it runs.
pub const TAURI_DRIVER_DEFAULT: &str = "/root/.cargo/bin/tauri-driver";
pub const NATIVE_DRIVER: &str = "/usr/bin/WebKitWebDriver";

/// Every control of the call's bar.
pub const CONTROLS: [&str; 9] =
    ["btn-mic", "btn-camera", "btn-screen", "btn-react", "btn-hand", "btn-chat", "btn-people", "btn-more", "btn-leave"];

// ---------------------------------------------------------------------------------------------
// Paths, ports, processes

/// `target/<profile>/`, where cargo put the app (and `hearth-call`, built by scripts/test.sh).
fn bin_dir() -> PathBuf {
    Path::new(HEARTH).parent().expect("the app binary has a directory").to_path_buf()
}

/// The `hearth-call` binary: `$HEARTH_CALL_BIN`, else next to the app binary
/// (`target/debug/hearth-call`). A binary of another package is not built for this test by
/// cargo: scripts/test.sh runs `cargo build -p hearth-call` first; when it is missing, it is
/// built here.
pub fn hearth_call_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("HEARTH_CALL_BIN") {
        return PathBuf::from(p);
    }
    let path = bin_dir().join("hearth-call");
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        eprintln!("{} missing: running cargo build -p hearth-call", path.display());
        let status = Command::new(cargo)
            .args(["build", "-p", "hearth-call"])
            .current_dir(root)
            .status()
            .expect("run cargo build -p hearth-call");
        assert!(status.success(), "cargo build -p hearth-call failed");
    }
    assert!(path.exists(), "{} not found (build it: cargo build -p hearth-call)", path.display());
    path
}

fn tauri_driver_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TAURI_DRIVER") {
        return PathBuf::from(p);
    }
    if Path::new(TAURI_DRIVER_DEFAULT).exists() {
        return PathBuf::from(TAURI_DRIVER_DEFAULT);
    }
    PathBuf::from("tauri-driver")
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

#[allow(unsafe_code)]
fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects; the pids are of processes this test started.
    unsafe {
        libc::kill(pid, sig);
    }
}

fn alive(pid: i32) -> bool {
    // A zombie still has a /proc entry: read its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// All processes below `root` (children, grandchildren, ...), from /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut parent = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            let Some((_, rest)) = stat.rsplit_once(')') else { continue };
            if let Some(pp) = rest.split_whitespace().nth(1).and_then(|x| x.parse::<i32>().ok()) {
                parent.push((pid, pp));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for &(c, pp) in &parent {
            if pp == p && !out.contains(&c) {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// Ends `child` (started in a process group of its own) and everything it started, by pid:
/// SIGTERM, then SIGKILL for what is still there after `grace`.
fn end_process_tree(child: &mut Child, grace: Duration) {
    let pid = child.id() as i32;
    let exited = matches!(child.try_wait(), Ok(Some(_)));
    let mut tree = if exited { Vec::new() } else { descendants(pid) };
    if !exited {
        tree.push(pid);
    }
    for &p in &tree {
        signal(p, libc::SIGTERM);
    }
    signal(-pid, libc::SIGTERM); // its process group
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let _ = child.try_wait();
        if tree.iter().all(|&p| !alive(p)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for &p in &tree {
        if alive(p) {
            signal(p, libc::SIGKILL);
        }
    }
    signal(-pid, libc::SIGKILL);
    let _ = child.wait();
}

/// Copies a child's stream into a string, on a thread (so a full pipe never blocks it).
fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

// ---------------------------------------------------------------------------------------------
// Artifacts

/// `target/ui-artifacts/<test>/`: screenshots of each state, logs, failure dumps.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub dir: PathBuf,
}

impl Artifacts {
    pub fn new(test: &str) -> Artifacts {
        let dir = bin_dir().parent().unwrap().join("ui-artifacts").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the artifacts directory");
        println!("artifacts: {}", dir.display());
        eprintln!("artifacts: {}", dir.display());
        Artifacts { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) {
        let _ = std::fs::write(self.path(name), bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// The signaling server's own figures

/// `hearth_<name>` from the server's /metrics (e.g. `peers`: peers in rooms now).
pub async fn server_metric(addr: std::net::SocketAddr, name: &str) -> Option<f64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr)).await.ok()?.ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").await.ok()?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut body)).await.ok()?.ok()?;
    let key = format!("hearth_{name} ");
    body.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok())
}

/// Waits until the server counts `n` peers in rooms (so a peer started as a process is in).
pub async fn wait_server_peers(addr: std::net::SocketAddr, n: f64, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = server_metric(addr, "peers").await;
        if v.is_some_and(|v| v >= n) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out after 30 s waiting for {what} (server counts {v:?} peers)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// hearth-call peers

/// A `hearth-call join --json` peer, a child process.
#[derive(Debug)]
pub struct Peer {
    pub name: String,
    child: Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
    log: PathBuf,
}

impl Peer {
    /// `hearth-call join --server URL --room ROOM --name NAME --synthetic --width 320
    /// --height 180 --fps 15 --json` plus `extra` (e.g. `--expect-peers 2 --seconds 15 --at
    /// 3:mute`). Small video: these tests check behaviour with debug builds of the app and two
    /// or three peers on two cores; speed is the benchmark's (scripts/bench-desktop.sh, release).
    pub fn start(art: &Artifacts, server: &str, room: &str, name: &str, extra: &[&str]) -> Peer {
        let mut cmd = Command::new(hearth_call_bin());
        cmd.args(["join", "--server", server, "--room", room, "--name", name, "--synthetic"])
            .args(["--width", "320", "--height", "180", "--fps", "15", "--json"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        eprintln!("peer {name:?}: hearth-call join ... {}", extra.join(" "));
        let mut child = cmd.spawn().expect("start hearth-call");
        let stdout = child.stdout.take().map(collect);
        let stderr = child.stderr.take().map(collect);
        let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
        let log = art.path(&format!("peer-{safe}.log"));
        Peer { name: name.to_string(), child, stdout, stderr, log }
    }

    /// Asks it to leave and report (SIGTERM; `--seconds 0` peers wait for it).
    pub fn terminate(&self) {
        signal(self.child.id() as i32, libc::SIGTERM);
    }

    /// Waits for it to exit (at most `timeout`) and returns its JSON report; its output is
    /// kept in the artifacts.
    pub async fn report(mut self, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("wait for hearth-call") {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let (out, err) = self.output();
                panic!(
                    "timed out after {timeout:?} waiting for peer {:?} to end and report\nstdout: {out}\nstderr: {err}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (out, err) = self.output();
        let start = out.find('{').unwrap_or_else(|| {
            panic!("peer {:?} ({status}) printed no JSON report\nstdout: {out}\nstderr: {err}", self.name)
        });
        let report: Value = serde_json::Deserializer::from_str(&out[start..])
            .into_iter::<Value>()
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("peer {:?}: unreadable report\nstdout: {out}\nstderr: {err}", self.name));
        eprintln!(
            "peer {:?} exited {status}: ok={} ended_by={} problems={} notes={}",
            self.name, report["ok"], report["ended_by"], report["problems"], report["notes"]
        );
        report
    }

    fn output(&mut self) -> (String, String) {
        let out = self.stdout.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let err = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        let _ = std::fs::write(&self.log, format!("== stdout\n{out}\n== stderr\n{err}\n"));
        (out, err)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.stdout.is_some() {
            let _ = self.output();
        }
    }
}

/// In a peer's report: what it saw of the peer named `name`.
pub fn seen_peer<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["seen_peers"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("{} never saw a peer named {name:?}: {}", report["name"], report["seen_peers"]))
}

/// In a peer's report: the chat messages it received with this text.
pub fn chat_with<'a>(report: &'a Value, text: &str) -> Vec<&'a Value> {
    report["chat_received"].as_array().map(|a| a.iter().filter(|c| c["text"] == text).collect()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The app

/// How to launch the app.
#[derive(Debug, Clone)]
pub struct Launch {
    /// Window size (`HEARTH_WINDOW_SIZE`).
    pub width: u32,
    pub height: u32,
    /// The pre-join form, written to `$HEARTH_CONFIG_DIR/settings.json` before launch.
    pub name: String,
    pub room: String,
    pub server: String,
    pub label: String,
}

impl Launch {
    pub fn new(label: &str, name: &str, room: &str, server: &str) -> Launch {
        Launch {
            width: 1280,
            height: 800,
            name: name.into(),
            room: room.into(),
            server: server.into(),
            label: label.into(),
        }
    }

    pub fn size(mut self, width: u32, height: u32) -> Launch {
        self.width = width;
        self.height = height;
        self
    }
}

/// One running app, driven over WebDriver. Closed (session deleted, tauri-driver and
/// everything it started ended by pid) by [`App::close`] or on drop.
#[derive(Debug)]
pub struct App {
    pub wd: Client,
    driver: Option<Child>,
    pub art: Artifacts,
    pub config_dir: PathBuf,
    pub embedded_port: u16,
    pub label: String,
}

static SHOTS: AtomicU32 = AtomicU32::new(0);

impl App {
    /// Starts tauri-driver on free ports (env: the private display, a fresh config dir with the
    /// settings, a free embedded-server port, the window size), opens a session on the app,
    /// and waits for the pre-join form, filled in and ready.
    pub async fn launch(art: &Artifacts, l: Launch) -> App {
        let config_dir = art.path(&format!("config-{}", l.label));
        let _ = std::fs::remove_dir_all(&config_dir);
        std::fs::create_dir_all(&config_dir).unwrap();
        let settings = json!({
            "name": l.name, "room": l.room, "server": l.server,
            "camera": "synthetic", "microphone": "synthetic", "speaker": "synthetic",
            "camera_on": true, "mic_on": true,
        });
        std::fs::write(config_dir.join("settings.json"), serde_json::to_vec_pretty(&settings).unwrap()).unwrap();

        let port = free_port();
        let native_port = free_port();
        let embedded_port = free_port();
        let log = std::fs::File::create(art.path(&format!("app-{}.log", l.label))).unwrap();
        let mut cmd = Command::new(tauri_driver_bin());
        cmd.args(["--port", &port.to_string(), "--native-port", &native_port.to_string()])
            .args(["--native-driver", NATIVE_DRIVER])
            .env("HEARTH_CONFIG_DIR", &config_dir)
            .env("HEARTH_EMBEDDED_PORT", embedded_port.to_string())
            .env("HEARTH_WINDOW_SIZE", format!("{}x{}", l.width, l.height))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Ok(d) = std::env::var("DISPLAY") {
            cmd.env("DISPLAY", d);
        }
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut driver = cmd.spawn().expect("start tauri-driver (scripts/setup.sh installs it)");

        // tauri-driver listens before WebKitWebDriver (its native driver) does; a session asked
        // for in between fails with "client error (Connect)". Wait for both.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", native_port)).is_err()
        {
            if let Ok(Some(s)) = driver.try_wait() {
                panic!("tauri-driver exited ({s}); see {}", art.path(&format!("app-{}.log", l.label)).display());
            }
            assert!(Instant::now() < deadline, "timed out after 20 s waiting for tauri-driver to listen on {port} and WebKitWebDriver on {native_port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Capabilities: only the application (tauri-driver maps it for WebKitWebDriver).
        let mut caps = serde_json::Map::new();
        caps.insert("tauri:options".into(), json!({ "application": HEARTH }));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let t0 = Instant::now();
        let wd = tokio::time::timeout(
            Duration::from_secs(60),
            ClientBuilder::new(connector).capabilities(caps).connect(&format!("http://127.0.0.1:{port}")),
        )
        .await;
        let wd = match wd {
            Ok(Ok(wd)) => wd,
            other => {
                end_process_tree(&mut driver, Duration::from_secs(2));
                panic!(
                    "could not open a WebDriver session on the app ({}); see {}",
                    match other {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out after 60 s".into(),
                    },
                    art.path(&format!("app-{}.log", l.label)).display()
                );
            }
        };
        eprintln!("app {:?} ({}x{}): session open after {} ms", l.label, l.width, l.height, t0.elapsed().as_millis());
        let app = App {
            wd,
            driver: Some(driver),
            art: art.clone(),
            config_dir,
            embedded_port,
            label: l.label.clone(),
        };
        // The form is loaded with the saved settings.
        let name = l.name.clone();
        app.until("the pre-join form filled in from settings.json", Duration::from_secs(30), async || {
            let v = app
                .js(r#"const q = (t) => document.querySelector(`[data-testid="${t}"]`);
                  const j = q('join'), n = q('name');
                  return { join: !!j && !j.disabled, name: n ? n.value : null };"#)
                .await?;
            Ok((v["join"] == true && v["name"] == name.as_str()).then_some(()))
        })
        .await;
        eprintln!("app {:?}: pre-join form ready after {} ms", l.label, t0.elapsed().as_millis());
        app
    }

    /// Runs `script` (a function body; `arguments` available) in the page.
    pub async fn js(&self, script: &str) -> anyhow::Result<Value> {
        self.js_with(script, vec![]).await
    }

    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        let v = tokio::time::timeout(Duration::from_secs(15), self.wd.execute(script, args))
            .await
            .map_err(|_| anyhow::anyhow!("a script in the page did not return in 15 s"))??;
        Ok(v)
    }

    pub async fn find(&self, testid: &str) -> anyhow::Result<fantoccini::elements::Element> {
        let sel = format!("[data-testid=\"{testid}\"]");
        let e = tokio::time::timeout(Duration::from_secs(15), self.wd.find(Locator::Css(&sel)))
            .await
            .map_err(|_| anyhow::anyhow!("finding {sel} did not return in 15 s"))??;
        Ok(e)
    }

    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<fantoccini::elements::Element>> {
        let e = tokio::time::timeout(Duration::from_secs(15), self.wd.find_all(Locator::Css(css)))
            .await
            .map_err(|_| anyhow::anyhow!("finding {css} did not return in 15 s"))??;
        Ok(e)
    }

    /// Clicks the element with this test id (a real WebDriver click), waiting up to 15 s for
    /// it to exist.
    pub async fn click(&self, testid: &str) {
        let e = self
            .until(&format!("[data-testid={testid}] to click"), Duration::from_secs(15), async || {
                Ok(Some(self.find(testid).await?))
            })
            .await;
        if let Err(err) = e.click().await {
            self.dump(&format!("click-{testid}")).await;
            panic!("clicking [data-testid={testid}] failed: {err}");
        }
    }

    /// Types into the element with this test id (WebDriver Element Send Keys).
    pub async fn type_into(&self, testid: &str, text: &str) {
        let e = self
            .until(&format!("[data-testid={testid}] to type into"), Duration::from_secs(15), async || {
                Ok(Some(self.find(testid).await?))
            })
            .await;
        e.send_keys(text).await.unwrap_or_else(|err| panic!("typing into [data-testid={testid}] failed: {err}"));
    }

    /// Replaces the text of a form field.
    pub async fn set_field(&self, testid: &str, text: &str) {
        let e = self.find(testid).await.unwrap_or_else(|err| panic!("no [data-testid={testid}]: {err}"));
        e.clear().await.unwrap_or_else(|err| panic!("clearing [data-testid={testid}] failed: {err}"));
        if !text.is_empty() {
            e.send_keys(text).await.unwrap_or_else(|err| panic!("typing into [data-testid={testid}] failed: {err}"));
        }
        let v = e.prop("value").await.ok().flatten().unwrap_or_default();
        assert_eq!(v, text, "[data-testid={testid}] holds what was typed");
    }

    /// Picks the option with this value in a `<select>` (WebDriver click on the option; if
    /// WebKitWebDriver does not change the value that way, the value is set and `change`
    /// dispatched from script, and a note says so).
    pub async fn select(&self, testid: &str, value: &str) {
        let e = self.find(testid).await.unwrap_or_else(|err| panic!("no [data-testid={testid}]: {err}"));
        let clicked = e.select_by_value(value).await;
        let now = e.prop("value").await.ok().flatten();
        if now.as_deref() != Some(value) {
            eprintln!("note: clicking option {value:?} of {testid} left it at {now:?} ({clicked:?}); setting it from script");
            self.js_with(
                "const s = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);
                 s.value = arguments[1];
                 s.dispatchEvent(new Event('change', { bubbles: true }));",
                vec![json!(testid), json!(value)],
            )
            .await
            .unwrap();
        }
        self.until(&format!("{testid} to hold {value:?}"), Duration::from_secs(5), async || {
            Ok((self.find(testid).await?.prop("value").await?.as_deref() == Some(value)).then_some(()))
        })
        .await;
    }

    /// The root's `data-phase`.
    pub async fn phase(&self) -> String {
        self.js("return document.documentElement.getAttribute('data-phase')")
            .await
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    /// Polls `f` every 200 ms until it returns `Some`; after `timeout`, saves a screenshot and
    /// the page's HTML and fails naming `what` (and the last error `f` returned, if any).
    pub async fn until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl AsyncFnMut() -> anyhow::Result<Option<T>>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        let mut last_err = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(20), f()).await {
                Ok(Ok(Some(v))) => return v,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => last_err = Some(e.to_string()),
                Err(_) => last_err = Some("a check did not return in 20 s".into()),
            }
            if Instant::now() >= deadline {
                let phase = self.phase().await;
                let dump = self.dump(&format!("timeout-{}", slug(what))).await;
                panic!(
                    "timed out after {timeout:?} waiting for {what} (page phase {phase:?}{}); screenshot and HTML: {dump}",
                    last_err.map(|e| format!(", last error: {e}")).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the page to have painted (two animation frames, then ~1 s: WebKitGTK under
    /// Xvfb paints later than JavaScript runs) and saves a screenshot as `<state>.png`.
    pub async fn shot(&self, state: &str) -> PathBuf {
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            self.wd.execute_async(
                "const done = arguments[arguments.length - 1];
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));
                 setTimeout(() => done(false), 1000);",
                vec![],
            ),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let path = self.art.path(&format!("{}-{state}.png", self.label));
        match tokio::time::timeout(Duration::from_secs(15), self.wd.screenshot()).await {
            Ok(Ok(png)) => {
                std::fs::write(&path, png).unwrap();
                SHOTS.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => eprintln!("screenshot {state} failed: {e}"),
            Err(_) => eprintln!("screenshot {state} timed out"),
        }
        path
    }

    /// A screenshot and the page's HTML, for a failure; returns where they are.
    pub async fn dump(&self, name: &str) -> String {
        let base = format!("{}-{name}", self.label);
        if let Ok(Ok(png)) = tokio::time::timeout(Duration::from_secs(10), self.wd.screenshot()).await {
            self.art.write(&format!("{base}.png"), png);
        }
        if let Ok(Ok(html)) = tokio::time::timeout(Duration::from_secs(10), self.wd.source()).await {
            self.art.write(&format!("{base}.html"), html);
        }
        self.art.path(&base).display().to_string() + ".{png,html}"
    }

    /// Clicks Join and waits for the call screen.
    pub async fn join_call(&self) {
        self.click("join").await;
        self.until("the call screen (data-phase in_call, [data-testid=call])", Duration::from_secs(45), async || {
            let v = self
                .js("return [document.documentElement.getAttribute('data-phase'), !!document.querySelector('[data-testid=call]')]")
                .await?;
            Ok((v[0] == "in_call" && v[1] == true).then_some(()))
        })
        .await;
    }

    /// Every tile on screen: `{tile, peer, kind, link, muted, hand, name, muted_icon}`.
    pub async fn tiles(&self) -> anyhow::Result<Vec<Value>> {
        let v = self
            .js(r#"return [...document.querySelectorAll('[data-testid="tile"]')].map((t) => ({
                tile: t.getAttribute('data-tile'), peer: t.getAttribute('data-peer-id'),
                kind: t.getAttribute('data-kind'), link: t.getAttribute('data-link'),
                muted: t.getAttribute('data-muted'), hand: t.getAttribute('data-hand'),
                name: (t.querySelector('[data-testid="tile-name"]') || {}).textContent ?? null,
                muted_icon: !!t.querySelector('[data-testid="tile-muted"]'),
            }));"#)
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Waits for the camera tile of the peer named `name`, its link connected; returns the tile.
    pub async fn wait_peer_tile(&self, name: &str, timeout: Duration) -> Value {
        self.until(&format!("a connected camera tile of peer {name:?}"), timeout, async || {
            let tiles = self.tiles().await?;
            Ok(tiles.into_iter().find(|t| {
                t["name"] == name && t["kind"] == "camera" && t["link"] == "connected" && t["peer"] != "self"
            }))
        })
        .await
    }

    /// What the page painted for this tile (`window.__hearthPaint()`).
    pub async fn paint(&self, tile: &str) -> anyhow::Result<Option<Value>> {
        let v = self.js("return window.__hearthPaint ? window.__hearthPaint() : null").await?;
        anyhow::ensure!(!v.is_null(), "window.__hearthPaint is missing");
        Ok(v.as_array().and_then(|a| a.iter().find(|t| t["tile"] == tile).cloned()))
    }

    /// Checks that a tile's video moves: frames painted rise, the page saw >= 3 distinct
    /// pictures, and two screenshots of the tile taken 1 s apart differ.
    pub async fn assert_tile_moves(&self, tile: &str, label: &str) {
        let first = self
            .until(&format!("tile {tile} ({label}) to paint >= 10 frames and >= 3 distinct pictures"), Duration::from_secs(30), async || {
                Ok(self.paint(tile).await?.filter(|p| {
                    p["frames"].as_u64().unwrap_or(0) >= 10 && p["distinct_pixel_hashes"].as_u64().unwrap_or(0) >= 3
                }))
            })
            .await;
        // WebKitWebDriver's element screenshots come back black for WebGL canvases, so the
        // whole window is captured and the tile's rectangle cut out of it.
        let el = self.find_tile(tile).await;
        let (x, y, w, h) = el.rectangle().await.unwrap_or_else(|e| panic!("rectangle of tile {tile}: {e}"));
        let shot = async || {
            let png = self.wd.screenshot().await.unwrap_or_else(|e| panic!("screenshot for tile {tile}: {e}"));
            self.art.write(&format!("{}-tile-{label}-window.png", self.label), &png);
            crop_rgb(&png, x, y, w, h)
        };
        let a = shot().await;
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let b = shot().await;
        assert!(distinct_colours(&a) >= 8, "tile {tile} ({label}): the screenshot of the tile is blank");
        let second = self.paint(tile).await.unwrap().unwrap_or_else(|| panic!("tile {tile} no longer painted"));
        let (f1, f2) = (first["frames"].as_u64().unwrap(), second["frames"].as_u64().unwrap());
        eprintln!(
            "tile {tile} ({label}): {f1} -> {f2} frames, {} distinct pictures, renderer {}",
            second["distinct_pixel_hashes"], second["renderer"]
        );
        assert!(f2 >= f1 + 5, "tile {tile} ({label}): frames painted rise over 1.2 s ({f1} -> {f2})");
        assert!(a != b, "tile {tile} ({label}): its pixels change over 1.2 s (two screenshots of the tile are identical)");
    }

    pub async fn find_tile(&self, tile: &str) -> fantoccini::elements::Element {
        let sel = format!("[data-testid=\"tile\"][data-tile=\"{tile}\"]");
        self.find_all(&sel)
            .await
            .ok()
            .and_then(|mut v| (!v.is_empty()).then(|| v.remove(0)))
            .unwrap_or_else(|| panic!("no tile {tile} on screen"))
    }

    /// Chat messages on screen: `{from, private, mine, text}`.
    pub async fn chat_messages(&self) -> anyhow::Result<Vec<Value>> {
        let v = self
            .js(r#"return [...document.querySelectorAll('[data-testid="chat-message"]')].map((m) => ({
                from: m.getAttribute('data-from'), private: m.getAttribute('data-private'),
                mine: m.getAttribute('data-mine'),
                text: (m.querySelector('.message-text') || m).textContent,
            }));"#)
            .await?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    /// Waits for a chat message on screen whose text contains `text`.
    pub async fn wait_chat(&self, text: &str, timeout: Duration) -> Value {
        self.until(&format!("a chat-message containing {text:?}"), timeout, async || {
            Ok(self.chat_messages().await?.into_iter().find(|m| m["text"].as_str().is_some_and(|t| t.contains(text))))
        })
        .await
    }

    /// Sends a chat message from the open chat panel: types it, clicks Send, waits for it.
    pub async fn send_chat(&self, text: &str) -> Value {
        self.type_into("chat-input", text).await;
        self.until("the Send button to be enabled", Duration::from_secs(5), async || {
            Ok(self.find("chat-send").await?.is_enabled().await?.then_some(()))
        })
        .await;
        self.click("chat-send").await;
        self.until(&format!("our own message {text:?} in the thread"), Duration::from_secs(15), async || {
            Ok(self.chat_messages().await?.into_iter().find(|m| m["mine"] == "true" && m["text"] == text))
        })
        .await
    }

    /// `data-testid=error` cards on screen: `(kind, title)`.
    pub async fn errors(&self) -> anyhow::Result<Vec<(String, String)>> {
        let v = self
            .js(r#"return [...document.querySelectorAll('[data-testid="error"]')].map((e) =>
                [e.getAttribute('data-kind'), (e.querySelector('.error-title') || e).textContent]);"#)
            .await?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|p| (p[0].as_str().unwrap_or("").to_string(), p[1].as_str().unwrap_or("").to_string()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Geometry of each control against the viewport: fails naming every control that is
    /// missing, not displayed, outside the window, or covered by something else.
    pub async fn assert_controls_on_screen(&self, state: &str) {
        let mut problems = Vec::new();
        for id in CONTROLS {
            match self.find(id).await {
                Ok(e) => {
                    if !e.is_displayed().await.unwrap_or(false) {
                        problems.push(format!("{id}: not displayed"));
                    }
                }
                Err(e) => problems.push(format!("{id}: missing ({e})")),
            }
        }
        let geo = self
            .js_with(
                r#"const ids = arguments[0];
                   const vw = window.innerWidth, vh = window.innerHeight;
                   return { vw, vh, controls: ids.map((id) => {
                     const e = document.querySelector(`[data-testid="${id}"]`);
                     if (!e) return { id, missing: true };
                     const r = e.getBoundingClientRect();
                     const cx = r.left + r.width / 2, cy = r.top + r.height / 2;
                     const hit = document.elementFromPoint(cx, cy);
                     return { id, left: r.left, top: r.top, right: r.right, bottom: r.bottom,
                              width: r.width, height: r.height,
                              on_top: !!hit && (hit === e || e.contains(hit)),
                              hit: hit ? (hit.getAttribute('data-testid') || hit.className || hit.tagName) : null };
                   }) };"#,
                vec![json!(CONTROLS)],
            )
            .await
            .expect("read control geometry");
        let (vw, vh) = (geo["vw"].as_f64().unwrap(), geo["vh"].as_f64().unwrap());
        for c in geo["controls"].as_array().unwrap() {
            let id = c["id"].as_str().unwrap();
            if c["missing"] == true {
                continue; // reported above
            }
            let f = |k: &str| c[k].as_f64().unwrap_or(f64::NAN);
            let (l, t, r, b) = (f("left"), f("top"), f("right"), f("bottom"));
            if !(l >= -0.5 && t >= -0.5 && r <= vw + 0.5 && b <= vh + 0.5) {
                problems.push(format!("{id}: rect [{l:.0},{t:.0} .. {r:.0},{b:.0}] is outside the {vw}x{vh} viewport"));
            }
            if f("width") < 16.0 || f("height") < 16.0 {
                problems.push(format!("{id}: too small to use ({:.0}x{:.0})", f("width"), f("height")));
            }
            if c["on_top"] != true {
                problems.push(format!("{id}: covered at its centre by {}", c["hit"]));
            }
        }
        if !problems.is_empty() {
            let dump = self.dump(&format!("controls-{state}")).await;
            panic!("{state}: controls not all on screen in a {vw}x{vh} viewport:\n  {}\n(see {dump})", problems.join("\n  "));
        }
        eprintln!("{state}: all {} controls on screen in a {vw}x{vh} viewport", CONTROLS.len());
    }

    /// Deletes the session (the app closes) and ends tauri-driver and what it started.
    pub async fn close(mut self) {
        // Closing the WebDriver session kills the app, which a person closing the window does
        // not (the app leaves on exit). Leave first, as the person would, so the server does not
        // keep the name reserved for a resume (the next app of the test may take the same name).
        if matches!(self.phase().await.as_str(), "in_call" | "reconnecting") {
            if let Ok(b) = self.find("btn-leave").await {
                let _ = b.click().await;
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline && matches!(self.phase().await.as_str(), "in_call" | "reconnecting") {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let wd = self.wd.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), wd.close()).await;
        if let Some(mut d) = self.driver.take() {
            tokio::task::spawn_blocking(move || end_process_tree(&mut d, Duration::from_secs(3))).await.ok();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut d) = self.driver.take() {
            end_process_tree(&mut d, Duration::from_secs(3));
        }
    }
}

/// Runs `cmd` (in a process group of its own, with its output captured) for at most
/// `timeout`; then ends it and everything it started. Returns stdout, stderr and the exit
/// status (`None`: it was still running at the timeout).
pub async fn run_bounded(cmd: &mut Command, timeout: Duration) -> (String, String, Option<std::process::ExitStatus>) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    let out = child.stdout.take().map(collect);
    let err = child.stderr.take().map(collect);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Whatever it left running (the webview's processes) goes too.
    end_process_tree(&mut child, Duration::from_secs(3));
    let out = out.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    let err = err.map(|h| h.join().unwrap_or_default()).unwrap_or_default();
    (out, err, status)
}

fn slug(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    let mut out = String::new();
    for part in s.split('-').filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('-');
        }
        out.push_str(part);
    }
    out.chars().take(60).collect()
}

/// What every UI test runs in: a private X display and a private PulseAudio (so the app has a
/// default speaker and nothing touches the machine's own).
#[derive(Debug)]
pub struct Desk {
    pub xvfb: hearth_testkit::Xvfb,
    pub pulse: Option<hearth_testkit::PulseAudio>,
    pub art: Artifacts,
    pub started: Instant,
}

impl Desk {
    pub fn start(test: &str) -> Desk {
        let art = Artifacts::new(test);
        let xvfb = hearth_testkit::Xvfb::start(1280, 800).expect("start Xvfb");
        let pulse = match hearth_testkit::PulseAudio::start() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("no PulseAudio ({e}): the app plays to no speaker");
                None
            }
        };
        eprintln!("display {}", xvfb.display);
        Desk { xvfb, pulse, art, started: Instant::now() }
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        eprintln!("test ran {:.1} s; artifacts in {}", self.started.elapsed().as_secs_f64(), self.art.dir.display());
    }
}

/// The RGB pixels of a rectangle (CSS pixels; the window's scale is 1 under Xvfb) of a PNG.
pub fn crop_rgb(png_bytes: &[u8], x: f64, y: f64, w: f64, h: f64) -> Vec<u8> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().expect("screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).expect("screenshot decodes");
    let channels = info.color_type.samples();
    let (iw, ih) = (info.width as usize, info.height as usize);
    let (x0, y0) = ((x.max(0.0) as usize).min(iw), (y.max(0.0) as usize).min(ih));
    let (x1, y1) = (((x + w) as usize).min(iw), ((y + h) as usize).min(ih));
    let mut out = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
    for row in y0..y1 {
        for col in x0..x1 {
            let p = (row * iw + col) * channels;
            out.extend_from_slice(&buf[p..p + 3.min(channels)]);
        }
    }
    out
}

/// How many different colours an RGB buffer has (a blank capture has one or two).
pub fn distinct_colours(rgb: &[u8]) -> usize {
    rgb.chunks_exact(3).map(|c| (c[0], c[1], c[2])).collect::<std::collections::HashSet<_>>().len()
}
