//! The cluster adapter: several Relay nodes share their broadcasts through one Redis.
//!
//! A broadcast is delivered to this node's subscribers at once and published to Redis once
//! (never per subscriber), carrying the frame as serialized here, the publishing node's id and
//! the socket to leave out ([`envelope`]). Each node subscribes in Redis to the channels it
//! has local subscribers for, one pub/sub channel per Pusher channel (`{prefix}:{app}:{channel}`;
//! no firehose, so a node hears only what its clients want), and greets a subscriber only once
//! Redis has acknowledged that subscription ([`subscriptions`]). Order per channel from one
//! publisher is kept: one publisher's publishes are awaited in turn on one connection, and one
//! node reads its messages from one connection in order.
//!
//! While Redis is away ([`link`]) the node keeps serving its own clients: local delivery goes
//! on, other nodes get nothing (at most once), and the subscriptions are restored on
//! reconnection.
//!
//! Cluster-wide state ([`keys`], [`scripts`], [`sync`]): each node writes its own subscriber
//! and connection counts to Redis as they change (its absolute counts, so a write can be
//! repeated), and the cluster-wide figures move in the same atomic script, which also says
//! when a channel became occupied or vacated cluster-wide: that node raises the webhook.
//! `GET channels`, `GET channel` and `info` read the cluster's figures; an app's
//! `max_connections` is its quota across the cluster, taken atomically at each connect.
//! Nodes heartbeat; a silent one is cleaned up by exactly one survivor.
//!
//! `terminate_connections` is published on the user's own channel, which every node with a
//! connection of the user is subscribed to.
//!
//! Presence is the cluster's ([`presence`]): one roster per channel in Redis, member events
//! once per user cluster-wide, each joiner placed exactly in the channel's stream.
//!
//! A cache channel's last event is the cluster's ([`cache`]): stored and published in one
//! script, and read by a new subscriber where it takes its place in the stream.
//!
//! Subscription counts are announced where the cluster's count changes, by the script that
//! changes it ([`sync`]).
//!
//! Watchlists are the cluster's: with `enable_watchlist_events`, each node writes its
//! connection count of each signed-in user ([`sync`]), the script that moves a user's
//! cluster-wide count tells the user's watchers, on the user's own channel, which a watcher's
//! node subscribes to for as long as it watches, and a new watcher reads its users' states
//! from Redis (what it is told meanwhile waits behind that state).

mod cache;
mod catch_up;
mod envelope;
mod keys;
mod link;
mod presence;
mod rates;
mod roster;
mod scripts;
mod share;
mod subscriptions;
mod sync;
mod watchlists;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytestring::ByteString;
use deadpool_redis::redis::cmd;
use tokio_util::sync::CancellationToken;

use self::cache::ClusterCache;
use self::catch_up::CatchUp;
use self::envelope::NodeId;
use self::keys::Keys;
use self::link::{Link, LinkCommands};
use self::presence::{ClusterPresence, Entered};
use self::scripts::Scripts;
use self::share::NodeShare;
use self::subscriptions::Subscriptions;
use self::sync::ClusterState;
use super::{Adapter, AdapterError, ClusterShare, ConnectionSlot, LocalAdapter, OccupiedChannel};
use crate::apps::App;
use crate::config::{Config, RedisConfig};
use crate::guard::ClusterRates;
use crate::hub::{CachedEvent, Hub, Outbox, PresenceJoin};
use crate::protocol::{ChannelKind, ChannelName, PresenceMember, SocketId};
use crate::webhooks::WebhookSinks;
use rates::RedisRates;

/// How long a first local subscriber waits for its channel's count to be written before it
/// is greeted anyway.
const CLAIM_WAIT: Duration = Duration::from_secs(2);

/// How long [`Adapter::start`] waits for the first connection before serving without it.
const START_WAIT: Duration = Duration::from_secs(3);

/// Fan-out through Redis, this node's state in memory.
pub struct RedisAdapter {
    node: NodeId,
    hub: Arc<Hub>,
    keys: Keys,
    local: LocalAdapter,
    link: Arc<Link>,
    subscriptions: Arc<Subscriptions>,
    scripts: Arc<Scripts>,
    share: Arc<NodeShare>,
    presence: Arc<ClusterPresence>,
    cache: ClusterCache,
    /// The apps with `enable_watchlist_events`.
    watchlist_apps: HashSet<String>,
    /// `[redis] node_timeout`.
    node_timeout: Duration,
    /// The cluster-state task, until started.
    cluster_state: Mutex<Option<ClusterState>>,
    /// The running tasks, each with what stops it.
    tasks: Mutex<Vec<(CancellationToken, tokio::task::JoinHandle<()>)>>,
}

