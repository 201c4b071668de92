//! Server configuration: defaults, then an optional TOML file, then environment variables, then
//! command-line flags (each later source overrides the earlier ones).

use crate::auth::{FixedRooms, JoinAuth, MAX_PASSWORD_BYTES, TurnConfig};
use crate::hub::HubConfig;
use clap::Parser;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default listen address: loopback only, so a server started by accident is not exposed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Everything [`crate::run`] needs besides the listener.
#[derive(Debug, Clone)]
pub struct Config {
    /// Room rules (room size, history, grace period, auth, ICE servers).
    pub hub: HubConfig,
    /// Open WebSocket connections at most; further upgrades get HTTP 503.
    pub max_connections: usize,
    /// Open WebSocket connections per client address (IPv6: per /64); further upgrades from it
    /// get HTTP 429. 0 = no limit. Loopback is exempt unless `hub.ip_limits_include_loopback`.
    pub max_connections_per_ip: usize,
    /// Largest message (and frame) in bytes; a larger one closes the connection with 1009.
    pub max_message_bytes: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// How often the server pings each connection.
    pub heartbeat_interval: Duration,
    /// A connection silent for this long is closed as dead.
    pub heartbeat_timeout: Duration,
    /// Messages queued for one slow client before it is disconnected.
    pub send_queue: usize,
    /// Browser origins allowed to connect; empty allows all.
    pub allowed_origins: Vec<String>,
    pub tls: Option<TlsFiles>,
    /// How long shutdown waits for connections to flush and close.
    pub drain_timeout: Duration,
    /// Told to clients in the `shutdown` message.
    pub shutdown_retry_after: Duration,
    /// The embedded TURN relay, when on.
    pub relay: Option<crate::relay::RelaySettings>,
}

/// PEM files for wss.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hub: HubConfig::default(),
            max_connections: 20_000,
            max_connections_per_ip: 64,
            max_message_bytes: 64 * 1024,
            rate_per_sec: 50,
            rate_burst: 200,
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(30),
            send_queue: 512,
            allowed_origins: Vec::new(),
            tls: None,
            drain_timeout: Duration::from_secs(5),
            shutdown_retry_after: Duration::from_secs(2),
            relay: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Configuration errors, each saying which setting is wrong and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid setting {setting}: {message}")]
    Invalid { setting: &'static str, message: String },
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { setting, message: message.into() }
}

/// Hearth's signaling server: rooms, presence, SDP/ICE relay and chat over WebSocket.
///
/// Every option can also be set with the environment variable shown, or in a TOML config file
/// (`--config`) under the same name with underscores (e.g. `max_room_size = 8`). Flags override
/// the environment, which overrides the file. Rooms with a password fixed by the administrator
/// are set only in the file, as `[[rooms]]` tables with `name` and `password` or
/// `password_file`.
#[derive(Debug, Parser, Default)]
#[command(name = "hearth-signal", version, about, long_about)]
pub struct Cli {
    /// Address to listen on, HOST:PORT. Port 0 picks a free port; the bound address is printed.
    /// [default: 127.0.0.1:7878]
    #[arg(long, env = "HEARTH_LISTEN", value_name = "HOST:PORT")]
    pub listen: Option<String>,

    /// TOML config file.
    #[arg(long, env = "HEARTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Peers per room (mesh calls get heavy beyond 8). [default: 8]
    #[arg(long, env = "HEARTH_MAX_ROOM_SIZE")]
    pub max_room_size: Option<usize>,

    /// Open WebSocket connections at most. [default: 20000]
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Open WebSocket connections per client address (IPv6: per /64); more get HTTP 429. 0 = no
    /// limit. [default: 64]
    #[arg(long, env = "HEARTH_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,

    /// Sessions (live and reconnecting) per client address; more joins get `server_full`. 0 = no
    /// limit. [default: 64]
    #[arg(long, env = "HEARTH_MAX_SESSIONS_PER_IP")]
    pub max_sessions_per_ip: Option<usize>,

    /// Apply the per-address limits (connections, sessions, wrong-password backoff) to loopback
    /// clients too. Off by default: behind a reverse proxy on the same host every client is
    /// loopback.
    #[arg(long, env = "HEARTH_IP_LIMITS_INCLUDE_LOOPBACK", num_args = 0..=1, default_missing_value = "true")]
    pub ip_limits_include_loopback: Option<bool>,

