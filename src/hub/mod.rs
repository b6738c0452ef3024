//! The node-local registry of who is subscribed where, and delivery to them.
//!
//! The hub is the one place that knows which connections of *this node* are subscribed to
//! which channel and who is signed in, and it owns the in-memory presence roster and
//! cache-channel store used by the single-node adapter. Only the adapter changes it (the
//! WebSocket and HTTP layers go through the adapter), and the hub raises no webhook: it
//! reports its transitions to the adapter ([`HubEvents`]), which decides what they mean for
//! the cluster.
//! Delivery never blocks: a frame is pushed into each subscriber's bounded [`Outbox`] while a
//! read lock is held, and the lock is never held across an `await`. For an app with a daily
//! message quota the hub also counts what its publishes reach here
//! ([`AppChannels::count_delivered`], one atomic add per publish); other apps pay a branch.
//! Every app's deliveries are counted for the metrics the same way: once per publish, into
//! the app's [`AppTraffic`] (per-thread shards, so the add never contends).

mod cache;
mod count_throttle;
mod events;
mod outbox;
mod presence;
mod users;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytestring::ByteString;

use crate::guard::DailyQuota;
use crate::metrics::AppTraffic;
use crate::protocol::{ChannelName, SocketId};

pub use cache::{CachedEvent, ChannelCache};
pub use count_throttle::{Announce, CountThrottle};
pub use events::{HubEvents, Unreported};
#[cfg(test)]
pub(crate) use outbox::TestOutbox;
pub use outbox::{
    CloseFrame, EndRequest, OutboundFrame, Outbox, OutboxLimits, OutboxOwner, OutboxSignals,
    OutboxWriter, Refused, outbox,
};
pub use presence::{PresenceJoin, PresenceRoster, presence_subscription_data};
pub use users::SignedInUsers;

/// Subscriptions of every app on this node.
#[derive(Debug, Default)]
pub struct Hub {
    apps: RwLock<HashMap<String, Arc<AppChannels>>>,
    daily_quotas: RwLock<HashMap<String, Arc<DailyQuota>>>,
}

impl Hub {
    /// A hub counting the messages its apps deliver into their `daily_quotas` (by app id).
    pub fn counting_deliveries(daily_quotas: HashMap<String, Arc<DailyQuota>>) -> Self {
        Hub {
            apps: RwLock::default(),
            daily_quotas: RwLock::new(daily_quotas),
        }
    }

    /// Counts `app_id`'s deliveries into `quota` from now on (a reload gave the app its first
    /// `daily_messages`). An app's quota is never replaced by another.
    pub fn count_deliveries_into(&self, app_id: &str, quota: &Arc<DailyQuota>) {
        write(&self.daily_quotas).insert(app_id.to_owned(), quota.clone());
        if let Some(app) = read(&self.apps).get(app_id) {
            let _ = app.daily_quota.set(quota.clone());
        }
    }

    /// Tells every connection of `app_id` on this node that a reload replaced or removed its
    /// app ([`EndRequest::AppChanged`]); each takes the registry's app again.
    pub fn app_changed(&self, app_id: &str) {
        let Some(app) = read(&self.apps).get(app_id).cloned() else {
            return;
        };
        for outbox in lock(&app.open).values() {
            outbox.request_end(EndRequest::AppChanged);
        }
    }

    /// Forgets the apps `keep` says no to that have no connection left here (a reload
    /// removed them), so their channels and counters stop being reported; returns how many
    /// such apps still have connections.
    pub fn forget_apps(&self, keep: impl Fn(&str) -> bool) -> usize {
        let mut apps = write(&self.apps);
        let mut still_open = 0;
        apps.retain(|id, app| {
            if keep(id) {
                return true;
            }
            let open = app.connection_count() > 0;
            still_open += usize::from(open);
            open
        });
        still_open
    }

