//! The HTTP/1.1 client of one webhook endpoint: hyper's connection-level client with a small
//! pool of its own, so that Relay decides what a general client would hide.
//!
//! - **A closed reused connection is not a failure.** A receiver may close an idle keep-alive
//!   connection just as a request goes out on it. When a request fails on a *reused*
//!   connection before any answer arrives (reset, EOF, broken pipe), it is sent again at once
//!   on a fresh one; a failure on a fresh connection is a real failure, so a receiver that
//!   resets everything cannot make Relay spin.
//! - **`Connection: close` and HTTP/1.0 are honoured**: such a connection is never pooled, so
//!   it is not sent a second request.
//! - **No Nagle stall**: every socket has `TCP_NODELAY`, and hyper writes head and body
//!   together, so a request never waits for the receiver's delayed ACK.
//! - **No SYN dropped by a small listen backlog.** A receiver that closes every connection
//!   takes each request on a new one, and while it has not accepted them they wait in its
//!   listen backlog, which is 5 for Python's `socketserver` (`http.server`): the sixth
//!   connection's SYN is dropped, and TCP retries it only after 1 s. So at most
//!   [`MOST_UNANSWERED_NEW_CONNECTIONS`] requests are in flight on new connections at once;
//!   requests on kept-alive connections are not limited by this.
//! - At most `concurrency` idle connections are kept (no more are ever in use).
//!
//! awc was left for this: it sets no `TCP_NODELAY`, does not say whether a request went out on
//! a reused connection, and turns on actix-http's `http2` feature, which grew every idle
//! WebSocket connection of the server by 1.6 KiB (docs/benchmarks.md).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tracing::debug;

use super::Endpoint;

/// Most of a receiver's answer that is read; a longer one is not read to its end, and its
/// connection is not reused.
const MAX_ANSWER_READ: usize = 64 * 1024;

/// Most requests waiting for an answer on connections opened for them (see the module
/// comment): one fewer than the smallest common listen backlog, 5.
const MOST_UNANSWERED_NEW_CONNECTIONS: usize = 4;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No TCP connection (refused, unreachable, name not found).
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The TLS handshake failed.
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The connection closed before any answer (on a fresh connection).
    #[error("the receiver closed the connection without answering")]
    ClosedBeforeAnswer,
    /// Any other HTTP failure (a malformed answer, …).
    #[error("HTTP failure: {0}")]
    Http(hyper::Error),
    /// No answer within the endpoint's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// One signed webhook request.
#[derive(Debug)]
pub struct Outgoing {
    /// The JSON body.
    pub body: Bytes,
    /// `X-Pusher-Key`: the key of the pair that signed it.
    pub key: String,
    /// `X-Pusher-Signature`.
    pub signature: String,
    /// `X-Relay-Webhook-Id`.
    pub id: String,
}

type Connection = SendRequest<Full<Bytes>>;

/// Where an endpoint's requests go, and how.
struct Origin {
    host: String,
    port: u16,
    /// Plain TCP or TLS.
    transport: Transport,
    /// The `Host` header.
    authority: HeaderValue,
    /// The request target: path and query.
    target: Uri,
}