    /// Rooms one connection may create per minute; more joins that would create a room get
    /// `rate_limited`. 0 = no limit. [default: 10]
    #[arg(long, env = "HEARTH_MAX_ROOMS_PER_MIN")]
    pub max_rooms_per_min: Option<usize>,

    /// Seconds a locked room keeps its password after its last peer leaves; meanwhile a join
    /// must give that password. 0 = forget it with the room. [default: 3600]
    #[arg(long, env = "HEARTH_ROOM_LOCK_KEEP_SECS")]
    pub room_lock_keep_secs: Option<u64>,

    /// Bytes of offers/answers/ICE held for one reconnecting peer; past it the sender gets
    /// `peer_unavailable`. [default: 1048576]
    #[arg(long, env = "HEARTH_HELD_RELAY_BYTES_PER_PEER")]
    pub held_relay_bytes_per_peer: Option<usize>,

    /// Bytes of relays held for one room's reconnecting peers together. [default: 4194304]
    #[arg(long, env = "HEARTH_HELD_RELAY_BYTES_PER_ROOM")]
    pub held_relay_bytes_per_room: Option<usize>,

    /// Bytes of relays held for all reconnecting peers. [default: 67108864]
    #[arg(long, env = "HEARTH_HELD_RELAY_BYTES_TOTAL")]
    pub held_relay_bytes_total: Option<usize>,

    /// Bytes of chat log kept per room (history and resume replay); past it the oldest messages
    /// go. [default: 1048576]
    #[arg(long, env = "HEARTH_CHAT_LOG_BYTES_PER_ROOM")]
    pub chat_log_bytes_per_room: Option<usize>,

    /// Bytes of chat log kept over all rooms; past it the oldest messages of any room go.
    /// [default: 268435456]
    #[arg(long, env = "HEARTH_CHAT_LOG_BYTES_TOTAL")]
    pub chat_log_bytes_total: Option<usize>,

    /// Largest message in bytes; larger ones close the connection with code 1009. [default: 65536]
    #[arg(long, env = "HEARTH_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,

    /// Messages per second per connection. [default: 50]
    #[arg(long, env = "HEARTH_RATE_PER_SEC")]
    pub rate_per_sec: Option<u32>,

    /// Burst size of the per-connection rate limit. [default: 200]
    #[arg(long, env = "HEARTH_RATE_BURST")]
    pub rate_burst: Option<u32>,

    /// Room chat messages a late joiner receives. [default: 100]
    #[arg(long, env = "HEARTH_HISTORY")]
    pub history: Option<usize>,

    /// Seconds a dropped session may be resumed with its resume token. [default: 30]
    #[arg(long, env = "HEARTH_RESUME_GRACE_SECS")]
    pub resume_grace_secs: Option<u64>,

    /// Seconds between server pings. [default: 10]
    #[arg(long, env = "HEARTH_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,

    /// Seconds of silence after which a connection is closed as dead. [default: 30]
    #[arg(long, env = "HEARTH_HEARTBEAT_TIMEOUT_SECS")]
    pub heartbeat_timeout_secs: Option<u64>,

    /// Allowed browser Origin (repeat, or comma-separate in the env var). Empty allows any.
    /// Clients that send no Origin header (native apps) are always allowed.
    #[arg(long = "allowed-origin", env = "HEARTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Require HS256 JWT room tokens signed with this secret (prefer the env var or a file).
    #[arg(long, env = "HEARTH_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Read the JWT secret from this file.
    #[arg(long, env = "HEARTH_JWT_SECRET_FILE", value_name = "FILE")]
    pub jwt_secret_file: Option<PathBuf>,

    /// Clock leeway in seconds for JWT exp/nbf. [default: 30]
    #[arg(long, env = "HEARTH_JWT_LEEWAY_SECS")]
    pub jwt_leeway_secs: Option<u64>,

    /// STUN URL to announce (repeat).
    #[arg(long = "stun-url", env = "HEARTH_STUN_URLS", value_delimiter = ',')]
    pub stun_urls: Vec<String>,

    /// TURN URL to announce with time-limited credentials (repeat).
    #[arg(long = "turn-url", env = "HEARTH_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,

    /// Shared secret with the TURN server (coturn static-auth-secret).
    #[arg(long, env = "HEARTH_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// Read the TURN secret from this file.
    #[arg(long, env = "HEARTH_TURN_SECRET_FILE", value_name = "FILE")]
    pub turn_secret_file: Option<PathBuf>,

    /// Lifetime of TURN credentials in seconds. [default: 600]
    #[arg(long, env = "HEARTH_TURN_TTL_SECS")]
    pub turn_ttl_secs: Option<u64>,

