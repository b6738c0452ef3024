//! Webhooks: telling an app's backend what happened (channels occupied and vacated, members
//! added and removed, client events, cache misses, subscription counts), signed as Pusher
//! signs them.
//!
//! The message path only ever calls [`WebhookSink::emit`], which puts the event on a bounded
//! queue without waiting (a full queue drops it, counted). Events are raised where the change
//! happens, under the lock that orders it (the hub's channel lock, the presence roster's
//! lock), so the dispatcher sees a channel's occupy and vacate in their true order.
//!
//! Behind the queue, each app has a [`Dispatcher`](dispatcher::Dispatcher) task (delays,
//! cancellation, de-duplication, routing, batching) and each endpoint a
//! [`Delivery`](delivery::Delivery) task (signing, POSTing, retrying), each endpoint with a
//! bounded queue of its own. Both tasks run on the server's main thread, away from the
//! connection workers.

mod batch;
mod delivery;
mod dispatcher;
mod endpoint;
mod event;
mod lifecycle;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::warn;

use crate::apps::App;
use crate::config::AppConfig;

pub use batch::{Batcher, WebhookBatch};
pub use endpoint::Endpoint;
pub use event::{EventKind, EventKinds, WebhookEvent};
pub use lifecycle::{CACHE_MISS_DEDUP_WINDOW, Lifecycle};

/// Events waiting for an app's dispatcher. It never waits on the network, so this only fills
/// if the main thread stalls.
const INCOMING_QUEUE: usize = 16 * 1024;

/// Counters of one app's webhooks (for the metrics endpoint).
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events dropped because the dispatcher's queue was full.
    pub dropped_incoming: AtomicU64,
    /// Batches a receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Attempts that failed (non-2xx or no answer); each is retried or dropped.
    pub failed_attempts: AtomicU64,
    /// Batches dropped after retrying for the endpoint's `retry_for`.
    pub dropped_after_retries: AtomicU64,
    /// Batches dropped because their endpoint's queue was full.
    pub dropped_queue_full: AtomicU64,
}

/// The message path's handle to an app's webhooks: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    queue: mpsc::Sender<WebhookEvent>,
    wanted: EventKinds,
    stats: Arc<WebhookStats>,
}

impl WebhookSink {
    /// Whether any endpoint needs events of `kind` (checked before building one).
    pub fn wants(&self, kind: EventKind) -> bool {
        self.wanted.contains(kind)
    }

    /// Queues `event` for the dispatcher, if anyone wants its kind.
    pub fn emit(&self, event: WebhookEvent) {
        if !self.wants(event.kind()) {
            return;
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.queue.try_send(event) {
            let dropped = self.stats.dropped_incoming.fetch_add(1, Ordering::Relaxed);
            if dropped % 1000 == 0 {
                warn!(
                    dropped = dropped + 1,
                    "webhook events dropped: dispatcher queue full"
                );
            }
        }
    }

    /// This app's counters.
    pub fn stats(&self) -> &Arc<WebhookStats> {
        &self.stats
    }
}

/// An app's webhook tasks, built but not yet running.
pub struct WebhookWorkers {
    dispatcher: dispatcher::Dispatcher,
    events: mpsc::Receiver<WebhookEvent>,
    deliveries: Vec<(delivery::Delivery, mpsc::Receiver<WebhookBatch>)>,
}

impl WebhookWorkers {
    /// Starts the tasks on the current actix runtime (the server's main thread).
    pub fn spawn(self) {
        // https receivers use rustls on ring. Naming the provider here means a second one
        // enabled by some other crate's features cannot make the TLS client panic later.
        // An error only says a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        for (delivery, queue) in self.deliveries {
            actix_web::rt::spawn(delivery.run(queue));
        }
        actix_web::rt::spawn(self.dispatcher.run(self.events));
    }
}

/// The sink and tasks for `app`'s `[[apps.webhooks]]`; `None` when it has no endpoints.
pub fn for_app(app: &Arc<App>, config: &AppConfig) -> Option<(WebhookSink, WebhookWorkers)> {
    if config.webhooks.is_empty() {
        return None;
    }
    let stats = Arc::new(WebhookStats::default());
    let window = Duration::from_millis(config.webhook_batch_window_ms);
    let mut wanted = EventKinds::default();
    let mut routes = Vec::with_capacity(config.webhooks.len());
    let mut deliveries = Vec::with_capacity(config.webhooks.len());
    for webhook in &config.webhooks {
        let endpoint = Arc::new(Endpoint::from_config(webhook));
        wanted = wanted.union(endpoint.kinds);
        let (queue, batches) = mpsc::channel(config.webhook_queue_size);
        let batcher = Batcher::new(window, config.webhook_batch_max_events);
        routes.push(dispatcher::Route::new(endpoint.clone(), batcher, queue));
        let delivery = delivery::Delivery::new(app.clone(), endpoint, stats.clone());
        deliveries.push((delivery, batches));
    }
    let lifecycle = Lifecycle::new(Duration::from_millis(config.webhook_vacate_delay_ms));
    let dispatcher = dispatcher::Dispatcher::new(app.id.clone(), lifecycle, routes, stats.clone());
    let (queue, events) = mpsc::channel(INCOMING_QUEUE);
    let sink = WebhookSink {
        queue,
        wanted: with_counterparts(wanted),
        stats,
    };
    let workers = WebhookWorkers {
        dispatcher,
        events,
        deliveries,
    };
    Some((sink, workers))
}

/// Arrivals cancel delayed departures and the reverse, so each needs the other's events even
/// when only one of them is sent.
fn with_counterparts(mut kinds: EventKinds) -> EventKinds {
    let pairs = [
        (EventKind::ChannelOccupied, EventKind::ChannelVacated),
        (EventKind::MemberAdded, EventKind::MemberRemoved),
    ];
    for (arrival, departure) in pairs {
        if kinds.contains(arrival) || kinds.contains(departure) {
            kinds.insert(arrival);
            kinds.insert(departure);
        }
    }
    kinds
}
