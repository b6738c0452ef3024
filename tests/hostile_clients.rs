//! What one hostile client can make the server hold, proven by what the client can send
//! before it is cut off: frames are refused at their header, outboxes are bounded in bytes,
//! errors quote at most a limit's worth of input, subscriptions per connection are capped, and
//! none of it writes a WARN or ERROR line to the log.

mod common;

use common::raw_ws::{CONTINUATION, PING, RawWebSocket, TEXT, frame, frame_header};
use std::path::Path;
use std::time::Duration;

use common::{Client, TestServer};
use serde_json::json;

/// The default test config with `server_keys` added to `[server]` and `app_keys` to the app.
fn config_with(server_keys: &str, app_keys: &str) -> String {
    common::default_config().replace("[server]\n", &format!("[server]\n{server_keys}\n"))
        + app_keys
        + "\n"
}

/// A server whose frame limit is 2,048 bytes.
fn small_frame_server() -> TestServer {
    TestServer::start_with(&config_with(
        "max_frame_size = 2048",
        "max_event_size = 1024",
    ))
}

/// The log filter the quiet-log tests run with, whatever the caller's `RUST_LOG` says; the
/// debug lines of `relay::connections` say how each connection ended.
const TEST_LOG: (&str, &str) = ("RUST_LOG", "info,relay::ws=debug,relay::connections=debug");

/// A server started with [`TEST_LOG`].
fn logging_server(config: &str) -> TestServer {
    TestServer::start_with_env(config, &[TEST_LOG])
}

/// The debug line of a connection closed because its client fell behind (a live connection
/// ends with 4100 for nothing else) holds both.
const CLOSED_AS_BEHIND: [&str; 2] = ["connection closed", "code=4100"];

/// Asserts that the server logged nothing at WARN or ERROR once it started serving (before
/// that, the configuration's own warnings: the test config uses the development
/// credentials).
fn assert_quiet_log(server: &TestServer) {
    let log = server.log();
    assert!(log.contains("relay started"), "no start line: {log}");
    let serving = log
        .lines()
        .skip_while(|line| !line.contains("relay started"));
    for line in serving {
        assert!(
            !line.contains(" WARN ") && !line.contains("ERROR"),
            "a client produced a log line: {line}"
        );
    }
}

#[tokio::test]
async fn a_frame_declaring_2_to_the_40_bytes_is_closed_with_1009_at_its_header() {
    let server = logging_server(&common::default_config());
    let mut socket = RawWebSocket::connect(server.port).await;
    // Only the 14-byte header is sent: the close must come without any of the payload.
    socket.write(&frame_header(true, TEXT, 1 << 40)).await;
    assert_eq!(socket.close_code(4).await, 1009);
    assert_quiet_log(&server);
}

#[tokio::test]
async fn a_frame_just_over_the_limit_is_closed_at_its_header() {
    let server = small_frame_server();
    let mut socket = RawWebSocket::connect(server.port).await;
    socket.write(&frame_header(true, TEXT, 2049)).await;
    assert_eq!(socket.close_code(4).await, 1009);
}

#[tokio::test]
async fn a_fragment_taking_its_message_past_the_limit_is_closed_at_its_header() {
    let server = small_frame_server();
    let mut socket = RawWebSocket::connect(server.port).await;
    // 1,500 bytes joined so far (within the limit), then a fragment declaring 549 more:
    // refused before any of them is sent.
    socket.write(&frame(false, TEXT, &[b' '; 1500])).await;
    socket
        .write(&frame(false, CONTINUATION, &[b' '; 500]))
        .await;
    socket.write(&frame_header(true, CONTINUATION, 49)).await;
    assert_eq!(socket.close_code(4).await, 1009);
}

#[tokio::test]
async fn a_fragment_within_the_limit_is_still_joined() {
    let server = small_frame_server();
    let mut socket = RawWebSocket::connect(server.port).await;
    let text = br#"{"event":"pusher:ping","data":{}}"#;
    let padding = [b' '; 2048 - 33];
    socket.write(&frame(false, TEXT, text)).await;
    socket.write(&frame(true, CONTINUATION, &padding)).await;
    // connection_established, then the pong for exactly 2,048 joined bytes.
    let mut events = Vec::new();
    for _ in 0..2 {
        let (_, payload) = socket.next_frame().await.expect("a frame");
        let frame: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        events.push(frame["event"].as_str().unwrap().to_owned());
    }
    assert_eq!(events, ["pusher:connection_established", "pusher:pong"]);
}

