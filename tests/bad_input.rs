//! Malformed input gets a clear error and the connection stays open; only a WebSocket-level
//! violation (an oversized message) closes it, with 1009.

mod common;

use common::{Client, TestServer};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

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
