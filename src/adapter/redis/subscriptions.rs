//! This node's Redis pub/sub subscriptions: one per channel with local subscribers, taken
//! before the first local subscriber is greeted and dropped after the last one leaves.
//!
//! A socket's `subscription_succeeded` must not go out before Redis has acknowledged the
//! channel's subscription, or an event another node publishes right after the client saw it
//! could be missed. Redis sends a channel's messages only after its subscription
//! acknowledgement, but the acknowledgement and the messages reach this node on different
//! paths (the command's reply and the message stream), so a message can be read before the
//! subscribing socket is in the hub. Hence the phases of a channel ([`Phase`]):
//!
//! - `Subscribing`: `SUBSCRIBE` sent; the sockets waiting for it hold pins.
//! - `Confirming`: acknowledged; the pinned sockets are being added to the hub (greeted), and
//!   messages read meanwhile are buffered. The last pin to go flushes the buffer into the hub,
//!   in order, and the channel is `Subscribed`: from then on messages go straight to the hub.
//! - `Unsubscribing`: the last local subscriber left and `UNSUBSCRIBE` is out; a socket
//!   arriving meanwhile pins the channel and it is subscribed again once that is done.
//! - `Unconfirmed`: Redis is away. Sockets are served locally at once (nothing from other
//!   nodes can arrive anyway).
//! - `Resubscribing`: Redis is back and the channel is subscribed again on the new
//!   connection. Its subscribers, greeted long ago, keep getting messages as they come; a
//!   socket arriving meanwhile pins the channel and waits for the acknowledgement as in
//!   `Subscribing` (the stream is stopped while it does, and confirmed after, as above), so
//!   a newcomer is greeted only when nothing published after its greeting can be missed.
//!
//! A presence join is placed in the channel's stream by a marker its Redis script publishes
//! (see `presence`): the script's snapshot holds every member event published before the
//! marker, so the joining socket must get exactly the messages after it. The marker takes its
//! place in the stream like a message (in the buffer, when there is one); when this node
//! reaches it, the channel is held ([`Hold`]): what follows waits in the buffer until the
//! joiner has added its socket (with the snapshot as its greeting) and lets go, so no message
//! before the marker reaches the joiner and none after it is missed. A marker lost with the
//! connection releases its joiner, which then joins without one (Redis was away: at most once,
//! as for every message then).
//!
//! A buffered message may have been published just before the new subscription (the tail of
//! an earlier one, read late), so a new subscriber can get an event from just before it
//! subscribed; never one after its greeting missed. The buffer is bounded in bytes by one
//! connection's outbound limit (the subscriber's own outbox could take no more); what does not
//! fit is dropped and logged.
//!
//! A user's `#server-to-user-` channel is also subscribed for the user's watchers on this
//! node (their online/offline announcements come on it), for as long as one watches.
//!
//! What a presence channel's local subscribers know of its members is kept beside its
//! stream ([`KnownMembers`]): set from the roster the first join here reads at its marker
//! ([`Hold::first_roster`]) and changed by each member event the stream delivers. When a
//! message is dropped from a full buffer, the roster is read again, as after a loss.
//!
//! When a channel is subscribed again after the connection was lost, what was published
//! meanwhile never arrives. For the channels where that leaves state behind, a refresh is
//! queued ([`Subscriptions::refreshes`]): a watched user's state is read again, and a
//! presence channel's roster (at a marker, then reconciled with what is known).
//!
//! The Redis commands run in spawned tasks, so a caller that stops waiting cannot leave a
//! channel half-subscribed. The link reports which connection (generation) a command went
//! out on: a command lost with an old connection is sent again on the current one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, oneshot};

use super::envelope::{Broadcast, NodeId, Received, decode_any};
use super::roster::{KnownMembers, Reconcile, Roster};
use crate::hub::{AppChannels, Hub};
use crate::protocol::{ChannelKind, ChannelName};

/// What the registry needs from the Redis link.
pub trait PubSubCommands: Send + Sync + 'static {
    /// The current connection's generation; `None` while Redis is unreachable.
    fn generation(&self) -> Option<u64>;

    /// Sends `SUBSCRIBE name`; resolves once acknowledged, with the generation it went on.
    fn subscribe(&self, name: String) -> BoxFuture<'static, Sent>;

    /// Sends `UNSUBSCRIBE name`; resolves once acknowledged, with the generation it went on.
    fn unsubscribe(&self, name: String) -> BoxFuture<'static, Sent>;
}

