//! Prometheus metrics: what this node counts, and its exposition on the `[metrics]` listener
//! ([`exposition`]).
//!
//! Counting is shaped by what it may cost:
//! - the message path (every publish's deliveries, every client message) counts into an
//!   app's [`AppTraffic`], sharded per thread and added once per publish ([`traffic`]);
//! - everything else (connections opening and closing, HTTP calls, refusals, security events,
//!   the adapter's publishes) goes through prometheus-client families in [`Metrics`]: a map
//!   look-up under a read lock, small beside the handshake or request it counts;
//! - gauges (open connections, channels, presence subscriptions, webhook queues) are read at
//!   scrape time from the hub and the webhook sinks ([`collect`]), so they cost nothing in
//!   between.
//!
//! Labels are bounded: `app_id` is a configured app's id (`unknown` for a request to any
//! other), endpoints are route patterns, close codes, rules and kinds come from closed sets.
//! Never a channel name, user id or address.
//!
//! One set of metrics per process ([`global`]), as Prometheus clients keep: the families are
//! made once and each module counts into them where the event happens.

mod collect;
pub mod exposition;
mod traffic;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

pub use traffic::{AppTraffic, TrafficTotals};

/// The `app_id` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppLabel {
    /// A configured app's id.
    pub app_id: String,
}

/// Labels of a closed connection.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// The app.
    pub app_id: String,
    /// The close code, or `other` for one a client chose outside the known set.
    pub code: &'static str,
}

/// Labels of an HTTP call.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The app (`unknown` for an id no app has; empty when the path names none: the health
    /// endpoints, the server-wide terminate, unmatched paths).
    pub app_id: String,
    /// The route, as `events` or `channels/{channel_name}`.
    pub endpoint: &'static str,
    /// The response's status.
    pub status: u16,
}

/// Labels of a refusal or an event counted by what caused it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The app.
    pub app_id: String,
    /// The limit, rule or kind.
    pub rule: &'static str,
}

/// Everything this process counts outside the message path.
#[derive(Debug)]
pub struct Metrics {
    /// WebSocket connections admitted.
    pub connections_opened: Family<AppLabel, Counter>,
    /// Admitted connections that ended, by close code.
    pub connections_closed: Family<CloseLabels, Counter>,
    /// Connections closed with 4100 for not keeping up with their messages.
    pub outbound_overflows: Family<AppLabel, Counter>,
    /// HTTP API and health calls, by endpoint and status.
    pub http_requests: Family<HttpLabels, Counter>,
    /// Requests, connections and events refused by a rate limit or quota.
    pub limit_refusals: Family<RuleLabels, Counter>,
    /// Requests and handshakes refused by a security rule, a ban or a lockdown.
    pub guard_refusals: Family<RuleLabels, Counter>,
    /// Security events (the activity log's), by kind.
    pub security_events: Family<RuleLabels, Counter>,
    /// Seconds a publish to Redis took (the cluster adapter).
    pub adapter_publish_seconds: Histogram,
    /// Redis commands that failed.
    pub adapter_errors: Counter,
    /// Times the connection to Redis was made again after it was lost.
    pub adapter_reconnects: Counter,
    traffic: Mutex<HashMap<String, Arc<AppTraffic>>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| Metrics {
    connections_opened: Family::default(),
    connections_closed: Family::default(),
    outbound_overflows: Family::default(),
    http_requests: Family::default(),
    limit_refusals: Family::default(),
    guard_refusals: Family::default(),
    security_events: Family::default(),
    // 100 µs to about 1.6 s.
    adapter_publish_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
    adapter_errors: Counter::default(),
    adapter_reconnects: Counter::default(),
    traffic: Mutex::default(),
});

/// This process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

/// The close codes counted by their number; any other is `other`.
const KNOWN_CLOSE_CODES: [&str; 23] = [
    "1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009", "1011", "4000", "4001",
    "4003", "4004", "4005", "4006", "4007", "4008", "4009", "4100", "4200", "4201", "4301",
];

fn close_code_label(code: u16) -> &'static str {
    let text = code.to_string();
    KNOWN_CLOSE_CODES
        .iter()
        .find(|known| **known == text)
        .copied()
        .unwrap_or("other")
}

impl Metrics {
    /// The traffic counters of `app_id`, made on first use and kept for the process's life
    /// (a counter must not go back to zero while the process runs).
    pub fn traffic(&self, app_id: &str) -> Arc<AppTraffic> {
        let mut traffic = self.traffic.lock().unwrap_or_else(PoisonError::into_inner);
        traffic.entry(app_id.to_owned()).or_default().clone()
    }

    /// Every app's traffic totals, by app id.
    pub fn traffic_totals(&self) -> Vec<(String, TrafficTotals)> {
        let traffic = self.traffic.lock().unwrap_or_else(PoisonError::into_inner);
        let mut totals: Vec<_> = traffic
            .iter()
            .map(|(app_id, traffic)| (app_id.clone(), traffic.totals()))
            .collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        totals
    }

    /// Counts a connection of `app_id` admitted.
    pub fn connection_opened(&self, app_id: &str) {
        self.connections_opened.get_or_create(&app(app_id)).inc();
    }

    /// Counts a connection of `app_id` ended with `code` (4100 for not keeping up counts as
    /// an outbound overflow too, when `overflowed`).
    pub fn connection_closed(&self, app_id: &str, code: u16, overflowed: bool) {
        let labels = CloseLabels {
            app_id: app_id.to_owned(),
            code: close_code_label(code),
        };
        self.connections_closed.get_or_create(&labels).inc();
        if overflowed {
            self.outbound_overflows.get_or_create(&app(app_id)).inc();
        }
    }

    /// Counts a refusal of `app_id`'s `rule` (a limit's scope).
    pub fn limit_refused(&self, app_id: &str, rule: &'static str) {
        self.limit_refusals
            .get_or_create(&rule_of(app_id, rule))
            .inc();
    }

    /// Counts a refusal by `app_id`'s security `rule`.
    pub fn guard_refused(&self, app_id: &str, rule: &'static str) {
        self.guard_refusals
            .get_or_create(&rule_of(app_id, rule))
            .inc();
    }

    /// Counts `count` security events of `kind` for `app_id`.
    pub fn security_event(&self, app_id: &str, kind: &'static str, count: u64) {
        self.security_events
            .get_or_create(&rule_of(app_id, kind))
            .inc_by(count);
    }
}

fn app(app_id: &str) -> AppLabel {
    AppLabel {
        app_id: app_id.to_owned(),
    }
}

fn rule_of(app_id: &str, rule: &'static str) -> RuleLabels {
    RuleLabels {
        app_id: app_id.to_owned(),
        rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_outside_the_known_set_share_one_label() {
        assert_eq!(close_code_label(4100), "4100");
        assert_eq!(close_code_label(1005), "1005");
        assert_eq!(close_code_label(4321), "other");
        assert_eq!(close_code_label(0), "other");
    }
}
