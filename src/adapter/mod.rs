//! How a publish reaches every node, and how cluster-wide state is kept and asked.
//!
//! The [`Adapter`] is the only door from the WebSocket and HTTP layers into subscription
//! state: connections counted against an app's quota, subscribing and unsubscribing (public,
//! private, presence and the user channels of signed-in sockets), sign-ins and watchlists,
//! publishing, and every question whose answer spans nodes. A cluster adapter sees every
//! local change it must share (a channel's first and last local subscriber for its pub/sub
//! subscriptions and shared counts) without the layers above changing.
//! [`LocalAdapter`] serves a single process from the [`Hub`](crate::hub::Hub).
//!
//! The hub reports its transitions ([`HubEvents`](crate::hub::HubEvents)); the adapter
//! decides which webhooks they are. With one node a local transition is the cluster's; a
//! cluster adapter raises `channel_occupied`/`vacated` and `member_added`/`removed` on the
//! cluster-wide transitions, once per cluster.
//!
//! A presence join or leave is one adapter call that subscribes (or unsubscribes) the socket,
//! updates membership and announces `member_added`/`member_removed`, because only the adapter
//! can order those steps against other nodes' joins: a joiner must see each other member
//! exactly once, in its snapshot or as an announcement. Likewise storing a cache channel's
//! event and publishing it is one call, so no node can serve a newer subscriber an older
//! event after the newer one was broadcast.
//!
//! Calls may wait on the network (Redis); the WebSocket session keeps writing its outbox and
//! answering keep-alives while one of its handlers waits (see `ws::session`).

mod local;
mod raised;
mod redis;
mod subscription_count;

use std::sync::Arc;

use async_trait::async_trait;
use bytestring::ByteString;

use crate::apps::App;
use crate::config::Config;
use crate::guard::ClusterRates;
use crate::hub::Hub;
use crate::hub::{CachedEvent, Outbox, PresenceJoin};
use crate::protocol::{ChannelName, PresenceMember, SocketId};
use crate::webhooks::WebhookSinks;

pub use local::LocalAdapter;
pub use redis::RedisAdapter;

/// The adapter `config` asks for (Redis when `[redis]` is set), delivering to this node's
/// `hub` and raising webhooks into `webhooks`; [`Adapter::start`] then connects it.
pub fn from_config(
    config: &Config,
    hub: Arc<Hub>,
    webhooks: WebhookSinks,
) -> Result<Arc<dyn Adapter>, AdapterError> {
    Ok(match &config.redis {
        Some(redis) => Arc::new(RedisAdapter::new(config, redis, hub, webhooks)?),
        None => Arc::new(LocalAdapter::new(hub, webhooks)),
    })
}

/// Why the adapter could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The shared backend (e.g. Redis) could not be reached; the reason is for the log only.
    #[error("cluster backend unavailable: {0}")]
    Unavailable(String),
}

/// A channel with subscribers somewhere in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccupiedChannel {
    /// The channel.
    pub name: ChannelName,
    /// Connections subscribed to it, cluster-wide.
    pub subscription_count: usize,
}

/// Where a cluster node's local changes go, to be shared with the other nodes; each call
/// must be quick and must not block (it is made under the hub's locks).
pub trait ClusterShare: Send + Sync + 'static {
    /// `channel` of `app_id` has `count` subscribers on this node now.
    fn channel_changed(&self, app_id: &str, channel: &ChannelName, count: usize);

    /// The number of `app_id`'s connections on this node changed.
    fn connections_changed(&self, app_id: &str);
}

/// An open connection counted against its app's quota; dropping it frees the place.
pub struct ConnectionSlot {
    local: Option<crate::hub::ConnectionSlot>,
    /// Told once the place is free, when the count is shared with other nodes.
    share: Option<(Arc<dyn ClusterShare>, Arc<str>)>,
}

impl ConnectionSlot {
    fn new(local: crate::hub::ConnectionSlot) -> Self {
        ConnectionSlot {
            local: Some(local),
            share: None,
        }
    }

    /// Registers the connection's outbox with this node's hub (see
    /// [`crate::hub::Hub::app_changed`]).
    pub fn watch(&mut self, socket: crate::protocol::SocketId, outbox: crate::hub::Outbox) {
        if let Some(local) = &mut self.local {
            local.watch(socket, outbox);
        }
    }
}

impl std::fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSlot").finish_non_exhaustive()
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        drop(self.local.take());
        if let Some((share, app_id)) = &self.share {
            share.connections_changed(app_id);
        }
    }
}