    /// The channels of `app_id`, created on first use.
    pub fn app(&self, app_id: &str) -> Arc<AppChannels> {
        if let Some(app) = read(&self.apps).get(app_id) {
            return app.clone();
        }
        write(&self.apps)
            .entry(app_id.to_owned())
            .or_insert_with(|| {
                Arc::new(AppChannels {
                    daily_quota: read(&self.daily_quotas)
                        .get(app_id)
                        .cloned()
                        .map(OnceLock::from)
                        .unwrap_or_default(),
                    traffic: crate::metrics::global().traffic(app_id),
                    ..AppChannels::default()
                })
            })
            .clone()
    }
}

impl Hub {
    /// The ids of the apps that have been used on this node.
    pub fn app_ids(&self) -> Vec<String> {
        read(&self.apps).keys().cloned().collect()
    }
}

/// One app's channels, connection count and cache channels on this node.
#[derive(Debug, Default)]
pub struct AppChannels {
    channels: RwLock<HashMap<ChannelName, HashMap<SocketId, Outbox>>>,
    connections: AtomicUsize,
    /// Every open connection's outbox (registered by its slot), so a reload can reach them.
    open: std::sync::Mutex<HashMap<SocketId, Outbox>>,
    cache: ChannelCache,
    count_throttle: Arc<CountThrottle>,
    users: SignedInUsers,
    /// Set at most once: by the hub at creation, or by a reload that gives the app a quota.
    daily_quota: OnceLock<Arc<DailyQuota>>,
    traffic: Arc<AppTraffic>,
}

/// How many channels an app has on this node, and how many subscriptions its presence
/// channels have.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounts {
    /// Channels with at least one subscriber here.
    pub channels: usize,
    /// Subscriptions to presence channels here.
    pub presence_subscriptions: usize,
}

/// A counted connection; dropping it frees the slot (and forgets its outbox).
#[derive(Debug)]
pub struct ConnectionSlot {
    app: Arc<AppChannels>,
    socket: Option<SocketId>,
}

