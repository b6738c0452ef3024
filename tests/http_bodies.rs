//! The HTTP API checks a request's head before it reads the body: an unsigned or wrongly
//! signed request is answered without its body being sent, `Expect: 100-continue` is answered
//! only after those checks, a slow body gets 408 at the deadline, and the bytes of bodies in
//! flight are bounded server-wide (503 with `Retry-After`).

mod common;

use std::time::{Duration, Instant};

use common::http::{now, signed_path};
use common::{APP_ID, APP_SECRET, TIMEOUT, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response head (status line and headers) and the bytes read after it.
struct Head {
    text: String,
    rest: Vec<u8>,
}

impl Head {
    fn status(&self) -> u16 {
        self.text.split(' ').nth(1).unwrap().parse().unwrap()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Opens a connection and sends a request head declaring `content_length` body bytes.
async fn send_head(
    server: &TestServer,
    target: &str,
    content_length: usize,
    extra: &str,
) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {content_length}\r\n{extra}\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads the next response head (bounded wait).
async fn read_head(stream: &mut TcpStream, leftover: Vec<u8>) -> Head {
    let mut buf = leftover;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Head {
                text,
                rest: buf[end + 4..].to_vec(),
            };
        }
        let read = tokio::time::timeout(TIMEOUT, stream.read(&mut chunk))
            .await
            .expect("no response within the timeout")
            .unwrap();
        assert!(read > 0, "connection closed before a response");
        buf.extend_from_slice(&chunk[..read]);
    }
}

/// Reads the rest of a response whose head is `head` (the server closes the connection).
async fn read_error(stream: &mut TcpStream, head: Head) -> String {
    let mut body = head.rest;
    let _ = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut body)).await;
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    body["error"].as_str().expect("an error message").to_owned()
}

/// An events body of exactly `len` bytes (JSON padded with spaces).
fn events_body(len: usize) -> String {
    let json = r#"{"name":"e","channels":["news"],"data":"x"}"#;
    format!("{json}{}", " ".repeat(len - json.len()))
}

fn signed_events_target(body: &str) -> String {
    signed_path(
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        body,
        APP_SECRET,
        now(),
    )
}

/// The same, signed with a secret that is not the app's.
fn forged_events_target(body: &str) -> String {
    signed_path(
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        body,
        "not-the-secret",
        now(),
    )
}

/// A server receiving at most 100,000 bytes of bodies at once (each at most 65,536).
fn small_budget_server() -> TestServer {
    TestServer::start_with(&config_with(
        "max_request_size = 65536\nmax_pending_request_bytes = 100000",
    ))
}

fn config_with(server_keys: &str) -> String {
    common::default_config().replace("[server]\n", &format!("[server]\n{server_keys}\n"))
}

#[tokio::test]
async fn an_unsigned_post_just_under_the_size_limit_is_401_before_its_body_is_sent() {
    let server = TestServer::start();
    let target = format!("/apps/{APP_ID}/events");
    let mut stream = send_head(&server, &target, 1024 * 1024 - 1, "").await;
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 401, "{}", head.text);
    assert_eq!(
        read_error(&mut stream, head).await,
        "Missing auth_key parameter"
    );
}

#[tokio::test]
async fn a_body_declared_over_the_size_limit_is_413_at_once() {
    let server = TestServer::start();
    let body = events_body(100);
    let mut stream = send_head(&server, &signed_events_target(&body), 1024 * 1024 + 1, "").await;
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 413, "{}", head.text);
}

#[tokio::test]
async fn a_wrong_signature_or_app_is_refused_before_the_body() {
    let server = TestServer::start();
    let body = events_body(1000);
    let forged = forged_events_target(&body);
    let mut stream = send_head(&server, &forged, body.len(), "").await;
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 401);
    assert_eq!(read_error(&mut stream, head).await, "Invalid signature");
    let mut stream = send_head(&server, "/apps/999/events", body.len(), "").await;
    assert_eq!(read_head(&mut stream, Vec::new()).await.status(), 404);
}

#[tokio::test]
async fn expect_100_continue_with_a_bad_signature_gets_401_and_no_continue() {
    let server = TestServer::start();
    let body = events_body(5000);
    let forged = forged_events_target(&body);
    let mut stream = send_head(&server, &forged, body.len(), "Expect: 100-continue\r\n").await;
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 401, "{}", head.text);
    assert_eq!(read_error(&mut stream, head).await, "Invalid signature");
}

#[tokio::test]
async fn expect_100_continue_with_a_good_signature_continues_and_is_served() {
    let server = TestServer::start();
    let body = events_body(5000);
    let target = signed_events_target(&body);
    let mut stream = send_head(&server, &target, body.len(), "Expect: 100-continue\r\n").await;
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 100, "{}", head.text);
    stream.write_all(body.as_bytes()).await.unwrap();
    let head = read_head(&mut stream, head.rest).await;
    assert_eq!(head.status(), 200, "{}", head.text);
}

#[tokio::test]
async fn a_signed_request_that_stalls_mid_body_gets_408_at_the_deadline() {
    let server = TestServer::start_with(&config_with("request_body_timeout = 1"));
    let body = events_body(2000);
    let started = Instant::now();
    let mut stream = send_head(&server, &signed_events_target(&body), body.len(), "").await;
    stream.write_all(&body.as_bytes()[..1000]).await.unwrap();
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 408, "{}", head.text);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "408 before the deadline"
    );
    assert_eq!(
        read_error(&mut stream, head).await,
        "Request body was not received in time"
    );
}

