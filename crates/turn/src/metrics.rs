//! The relay's Prometheus metrics (allocations, relayed bytes, refusals and drops by reason).

use crate::relay::Refusal;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Label = [(&'static str, &'static str); 1];

/// Cheap to clone (atomics shared between clones); register once with [`RelayMetrics::register`].
#[derive(Clone, Debug, Default)]
pub struct RelayMetrics {
    pub allocations: Gauge,
    pub allocations_total: Counter,
    pub relayed_bytes: Family<Label, Counter>,
    pub refused: Family<Label, Counter>,
    pub dropped: Family<Label, Counter>,
    pub client_connections: Family<Label, Gauge>,
}

impl RelayMetrics {
    /// Adds the metrics under `turn_` to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let turn = registry.sub_registry_with_prefix("turn");
        turn.register("allocations", "TURN allocations alive now", self.allocations.clone());
        turn.register(
            "allocations_made",
            "TURN allocations made since start",
            self.allocations_total.clone(),
        );
        turn.register(
            "relayed_bytes",
            "Bytes relayed, by direction (to_peer, to_client)",
            self.relayed_bytes.clone(),
        );
        turn.register("refused_requests", "TURN requests refused, by reason", self.refused.clone());
        turn.register("dropped_packets", "Packets the relay dropped, by reason", self.dropped.clone());
        turn.register(
            "client_connections",
            "TCP and TLS connections of TURN clients, by transport",
            self.client_connections.clone(),
        );
    }

    pub(crate) fn refused(&self, why: Refusal) {
        self.refused.get_or_create(&[("reason", why.as_str())]).inc();
    }

    pub(crate) fn dropped(&self, why: &'static str) {
        self.dropped.get_or_create(&[("reason", why)]).inc();
    }

    pub(crate) fn relayed(&self, direction: &'static str, bytes: usize) {
        self.relayed_bytes.get_or_create(&[("direction", direction)]).inc_by(bytes as u64);
    }
}
