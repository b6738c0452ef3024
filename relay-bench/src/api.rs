//! A signed Pusher HTTP API client on one keep-alive connection.
//!
//! Written directly on a TCP stream rather than with a general HTTP client: the load tool
//! needs only `POST` with a `Content-Length` body on one persistent HTTP/1.1 connection, and
//! doing exactly that keeps the client's own cost per request small and easy to account for.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use relay::protocol::http_signature::{body_md5, string_to_sign};
use relay::protocol::signature::sign;

use crate::error::BenchError;
use crate::target::Target;

/// Longest response header section accepted.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest response body accepted.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// An HTTP API response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: String,
}

/// One persistent connection to the HTTP API.
pub struct ApiClient {
    stream: BufReader<TcpStream>,
    target: Target,
}

impl ApiClient {
    /// Connects to the server's HTTP port.
    pub async fn connect(target: &Target) -> Result<Self, BenchError> {
        let stream = TcpStream::connect(target.address()).await?;
        stream.set_nodelay(true)?;
        Ok(ApiClient {
            stream: BufReader::new(stream),
            target: target.clone(),
        })
    }

    /// `POST /apps/{id}/events` with `data` to `channels`; fails unless the status is 2xx.
    pub async fn trigger(
        &mut self,
        channels: &[String],
        event: &str,
        data: &str,
    ) -> Result<Response, BenchError> {
        let body = json!({"name": event, "channels": channels, "data": data}).to_string();
        let path = format!("/apps/{}/events", self.target.app_id);
        self.post(&path, &body).await
    }

    /// A signed `POST` of a JSON body.
    pub async fn post(&mut self, path: &str, body: &str) -> Result<Response, BenchError> {
        let query = self.signed_query("POST", path, body);
        let request = format!(
            "POST {path}?{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.target.address(),
            body.len()
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        self.read_response().await
    }

    fn signed_query(&self, method: &str, path: &str, body: &str) -> String {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let params = vec![
            ("auth_key".to_owned(), self.target.key.clone()),
            ("auth_timestamp".to_owned(), timestamp.to_string()),
            ("auth_version".to_owned(), "1.0".to_owned()),
            ("body_md5".to_owned(), body_md5(body.as_bytes())),
        ];
        let signed = string_to_sign(method, path, &params);
        let signature = sign(self.target.secret.as_bytes(), signed.as_bytes());
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &params {
            query.append_pair(key, value);
        }
        query.append_pair("auth_signature", &signature);
        query.finish()
    }

    async fn read_response(&mut self) -> Result<Response, BenchError> {
        let mut head = Vec::with_capacity(256);
        loop {
            let before = head.len();
            let read = self.stream.read_until(b'\n', &mut head).await?;
            if read == 0 {
                return Err(BenchError::Http("connection closed mid-response".into()));
            }
            if head.len() > MAX_HEADER_BYTES {
                return Err(BenchError::Http("response headers too long".into()));
            }
            if &head[before..] == b"\r\n" {
                break;
            }
        }
        let head = String::from_utf8_lossy(&head);
        let status = parse_status(&head)?;
        let length = content_length(&head)?;
        if length > MAX_BODY_BYTES {
            return Err(BenchError::Http(format!("response body of {length} bytes")));
        }
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body).await?;
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }
}

fn parse_status(head: &str) -> Result<u16, BenchError> {
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| BenchError::Http("malformed status line".into()))
}

fn content_length(head: &str) -> Result<usize, BenchError> {
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                return value
                    .trim()
                    .parse()
                    .map_err(|_| BenchError::Http("malformed Content-Length".into()));
            }
            if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(BenchError::Http(
                    "chunked responses are not supported by the load tool".into(),
                ));
            }
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_and_length() {
        let head = "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(parse_status(head).unwrap(), 413);
        assert_eq!(content_length(head).unwrap(), 12);
        assert_eq!(
            content_length("HTTP/1.1 204 No Content\r\n\r\n").unwrap(),
            0
        );
    }
}
