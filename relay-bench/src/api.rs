//! A signed Pusher HTTP API client on one persistent HTTP/1.1 connection, through hyper's
//! low-level client.
//!
//! hyper reads whatever an HTTP/1.1 server may send (length-delimited or chunked bodies,
//! HTTP/1.0 answers); this module only decides when a connection is done. Some servers close
//! after every response (Soketi and Sockudo answer `Connection: close`), and any server may
//! close an idle keep-alive connection, so:
//! - a response that ends its connection (`Connection: close`, or HTTP/1.0 without
//!   keep-alive) drops it, and the next request opens a fresh one;
//! - a request that fails on a reused connection before any answer arrived (the server
//!   closed it while the request was on its way) is sent once more, on a fresh connection.
//!
//! Every connection after the first counts as a reconnect ([`ApiClient::reconnects`]), so a
//! scenario reports what the server made its clients pay instead of failing.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONNECTION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, Uri, Version};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use relay::protocol::http_signature::{body_md5, string_to_sign};
use relay::protocol::signature::sign;

use crate::error::BenchError;
use crate::target::Target;

/// Largest response body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An HTTP API response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body, as received.
    pub body: Bytes,
}

impl Response {
    /// The body as text, for error messages.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One persistent connection to the HTTP API, renewed when the server ends it.
pub struct ApiClient {
    target: Target,
    host: HeaderValue,
    /// `Bearer <token>`, with `--bearer`.
    bearer: Option<HeaderValue>,
    events_path: String,
    connection: Option<Connection>,
    opened: usize,
}

/// One open connection.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    /// Whether a response has come back on it (so a failure may mean it went stale).
    reused: bool,
}

/// How one attempt at a request failed.
enum AttemptError {
    /// The connection was gone before any answer came: worth one more try on a fresh one.
    Stale(hyper::Error),
    /// Anything else.
    Failed(BenchError),
}

impl ApiClient {
    /// Connects to the server's HTTP port.
    pub async fn connect(target: &Target) -> Result<Self, BenchError> {
        let host = HeaderValue::try_from(target.address())
            .map_err(|_| BenchError::Http(format!("bad host {}", target.address())))?;
        let bearer = target
            .bearer
            .as_ref()
            .map(|token| HeaderValue::try_from(format!("Bearer {token}")))
            .transpose()
            .map_err(|_| BenchError::Http("--bearer is not a valid header value".into()))?;
        let mut client = ApiClient {
            target: target.clone(),
            host,
            bearer,
            events_path: format!("/apps/{}/events", target.app_id),
            connection: None,
            opened: 0,
        };
        client.connection = Some(client.open().await?);
        Ok(client)
    }

    /// Connections opened after the first one: after the server closed one, or after a
    /// request on a reused one failed before its answer.
    pub fn reconnects(&self) -> usize {
        self.opened.saturating_sub(1)
    }

    /// `POST /apps/{id}/events` of `data` to `channels` (the response may be any status).
    pub async fn trigger(
        &mut self,
        channels: &[String],
        event: &str,
        data: &str,
    ) -> Result<Response, BenchError> {
        let body = trigger_body(channels, event, data)?;
        let uri = match &self.target.bearer {
            // A token covers the request: no query signature.
            Some(_) => Uri::try_from(self.events_path.as_str())
                .map_err(|error| BenchError::Http(error.to_string()))?,
            None => self.signed_uri("POST", &self.events_path, &body)?,
        };
        self.post(uri, body).await
    }

    /// Sends a signed `POST`, once more on a fresh connection if a reused one went stale.
    async fn post(&mut self, uri: Uri, body: Bytes) -> Result<Response, BenchError> {
        match self.attempt(uri.clone(), body.clone()).await {
            Ok(response) => Ok(response),
            Err(AttemptError::Stale(_)) => match self.attempt(uri, body).await {
                Ok(response) => Ok(response),
                Err(AttemptError::Stale(error)) => Err(BenchError::Http(format!(
                    "the connection closed before an answer, twice: {error}"
                ))),
                Err(AttemptError::Failed(error)) => Err(error),
            },
            Err(AttemptError::Failed(error)) => Err(error),
        }
    }