impl ConnectionSlot {
    /// Registers the connection's `outbox`, so that [`Hub::app_changed`] reaches it.
    pub fn watch(&mut self, socket: SocketId, outbox: Outbox) {
        lock(&self.app.open).insert(socket, outbox);
        self.socket = Some(socket);
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(socket) = self.socket {
            lock(&self.app.open).remove(&socket);
        }
        self.app.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AppChannels {
    /// Counts a new connection unless `max` are already open.
    pub fn try_open_connection(self: &Arc<Self>, max: Option<usize>) -> Option<ConnectionSlot> {
        let limit = max.unwrap_or(usize::MAX);
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
        Some(ConnectionSlot {
            app: self.clone(),
            socket: None,
        })
    }

    /// The last events of this app's cache channels.
    pub fn cache(&self) -> &ChannelCache {
        &self.cache
    }

    /// This app's signed-in connections on this node.
    pub fn users(&self) -> &SignedInUsers {
        &self.users
    }

    /// When this app's subscription counts may be announced.
    pub fn count_throttle(&self) -> &Arc<CountThrottle> {
        &self.count_throttle
    }

    /// Connections currently open for this app on this node.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Adds a subscriber, first queueing `greeting` (its `subscription_succeeded`) to it under
    /// the same lock, so that no event for the channel can reach it before the greeting. On a
    /// cache channel the greeting is followed by the cached event or `pusher:cache_miss`
    /// (reported to `events`), read under that lock too: a publisher stores before it
    /// delivers, so the subscriber gets the last event at least once and never an older one
    /// after a newer one. The first subscriber is reported to `events` under the lock that
    /// orders it against the last one's leaving. Returns whether the socket was not
    /// subscribed before.
    pub fn subscribe(
        &self,
        channel: &ChannelName,
        socket: SocketId,
        outbox: Outbox,
        greeting: Option<&ByteString>,
        events: &dyn HubEvents,
    ) -> bool {
        self.subscribe_with(channel, socket, outbox, greeting, None, events)
    }

    /// As [`AppChannels::subscribe`], but a cache channel's greeting is followed by `cached`
    /// when it is given (the cluster's last event, read where the socket takes its place in
    /// the channel's stream) instead of this node's.
    pub fn subscribe_with(
        &self,
        channel: &ChannelName,
        socket: SocketId,
        outbox: Outbox,
        greeting: Option<&ByteString>,
        cached: Option<Option<CachedEvent>>,
        events: &dyn HubEvents,
    ) -> bool {
        let mut channels = write(&self.channels);
        let mut missed = false;
        if let Some(greeting) = greeting {
            outbox.push(greeting.clone());
            if channel.is_cache() {
                let cached = cached.unwrap_or_else(|| {
                    self.cache
                        .get(channel.as_str(), tokio::time::Instant::now())
                });
                missed = cached.is_none();
                outbox.push(match cached {
                    Some(event) => event.frame,
                    None => crate::protocol::frames::cache_miss(channel.as_str()),
                });
            }
        }
        let subscribers = channels.entry(channel.clone()).or_default();
        let added = subscribers.insert(socket, outbox).is_none();
        if added {
            if subscribers.len() == 1 {
                events.channel_occupied(channel);
            }
            events.subscribers_changed(channel, subscribers.len());
        }
        if missed {
            events.cache_missed(channel);
        }
        added
    }

    /// Removes a subscriber; returns whether it was subscribed. Empty channels are dropped and
    /// reported to `events`, under the lock that orders it against the first subscriber.
    pub fn unsubscribe(&self, channel: &str, socket: SocketId, events: &dyn HubEvents) -> bool {
        let mut channels = write(&self.channels);
        let Some(subscribers) = channels.get_mut(channel) else {
            return false;
        };
        let removed = subscribers.remove(&socket).is_some();
        let left = subscribers.len();
        if left == 0
            && let Some((channel, _)) = channels.remove_entry(channel)
        {
            events.channel_vacated(&channel);
            events.subscribers_changed(&channel, 0);
        } else if removed && let Some((channel, _)) = channels.get_key_value(channel) {
            events.subscribers_changed(channel, left);
        }
        removed
    }

    /// Pushes `frame` to every local subscriber of `channel` but `except`; returns how many
    /// outboxes accepted it.
    pub fn deliver(&self, channel: &str, frame: &ByteString, except: Option<SocketId>) -> usize {
        let channels = read(&self.channels);
        let delivered = channels
            .get(channel)
            .map_or(0, |subscribers| push_to_each(subscribers, frame, except));
        self.traffic.sent(delivered, frame.len());
        delivered
    }

    /// Counts `delivered` messages (one publish's local recipients) toward the app's daily
    /// quota, if it has one.
    pub fn count_delivered(&self, delivered: usize) {
        if let Some(quota) = self.daily_quota.get() {
            quota.count(delivered);
        }
    }

    /// Tells every local subscriber of `channel` (and `events`) how many subscribers it has,
    /// counted and delivered under one read of the channel map: joins and leaves cannot slip
    /// in between, so whichever announcement comes last carries the count as it finally is.
    /// Returns the count announced.
    pub fn announce_subscription_count(
        &self,
        channel: &ChannelName,
        events: &dyn HubEvents,
    ) -> usize {
        let channels = read(&self.channels);
        let subscribers = channels.get(channel);
        let count = subscribers.map_or(0, HashMap::len);
        if let Some(subscribers) = subscribers {
            let frame = crate::protocol::frames::subscription_count(channel.as_str(), count);
            let delivered = push_to_each(subscribers, &frame, None);
            self.traffic.sent(delivered, frame.len());
        }
        // Still under the read: the adapter hears the counts in order too, 0 included.
        events.subscription_counted(channel, count);
        count
    }

    /// Local subscribers of `channel`.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        read(&self.channels).get(channel).map_or(0, HashMap::len)
    }

    /// The app's channels and presence subscriptions on this node, counted under one read.
    pub fn channel_counts(&self) -> ChannelCounts {
        let channels = read(&self.channels);
        let presence_subscriptions = channels
            .iter()
            .filter(|(name, _)| name.kind() == crate::protocol::ChannelKind::Presence)
            .map(|(_, subscribers)| subscribers.len())
            .sum();
        ChannelCounts {
            channels: channels.len(),
            presence_subscriptions,
        }
    }

    /// Every channel with at least one local subscriber, with its subscriber count.
    pub fn occupied_channels(&self) -> Vec<(ChannelName, usize)> {
        read(&self.channels)
            .iter()
            .map(|(name, subscribers)| (name.clone(), subscribers.len()))
            .collect()
    }
}

/// Pushes `frame` into every outbox of `subscribers` but `except`'s; returns how many accepted
/// it.
fn push_to_each(
    subscribers: &HashMap<SocketId, Outbox>,
    frame: &ByteString,
    except: Option<SocketId>,
) -> usize {
    subscribers
        .iter()
        .filter(|(socket, _)| Some(**socket) != except)
        .filter(|(_, outbox)| outbox.push(frame.clone()))
        .count()
}

/// Locks for reading; a poisoned lock only means another thread panicked mid-update of plain
/// maps, which stay structurally valid, so the data is still used.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Locks for writing; see [`read`] on poisoning.
fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn name(s: &str) -> ChannelName {
        ChannelName::parse(s, 164).unwrap()
    }

