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
//! State in this version: presence, counts, channel lists, users and watchlists, cache
//! channels and the connection quota are still each node's own (the [`LocalAdapter`] inside);
//! sharing them through Redis is the next step of the scale-out.

mod envelope;
mod link;
mod subscriptions;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytestring::ByteString;
use tokio_util::sync::CancellationToken;

use self::envelope::NodeId;
use self::link::{Link, LinkCommands};
use self::subscriptions::Subscriptions;
use super::{Adapter, AdapterError, ConnectionSlot, LocalAdapter, OccupiedChannel};
use crate::apps::App;
use crate::config::RedisConfig;
use crate::hub::{CachedEvent, Hub, Outbox, PresenceJoin};
use crate::protocol::{ChannelName, PresenceMember, SocketId};
use crate::webhooks::WebhookSinks;

/// How long [`Adapter::start`] waits for the first connection before serving without it.
const START_WAIT: Duration = Duration::from_secs(3);

/// Fan-out through Redis, this node's state in memory.
pub struct RedisAdapter {
    node: NodeId,
    prefix: String,
    local: LocalAdapter,
    link: Arc<Link>,
    subscriptions: Arc<Subscriptions>,
    stop: CancellationToken,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RedisAdapter {
    /// An adapter for the Redis of `config`, delivering to `hub` and raising webhooks into
    /// `webhooks`; a message from another node waiting for a subscription to be confirmed
    /// is held within `buffer_limit` bytes per channel.
    pub fn new(
        config: &RedisConfig,
        hub: Arc<Hub>,
        webhooks: WebhookSinks,
        buffer_limit: usize,
    ) -> Result<Self, AdapterError> {
        let keepalive = Duration::from_secs(config.heartbeat_interval);
        let link = Link::new(config.url.as_str(), config.display_address(), keepalive)
            .map(Arc::new)
            .map_err(AdapterError::Unavailable)?;
        let node = NodeId::random();
        let commands = Arc::new(LinkCommands(link.clone()));
        let subscriptions = Subscriptions::new(node, hub.clone(), commands, buffer_limit);
        Ok(RedisAdapter {
            node,
            prefix: config.prefix.as_str().to_owned(),
            local: LocalAdapter::new(hub, webhooks),
            link,
            subscriptions,
            stop: CancellationToken::new(),
            supervisor: Mutex::new(None),
        })
    }

    /// The Redis pub/sub channel of `channel` of `app_id`. Pusher channel names hold no `:`,
    /// so the name is unambiguous whatever the app id.
    fn pubsub_name(&self, app_id: &str, channel: &ChannelName) -> String {
        format!("{}:{app_id}:{}", self.prefix, channel.as_str())
    }

    async fn publish_remote(
        &self,
        app_id: &str,
        channel: &ChannelName,
        frame: &str,
        except: Option<SocketId>,
    ) {
        if self.link.reachable() {
            let message = envelope::encode(self.node, except, frame);
            self.link
                .publish(self.pubsub_name(app_id, channel), message)
                .await;
        }
    }
}

#[async_trait]
impl Adapter for RedisAdapter {
    async fn start(&self) -> Result<(), AdapterError> {
        let run = self
            .link
            .clone()
            .run(self.subscriptions.clone(), self.stop.clone());
        *self.supervisor.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::spawn(run));
        // Serving without Redis is allowed (it may come later); the link has said why.
        self.link.wait_until_reachable(START_WAIT).await;
        Ok(())
    }

    async fn shutdown(&self) {
        self.stop.cancel();
        let supervisor = self
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(supervisor) = supervisor {
            let _ = supervisor.await;
        }
    }

    fn reachable(&self) -> bool {
        self.link.reachable()
    }

    async fn open_connection(&self, app: &App) -> Option<ConnectionSlot> {
        self.local.open_connection(app).await
    }

    async fn subscribe(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        outbox: &Outbox,
        greeting: Option<&ByteString>,
    ) -> Result<(), AdapterError> {
        let name = self.pubsub_name(&app.id, channel);
        let _pin = self.subscriptions.pin(name, &app.id, channel).await;
        self.local
            .subscribe(app, channel, socket, outbox, greeting)
            .await
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
        self.publish_remote(app_id, channel, &frame, except).await;
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
        self.local
            .publish_cached(app_id, channel, event, except)
            .await?;
        self.publish_remote(app_id, channel, &frame, except).await;
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
        let name = self.pubsub_name(&app.id, channel);
        let _pin = self.subscriptions.pin(name, &app.id, channel).await;
        self.local
            .join_presence(app, channel, socket, outbox, member)
            .await
    }

    async fn leave_presence(
        &self,
        app: &App,
        channel: &ChannelName,
        socket: SocketId,
        user_key: &str,
    ) -> Result<(), AdapterError> {
        let left = self
            .local
            .leave_presence(app, channel, socket, user_key)
            .await;
        self.subscriptions
            .release(&self.pubsub_name(&app.id, channel));
        left
    }

    async fn presence_members(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Vec<String>, AdapterError> {
        self.local.presence_members(app_id, channel).await
    }

    async fn subscription_count(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<usize, AdapterError> {
        self.local.subscription_count(app_id, channel).await
    }

    async fn occupied_channels(&self, app_id: &str) -> Result<Vec<OccupiedChannel>, AdapterError> {
        self.local.occupied_channels(app_id).await
    }

    async fn user_signed_in(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        outbox: &Outbox,
    ) -> Result<(), AdapterError> {
        self.local
            .user_signed_in(app_id, user_id, socket, outbox)
            .await
    }

    async fn user_signed_out(
        &self,
        app_id: &str,
        user_id: &str,
        socket: SocketId,
        watching: &[String],
    ) -> Result<(), AdapterError> {
        self.local
            .user_signed_out(app_id, user_id, socket, watching)
            .await
    }

    async fn watch_users(
        &self,
        app_id: &str,
        socket: SocketId,
        outbox: &Outbox,
        user_ids: &[String],
    ) -> Result<(), AdapterError> {
        self.local
            .watch_users(app_id, socket, outbox, user_ids)
            .await
    }

    async fn terminate_user(&self, app_id: &str, user_id: &str) -> Result<(), AdapterError> {
        self.local.terminate_user(app_id, user_id).await
    }

    async fn cached_event(
        &self,
        app_id: &str,
        channel: &ChannelName,
    ) -> Result<Option<CachedEvent>, AdapterError> {
        self.local.cached_event(app_id, channel).await
    }
}
