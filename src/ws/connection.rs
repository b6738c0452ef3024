//! The state of one connection, and the ways it talks back to its client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytestring::ByteString;
use tracing::{debug, warn};

use super::inbound::CloseReason;
use crate::apps::{App, CredentialUse, Via};
use crate::guard::ClientEventLimit;
use crate::hub::{CloseFrame, OutboundFrame, Outbox, OutboxOwner, OutboxSignals, Refused};
use crate::logging;
use crate::metrics::AppTraffic;
use crate::protocol::{ChannelName, CloseCode, PresenceMember, SocketId, frames};
use crate::state::ServerState;

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
    WebSocket(u16, &'static str),
    /// The app is out of service for this connection: locked down (with
    /// `lockdown_closes_connections`), or removed or disabled by a reload. 4003, saying which.
    AppUnavailable(&'static str),
}

impl Ending {
    /// The close code the connection ends with: the one sent, the one the client sent (1005
    /// when it gave none), or 1006 when the transport went away without one.
    pub fn close_code(&self) -> u16 {
        match self {
            Ending::ClientGone => 1006,
            Ending::ClientClosed(reason) => {
                reason.as_ref().map_or(1005, |reason| reason.code.into())
            }
            Ending::Pusher(code) => code.as_u16(),
            Ending::WebSocket(code, _) => *code,
            Ending::AppUnavailable(_) => CloseCode::AppDisabled.as_u16(),
        }
    }
}

/// Queues `frame` into `outbox` behind everything already queued; a full queue means the
/// client is not keeping up, a closed one that it is gone.
pub(super) fn queue_on(outbox: &Outbox, frame: OutboundFrame) -> Result<(), Ending> {
    match outbox.push_frame(frame) {
        Ok(()) => Ok(()),
        Err(Refused::Full) => Err(Ending::Pusher(CloseCode::OverCapacity)),
        Err(Refused::Closed) => Err(Ending::ClientGone),
    }
}

/// One client connection, owned by its task.
pub(super) struct Connection {
    pub state: Arc<ServerState>,
    pub app: Arc<App>,
    /// The client's address, when known (counted with uses of previous credentials).
    pub address: Option<IpAddr>,
    pub socket_id: SocketId,
    /// Subscribed channels, with the member this socket joined as on presence channels.
    pub subscriptions: HashMap<ChannelName, Option<PresenceMember>>,
    /// `max_client_events_per_second`, this connection's own.
    pub client_events: ClientEventLimit,
    /// The user this connection signed in as (`pusher:signin`).
    pub user: Option<String>,
    /// The user ids this connection watches (`watchlist` of its sign-in).
    pub watching: Vec<String>,
    outbox: OutboxOwner,
    /// The app's message counters (for the metrics).
    traffic: Arc<AppTraffic>,
}

impl Connection {
    /// A connection with no subscriptions yet, writing through `outbox`.
    pub fn new(
        state: Arc<ServerState>,
        app: Arc<App>,
        address: Option<IpAddr>,
        outbox: OutboxOwner,
    ) -> Self {
        let client_events = ClientEventLimit::new(app.limits.max_client_events_per_second);
        let socket_id = SocketId::random();
        debug!(target: logging::CONNECTIONS, app = %app.id, %socket_id, "connection opened");
        let metrics = crate::metrics::global();
        metrics.connection_opened(&app.id);
        let traffic = metrics.traffic(&app.id);
        Connection {
            state,
            app,
            address,
            socket_id,
            subscriptions: HashMap::new(),
            client_events,
            user: None,
            watching: Vec::new(),
            outbox,
            traffic,
        }
    }

    /// Goes on as a connection of `app`, which a reload put in place of its app (same id):
    /// its limits and keys apply from the next message on.
    pub fn adopt(&mut self, app: Arc<App>) {
        if app.limits.max_client_events_per_second != self.app.limits.max_client_events_per_second {
            self.client_events = ClientEventLimit::new(app.limits.max_client_events_per_second);
        }
        self.app = app;
    }

    /// Counts a message of `bytes` received from the client.
    pub fn count_received(&self, bytes: usize) {
        self.traffic.received(bytes);
    }

    /// A presentation of credentials on this connection, now.
    pub fn credential_use(&self, via: Via) -> CredentialUse {
        CredentialUse::now(via, self.address)
    }

    /// Checks a client's `auth` over `signed` (channel auth or sign-in): a failure counts
    /// towards a ban of the client's address, and a banned address (or any, while the app is
    /// locked down: a connection left open by the lockdown gets no new private channel or
    /// user) is refused whatever it sends. The error is the message for the client.
    pub fn check_client_auth(
        &self,
        auth: Option<&str>,
        signed: &str,
        via: Via,
    ) -> Result<(), String> {
        let guard = &self.state.guard;
        if guard.refuses_for_lockdown(&self.app.id) {
            return Err(super::LOCKED_DOWN.to_owned());
        }
        guard
            .check_ban(&self.app.id, self.address)
            .map_err(|banned| banned.to_string())?;
        self.app
            .verify_auth(auth, signed, &self.credential_use(via))
            .map_err(|error| {
                debug!(
                    target: logging::AUTH,
                    app = %self.app.id,
                    socket_id = %self.socket_id,
                    what = via.as_str(),
                    "authentication failed"
                );
                guard.auth_failed(&self.app.id, self.address, via.as_str());
                error.to_string()
            })
    }

    /// The handle publishers deliver to this connection through.
    pub fn outbox(&self) -> &Outbox {
        self.outbox.outbox()
    }

    /// The queue's end signal (overflow, or termination by the backend).
    pub fn outbox_signals(&self) -> OutboxSignals {
        self.outbox.signals()
    }

    /// Whether the connection has signed in or joined a channel that needs a signature.
    pub fn is_authorized(&self) -> bool {
        self.user.is_some()
            || self
                .subscriptions
                .keys()
                .any(|channel| channel.kind().requires_auth())
    }

    /// Queues one frame behind everything already queued; a full queue means the client is
    /// not keeping up.
    pub fn send(&self, frame: ByteString) -> Result<(), Ending> {
        self.queue(OutboundFrame::Text(frame))
    }

    /// Queues `pusher:error`; the connection stays open.
    pub fn send_error(&self, code: Option<u16>, message: &str) -> Result<(), Ending> {
        self.send(frames::error(code, message))
    }

    /// Answers a WebSocket-level ping.
    pub fn send_pong(&self, payload: actix_web::web::Bytes) -> Result<(), Ending> {
        self.queue(OutboundFrame::Pong(payload))
    }

    fn queue(&self, frame: OutboundFrame) -> Result<(), Ending> {
        queue_on(self.outbox(), frame)
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

    /// Leaves one channel through the adapter, which on presence channels also announces
    /// `member_removed` when this was the user's last connection (and which stops this node
    /// delivering to the socket whatever the cluster's state).
    pub async fn leave(&mut self, channel: ChannelName, member: Option<PresenceMember>) {
        let adapter = &self.state.adapter;
        let left = match member {
            None => {
                adapter
                    .unsubscribe(&self.app, &channel, self.socket_id)
                    .await
            }
            Some(member) => {
                let user_key = &member.user_key;
                let socket = self.socket_id;
                adapter
                    .leave_presence(&self.app, &channel, socket, user_key)
                    .await
            }
        };
        if let Err(err) = left {
            warn!(app = %self.app.id, %channel, %err, "leave not recorded by the cluster");
        }
    }

    /// Leaves every channel and forgets the sign-in and watchlist (on disconnect).
    pub async fn leave_all(&mut self) {
        if let Some(user) = self.user.take() {
            let watching = std::mem::take(&mut self.watching);
            let signed_out = self
                .state
                .adapter
                .user_signed_out(&self.app.id, &user, self.socket_id, &watching)
                .await;
            if let Err(err) = signed_out {
                warn!(app = %self.app.id, %err, "sign-out not recorded");
            }
        }
        let subscriptions: Vec<_> = self.subscriptions.drain().collect();
        for (channel, member) in subscriptions {
            self.leave(channel, member).await;
        }
    }

    /// Queues the closing frames that `ending` calls for, after what is already queued (or
    /// instead of it, for a client that cannot keep up), and ends the stream of frames.
    pub fn finish(self, ending: Ending) {
        debug!(
            target: logging::CONNECTIONS,
            app = %self.app.id,
            socket_id = %self.socket_id,
            code = ending.close_code(),
            "connection closed"
        );
        let overflowed = matches!(ending, Ending::Pusher(CloseCode::OverCapacity));
        crate::metrics::global().connection_closed(&self.app.id, ending.close_code(), overflowed);
        match ending {
            Ending::ClientGone => {}
            Ending::ClientClosed(reason) => {
                let echo = reason.map(|reason| CloseFrame {
                    code: reason.code.into(),
                    reason: reason.description.unwrap_or_default(),
                });
                self.outbox.close([OutboundFrame::Close(echo)], false);
            }
            Ending::Pusher(code) => {
                // A slow or terminated client learns at once why it is closed.
                let discard = matches!(code, CloseCode::OverCapacity | CloseCode::Unauthorized);
                self.outbox
                    .close(super::pusher_closing_frames(code), discard);
            }
            Ending::WebSocket(code, message) => self
                .outbox
                .close(super::closing_frames(None, code, message), false),
            Ending::AppUnavailable(message) => {
                let code = CloseCode::AppDisabled.as_u16();
                let frames = super::closing_frames(Some(code), code, message);
                self.outbox.close(frames, true);
            }
        }
    }
}
