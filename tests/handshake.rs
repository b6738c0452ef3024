//! The connection handshake: `pusher:connection_established`, and every refusal code.

mod common;

use common::{APP_ID, APP_KEY, APP_SECRET, Client, TestServer, decode_data, open};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Connects to `path` and returns the `pusher:error` code and the close code.
async fn refused(server: &TestServer, path: &str) -> (u64, u16) {
    let mut client = Client::from_socket(open(&server.ws_url(path)).await);
    let error = client.recv_event("pusher:error").await;
    let error_code = error["data"]["code"].as_u64().expect("numeric code");
    assert!(
        error["data"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    (error_code, client.expect_close().await)
}

#[tokio::test]
async fn connection_established_has_a_socket_id_and_activity_timeout() {
    let server = TestServer::start();
    let mut client = Client::from_socket(open(&server.ws_url("/app/app-key?protocol=7")).await);
    let frame = client.recv_event("pusher:connection_established").await;
    assert!(
        frame["data"].is_string(),
        "data must be a JSON string: {frame}"
    );
    let data = decode_data(&frame);
    let socket_id = data["socket_id"].as_str().unwrap();
    let (a, b) = socket_id.split_once('.').expect("digits.digits");
    assert!(
        !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()),
        "{socket_id}"
    );
    assert!(
        !b.is_empty() && b.bytes().all(|c| c.is_ascii_digit()),
        "{socket_id}"
    );
    assert_eq!(data["activity_timeout"], 120);
}

#[tokio::test]
async fn socket_ids_differ_between_connections() {
    let server = TestServer::start();
    let a = Client::connect(&server).await;
    let b = Client::connect(&server).await;
    assert_ne!(a.socket_id, b.socket_id);
}

#[tokio::test]
async fn activity_timeout_comes_from_the_app_config() {
    let config = common::default_config() + "activity_timeout = 45\n";
    let server = TestServer::start_with(&config);
    let mut client = Client::from_socket(open(&server.ws_url("/app/app-key?protocol=7")).await);
    let frame = client.recv_event("pusher:connection_established").await;
    assert_eq!(decode_data(&frame)["activity_timeout"], 45);
}

#[tokio::test]
async fn protocols_five_to_seven_are_accepted_and_unknown_params_ignored() {
    let server = TestServer::start();
    for query in [
        "protocol=5",
        "protocol=6",
        "client=js&version=8.4.0&protocol=7&flash=false&x=%20",
    ] {
        let mut client =
            Client::from_socket(open(&server.ws_url(&format!("/app/app-key?{query}"))).await);
        client.recv_event("pusher:connection_established").await;
    }
}

#[tokio::test]
async fn unknown_app_key_is_refused_with_4001() {
    let server = TestServer::start();
    assert_eq!(refused(&server, "/app/nope?protocol=7").await, (4001, 4001));
}

#[tokio::test]
async fn disabled_app_is_refused_with_4003() {
    let config = format!(
        "[[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{APP_SECRET}\"\nenabled = false\n"
    );
    let server = TestServer::start_with(&config);
    assert_eq!(
        refused(&server, "/app/app-key?protocol=7").await,
        (4003, 4003)
    );
}

#[tokio::test]
async fn connections_over_the_quota_are_refused_with_4004_until_one_leaves() {
    let config = common::default_config() + "max_connections = 2\n";
    let server = TestServer::start_with(&config);
    let first = Client::connect(&server).await;
    let _second = Client::connect(&server).await;
    assert_eq!(
        refused(&server, "/app/app-key?protocol=7").await,
        (4004, 4004)
    );
    first.close().await;
    Client::connect(&server).await;
}

#[tokio::test]
async fn connections_over_the_nodes_ceiling_are_refused_with_4100_whatever_the_app() {
    let config = common::default_config().replace("[server]\n", "[server]\nmax_connections = 2\n")
        + "\n[[apps]]\nid = \"2\"\nkey = \"other-key\"\nsecret = \"other-secret\"\n";
    let server = TestServer::start_with(&config);
    let first = Client::connect(&server).await;
    let _second = Client::connect_to(&server, "other-key").await;
    for key in ["app-key", "other-key"] {
        let (error_code, close_code) = refused(&server, &format!("/app/{key}?protocol=7")).await;
        assert_eq!((error_code, close_code), (4100, 4100), "{key}");
    }
    first.close().await;
    Client::connect_to(&server, "other-key").await;
}

#[tokio::test]
async fn a_wrong_path_is_refused_with_4005() {
    let server = TestServer::start();
    assert_eq!(
        refused(&server, "/websocket?protocol=7").await,
        (4005, 4005)
    );
    assert_eq!(
        refused(&server, "/app/app-key/extra?protocol=7").await,
        (4005, 4005)
    );
}

#[tokio::test]
async fn protocol_version_errors_use_4006_4007_4008() {
    let server = TestServer::start();
    assert_eq!(
        refused(&server, "/app/app-key?protocol=x").await,
        (4006, 4006)
    );
    assert_eq!(
        refused(&server, "/app/app-key?protocol=4").await,
        (4007, 4007)
    );
    assert_eq!(
        refused(&server, "/app/app-key?protocol=8").await,
        (4007, 4007)
    );
    assert_eq!(
        refused(&server, "/app/app-key?client=js").await,
        (4008, 4008)
    );
    assert_eq!(refused(&server, "/app/app-key").await, (4008, 4008));
}

#[tokio::test]
async fn plain_http_to_an_unknown_path_is_a_json_404() {
    let server = TestServer::start();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(common::TIMEOUT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert!(response.ends_with(r#"{"error":"Not found"}"#), "{response}");
}

/// Sends `request` bytes on a fresh TCP connection and reads until the server closes it.
async fn raw_exchange(server: &TestServer, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream.write_all(request).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("the server did not close the connection")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn a_malformed_upgrade_gets_a_json_http_error() {
    let server = TestServer::start();
    let missing_key = b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\n\r\n";
    let response = raw_exchange(&server, missing_key).await;
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(response.contains(r#"{"error":"#), "{response}");
    let post = b"POST /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    let response = raw_exchange(&server, post).await;
    assert!(response.starts_with("HTTP/1.1 405"), "{response}");
}

#[tokio::test]
async fn frames_sent_with_the_upgrade_request_are_not_lost() {
    let server = TestServer::start();
    let mut request = b"GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
                        Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        .to_vec();
    // A masked text frame right behind the request, in the same write.
    let ping = br#"{"event":"pusher:ping","data":{}}"#;
    let mask = [1u8, 2, 3, 4];
    request.extend_from_slice(&[0x81, 0x80 | ping.len() as u8]);
    request.extend_from_slice(&mask);
    request.extend(ping.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    let mut stream = TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    stream.write_all(&request).await.unwrap();
    let mut received = Vec::new();
    let found = tokio::time::timeout(common::TIMEOUT, async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed early");
            received.extend_from_slice(&chunk[..n]);
            if contains_bytes(&received, b"pusher:pong") {
                return;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&received);
    assert!(found.is_ok(), "no pong; received {text}");
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("pusher:connection_established"), "{text}");
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