/// How a command fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// The connection it went out on (`None`: there was none).
    pub generation: Option<u64>,
    /// Whether Redis acknowledged it.
    pub acknowledged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Subscribing,
    Confirming,
    Subscribed,
    Unsubscribing,
    Resubscribing,
    Unconfirmed,
}

struct Entry {
    app_id: String,
    channels: Arc<AppChannels>,
    channel: ChannelName,
    phase: Phase,
    /// Sockets that wait for (or are being added after) the acknowledgement.
    pins: usize,
    /// Presence joins in progress: they keep the subscription, but their sockets are placed by
    /// their markers, not by the end of confirming.
    joiners: usize,
    /// Joins whose marker was reached and whose socket is not added yet.
    holds: usize,
    /// Joins of this node waiting for their marker to be reached, by token.
    markers: HashMap<u64, oneshot::Sender<()>>,
    ready: Arc<Notify>,
    buffer: VecDeque<Buffered>,
    buffered_bytes: usize,
    dropped: usize,
    /// A presence channel's members as its local subscribers know them (`None` until a
    /// join has read the roster at its marker).
    known: Option<KnownMembers>,
}

impl Entry {
    fn has_local_interest(&self) -> bool {
        self.pins > 0
            || self.joiners > 0
            || self.channels.subscriber_count(self.channel.as_str()) > 0
            || self
                .channel
                .server_to_user_id()
                .is_some_and(|user_id| self.channels.users().is_watched(user_id))
    }

    /// Whether the stream is stopped: what is read now must wait in the buffer.
    fn stopped(&self) -> bool {
        match self.phase {
            Phase::Subscribing | Phase::Confirming => true,
            // Newcomers wait for the acknowledgement: what they must not miss waits too.
            Phase::Resubscribing => self.pins > 0 || self.holds > 0,
            Phase::Subscribed | Phase::Unsubscribing | Phase::Unconfirmed => self.holds > 0,
        }
    }

    /// Ends confirming once no pinned socket is left to add, and lets the buffer through
    /// up to the next join marker (or to its end) once nothing holds it.
    fn settle(&mut self) {
        if self.phase == Phase::Confirming && self.pins == 0 {
            self.phase = Phase::Subscribed;
        }
        if !self.stopped() {
            flush(self);
        }
    }

    /// Forgets the markers still awaited (the connection that would carry them is gone);
    /// their joiners go on without.
    fn drop_markers(&mut self) {
        self.markers.clear();
    }
}

/// The subscriptions of this node, by Redis channel name.
pub struct Subscriptions {
    node: NodeId,
    hub: Arc<Hub>,
    link: Arc<dyn PubSubCommands>,
    buffer_limit: usize,
    entries: Mutex<HashMap<String, Entry>>,
    /// The token of the next marker.
    markers: std::sync::atomic::AtomicU64,
    /// Refreshes due after channels were subscribed again, and the wake-up of whoever does
    /// them; bounded by the channels subscribed.
    refreshes: Mutex<HashSet<Refresh>>,
    refresh_due: Notify,
}

/// State to read again from Redis because a channel was subscribed again after the pub/sub
/// connection was lost (what was announced on it meanwhile never arrived).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Refresh {
    /// A watched user's online state, for its watchers.
    Watched { app_id: String, user_id: String },
    /// A presence channel's roster, for its local subscribers.
    Roster {
        app_id: String,
        channel: ChannelName,
    },
}

/// A socket's hold on a channel's subscription while it is added to the hub; dropping it
/// (after the hub has the socket) lets buffered messages through.
pub struct Pin {
    registry: Arc<Subscriptions>,
    name: Option<String>,
}

impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            self.registry.unpin(&name);
        }
    }
}

/// A presence join of this node waiting for its marker ([`Subscriptions::expect_marker`]).
pub struct Marker {
    registry: Arc<Subscriptions>,
    name: Option<String>,
    token: u64,
    arrived: oneshot::Receiver<()>,
}