    /// This machine's public address (repeat for IPv4 and IPv6). Turns the embedded TURN relay
    /// on: relayed addresses and the announced turn:/turns: URLs use it.
    #[arg(long = "public-ip", env = "HEARTH_PUBLIC_IPS", value_delimiter = ',', value_name = "IP")]
    pub public_ips: Vec<std::net::IpAddr>,

    /// Where the embedded TURN relay listens, UDP and TCP on one port. Turns the relay on (the
    /// public address is then this address when it is not 0.0.0.0). [default: 0.0.0.0:3478]
    #[arg(long, env = "HEARTH_TURN_LISTEN", value_name = "HOST:PORT")]
    pub turn_listen: Option<std::net::SocketAddr>,

    /// TURN over TLS listen address (e.g. 0.0.0.0:443 or :5349); uses --tls-cert and --tls-key.
    #[arg(long, env = "HEARTH_TURN_TLS_LISTEN", value_name = "HOST:PORT")]
    pub turn_tls_listen: Option<std::net::SocketAddr>,

    /// Host name on the certificate, used in the announced turns: URL. [default: the public IP]
    #[arg(long, env = "HEARTH_TURN_TLS_NAME", value_name = "NAME")]
    pub turn_tls_name: Option<String>,

    /// Ports of relayed addresses, MIN-MAX. [default: 49152-65535]
    #[arg(long, env = "HEARTH_TURN_RELAY_PORTS", value_name = "MIN-MAX")]
    pub turn_relay_ports: Option<String>,

    /// Relay allocations at once per user (per join). [default: 16]
    #[arg(long, env = "HEARTH_TURN_MAX_ALLOCATIONS_PER_USER")]
    pub turn_max_allocations_per_user: Option<usize>,

    /// Relay allocations at once in total. [default: 2000]
    #[arg(long, env = "HEARTH_TURN_MAX_ALLOCATIONS")]
    pub turn_max_allocations: Option<usize>,

    /// Relayed bandwidth per allocation in kbit/s, 0 = no cap. [default: 10000]
    #[arg(long, env = "HEARTH_TURN_ALLOCATION_KBPS")]
    pub turn_allocation_kbps: Option<u64>,

    /// Relayed bandwidth of the whole relay in Mbit/s, 0 = no cap. [default: 0]
    #[arg(long, env = "HEARTH_TURN_TOTAL_MBPS")]
    pub turn_total_mbps: Option<u64>,

    /// Peer address range the relay never sends to, CIDR (repeat). Loopback, link-local,
    /// multicast and the server's own ports are always refused.
    #[arg(long = "turn-deny", env = "HEARTH_TURN_DENY", value_delimiter = ',', value_name = "CIDR")]
    pub turn_deny: Vec<ipnet::IpNet>,

    /// Let the relay send to loopback peers. For tests on one machine only.
    #[arg(long, env = "HEARTH_TURN_ALLOW_LOOPBACK_PEERS")]
    pub turn_allow_loopback_peers: bool,

    /// TLS certificate chain (PEM) for wss; needs --tls-key.
    #[arg(long, env = "HEARTH_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// TLS private key (PEM) for wss.
    #[arg(long, env = "HEARTH_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Seconds shutdown waits for connections to close. [default: 5]
    #[arg(long, env = "HEARTH_DRAIN_SECS")]
    pub drain_secs: Option<u64>,

    /// Log format. [default: text]
    #[arg(long, env = "HEARTH_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,

    /// Log filter, e.g. "info" or "hearth_signal=debug". [default: info]
    #[arg(long, env = "HEARTH_LOG")]
    pub log: Option<String>,
}