#[tokio::test]
async fn a_fragmented_ping_is_a_protocol_error_without_a_log_line() {
    let server = logging_server(&common::default_config());
    let mut socket = RawWebSocket::connect(server.port).await;
    socket.write(&frame(false, PING, b"x")).await;
    assert_eq!(socket.close_code(4).await, 1002);
    // An overlong ping is refused on its header as well.
    let mut socket = RawWebSocket::connect(server.port).await;
    socket.write(&frame_header(true, PING, 126)).await;
    assert_eq!(socket.close_code(4).await, 1002);
    assert_quiet_log(&server);
}

#[tokio::test]
async fn errors_for_a_65000_character_name_are_shorter_than_1_kb() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let name = "a".repeat(65_000);
    client
        .send(json!({"event": "pusher:subscribe", "data": {"channel": name}}))
        .await;
    let refusal = client.recv_event("pusher:subscription_error").await;
    let error = client.recv_event("pusher:error").await;
    for frame in [&refusal, &error] {
        assert!(
            frame.to_string().len() < 1024,
            "{} bytes",
            frame.to_string().len()
        );
    }
    let quoted = refusal["channel"].as_str().unwrap();
    assert_eq!(quoted, format!("{}…", "a".repeat(164)));

    client.send(json!({"event": name, "data": {}})).await;
    let unknown = client.recv_event("pusher:error").await;
    assert!(unknown.to_string().len() < 1024);
    assert!(
        unknown["data"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Unsupported event: aaa")
    );

    client
        .send(json!({"event": "client-x", "channel": name, "data": {}}))
        .await;
    let not_subscribed = client.recv_event("pusher:error").await;
    assert!(not_subscribed.to_string().len() < 1024);
    assert!(
        not_subscribed["data"]["message"]
            .as_str()
            .unwrap()
            .contains("not subscribed to aaa")
    );
    client.assert_nothing_pending().await;
}

/// A server whose byte bound (64 KiB) is the only one a client can reach: 10,000,000 frames.
fn byte_bound_server() -> TestServer {
    logging_server(&config_with(
        "outbound_queue_size = 10000000\noutbound_queue_bytes = 65536",
        "",
    ))
}

/// Whether the server's log says a connection was closed because its client fell behind.
fn closed_as_behind(log: &Path) -> bool {
    std::fs::read_to_string(log).is_ok_and(|log| {
        log.lines()
            .any(|line| CLOSED_AS_BEHIND.iter().all(|part| line.contains(part)))
    })
}

/// Sends refused subscriptions (two error frames of ~350 bytes each) and never reads, until
/// the server's log (`log`) says it closed the connection because the client fell behind, or
/// 400,000 have been sent; whether it did. The kernel's socket buffers hold a few MB before
/// the server's writer is refused bytes; the byte bound then ends the connection within
/// 64 KiB more, and the server stops reading. A write that waits is checked against the log
/// every 500 ms (at most 20 times) and otherwise carried on, never cut in half.
async fn provoke_errors_without_reading(socket: &mut RawWebSocket, log: &Path) -> bool {
    let name = format!("{}!", "x".repeat(163));
    let request = json!({"event": "pusher:subscribe", "data": {"channel": name}});
    let request = frame(true, TEXT, request.to_string().as_bytes());
    for _ in 0..400_000 {
        let mut write = std::pin::pin!(socket.try_write(&request));
        let mut written = false;
        for _ in 0..20 {
            match tokio::time::timeout(Duration::from_millis(500), &mut write).await {
                Ok(true) => {
                    written = true;
                    break;
                }
                Ok(false) => return closed_as_behind(log),
                Err(_) if closed_as_behind(log) => return true,
                Err(_) => continue,
            }
        }
        if !written {
            return closed_as_behind(log);
        }
    }
    closed_as_behind(log)
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_with_4100_at_the_byte_bound() {
    let server = byte_bound_server();
    let mut socket = RawWebSocket::connect_with_receive_buffer(server.port, 4096).await;
    // Why the server stopped reading: its log names the connection's ending. (The 4100 close
    // frame waits behind megabytes of errors in the kernel's buffers, which this client never
    // reads; tests/lifecycle.rs reads one after an overflow of the frame bound, the same path.)
    assert!(
        provoke_errors_without_reading(&mut socket, &server.log_path()).await,
        "not closed as over capacity"
    );
    assert_quiet_log(&server);
}

#[tokio::test]
async fn a_burst_into_a_socket_with_room_is_not_cut_short() {
    // One trigger to 20 channels of 10 KB each is 200 KB at once, three times the byte bound;
    // the loopback socket takes it all, so the client is never behind. (A burst larger than
    // the bound plus what the socket takes does close a client: the README says so.)
    let server = TestServer::start_with(&config_with("outbound_queue_bytes = 65536", ""));
    let mut client = Client::connect(&server).await;
    let channels: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    for channel in &channels {
        client.subscribe(channel).await;
    }
    let body = json!({"name": "big", "channels": channels, "data": "x".repeat(10_000)});
    assert_eq!(common::http::trigger(&server, body).await.status, 200);
    for _ in 0..20 {
        client.recv_event("big").await;
    }
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn subscriptions_past_max_channels_per_connection_are_refused_and_the_connection_stays() {
    let server = TestServer::start_with(&config_with("", "max_channels_per_connection = 3"));
    let mut client = Client::connect(&server).await;
    // The user channel a sign-in joins is not one of the three.
    client.sign_in("alice").await;
    for channel in ["a", "b", "c"] {
        client.subscribe(channel).await;
    }
    let reply = client.subscribe_with("d", None, None).await;
    assert_eq!(reply["event"], "pusher:subscription_error", "{reply}");
    assert_eq!(reply["channel"], "d");
    assert_eq!(reply["data"]["type"], "LimitReached");
    assert_eq!(reply["data"]["status"], 403);
    let error = client.recv_event("pusher:error").await;
    assert!(
        error["data"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 3")
    );
    // A channel already joined is acknowledged again; leaving one makes room.
    client.subscribe("a").await;
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "c"}}))
        .await;
    client.subscribe("d").await;
}