    #[test]
    fn deliver_skips_the_excepted_socket() {
        let app = Hub::default().app("1");
        let (a, b) = (SocketId::random(), SocketId::random());
        let (queue_a, queue_b) = (TestOutbox::new(4), TestOutbox::new(4));
        app.subscribe(&name("c"), a, queue_a.outbox().clone(), None, &Unreported);
        app.subscribe(&name("c"), b, queue_b.outbox().clone(), None, &Unreported);
        assert_eq!(app.subscriber_count("c"), 2);
        let frame = ByteString::from_static("x");
        assert_eq!(app.deliver("c", &frame, Some(a)), 1);
        assert!(queue_a.next_text().is_none());
        assert_eq!(queue_b.next_text().as_deref(), Some("x"));
    }

    #[test]
    fn a_cache_channel_greets_with_its_last_event_or_a_miss_before_any_later_event() {
        let app = Hub::default().app("1");
        let greeting = ByteString::from_static("succeeded");
        let first = TestOutbox::new(4);
        app.subscribe(
            &name("cache-a"),
            SocketId::random(),
            first.outbox().clone(),
            Some(&greeting),
            &Unreported,
        );
        assert_eq!(first.next_text().as_deref(), Some("succeeded"));
        assert_eq!(
            first.next_text().as_deref(),
            Some(r#"{"event":"pusher:cache_miss","channel":"cache-a"}"#)
        );
        let now = tokio::time::Instant::now();
        let stored = cache::CachedEvent {
            frame: ByteString::from_static("last"),
            data: String::new(),
            expires_at: now + std::time::Duration::from_secs(60),
        };
        app.cache().store(&name("cache-a"), stored, now);
        let second = TestOutbox::new(4);
        app.subscribe(
            &name("cache-a"),
            SocketId::random(),
            second.outbox().clone(),
            Some(&greeting),
            &Unreported,
        );
        app.deliver("cache-a", &ByteString::from_static("next"), None);
        let frames: Vec<_> = std::iter::from_fn(|| second.next_text()).collect();
        assert_eq!(frames, ["succeeded", "last", "next"]);
    }

    /// Records the hub's reports by name, to be taken in order.
    #[derive(Debug, Default)]
    pub(crate) struct Recorded(std::sync::Mutex<Vec<String>>);

    impl Recorded {
        /// The reports since the last take.
        pub(crate) fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }

        fn note(&self, report: String) {
            self.0.lock().unwrap().push(report);
        }
    }

    impl HubEvents for Recorded {
        fn channel_occupied(&self, channel: &ChannelName) {
            self.note(format!("occupied {channel}"));
        }
        fn channel_vacated(&self, channel: &ChannelName) {
            self.note(format!("vacated {channel}"));
        }
        fn cache_missed(&self, channel: &ChannelName) {
            self.note(format!("cache_miss {channel}"));
        }
        fn member_added(&self, channel: &ChannelName, user_key: &str) {
            self.note(format!("member_added {channel} {user_key}"));
        }
        fn member_removed(&self, channel: &ChannelName, user_key: &str) {
            self.note(format!("member_removed {channel} {user_key}"));
        }
        fn subscription_counted(&self, channel: &ChannelName, count: usize) {
            self.note(format!("counted {channel} {count}"));
        }
    }

