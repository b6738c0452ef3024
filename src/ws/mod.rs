//! WebSocket connections: the `/app/{key}` endpoint and one task per connection.
//!
//! The route admits or refuses a connection ([`handshake`]), upgrades it with actix-ws and
//! spawns [`session`], which owns everything about that connection: its subscriptions
//! ([`subscribe`]), client events ([`client_event`]), keep-alive and the drain of its bounded
//! outbound queue. Refusals are sent over the upgraded socket (a `pusher:error`, then a close
//! frame with the Pusher code), because that is where Pusher clients look for them.

mod client_event;
mod connection;
mod handshake;
mod keepalive;
mod session;
mod subscribe;

use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessageStream, CloseReason};

use crate::protocol::{CloseCode, frames};
use crate::server::ServerState;

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
    let (response, ws, stream) = actix_ws::handle(&req, body)?;
    let stream = limit_message_size(stream, &state);
    let admission = handshake::admit(&state, &key, req.query_string());
    actix_web::rt::spawn(async move {
        match admission {
            Ok(admitted) => session::run(state.into_inner(), admitted, ws, stream).await,
            Err(code) => refuse(ws, code).await,
        }
    });
    Ok(response)
}

/// Answers a WebSocket upgrade on any other path with close code 4005.
pub async fn path_not_found(
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let (response, ws, _stream) = actix_ws::handle(&req, body)?;
    actix_web::rt::spawn(refuse(ws, CloseCode::PathNotFound));
    Ok(response)
}

fn limit_message_size(
    stream: actix_ws::MessageStream,
    state: &ServerState,
) -> AggregatedMessageStream {
    let max = state.settings.max_frame_size;
    stream
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max)
}

/// Sends `pusher:error` with `code`, then closes with the same code.
async fn refuse(mut ws: actix_ws::Session, code: CloseCode) {
    let frame = frames::error(Some(code.as_u16()), code.message());
    if ws.text(frame).await.is_ok() {
        let _ = ws.close(Some(close_reason(code))).await;
    }
}

fn close_reason(code: CloseCode) -> CloseReason {
    CloseReason {
        code: actix_ws::CloseCode::Other(code.as_u16()),
        description: Some(code.message().to_owned()),
    }
}
