//! The `webhooks` scenario's receiver: a hyper HTTP/1.1 server that takes the server's webhook
//! POSTs, checks each one's key and signature, and hands it to the scenario with the moment it
//! arrived. In `close` mode every answer carries `Connection: close` and its connection is
//! closed after it, so the server under test pays a new connection per request.
//!
//! Every readable request is answered 200, even one with a bad signature: the scenario counts
//! that as its failure, and a refusal would only make the server retry. Nothing is judged here
//! beyond the signature; the ledger checks what the events say.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use clap::ValueEnum;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::Instant;

use relay::protocol::signature::verify;

use crate::error::BenchError;
use crate::target::Target;

/// Largest webhook body read (a batch of 100 events is a few KiB).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the receiver treats its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReceiverMode {
    /// Keeps each connection open for the next request.
    KeepAlive,
    /// Answers `Connection: close` and closes after every response.
    Close,
}

impl ReceiverMode {
    /// The mode as the command line spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiverMode::KeepAlive => "keep-alive",
            ReceiverMode::Close => "close",
        }
    }
}

/// One webhook request as it arrived.
#[derive(Debug)]
pub struct WebhookRequest {
    /// When its body had been read.
    pub at: Instant,
    /// The JSON body.
    pub body: Bytes,
    /// Whether `X-Pusher-Key` is the app's and `X-Pusher-Signature` the body's HMAC-SHA256.
    pub authentic: bool,
    /// `X-Relay-Webhook-Id`, the same on every retry of one batch (Relay sends it).
    pub id: Option<HeaderValue>,
}

/// What reached the receiver.
#[derive(Debug)]
pub enum Arrival {
    /// A request whose body was read.
    Request(WebhookRequest),
    /// A request whose body could not be read (too large, or cut off), and why.
    Unreadable(String),
}

/// A listening receiver; it stops with the scenario's runtime.
pub struct WebhookReceiver {
    arrivals: mpsc::UnboundedReceiver<Arrival>,
    connections: Arc<AtomicUsize>,
}

/// What every connection's handler shares.
struct Checker {
    key: String,
    secret: String,
    mode: ReceiverMode,
    arrivals: mpsc::UnboundedSender<Arrival>,
}

impl WebhookReceiver {
    /// Listens on `address`, checking signatures with `target`'s key and secret.
    pub async fn start(
        address: SocketAddr,
        mode: ReceiverMode,
        target: &Target,
    ) -> Result<Self, BenchError> {
        let listener = TcpListener::bind(address).await.map_err(|error| {
            BenchError::Receiver(format!("cannot listen on {address}: {error}"))
        })?;
        let (sender, arrivals) = mpsc::unbounded_channel();
        let checker = Arc::new(Checker {
            key: target.key.clone(),
            secret: target.secret.clone(),
            mode,
            arrivals: sender,
        });
        let connections = Arc::new(AtomicUsize::new(0));
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                let checker = checker.clone();
                let service = service_fn(move |request| checker.clone().take(request));
                let connection = http1::Builder::new()
                    .keep_alive(mode == ReceiverMode::KeepAlive)
                    .serve_connection(TokioIo::new(stream), service);
                // A connection's error (the server hung up mid-request) shows up as a
                // missing event, which is what the scenario checks.
                tokio::spawn(connection);
            }
        });
        Ok(WebhookReceiver {
            arrivals,
            connections,
        })
    }

    /// The next arrival; `None` only if the listener has stopped.
    pub async fn next(&mut self) -> Option<Arrival> {
        self.arrivals.recv().await
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Checker {
    /// Reads one request, passes it on and answers it.
    async fn take(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let headers = request.headers();
        let key_matches = headers
            .get("x-pusher-key")
            .is_some_and(|key| key.as_bytes() == self.key.as_bytes());
        let signature = headers.get("x-pusher-signature").cloned();
        let id = headers.get("x-relay-webhook-id").cloned();
        let body = Limited::new(request.into_body(), MAX_BODY_BYTES)
            .collect()
            .await;
        let (arrival, status) = match body {
            Ok(collected) => {
                let body = collected.to_bytes();
                let authentic = key_matches
                    && signature
                        .as_ref()
                        .and_then(|value| value.to_str().ok())
                        .is_some_and(|hex| verify(self.secret.as_bytes(), &body, hex));
                let request = WebhookRequest {
                    at: Instant::now(),
                    body,
                    authentic,
                    id,
                };
                (Arrival::Request(request), StatusCode::OK)
            }
            Err(error) => (
                Arrival::Unreadable(error.to_string()),
                StatusCode::BAD_REQUEST,
            ),
        };
        let _ = self.arrivals.send(arrival);
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = status;
        if self.mode == ReceiverMode::Close {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(response)
    }
}