    /// One request on the current connection (or a fresh one when it is gone).
    async fn attempt(&mut self, uri: Uri, body: Bytes) -> Result<Response, AttemptError> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.open().await.map_err(AttemptError::Failed)?,
        };
        if connection.sender.ready().await.is_err() {
            // Closed by the server while idle: not a failed request, a reconnect.
            connection = self.open().await.map_err(AttemptError::Failed)?;
        }
        let mut request = Request::post(uri)
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(bearer) = &self.bearer {
            request = request.header(AUTHORIZATION, bearer.clone());
        }
        let request = request
            .body(Full::new(body))
            .map_err(|error| AttemptError::Failed(BenchError::Http(error.to_string())))?;
        let response = match connection.sender.send_request(request).await {
            Ok(response) => response,
            Err(error) if connection.reused && is_stale(&error) => {
                return Err(AttemptError::Stale(error));
            }
            Err(error) => return Err(AttemptError::Failed(http_error(&error))),
        };
        let status = response.status().as_u16();
        let keep = keeps_alive(&response);
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|error| AttemptError::Failed(BenchError::Http(error.to_string())))?
            .to_bytes();
        if keep {
            connection.reused = true;
            self.connection = Some(connection);
        }
        Ok(Response { status, body })
    }

    /// Opens a connection (with `TCP_NODELAY`) and counts it.
    async fn open(&mut self) -> Result<Connection, BenchError> {
        let stream = TcpStream::connect(self.target.address()).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|error| http_error(&error))?;
        // Ends when the sender is dropped or the server closes; errors surface on the sender.
        tokio::spawn(connection);
        self.opened += 1;
        Ok(Connection {
            sender,
            reused: false,
        })
    }

    /// `path?auth_key=…&auth_signature=…`, signed over `body`.
    fn signed_uri(&self, method: &str, path: &str, body: &[u8]) -> Result<Uri, BenchError> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let params = [
            ("auth_key".to_owned(), self.target.key.clone()),
            ("auth_timestamp".to_owned(), timestamp.to_string()),
            ("auth_version".to_owned(), "1.0".to_owned()),
            ("body_md5".to_owned(), body_md5(body)),
        ];
        let signed = string_to_sign(method, path, &params);
        let signature = sign(self.target.secret.as_bytes(), signed.as_bytes());
        let mut uri = String::with_capacity(path.len() + 160);
        uri.push_str(path);
        uri.push('?');
        let mut query = form_urlencoded::Serializer::for_suffix(uri, path.len() + 1);
        for (key, value) in &params {
            query.append_pair(key, value);
        }
        query.append_pair("auth_signature", &signature);
        Uri::try_from(query.finish()).map_err(|error| BenchError::Http(error.to_string()))
    }
}

/// `{"name":…,"channels":[…],"data":…}`, written straight into the one buffer it is sent from.
fn trigger_body(channels: &[String], event: &str, data: &str) -> Result<Bytes, BenchError> {
    let length = event.len() + data.len() + channels.iter().map(|c| c.len() + 3).sum::<usize>();
    let mut body = Vec::with_capacity(length + 48);
    let mut write = || -> serde_json::Result<()> {
        body.extend_from_slice(b"{\"name\":");
        serde_json::to_writer(&mut body, event)?;
        body.extend_from_slice(b",\"channels\":");
        serde_json::to_writer(&mut body, channels)?;
        body.extend_from_slice(b",\"data\":");
        serde_json::to_writer(&mut body, data)?;
        body.push(b'}');
        Ok(())
    };
    write().map_err(|error| BenchError::Http(format!("trigger body: {error}")))?;
    Ok(Bytes::from(body))
}

/// Whether the server will take another request on this connection after `response`.
fn keeps_alive<B>(response: &hyper::Response<B>) -> bool {
    let has = |token: &str| {
        response
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|item| item.trim().eq_ignore_ascii_case(token))
    };
    match response.version() {
        Version::HTTP_10 => has("keep-alive"),
        _ => !has("close"),
    }
}

/// Whether `error` means the connection was gone before an answer: closed or reset by the
/// server, or never ready for the request.
fn is_stale(error: &hyper::Error) -> bool {
    if error.is_canceled() || error.is_closed() || error.is_incomplete_message() {
        return true;
    }
    let io =
        std::error::Error::source(error).and_then(|source| source.downcast_ref::<std::io::Error>());
    io.is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionAborted
        )
    })
}

fn http_error(error: &hyper::Error) -> BenchError {
    BenchError::Http(error.to_string())
}

#[cfg(test)]
mod tests;
