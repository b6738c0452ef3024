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
//! [`Delivery`](delivery::Delivery) task (signing, POSTing with up to `concurrency` requests
//! in flight, retrying), each endpoint with a bounded queue of its own. Whatever the
//! concurrency, the events of one channel reach a receiver in the order they happened
//! ([`schedule`]), and every request carries an id its retries repeat (delivery is at least
//! once). Both tasks run on the server's main thread, away from the
//! connection workers. At shutdown, once the connections are closed, [`RunningWebhooks::flush`]
//! sends what is still delayed or gathered and gives the deliveries a bounded time to finish.
//!
//! Occupancy and membership events are raised by the adapter, which decides the cluster's
//! transitions (with one node, the hub's own); client events by the WebSocket layer. Both
//! raise through [`WebhookSinks`].

mod batch;
mod client;
mod delivery;
mod dispatcher;
mod endpoint;
mod event;
mod journal;
mod lifecycle;
mod notice;
mod schedule;
mod wiring;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::apps::App;
use crate::config::AppConfig;
use crate::protocol::{WebhookKind, WebhookKinds};
use crate::store::Store;

pub use batch::{Batcher, WebhookBatch};
pub use endpoint::Endpoint;
pub use event::WebhookEvent;
pub use journal::{Journal, JournalWriter, Redelivery};
pub use lifecycle::{CACHE_MISS_DEDUP_WINDOW, Lifecycle};
pub use notice::{NoticeError, RotationNotice};
pub use wiring::{WebhookWiring, journaled};

/// Events waiting for an app's dispatcher. It never waits on the network, so this only fills
/// if the main thread stalls.
const INCOMING_QUEUE: usize = 16 * 1024;

/// How often (in dropped events) a full or closed dispatcher queue is logged again.
const LOG_EVERY_DROPS: u64 = 1000;

/// Milliseconds since the Unix epoch (a webhook body's `time_ms`, a batch's acceptance).
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Counts one drop in `counter`; returns the total when this drop is to be logged (the first
/// and then every [`LOG_EVERY_DROPS`]th, so a flood of drops cannot flood the log).
fn count_drop(counter: &AtomicU64) -> Option<u64> {
    let before = counter.fetch_add(1, Ordering::Relaxed);
    (before % LOG_EVERY_DROPS == 0).then_some(before + 1)
}

/// Counters of one app's webhooks, read by the metrics endpoint; the first drop of each kind
/// (and every thousandth after) is also logged, and the totals are logged at shutdown.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Events dropped because the dispatcher's queue was full (or its task was gone).
    pub dropped_incoming: AtomicU64,
    /// Batches a receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Attempts that failed (non-2xx or no answer); each is retried or dropped.
    pub failed_attempts: AtomicU64,
    /// Batches dropped after retrying for the endpoint's `retry_for`.
    pub dropped_after_retries: AtomicU64,
    /// Batches dropped because their endpoint's queue was full (or its delivery stopped).
    pub dropped_queue_full: AtomicU64,
    /// Batches an endpoint's delivery holds (accepted, not yet delivered or dropped).
    pub pending_batches: AtomicU64,
}

/// An event on its way to the dispatcher, with the moment it happened.
#[derive(Debug)]
pub struct RaisedEvent {
    /// The event.
    pub event: WebhookEvent,
    /// When it happened (the vacate delay counts from here, not from its dequeuing).
    pub raised_at: Instant,
}

/// The message path's handle to an app's webhooks: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct WebhookSink {
    app_id: Arc<str>,
    queue: mpsc::Sender<RaisedEvent>,
    wanted: WebhookKinds,
    stats: Arc<WebhookStats>,
}

impl WebhookSink {
    /// The app's webhook counters.
    pub fn stats(&self) -> &WebhookStats {
        &self.stats
    }

    /// Events waiting for the app's dispatcher.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Whether any endpoint needs events of `kind` (checked before building one).
    pub fn wants(&self, kind: WebhookKind) -> bool {
        self.wanted.contains(kind)
    }

    /// Queues `event` for the dispatcher, if anyone wants its kind.
    pub fn emit(&self, event: WebhookEvent) {
        self.emit_raised(RaisedEvent {
            event,
            raised_at: Instant::now(),
        });
    }

    /// Queues an event raised at its `raised_at`, if anyone wants its kind.
    pub fn emit_raised(&self, raised: RaisedEvent) {
        if !self.wants(raised.event.kind()) {
            return;
        }
        if self.queue.try_send(raised).is_err()
            && let Some(dropped) = count_drop(&self.stats.dropped_incoming)
        {
            warn!(
                app = %self.app_id,
                dropped,
                "webhook events dropped: dispatcher queue full or stopped"
            );
        }
    }

    /// A sink wanting `wanted`, and the queue it feeds (for tests of the event sources).
    #[cfg(test)]
    pub(crate) fn for_test(wanted: WebhookKinds) -> (Self, mpsc::Receiver<RaisedEvent>) {
        let (queue, events) = mpsc::channel(64);
        let sink = WebhookSink {
            app_id: Arc::from("test"),
            queue,
            wanted: with_counterparts(wanted),
            stats: Arc::default(),
        };
        (sink, events)
    }
}

