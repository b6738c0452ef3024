//! The single-process adapter: publishes go straight to this node's hub, and presence and
//! counts are this node's own. What a publish reaches is counted toward the app's daily
//! message quota here, once per publish (presence and count announcements are not counted).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytestring::ByteString;
use tokio::time::Instant;

use super::{Adapter, AdapterError, OccupiedChannel};
use crate::hub::{CachedEvent, Hub, Outbox, PresenceJoin, PresenceRoster};
use crate::protocol::{ChannelName, PresenceMember, SocketId};

/// Serves one node from memory.
#[derive(Debug)]
pub struct LocalAdapter {
    hub: Arc<Hub>,
    rosters: RwLock<HashMap<String, Arc<PresenceRoster>>>,
}

impl LocalAdapter {
    /// An adapter delivering through `hub`.
    pub fn new(hub: Arc<Hub>) -> Self {
        LocalAdapter {
            hub,
            rosters: RwLock::default(),
        }
    }

    fn roster(&self, app_id: &str) -> Arc<PresenceRoster> {
        let existing = self
            .rosters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(app_id)
            .cloned();
        existing.unwrap_or_else(|| {
            self.rosters
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(app_id.to_owned())
                .or_default()
                .clone()
        })
    }
}

#[async_trait]
impl Adapter for LocalAdapter {
    async fn publish(
        &self,
        app_id: &str,
        channel: &ChannelName,
        frame: ByteString,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError> {
        let app = self.hub.app(app_id);
        let delivered = app.deliver(channel.as_str(), &frame, except);
        app.count_delivered(delivered);
        Ok(())
    }

    async fn join_presence(
        &self,
        app_id: &str,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        member: &PresenceMember,
        max_members: usize,
    ) -> Result<PresenceJoin, AdapterError> {
        let subscriptions = self.hub.app(app_id);
        Ok(self
            .roster(app_id)
            .join(&subscriptions, channel, socket, outbox, member, max_members))
    }

    async fn leave_presence(
        &self,
        app_id: &str,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
    ) -> Result<(), AdapterError> {
        let subscriptions = self.hub.app(app_id);
        self.roster(app_id)
            .leave(&subscriptions, channel, socket, user_key);
        Ok(())
    }

    async fn presence_members(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Vec<String>, AdapterError> {
        Ok(self.roster(app_id).user_keys(channel.as_str()))
    }

    async fn subscription_count(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<usize, AdapterError> {
        Ok(self.hub.app(app_id).subscriber_count(channel.as_str()))
    }

    async fn announce_subscription_count(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<(), AdapterError> {
        self.hub.app(app_id).announce_subscription_count(channel);
        Ok(())
    }

    async fn occupied_channels(&self, app_id: &str) -> Result<Vec<OccupiedChannel>, AdapterError> {
        Ok(self
            .hub
            .app(app_id)
            .occupied_channels()
            .into_iter()
            .map(|(name, subscription_count)| OccupiedChannel {
                name,
                subscription_count,
            })
            .collect())
    }

    async fn user_signed_in(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        outbox: &Outbox,
    ) -> Result<(), AdapterError> {
        self.hub.app(app_id).users().add(user_id, socket, outbox);
        Ok(())
    }

    async fn user_signed_out(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
    ) -> Result<(), AdapterError> {
        self.hub.app(app_id).users().remove(user_id, socket);
        Ok(())
    }

    async fn watch_users(
        &self,
        app_id: &str,
        socket: SocketId,
        outbox: &Outbox,
        user_ids: &[String],
    ) -> Result<(), AdapterError> {
        self.hub.app(app_id).users().watch(socket, outbox, user_ids);
        Ok(())
    }

    async fn terminate_user(&self, app_id: &str, user_id: &str) -> Result<(), AdapterError> {
        self.hub.app(app_id).users().terminate(user_id);
        Ok(())
    }

    async fn store_cached_event(
        &self,
        app_id: &str,
        channel: &ChannelName,
        event: CachedEvent,
    ) -> Result<(), AdapterError> {
        self.hub
            .app(app_id)
            .cache()
            .store(channel, event, Instant::now());
        Ok(())
    }

    async fn cached_event(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, AdapterError> {
        Ok(self
            .hub
            .app(app_id)
            .cache()
            .get(channel.as_str(), Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::TestOutbox;

    #[tokio::test]
    async fn publish_reaches_local_subscribers_and_counts_are_local() {
        let hub = Arc::new(Hub::default());
        let adapter = LocalAdapter::new(hub.clone());
        let channel = ChannelName::parse("news", 164).unwrap();
        let queue = TestOutbox::new(4);
        hub.app("1")
            .subscribe(&channel, SocketId::random(), queue.outbox().clone(), None);
        adapter
            .publish("1", &channel, ByteString::from_static("hi"), None)
            .await
            .unwrap();
        assert_eq!(queue.next_text().as_deref(), Some("hi"));
        assert_eq!(adapter.subscription_count("1", &channel).await.unwrap(), 1);
        assert_eq!(adapter.subscription_count("2", &channel).await.unwrap(), 0);
        let occupied = adapter.occupied_channels("1").await.unwrap();
        assert_eq!(
            occupied,
            vec![OccupiedChannel {
                name: channel,
                subscription_count: 1
            }]
        );
    }

    #[tokio::test]
    async fn presence_is_kept_per_app() {
        let adapter = LocalAdapter::new(Arc::new(Hub::default()));
        let channel = ChannelName::parse("presence-x", 164).unwrap();
        let member = PresenceMember::parse(r#"{"user_id":"u"}"#, 1024).unwrap();
        let socket = SocketId::random();
        let queue = TestOutbox::new(4);
        adapter
            .join_presence("1", &channel, socket, queue.outbox(), &member, 10)
            .await
            .unwrap();
        assert_eq!(
            adapter.presence_members("1", &channel).await.unwrap(),
            vec!["u"]
        );
        assert_eq!(adapter.subscription_count("1", &channel).await.unwrap(), 1);
        assert!(
            adapter
                .presence_members("2", &channel)
                .await
                .unwrap()
                .is_empty()
        );
        adapter
            .leave_presence("1", &channel, socket, "u")
            .await
            .unwrap();
        assert!(
            adapter
                .presence_members("1", &channel)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(adapter.subscription_count("1", &channel).await.unwrap(), 0);
    }
}
