//! The state of one connection, and the ways it talks back to its client.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix_ws::CloseReason;
use bytestring::ByteString;
use tracing::{debug, warn};

use super::client_event::ClientEventBudget;
use crate::apps::App;
use crate::hub::{AppChannels, Outbox};
use crate::protocol::{ChannelName, CloseCode, PresenceMember, SocketId, frames};
use crate::server::ServerState;

/// How long the final error and close frames may take to go out before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a connection ends.
#[derive(Debug)]
pub(super) enum Ending {
    /// The transport is gone; nothing more can be sent.
    ClientGone,
    /// The client sent a close frame; it is echoed.
    ClientClosed(Option<CloseReason>),
    /// Relay closes with a Pusher code (after a `pusher:error` with the same code).
    Pusher(CloseCode),
    /// Relay closes with a WebSocket code (e.g. 1009 for an oversized message).
    WebSocket(actix_ws::CloseCode, &'static str),
}

/// One client connection, owned by its task.
pub(super) struct Connection {
    pub state: Arc<ServerState>,
    pub app: Arc<App>,
    pub channels: Arc<AppChannels>,
    pub socket_id: SocketId,
    pub outbox: Outbox,
    /// Subscribed channels, with the member this socket joined as on presence channels.
    pub subscriptions: HashMap<ChannelName, Option<PresenceMember>>,
    pub client_events: ClientEventBudget,
    ws: actix_ws::Session,
}

impl Connection {
    /// A connection with no subscriptions yet.
    pub fn new(
        state: Arc<ServerState>,
        app: Arc<App>,
        ws: actix_ws::Session,
        outbox: Outbox,
    ) -> Self {
        let channels = state.hub.app(&app.id);
        let client_events = ClientEventBudget::new(app.limits.max_client_events_per_second);
        Connection {
            state,
            app,
            channels,
            socket_id: SocketId::random(),
            outbox,
            subscriptions: HashMap::new(),
            client_events,
            ws,
        }
    }

    /// Sends one frame; a client that has not drained its socket within the send timeout is
    /// treated as unable to keep up.
    pub async fn send(&mut self, frame: ByteString) -> Result<(), Ending> {
        let timeout = self.state.settings.send_timeout;
        match tokio::time::timeout(timeout, self.ws.text(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(Ending::ClientGone),
            Err(_elapsed) => Err(Ending::Pusher(CloseCode::OverCapacity)),
        }
    }

    /// Sends `pusher:error`; the connection stays open.
    pub async fn send_error(&mut self, code: Option<u16>, message: &str) -> Result<(), Ending> {
        self.send(frames::error(code, message)).await
    }

    /// Answers a WebSocket-level ping.
    pub async fn send_pong(&mut self, payload: &[u8]) -> Result<(), Ending> {
        self.ws
            .pong(payload)
            .await
            .map_err(|_closed| Ending::ClientGone)
    }

    /// Publishes through the adapter; a cluster failure is logged, never sent to the client.
    pub async fn publish(
        &self,
        channel: &ChannelName,
        frame: ByteString,
        except: Option<SocketId>,
    ) {
        if let Err(err) = self
            .state
            .adapter
            .publish(&self.app.id, channel, frame, except)
            .await
        {
            warn!(app = %self.app.id, %channel, %err, "publish failed");
        }
    }

    /// Leaves one channel; on presence channels the adapter also announces `member_removed`
    /// when this was the user's last connection.
    pub async fn leave(&mut self, channel: ChannelName, member: Option<PresenceMember>) {
        let Some(member) = member else {
            self.channels.unsubscribe(channel.as_str(), self.socket_id);
            return;
        };
        let left = self
            .state
            .adapter
            .leave_presence(&self.app.id, &channel, self.socket_id, &member.user_key)
            .await;
        if let Err(err) = left {
            warn!(app = %self.app.id, %channel, %err, "presence leave failed");
            // Whatever the cluster state, this node stops delivering to the socket.
            self.channels.unsubscribe(channel.as_str(), self.socket_id);
        }
    }

    /// Leaves every channel (on disconnect).
    pub async fn leave_all(&mut self) {
        let subscriptions: Vec<_> = self.subscriptions.drain().collect();
        for (channel, member) in subscriptions {
            self.leave(channel, member).await;
        }
    }

    /// Sends the closing frames that `ending` calls for.
    pub async fn finish(self, ending: Ending) {
        debug!(app = %self.app.id, socket_id = %self.socket_id, ?ending, "connection closed");
        let mut ws = self.ws;
        let (error, reason) = match ending {
            Ending::ClientGone => return,
            Ending::ClientClosed(reason) => (None, reason),
            Ending::Pusher(code) => (
                Some(frames::error(Some(code.as_u16()), code.message())),
                Some(super::close_reason(code)),
            ),
            Ending::WebSocket(code, message) => (
                Some(frames::error(None, message)),
                Some(CloseReason {
                    code,
                    description: Some(message.to_owned()),
                }),
            ),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async move {
            if let Some(error) = error
                && ws.text(error).await.is_err()
            {
                return;
            }
            let _ = ws.close(reason).await;
        })
        .await;
    }
}