/// The names of the events raised into a test sink's queue so far, in order.
#[cfg(test)]
pub(crate) fn raised_names(queue: &mut mpsc::Receiver<RaisedEvent>) -> Vec<String> {
    std::iter::from_fn(|| queue.try_recv().ok())
        .map(|raised| serde_json::to_value(raised.event).unwrap()["name"].to_string())
        .map(|name| name.trim_matches('"').to_owned())
        .collect()
}

/// The webhook sinks of every app that has endpoints, by app id; cheap to clone (the adapter,
/// which raises the occupancy and membership events, and the WebSocket layer, which raises
/// client events, share one), and swapped whole for every holder by a configuration reload.
#[derive(Debug, Clone, Default)]
pub struct WebhookSinks(Arc<ArcSwap<HashMap<String, WebhookSink>>>);

impl WebhookSinks {
    /// The sinks in `by_app`.
    pub fn new(by_app: HashMap<String, WebhookSink>) -> Self {
        WebhookSinks(Arc::new(ArcSwap::from_pointee(by_app)))
    }

    /// Raises into `by_app` from now on (a reload); an app's old sink is dropped, so its
    /// dispatcher sends what it holds and ends.
    pub fn replace(&self, by_app: HashMap<String, WebhookSink>) {
        self.0.store(Arc::new(by_app));
    }

    /// Every app's sink, by app id.
    pub fn all(&self) -> Arc<HashMap<String, WebhookSink>> {
        self.0.load_full()
    }

    /// Raises a webhook event of `kind` for `app_id`, built by `event` only if an endpoint
    /// wants it.
    pub fn emit(&self, app_id: &str, kind: WebhookKind, event: impl FnOnce() -> WebhookEvent) {
        if let Some(sink) = self.0.load().get(app_id)
            && sink.wants(kind)
        {
            sink.emit(event());
        }
    }

    /// As [`WebhookSinks::emit`], for an event that happened at `raised_at` (a departure
    /// whose vacate delay was waited out elsewhere is then due at once).
    pub fn emit_at(
        &self,
        app_id: &str,
        kind: WebhookKind,
        raised_at: Instant,
        event: impl FnOnce() -> WebhookEvent,
    ) {
        if let Some(sink) = self.0.load().get(app_id)
            && sink.wants(kind)
        {
            sink.emit_raised(RaisedEvent {
                event: event(),
                raised_at,
            });
        }
    }
}

/// An app's webhook tasks, built but not yet running.
pub struct WebhookWorkers {
    app_id: String,
    stats: Arc<WebhookStats>,
    dispatcher: dispatcher::Dispatcher,
    events: mpsc::Receiver<RaisedEvent>,
    deliveries: Vec<(delivery::Delivery, mpsc::Receiver<WebhookBatch>)>,
}

/// Every app's webhook tasks and the journal's writer, built but not yet running.
#[derive(Default)]
pub struct WebhookTasks {
    /// Each app's.
    pub apps: Vec<WebhookWorkers>,
    /// The journal's writer, the store it writes and where claimed batches go, when a batch
    /// is kept anywhere.
    pub journal: Option<(JournalWriter, Arc<dyn Store>, Redelivery)>,
}

/// Every app's running webhook tasks.
pub struct RunningWebhooks {
    flush: CancellationToken,
    running: std::sync::Mutex<Running>,
}

/// The tasks started so far, and each app's counters (for the totals at shutdown).
#[derive(Default)]
struct Running {
    tasks: Vec<JoinHandle<()>>,
    stats: HashMap<String, Arc<WebhookStats>>,
}

impl RunningWebhooks {
    /// Starts every app's tasks on the current actix runtime (the server's main thread).
    pub fn start(workers: WebhookTasks) -> Self {
        let running = RunningWebhooks {
            flush: CancellationToken::new(),
            running: std::sync::Mutex::default(),
        };
        if let Some((writer, store, redelivery)) = workers.journal {
            running
                .lock()
                .tasks
                .push(actix_web::rt::spawn(writer.run(store, redelivery)));
        }
        for app in workers.apps {
            running.add(app);
        }
        running
    }

