//! One app's webhook dispatcher: takes events from the message path's bounded queue, applies
//! the vacate delay and de-duplication ([`Lifecycle`]), routes each event to the endpoints that
//! want it, batches, and hands complete batches to each endpoint's delivery queue without
//! waiting (a full queue drops the batch, logged and counted).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::batch::Batcher;
use super::lifecycle::Lifecycle;
use super::{Endpoint, RaisedEvent, WebhookBatch, WebhookEvent, WebhookStats, count_drop};

/// One endpoint as the dispatcher sees it.
pub struct Route {
    endpoint: Arc<Endpoint>,
    batcher: Batcher,
    queue: mpsc::Sender<WebhookBatch>,
}

impl Route {
    /// Routes to `endpoint`, batching with `batcher`, through its delivery `queue`.
    pub fn new(
        endpoint: Arc<Endpoint>,
        batcher: Batcher,
        queue: mpsc::Sender<WebhookBatch>,
    ) -> Self {
        Route {
            endpoint,
            batcher,
            queue,
        }
    }

    /// Hands `batch` to the endpoint's delivery queue without waiting; a full queue (or a
    /// stopped delivery) drops it, counted in `stats` and logged.
    fn send(&self, batch: WebhookBatch, app_id: &str, stats: &WebhookStats) {
        if self.queue.try_send(batch).is_err()
            && let Some(dropped) = count_drop(&stats.dropped_queue_full)
        {
            warn!(
                app = %app_id,
                host = %self.endpoint.display_host(),
                dropped,
                "webhook batch dropped: endpoint queue full (receiver down or too slow) or delivery stopped"
            );
        }
    }
}

/// Turns an app's events into batches for its endpoints.
pub struct Dispatcher {
    app_id: String,
    lifecycle: Lifecycle,
    routes: Vec<Route>,
    stats: Arc<WebhookStats>,
}

impl Dispatcher {
    /// A dispatcher for `app_id`'s `routes`.
    pub fn new(
        app_id: String,
        lifecycle: Lifecycle,
        routes: Vec<Route>,
        stats: Arc<WebhookStats>,
    ) -> Self {
        Dispatcher {
            app_id,
            lifecycle,
            routes,
            stats,
        }
    }

    /// Runs until `flush` is cancelled (or every sender of `events` is gone), then sends
    /// everything still queued, delayed or gathered, and ends, which lets the deliveries end
    /// once their queues are empty.
    pub async fn run(mut self, mut events: mpsc::Receiver<RaisedEvent>, flush: CancellationToken) {
        loop {
            let wake = self.next_wake();
            tokio::select! {
                received = events.recv() => match received {
                    Some(raised) => self.accept(raised.event, raised.raised_at),
                    None => break,
                },
                () = sleep_until(wake.unwrap_or_else(far_future)), if wake.is_some() => {}
                () = flush.cancelled() => break,
            }
            self.fire_due(Instant::now());
        }
        while let Ok(raised) = events.try_recv() {
            self.accept(raised.event, raised.raised_at);
        }
        self.send_everything(Instant::now());
    }

    /// Takes one event from the message path, raised at `raised_at`. Whatever fell due
    /// before it happened is sent first, so a channel that stayed empty past the delay gets
    /// its `channel_vacated` even when its next `channel_occupied` is dequeued with it.
    pub fn accept(&mut self, event: WebhookEvent, raised_at: Instant) {
        self.fire_due(raised_at);
        if let Some(event) = self.lifecycle.accept(event, raised_at) {
            self.route(&event, raised_at);
        }
    }

    /// Sends every delayed event and every gathered batch, due or not.
    pub fn send_everything(&mut self, now: Instant) {
        for event in self.lifecycle.take_all() {
            self.route(&event, now);
        }
        for route in &mut self.routes {
            if let Some(batch) = route.batcher.take() {
                route.send(batch, &self.app_id, &self.stats);
            }
        }
    }

    /// Sends the delayed events and the batches that are due at `now`.
    pub fn fire_due(&mut self, now: Instant) {
        for event in self.lifecycle.due(now) {
            self.route(&event, now);
        }
        for route in &mut self.routes {
            if let Some(batch) = route.batcher.take_due(now) {
                route.send(batch, &self.app_id, &self.stats);
            }
        }
    }

    /// When something next falls due.
    pub fn next_wake(&self) -> Option<Instant> {
        let batches = self
            .routes
            .iter()
            .filter_map(|route| route.batcher.next_due());
        batches.chain(self.lifecycle.next_due()).min()
    }

    fn route(&mut self, event: &WebhookEvent, now: Instant) {
        let mut serialized: Option<Arc<str>> = None;
        for route in &mut self.routes {
            if !route.endpoint.accepts(event) {
                continue;
            }
            let json = serialized.get_or_insert_with(|| serialize(event)).clone();
            if let Some(batch) = route.batcher.push(json, event.channel().clone(), now) {
                route.send(batch, &self.app_id, &self.stats);
            }
        }
    }
}

