//! The server's Prometheus metrics, served at `/metrics` in OpenMetrics text format.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Label = [(&'static str, &'static str); 1];
type PathLabels = [(&'static str, &'static str); 3];

/// Every metric the server exports. Cheap to update from any task (atomics).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub connections_accepted: Counter,
    pub rooms: Gauge,
    pub peers: Gauge,
    pub joins: Family<Label, Counter>,
    pub messages: Family<Label, Counter>,
    pub errors: Family<Label, Counter>,
    pub auth_rejected: Family<Label, Counter>,
    pub rate_limited: Counter,
    pub upgrades_refused: Family<Label, Counter>,
    pub call_outcomes: Family<Label, Counter>,
    pub call_connect_seconds: Histogram,
    /// Failed links by the reason clients give.
    pub call_failures: Family<Label, Counter>,
    /// Connected links by selected candidate pair, as clients report it.
    pub call_paths: Family<PathLabels, Counter>,
    /// How long rooms lived (first join to empty), observed when they empty.
    pub room_seconds: Histogram,
    /// The most people in a room at once, observed when it empties.
    pub room_peak_members: Histogram,
    pub held_relay_bytes: Gauge,
    pub chat_log_bytes: Gauge,
    pub kept_room_locks: Gauge,
    /// The embedded TURN relay's metrics (`hearth_turn_*`; zero when it is off).
    pub turn: hearth_turn::RelayMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hearth");
        let connections = Gauge::default();
        let connections_accepted = Counter::default();
        let rooms = Gauge::default();
        let peers = Gauge::default();
        let joins = Family::<Label, Counter>::default();
        let messages = Family::<Label, Counter>::default();
        let errors = Family::<Label, Counter>::default();
        let auth_rejected = Family::<Label, Counter>::default();
        let rate_limited = Counter::default();
        let upgrades_refused = Family::<Label, Counter>::default();
        let call_outcomes = Family::<Label, Counter>::default();
        let call_connect_seconds = Histogram::new([0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]);
        let call_paths = Family::<PathLabels, Counter>::default();
        let call_failures = Family::<Label, Counter>::default();
        let room_seconds =
            Histogram::new([10.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0]);
        let room_peak_members = Histogram::new([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 16.0]);
        let held_relay_bytes = Gauge::default();
        let chat_log_bytes = Gauge::default();
        let kept_room_locks = Gauge::default();
        registry.register("connections", "Open WebSocket connections", connections.clone());
        registry.register(
            "connections_accepted",
            "WebSocket connections accepted since start",
            connections_accepted.clone(),
        );
        registry.register("rooms", "Rooms that exist now", rooms.clone());
        registry.register("peers", "Peers in rooms now, reconnecting ones included", peers.clone());
        registry.register("joins", "Successful joins, by kind (fresh or resume)", joins.clone());
        registry.register("messages", "Client messages received, by type", messages.clone());
        registry.register("errors", "Error messages sent to clients, by code", errors.clone());
        registry.register(
            "auth_rejected",
            "Joins refused for a missing or wrong password or token, by code",
            auth_rejected.clone(),
        );
        registry.register("rate_limited", "Messages dropped by the rate limit", rate_limited.clone());
        registry.register(
            "upgrades_refused",
            "WebSocket upgrades refused, by reason",
            upgrades_refused.clone(),
        );
        registry.register(
            "call_outcomes",
            "Peer-to-peer call outcomes reported by clients",
            call_outcomes.clone(),
        );
        registry.register(
            "call_connect_seconds",
            "Time to establish a peer-to-peer connection, as clients report it",
            call_connect_seconds.clone(),
        );
        registry.register(
            "call_failures",
            "Peer-to-peer links that failed, by reason (ice: no working path; timeout: never connected)",
            call_failures.clone(),
        );
        registry.register(
            "call_paths",
            "Connected peer-to-peer links by selected candidate pair (local, remote type; relay transport)",
            call_paths.clone(),
        );
        registry.register("room_seconds", "How long rooms lived, first join to empty", room_seconds.clone());
        registry.register(
            "room_peak_members",
            "The most people in a room at once, when it emptied",
            room_peak_members.clone(),
        );
        registry.register(
            "held_relay_bytes",
            "Bytes of offers, answers and ICE candidates held for reconnecting peers",
            held_relay_bytes.clone(),
        );
        registry.register("chat_log_bytes", "Bytes of chat held in the rooms' logs", chat_log_bytes.clone());
        registry.register(
            "kept_room_locks",
            "Passwords kept for locked rooms that emptied",
            kept_room_locks.clone(),
        );
        let turn = hearth_turn::RelayMetrics::default();
        turn.register(&mut registry);
        Metrics {
            turn,
            registry,
            connections,
            connections_accepted,
            rooms,
            peers,
            joins,
            messages,
            errors,
            auth_rejected,
            rate_limited,
            upgrades_refused,
            call_outcomes,
            call_connect_seconds,
            call_paths,
            call_failures,
            room_seconds,
            room_peak_members,
            held_relay_bytes,
            chat_log_bytes,
            kept_room_locks,
        }
    }

    /// The metrics in OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_names_with_labels() {
        let m = Metrics::new();
        m.messages.get_or_create(&[("type", "chat")]).inc();
        m.errors.get_or_create(&[("code", "room_full")]).inc_by(2);
        m.call_connect_seconds.observe(0.08);
        let text = m.render();
        assert!(text.contains("hearth_messages_total{type=\"chat\"} 1"), "{text}");
        assert!(text.contains("hearth_errors_total{code=\"room_full\"} 2"), "{text}");
        assert!(text.contains("hearth_call_connect_seconds_count 1"), "{text}");
        assert!(text.contains("hearth_connections 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
