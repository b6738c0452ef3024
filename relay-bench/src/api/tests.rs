//! The API client against scripted servers: how it reads their answers and when it reconnects.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::*;

/// What a scripted server does with the next request on a connection.
#[derive(Clone, Copy)]
enum Step {
    /// Reads it and writes these bytes.
    Answer(&'static str),
    /// Reads it and closes the connection without a word.
    Close,
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
const CHUNKED_CLOSE: &str = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n";
/// HTTP/1.0 without keep-alive: the body ends where the connection does.
const HTTP_10: &str = "HTTP/1.0 200 OK\r\n\r\n{\"old\":1}";

/// A server that takes one connection after another, running each one's steps and then
/// closing it; the task returns how many requests it read.
async fn scripted(connections: Vec<Vec<Step>>) -> (Target, JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut requests = 0;
        for steps in connections {
            let (mut stream, _) = listener.accept().await.unwrap();
            for step in steps {
                assert!(read_request(&mut stream).await, "a request");
                requests += 1;
                match step {
                    Step::Answer(bytes) => stream.write_all(bytes.as_bytes()).await.unwrap(),
                    Step::Close => break,
                }
            }
        }
        requests
    });
    let target = Target {
        host: "127.0.0.1".into(),
        port,
        app_id: "1".into(),
        key: "key".into(),
        secret: "secret".into(),
        bearer: None,
    };
    (target, task)
}

/// Reads one request with a `Content-Length` body; false when the connection ends first.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buffer = Vec::new();
    let mut byte = [0u8; 1];
    while !buffer.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return false;
        }
        buffer.push(byte[0]);
    }
    let head = String::from_utf8(buffer).unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .expect("content-length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).await.is_ok()
}

async fn trigger(api: &mut ApiClient) -> Result<Response, BenchError> {
    api.trigger(&["c".to_owned()], "e", "{}").await
}

#[tokio::test]
async fn a_request_lost_on_a_reused_connection_is_sent_again_on_a_fresh_one() {
    let (target, server) = scripted(vec![
        vec![Step::Answer(OK), Step::Close],
        vec![Step::Answer(OK)],
    ])
    .await;
    let mut api = ApiClient::connect(&target).await.unwrap();
    assert_eq!(trigger(&mut api).await.unwrap().status, 200);
    let again = trigger(&mut api).await.unwrap();
    assert_eq!((again.status, &again.body[..]), (200, &b"{}"[..]));
    assert_eq!(api.reconnects(), 1);
    assert_eq!(server.await.unwrap(), 3, "the lost request was sent twice");
}

#[tokio::test]
async fn closing_answers_are_read_whole_and_the_next_request_reconnects() {
    let connections = vec![
        vec![Step::Answer(HTTP_10)],
        vec![Step::Answer(CHUNKED_CLOSE)],
        vec![Step::Answer(OK)],
    ];
    let (target, server) = scripted(connections).await;
    let mut api = ApiClient::connect(&target).await.unwrap();
    assert_eq!(&trigger(&mut api).await.unwrap().body[..], b"{\"old\":1}");
    assert_eq!(&trigger(&mut api).await.unwrap().body[..], b"{}");
    assert_eq!(&trigger(&mut api).await.unwrap().body[..], b"{}");
    assert_eq!(api.reconnects(), 2);
    assert_eq!(server.await.unwrap(), 3, "no request was sent twice");
}

#[tokio::test]
async fn a_request_lost_on_a_fresh_connection_fails() {
    let (target, server) = scripted(vec![vec![Step::Close]]).await;
    let mut api = ApiClient::connect(&target).await.unwrap();
    let error = trigger(&mut api).await.unwrap_err();
    assert!(matches!(error, BenchError::Http(_)), "{error}");
    assert_eq!(api.reconnects(), 0);
    assert_eq!(server.await.unwrap(), 1);
}

#[test]
fn a_connection_ends_on_close_or_on_http_1_0_without_keep_alive() {
    let response = |version: Version, connection: Option<&str>| {
        let mut builder = hyper::Response::builder().version(version);
        if let Some(value) = connection {
            builder = builder.header(CONNECTION, value);
        }
        builder.body(()).unwrap()
    };
    assert!(keeps_alive(&response(Version::HTTP_11, None)));
    assert!(keeps_alive(&response(Version::HTTP_11, Some("keep-alive"))));
    assert!(!keeps_alive(&response(Version::HTTP_11, Some("close"))));
    assert!(!keeps_alive(&response(
        Version::HTTP_11,
        Some("Upgrade, Close")
    )));
    assert!(!keeps_alive(&response(Version::HTTP_10, None)));
    assert!(keeps_alive(&response(Version::HTTP_10, Some("Keep-Alive"))));
}

#[test]
fn the_trigger_body_is_the_json_the_api_expects() {
    let channels = ["a".to_owned(), "b\"c".to_owned()];
    let body = trigger_body(&channels, "ev", "bench:1:\"x\"").unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        parsed,
        serde_json::json!({"name": "ev", "channels": ["a", "b\"c"], "data": "bench:1:\"x\""})
    );
}
