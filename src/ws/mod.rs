//! WebSocket connections: every `Upgrade: websocket` request, and one task per connection.
//!
//! actix-http hands each upgrade request over with its socket ([`serve`], registered as the
//! HTTP service's upgrade handler). [`upgrade`] routes it and answers the handshake; after
//! the `101`, the socket belongs to the connection alone, without actix-http's buffers.
//! [`handshake`] admits or refuses the connection; refusals are sent over the upgraded socket
//! (a `pusher:error`, then a close frame with the Pusher code), because that is where Pusher
//! clients look for them. The [`session`] task then reads the client's messages
//! ([`inbound`]), writes what is queued for it ([`outbound`]), and owns everything else about
//! the connection: its subscriptions ([`subscribe`], [`subscription_count`]), its user
//! ([`signin`]), client events ([`client_event`]), keep-alive and closing. Publishers queue into the connection's outbox
//! and wake that task at most once per burst.
//!
//! This replaced actix-ws, which put a channel and an extra task wake-up between every message
//! and the socket, and kept actix-http's 16 KiB of buffers per idle connection (see
//! docs/benchmarks.md); frames are still encoded and decoded by actix-http's WebSocket codec,
//! the one actix-ws wraps.

mod client_event;
mod connection;
mod frame_header;
mod handshake;
mod inbound;
mod keepalive;
mod outbound;
mod session;
mod signin;
mod subscribe;
mod transport;
mod upgrade;

use std::sync::Arc;

use actix_codec::Framed;
use actix_http::{Request, h1};

use crate::guard::PeerHeaders;
use crate::hub::{CloseFrame, OutboundFrame};
use crate::protocol::{CloseCode, frames};
use crate::state::ServerState;
use crate::tls::VerifiedCertificate;
use handshake::Refused;
pub use transport::Transport;
use upgrade::Route;

/// Serves one WebSocket upgrade request on its socket, until the connection ends.
pub async fn serve<T: Transport>(
    state: Arc<ServerState>,
    req: Request,
    framed: Framed<T, h1::Codec>,
) {
    let admission = match upgrade::route(req.path()) {
        Route::App(key) => {
            let verified = req
                .conn_data::<VerifiedCertificate>()
                .map(|certificate| certificate.0);
            let peer = PeerHeaders::from_request(req.peer_addr(), &req.head().headers)
                .with_verified_certificate(verified);
            handshake::admit(&state, key, req.uri().query().unwrap_or_default(), &peer).await
        }
        Route::Unknown => Err(CloseCode::PathNotFound.into()),
    };
    let Some(upgraded) = upgrade::accept(&req, framed).await else {
        return;
    };
    // The request's headers share actix-http's 8 KiB read buffer: drop them now, not when the
    // connection ends.
    drop(req);
    if let Err(err) = upgraded.socket.set_nodelay() {
        tracing::debug!(%err, "cannot disable Nagle's algorithm on a WebSocket");
    }
    match admission {
        Ok(admitted) => session::run(state, admitted, upgraded).await,
        // A refusal is a `pusher:error` with the code, then a close frame with the same code.
        Err(Refused::Protocol(code)) => {
            session::refuse(upgraded, pusher_closing_frames(code)).await
        }
        Err(Refused::Guard(refusal)) => {
            let code = CloseCode::Unauthorized.as_u16();
            let frames = closing_frames(Some(code), code, &refusal.to_string());
            session::refuse(upgraded, frames).await;
        }
        Err(Refused::Banned(banned)) => {
            let code = CloseCode::Unauthorized.as_u16();
            let frames = closing_frames(Some(code), code, &banned.to_string());
            session::refuse(upgraded, frames).await;
        }
        Err(Refused::LockedDown) => {
            let code = CloseCode::AppDisabled.as_u16();
            let frames = closing_frames(Some(code), code, LOCKED_DOWN);
            session::refuse(upgraded, frames).await;
        }
        Err(Refused::NodeFull) => {
            let code = CloseCode::OverCapacity.as_u16();
            let frames = closing_frames(Some(code), code, NODE_FULL);
            session::refuse(upgraded, frames).await;
        }
        Err(Refused::Limited(limited)) => {
            let code = CloseCode::OverCapacity.as_u16();
            let frames = closing_frames(Some(code), code, &limited.to_string());
            session::refuse(upgraded, frames).await;
        }
    }
}

/// What a client is told, with code 4100, when this node has `server.max_connections` open.
const NODE_FULL: &str = "Server is over capacity; reconnect later";

/// What a client of a locked-down app is told, with code 4003.
const LOCKED_DOWN: &str = "Application is locked down";

/// What a connection of an app a reload disabled is told, with code 4003.
const APP_DISABLED: &str = "Application disabled";

/// What a connection of an app a reload removed is told, with code 4003.
const APP_REMOVED: &str = "Application no longer exists";

/// The `pusher:error` and close frame that end a connection with a Pusher code.
fn pusher_closing_frames(code: CloseCode) -> [OutboundFrame; 2] {
    closing_frames(Some(code.as_u16()), code.as_u16(), code.message())
}

/// A `pusher:error` (carrying `error_code`, if any) and a close frame with `close_code`, both
/// saying `message`.
fn closing_frames(error_code: Option<u16>, close_code: u16, message: &str) -> [OutboundFrame; 2] {
    [
        OutboundFrame::Text(frames::error(error_code, message)),
        OutboundFrame::Close(Some(CloseFrame {
            code: close_code,
            reason: message.to_owned(),
        })),
    ]
}
