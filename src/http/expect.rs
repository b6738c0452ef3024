//! `Expect: 100-continue`, which curl and Guzzle send before larger bodies: the client waits
//! for `100 Continue` before it sends the body. actix-http's default handler answers at once,
//! before any handler runs, which would invite the body of a request that is then refused.
//! This check runs in its place (see `server.rs`): an API request is only told to continue
//! once its head passes [`authenticate_head`]; otherwise it gets its final error at once and
//! never sends the body. Paths outside the API continue, to be answered by their routes.

use actix_http::Request;
use actix_http::body::BoxBody;
use actix_web::ResponseError;

use super::auth::{ApiRequestHead, PathApp, authenticate_head, path_app};
use crate::server::ServerState;

/// `Ok` to send `100 Continue`; otherwise the response that refuses the request.
pub fn continue_or_refuse(
    state: &ServerState,
    req: &Request,
) -> Result<(), actix_http::Response<BoxBody>> {
    let head = req.head();
    let path = head.uri.path();
    if path_app(path) == PathApp::None {
        return Ok(());
    }
    let api_head = ApiRequestHead::new(head.method.as_str(), path, &head.headers);
    let query = head.uri.query().unwrap_or_default();
    match authenticate_head(state, &api_head, query) {
        Ok(_) => Ok(()),
        Err(error) => Err(error.error_response().into()),
    }
}