    /// Starts one app's tasks (at start-up, or for an app a reload added or changed) on the
    /// current actix runtime. Tasks that have ended (an app's old workers, once their sink
    /// was dropped and they sent what they held) are let go of.
    pub fn add(&self, app: WebhookWorkers) {
        let mut running = self.lock();
        running.tasks.retain(|task| !task.is_finished());
        running.stats.insert(app.app_id, app.stats);
        for (delivery, queue) in app.deliveries {
            running
                .tasks
                .push(actix_web::rt::spawn(delivery.run(queue)));
        }
        let dispatcher = app.dispatcher.run(app.events, self.flush.clone());
        running.tasks.push(actix_web::rt::spawn(dispatcher));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Running> {
        self.running
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Sends every delayed event and gathered batch now (the connections are closed, so
    /// nobody comes back) and waits up to `limit` for the deliveries, retries included.
    pub async fn flush(&self, limit: Duration) {
        self.flush.cancel();
        let Running { tasks, stats } = std::mem::take(&mut *self.lock());
        let finished = futures_util::future::join_all(tasks);
        let complete = tokio::time::timeout(limit, finished).await.is_ok();
        if !complete {
            warn!(
                ?limit,
                "webhooks still undelivered at shutdown were dropped (not in the totals)"
            );
        }
        for (app_id, stats) in &stats {
            let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
            info!(
                app = %app_id,
                delivered = count(&stats.delivered),
                failed_attempts = count(&stats.failed_attempts),
                dropped_after_retries = count(&stats.dropped_after_retries),
                dropped_queue_full = count(&stats.dropped_queue_full),
                dropped_incoming = count(&stats.dropped_incoming),
                complete,
                "webhook totals"
            );
        }
    }
}

/// The sink and tasks for `app`'s `[[apps.webhooks]]`; `None` when it has no endpoints. With
/// a `journal`, the deliveries keep what they accept in it, and their queues are added to
/// `redelivery` (for batches claimed from a dead process). With `replacing` (the app's sink
/// before a reload), the counters go on from its. With a `registry`, the registry's app of
/// the same id signs (see [`delivery::Delivery::signing_through`]).
pub fn for_app(
    app: &Arc<App>,
    config: &AppConfig,
    journal: Option<&Arc<Journal>>,
    redelivery: &Redelivery,
    replacing: Option<&WebhookSink>,
    registry: Option<&Arc<crate::apps::Apps>>,
) -> Option<(WebhookSink, WebhookWorkers)> {
    if config.webhooks.is_empty() {
        return None;
    }
    let stats = replacing.map_or_else(Arc::default, |sink| sink.stats.clone());
    let window = Duration::from_millis(config.webhook_batch_window_ms);
    let mut wanted = WebhookKinds::default();
    let mut routes = Vec::with_capacity(config.webhooks.len());
    let mut deliveries = Vec::with_capacity(config.webhooks.len());
    for (index, webhook) in config.webhooks.iter().enumerate() {
        let endpoint = Arc::new(Endpoint::from_config(webhook));
        wanted = wanted.union(endpoint.kinds);
        let (queue, batches) = mpsc::channel(config.webhook_queue_size);
        let batcher = Batcher::new(window, config.webhook_batch_max_events);
        let mut delivery = delivery::Delivery::new(
            app.clone(),
            endpoint.clone(),
            stats.clone(),
            config.webhook_queue_size,
        );
        if let Some(registry) = registry {
            delivery = delivery.signing_through(registry.clone());
        }
        if let Some(journal) = journal {
            delivery = delivery.journaled(journal.clone(), index);
            redelivery.add(&app.id, index, queue.clone(), endpoint.retry_for);
        }
        routes.push(dispatcher::Route::new(endpoint, batcher, queue));
        deliveries.push((delivery, batches));
    }
    let lifecycle = Lifecycle::new(Duration::from_millis(config.webhook_vacate_delay_ms));
    let dispatcher = dispatcher::Dispatcher::new(app.id.clone(), lifecycle, routes, stats.clone());
    let (queue, events) = mpsc::channel(INCOMING_QUEUE);
    let sink = WebhookSink {
        app_id: Arc::from(app.id.as_str()),
        queue,
        wanted: with_counterparts(wanted),
        stats,
    };
    let workers = WebhookWorkers {
        app_id: app.id.clone(),
        stats: sink.stats.clone(),
        dispatcher,
        events,
        deliveries,
    };
    Some((sink, workers))
}

/// Arrivals cancel delayed departures and the reverse, so each needs the other's events even
/// when only one of them is sent.
fn with_counterparts(mut kinds: WebhookKinds) -> WebhookKinds {
    let pairs = [
        (WebhookKind::ChannelOccupied, WebhookKind::ChannelVacated),
        (WebhookKind::MemberAdded, WebhookKind::MemberRemoved),
    ];
    for (arrival, departure) in pairs {
        if kinds.contains(arrival) || kinds.contains(departure) {
            kinds.insert(arrival);
            kinds.insert(departure);
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_departure_alone_still_needs_its_arrival_to_be_cancelled_and_the_reverse() {
        let vacated_only = with_counterparts([WebhookKind::ChannelVacated].into_iter().collect());
        assert!(vacated_only.contains(WebhookKind::ChannelOccupied));
        let added_only = with_counterparts([WebhookKind::MemberAdded].into_iter().collect());
        assert!(added_only.contains(WebhookKind::MemberRemoved));
        assert!(!added_only.contains(WebhookKind::ChannelOccupied));
        let misses = with_counterparts([WebhookKind::CacheMiss].into_iter().collect());
        assert_eq!(misses, [WebhookKind::CacheMiss].into_iter().collect());
    }
}
