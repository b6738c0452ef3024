//! This node's changes waiting to be written to Redis: for each app, the latest local
//! subscriber count of each channel that changed, and whether its connection count changed.
//!
//! The hub reports a channel's count under the lock that orders its changes, and only the
//! latest count of a channel is kept, so what waits is bounded by the channels and apps in
//! use, however fast they change, and writing it is idempotent: the writer (`sync`) always
//! sends this node's absolute truth, never a difference that could be counted twice.

use std::collections::HashMap;
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
}

/// The changes waiting, by app id, and the writer's wake-up.
#[derive(Default)]
pub struct NodeShare {
    waiting: Mutex<HashMap<String, AppChanges>>,
    rewrite: std::sync::atomic::AtomicBool,
    changed: Notify,
}

impl NodeShare {
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
    pub fn take(&self) -> HashMap<String, AppChanges> {
        std::mem::take(&mut *self.lock())
    }

    /// Waits until something is waiting (returns at once if something came since the last
    /// wait).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppChanges>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn app(&self, app_id: &str, change: impl FnOnce(&mut AppChanges)) {
        let mut waiting = self.lock();
        match waiting.get_mut(app_id) {
            Some(changes) => change(changes),
            None => change(waiting.entry(app_id.to_owned()).or_default()),
        }
        drop(waiting);
        self.changed.notify_one();
    }
}

impl ClusterShare for NodeShare {
    fn channel_changed(&self, app_id: &str, channel: &ChannelName, count: usize) {
        self.app(app_id, |changes| {
            changes.channels.insert(channel.clone(), count);
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
        assert_eq!(taken["1"].channels, HashMap::from([(news, 2)]));
        assert!(!taken["1"].connections);
        assert!(taken["2"].connections && taken["2"].channels.is_empty());
        assert!(share.take().is_empty());
    }
}