/// How an endpoint is reached.
enum Transport {
    /// `http://`.
    Plain,
    /// `https://`: the connector and the name to verify.
    Tls(TlsConnector, ServerName<'static>),
    /// `https://` to a host TLS cannot verify (e.g. `127.1`): every attempt fails rather than
    /// fall back to plain text.
    UnverifiableHost,
}

/// Sends one endpoint's webhooks over pooled keep-alive connections.
pub struct WebhookClient {
    origin: Origin,
    /// Headers every request carries: the endpoint's own, then Relay's.
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
    /// Permits to open a connection, each held until the answer on it.
    new_connections: Semaphore,
}

impl WebhookClient {
    /// A client for `endpoint`.
    pub fn new(endpoint: &Endpoint) -> Self {
        let url = &endpoint.url;
        let https = url.scheme_str() == Some("https");
        let host = url.host().unwrap_or_default();
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let authority = url.authority().map_or("", |authority| authority.as_str());
        let transport = if https {
            ServerName::try_from(host.clone()).map_or(Transport::UnverifiableHost, |name| {
                Transport::Tls(TlsConnector::from(tls_config()), name)
            })
        } else {
            Transport::Plain
        };
        let origin = Origin {
            host,
            port,
            transport,
            authority: HeaderValue::from_str(authority).unwrap_or(HeaderValue::from_static("")),
            // Checked as a URL at start-up; what the other `http` version refuses goes to "/"
            // (the default target, as before it was parsed once here).
            target: url
                .path_and_query()
                .map_or("/", |target| target.as_str())
                .parse()
                .unwrap_or_else(|_| Uri::from_static("/")),
        };
        // The configured headers were checked at start-up; a name or value another `http`
        // version would refuse cannot occur, and is skipped rather than sent malformed.
        let mut headers: Vec<(HeaderName, HeaderValue)> = endpoint
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_str().as_bytes()).ok()?;
                Some((name, HeaderValue::from_bytes(value.as_bytes()).ok()?))
            })
            .collect();
        headers.push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        if !headers.iter().any(|(name, _)| name == USER_AGENT) {
            headers.push((USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE)));
        }
        WebhookClient {
            origin,
            headers,
            timeout: endpoint.timeout,
            idle: Mutex::new(Vec::new()),
            max_idle: endpoint.concurrency,
            new_connections: Semaphore::new(MOST_UNANSWERED_NEW_CONNECTIONS),
        }
    }

    /// POSTs `request`; the receiver's status code, or why there was none. The timeout
    /// counts from when the request may go (a wait for a new-connection permit is not the
    /// receiver's fault).
    pub async fn post(&self, request: &Outgoing) -> Result<u16, SendError> {
        let mut deadline = None;
        if let Some(connection) = self.take_idle() {
            let started = *deadline.insert(Instant::now() + self.timeout);
            match self
                .timed(started, self.exchange(connection, request))
                .await
            {
                Err(SendError::ClosedBeforeAnswer) => {
                    debug!("webhook receiver closed a reused connection; sending on a fresh one");
                }
                answered => return answered,
            }
        }
        // Never closed: the permits outlive every request.
        let _permit = self.new_connections.acquire().await;
        // The resend shares the first try's deadline: one attempt, one timeout.
        let deadline = deadline.unwrap_or_else(|| Instant::now() + self.timeout);
        self.timed(deadline, async {
            let connection = self.connect().await?;
            self.exchange(connection, request).await
        })
        .await
    }

    /// `exchange`, given up at `deadline`. A receiver that lets a request time out gets its
    /// idle connections closed too: it may be one that serves one connection at a time and is
    /// waiting on one of them.
    async fn timed(
        &self,
        deadline: Instant,
        exchange: impl Future<Output = Result<u16, SendError>>,
    ) -> Result<u16, SendError> {
        let answered = tokio::time::timeout_at(deadline, exchange).await;
        answered.unwrap_or_else(|_| {
            self.lock_idle().clear();
            Err(SendError::Timeout(self.timeout))
        })
    }

    /// One request on `connection`, which goes back to the pool if the receiver keeps it.
    async fn exchange(
        &self,
        mut connection: Connection,
        request: &Outgoing,
    ) -> Result<u16, SendError> {
        connection.ready().await.map_err(classify)?;
        let response = connection
            .send_request(self.build(request))
            .await
            .map_err(classify)?;
        let status = response.status().as_u16();
        let reusable = keeps_alive(&response);
        let read = Limited::new(response.into_body(), MAX_ANSWER_READ)
            .collect()
            .await;
        if reusable && read.is_ok() {
            self.put_idle(connection);
        }
        Ok(status)
    }

    fn build(&self, outgoing: &Outgoing) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(outgoing.body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.origin.target.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.origin.authority.clone());
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        if let Ok(key) = HeaderValue::from_str(&outgoing.key) {
            headers.insert(HeaderName::from_static("x-pusher-key"), key);
        }
        if let Ok(signature) = HeaderValue::from_str(&outgoing.signature) {
            headers.insert(HeaderName::from_static("x-pusher-signature"), signature);
        }
        if let Ok(id) = HeaderValue::from_str(&outgoing.id) {
            headers.insert(HeaderName::from_static("x-relay-webhook-id"), id);
        }
        request
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let origin = &self.origin;
        if matches!(origin.transport, Transport::UnverifiableHost) {
            return Err(SendError::Tls(std::io::Error::other(
                "the host is not a name or address TLS can verify",
            )));
        }
        let stream = TcpStream::connect((origin.host.as_str(), origin.port))
            .await
            .map_err(SendError::Connect)?;
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        match &origin.transport {
            Transport::Tls(connector, name) => {
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .map_err(SendError::Tls)?;
                handshake(stream).await
            }
            Transport::Plain | Transport::UnverifiableHost => handshake(stream).await,
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn take_idle(&self) -> Option<Connection> {
        let mut idle = self.lock_idle();
        while let Some(connection) = idle.pop() {
            if !connection.is_closed() {
                return Some(connection);
            }
        }
        None
    }

    fn put_idle(&self, connection: Connection) {
        let mut idle = self.lock_idle();
        if idle.len() < self.max_idle {
            idle.push(connection);
        }
    }
}

const USER_AGENT_VALUE: &str = concat!("relay/", env!("CARGO_PKG_VERSION"));

/// Starts HTTP/1.1 on `stream`; the connection is driven by a task of its own, which ends
/// when the connection closes or its last handle is dropped.
async fn handshake<S>(stream: S) -> Result<Connection, SendError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(SendError::Http)?;
    tokio::spawn(async move {
        // How it ended is seen by the request on it, if any.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Whether the receiver keeps the connection open for another request: HTTP/1.1 without
/// `Connection: close`.
fn keeps_alive(response: &Response<Incoming>) -> bool {
    let closes = response
        .headers()
        .get_all(CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("close"));
    response.version() == Version::HTTP_11 && !closes
}

/// A hyper failure, with "closed before any answer" told apart from the rest.
fn classify(error: hyper::Error) -> SendError {
    use std::error::Error as _;
    use std::io::ErrorKind;
    let io_kind = error
        .source()
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .map(std::io::Error::kind);
    let closed_io = matches!(
        io_kind,
        Some(
            ErrorKind::ConnectionReset
                | ErrorKind::BrokenPipe
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
        )
    );
    if error.is_canceled() || error.is_incomplete_message() || error.is_closed() || closed_io {
        SendError::ClosedBeforeAnswer
    } else {
        SendError::Http(error)
    }
}

/// The TLS settings of every https endpoint: the webpki roots, HTTP/1.1 by ALPN, on ring
/// (named here, so a second provider enabled by another crate cannot make it panic).
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports TLS 1.2 and 1.3")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}