fn serialize(event: &WebhookEvent) -> Arc<str> {
    // A plain struct of strings and numbers: serializing it cannot fail.
    Arc::from(serde_json::to_string(event).unwrap_or_default())
}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(3600)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use super::*;
    use crate::protocol::ChannelName;
    use crate::protocol::{WebhookKind, WebhookKinds};

    fn endpoint(kinds: WebhookKinds, channel_prefix: Option<&str>) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            url: "http://127.0.0.1:9/hooks".parse().unwrap(),
            kinds,
            channel_prefix: channel_prefix.map(str::to_owned),
            headers: Vec::new(),
            timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(300),
            concurrency: 8,
        })
    }

    fn occupied(name: &str) -> WebhookEvent {
        WebhookEvent::ChannelOccupied {
            channel: ChannelName::parse(name, 164).unwrap(),
        }
    }

    fn bodies(queue: &mut mpsc::Receiver<WebhookBatch>) -> Vec<String> {
        std::iter::from_fn(|| queue.try_recv().ok())
            .map(|batch| batch.body(0))
            .collect()
    }

    #[test]
    fn events_go_to_the_endpoints_whose_kinds_and_prefix_they_match() {
        let (to_presence, mut presence) = mpsc::channel(8);
        let (to_all, mut all) = mpsc::channel(8);
        let occupancy = [WebhookKind::ChannelOccupied].into_iter().collect();
        let routes = vec![
            Route::new(
                endpoint(occupancy, Some("presence-")),
                Batcher::new(Duration::ZERO, 10),
                to_presence,
            ),
            Route::new(
                endpoint(WebhookKinds::all(), None),
                Batcher::new(Duration::ZERO, 10),
                to_all,
            ),
        ];
        let stats = Arc::new(WebhookStats::default());
        let lifecycle = Lifecycle::new(Duration::from_secs(3));
        let mut dispatcher = Dispatcher::new("1".into(), lifecycle, routes, stats);
        let now = Instant::now();
        dispatcher.accept(occupied("news"), now);
        dispatcher.accept(occupied("presence-room"), now);
        let miss = WebhookEvent::CacheMiss {
            channel: ChannelName::parse("presence-cache-x", 164).unwrap(),
        };
        dispatcher.accept(miss, now);
        assert_eq!(
            bodies(&mut presence),
            [r#"{"time_ms":0,"events":[{"name":"channel_occupied","channel":"presence-room"}]}"#]
        );
        assert_eq!(bodies(&mut all).len(), 3);
    }

    /// The vacate delay of the single-endpoint dispatchers below.
    const DELAY: Duration = Duration::from_secs(3);

    /// A dispatcher with one endpoint taking every kind, batching over `window`, whose
    /// delivery queue holds `capacity` batches; with that queue and the counters.
    fn single_endpoint(
        capacity: usize,
        window: Duration,
    ) -> (Dispatcher, mpsc::Receiver<WebhookBatch>, Arc<WebhookStats>) {
        let (queue, batches) = mpsc::channel(capacity);
        let route = Route::new(
            endpoint(WebhookKinds::all(), None),
            Batcher::new(window, 10),
            queue,
        );
        let stats = Arc::new(WebhookStats::default());
        let lifecycle = Lifecycle::new(DELAY);
        let dispatcher = Dispatcher::new("1".into(), lifecycle, vec![route], stats.clone());
        (dispatcher, batches, stats)
    }

    fn vacated(name: &str) -> WebhookEvent {
        WebhookEvent::ChannelVacated {
            channel: ChannelName::parse(name, 164).unwrap(),
        }
    }

    #[test]
    fn a_full_endpoint_queue_drops_and_counts_without_waiting() {
        let (mut dispatcher, mut batches, stats) = single_endpoint(1, Duration::ZERO);
        let now = Instant::now();
        dispatcher.accept(occupied("a"), now);
        dispatcher.accept(occupied("b"), now);
        assert_eq!(bodies(&mut batches).len(), 1);
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_stopped_delivery_counts_its_batches_as_dropped() {
        let (mut dispatcher, batches, stats) = single_endpoint(8, Duration::ZERO);
        drop(batches);
        dispatcher.accept(occupied("a"), Instant::now());
        assert_eq!(stats.dropped_queue_full.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_vacancy_past_its_delay_is_sent_even_when_the_return_is_dequeued_with_it() {
        let (mut dispatcher, mut batches, _) = single_endpoint(8, Duration::ZERO);
        let start = Instant::now();
        dispatcher.accept(vacated("c"), start);
        // The return happened after the delay, though nothing ran in between.
        dispatcher.accept(occupied("c"), start + DELAY + Duration::from_millis(500));
        let sent = bodies(&mut batches);
        assert_eq!(sent.len(), 2, "{sent:?}");
        assert!(sent[0].contains("channel_vacated") && sent[1].contains("channel_occupied"));
    }

    #[test]
    fn the_next_wake_is_the_earliest_of_delayed_leaves_and_open_batches() {
        let window = Duration::from_millis(50);
        let (mut dispatcher, _batches, _) = single_endpoint(8, window);
        let now = Instant::now();
        assert_eq!(dispatcher.next_wake(), None);
        dispatcher.accept(vacated("c"), now);
        assert_eq!(dispatcher.next_wake(), Some(now + DELAY));
        dispatcher.accept(occupied("d"), now);
        assert_eq!(dispatcher.next_wake(), Some(now + window));
    }
}
