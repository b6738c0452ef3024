//! Watchlists across the cluster. A signed-in connection of an app with
//! `enable_watchlist_events` is counted in Redis (this node's count of each user, written by
//! `sync` as it changes), and the script that moves a user's cluster-wide count announces the
//! user online or offline on the user's own `#server-to-user-` channel (`W1`, see
//! [`envelope`](super::envelope)). A watcher's node subscribes to the channel of each user it
//! watches for as long as it watches ([`Subscriptions`](super::subscriptions::Subscriptions)
//! keeps those subscriptions while the hub has a watcher), so it hears every transition
//! however many nodes the user's connections are on.
//!
//! A new watcher is registered before its users' states are read from Redis, as pending: a
//! transition heard meanwhile waits behind the states (`SignedInUsers::watch_ready`), so the
//! watcher ends with every user's true state (a transition already in the states it read is
//! told twice at worst). While Redis is away, the states are this node's own.
//!
//! Announcements made while this node's pub/sub connection was lost never reach it: when a
//! watched user's channel is subscribed again, its state is read from Redis and its watchers
//! are told if it changed ([`refresh_watched`]; an announcement heard meanwhile wins, being at
//! least as new as the reading).

use deadpool_redis::redis::cmd;

use super::keys::Keys;
use super::link::Link;
use super::{CLAIM_WAIT, RedisAdapter};
use crate::hub::{Hub, Outbox};
use crate::protocol::{ChannelName, SocketId};

impl RedisAdapter {
    /// Whether `app_id`'s signed-in users are counted across the cluster.
    pub(super) fn has_watchlists(&self, app_id: &str) -> bool {
        self.watchlist_apps.contains(app_id)
    }

    /// Records a sign-in for the cluster (its watchers are told by the write, if it takes the
    /// user online). The user's first connection on this node waits (within [`CLAIM_WAIT`])
    /// until it is written, as a first subscriber's claim does: a client told it is signed in
    /// can rely on every watcher in the cluster reading it online.
    pub(super) async fn sign_in(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        outbox: &Outbox,
    ) {
        let users = self.hub.app(app_id);
        let first_here = users.users().add_quiet(user_id, socket, outbox);
        let change = self.share.user_changed(app_id, user_id);
        if first_here {
            self.share.wait_written(change, CLAIM_WAIT).await;
        }
    }

    /// Records a sign-out for the cluster and drops the watchlist `watching`.
    pub(super) fn sign_out(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        watching: &[String],
    ) {
        let channels = self.hub.app(app_id);
        channels.users().unwatch(socket, watching);
        for watched in watching {
            if let Ok(channel) = ChannelName::server_to_user(watched) {
                let name = self.pubsub_name(app_id, &channel);
                self.subscriptions.release(&name);
            }
        }
        channels.users().remove_quiet(user_id, socket);
        self.share.user_changed(app_id, user_id);
    }

    /// Registers `socket` as watching `user_ids` and queues their states, cluster-wide.
    pub(super) async fn watch(
        &self,
        app_id: &str,
        socket: SocketId,
        outbox: &Outbox,
        user_ids: &[String],
    ) {
        let channels: Vec<ChannelName> = user_ids
            .iter()
            .filter_map(|id| ChannelName::server_to_user(id).ok())
            .collect();
        // Subscribed (acknowledged) before the states are read: no later transition is missed.
        let _pins = futures_util::future::join_all(channels.iter().map(|channel| {
            let name = self.pubsub_name(app_id, channel);
            self.subscriptions.pin(name, app_id, channel)
        }))
        .await;
        let users = self.hub.app(app_id);
        let users = users.users();
        users.watch_pending(socket, outbox, user_ids);
        let mut command = cmd("HMGET");
        command.arg(self.keys.users(app_id)).arg(user_ids);
        let counts = match self.link.query::<Vec<Option<u64>>>(&command).await {
            Some(counts) if counts.len() == user_ids.len() => counts,
            // Redis is away: this node's own view.
            _ => user_ids
                .iter()
                .map(|id| users.is_signed_in(id).then_some(1))
                .collect(),
        };
        let (mut online, mut offline) = (Vec::new(), Vec::new());
        for (id, count) in user_ids.iter().zip(counts) {
            if count.unwrap_or(0) > 0 {
                online.push(id.as_str());
            } else {
                offline.push(id.as_str());
            }
        }
        users.watch_ready(socket, outbox, &online, &offline);
    }
}

/// Reads watched `user_id`'s state from Redis and tells its watchers if it changed while
/// this node's pub/sub connection was lost (an announcement heard meanwhile wins).
pub(super) async fn refresh_watched(
    link: &Link,
    keys: &Keys,
    hub: &Hub,
    app_id: &str,
    user_id: &str,
) {
    let channels = hub.app(app_id);
    let users = channels.users();
    let heard = users.heard(user_id);
    let mut command = cmd("HGET");
    command.arg(keys.users(app_id)).arg(user_id);
    if let Some(count) = link.query::<Option<u64>>(&command).await {
        users.refresh(user_id, count.unwrap_or(0) > 0, heard);
    }
}
