//! This node's changes waiting to be written to Redis: for each app, the latest local
//! subscriber count of each channel that changed, and whether its connection count changed.
//!
//! The hub reports a channel's count under the lock that orders its changes, and only the
//! latest count of a channel is kept, so what waits is bounded by the channels and apps in
//! use, however fast they change, and writing it is idempotent: the writer (`sync`) always
//! sends this node's absolute truth, never a difference that could be counted twice.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::adapter::ClusterShare;
use crate::protocol::ChannelName;

/// What changed in one app since the last write.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AppChanges {
    /// Channel → subscribers on this node now.
    pub channels: HashMap<ChannelName, usize>,
    /// Whether the app's connection count on this node changed.
    pub connections: bool,
    /// Channels whose subscribers changed (not merely claimed): their cluster-wide count is
    /// announced once written, when the app wants counts.
    pub announce: HashSet<ChannelName>,
    /// Signed-in users whose connection count on this node changed (apps with watchlists).
    pub users: HashSet<String>,
}

/// The changes waiting, by app id, and the writer's wake-up.
pub struct NodeShare {
    waiting: Mutex<Waiting>,
    rewrite: std::sync::atomic::AtomicBool,
    changed: Notify,
    /// The number of the last change the writer has written (or given up on).
    written: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct Waiting {
    apps: HashMap<String, AppChanges>,
    /// The number of the last change made.
    last: u64,
}

impl Default for NodeShare {
    fn default() -> Self {
        NodeShare {
            waiting: Mutex::default(),
            rewrite: Default::default(),
            changed: Notify::new(),
            written: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// What [`NodeShare::take`] took: the changes, and the number of the last one.
pub struct Taken {
    pub apps: HashMap<String, AppChanges>,
    pub upto: u64,
}

impl NodeShare {
    /// Counts `channel` of `app_id` as occupied on this node before its first local
    /// subscriber is greeted, and waits (within `limit`) until that is written: a client that
    /// has its greeting can rely on the cluster counting it, so a subscriber leaving another
    /// node afterwards cannot vacate the channel. The hub's own report follows and corrects
    /// the count if the subscription does not happen.
    pub async fn claim(&self, app_id: &str, channel: &ChannelName, limit: std::time::Duration) {
        let ticket = self.app(app_id, |changes| {
            let count = changes.channels.entry(channel.clone()).or_insert(0);
            *count = (*count).max(1);
        });
        self.wait_written(ticket, limit).await;
    }

    /// Waits (within `limit`) until the change numbered `ticket` is written, or given up on.
    pub async fn wait_written(&self, ticket: u64, limit: std::time::Duration) {
        let mut written = self.written.subscribe();
        let _ = tokio::time::timeout(limit, written.wait_for(|done| *done >= ticket)).await;
    }

    /// After a claim: `channel` of `app_id` has `count` subscribers on this node (0 when the
    /// claiming socket was refused); the socket's own report announced any change.
    pub fn settle_claim(&self, app_id: &str, channel: &ChannelName, count: usize) {
        self.app(app_id, |changes| {
            changes.channels.insert(channel.clone(), count);
        });
    }

    /// The connections signed in as `user_id` of `app_id` on this node changed; returns the
    /// change's number, for [`wait_written`](Self::wait_written).
    pub fn user_changed(&self, app_id: &str, user_id: &str) -> u64 {
        self.app(app_id, |changes| {
            changes.users.insert(user_id.to_owned());
        })
    }

    /// Tells waiting claims that everything up to `upto` is written (or will not be).
    pub fn written(&self, upto: u64) {
        self.written.send_if_modified(|done| {
            let advanced = upto > *done;
            *done = (*done).max(upto);
            advanced
        });
    }

    /// Asks for this node's whole share to be written again (Redis lost it).
    pub fn request_rewrite(&self) {
        self.rewrite
            .store(true, std::sync::atomic::Ordering::Release);
        self.changed.notify_one();
    }

    /// Whether a rewrite was asked for since the last call.
    pub fn take_rewrite(&self) -> bool {
        self.rewrite
            .swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// Takes everything waiting.
    pub fn take(&self) -> Taken {
        let mut waiting = self.lock();
        Taken {
            apps: std::mem::take(&mut waiting.apps),
            upto: waiting.last,
        }
    }

    /// Waits until something is waiting (returns at once if something came since the last
    /// wait).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a change to `app_id`'s share and wakes the writer; returns the change's number.
    fn app(&self, app_id: &str, change: impl FnOnce(&mut AppChanges)) -> u64 {
        let mut waiting = self.lock();
        waiting.last += 1;
        let ticket = waiting.last;
        match waiting.apps.get_mut(app_id) {
            Some(changes) => change(changes),
            None => change(waiting.apps.entry(app_id.to_owned()).or_default()),
        }
        drop(waiting);
        self.changed.notify_one();
        ticket
    }
}

impl ClusterShare for NodeShare {
    fn channel_changed(&self, app_id: &str, channel: &ChannelName, count: usize) {
        self.app(app_id, |changes| {
            changes.channels.insert(channel.clone(), count);
            changes.announce.insert(channel.clone());
        });
    }

    fn connections_changed(&self, app_id: &str) {
        self.app(app_id, |changes| changes.connections = true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_latest_count_of_a_channel_waits() {
        let share = NodeShare::default();
        let news = ChannelName::parse("news", 164).unwrap();
        for count in [1, 2, 3, 2] {
            share.channel_changed("1", &news, count);
        }
        share.connections_changed("2");
        share.changed().await;
        let taken = share.take();
        assert_eq!(taken.apps["1"].channels, HashMap::from([(news.clone(), 2)]));
        assert!(!taken.apps["1"].connections);
        assert!(taken.apps["2"].connections && taken.apps["2"].channels.is_empty());
        assert_eq!(taken.upto, 5);
        assert!(share.take().apps.is_empty());
    }

    #[tokio::test]
    async fn a_claim_counts_the_channel_and_waits_until_it_is_written() {
        let share = std::sync::Arc::new(NodeShare::default());
        let news = ChannelName::parse("news", 164).unwrap();
        let claiming = tokio::spawn({
            let share = share.clone();
            let news = news.clone();
            async move {
                share
                    .claim("1", &news, std::time::Duration::from_secs(30))
                    .await
            }
        });
        share.changed().await;
        let taken = share.take();
        assert_eq!(taken.apps["1"].channels, HashMap::from([(news, 1)]));
        assert!(!claiming.is_finished());
        share.written(taken.upto);
        tokio::time::timeout(std::time::Duration::from_secs(5), claiming)
            .await
            .expect("the claim returns once written")
            .unwrap();
    }
}
