//! How a publish reaches every node, and how cluster-wide questions are answered.
//!
//! Every publish and every question whose answer spans nodes (presence membership, channel
//! counts) goes through the [`Adapter`] trait. [`LocalAdapter`] serves a single process from
//! the [`Hub`](crate::hub::Hub); a Redis adapter (a later issue) will fan publishes out over
//! pub/sub and keep presence and counts in shared state, without the WebSocket or HTTP layers
//! changing.
//!
//! A presence join or leave is one adapter call that subscribes (or unsubscribes) the socket,
//! updates membership and announces `member_added`/`member_removed`, because only the adapter
//! can order those steps against other nodes' joins: a joiner must see each other member
//! exactly once, in its snapshot or as an announcement.
//!
//! Webhook events about occupancy and membership are raised by the hub and the presence roster
//! where the change happens; with this adapter a node's transitions are the cluster's. A
//! multi-node adapter must raise `channel_occupied`/`channel_vacated` and
//! `member_added`/`member_removed` on the cluster-wide transitions instead, once per cluster,
//! and the `subscription_count` webhook once per announcement.

mod local;

use async_trait::async_trait;
use bytestring::ByteString;

use crate::hub::{CachedEvent, Outbox, PresenceJoin};
use crate::protocol::{ChannelName, PresenceMember, SocketId};

pub use local::LocalAdapter;

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

/// Cluster fan-out and cluster-wide state.
#[async_trait]
pub trait Adapter: Send + Sync + 'static {
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

    /// Subscribes `socket` (delivering to `outbox`) to a presence channel as `member`, and
    /// announces `member_added` to everyone else in the channel, cluster-wide, when this is the
    /// user's first connection. Joins and leaves of one channel are ordered: every other
    /// member is either in the returned snapshot or announced to `socket` afterwards, never
    /// both.
    async fn join_presence(
        &self,
        app_id: &str,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        member: &PresenceMember,
        max_members: usize,
    ) -> Result<PresenceJoin, AdapterError>;

    /// Unsubscribes `socket` from a presence channel, announcing `member_removed` when it was
    /// `user_key`'s last connection there.
    async fn leave_presence(
        &self,
        app_id: &str,
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

    /// Tells every subscriber of `channel`, cluster-wide, its subscription count (and raises
    /// the `subscription_count` webhook), counted when it is delivered and ordered against
    /// joins and leaves, so that the last announcement carries the final count.
    async fn announce_subscription_count(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<(), AdapterError>;

    /// Every channel with at least one subscriber, cluster-wide.
    async fn occupied_channels(&self, app_id: &str) -> Result<Vec<OccupiedChannel>, AdapterError>;

    /// Records that `socket` (delivering to `outbox`) signed in as `user_id`; when this makes
    /// the user online, the user's watchers are told, cluster-wide.
    async fn user_signed_in(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        outbox: &Outbox,
    ) -> Result<(), AdapterError>;

    /// Records that a signed-in `socket` closed; when this makes the user offline, the user's
    /// watchers are told, cluster-wide.
    async fn user_signed_out(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
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

    /// Stores `event` as the last event of the cache channel `channel`, cluster-wide. New
    /// subscribers are greeted from their node's hub cache (under the hub's channel lock, for
    /// ordering), so a cluster adapter must keep every node's hub cache current.
    async fn store_cached_event(
        &self,
        app_id: &str,
        channel: &ChannelName,
        event: CachedEvent,
    ) -> Result<(), AdapterError>;

    /// The last unexpired event of the cache channel `channel`, cluster-wide.
    async fn cached_event(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, AdapterError>;
}
