//! Every error a client sees is a short JSON message (HTTP) or a Pusher error frame
//! (WebSocket): a corpus of malformed requests and frames (bad request lines, huge and many
//! headers, invalid UTF-8, bad lengths, bad JSON, wrong types, huge numbers, oversized and
//! deeply nested fields) is sent to the real server, and each answer is checked for length, for
//! shape, and for anything internal: a panic, a file path, a Rust type or module path, a parser's
//! own message, or the input echoed back.
//!
//! The one answer Relay does not write itself: a request head actix-http cannot parse (or one
//! over its header limits) gets actix-http's own 400 or 431 with an empty body, and the
//! connection is closed. Empty is allowed for exactly those; it says nothing internal.

mod common;

use common::http::{now, signed_path};
use common::{APP_ID, APP_SECRET, Client, TestServer};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Longest error body or message accepted.
const MOST_ERROR_BYTES: usize = 300;

/// Texts that would mean something internal reached the client.
const INTERNAL: [&str; 14] = [
    "panicked",
    "src/",
    ".rs:",
    "::",
    "Error {",
    "Error(",
    "at line",
    "column",
    "serde",
    "actix",
    "hyper",
    "backtrace",
    "thread '",
    "RUST_",
];

/// A distinctive marker at the end of huge inputs and in unparsable ones: a short, bounded
/// quote of what was wrong (a channel name's first characters) may come back, the rest of a
/// huge input or a parser's view of the text may not.
const MARKER: &str = "zq9echo";

/// Sends `raw` and reads until the server closes (bounded): the status and body.
async fn exchange(server: &TestServer, raw: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = common::connect_from("127.0.0.1", server.port).await;
    // A server that answers before reading everything may reset the rest; that is fine.
    let _ = stream.write_all(raw).await;
    let mut response = Vec::new();
    let read = tokio::time::timeout(common::TIMEOUT, async {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    response.extend_from_slice(&buffer[..n]);
                    assert!(response.len() < 1 << 20, "an answer over 1 MiB");
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no end of answer for {:?}", preview(raw));
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer to {:?}: {text:?}", preview(raw)));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.as_bytes().to_vec())
}

fn preview(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(80)]).into_owned()
}

/// Asserts an HTTP error answer is clean: actix-http's empty 400/431, or a short JSON object
/// whose `error` is a short message with nothing internal and no echo of the marker.
fn assert_clean_http(label: &str, status: u16, body: &[u8]) {
    assert!(status >= 400, "{label}: status {status}");
    if body.is_empty() {
        assert!(status == 400 || status == 431, "{label}: an empty {status}");
        return;
    }
    assert!(
        body.len() <= MOST_ERROR_BYTES,
        "{label}: {} bytes",
        body.len()
    );
    let text = std::str::from_utf8(body).unwrap_or_else(|_| panic!("{label}: not UTF-8"));
    let json: Value =
        serde_json::from_str(text).unwrap_or_else(|_| panic!("{label}: not JSON: {text}"));
    let message = json["error"]
        .as_str()
        .unwrap_or_else(|| panic!("{label}: no error message: {text}"));
    assert_clean_message(label, message);
}

fn assert_clean_message(label: &str, message: &str) {
    assert!(!message.is_empty(), "{label}: empty message");
    assert!(
        message.len() <= MOST_ERROR_BYTES,
        "{label}: {} bytes",
        message.len()
    );
    for internal in INTERNAL {
        assert!(
            !message.contains(internal),
            "{label}: {internal:?} in {message:?}"
        );
    }
    assert!(!message.contains(MARKER), "{label}: echoed: {message:?}");
}

