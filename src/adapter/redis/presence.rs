//! Presence across the cluster: one roster per channel in Redis, one member per user however
//! many connections and nodes the user has, and `member_added`/`member_removed` once per user
//! cluster-wide, to clients and as webhooks.
//!
//! A join or leave is one Redis script ([`scripts`](super::scripts)) that changes the roster
//! and publishes the member event in the same atomic step, so two nodes can never both see a
//! user's first connection, and the event reaches every node (the publisher's included) in
//! the channel's stream. A join also publishes a marker and returns the roster: the roster
//! holds every member event published before the marker, so the joining socket is added to
//! the hub exactly at the marker ([`Subscriptions::expect_marker`]) and sees every other
//! member exactly once, in its `subscription_succeeded` or announced afterwards.
//!
//! Each node keeps a record of its own presence connections (what the Redis entries of the
//! node must be). After Redis was away or lost them, or when a script's answer was lost, the
//! node makes Redis's entries equal to its record ([`ClusterPresence::sync_all`]): connections
//! that left meanwhile leave the roster and are announced, and those Redis lost are put back
//! and announced again (a clean-up that took this node for dead, or a Redis restart, told the
//! others they had gone). A sync excludes joins and leaves of this node while it runs, so it
//! never undoes one; a join takes its share of that exclusion before it pins its channel. A dead node's members are removed, and
//! announced, by the survivor that cleans it up (`sync`).
//!
//! Member events published while this node's pub/sub connection was lost never reach its
//! subscribers. When the channel is subscribed again, its roster is read at a marker, like a
//! join's, and the local subscribers are told what they missed
//! ([`ClusterPresence::refresh_roster`], see [`roster`](super::roster)).
//!
//! While Redis is unreachable a presence join is refused (`Unavailable`, which the client sees
//! as a subscription error with status 503): this node cannot know the roster, and a member
//! only it knew of would be announced to nobody else. Leaves are recorded here and reach
//! Redis on reconnection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytestring::ByteString;
use deadpool_redis::redis::{ScriptInvocation, cmd};
use serde_json::value::RawValue;
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use super::envelope::{self, NodeId};
use super::keys::Keys;
use super::link::Link;
use super::roster::{Reconcile, Roster};
use super::scripts::Scripts;
use super::share::NodeShare;
use super::subscriptions::{Hold, Pin, Subscriptions};
use crate::adapter::AdapterError;
use crate::protocol::{ChannelName, PresenceMember, SocketId, WebhookKind, frames};
use crate::webhooks::{WebhookEvent, WebhookSinks};

/// How long a join waits for its marker after the script answered (it is normally read
/// within a round trip; longer means the connection is failing).
const MARKER_WAIT: Duration = Duration::from_secs(2);

/// This node's presence connections of one channel: user id → member and sockets.
type ChannelRecord = HashMap<String, (PresenceMember, Vec<SocketId>)>;

/// The cluster's presence, as one node takes part in it.
pub struct ClusterPresence {
    pub node: NodeId,
    pub keys: Keys,
    pub link: Arc<Link>,
    pub scripts: Arc<Scripts>,
    pub subscriptions: Arc<Subscriptions>,
    pub share: Arc<NodeShare>,
    pub webhooks: WebhookSinks,
    /// This node's presence connections, by app id and channel.
    record: Mutex<HashMap<(String, ChannelName), ChannelRecord>>,
    /// Joins and leaves share it; a sync takes it alone.
    syncing: Arc<RwLock<()>>,
}

/// What a join's script answered.
pub enum Entered {
    /// The channel has its maximum of users.
    Full,
    /// In the roster: add the socket to the hub with `greeting`, then [`ClusterPresence::joined`].
    Joined(Joining),
}

/// A join the script has made, whose socket is to be added to the hub now.
pub struct Joining {
    /// The socket's `subscription_succeeded`.
    pub greeting: ByteString,
    /// Its `{"presence":…}` payload.
    pub subscription_data: String,
    /// Whether this made the user a member of the channel.
    pub first_connection: bool,
    /// The roster read at the join's marker.
    roster: Roster,
    /// The channel's stream is held at the join's marker until this goes.
    hold: Hold,
    _writing: Writing,
}

