//! WebSocket connections: the `/app/{key}` endpoint and one task per connection.
//!
//! The route admits or refuses a connection ([`handshake`]) and answers `101 Switching
//! Protocols` with an [`outbound`] body that writes the connection's queued frames straight to
//! the socket. A spawned [`session`] task reads the client's messages ([`inbound`]) and owns
//! everything else about the connection: its subscriptions ([`subscribe`]), client events
//! ([`client_event`]), keep-alive, and closing. Publishers never wake that task: they queue
//! into the connection's outbox, which the body drains. Refusals are sent over the upgraded
//! socket (a `pusher:error`, then a close frame with the Pusher code), because that is where
//! Pusher clients look for them.
//!
//! actix-ws's `Session` was replaced by this body because it puts a channel and a task
//! wake-up between every message and the socket; the frames are still encoded and decoded
//! by actix-http's WebSocket codec, which actix-ws itself wraps.

mod client_event;
mod connection;
mod handshake;
mod inbound;
mod keepalive;
mod outbound;
mod session;
mod subscribe;

use actix_web::body::MessageBody;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::hub::{CloseFrame, OutboundFrame, OutboxOwner, outbox};
use crate::protocol::{CloseCode, frames};
use crate::server::ServerState;
use inbound::InboundMessages;
use outbound::OutboundBody;

/// Registers the WebSocket endpoint.
pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/app/{key}", web::get().to(connect));
}

async fn connect(
    req: HttpRequest,
    body: web::Payload,
    key: web::Path<String>,
    state: web::Data<ServerState>,
) -> actix_web::Result<HttpResponse> {
    let admission = handshake::admit(&state, &key, req.query_string());
    let (owner, response) = upgrade(&req, state.settings.outbound_queue_size)?;
    match admission {
        Ok(admitted) => {
            let inbound = InboundMessages::new(body.into_inner(), state.settings.max_frame_size);
            let state = state.into_inner();
            actix_web::rt::spawn(session::run(state, admitted, owner, inbound));
        }
        Err(code) => refuse(&owner, code),
    }
    Ok(response)
}

/// Answers a WebSocket upgrade on any other path with close code 4005.
pub async fn path_not_found(req: HttpRequest) -> actix_web::Result<HttpResponse> {
    let (owner, response) = upgrade(&req, 2)?;
    refuse(&owner, CloseCode::PathNotFound);
    Ok(response)
}

/// Checks the upgrade request and builds the `101` response whose body writes what is queued
/// through the returned owner. A request that is not a valid upgrade gets a `400`.
fn upgrade(req: &HttpRequest, queue_size: usize) -> actix_web::Result<(OutboxOwner, HttpResponse)> {
    let mut response = actix_http::ws::handshake(req.head())?;
    let (owner, writer) = outbox(queue_size);
    let response = response.message_body(OutboundBody::new(writer).boxed())?;
    Ok((owner, HttpResponse::from(response)))
}

/// Sends `pusher:error` with `code`, then closes with the same code.
fn refuse(owner: &OutboxOwner, code: CloseCode) {
    owner.close(closing_frames(code), false);
}

/// The `pusher:error` and close frame that end a connection with a Pusher code.
fn closing_frames(code: CloseCode) -> [OutboundFrame; 2] {
    [
        OutboundFrame::Text(frames::error(Some(code.as_u16()), code.message())),
        OutboundFrame::Close(Some(CloseFrame {
            code: code.as_u16(),
            reason: code.message().to_owned(),
        })),
    ]
}