#[tokio::test]
async fn bodies_in_flight_are_bounded_server_wide() {
    let server = small_budget_server();
    let body = events_body(60_000);
    // The first request's 60,000 bytes are reserved once it has been told to continue.
    let mut first = send_head(
        &server,
        &signed_events_target(&body),
        body.len(),
        "Expect: 100-continue\r\n",
    )
    .await;
    let head = read_head(&mut first, Vec::new()).await;
    assert_eq!(head.status(), 100);
    first.write_all(&body.as_bytes()[..30_000]).await.unwrap();

    let mut second = send_head(&server, &signed_events_target(&body), body.len(), "").await;
    let refused = read_head(&mut second, Vec::new()).await;
    assert_eq!(refused.status(), 503, "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("1"));

    first.write_all(&body.as_bytes()[30_000..]).await.unwrap();
    assert_eq!(read_head(&mut first, head.rest).await.status(), 200);
    // The first body's bytes were given back.
    let mut third = send_head(&server, &signed_events_target(&body), body.len(), "").await;
    third.write_all(body.as_bytes()).await.unwrap();
    assert_eq!(read_head(&mut third, Vec::new()).await.status(), 200);
}

#[tokio::test]
async fn a_chunked_body_is_read_and_held_to_the_size_limit() {
    let server = TestServer::start_with(&config_with("max_request_size = 4096"));
    let chunked = |body: &str| {
        let mut encoded = String::new();
        for piece in body.as_bytes().chunks(1000) {
            encoded += &format!(
                "{:x}\r\n{}\r\n",
                piece.len(),
                std::str::from_utf8(piece).unwrap()
            );
        }
        encoded + "0\r\n\r\n"
    };
    for (len, status) in [(3000, 200), (5000, 413)] {
        let body = events_body(len);
        let mut stream = TcpStream::connect(("127.0.0.1", server.port))
            .await
            .unwrap();
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            signed_events_target(&body),
            chunked(&body)
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        assert_eq!(read_head(&mut stream, Vec::new()).await.status(), status);
    }
}

/// Asserts that the server ends the connection (bounded wait), reading past whatever is left.
async fn assert_closed_by_server(stream: &mut TcpStream) {
    let mut rest = Vec::new();
    let ended = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the server kept the connection open");
}

/// Opens a connection and sends a chunked request head.
async fn send_chunked_head(server: &TestServer, target: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let head = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn a_trickled_chunked_body_gets_408_and_its_connection_is_closed() {
    let server = TestServer::start_with(&config_with("request_body_timeout = 1"));
    let body = events_body(2000);
    let mut stream = send_chunked_head(&server, &signed_events_target(&body)).await;
    stream
        .write_all(b"10\r\n0123456789abcdef\r\n")
        .await
        .unwrap();
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 408, "{}", head.text);
    // The rest of the body is not drained for as long as the client cares to send it.
    let _ = stream.write_all(b"10\r\n0123456789abcdef\r\n").await;
    assert_closed_by_server(&mut stream).await;
}

#[tokio::test]
async fn an_unsigned_chunked_body_gets_401_and_its_connection_is_closed() {
    let server = TestServer::start();
    let mut stream = send_chunked_head(&server, &format!("/apps/{APP_ID}/events")).await;
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 401, "{}", head.text);
    assert_closed_by_server(&mut stream).await;
}

#[tokio::test]
async fn a_chunked_body_to_a_path_without_a_route_gets_404_and_its_connection_is_closed() {
    let server = TestServer::start();
    for path in ["/nope", "/ready", "/apps/123456/nope"] {
        let mut stream = send_chunked_head(&server, path).await;
        let head = read_head(&mut stream, Vec::new()).await;
        assert!(head.status() >= 400, "{path}: {}", head.text);
        assert_closed_by_server(&mut stream).await;
    }
}

#[tokio::test]
async fn a_signed_request_whose_body_is_not_in_its_signature_is_refused_on_its_head() {
    let server = TestServer::start();
    // Signed over no body (so no body_md5), then sent with one.
    let target = signed_path(
        "POST",
        &format!("/apps/{APP_ID}/events"),
        &[],
        "",
        APP_SECRET,
        now(),
    );
    let mut stream = send_head(&server, &target, 60_000, "").await;
    let head = read_head(&mut stream, Vec::new()).await;
    assert_eq!(head.status(), 401, "{}", head.text);
    assert_eq!(
        read_error(&mut stream, head).await,
        "Missing body_md5 parameter"
    );
}

#[tokio::test]
async fn expect_100_continue_is_not_sent_while_the_body_budget_is_full() {
    let server = small_budget_server();
    let body = events_body(60_000);
    let expect = "Expect: 100-continue\r\n";
    let mut first = send_head(&server, &signed_events_target(&body), body.len(), expect).await;
    assert_eq!(read_head(&mut first, Vec::new()).await.status(), 100);
    let mut second = send_head(&server, &signed_events_target(&body), body.len(), expect).await;
    let refused = read_head(&mut second, Vec::new()).await;
    assert_eq!(refused.status(), 503, "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("1"));
}