/// See [`ClusterPresence::writing`].
pub struct Writing {
    _shared: OwnedRwLockReadGuard<()>,
}

impl ClusterPresence {
    #[allow(clippy::too_many_arguments)] // the parts the adapter already has
    pub fn new(
        node: NodeId,
        keys: Keys,
        link: Arc<Link>,
        scripts: Arc<Scripts>,
        subscriptions: Arc<Subscriptions>,
        share: Arc<NodeShare>,
        webhooks: WebhookSinks,
    ) -> Self {
        ClusterPresence {
            node,
            keys,
            link,
            scripts,
            subscriptions,
            share,
            webhooks,
            record: Mutex::default(),
            syncing: Arc::default(),
        }
    }

    /// A join's share of the exclusion against syncs; taken before the join pins its channel,
    /// so a sync waiting for the exclusion never holds up a join that holds a pin.
    pub async fn writing(&self) -> Writing {
        Writing {
            _shared: self.syncing.clone().read_owned().await,
        }
    }

    /// Adds `socket` as a connection of `member` to the cluster's roster of `channel`; `pin`
    /// says this node's subscription to the channel is acknowledged, `writing` is from
    /// [`ClusterPresence::writing`].
    #[allow(clippy::too_many_arguments)] // one join needs them all
    pub async fn enter(
        &self,
        app_id: &str,
        max_members: usize,
        channel: &ChannelName,
        socket: SocketId,
        member: &PresenceMember,
        pin: Pin,
        writing: Writing,
    ) -> Result<Entered, AdapterError> {
        if !self.link.reachable() {
            return Err(unreachable());
        }
        let node = self.node.to_string();
        let pubsub = self.keys.pubsub(app_id, channel.as_str());
        let marker = self.subscriptions.expect_marker(pin);
        let added = frames::member_added(
            channel.as_str(),
            &member.user_id_json,
            member.user_info.as_deref(),
        );
        let mut script = self.scripts.join_presence.prepare_invoke();
        self.channel_keys(&mut script, app_id, channel, &node)
            .key(self.keys.nodes())
            .arg(&node)
            .arg(&pubsub)
            .arg(channel_id(app_id, channel))
            .arg(entry(socket, &member.user_key))
            .arg(&member.user_key)
            .arg(stored_member(member))
            .arg(max_members)
            .arg(envelope::encode_member(Some(socket), &added))
            .arg(farewell(channel, member))
            .arg(envelope::encode_join_marker(self.node, marker.token()));
        let answer: Option<Vec<String>> = self.link.invoke(&script).await;
        let Some(answer) = answer else {
            // It may have been made: the next sync takes it out again.
            self.share.request_rewrite();
            return Err(unreachable());
        };
        let mut answer = answer.into_iter();
        let first_connection = match answer.next().as_deref() {
            Some("full") => return Ok(Entered::Full),
            Some(first) => first == "1",
            None => return Err(unreachable()),
        };
        if answer.next().as_deref() == Some("1") {
            // This node was not in the cluster: whatever else it holds goes in again.
            self.share.request_rewrite();
        }
        let roster = Roster::parse(answer);
        let subscription_data = roster.subscription_data();
        let greeting = frames::subscription_succeeded(channel.as_str(), &subscription_data);
        let hold = marker.wait(MARKER_WAIT).await;
        Ok(Entered::Joined(Joining {
            greeting,
            subscription_data,
            first_connection,
            roster,
            hold,
            _writing: writing,
        }))
    }

    /// Finishes `joining` once its socket is in the hub: lets the channel's stream go on,
    /// records the connection, and raises `member_added` when it was the user's first.
    pub fn joined(
        &self,
        joining: Joining,
        app_id: &str,
        channel: &ChannelName,
        socket: SocketId,
        member: &PresenceMember,
    ) {
        joining.hold.first_roster(&joining.roster);
        drop(joining.hold);
        {
            let mut record = self.lock();
            let users = record
                .entry((app_id.to_owned(), channel.clone()))
                .or_default();
            let (_, sockets) = users
                .entry(member.user_key.clone())
                .or_insert_with(|| (member.clone(), Vec::new()));
            if !sockets.contains(&socket) {
                sockets.push(socket);
            }
        }
        if joining.first_connection {
            self.raise_member(app_id, channel, &member.user_key, true);
        }
    }

