//! Closing the connection of a request whose body is left unread.
//!
//! actix-http decides as it starts a response, and again when the response body ends, whether
//! to keep the connection: it closes it when the request's body is unread and still held, but
//! an unread *chunked* body that nobody holds any more is drained instead, with no timer, for
//! as long as the client sends it (or forever, if it sends nothing more). So any answer given
//! before the body is read (a 401, a 404, a 408 mid-body) would leave such a connection open.
//! Every request therefore reaches the app with its body behind a shared handle
//! ([`hold_unread_body`]) that its response body keeps ([`HoldsBody`]) until actix-http has
//! sent it: both decisions see the body held, and the connection is closed with the answer. A
//! body read to its end is unaffected, and keep-alive goes on as before.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_http::body::{BodySize, MessageBody};
use actix_http::error::PayloadError;
use actix_http::{BoxedPayloadStream, Payload, Request, h1};
use actix_service::Service;
use actix_web::dev::ServiceResponse;
use actix_web::web::Bytes;
use futures_util::Stream;

/// A request body, held by the request (as the app reads it) and by its response.
#[derive(Debug, Clone)]
pub struct HeldBody(Rc<RefCell<h1::Payload>>);

impl Stream for HeldBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_next(cx)
    }
}

/// Puts an HTTP/1 request's body behind a [`HeldBody`]; returns the request and the handle
/// its response must keep (`None` for a request without one).
pub fn hold_unread_body(req: Request) -> (Request, Option<HeldBody>) {
    let (req, payload) = req.replace_payload(Payload::<BoxedPayloadStream>::None);
    match payload {
        Payload::H1 { payload } => {
            let held = HeldBody(Rc::new(RefCell::new(payload)));
            let stream: BoxedPayloadStream = Box::pin(held.clone());
            let (req, _) = req.replace_payload(Payload::Stream { payload: stream });
            (req, Some(held))
        }
        other => (req.replace_payload(other).0, None),
    }
}

/// Calls `app` with `req`'s body held by the response (see the module comment).
pub fn call_holding_body<S, B>(
    app: &S,
    req: Request,
) -> impl Future<Output = Result<ServiceResponse<HoldsBody<B>>, S::Error>> + use<S, B>
where
    S: Service<Request, Response = ServiceResponse<B>>,
{
    let (req, held) = hold_unread_body(req);
    let response = app.call(req);
    async move {
        Ok(response
            .await?
            .map_body(|_, body| HoldsBody::new(body, held)))
    }
}

/// A response body that keeps its request's body alive until it has been sent.
#[derive(Debug)]
pub struct HoldsBody<B> {
    body: B,
    _request_body: Option<HeldBody>,
}

impl<B> HoldsBody<B> {
    /// `body`, keeping `request_body` alive as long as it lives.
    pub fn new(body: B, request_body: Option<HeldBody>) -> Self {
        HoldsBody {
            body,
            _request_body: request_body,
        }
    }
}

impl<B: MessageBody + Unpin> MessageBody for HoldsBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
