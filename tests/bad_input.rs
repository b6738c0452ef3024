//! Malformed input gets a clear error and the connection stays open; only a WebSocket-level
//! violation closes it, with the RFC 6455 code: 1009 for an oversized message, 1007 for text
//! that is not UTF-8.

mod common;

use common::{Client, TestServer};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame, Utf8Bytes};

/// A raw frame: `first` says whether it opens a message (text) or continues one.
fn fragment(payload: &[u8], first: bool, last: bool) -> Message {
    let opcode = if first { Data::Text } else { Data::Continue };
    Message::Frame(Frame::message(payload.to_vec(), OpCode::Data(opcode), last))
}

async fn error_then_still_served(client: &mut Client, needle: &str) {
    let error = client.recv_event("pusher:error").await;
    let message = error["data"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn malformed_json_is_an_error_not_a_disconnect() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    for text in [
        "{",
        "not json",
        "[1,2]",
        "42",
        r#"{"event": 5}"#,
        r#"{"data":{}}"#,
    ] {
        client.send_text(text).await;
        error_then_still_served(&mut client, "Invalid message").await;
    }
}

#[tokio::test]
async fn unknown_pusher_events_are_errors() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send(json!({"event": "pusher:teleport", "data": {}}))
        .await;
    error_then_still_served(&mut client, "Unsupported event: pusher:teleport").await;
    client.send(json!({"event": "hello"})).await;
    error_then_still_served(&mut client, "Unsupported event: hello").await;
}

#[tokio::test]
async fn missing_or_mistyped_fields_are_errors() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let frames = [
        json!({"event": "pusher:subscribe"}),
        json!({"event": "pusher:subscribe", "data": {}}),
        json!({"event": "pusher:subscribe", "data": {"channel": 7}}),
        json!({"event": "pusher:subscribe", "data": "not an object"}),
        json!({"event": "pusher:unsubscribe", "data": []}),
        json!({"event": "client-x", "data": {}}),
        json!({"event": "client-x", "channel": "private-a"}),
    ];
    for frame in frames {
        client.send(frame).await;
        error_then_still_served(&mut client, "Invalid").await;
    }
}

#[tokio::test]
async fn subscribe_data_may_be_a_json_string() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send(json!({"event": "pusher:subscribe", "data": "{\"channel\":\"news\"}"}))
        .await;
    client
        .recv_event("pusher_internal:subscription_succeeded")
        .await;
}

#[tokio::test]
async fn binary_frames_are_refused_but_the_connection_stays() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send_message(Message::Binary(vec![1, 2, 3].into()))
        .await;
    error_then_still_served(&mut client, "Binary frames are not supported").await;
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let config = common::default_config()
        .replace("[server]\n", "[server]\nmax_frame_size = 2048\n")
        + "max_event_size = 1024\n";
    let server = TestServer::start_with(&config);
    let mut client = Client::connect(&server).await;
    client
        .send_text(&format!(r#"{{"event":"x","data":"{}"}}"#, "y".repeat(1900)))
        .await;
    error_then_still_served(&mut client, "Unsupported event").await; // under the limit: served
    client
        .send_text(&format!(r#"{{"event":"x","data":"{}"}}"#, "y".repeat(3000)))
        .await;
    let error = client.recv_event("pusher:error").await;
    assert_eq!(error["data"]["message"], "Message too large");
    assert_eq!(client.expect_close().await, 1009);
}

#[tokio::test]
async fn the_default_frame_limit_is_64_kib() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send_text(&format!(
            r#"{{"event":"x","data":"{}"}}"#,
            "y".repeat(60_000)
        ))
        .await;
    error_then_still_served(&mut client, "Unsupported event").await;
    client
        .send_text(&format!(
            r#"{{"event":"x","data":"{}"}}"#,
            "y".repeat(66_000)
        ))
        .await;
    assert_eq!(client.expect_close().await, 1009);
}

#[tokio::test]
async fn a_fragmented_message_is_joined_and_served() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let text = br#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#;
    let (a, rest) = text.split_at(10);
    let (b, c) = rest.split_at(20);
    client.send_message(fragment(a, true, false)).await;
    client.send_message(fragment(b, false, false)).await;
    client.send_message(fragment(c, false, true)).await;
    let reply = client
        .recv_event("pusher_internal:subscription_succeeded")
        .await;
    assert_eq!(reply["channel"], "news");
}

#[tokio::test]
async fn a_fragmented_message_over_the_limit_closes_with_1009() {
    let config = common::default_config()
        .replace("[server]\n", "[server]\nmax_frame_size = 2048\n")
        + "max_event_size = 1024\n";
    let server = TestServer::start_with(&config);
    let mut client = Client::connect(&server).await;
    // Each fragment is under the limit; together they are not.
    let chunk = vec![b'y'; 1500];
    client
        .send_message(fragment(b"{\"event\":\"x\",\"data\":\"", true, false))
        .await;
    client.send_message(fragment(&chunk, false, false)).await;
    client.send_message(fragment(&chunk, false, true)).await;
    let error = client.recv_event("pusher:error").await;
    assert_eq!(error["data"]["message"], "Message too large");
    assert_eq!(client.expect_close().await, 1009);
}

#[tokio::test]
async fn text_that_is_not_utf8_closes_with_1007() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send_message(fragment(b"{\"event\":\"\xff\"}", true, true))
        .await;
    client.recv_event("pusher:error").await;
    assert_eq!(client.expect_close().await, 1007);
    client.expect_disconnect().await;
}

#[tokio::test]
async fn a_websocket_ping_is_answered_with_its_payload() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send_message(Message::Ping(b"are you there".to_vec().into()))
        .await;
    match client.next_message().await {
        Message::Pong(payload) => assert_eq!(&payload[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn the_clients_close_frame_is_echoed() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send_message(Message::Close(Some(CloseFrame {
            code: CloseCode::Away,
            reason: Utf8Bytes::from_static("bye"),
        })))
        .await;
    assert_eq!(client.expect_close().await, 1001);
    client.expect_disconnect().await;
}