    /// Takes `socket` (a connection of `user_key`, already out of the hub) out of the roster;
    /// raises `member_removed` when it was the user's last in the cluster.
    pub async fn leave(
        &self,
        app_id: &str,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
    ) -> Result<(), AdapterError> {
        let _writing = self.syncing.read().await;
        self.forget(app_id, channel, socket, user_key);
        if !self.link.reachable() {
            // The sync after reconnection takes it out.
            return Err(unreachable());
        }
        let node = self.node.to_string();
        let mut script = self.scripts.leave_presence.prepare_invoke();
        self.channel_keys(&mut script, app_id, channel, &node)
            .arg(self.keys.pubsub(app_id, channel.as_str()))
            .arg(channel_id(app_id, channel))
            .arg(entry(socket, user_key))
            .arg(user_key);
        let left: Option<i64> = self.link.invoke(&script).await;
        match left {
            Some(1) => {
                self.raise_member(app_id, channel, user_key, false);
                Ok(())
            }
            Some(_) => Ok(()),
            None => {
                self.share.request_rewrite();
                Err(unreachable())
            }
        }
    }

    /// The user ids in `channel`, cluster-wide (this node's own while Redis is away).
    pub async fn members(&self, app_id: &str, channel: &ChannelName) -> Vec<String> {
        let mut command = cmd("HKEYS");
        command.arg(self.keys.presence(app_id, channel.as_str()));
        match self.link.query::<Vec<String>>(&command).await {
            Some(members) => members,
            None => self
                .lock()
                .get(&(app_id.to_owned(), channel.clone()))
                .map(|users| users.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// Reads `channel`'s roster at a marker in its stream and tells the local subscribers
    /// the member events they missed (the channel was subscribed again after the pub/sub
    /// connection was lost), as far as `reconcile` trusts the read; nothing when Redis is
    /// away (a later loss queues the refresh again).
    pub async fn refresh_roster(&self, app_id: &str, channel: &ChannelName, reconcile: Reconcile) {
        let pubsub = self.keys.pubsub(app_id, channel.as_str());
        let pin = self
            .subscriptions
            .pin(pubsub.clone(), app_id, channel)
            .await;
        let marker = self.subscriptions.expect_marker(pin);
        let mut script = self.scripts.read_roster.prepare_invoke();
        script
            .key(self.keys.presence(app_id, channel.as_str()))
            .arg(&pubsub)
            .arg(envelope::encode_join_marker(self.node, marker.token()));
        let Some(answer) = self.link.invoke::<Vec<String>>(&script).await else {
            return;
        };
        let roster = Roster::parse(answer);
        marker.wait(MARKER_WAIT).await.reconcile(&roster, reconcile);
    }

    /// Makes this node's presence entries in Redis equal to its record, channel by channel;
    /// whether it all went.
    pub async fn sync_all(&self) -> bool {
        let _alone = self.syncing.write().await;
        let node = self.node.to_string();
        let mut command = cmd("SMEMBERS");
        command.arg(self.keys.node_presence_channels(&node));
        let Some(in_redis) = self.link.query::<Vec<String>>(&command).await else {
            return false;
        };
        let mut channels: HashMap<(String, ChannelName), ChannelRecord> = self.lock().clone();
        for held in in_redis {
            let Some((app_id, channel)) = held.split_once('\n') else {
                continue;
            };
            if let Ok(channel) = ChannelName::parse(channel, usize::MAX) {
                channels.entry((app_id.to_owned(), channel)).or_default();
            }
        }
        let mut synced = true;
        for ((app_id, channel), users) in channels {
            synced &= self.sync(&node, &app_id, &channel, &users).await;
        }
        synced
    }

    async fn sync(
        &self,
        node: &str,
        app_id: &str,
        channel: &ChannelName,
        users: &ChannelRecord,
    ) -> bool {
        let mut script = self.scripts.sync_presence.prepare_invoke();
        self.channel_keys(&mut script, app_id, channel, node)
            .key(self.keys.nodes())
            .arg(node)
            .arg(self.keys.pubsub(app_id, channel.as_str()))
            .arg(channel_id(app_id, channel));
        for (member, sockets) in users.values() {
            for socket in sockets {
                let added = frames::member_added(
                    channel.as_str(),
                    &member.user_id_json,
                    member.user_info.as_deref(),
                );
                script
                    .arg(entry(*socket, &member.user_key))
                    .arg(&member.user_key)
                    .arg(stored_member(member))
                    .arg(farewell(channel, member))
                    .arg(envelope::encode_member(Some(*socket), &added));
            }
        }
        let Some(changed) = self.link.invoke::<Vec<String>>(&script).await else {
            return false;
        };
        for pair in changed.chunks(2) {
            match pair {
                [kind, user_key] if kind == "a" => {
                    self.raise_member(app_id, channel, user_key, true);
                }
                [_, user_key] => self.raise_member(app_id, channel, user_key, false),
                _ => {}
            }
        }
        true
    }

    fn forget(&self, app_id: &str, channel: &ChannelName, socket: SocketId, user_key: &str) {
        let mut record = self.lock();
        let key = (app_id.to_owned(), channel.clone());
        let Some(users) = record.get_mut(&key) else {
            return;
        };
        if let Some((_, sockets)) = users.get_mut(user_key) {
            sockets.retain(|held| *held != socket);
            if sockets.is_empty() {
                users.remove(user_key);
            }
        }
        if users.is_empty() {
            record.remove(&key);
        }
    }

    /// Raises `member_added` (`added`) or `member_removed` for `user_key` in `channel`.
    fn raise_member(&self, app_id: &str, channel: &ChannelName, user_key: &str, added: bool) {
        let (channel, user_id) = (channel.clone(), user_key.to_owned());
        if added {
            self.webhooks.emit(app_id, WebhookKind::MemberAdded, || {
                WebhookEvent::MemberAdded { channel, user_id }
            });
        } else {
            self.webhooks.emit(app_id, WebhookKind::MemberRemoved, || {
                WebhookEvent::MemberRemoved { channel, user_id }
            });
        }
    }

    /// Adds the keys every presence script starts with: the roster of `channel`, this node's
    /// entries in it, and this node's presence channels.
    fn channel_keys<'a, 's>(
        &self,
        script: &'a mut ScriptInvocation<'s>,
        app_id: &str,
        channel: &ChannelName,
        node: &str,
    ) -> &'a mut ScriptInvocation<'s> {
        script
            .key(self.keys.presence(app_id, channel.as_str()))
            .key(self.keys.node_presence(app_id, channel.as_str(), node))
            .key(self.keys.node_presence_channels(node))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, ChannelName), ChannelRecord>> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn unreachable() -> AdapterError {
    AdapterError::Unavailable("Redis is unreachable".to_owned())
}

/// The presence channel as a node's index of them names it.
fn channel_id(app_id: &str, channel: &ChannelName) -> String {
    format!("{app_id}\n{}", channel.as_str())
}

/// A node's Redis entry for one connection: `socket id\nuser id`.
fn entry(socket: SocketId, user_key: &str) -> String {
    format!("{socket}\n{user_key}")
}

/// The member as the roster keeps it: `[user_id, user_info]`, both as the client sent them.
fn stored_member(member: &PresenceMember) -> String {
    let info = member.user_info.as_deref().map_or("null", RawValue::get);
    format!("[{},{info}]", member.user_id_json.get())
}

/// The message published when `member` leaves `channel`.
fn farewell(channel: &ChannelName, member: &PresenceMember) -> Vec<u8> {
    let removed = frames::member_removed(channel.as_str(), &member.user_id_json);
    envelope::encode_member(None, &removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_member_reads_back_into_the_roster() {
        let member =
            PresenceMember::parse(r#"{"user_id":7,"user_info":{"name":"x"}}"#, 1024).unwrap();
        let bare = PresenceMember::parse(r#"{"user_id":"u"}"#, 1024).unwrap();
        let flat = vec![
            member.user_key.clone(),
            stored_member(&member),
            bare.user_key.clone(),
            stored_member(&bare),
        ];
        let data: serde_json::Value =
            serde_json::from_str(&Roster::parse(flat).subscription_data()).unwrap();
        assert_eq!(data["presence"]["count"], 2);
        assert_eq!(data["presence"]["hash"]["7"]["name"], "x");
        assert_eq!(data["presence"]["hash"]["u"], serde_json::Value::Null);
    }
}