impl RedisAdapter {
    /// An adapter for `redis` (the `[redis]` of `server_config`), delivering to `hub` and
    /// raising webhooks into `webhooks`; a message from another node waiting for a
    /// subscription to be confirmed is held within one connection's outbound byte limit per
    /// channel.
    pub fn new(
        server_config: &Config,
        config: &RedisConfig,
        hub: Arc<Hub>,
        webhooks: WebhookSinks,
    ) -> Result<Self, AdapterError> {
        let buffer_limit = server_config.server.outbound_queue_bytes;
        let vacate_delays = server_config
            .apps
            .iter()
            .map(|app| {
                let delay = Duration::from_millis(app.webhook_vacate_delay_ms);
                (app.id.as_str().to_owned(), delay)
            })
            .collect();
        let watchlist_apps: HashSet<String> = server_config
            .apps
            .iter()
            .filter(|app| app.enable_watchlist_events)
            .map(|app| app.id.as_str().to_owned())
            .collect();
        let counted_apps = server_config
            .apps
            .iter()
            .filter(|app| app.enable_subscription_count)
            .map(|app| app.id.as_str().to_owned())
            .collect();
        let keepalive = Duration::from_secs(config.heartbeat_interval);
        let link = Link::new(config.url.as_str(), config.display_address(), keepalive)
            .map(Arc::new)
            .map_err(AdapterError::Unavailable)?;
        let node = NodeId::random();
        let commands = Arc::new(LinkCommands(link.clone()));
        let subscriptions = Subscriptions::new(node, hub.clone(), commands, buffer_limit);
        let keys = Keys::new(config.prefix.as_str());
        let scripts = Arc::new(Scripts::default());
        let share = Arc::new(NodeShare::default());
        let presence = Arc::new(ClusterPresence::new(
            node,
            keys.clone(),
            link.clone(),
            scripts.clone(),
            subscriptions.clone(),
            share.clone(),
            webhooks.clone(),
        ));
        let cache = ClusterCache {
            node,
            keys: keys.clone(),
            link: link.clone(),
            scripts: scripts.clone(),
            subscriptions: subscriptions.clone(),
        };
        let node_timeout = Duration::from_secs(config.node_timeout);
        let cluster_state = ClusterState {
            node,
            keys: keys.clone(),
            link: link.clone(),
            scripts: scripts.clone(),
            share: share.clone(),
            presence: presence.clone(),
            hub: hub.clone(),
            webhooks: webhooks.clone(),
            heartbeat_interval: keepalive,
            node_timeout,
            vacate_delays: Arc::new(vacate_delays),
            counted_apps: Arc::new(counted_apps),
            watchlist_apps: Arc::new(watchlist_apps.clone()),
            scheduled_counts: Arc::default(),
        };
        Ok(RedisAdapter {
            node,
            hub: hub.clone(),
            keys,
            local: LocalAdapter::sharing(hub, webhooks, share.clone()),
            link,
            subscriptions,
            scripts,
            share,
            presence,
            cache,
            watchlist_apps,
            node_timeout,
            cluster_state: Mutex::new(Some(cluster_state)),
            tasks: Mutex::default(),
        })
    }

    fn pubsub_name(&self, app_id: &str, channel: &ChannelName) -> String {
        self.keys.pubsub(app_id, channel.as_str())
    }

    /// Makes ready to greet a socket on `channel`: Redis has acknowledged the channel's
    /// subscription ([`Subscriptions::pin`]) and, for this node's first local subscriber, counts
    /// the channel as occupied here ([`NodeShare::claim`]), both at once. Returns the pin and
    /// whether a claim was made (see [`RedisAdapter::settle_claim`]).
    async fn prepare(&self, app_id: &str, channel: &ChannelName) -> (subscriptions::Pin, bool) {
        let pin = self
            .subscriptions
            .pin(self.pubsub_name(app_id, channel), app_id, channel);
        let claim = channel.kind() != ChannelKind::ServerToUser
            && self.link.reachable()
            && self.hub.app(app_id).subscriber_count(channel.as_str()) == 0;
        if claim {
            let (pin, ()) = tokio::join!(pin, self.share.claim(app_id, channel, CLAIM_WAIT));
            (pin, true)
        } else {
            (pin.await, false)
        }
    }

    /// After a claimed subscription: the node's real count replaces the claim (0 when the
    /// socket was refused).
    fn settle_claim(&self, app_id: &str, channel: &ChannelName, claimed: bool) {
        if claimed {
            let count = self.hub.app(app_id).subscriber_count(channel.as_str());
            self.share.settle_claim(app_id, channel, count);
        }
    }

