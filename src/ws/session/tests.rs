//! The session against an adapter that makes a subscription wait: the connection keeps
//! writing what is delivered to it meanwhile, and its own requests are still answered in
//! order.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytestring::ByteString;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::run;
use crate::adapter::{Adapter, AdapterError, ConnectionSlot, LocalAdapter, OccupiedChannel};
use crate::apps::App;
use crate::config::Config;
use crate::hub::{CachedEvent, Hub, Outbox, PresenceJoin};
use crate::protocol::{ChannelName, PresenceMember, SocketId};
use crate::state::ServerState;
use crate::webhooks::WebhookSinks;
use crate::ws::handshake::Admitted;
use crate::ws::upgrade::Upgraded;

const WAIT: Duration = Duration::from_secs(5);

/// A local adapter whose subscriptions to `slow` wait until released.
struct ParkedAdapter {
    local: LocalAdapter,
    entered: Notify,
    release: Notify,
}

#[async_trait]
impl Adapter for ParkedAdapter {
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
        if channel.as_str() == "slow" {
            self.entered.notify_one();
            self.release.notified().await;
        }
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
        self.local.unsubscribe(app, channel, socket).await
    }
    async fn publish(
        &self,
        app_id: &str,
        channel: &ChannelName,
        frame: ByteString,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError> {
        self.local.publish(app_id, channel, frame, except).await
    }
    async fn publish_cached(
        &self,
        app_id: &str,
        channel: &ChannelName,
        event: CachedEvent,
        except: Option<SocketId>,
    ) -> Result<(), AdapterError> {
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
        self.local
            .leave_presence(app, channel, socket, user_key)
            .await
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

/// The next text frame the client gets, as JSON.
async fn next_event(client: &mut WebSocketStream<TcpStream>) -> Value {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a frame within the wait")
            .expect("the connection is open")
            .expect("a valid frame");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn send(client: &mut WebSocketStream<TcpStream>, text: &str) {
    client.send(Message::text(text)).await.unwrap();
}

#[tokio::test]
async fn a_connection_keeps_writing_while_a_handler_waits_on_the_adapter() {
    let config = Config::from_toml(
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n",
        std::path::Path::new("test.toml"),
    )
    .unwrap();
    let (mut state, _) = ServerState::new(&config).unwrap();
    let parked = Arc::new(ParkedAdapter {
        local: LocalAdapter::new(Arc::new(Hub::default()), WebhookSinks::default()),
        entered: Notify::new(),
        release: Notify::new(),
    });
    state.adapter = parked.clone();
    let state = Arc::new(state);
    let app = state.apps.by_id("1").unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client_side = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server_side, _) = listener.accept().await.unwrap();
    let slot = state.adapter.open_connection(&app).await.unwrap();
    let admitted = Admitted {
        app: app.clone(),
        address: None,
        slot,
        node_slot: state.node_connections.try_open().unwrap(),
        address_slot: None,
        lockdown: None,
    };
    let upgraded = Upgraded {
        socket: server_side,
        response_head: Default::default(),
        early_bytes: Default::default(),
    };
    let session = tokio::spawn(run(state.clone(), admitted, upgraded));
    let mut client = WebSocketStream::from_raw_socket(client_side, Role::Client, None).await;
    assert_eq!(
        next_event(&mut client).await["event"],
        "pusher:connection_established"
    );

    send(
        &mut client,
        r#"{"event":"pusher:subscribe","data":{"channel":"fast"}}"#,
    )
    .await;
    assert_eq!(
        next_event(&mut client).await["event"],
        "pusher_internal:subscription_succeeded"
    );
    send(
        &mut client,
        r#"{"event":"pusher:subscribe","data":{"channel":"slow"}}"#,
    )
    .await;
    send(&mut client, r#"{"event":"pusher:ping","data":{}}"#).await;
    tokio::time::timeout(WAIT, parked.entered.notified())
        .await
        .expect("the subscription reaches the adapter");

    // While the handler waits, what is delivered to the connection is still written.
    let fast = ChannelName::parse("fast", 164).unwrap();
    let frame = crate::protocol::frames::channel_event("news", "fast", "{}");
    state
        .adapter
        .publish("1", &fast, frame, None)
        .await
        .unwrap();
    let delivered = next_event(&mut client).await;
    assert_eq!(delivered["event"], "news");
    assert_eq!(delivered["channel"], "fast");

    // Released, the subscription is answered, and only then the ping sent after it.
    parked.release.notify_one();
    let succeeded = next_event(&mut client).await;
    assert_eq!(succeeded["event"], "pusher_internal:subscription_succeeded");
    assert_eq!(succeeded["channel"], "slow");
    assert_eq!(next_event(&mut client).await["event"], "pusher:pong");

    client.close(None).await.unwrap();
    tokio::time::timeout(WAIT, session)
        .await
        .expect("the session ends once the client closes")
        .unwrap();
    let slow = ChannelName::parse("slow", 164).unwrap();
    assert_eq!(
        state.adapter.subscription_count("1", &slow).await.unwrap(),
        0
    );
}