/// The config file: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub max_room_size: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub max_sessions_per_ip: Option<usize>,
    pub ip_limits_include_loopback: Option<bool>,
    pub max_rooms_per_min: Option<usize>,
    pub room_lock_keep_secs: Option<u64>,
    pub held_relay_bytes_per_peer: Option<usize>,
    pub held_relay_bytes_per_room: Option<usize>,
    pub held_relay_bytes_total: Option<usize>,
    pub chat_log_bytes_per_room: Option<usize>,
    pub chat_log_bytes_total: Option<usize>,
    /// Rooms whose password the administrator fixes.
    #[serde(default)]
    pub rooms: Vec<FixedRoomConfig>,
    pub max_message_bytes: Option<usize>,
    pub rate_per_sec: Option<u32>,
    pub rate_burst: Option<u32>,
    pub history: Option<usize>,
    pub resume_grace_secs: Option<u64>,
    pub heartbeat_secs: Option<u64>,
    pub heartbeat_timeout_secs: Option<u64>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    pub jwt_secret: Option<String>,
    pub jwt_secret_file: Option<PathBuf>,
    pub jwt_leeway_secs: Option<u64>,
    #[serde(default)]
    pub stun_urls: Vec<String>,
    #[serde(default)]
    pub turn_urls: Vec<String>,
    pub turn_secret: Option<String>,
    pub turn_secret_file: Option<PathBuf>,
    pub turn_ttl_secs: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default)]
    pub public_ips: Vec<std::net::IpAddr>,
    pub turn_listen: Option<std::net::SocketAddr>,
    pub turn_tls_listen: Option<std::net::SocketAddr>,
    pub turn_tls_name: Option<String>,
    pub turn_relay_ports: Option<String>,
    pub turn_max_allocations_per_user: Option<usize>,
    pub turn_max_allocations: Option<usize>,
    pub turn_allocation_kbps: Option<u64>,
    pub turn_total_mbps: Option<u64>,
    #[serde(default)]
    pub turn_deny: Vec<ipnet::IpNet>,
    pub turn_allow_loopback_peers: Option<bool>,
    pub drain_secs: Option<u64>,
    pub log_format: Option<LogFormat>,
    pub log: Option<String>,
}

/// A `[[rooms]]` table of the config file: a room that always needs this password.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedRoomConfig {
    pub name: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

fn fixed_rooms(rooms: Vec<FixedRoomConfig>) -> Result<FixedRooms, ConfigError> {
    let mut fixed = FixedRooms::default();
    for mut room in rooms {
        let name_check = hearth_proto::ClientMessage::Join(hearth_proto::Join::new(room.name.clone(), "x"));
        if let Err(e) = name_check.validate() {
            return Err(invalid("rooms.name", format!("{:?} is not a usable room name: {e}", room.name)));
        }
        // Joins name rooms in normalized form; so must the configuration.
        room.name = hearth_proto::normalize_name(&room.name);
        let password = read_secret(room.password, room.password_file, "rooms.password")?
            .map(|p| String::from_utf8(p).map_err(|_| invalid("rooms.password", "must be UTF-8")))
            .transpose()?;
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            return Err(invalid(
                "rooms.password",
                format!("room {:?} needs a non-empty password", room.name),
            ));
        };
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(invalid("rooms.password", format!("must be at most {MAX_PASSWORD_BYTES} bytes")));
        }
        if fixed.0.insert(room.name.clone(), password).is_some() {
            return Err(invalid("rooms.name", format!("room {:?} is listed twice", room.name)));
        }
    }
    Ok(fixed)
}

/// The resolved settings of the binary.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub config: Config,
    pub log_format: LogFormat,
    pub log: String,
}

