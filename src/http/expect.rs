//! `Expect: 100-continue`, which curl and Guzzle send before larger bodies: the client waits
//! for `100 Continue` before it sends the body. actix-http's default handler answers at once,
//! before any handler runs, which would invite the body of a request that is then refused.
//! This check runs in its place (see `server.rs`): an API request is only told to continue
//! once its head passes [`authenticate_head`] and the body budget has room for it; otherwise
//! it gets its final error at once and never sends the body. Paths outside the API continue,
//! to be answered by their routes (a signed request to an API path that has no route, say
//! `/apps/1/nope`, is told to continue and then gets 404: the route table is actix-web's).

use actix_http::Request;
use actix_http::body::BoxBody;
use actix_web::ResponseError;

use super::ApiError;
use super::auth::{ApiRequestHead, PathApp, authenticate_head, path_app};
use super::unread_body::{HoldsBody, hold_unread_body};
use crate::state::ServerState;

/// `Ok` to send `100 Continue`; otherwise the response that refuses the request.
async fn continue_or_refuse(
    state: &ServerState,
    req: &Request,
) -> Result<(), actix_http::Response<BoxBody>> {
    let head = req.head();
    let path = head.uri.path();
    if path_app(path) == PathApp::None {
        return Ok(());
    }
    let api_head = ApiRequestHead::new(head.method.as_str(), path, &head.headers).sent_from(
        req.peer_addr(),
        super::auth::verified_certificate(req.conn_data()),
    );
    let query = head.uri.query().unwrap_or_default();
    let verdict = authenticate_head(state, &api_head, query)
        .await
        .and_then(|_| {
            let declared = api_head.content_length.unwrap_or(0);
            if state.pending_bodies.has_room_for(declared) {
                Ok(())
            } else {
                Err(ApiError::Busy)
            }
        });
    verdict.map_err(|error| error.error_response().into())
}

/// The expect service's answer for `req`: the request back to be continued, or the response
/// that refuses it (with the request, and so its unread body, held until that is sent).
pub async fn expect_continue(
    state: &ServerState,
    req: Request,
) -> Result<Request, actix_http::Response<BoxBody>> {
    match continue_or_refuse(state, &req).await {
        Ok(()) => Ok(req),
        Err(refusal) => {
            let (_, held) = hold_unread_body(req);
            Err(refusal.map_body(|_, body| BoxBody::new(HoldsBody::new(body, held))))
        }
    }
}
