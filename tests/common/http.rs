//! A minimal HTTP/1.1 client for the API tests, and Pusher request signing written
//! independently of the server's own code.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{APP_ID, APP_KEY, APP_SECRET, TIMEOUT, TestServer, sign};

/// A response: status, head (status line and headers) and body text.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    /// The value of header `name` (any case), if present.
    #[allow(dead_code)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The `error` message of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .expect("error message")
            .to_owned()
    }
}

/// Sends one request (`path_and_query` as given) and reads the whole response.
pub async fn raw_request(
    server: &TestServer,
    method: &str,
    path_and_query: &str,
    body: &str,
) -> Response {
    raw_request_with_headers(server, method, path_and_query, body, "").await
}

/// Like [`raw_request`] with extra header lines (each ending in `\r\n`).
pub async fn raw_request_with_headers(
    server: &TestServer,
    method: &str,
    path_and_query: &str,
    body: &str,
    headers: &str,
) -> Response {
    raw_request_from(server, "127.0.0.1", method, path_and_query, body, headers).await
}

/// Like [`raw_request_with_headers`], sent from the loopback address `source` (all of
/// 127.0.0.0/8 is loopback, so a test can arrive from another address).
pub async fn raw_request_from(
    server: &TestServer,
    source: &str,
    method: &str,
    path_and_query: &str,
    body: &str,
    headers: &str,
) -> Response {
    let mut stream = super::connect_from(source, server.port).await;
    let request = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response timed out")
        .unwrap();
    let text = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("complete response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Response {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Builds a signed `path?query` the way the Node SDK does (raw values, sorted keys).
pub fn signed_path(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
    secret: &str,
    timestamp: u64,
) -> String {
    signed_path_as(method, path, params, body, (APP_KEY, secret), timestamp)
}

/// [`signed_path`] with the key and secret of `pair`.
#[allow(dead_code)]
pub fn signed_path_as(
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    body: &str,
    pair: (&str, &str),
    timestamp: u64,
) -> String {
    let (key, secret) = pair;
    let timestamp = timestamp.to_string();
    let md5 = format!("{:x}", md5::compute(body.as_bytes()));
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    pairs.push(("auth_key".into(), key.into()));
    pairs.push(("auth_timestamp".into(), timestamp));
    pairs.push(("auth_version".into(), "1.0".into()));
    if !body.is_empty() {
        pairs.push(("body_md5".into(), md5));
    }
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let signature = sign(secret, &format!("{method}\n{path}\n{query}"));
    format!("{path}?{query}&auth_signature={signature}")
}

/// `GET /apps/{id}/channels` of the default app from the loopback address `source`, signed with
/// the default key and `secret` (the right one, or a wrong one for an authentication failure).
pub async fn signed_read_from(server: &TestServer, source: &str, secret: &str) -> Response {
    let path = format!("/apps/{APP_ID}/channels");
    let target = signed_path("GET", &path, &[], "", secret, now());
    raw_request_from(server, source, "GET", &target, "", "").await
}

/// A correctly signed request to the default app's API path `/apps/123456{suffix}`.
pub async fn api(
    server: &TestServer,
    method: &str,
    suffix: &str,
    params: &[(&str, &str)],
    body: &str,
) -> Response {
    let path = format!("/apps/{APP_ID}{suffix}");
    let target = signed_path(method, &path, params, body, APP_SECRET, now());
    raw_request(server, method, &target, body).await
}

/// `POST /apps/123456/events` with `body` (JSON).
pub async fn trigger(server: &TestServer, body: serde_json::Value) -> Response {
    api(server, "POST", "/events", &[], &body.to_string()).await
}

/// The status of a `GET /channels` of the default app from `source`, authenticated with the
/// API token `token`.
pub async fn with_token_from(server: &TestServer, source: &str, token: &str) -> u16 {
    let path = format!("/apps/{APP_ID}/channels");
    let header = format!("Authorization: Bearer {token}\r\n");
    raw_request_from(server, source, "GET", &path, "", &header)
        .await
        .status
}