impl Marker {
    /// The number the script publishes in the marker (`envelope::encode_join_marker`).
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Waits (within `limit`) until the stream reaches the marker; the channel is then held
    /// until the returned [`Hold`] is dropped. Without a marker in time (the connection was
    /// lost), the hold holds nothing.
    pub async fn wait(mut self, limit: std::time::Duration) -> Hold {
        let arrived = tokio::time::timeout(limit, &mut self.arrived).await;
        let name = self.name.take();
        let held = match (&name, arrived) {
            (Some(_), Ok(Ok(()))) => true,
            (Some(name), _) => self
                .registry
                .abandon_marker(name, self.token, &mut self.arrived),
            (None, _) => false,
        };
        Hold {
            registry: self.registry.clone(),
            name,
            held,
        }
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let held = self
                .registry
                .abandon_marker(&name, self.token, &mut self.arrived);
            self.registry.release_joiner(&name, held);
        }
    }
}

/// A presence join's place in its channel's stream, from its marker until its socket is
/// added; dropping it lets the stream go on.
pub struct Hold {
    registry: Arc<Subscriptions>,
    name: Option<String>,
    held: bool,
}

impl Hold {
    /// Records `roster`, read at this hold's marker by a join, as what the channel's local
    /// subscribers know, if nothing is known yet (the first joiner here). Later joins change
    /// nothing: every member event since reached the subscribers in the stream, and what
    /// did not (a lost connection, a full buffer) is made up by a refresh.
    pub fn first_roster(&self, roster: &Roster) {
        if let (Some(name), true) = (&self.name, self.held) {
            self.registry.first_roster(name, roster);
        }
    }

    /// Tells the channel's local subscribers the member
    /// events that make what they know of the members `roster`, read at this hold's marker
    /// (see [`KnownMembers::reconcile`]); nothing when the marker was not reached (its place
    /// in the stream is unknown).
    pub fn reconcile(&self, roster: &Roster, reconcile: Reconcile) {
        if let (Some(name), true) = (&self.name, self.held) {
            self.registry.reconcile(name, roster, reconcile);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            self.registry.release_joiner(&name, self.held);
        }
    }
}

impl Subscriptions {
    /// A registry for node `node` delivering to `hub`, subscribing through `link`, buffering up
    /// to `buffer_limit` bytes per channel while a subscription is confirmed.
    pub fn new(
        node: NodeId,
        hub: Arc<Hub>,
        link: Arc<dyn PubSubCommands>,
        buffer_limit: usize,
    ) -> Arc<Self> {
        Arc::new(Subscriptions {
            node,
            hub,
            link,
            buffer_limit,
            entries: Mutex::default(),
            markers: std::sync::atomic::AtomicU64::new(1),
            refreshes: Mutex::default(),
            refresh_due: Notify::new(),
        })
    }

    /// Waits until this node may add a socket to `channel` of `app_id` in the hub and greet
    /// it: Redis has acknowledged the channel's subscription, or is unreachable. Hold the
    /// pin until the socket is in the hub (or was refused); while it is held the subscription
    /// stays.
    pub async fn pin(self: &Arc<Self>, name: String, app_id: &str, channel: &ChannelName) -> Pin {
        {
            let mut entries = self.lock();
            let entry = match entries.get_mut(&name) {
                Some(entry) => entry,
                None => {
                    let entry = self.new_entry(&name, app_id, channel);
                    entries.entry(name.clone()).or_insert(entry)
                }
            };
            entry.pins += 1;
        }
        // Taken before the wait, so a caller that stops waiting lets go of it.
        let pin = Pin {
            registry: self.clone(),
            name: Some(name),
        };
        loop {
            let ready = {
                let entries = self.lock();
                let Some(entry) = pin.name.as_ref().and_then(|name| entries.get(name)) else {
                    return pin;
                };
                match entry.phase {
                    Phase::Subscribing | Phase::Unsubscribing | Phase::Resubscribing => {
                        entry.ready.clone().notified_owned()
                    }
                    // Confirming: the socket joins those being added; the flush waits for it.
                    Phase::Confirming | Phase::Subscribed | Phase::Unconfirmed => return pin,
                }
            };
            ready.await;
        }
    }

    /// A new entry for `name`, subscribing (or unconfirmed while Redis is away).
    fn new_entry(self: &Arc<Self>, name: &str, app_id: &str, channel: &ChannelName) -> Entry {
        let phase = if self.link.generation().is_some() {
            self.send_subscribe(name.to_owned());
            Phase::Subscribing
        } else {
            Phase::Unconfirmed
        };
        Entry {
            app_id: app_id.to_owned(),
            channels: self.hub.app(app_id),
            channel: channel.clone(),
            phase,
            pins: 0,
            joiners: 0,
            holds: 0,
            markers: HashMap::new(),
            ready: Arc::default(),
            buffer: VecDeque::new(),
            buffered_bytes: 0,
            dropped: 0,
            known: None,
        }
    }

