//! Load benchmark for hearth-signal: `cargo bench -p hearth-signal --bench load`.
//!
//! Starts the real `hearth-signal` binary as a child process on loopback (so its RSS is its
//! own), then from this process:
//! 1. opens N WebSocket connections (default 10,000; env `HEARTH_BENCH_CONNS`) that each join a
//!    room of 8 and stay idle (answering pings), and reports joins/s and the server's RSS per
//!    connection;
//! 2. with those still held, 200 more clients join one room and send room chat at rising
//!    aggregate rates; every member timestamps each delivery, and the bench reports deliveries/s
//!    and p50/p99 delivery latency (send to receipt) per step.
//!
//! Figures are printed; nothing is asserted (speed goals are read, not flaky-tested).
#![allow(unsafe_code)] // setrlimit, to hold more sockets than the default 1024 descriptors.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use futures_util::{SinkExt, StreamExt};
use hearth_proto::{ClientMessage, Join, ServerMessage, decode_server, encode};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TcpStream>;

const ROOM_OF_IDLE: usize = 8;
const BIG_ROOM: usize = 200;

fn raise_fd_limit(want: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain syscalls on a stack value.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            let new = libc::rlimit { rlim_cur: want, rlim_max: want.max(lim.rlim_max) };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
                let capped = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
                libc::setrlimit(libc::RLIMIT_NOFILE, &capped);
            }
        }
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(conns: usize) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hearth-signal"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--max-connections",
            &(conns + 1000).to_string(),
            "--max-room-size",
            &BIG_ROOM.to_string(),
            "--rate-per-sec",
            "1000",
            "--rate-burst",
            "1000",
            "--log",
            "warn",
        ])
        .env_remove("HEARTH_CONFIG")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start hearth-signal");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read address");
    let url = line.trim().strip_prefix("hearth-signal listening on ").expect("address line").to_owned();
    Server { child, url }
}

async fn connect(url: &str) -> Ws {
    let addr = url.trim_start_matches("ws://").trim_end_matches("/ws");
    let cfg = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
    for attempt in 0.. {
        match TcpStream::connect(addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(cfg))
                    .await
                    .expect("handshake");
                return ws;
            }
            Err(e) if attempt < 50 => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("connect: {e}"),
        }
    }
    unreachable!()
}

async fn join(ws: &mut Ws, room: &str, name: &str) {
    ws.send(Message::Text(encode(&ClientMessage::Join(Join::new(room, name))).into()))
        .await
        .expect("send join");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => match decode_server(&t) {
                Ok(ServerMessage::Welcome(_)) => return,
                Ok(ServerMessage::Error { message, .. }) => panic!("join refused: {message}"),
                _ => continue,
            },
            Some(Ok(_)) => continue,
            other => panic!("connection lost while joining: {other:?}"),
        }
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx] as f64 / 1000.0
}