fn read_secret(
    inline: Option<String>,
    file: Option<PathBuf>,
    setting: &'static str,
) -> Result<Option<Vec<u8>>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(invalid(setting, "give the secret inline or as a file, not both")),
        (Some(s), None) => Ok(Some(s.into_bytes())),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::ReadFile { path, source })?;
            Ok(Some(text.trim_end_matches(['\r', '\n']).as_bytes().to_vec()))
        }
        (None, None) => Ok(None),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl Cli {
    /// Resolve flags (and environment, already merged by clap) over the config file over defaults.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let file = match &self.config {
            Some(path) => load_file(path)?,
            None => FileConfig::default(),
        };
        let d = Config::default();
        fn pick_vec<T>(cli: Vec<T>, file: Vec<T>) -> Vec<T> {
            if cli.is_empty() { file } else { cli }
        }

        let max_room_size = self.max_room_size.or(file.max_room_size).unwrap_or(d.hub.max_room_size);
        let max_message_bytes =
            self.max_message_bytes.or(file.max_message_bytes).unwrap_or(d.max_message_bytes);
        let rate_per_sec = self.rate_per_sec.or(file.rate_per_sec).unwrap_or(d.rate_per_sec);
        let rate_burst = self.rate_burst.or(file.rate_burst).unwrap_or(d.rate_burst);
        let heartbeat_interval =
            self.heartbeat_secs.or(file.heartbeat_secs).map_or(d.heartbeat_interval, secs);
        let heartbeat_timeout =
            self.heartbeat_timeout_secs.or(file.heartbeat_timeout_secs).map_or(d.heartbeat_timeout, secs);

        if max_room_size == 0 {
            return Err(invalid("max_room_size", "must be at least 1"));
        }
        if max_message_bytes < 1024 {
            return Err(invalid("max_message_bytes", "must be at least 1024 (an SDP needs a few KiB)"));
        }
        if rate_per_sec == 0 || rate_burst == 0 {
            return Err(invalid("rate_per_sec / rate_burst", "must be at least 1"));
        }
        if heartbeat_timeout > Duration::from_secs(3600) {
            return Err(invalid("heartbeat_timeout_secs", "must be at most 3600"));
        }
        if heartbeat_interval.is_zero() || heartbeat_timeout <= heartbeat_interval {
            return Err(invalid(
                "heartbeat_secs / heartbeat_timeout_secs",
                "the interval must be positive and shorter than the timeout",
            ));
        }

        let jwt_secret = read_secret(
            self.jwt_secret.or(file.jwt_secret),
            self.jwt_secret_file.or(file.jwt_secret_file),
            "jwt_secret",
        )?;
        let auth = match jwt_secret {
            Some(secret) if secret.len() < 16 => {
                return Err(invalid("jwt_secret", "must be at least 16 bytes long"));
            }
            Some(secret) => JoinAuth::Jwt {
                secret,
                leeway_secs: self.jwt_leeway_secs.or(file.jwt_leeway_secs).unwrap_or(30),
            },
            None => JoinAuth::Open,
        };
        let turn_urls = pick_vec(self.turn_urls, file.turn_urls);
        let turn_secret = read_secret(
            self.turn_secret.or(file.turn_secret),
            self.turn_secret_file.or(file.turn_secret_file),
            "turn_secret",
        )?;
        let turn = match (turn_urls.is_empty(), turn_secret) {
            (true, None) => None,
            (true, Some(_)) => return Err(invalid("turn_secret", "is set but no turn_urls are")),
            (false, None) => return Err(invalid("turn_urls", "need turn_secret to make credentials")),
            (false, Some(secret)) => Some(TurnConfig {
                urls: turn_urls,
                secret,
                ttl_secs: self.turn_ttl_secs.or(file.turn_ttl_secs).unwrap_or(600),
            }),
        };
        let tls = match (self.tls_cert.or(file.tls_cert), self.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(invalid("tls_cert / tls_key", "give both or neither")),
        };
        let relay = RelayFlags {
            public_ips: pick_vec(self.public_ips, file.public_ips),
            listen: self.turn_listen.or(file.turn_listen),
            tls_listen: self.turn_tls_listen.or(file.turn_tls_listen),
            tls_name: self.turn_tls_name.or(file.turn_tls_name),
            relay_ports: self.turn_relay_ports.or(file.turn_relay_ports),
            max_allocations_per_user: self.turn_max_allocations_per_user.or(file.turn_max_allocations_per_user),
            max_allocations: self.turn_max_allocations.or(file.turn_max_allocations),
            allocation_kbps: self.turn_allocation_kbps.or(file.turn_allocation_kbps),
            total_mbps: self.turn_total_mbps.or(file.turn_total_mbps),
            deny: pick_vec(self.turn_deny, file.turn_deny),
            allow_loopback_peers: self.turn_allow_loopback_peers
                || file.turn_allow_loopback_peers.unwrap_or(false),
        }
        .resolve(tls.is_some())?;

        let resume_grace = self.resume_grace_secs.or(file.resume_grace_secs).map_or(d.hub.resume_grace, secs);
        if resume_grace > Duration::from_secs(86_400) {
            return Err(invalid("resume_grace_secs", "must be at most 86400 (a day)"));
        }
        let drain_timeout = self.drain_secs.or(file.drain_secs).map_or(d.drain_timeout, secs);
        if drain_timeout > Duration::from_secs(3600) {
            return Err(invalid("drain_secs", "must be at most 3600"));
        }
        let room_lock_keep =
            self.room_lock_keep_secs.or(file.room_lock_keep_secs).map_or(d.hub.room_lock_keep, secs);
        if room_lock_keep > Duration::from_secs(30 * 86_400) {
            return Err(invalid("room_lock_keep_secs", "must be at most 2592000 (30 days)"));
        }
        let held_relay_bytes_per_peer = self
            .held_relay_bytes_per_peer
            .or(file.held_relay_bytes_per_peer)
            .unwrap_or(d.hub.held_relay_bytes_per_peer);
        let chat_log_bytes_per_room = self
            .chat_log_bytes_per_room
            .or(file.chat_log_bytes_per_room)
            .unwrap_or(d.hub.chat_log_bytes_per_room);
        // Below a maximum-size message the bound would refuse (or forget) every such message.
        if held_relay_bytes_per_peer < max_message_bytes {
            return Err(invalid(
                "held_relay_bytes_per_peer",
                "must be at least max_message_bytes (one largest offer must fit)",
            ));
        }
        if chat_log_bytes_per_room < 64 * 1024 {
            return Err(invalid("chat_log_bytes_per_room", "must be at least 65536 (a few long messages)"));
        }
        let hub = HubConfig {
            max_room_size,
            history_len: self.history.or(file.history).unwrap_or(d.hub.history_len),
            resume_grace,
            held_relay_bytes_per_peer,
            held_relay_bytes_per_room: self
                .held_relay_bytes_per_room
                .or(file.held_relay_bytes_per_room)
                .unwrap_or(d.hub.held_relay_bytes_per_room),
            held_relay_bytes_total: self
                .held_relay_bytes_total
                .or(file.held_relay_bytes_total)
                .unwrap_or(d.hub.held_relay_bytes_total),
            chat_log_bytes_per_room,
            chat_log_bytes_total: self
                .chat_log_bytes_total
                .or(file.chat_log_bytes_total)
                .unwrap_or(d.hub.chat_log_bytes_total),
            max_sessions_per_ip: self
                .max_sessions_per_ip
                .or(file.max_sessions_per_ip)
                .unwrap_or(d.hub.max_sessions_per_ip),
            ip_limits_include_loopback: self
                .ip_limits_include_loopback
                .or(file.ip_limits_include_loopback)
                .unwrap_or(d.hub.ip_limits_include_loopback),
            max_rooms_created_per_min: self
                .max_rooms_per_min
                .or(file.max_rooms_per_min)
                .unwrap_or(d.hub.max_rooms_created_per_min),
            room_lock_keep,
            fixed_rooms: fixed_rooms(file.rooms)?,
            auth,
            stun_urls: pick_vec(self.stun_urls, file.stun_urls),
            turn,
            ..d.hub.clone()
        };
        let config = Config {
            hub,
            max_connections: self.max_connections.or(file.max_connections).unwrap_or(d.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .or(file.max_connections_per_ip)
                .unwrap_or(d.max_connections_per_ip),
            max_message_bytes,
            rate_per_sec,
            rate_burst,
            heartbeat_interval,
            heartbeat_timeout,
            allowed_origins: pick_vec(self.allowed_origins, file.allowed_origins),
            tls,
            drain_timeout,
            relay,
            ..d
        };
        Ok(Settings {
            listen: self.listen.or(file.listen).unwrap_or_else(|| DEFAULT_LISTEN.to_owned()),
            config,
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
            log: self.log.or(file.log).unwrap_or_else(|| "info".to_owned()),
        })
    }
}

