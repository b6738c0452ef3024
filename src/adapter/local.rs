//! The single-process adapter: publishes go straight to this node's hub, presence and counts
//! are this node's own, and every transition the hub reports is the cluster's, raised as its
//! webhook ([`RaisedWebhooks`]), and it announces subscription counts. What a publish reaches is counted toward the app's daily
//! message quota here, once per publish (presence and count announcements are not counted).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use bytestring::ByteString;
use tokio::time::Instant;

use super::raised::RaisedWebhooks;
use super::subscription_count::{count_changed, is_counted};
use super::{Adapter, AdapterError, ClusterShare, ConnectionSlot, OccupiedChannel};
use crate::apps::App;
use crate::hub::{CachedEvent, Hub, Outbox, PresenceJoin, PresenceRoster};
use crate::protocol::{ChannelName, PresenceMember, SocketId};
use crate::webhooks::WebhookSinks;

/// Serves one node from memory.
pub struct LocalAdapter {
    hub: Arc<Hub>,
    webhooks: WebhookSinks,
    rosters: RwLock<HashMap<String, Arc<PresenceRoster>>>,
    share: Option<Arc<dyn ClusterShare>>,
}

impl std::fmt::Debug for LocalAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalAdapter").finish_non_exhaustive()
    }
}

impl LocalAdapter {
    /// An adapter delivering through `hub` and raising webhooks into `webhooks`.
    pub fn new(hub: Arc<Hub>, webhooks: WebhookSinks) -> Self {
        LocalAdapter {
            hub,
            webhooks,
            rosters: RwLock::default(),
            share: None,
        }
    }