fn main() {
    let conns: usize =
        std::env::var("HEARTH_BENCH_CONNS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let step_secs: u64 =
        std::env::var("HEARTH_BENCH_STEP_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    raise_fd_limit((conns as u64) * 2 + 4096);
    let server = start_server(conns + BIG_ROOM);
    let pid = server.child.id();
    let rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(server, pid, conns, step_secs));
}

async fn run(server: Server, pid: u32, conns: usize, step_secs: u64) {
    let url = server.url.clone();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_start = rss_kib(pid);
    println!(
        "hearth-signal load benchmark (server pid {pid}, {} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("server RSS at start: {rss_start} KiB");

    // Phase 1: idle connections, each joined to a room of 8.
    let started = Instant::now();
    let cpu_before = cpu_ticks(pid);
    let mut handles = Vec::with_capacity(conns);
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    for i in 0..conns {
        let url = url.clone();
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        handles.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            join(&mut ws, &format!("idle-{}", i / ROOM_OF_IDLE), &format!("u{i}")).await;
            drop(permit);
            ws
        }));
    }
    let mut idle = Vec::with_capacity(conns);
    for h in handles {
        idle.push(h.await.expect("client task"));
    }
    let join_secs = started.elapsed().as_secs_f64();
    let cpu_join = cpu_ticks(pid) - cpu_before;
    // Keep idle clients answering pings, as real ones do.
    let idle_tasks: Vec<_> = idle
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kib(pid);
    let per_conn = (rss_idle.saturating_sub(rss_start)) as f64 * 1024.0 / conns as f64;
    println!();
    println!("idle connections held:      {conns} (each joined to a room of {ROOM_OF_IDLE})");
    println!(
        "connect+join rate:          {:.0} joins/s ({join_secs:.2} s for {conns}; server CPU {:.2} s)",
        conns as f64 / join_secs,
        cpu_join as f64 / 100.0
    );
    println!("server RSS with them:       {rss_idle} KiB");
    println!("RSS per connection:         {:.1} KB ({per_conn:.0} bytes)", per_conn / 1000.0);

    // Phase 2: a room of 200 chatting at rising rates.
    let epoch = Instant::now();
    let mut members = Vec::with_capacity(BIG_ROOM);
    for i in 0..BIG_ROOM {
        let mut ws = connect(&url).await;
        join(&mut ws, "big", &format!("m{i}")).await;
        members.push(ws);
    }
    // Let the joins' peer_joined storm drain.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let latencies = Arc::new(Mutex::new(Vec::<u64>::with_capacity(1 << 20)));
    let received = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::with_capacity(BIG_ROOM);
    let mut readers = Vec::with_capacity(BIG_ROOM);
    for ws in members {
        let (sink, mut stream) = ws.split();
        senders.push(sink);
        let latencies = latencies.clone();
        let received = received.clone();
        readers.push(tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(t) = msg else { continue };
                let Ok(ServerMessage::Chat { message }) = decode_server(&t) else { continue };
                let Some(sent_us) = message.text.strip_prefix("t=").and_then(|v| v.parse::<u64>().ok())
                else {
                    continue;
                };
                let now_us = epoch.elapsed().as_micros() as u64;
                if let Ok(mut l) = latencies.lock() {
                    l.push(now_us.saturating_sub(sent_us));
                }
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    println!();
    println!(
        "room of {BIG_ROOM}: chat at rising rates ({step_secs} s per step), every message delivered to all {BIG_ROOM} members"
    );
    println!(
        "{:>12} {:>16} {:>14} {:>10} {:>10} {:>10} {:>12}",
        "msgs/s sent", "deliveries/s", "delivered", "p50 ms", "p99 ms", "max ms", "server CPU"
    );
    for rate in [125u64, 250, 500, 1000, 1500] {
        if let Ok(mut l) = latencies.lock() {
            l.clear();
        }
        received.store(0, Ordering::Relaxed);
        let cpu0 = cpu_ticks(pid);
        let t0 = Instant::now();
        let total = rate * step_secs;
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut next = tokio::time::Instant::now();
        for n in 0..total {
            next += interval;
            tokio::time::sleep_until(next).await;
            let sender = &mut senders[(n as usize) % BIG_ROOM];
            let text = format!("t={}", epoch.elapsed().as_micros());
            if sender
                .send(Message::Text(encode(&ClientMessage::Chat { text, to: None }).into()))
                .await
                .is_err()
            {
                println!("a sender was disconnected");
            }
        }
        // Wait for the tail to arrive (bounded).
        let expected = total * BIG_ROOM as u64;
        let wait_until = Instant::now() + Duration::from_secs(5);
        while received.load(Ordering::Relaxed) < expected && Instant::now() < wait_until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = (cpu_ticks(pid) - cpu0) as f64 / 100.0;
        let got = received.load(Ordering::Relaxed);
        let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
        lat.sort_unstable();
        println!(
            "{:>12} {:>16.0} {:>14} {:>10.2} {:>10.2} {:>10.2} {:>11.0}%",
            rate,
            got as f64 / elapsed,
            format!("{got}/{expected}"),
            percentile(&lat, 0.50),
            percentile(&lat, 0.99),
            lat.last().map_or(f64::NAN, |m| *m as f64 / 1000.0),
            cpu / elapsed * 100.0
        );
    }
    println!();
    println!("server RSS at end: {} KiB", rss_kib(pid));
    for t in idle_tasks {
        t.abort();
    }
    for r in readers {
        r.abort();
    }
    drop(server);
}