/// The `--turn-*` and `--public-ip` settings before they are checked.
struct RelayFlags {
    public_ips: Vec<std::net::IpAddr>,
    listen: Option<std::net::SocketAddr>,
    tls_listen: Option<std::net::SocketAddr>,
    tls_name: Option<String>,
    relay_ports: Option<String>,
    max_allocations_per_user: Option<usize>,
    max_allocations: Option<usize>,
    allocation_kbps: Option<u64>,
    total_mbps: Option<u64>,
    deny: Vec<ipnet::IpNet>,
    allow_loopback_peers: bool,
}

impl RelayFlags {
    fn resolve(self, have_tls: bool) -> Result<Option<crate::relay::RelaySettings>, ConfigError> {
        let mut public_ips = self.public_ips;
        if public_ips.is_empty() {
            match self.listen {
                None => {
                    if self.tls_listen.is_some() {
                        return Err(invalid("turn_tls_listen", "needs public_ips or turn_listen"));
                    }
                    return Ok(None);
                }
                Some(l) if l.ip().is_unspecified() => {
                    return Err(invalid(
                        "public_ips",
                        "the TURN relay listens on all addresses: say which one peers reach it at",
                    ));
                }
                Some(l) => public_ips.push(l.ip()),
            }
        }
        if public_ips.iter().filter(|ip| ip.is_ipv4()).count() > 1 || public_ips.iter().filter(|ip| ip.is_ipv6()).count() > 1 {
            return Err(invalid("public_ips", "give at most one IPv4 and one IPv6 address"));
        }
        if public_ips.iter().any(|ip| ip.is_unspecified() || ip.is_multicast()) {
            return Err(invalid("public_ips", "must be addresses peers can reach"));
        }
        if self.tls_listen.is_some() && !have_tls {
            return Err(invalid("turn_tls_listen", "needs tls_cert and tls_key (the wss certificate)"));
        }
        let listen = self.listen.unwrap_or_else(|| {
            let any: std::net::IpAddr = if public_ips.iter().all(|ip| ip.is_ipv6()) {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv4Addr::UNSPECIFIED.into()
            };
            std::net::SocketAddr::new(any, 3478)
        });
        let mut s = crate::relay::RelaySettings::new(listen, public_ips);
        s.tls_listen = self.tls_listen;
        s.tls_name = self.tls_name;
        if let Some(range) = self.relay_ports {
            let parsed = range
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
            match parsed {
                Some((lo, hi)) if lo > 0 && lo <= hi => s.relay_ports = lo..=hi,
                _ => return Err(invalid("turn_relay_ports", format!("{range:?} is not MIN-MAX with 0 < MIN <= MAX"))),
            }
        }
        if let Some(n) = self.max_allocations_per_user {
            s.max_allocations_per_user = n;
        }
        if let Some(n) = self.max_allocations {
            s.max_allocations = n;
        }
        if s.max_allocations == 0 || s.max_allocations_per_user == 0 {
            return Err(invalid("turn_max_allocations", "must be at least 1"));
        }
        if let Some(k) = self.allocation_kbps {
            s.allocation_kbps = k;
        }
        if let Some(m) = self.total_mbps {
            s.total_mbps = m;
        }
        s.denied_peers = self.deny;
        s.allow_loopback_peers = self.allow_loopback_peers;
        Ok(Some(s))
    }
}

fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::ReadFile { path: path.to_owned(), source })?;
    toml::from_str(&text)
        .map_err(|e| ConfigError::ParseFile { path: path.to_owned(), message: e.to_string() })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Settings, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("hearth-signal").chain(args.iter().copied()))
            .map_err(|e| invalid("args", e.to_string()))?;
        cli.resolve()
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.config.hub.max_room_size, 8);
        assert_eq!(s.config.max_message_bytes, 65536);
        assert_eq!(s.config.hub.resume_grace, Duration::from_secs(30));
        assert!(matches!(s.config.hub.auth, JoinAuth::Open));
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn example_file_parses_and_flags_override_it() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/hearth-signal.example.toml");
        let s = parse(&["--config", example]).unwrap();
        assert_eq!(s.listen, "0.0.0.0:7878");
        assert_eq!(s.config.hub.max_room_size, 8);
        let s = parse(&["--config", example, "--max-room-size", "4", "--listen", "127.0.0.1:0"]).unwrap();
        assert_eq!(s.config.hub.max_room_size, 4);
        assert_eq!(s.listen, "127.0.0.1:0");
    }

    #[test]
    fn file_with_unknown_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("hearth-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "max_rom_size = 3\n").unwrap();
        let err = parse(&["--config", path.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("max_rom_size"), "{err}");
    }

    #[test]
    fn inconsistent_settings_are_refused() {
        assert!(parse(&["--tls-cert", "a.pem"]).is_err());
        assert!(parse(&["--turn-url", "turn:127.0.0.1:3478"]).is_err());
        assert!(parse(&["--jwt-secret", "short"]).is_err());
        assert!(parse(&["--max-room-size", "0"]).is_err());
        assert!(parse(&["--heartbeat-secs", "30", "--heartbeat-timeout-secs", "10"]).is_err());
        assert!(parse(&["--resume-grace-secs", "18446744073709551615"]).is_err());
        assert!(parse(&["--heartbeat-secs", "100000", "--heartbeat-timeout-secs", "200000"]).is_err());
        assert!(parse(&["--drain-secs", "18446744073709551615"]).is_err());
        let ok = parse(&["--turn-url", "turn:127.0.0.1:3478", "--turn-secret", "s3cret"]).unwrap();
        assert_eq!(ok.config.hub.turn.unwrap().ttl_secs, 600);
        let ok = parse(&["--jwt-secret", "0123456789abcdef"]).unwrap();
        assert!(matches!(ok.config.hub.auth, JoinAuth::Jwt { leeway_secs: 30, .. }));
    }

    #[test]
    fn limits_have_defaults_and_flags() {
        let s = parse(&[]).unwrap();
        assert_eq!(s.config.max_connections_per_ip, 64);
        let hub = &s.config.hub;
        assert_eq!(
            (hub.held_relay_bytes_per_peer, hub.held_relay_bytes_per_room, hub.held_relay_bytes_total),
            (1 << 20, 4 << 20, 64 << 20)
        );
        assert_eq!((hub.chat_log_bytes_per_room, hub.chat_log_bytes_total), (1 << 20, 256 << 20));
        assert_eq!((hub.max_sessions_per_ip, hub.max_rooms_created_per_min), (64, 10));
        assert!(!hub.ip_limits_include_loopback);
        assert_eq!(hub.room_lock_keep, Duration::from_secs(3600));
        let s = parse(&[
            "--max-connections-per-ip",
            "0",
            "--max-sessions-per-ip",
            "5",
            "--ip-limits-include-loopback",
            "--max-rooms-per-min",
            "2",
            "--room-lock-keep-secs",
            "60",
            "--held-relay-bytes-per-peer",
            "100000",
            "--held-relay-bytes-per-room",
            "200000",
            "--held-relay-bytes-total",
            "300000",
            "--chat-log-bytes-per-room",
            "70000",
            "--chat-log-bytes-total",
            "80000",
        ])
        .unwrap();
        let hub = &s.config.hub;
        assert_eq!(s.config.max_connections_per_ip, 0);
        assert_eq!((hub.max_sessions_per_ip, hub.max_rooms_created_per_min), (5, 2));
        assert!(hub.ip_limits_include_loopback);
        assert_eq!(hub.room_lock_keep, Duration::from_secs(60));
        assert_eq!(
            (hub.held_relay_bytes_per_peer, hub.held_relay_bytes_per_room, hub.held_relay_bytes_total),
            (100_000, 200_000, 300_000)
        );
        assert_eq!((hub.chat_log_bytes_per_room, hub.chat_log_bytes_total), (70_000, 80_000));
        assert!(parse(&["--held-relay-bytes-per-peer", "1000"]).is_err());
        assert!(parse(&["--chat-log-bytes-per-room", "1000"]).is_err());
        assert!(parse(&["--room-lock-keep-secs", "18446744073709551615"]).is_err());
    }

    fn write_config(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hearth-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn fixed_rooms_come_from_the_file_with_inline_or_file_passwords() {
        let secret = write_config("board.secret", "from-a-file\n");
        let path = write_config(
            "rooms.toml",
            &format!(
                "[[rooms]]\nname = \"board\"\npassword_file = {:?}\n\n[[rooms]]\nname = \"standup\"\npassword = \"inline\"\n",
                secret.to_str().unwrap()
            ),
        );
        let s = parse(&["--config", path.to_str().unwrap()]).unwrap();
        let fixed = &s.config.hub.fixed_rooms;
        assert_eq!(fixed.password("board"), Some("from-a-file"));
        assert_eq!(fixed.password("standup"), Some("inline"));
        assert_eq!(fixed.password("other"), None);
        let path = write_config("spaced.toml", "[[rooms]]\nname = \" board \"\npassword = \"x\"\n");
        let s = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(s.config.hub.fixed_rooms.password("board"), Some("x"), "names are normalized");
        let shown = format!("{:?}", s.config);
        assert!(!shown.contains("from-a-file") && !shown.contains("inline"), "{shown}");
        for (name, bad) in [
            (
                "dup.toml",
                "[[rooms]]\nname = \"a\"\npassword = \"x\"\n[[rooms]]\nname = \"a\"\npassword = \"y\"\n",
            ),
            ("nopw.toml", "[[rooms]]\nname = \"a\"\n"),
            ("empty.toml", "[[rooms]]\nname = \"a\"\npassword = \"\"\n"),
            ("both.toml", "[[rooms]]\nname = \"a\"\npassword = \"x\"\npassword_file = \"/x\"\n"),
            ("badname.toml", "[[rooms]]\nname = \"\"\npassword = \"x\"\n"),
            ("typo.toml", "[[rooms]]\nname = \"a\"\npasword = \"x\"\n"),
        ] {
            let path = write_config(name, bad);
            assert!(parse(&["--config", path.to_str().unwrap()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_are_comma_separated() {
        let s = parse(&["--allowed-origin", "https://a.example,https://b.example"]).unwrap();
        assert_eq!(s.config.allowed_origins, ["https://a.example", "https://b.example"]);
    }
}