    /// This node's part of a cluster: as [`LocalAdapter::new`], but channel occupancy is not
    /// raised here; the local subscriber and connection counts go to `share`, and the cluster
    /// adapter raises occupancy on the cluster's transitions.
    pub fn sharing(hub: Arc<Hub>, webhooks: WebhookSinks, share: Arc<dyn ClusterShare>) -> Self {
        LocalAdapter {
            share: Some(share),
            ..LocalAdapter::new(hub, webhooks)
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

    /// Delivers `frame` to this node's subscribers of `channel` and counts what it reached.
    fn deliver_counted(
        &self,
        app_id: &str,
        channel: &ChannelName,
        frame: &ByteString,
        except: Option<SocketId>,
    ) {
        let app = self.hub.app(app_id);
        let delivered = app.deliver(channel.as_str(), frame, except);
        app.count_delivered(delivered);
    }

    /// Subscribes as [`Adapter::subscribe`] does; a cache channel's subscriber is greeted with
    /// `cached` when it is given (see [`AppChannels::subscribe_with`]).
    ///
    /// [`AppChannels::subscribe_with`]: crate::hub::AppChannels::subscribe_with
    pub fn subscribe_with(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        greeting: Option<&ByteString>,
        cached: Option<Option<CachedEvent>>,
    ) {
        let channels = self.hub.app(&app.id);
        let raised = self.raised(&app.id);
        let outbox = outbox.clone();
        let added = channels.subscribe_with(channel, socket, outbox, greeting, cached, &raised);
        if added && self.announces_counts(app, channel) {
            count_changed(&app.id, &channels, &self.webhooks, channel);
        }
    }

    /// Whether this adapter announces `channel`'s count changes: on one node; in a cluster
    /// the counts are the cluster's, announced where they change (`adapter::redis::sync`).
    fn announces_counts(&self, app: &App, channel: &ChannelName) -> bool {
        self.share.is_none() && is_counted(app, channel)
    }

    fn raised<'a>(&'a self, app_id: &'a str) -> RaisedWebhooks<'a> {
        RaisedWebhooks {
            app_id,
            sinks: &self.webhooks,
            share: self.share.as_deref(),
        }
    }
}

#[async_trait]
impl Adapter for LocalAdapter {
    async fn open_connection(&self, app: &App) -> Option<ConnectionSlot> {
        let local = self
            .hub
            .app(&app.id)
            .try_open_connection(app.limits.max_connections)?;
        let mut slot = ConnectionSlot::new(local);
        if let Some(share) = &self.share {
            share.connections_changed(&app.id);
            slot.share = Some((share.clone(), Arc::from(app.id.as_str())));
        }
        Some(slot)
    }

    async fn subscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        greeting: Option<&ByteString>,
    ) -> Result<(), AdapterError> {
        self.subscribe_with(app, channel, socket, outbox, greeting, None);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
    ) -> Result<(), AdapterError> {
        let channels = self.hub.app(&app.id);
        let removed = channels.unsubscribe(channel.as_str(), socket, &self.raised(&app.id));
        if removed && self.announces_counts(app, channel) {
            count_changed(&app.id, &channels, &self.webhooks, channel);
        }
        Ok(())
    }

    async fn publish(
        &self,
        app_id: &str,
        channel: &ChannelName,
        frame: ByteString,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError> {
        self.deliver_counted(app_id, channel, &frame, except);
        Ok(())
    }

    async fn publish_cached(
        &self,
        app_id: &str,
        channel: &ChannelName,
        event: CachedEvent,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError> {
        let frame = event.frame.clone();
        // Stored before it is delivered: a subscriber greeted in between gets it twice at
        // worst, never an older event after this one.
        let cache = self.hub.app(app_id);
        cache.cache().store(channel, event, Instant::now());
        self.deliver_counted(app_id, channel, &frame, except);
        Ok(())
    }

    async fn join_presence(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        member: &PresenceMember,
    ) -> Result<PresenceJoin, AdapterError> {
        let subscriptions = self.hub.app(&app.id);
        Ok(self.roster(&app.id).join(
            &subscriptions,
            channel,
            socket,
            outbox,
            member,
            app.limits.max_presence_members,
            &self.raised(&app.id),
        ))
    }

    async fn leave_presence(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
    ) -> Result<(), AdapterError> {
        let subscriptions = self.hub.app(&app.id);
        self.roster(&app.id).leave(
            &subscriptions,
            channel,
            socket,
            user_key,
            &self.raised(&app.id),
        );
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
        watching: &[String],
    ) -> Result<(), AdapterError> {
        let channels = self.hub.app(app_id);
        channels.users().unwatch(socket, watching);
        channels.users().remove(user_id, socket);
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
    use crate::config::Config;
    use crate::hub::{TestOutbox, Unreported};
    use crate::protocol::WebhookKinds;
    use crate::webhooks::{WebhookSink, raised_names as names};

    fn app(id: &str, extra: &str) -> App {
        let text = format!("[[apps]]\nid = \"{id}\"\nkey = \"k{id}\"\nsecret = \"s\"\n{extra}");
        let config = Config::from_toml(&text, std::path::Path::new("test.toml")).unwrap();
        App::from_config(&config.apps[0])
    }

    #[tokio::test]
    async fn publish_reaches_local_subscribers_and_counts_are_local() {
        let hub = Arc::new(Hub::default());
        let adapter = LocalAdapter::new(hub.clone(), WebhookSinks::default());
        let channel = ChannelName::parse("news", 164).unwrap();
        let queue = TestOutbox::new(4);
        hub.app("1").subscribe(
            &channel,
            SocketId::random(),
            queue.outbox().clone(),
            None,
            &Unreported,
        );
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
        let adapter = LocalAdapter::new(Arc::new(Hub::default()), WebhookSinks::default());
        let (first, second) = (app("1", ""), app("2", ""));
        let channel = ChannelName::parse("presence-x", 164).unwrap();
        let member = PresenceMember::parse(r#"{"user_id":"u"}"#, 1024).unwrap();
        let socket = SocketId::random();
        let queue = TestOutbox::new(4);
        adapter
            .join_presence(&first, &channel, socket, queue.outbox(), &member)
            .await
            .unwrap();
        assert_eq!(
            adapter.presence_members("1", &channel).await.unwrap(),
            vec!["u"]
        );
        assert_eq!(adapter.subscription_count("1", &channel).await.unwrap(), 1);
        assert!(
            adapter
                .presence_members(&second.id, &channel)
                .await
                .unwrap()
                .is_empty()
        );
        adapter
            .leave_presence(&first, &channel, socket, "u")
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

    #[tokio::test]
    async fn the_hubs_transitions_become_webhooks_and_counts_are_announced() {
        let (sink, mut queue) = WebhookSink::for_test(WebhookKinds::all());
        let sinks = WebhookSinks::new(HashMap::from([("1".to_owned(), sink)]));
        let adapter = LocalAdapter::new(Arc::new(Hub::default()), sinks);
        let app = app("1", "enable_subscription_count = true");
        let channel = ChannelName::parse("cache-news", 164).unwrap();
        let (a, b) = (SocketId::random(), SocketId::random());
        let (queue_a, queue_b) = (TestOutbox::new(8), TestOutbox::new(8));
        let greeting = ByteString::from_static("succeeded");
        for (socket, outbox) in [(a, &queue_a), (b, &queue_b)] {
            adapter
                .subscribe(&app, &channel, socket, outbox.outbox(), Some(&greeting))
                .await
                .unwrap();
        }
        assert_eq!(
            names(&mut queue),
            [
                "channel_occupied",
                "cache_miss",
                "subscription_count",
                "cache_miss",
                "subscription_count"
            ]
        );
        let frames: Vec<_> = std::iter::from_fn(|| queue_a.next_text()).collect();
        assert_eq!(
            frames.len(),
            4,
            "greeting, miss, count 1, count 2: {frames:?}"
        );
        assert!(
            frames[3].contains(r#"\"subscription_count\":2"#),
            "{frames:?}"
        );
        adapter.unsubscribe(&app, &channel, a).await.unwrap();
        adapter.unsubscribe(&app, &channel, b).await.unwrap();
        assert_eq!(
            names(&mut queue),
            [
                "subscription_count",
                "channel_vacated",
                "subscription_count"
            ]
        );
        let event = CachedEvent {
            frame: ByteString::from_static("last"),
            data: "d".to_owned(),
            expires_at: Instant::now() + std::time::Duration::from_secs(60),
        };
        adapter
            .publish_cached("1", &channel, event.clone(), None)
            .await
            .unwrap();
        assert_eq!(
            adapter.cached_event("1", &channel).await.unwrap(),
            Some(event)
        );
    }
}