    /// Takes a place in `app`'s cluster-wide quota; `false` when it is used up. Without
    /// Redis the node admits on its own count alone.
    async fn reserve_connection(&self, app: &App, max: usize) -> bool {
        if !self.link.reachable() {
            return true;
        }
        let node = self.node.to_string();
        let taken: Option<i64> = self
            .link
            .invoke(
                self.scripts
                    .open_connection
                    .key(self.keys.connections(&app.id))
                    .key(self.keys.node_connections(&app.id))
                    .key(self.keys.node_apps(&node))
                    .key(self.keys.nodes())
                    .arg(max)
                    .arg(&node)
                    .arg(&app.id),
            )
            .await;
        if taken == Some(2) {
            // This node was not in the cluster: whatever else it holds goes in again.
            self.share.request_rewrite();
        }
        taken != Some(0)
    }

    /// Publishes `message` on `channel`'s Redis channel, to the other nodes (not sent while
    /// Redis is away).
    async fn publish_remote(&self, app_id: &str, channel: &ChannelName, message: Vec<u8>) {
        self.link
            .publish(self.pubsub_name(app_id, channel), message)
            .await;
    }
}

#[async_trait]
impl Adapter for RedisAdapter {
    async fn start(&self) -> Result<(), AdapterError> {
        let stop_link = CancellationToken::new();
        let link = self
            .link
            .clone()
            .run(self.subscriptions.clone(), stop_link.clone());
        // Stopped in reverse order: the cluster state leaves the cluster while the link is up.
        let mut tasks = vec![(stop_link, tokio::spawn(link))];
        let stop_refresh = CancellationToken::new();
        let refresh = CatchUp {
            subscriptions: self.subscriptions.clone(),
            link: self.link.clone(),
            keys: self.keys.clone(),
            hub: self.hub.clone(),
            presence: self.presence.clone(),
            node_timeout: self.node_timeout,
        }
        .run(stop_refresh.clone());
        tasks.push((stop_refresh, tokio::spawn(refresh)));
        let cluster_state = self
            .cluster_state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(cluster_state) = cluster_state {
            let stop = CancellationToken::new();
            tasks.push((stop.clone(), tokio::spawn(cluster_state.run(stop))));
        }
        *self.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        // Serving without Redis is allowed (it may come later); the link has said why.
        self.link.wait_until_reachable(START_WAIT).await;
        Ok(())
    }

