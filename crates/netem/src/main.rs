//! `hearth-netem`: the emulator between two TUN devices, and the UDP echo/probe the lab uses
//! to measure what it does.
//!
//!   hearth-netem bridge --tun-a netem-a --tun-b netem-b --profile '{"delay_ms":40}' [--profile-ba ...]
//!   hearth-netem echo --listen 10.9.2.2:9000
//!   hearth-netem probe --to 10.9.2.2:9000 --count 200 --interval-ms 10
//!
//! `bridge` creates (or attaches to) the two TUN devices, then forwards every packet read from
//! A to B through one [`Link`] and from B to A through another, until killed. The routing that
//! sends traffic into the devices is the caller's (see `scripts/netlab.sh`).

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use hearth_netem::{Link, Profile};
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(version, about = "User-space network emulator (delay, jitter, loss, rate, blackouts) between two TUN devices")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Forward between two TUN devices through emulated links.
    Bridge {
        #[arg(long)]
        tun_a: String,
        #[arg(long)]
        tun_b: String,
        /// Profile (JSON) for A → B, and for B → A unless --profile-ba is given.
        #[arg(long, default_value = "{}")]
        profile: String,
        /// Profile (JSON) for B → A.
        #[arg(long)]
        profile_ba: Option<String>,
        /// Seed for loss and jitter.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Answer every UDP datagram with itself.
    Echo {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Send numbered UDP datagrams to an echo and print round-trip times and loss as JSON.
    Probe {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 100)]
        count: u32,
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// Datagram size, bytes (>= 16).
        #[arg(long, default_value_t = 200)]
        size: usize,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Bridge { tun_a, tun_b, profile, profile_ba, seed } => bridge(&tun_a, &tun_b, &profile, profile_ba.as_deref(), seed),
        Cmd::Echo { listen } => echo(listen),
        Cmd::Probe { to, count, interval_ms, size } => probe(to, count, interval_ms, size),
    };
    if let Err(e) = r {
        eprintln!("hearth-netem: {e:#}");
        std::process::exit(1);
    }
}

fn parse_profile(s: &str) -> anyhow::Result<Profile> {
    let p: Profile = serde_json::from_str(s).with_context(|| format!("profile {s:?}"))?;
    p.check().map_err(|e| anyhow::anyhow!("profile {s:?}: {e}"))?;
    Ok(p)
}

/// Opens (creating if needed) the TUN device `name`, without packet information headers.
#[allow(unsafe_code)]
fn open_tun(name: &str) -> anyhow::Result<File> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        bail!("TUN name {name:?} must be 1..{} bytes", libc::IFNAMSIZ);
    }
    let file = std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun").context("open /dev/net/tun")?;
    // SAFETY: ifreq is plain data; zeroed is a valid value for it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    use std::os::fd::AsRawFd;
    // SAFETY: TUNSETIFF reads an ifreq from the pointer, which is valid for the call.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("TUNSETIFF {name}"));
    }
    Ok(file)
}

fn now_us(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// One direction: a reader thread feeds packets in; this loop lets them out on time.
fn run_direction(mut from: File, mut to: File, mut link: Link, t0: Instant, label: &'static str) {
    let (tx, rx) = mpsc::sync_channel::<(u64, Vec<u8>)>(4096);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        loop {
            match from.read(&mut buf) {
                Ok(n) if n > 0 => {
                    if tx.send((now_us(t0), buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("hearth-netem: {label}: read: {e}");
                    return;
                }
            }
        }
    });
    loop {
        let wait = match link.next_due() {
            Some(due) => Duration::from_micros(due.saturating_sub(now_us(t0))),
            None => Duration::from_secs(1),
        };
        match rx.recv_timeout(wait) {
            Ok((at, p)) => {
                link.push(at, p);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = now_us(t0);
        while let Some(p) = link.pop_due(now) {
            if let Err(e) = to.write(&p) {
                // A packet the kernel refuses (device down, bad header) is lost, not fatal.
                eprintln!("hearth-netem: {label}: write: {e}");
            }
        }
    }
}

fn bridge(a: &str, b: &str, profile: &str, profile_ba: Option<&str>, seed: u64) -> anyhow::Result<()> {
    let ab = parse_profile(profile)?;
    let ba = match profile_ba {
        Some(p) => parse_profile(p)?,
        None => ab.clone(),
    };
    let (ta, tb) = (open_tun(a)?, open_tun(b)?);
    let (ta2, tb2) = (ta.try_clone()?, tb.try_clone()?);
    eprintln!("hearth-netem: bridging {a} <-> {b}; {a}->{b} {ab:?}; {b}->{a} {ba:?}");
    let t0 = Instant::now();
    let h = std::thread::spawn(move || run_direction(ta, tb, Link::new(ab, seed), t0, "a->b"));
    run_direction(tb2, ta2, Link::new(ba, seed.wrapping_add(1)), t0, "b->a");
    let _ = h.join();
    Ok(())
}

fn echo(listen: SocketAddr) -> anyhow::Result<()> {
    let s = UdpSocket::bind(listen).with_context(|| format!("bind {listen}"))?;
    let mut buf = [0u8; 65_536];
    loop {
        let (n, from) = s.recv_from(&mut buf)?;
        let _ = s.send_to(&buf[..n], from);
    }
}

fn probe(to: SocketAddr, count: u32, interval_ms: u64, size: usize) -> anyhow::Result<()> {
    let size = size.max(16);
    let bind: SocketAddr = if to.is_ipv4() { "0.0.0.0:0".parse()? } else { "[::]:0".parse()? };
    let s = UdpSocket::bind(bind)?;
    s.set_read_timeout(Some(Duration::from_millis(1)))?;
    let t0 = Instant::now();
    let mut sent_at = vec![None; count as usize];
    let mut rtts = Vec::new();
    let mut buf = vec![0u8; 65_536];
    let mut next = Instant::now();
    let mut i = 0u32;
    let end_wait = Duration::from_secs(3);
    let mut last_send = Instant::now();
    loop {
        if i < count && Instant::now() >= next {
            let mut pkt = vec![0u8; size];
            pkt[..4].copy_from_slice(&i.to_le_bytes());
            // Stamped before sending: stamped after, a preempted probe measured round trips
            // shorter than the link's delay.
            sent_at[i as usize] = Some(now_us(t0));
            s.send_to(&pkt, to)?;
            i += 1;
            next += Duration::from_millis(interval_ms);
            last_send = Instant::now();
        }
        if let Ok(n) = s.recv(&mut buf)
            && n >= 4
        {
            let k = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if let Some(Some(at)) = sent_at.get_mut(k).map(Option::take) {
                rtts.push((now_us(t0) - at) as f64 / 1000.0);
            }
        }
        if i >= count && (rtts.len() as u32 == count || last_send.elapsed() > end_wait) {
            break;
        }
    }
    let mut sorted = rtts.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| sorted.get(((sorted.len().max(1) - 1) as f64 * q).round() as usize).copied();
    let out = serde_json::json!({
        "sent": count,
        "received": rtts.len(),
        "loss": 1.0 - rtts.len() as f64 / count.max(1) as f64,
        "rtt_ms": {"min": sorted.first(), "p50": at(0.5), "p95": at(0.95), "max": sorted.last()},
    });
    println!("{out}");
    Ok(())
}