/// Cluster fan-out and cluster-wide state.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
    /// Starts what runs beside the server (connections to a backend, heartbeats, cleanup);
    /// called once, before clients are accepted.
    async fn start(&self) -> Result<(), AdapterError> {
        Ok(())
    }

    /// Stops it; called once the connections are closed (and their departures recorded).
    async fn shutdown(&self) {}

    /// Whether the shared backend is reachable (always, for one node); `/ready` reports it.
    fn reachable(&self) -> bool {
        true
    }

    /// Where the cluster counts rate limits (`None`: one node counts its own).
    fn cluster_rates(&self) -> Option<Arc<dyn ClusterRates>> {
        None
    }

    /// Counts a new connection of `app` unless its `max_connections` are open, cluster-wide;
    /// `None` then.
    async fn open_connection(&self, app: &App) -> Option<ConnectionSlot>;

    /// Subscribes `socket` (delivering to `outbox`) to the non-presence `channel`, first
    /// queueing `greeting` (its `subscription_succeeded`) so that no event of the channel
    /// overtakes it, and announces the new subscription count when the app wants counts. A
    /// socket already subscribed stays so, and is not greeted again.
    async fn subscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        greeting: Option<&ByteString>,
    ) -> Result<(), AdapterError>;

    /// Unsubscribes `socket` from the non-presence `channel` (announcing the new count when
    /// the app wants counts). Whatever the cluster's state, this node stops delivering to it.
    async fn unsubscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
    ) -> Result<(), AdapterError>;

    /// Delivers `frame` (serialized once) to every subscriber of `channel` on every node,
    /// except the connection `except`; each node counts what it delivers toward the app's
    /// daily message quota (`AppChannels::count_delivered`).
    async fn publish(
        &self,
        app_id: &str,
        channel: &ChannelName,
        frame: ByteString,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError>;

    /// Stores `event` as the last event of the cache channel `channel` and publishes its
    /// frame as [`publish`](Adapter::publish) does, as one step.
    async fn publish_cached(
        &self,
        app_id: &str,
        channel: &ChannelName,
        event: CachedEvent,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError>;

    /// Subscribes `socket` (delivering to `outbox`) to a presence channel as `member`, and
    /// announces `member_added` to everyone else in the channel, cluster-wide, when this is the
    /// user's first connection. Joins and leaves of one channel are ordered: every other
    /// member is either in the returned snapshot or announced to `socket` afterwards, never
    /// both. At most `app`'s `max_presence_members` users.
    async fn join_presence(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        member: &PresenceMember,
    ) -> Result<PresenceJoin, AdapterError>;

    /// Unsubscribes `socket` from a presence channel, announcing `member_removed` when it was
    /// `user_key`'s last connection there. Whatever the cluster's state, this node stops
    /// delivering to it.
    async fn leave_presence(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
    ) -> Result<(), AdapterError>;

    /// The distinct user ids in a presence channel, cluster-wide.
    async fn presence_members(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Vec<String>, AdapterError>;

    /// Connections subscribed to `channel`, cluster-wide.
    async fn subscription_count(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<usize, AdapterError>;

    /// Every channel with at least one subscriber, cluster-wide.
    async fn occupied_channels(&self, app_id: &str) -> Result<Vec<OccupiedChannel>, AdapterError>;

    /// Records that `socket` (delivering to `outbox`) signed in as `user_id` (its user channel
    /// is subscribed to like any other); when this makes the user online, the user's watchers
    /// are told, cluster-wide.
    async fn user_signed_in(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        outbox: &Outbox,
    ) -> Result<(), AdapterError>;

    /// Records that a signed-in `socket` closed, forgetting the watchlist it registered
    /// (`watching`); when this makes the user offline, the user's watchers are told,
    /// cluster-wide.
    async fn user_signed_out(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        watching: &[String],
    ) -> Result<(), AdapterError>;

    /// Registers `socket` (delivering to `outbox`) as watching `user_ids` and queues their
    /// online/offline state, cluster-wide, ordered before any later change.
    async fn watch_users(
        &self,
        app_id: &str,
        socket: SocketId,
        outbox: &Outbox,
        user_ids: &[String],
    ) -> Result<(), AdapterError>;

    /// Closes every connection signed in as `user_id`, cluster-wide.
    async fn terminate_user(&self, app_id: &str, user_id: &str) -> Result<(), AdapterError>;

    /// The last unexpired event of the cache channel `channel`, cluster-wide.
    async fn cached_event(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, AdapterError>;
}