    async fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for (stop, task) in tasks.into_iter().rev() {
            stop.cancel();
            let _ = task.await;
        }
    }

    fn reachable(&self) -> bool {
        self.link.reachable()
    }

    fn cluster_rates(&self) -> Option<Arc<dyn ClusterRates>> {
        Some(Arc::new(RedisRates::new(
            self.link.clone(),
            self.keys.clone(),
        )))
    }

    async fn open_connection(&self, app: &App) -> Option<ConnectionSlot> {
        if let Some(max) = app.limits.max_connections
            && !self.reserve_connection(app, max).await
        {
            return None;
        }
        let slot = self.local.open_connection(app).await;
        // The node's count replaces the reservation (also when the local count refused).
        self.share.connections_changed(&app.id);
        slot
    }

    async fn subscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        greeting: Option<&ByteString>,
    ) -> Result<(), AdapterError> {
        let (pin, claimed) = self.prepare(&app.id, channel).await;
        let local = &self.local;
        if channel.is_cache() && greeting.is_some() && self.link.reachable() {
            // The cluster's last event, read where the socket takes its place in the stream.
            match self.cache.read_at_marker(&app.id, channel, pin).await {
                Ok((cached, hold)) => {
                    local.subscribe_with(app, channel, socket, outbox, greeting, Some(cached));
                    drop(hold);
                }
                // The unanswered marker keeps the subscription until the socket is in.
                Err(_marker) => local.subscribe_with(app, channel, socket, outbox, greeting, None),
            }
        } else {
            local.subscribe_with(app, channel, socket, outbox, greeting, None);
            drop(pin);
        }
        self.settle_claim(&app.id, channel, claimed);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
    ) -> Result<(), AdapterError> {
        let left = self.local.unsubscribe(app, channel, socket).await;
        self.subscriptions
            .release(&self.pubsub_name(&app.id, channel));
        left
    }

    async fn publish(
        &self,
        app_id: &str,
        channel: &ChannelName,
        frame: ByteString,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError> {
        self.local
            .publish(app_id, channel, frame.clone(), except)
            .await?;
        let message = envelope::encode(self.node, except, &frame);
        self.publish_remote(app_id, channel, message).await;
        Ok(())
    }

    async fn publish_cached(
        &self,
        app_id: &str,
        channel: &ChannelName,
        event: CachedEvent,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError> {
        if self.link.reachable() && self.cache.publish(app_id, channel, &event, except).await {
            // Delivered here too when it comes back through Redis; kept here as well for
            // while Redis is away.
            let cache = self.hub.app(app_id);
            cache
                .cache()
                .store(channel, event, tokio::time::Instant::now());
            return Ok(());
        }
        // Redis is away: this node's subscribers only, from this node's cache.
        self.local
            .publish_cached(app_id, channel, event, except)
            .await
    }

    async fn join_presence(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        member: &PresenceMember,
    ) -> Result<PresenceJoin, AdapterError> {
        let writing = self.presence.writing().await;
        let (pin, claimed) = self.prepare(&app.id, channel).await;
        let max_members = app.limits.max_presence_members;
        let entered = self
            .presence
            .enter(&app.id, max_members, channel, socket, member, pin, writing)
            .await;
        let joined = match entered {
            Ok(Entered::Joined(joining)) => {
                let greeting = Some(&joining.greeting);
                let subscribed = self.local.subscribe(app, channel, socket, outbox, greeting);
                let subscribed = subscribed.await;
                let outcome = PresenceJoin::Joined {
                    first_connection: joining.first_connection,
                    subscription_data: joining.subscription_data.clone(),
                };
                self.presence
                    .joined(joining, &app.id, channel, socket, member);
                subscribed.map(|()| outcome)
            }
            Ok(Entered::Full) => Ok(PresenceJoin::Full),
            Err(error) => Err(error),
        };
        self.settle_claim(&app.id, channel, claimed);
        joined
    }

    async fn leave_presence(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
    ) -> Result<(), AdapterError> {
        // Out of the hub first: whatever the cluster's state, this node stops delivering.
        let unsubscribed = self.local.unsubscribe(app, channel, socket).await;
        let left = self
            .presence
            .leave(&app.id, channel, socket, user_key)
            .await;
        self.subscriptions
            .release(&self.pubsub_name(&app.id, channel));
        unsubscribed.and(left)
    }

    async fn presence_members(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Vec<String>, AdapterError> {
        Ok(self.presence.members(app_id, channel).await)
    }

    async fn subscription_count(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<usize, AdapterError> {
        let mut command = cmd("HGET");
        command
            .arg(self.keys.channels(app_id))
            .arg(channel.as_str());
        match self.link.query::<Option<usize>>(&command).await {
            Some(count) => Ok(count.unwrap_or(0)),
            // Without Redis, this node's own.
            None => self.local.subscription_count(app_id, channel).await,
        }
    }

    async fn occupied_channels(&self, app_id: &str) -> Result<Vec<OccupiedChannel>, AdapterError> {
        let mut command = cmd("HGETALL");
        command.arg(self.keys.channels(app_id));
        match self
            .link
            .query::<std::collections::HashMap<String, usize>>(&command)
            .await
        {
            Some(channels) => Ok(channels
                .into_iter()
                .filter_map(|(name, subscription_count)| {
                    let name = ChannelName::parse(&name, usize::MAX).ok()?;
                    Some(OccupiedChannel {
                        name,
                        subscription_count,
                    })
                })
                .collect()),
            None => self.local.occupied_channels(app_id).await,
        }
    }

    async fn user_signed_in(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        outbox: &Outbox,
    ) -> Result<(), AdapterError> {
        if !self.has_watchlists(app_id) {
            return self
                .local
                .user_signed_in(app_id, user_id, socket, outbox)
                .await;
        }
        self.sign_in(app_id, user_id, socket, outbox).await;
        Ok(())
    }

    async fn user_signed_out(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        watching: &[String],
    ) -> Result<(), AdapterError> {
        if !self.has_watchlists(app_id) {
            return self
                .local
                .user_signed_out(app_id, user_id, socket, watching)
                .await;
        }
        self.sign_out(app_id, user_id, socket, watching);
        Ok(())
    }

    async fn watch_users(
        &self,
        app_id: &str,
        socket: SocketId,
        outbox: &Outbox,
        user_ids: &[String],
    ) -> Result<(), AdapterError> {
        if !self.has_watchlists(app_id) {
            return self
                .local
                .watch_users(app_id, socket, outbox, user_ids)
                .await;
        }
        self.watch(app_id, socket, outbox, user_ids).await;
        Ok(())
    }

    async fn terminate_user(&self, app_id: &str, user_id: &str) -> Result<(), AdapterError> {
        self.local.terminate_user(app_id, user_id).await?;
        // Every node with a connection of the user is subscribed to the user's channel.
        if let Ok(channel) = ChannelName::server_to_user(user_id) {
            let message = envelope::encode_terminate(self.node);
            self.publish_remote(app_id, &channel, message).await;
        }
        Ok(())
    }

    async fn cached_event(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, AdapterError> {
        match self.cache.read(app_id, channel).await {
            Some(cached) => Ok(cached),
            None => self.local.cached_event(app_id, channel).await,
        }
    }
}