    /// Drops the subscription of `name` if nothing on this node needs it any more; called
    /// after a socket left the channel in the hub.
    pub fn release(self: &Arc<Self>, name: &str) {
        let mut entries = self.lock();
        self.release_locked(&mut entries, name);
    }

    fn release_locked(self: &Arc<Self>, entries: &mut HashMap<String, Entry>, name: &str) {
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        if entry.has_local_interest() {
            return;
        }
        match entry.phase {
            Phase::Subscribed | Phase::Resubscribing => {
                entry.phase = Phase::Unsubscribing;
                self.send_unsubscribe(name.to_owned());
            }
            Phase::Unconfirmed => {
                entries.remove(name);
            }
            // Subscribing and Confirming have pins; Unsubscribing is already going.
            Phase::Subscribing | Phase::Confirming | Phase::Unsubscribing => {}
        }
    }

    fn unpin(self: &Arc<Self>, name: &str) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        entry.pins -= 1;
        entry.settle();
        self.release_locked(&mut entries, name);
    }

    /// Turns `pin` (of a socket to be placed by a marker: a presence joiner, a cache channel's
    /// subscriber) into the wait for a new marker of this node, whose token
    /// [`Marker::token`] gives for the script to publish: the returned [`Marker`] resolves once
    /// the stream reaches the marker, and the channel is then held until the joiner lets go.
    /// The joiner no longer holds up the end of confirming (its place is its marker), but the
    /// subscription stays for it.
    pub fn expect_marker(self: &Arc<Self>, mut pin: Pin) -> Marker {
        let token = self
            .markers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (sender, arrived) = oneshot::channel();
        let name = pin.name.take();
        if let Some(name) = &name {
            let mut entries = self.lock();
            if let Some(entry) = entries.get_mut(name) {
                entry.markers.insert(token, sender);
                entry.pins -= 1;
                entry.joiners += 1;
                entry.settle();
            }
        }
        Marker {
            registry: self.clone(),
            name,
            token,
            arrived,
        }
    }

    /// Stops awaiting `token`'s marker; whether it had been reached (the channel is then held).
    fn abandon_marker(&self, name: &str, token: u64, arrived: &mut oneshot::Receiver<()>) -> bool {
        let mut entries = self.lock();
        if let Some(entry) = entries.get_mut(name) {
            entry.markers.remove(&token);
        }
        // The stream takes a hold and sends under this lock, so this is settled now.
        arrived.try_recv().is_ok()
    }

    /// A presence joiner is done (its socket added, or refused), holding the stream or not.
    fn release_joiner(self: &Arc<Self>, name: &str, held: bool) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        entry.joiners -= 1;
        if held {
            entry.holds -= 1;
        }
        entry.settle();
        self.release_locked(&mut entries, name);
    }

    /// Puts a join marker in `name`'s stream, if it is one of this node's awaited joins.
    fn mark(&self, name: &str, origin: NodeId, token: u64) {
        if origin != self.node {
            return;
        }
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        if entry.markers.contains_key(&token) {
            entry.buffer.push_back(Buffered::Marker(token));
            entry.settle();
        }
    }

    /// Delivers a message read from Redis on `name` to this node's subscribers (or buffers it
    /// while the channel's subscription is confirmed). Messages this node published itself
    /// were delivered here already and are skipped, as is anything that is not a broadcast.
    pub fn deliver(&self, name: &str, message: &[u8]) {
        let broadcast = match decode_any(message) {
            Some(Received::Broadcast(broadcast)) if broadcast.origin != self.node => broadcast,
            // Delivered here when it was published.
            Some(Received::Broadcast(_)) => return,
            Some(Received::ForEveryNode(broadcast)) => broadcast,
            Some(Received::JoinMarker { origin, token }) => return self.mark(name, origin, token),
            Some(Received::Terminate { origin }) => {
                if origin != self.node
                    && let Some((channels, user_id)) = self.user_of(name)
                {
                    channels.users().terminate(&user_id);
                }
                return;
            }
            Some(Received::Watched { online }) => {
                if let Some((channels, user_id)) = self.user_of(name) {
                    channels.users().tell_watchers(&user_id, online);
                }
                return;
            }
            None => {
                tracing::debug!("ignoring a message that is not a Relay broadcast");
                return;
            }
        };
        let (channels, channel) = {
            let mut entries = self.lock();
            let Some(entry) = entries.get_mut(name) else {
                return;
            };
            if entry.stopped() || !entry.buffer.is_empty() {
                let kept = buffer(entry, broadcast, self.buffer_limit);
                // A member event may be among the dropped: read the roster again.
                if !kept && let Some(refresh) = roster_refresh(entry) {
                    self.queue_refresh(refresh);
                }
                return;
            }
            hear(entry, &broadcast);
            (entry.channels.clone(), entry.channel.clone())
        };
        send(&channels, &channel, &broadcast);
    }

    /// See [`Hold::first_roster`].
    fn first_roster(&self, name: &str, roster: &Roster) {
        if let Some(entry) = self.lock().get_mut(name) {
            entry.known.get_or_insert_with(|| KnownMembers::new(roster));
        }
    }

    /// See [`Hold::reconcile`].
    fn reconcile(&self, name: &str, roster: &Roster, reconcile: Reconcile) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        let channel = entry.channel.as_str();
        match &mut entry.known {
            Some(known) => {
                for frame in known.reconcile(channel, roster, reconcile) {
                    entry.channels.deliver(channel, &frame, None);
                }
            }
            // Nothing known yet: what every subscriber here was greeted with.
            None => entry.known = Some(KnownMembers::new(roster)),
        }
    }

    /// The app and user whose `#server-to-user-` channel `name` is (closing the user's
    /// connections and telling its watchers come on it).
    fn user_of(&self, name: &str) -> Option<(Arc<AppChannels>, String)> {
        let entries = self.lock();
        let entry = entries.get(name)?;
        let user_id = entry.channel.server_to_user_id()?.to_owned();
        Some((entry.channels.clone(), user_id))
    }

    /// Subscribes again, on the connection that just came up, to every channel this node
    /// still has local subscribers for.
    pub fn resubscribe_all(self: &Arc<Self>) {
        let mut entries = self.lock();
        for (name, entry) in entries.iter_mut() {
            entry.drop_markers();
            match entry.phase {
                // What the lost connection delivered goes out now; a socket still being
                // added misses it, as it would any message while Redis was away.
                Phase::Confirming => flush(entry),
                Phase::Subscribed | Phase::Resubscribing | Phase::Unconfirmed => {}
                // Their commands went on the lost connection and come back refused or
                // stale; they are sent again then.
                Phase::Subscribing | Phase::Unsubscribing => continue,
            }
            entry.phase = Phase::Resubscribing;
            self.send_subscribe(name.clone());
        }
    }

    fn queue_refresh(&self, refresh: Refresh) {
        let mut refreshes = self.refreshes.lock().unwrap_or_else(|p| p.into_inner());
        refreshes.insert(refresh);
        self.refresh_due.notify_one();
    }

    /// Waits until refreshes are due (channels were subscribed again after the connection
    /// was lost), and takes them.
    pub async fn refreshes(&self) -> Vec<Refresh> {
        loop {
            let taken: Vec<_> = {
                let mut refreshes = self.refreshes.lock().unwrap_or_else(|p| p.into_inner());
                refreshes.drain().collect()
            };
            if !taken.is_empty() {
                return taken;
            }
            self.refresh_due.notified().await;
        }
    }

    /// Channels with a subscription on this node (any phase).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn send_subscribe(self: &Arc<Self>, name: String) {
        let registry = self.clone();
        let sent = self.link.subscribe(name.clone());
        tokio::spawn(async move {
            let sent = sent.await;
            registry.subscribed(&name, sent);
        });
    }

    fn send_unsubscribe(self: &Arc<Self>, name: String) {
        let registry = self.clone();
        let sent = self.link.unsubscribe(name.clone());
        tokio::spawn(async move {
            let sent = sent.await;
            registry.unsubscribed(&name, sent);
        });
    }

    fn subscribed(self: &Arc<Self>, name: &str, sent: Sent) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        if !matches!(entry.phase, Phase::Subscribing | Phase::Resubscribing) {
            return;
        }
        let again = entry.phase == Phase::Resubscribing;
        let current = self.link.generation();
        if sent.acknowledged && current.is_some() && sent.generation == current {
            // Sockets pinned meanwhile (all of them, when subscribing) are added now.
            entry.phase = if again && entry.pins == 0 {
                Phase::Subscribed
            } else {
                Phase::Confirming
            };
            if again && let Some(refresh) = refresh_after_loss(entry) {
                self.queue_refresh(refresh);
            }
        } else {
            // Refused, or acknowledged on a connection that is gone: nothing from other
            // nodes arrives on this subscription. Subscribe on the current connection, or
            // serve locally until there is one.
            entry.buffer.clear();
            entry.buffered_bytes = 0;
            entry.drop_markers();
            entry.phase = Phase::Unconfirmed;
            if current.is_some() {
                entry.phase = Phase::Resubscribing;
                self.send_subscribe(name.to_owned());
            }
        }
        entry.ready.notify_waiters();
        if entry.pins == 0 {
            entry.settle();
            self.release_locked(&mut entries, name);
        }
    }

    fn unsubscribed(self: &Arc<Self>, name: &str, _sent: Sent) {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(name) else {
            return;
        };
        if entry.phase != Phase::Unsubscribing {
            return;
        }
        if !entry.has_local_interest() {
            entries.remove(name);
            return;
        }
        // Sockets arrived while it went: subscribe again (whatever became of the
        // UNSUBSCRIBE, a SUBSCRIBE is harmless).
        if self.link.generation().is_some() {
            entry.phase = Phase::Subscribing;
            self.send_subscribe(name.to_owned());
        } else {
            entry.phase = Phase::Unconfirmed;
            entry.ready.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What `entry`'s subscribers may have missed while the connection was lost, if anything.
fn refresh_after_loss(entry: &Entry) -> Option<Refresh> {
    if let Some(user_id) = entry.channel.server_to_user_id() {
        let watched = entry.channels.users().is_watched(user_id);
        return watched.then(|| Refresh::Watched {
            app_id: entry.app_id.clone(),
            user_id: user_id.to_owned(),
        });
    }
    roster_refresh(entry)
}

/// A refresh of `entry`'s roster, if its local subscribers know of members.
fn roster_refresh(entry: &Entry) -> Option<Refresh> {
    let presence = entry.channel.kind() == ChannelKind::Presence && entry.known.is_some();
    presence.then(|| Refresh::Roster {
        app_id: entry.app_id.clone(),
        channel: entry.channel.clone(),
    })
}

/// Takes a message the stream delivers into what the subscribers know, when it may change it
/// (published by a script: member events are).
fn hear(entry: &mut Entry, broadcast: &Broadcast) {
    if broadcast.scripted
        && let Some(known) = &mut entry.known
    {
        known.hear(&broadcast.frame);
    }
}

/// What waits in a stopped stream.
enum Buffered {
    Message(Broadcast),
    /// The place of this node's join `token`.
    Marker(u64),
}

/// Buffers `broadcast` in `entry` within `limit` bytes; whether it was kept.
fn buffer(entry: &mut Entry, broadcast: Broadcast, limit: usize) -> bool {
    let size = broadcast.frame.len();
    if entry.buffered_bytes + size > limit {
        entry.dropped += 1;
        return false;
    }
    entry.buffered_bytes += size;
    entry.buffer.push_back(Buffered::Message(broadcast));
    true
}

/// Delivers the buffer in order until a join marker of a waiting joiner stops it (the joiner
/// is told, and holds the stream until its socket is added) or the buffer is empty.
fn flush(entry: &mut Entry) {
    while entry.holds == 0
        && let Some(item) = entry.buffer.pop_front()
    {
        match item {
            Buffered::Message(broadcast) => {
                entry.buffered_bytes = entry.buffered_bytes.saturating_sub(broadcast.frame.len());
                hear(entry, &broadcast);
                send(&entry.channels, &entry.channel, &broadcast);
            }
            Buffered::Marker(token) => {
                // A joiner that gave up (or went) holds nothing.
                if let Some(joiner) = entry.markers.remove(&token)
                    && joiner.send(()).is_ok()
                {
                    entry.holds += 1;
                }
            }
        }
    }
    if entry.dropped > 0 {
        tracing::warn!(
            channel = %entry.channel.as_str(),
            dropped = entry.dropped,
            "messages from other nodes dropped while a subscription was confirmed"
        );
        entry.dropped = 0;
    }
}

fn send(channels: &AppChannels, channel: &ChannelName, broadcast: &Broadcast) {
    let delivered = channels.deliver(channel.as_str(), &broadcast.frame, broadcast.except);
    if broadcast.counted {
        channels.count_delivered(delivered);
    }
}

#[cfg(test)]
#[path = "subscriptions_tests.rs"]
mod tests;