    #[test]
    fn occupancy_is_reported_on_the_first_and_last_subscriber_only() {
        let app = Hub::default().app("1");
        let events = Recorded::default();
        let (a, b) = (SocketId::random(), SocketId::random());
        let greeting = ByteString::from_static("succeeded");
        let queue = TestOutbox::new(8);
        let first = app.subscribe(
            &name("cache-a"),
            a,
            queue.outbox().clone(),
            Some(&greeting),
            &events,
        );
        assert!(first);
        assert_eq!(app.subscriber_count("cache-a"), 1);
        assert_eq!(events.take(), ["occupied cache-a", "cache_miss cache-a"]);
        app.subscribe(&name("cache-a"), b, queue.outbox().clone(), None, &events);
        let again = app.subscribe(&name("cache-a"), b, queue.outbox().clone(), None, &events);
        assert!(!again);
        assert!(app.unsubscribe("cache-a", a, &events));
        assert!(events.take().is_empty());
        assert!(app.unsubscribe("cache-a", b, &events));
        assert_eq!(events.take(), ["vacated cache-a"]);
    }

    #[test]
    fn a_count_announcement_carries_the_count_at_delivery() {
        let app = Hub::default().app("1");
        let events = Recorded::default();
        let (a, b) = (SocketId::random(), SocketId::random());
        let (queue_a, queue_b) = (TestOutbox::new(4), TestOutbox::new(4));
        app.subscribe(&name("c"), a, queue_a.outbox().clone(), None, &Unreported);
        app.subscribe(&name("c"), b, queue_b.outbox().clone(), None, &Unreported);
        assert_eq!(app.announce_subscription_count(&name("c"), &events), 2);
        let frame = r#"{"event":"pusher_internal:subscription_count","channel":"c","data":"{\"subscription_count\":2}"}"#;
        assert_eq!(queue_a.next_text().as_deref(), Some(frame));
        assert_eq!(queue_b.next_text().as_deref(), Some(frame));
        assert_eq!(events.take(), ["counted c 2"]);
        app.unsubscribe("c", a, &Unreported);
        app.unsubscribe("c", b, &Unreported);
        assert_eq!(app.announce_subscription_count(&name("c"), &events), 0);
        assert_eq!(events.take(), ["counted c 0"], "the adapter hears of 0 too");
    }

    #[test]
    fn the_last_count_announced_is_the_final_count_whatever_the_interleaving() {
        let app = Hub::default().app("1");
        let channel = name("c");
        let queues: Vec<_> = (0..8).map(|_| TestOutbox::new(64)).collect();
        std::thread::scope(|scope| {
            for queue in &queues {
                let (app, channel) = (&app, &channel);
                scope.spawn(move || {
                    app.subscribe(
                        channel,
                        SocketId::random(),
                        queue.outbox().clone(),
                        None,
                        &Unreported,
                    );
                    app.announce_subscription_count(channel, &Unreported);
                });
            }
        });
        let expected = r#"{"event":"pusher_internal:subscription_count","channel":"c","data":"{\"subscription_count\":8}"}"#;
        for queue in &queues {
            let last = std::iter::from_fn(|| queue.next_text()).last();
            assert_eq!(last.as_deref(), Some(expected));
        }
    }

    #[test]
    fn unsubscribing_the_last_subscriber_drops_the_channel() {
        let app = Hub::default().app("1");
        let a = SocketId::random();
        let queue = TestOutbox::new(4);
        app.subscribe(&name("c"), a, queue.outbox().clone(), None, &Unreported);
        assert!(app.unsubscribe("c", a, &Unreported));
        assert!(!app.unsubscribe("c", a, &Unreported));
        assert!(app.occupied_channels().is_empty());
    }

    #[test]
    fn connection_slots_enforce_the_limit_and_free_on_drop() {
        let app = Hub::default().app("1");
        let first = app.try_open_connection(Some(1)).unwrap();
        assert!(app.try_open_connection(Some(1)).is_none());
        drop(first);
        assert!(app.try_open_connection(Some(1)).is_some());
        assert_eq!(app.connection_count(), 0);
    }
}