#[tokio::test]
async fn an_oversized_http_head_is_refused_without_a_log_line() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = logging_server(&common::default_config());
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(1024 * 1024)
    );
    // The server may stop reading (and close) before the whole head is written.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(common::TIMEOUT, stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    assert_quiet_log(&server);
}

/// Hostile clients of every kind above, run at once against the server at `port`; each
/// asserts the answer it gets.
async fn attack(port: u16, log: std::path::PathBuf) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5 {
        // An unsigned body declared and never sent: 401 at once.
        tasks.spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            let head = format!(
                "POST /apps/{}/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1048575\r\n\r\n",
                common::APP_ID
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut response = [0u8; 12];
            tokio::time::timeout(common::TIMEOUT, stream.read_exact(&mut response))
                .await
                .expect("no answer")
                .unwrap();
            assert_eq!(&response, b"HTTP/1.1 401");
        });
    }
    tasks.spawn(async move {
        for _ in 0..5 {
            let mut socket = RawWebSocket::connect(port).await;
            socket.write(&frame_header(true, TEXT, 1 << 40)).await;
            assert_eq!(socket.close_code(4).await, 1009);
        }
    });
    tasks.spawn(async move {
        let mut socket = RawWebSocket::connect_with_receive_buffer(port, 4096).await;
        assert!(provoke_errors_without_reading(&mut socket, &log).await);
    });
    tasks.spawn(async move {
        // 65,000-character names: each refusal quotes under 1 KB of them.
        let mut socket = RawWebSocket::connect(port).await;
        let request = json!({"event": "pusher:subscribe", "data": {"channel": "x".repeat(65_000)}});
        let request = frame(true, TEXT, request.to_string().as_bytes());
        socket.next_frame().await.expect("connection_established");
        for _ in 0..20 {
            socket.write(&request).await;
            for _ in 0..2 {
                let (_, payload) = socket.next_frame().await.expect("an error frame");
                assert!(payload.len() < 1024, "{} bytes", payload.len());
            }
        }
    });
    while let Some(done) = tasks.join_next().await {
        done.expect("an attacker's assertion failed");
    }
}

#[tokio::test]
async fn a_subscriber_receives_every_event_while_hostile_clients_attack() {
    let server = byte_bound_server();
    let mut subscriber = Client::connect(&server).await;
    subscriber.subscribe("news").await;
    let attackers = tokio::spawn(attack(server.port, server.log_path()));
    for index in 0..100 {
        let body = json!({"name": "tick", "channel": "news", "data": index.to_string()});
        assert_eq!(common::http::trigger(&server, body).await.status, 200);
        let event = subscriber.recv_event("tick").await;
        assert_eq!(event["data"], index.to_string());
    }
    attackers.await.unwrap();
    subscriber.assert_nothing_pending().await;
    assert_quiet_log(&server);
}
