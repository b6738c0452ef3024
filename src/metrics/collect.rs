//! What a scrape reads instead of counting: the traffic shards' sums, and gauges taken from
//! the hub (connections, channels, presence subscriptions on this node) and the webhook sinks
//! (queues, and the counters the webhook tasks keep), so none of them costs anything between
//! scrapes.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::{AppLabel, RuleLabels, global};
use crate::state::ServerState;

/// Reads this node's state at each scrape.
pub struct NodeCollector {
    state: Arc<ServerState>,
}

impl std::fmt::Debug for NodeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCollector").finish_non_exhaustive()
    }
}

impl NodeCollector {
    /// A collector over `state`.
    pub fn new(state: Arc<ServerState>) -> Self {
        NodeCollector { state }
    }
}

/// One metric family's values, by label set.
type Values<L> = Vec<(L, u64)>;

impl Collector for NodeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let traffic = global().traffic_totals();
        let by_app = |value: fn(&super::TrafficTotals) -> u64| -> Values<AppLabel> {
            traffic
                .iter()
                .map(|(app_id, totals)| (label(app_id), value(totals)))
                .collect()
        };
        let counters = [
            (
                "relay_messages_sent",
                "Channel messages delivered to this node's connections",
                by_app(|totals| totals.messages_sent),
            ),
            (
                "relay_sent_bytes",
                "Bytes of the channel messages delivered to this node's connections",
                by_app(|totals| totals.bytes_sent),
            ),
            (
                "relay_messages_received",
                "WebSocket messages received from this node's connections",
                by_app(|totals| totals.messages_received),
            ),
            (
                "relay_received_bytes",
                "Bytes of the WebSocket messages received from this node's connections",
                by_app(|totals| totals.bytes_received),
            ),
        ];
        for (name, help, values) in counters {
            encode(&mut encoder, name, help, MetricType::Counter, &values)?;
        }
        self.encode_hub(&mut encoder)?;
        self.encode_webhooks(&mut encoder)
    }
}

impl NodeCollector {
    fn encode_hub(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let hub = &self.state.hub;
        let mut app_ids = hub.app_ids();
        app_ids.sort_unstable();
        let mut connections = Vec::new();
        let mut channels = Vec::new();
        let mut presence = Vec::new();
        for app_id in &app_ids {
            let app = hub.app(app_id);
            let counts = app.channel_counts();
            connections.push((label(app_id), app.connection_count() as u64));
            channels.push((label(app_id), counts.channels as u64));
            presence.push((label(app_id), counts.presence_subscriptions as u64));
        }
        let gauges = [
            (
                "relay_connections",
                "WebSocket connections open on this node",
                connections,
            ),
            (
                "relay_channels",
                "Channels with at least one subscriber on this node",
                channels,
            ),
            (
                "relay_presence_subscriptions",
                "Presence channel subscriptions on this node (a member on two connections counts twice)",
                presence,
            ),
        ];
        for (name, help, values) in gauges {
            encode(encoder, name, help, MetricType::Gauge, &values)?;
        }
        Ok(())
    }

    fn encode_webhooks(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.state.webhooks.all();
        let mut sinks: Vec<_> = all.iter().collect();
        sinks.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut queued = Vec::new();
        let mut pending = Vec::new();
        let mut delivered = Vec::new();
        let mut retries = Vec::new();
        let mut dropped = Vec::new();
        for (app_id, sink) in sinks {
            let stats = sink.stats();
            let count = |value: &std::sync::atomic::AtomicU64| {
                value.load(std::sync::atomic::Ordering::Relaxed)
            };
            queued.push((label(app_id), sink.queued() as u64));
            pending.push((label(app_id), count(&stats.pending_batches)));
            delivered.push((label(app_id), count(&stats.delivered)));
            let gave_up = count(&stats.dropped_after_retries);
            retries.push((
                label(app_id),
                count(&stats.failed_attempts).saturating_sub(gave_up),
            ));
            let reasons = [
                ("retries_exhausted", gave_up),
                ("endpoint_queue_full", count(&stats.dropped_queue_full)),
                ("dispatcher_queue_full", count(&stats.dropped_incoming)),
            ];
            for (reason, value) in reasons {
                let labels = RuleLabels {
                    app_id: app_id.clone(),
                    rule: reason,
                };
                dropped.push((labels, value));
            }
        }
        let gauges = [
            (
                "relay_webhook_queue_depth",
                "Webhook events waiting for the app's dispatcher",
                queued,
            ),
            (
                "relay_webhook_pending_batches",
                "Webhook batches accepted by an endpoint's delivery and not yet delivered or dropped",
                pending,
            ),
        ];
        for (name, help, values) in gauges {
            encode(encoder, name, help, MetricType::Gauge, &values)?;
        }
        let counters = [
            (
                "relay_webhook_deliveries",
                "Webhook batches a receiver accepted (2xx)",
                delivered,
            ),
            (
                "relay_webhook_retries",
                "Webhook attempts that failed and were tried again",
                retries,
            ),
        ];
        for (name, help, values) in counters {
            encode(encoder, name, help, MetricType::Counter, &values)?;
        }
        let help = "Webhook batches (or, for dispatcher_queue_full, events) dropped, by reason";
        encode(
            encoder,
            "relay_webhook_dropped",
            help,
            MetricType::Counter,
            &dropped,
        )
    }
}

fn label(app_id: &str) -> AppLabel {
    AppLabel {
        app_id: app_id.to_owned(),
    }
}

/// Writes one family of `kind` (a counter or a gauge) with its `values`.
fn encode<L: prometheus_client::encoding::EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    values: &[(L, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in values {
        let metric = family.encode_family(labels)?;
        match kind {
            MetricType::Gauge => {
                ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(metric)?;
            }
            _ => ConstCounter::new(*value).encode(metric)?,
        }
    }
    Ok(())
}