/// A request with `head_lines` (each ending in `\r\n`) and `body`.
fn request(method: &str, target: &str, head_lines: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n{head_lines}\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// A correctly signed `POST /apps/{id}/events` (or `suffix`) carrying `body` as it is.
fn signed_post(suffix: &str, body: &[u8]) -> Vec<u8> {
    let path = format!("/apps/{APP_ID}{suffix}");
    // signed_path signs the MD5 of the text; bodies here may not be UTF-8, so sign the bytes.
    let md5 = format!("{:x}", md5::compute(body));
    let target = signed_path("POST", &path, &[("body_md5", &md5)], "", APP_SECRET, now());
    request("POST", &target, "Content-Type: application/json\r\n", body)
}

#[tokio::test]
async fn malformed_http_requests_get_short_clean_answers() {
    let server = TestServer::start();
    let long_name = format!("{}{MARKER}", "n".repeat(5000));
    let long_channel = format!("{}{MARKER}", "c".repeat(5000));
    let nested = format!(
        r#"{{"name":"e","channels":["c"],"data":"x","info":{}{}}}"#,
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let many_headers: String = (0..200).map(|n| format!("X-H{n}: v\r\n")).collect();
    let huge_header = format!("X-Big: {}\r\n", "a".repeat(200 * 1024));
    let corpus: Vec<(&str, Vec<u8>)> = vec![
        ("a request line that is not HTTP", b"GARBAGE\r\n\r\n".to_vec()),
        ("an unknown HTTP version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        ("a path that is not UTF-8", b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("200 headers", request("GET", "/", &many_headers, b"")),
        ("a 200 KiB header (over actix-http's 128 KiB head buffer)", request("GET", "/", &huge_header, b"")),
        (
            "a Content-Length that is not a number",
            b"POST /apps/123456/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n".to_vec(),
        ),
        (
            "both Transfer-Encoding and Content-Length",
            b"POST /apps/123456/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n".to_vec(),
        ),
        ("an unknown path", request("GET", &format!("/{MARKER}/x"), "", b"")),
        ("an unknown method", request("DELETE", "/apps/123456/events", "", b"")),
        (
            "bad percent-encoding in the query",
            request("GET", "/apps/123456/channels?auth_key=%ZZ&x=%", "", b""),
        ),
        ("an unsigned trigger", request("POST", "/apps/123456/events", "", b"{}")),
        ("a body that is not JSON", signed_post("/events", b"{\"name\": zq9echo")),
        ("a body that is not UTF-8", signed_post("/events", b"{\"name\":\"\xff\xfe\"}")),
        ("a JSON array body", signed_post("/events", b"[1,2,3]")),
        (
            "a name that is a number",
            signed_post("/events", br#"{"name":5,"channels":["c"],"data":"x"}"#),
        ),
        (
            "a huge number for socket_id",
            signed_post(
                "/events",
                br#"{"name":"e","channels":["c"],"data":"x","socket_id":1e999999}"#,
            ),
        ),
        (
            "channels as a string",
            signed_post("/events", br#"{"name":"e","channels":"c","data":"x"}"#),
        ),
        (
            "a 5,000-character event name",
            signed_post(
                "/events",
                format!(r#"{{"name":"{long_name}","channels":["c"],"data":"x"}}"#).as_bytes(),
            ),
        ),
        (
            "a 5,000-character channel name",
            signed_post(
                "/events",
                format!(r#"{{"name":"e","channels":["{long_channel}"],"data":"x"}}"#).as_bytes(),
            ),
        ),
        ("JSON nested 5,000 deep", signed_post("/events", nested.as_bytes())),
        ("a batch that is not a list", signed_post("/batch_events", br#"{"batch":{}}"#)),
        (
            "a bad channel on the channel endpoint",
            request("GET", "/apps/123456/channels/bad%00name", "", b""),
        ),
    ];
    for (label, raw) in corpus {
        let (status, body) = exchange(&server, &raw).await;
        assert_clean_http(label, status, &body);
    }
    // Still serving, and nothing internal in the log either.
    let (status, _) = exchange(&server, &request("GET", "/", "", b"")).await;
    assert_eq!(status, 200);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[tokio::test]
async fn malformed_websocket_frames_get_clean_pusher_errors() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let long_event = format!("pusher:{}{MARKER}", "e".repeat(5000));
    let corpus = [
        "{".to_owned(),
        "zq9echo not json".to_owned(),
        "[1,2]".to_owned(),
        r#"{"event":5}"#.to_owned(),
        r#"{"event":"pusher:subscribe","data":{"channel":1e999999}}"#.to_owned(),
        r#"{"event":"pusher:subscribe","data":{"channel":"bad\u0000name"}}"#.to_owned(),
        format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":"{}{MARKER}"}}}}"#,
            "c".repeat(5000)
        ),
        format!(r#"{{"event":"{long_event}","data":{{}}}}"#),
        r#"{"event":"pusher:signin","data":{"auth":5,"user_data":"{}"}}"#.to_owned(),
        r#"{"event":"pusher:signin","data":{"auth":"k:0","user_data":"zq9echo"}}"#.to_owned(),
        r#"{"event":"client-x","channel":"private-other","data":{}}"#.to_owned(),
        format!(
            r#"{{"event":"pusher:subscribe","data":{{"channel":{}1{}}}}}"#,
            "[".repeat(5000),
            "]".repeat(5000)
        ),
    ];
    for text in &corpus {
        client.send_text(text).await;
        let label = &text[..text.len().min(60)];
        // Every frame the server sends before the pong is an error frame, and clean.
        client
            .send(serde_json::json!({"event": "pusher:ping", "data": {}}))
            .await;
        let mut errors = 0;
        loop {
            let reply = client.recv().await;
            if reply["event"] == "pusher:pong" {
                break;
            }
            errors += 1;
            assert!(errors <= 3, "{label}: too many frames");
            let message = match reply["event"].as_str() {
                Some("pusher:error") => reply["data"]["message"].as_str(),
                Some("pusher:subscription_error") => reply["data"]["error"].as_str(),
                _ => None,
            }
            .unwrap_or_else(|| panic!("{label}: not an error frame: {reply}"));
            assert_clean_message(label, message);
        }
        assert!(errors >= 1, "{label}: no error at all");
    }
}
