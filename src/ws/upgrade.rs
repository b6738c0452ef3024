//! The HTTP side of a WebSocket connection: routing the upgrade request, checking its
//! handshake, and answering `101 Switching Protocols` (or a JSON HTTP error) on the socket
//! that actix-http hands over. After the `101`, the socket is Relay's alone: actix-http's
//! read and write buffers are dropped, so an idle connection keeps no buffer at all.

use actix_codec::Framed;
use actix_http::body::BodySize;
use actix_http::h1::{Codec, Message};
use actix_http::ws::{HandshakeError, handshake_response, verify_handshake};
use actix_http::{Request, Response, StatusCode};
use actix_web::web::BytesMut;
use futures_util::SinkExt;

use super::transport::Transport;

/// Where an upgrade request asks to go.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route<'a> {
    /// `/app/{key}`.
    App(&'a str),
    /// Any other path: refused with 4005 after the handshake.
    Unknown,
}

/// Routes a request path.
pub(super) fn route(path: &str) -> Route<'_> {
    match path.strip_prefix("/app/") {
        Some(key) if !key.is_empty() && !key.contains('/') => Route::App(key),
        _ => Route::Unknown,
    }
}

/// An accepted WebSocket: its socket, the encoded `101` response (not yet written, so that it
/// goes out in one write with the first frames), and whatever the client sent after its
/// request.
pub(super) struct Upgraded<T> {
    pub socket: T,
    pub response_head: BytesMut,
    pub early_bytes: BytesMut,
}

/// Answers the handshake: the encoded `101` and the socket on success; on a malformed
/// handshake, a JSON error response (405 for a method other than GET, 400 otherwise) and
/// `None`.
pub(super) async fn accept<T: Transport>(
    req: &Request,
    mut framed: Framed<T, Codec>,
) -> Option<Upgraded<T>> {
    if let Err(error) = verify_handshake(req.head()) {
        let status = match error {
            HandshakeError::GetMethodRequired => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::BAD_REQUEST,
        };
        let body = serde_json::json!({ "error": error.to_string() }).to_string();
        let mut head = Response::with_body(status, ());
        head.headers_mut().insert(
            actix_http::header::CONTENT_TYPE,
            actix_http::header::HeaderValue::from_static("application/json"),
        );
        let _ = framed
            .send(Message::Item((head, BodySize::Sized(body.len() as u64))))
            .await;
        let _ = framed.send(Message::Chunk(Some(body.into()))).await;
        return None;
    }
    let response = handshake_response(req.head()).finish().drop_body();
    framed
        .feed(Message::Item((response, BodySize::None)))
        .await
        .ok()?;
    let parts = framed.into_parts();
    let early_bytes = if parts.read_buf.is_empty() {
        // Do not keep actix-http's (mostly empty) read buffer for the connection's lifetime.
        BytesMut::new()
    } else {
        parts.read_buf
    };
    Some(Upgraded {
        socket: parts.io,
        response_head: parts.write_buf,
        early_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_app_paths_with_a_key_are_routed() {
        assert_eq!(route("/app/key"), Route::App("key"));
        assert_eq!(route("/app/"), Route::Unknown);
        assert_eq!(route("/app/key/extra"), Route::Unknown);
        assert_eq!(route("/apps/key"), Route::Unknown);
        assert_eq!(route("/"), Route::Unknown);
    }
}
