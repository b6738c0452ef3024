//! Keep-alive: `pusher:ping`/`pong`, WebSocket pings, idle pings and the 4201 close.

mod common;

use common::{Client, TestServer};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn quick_keepalive_config() -> String {
    common::default_config().replace("[server]\n", "[server]\npong_timeout = 1\n")
        + "activity_timeout = 1\n"
}

#[tokio::test]
async fn pusher_ping_is_answered_with_pusher_pong() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send(json!({"event": "pusher:ping", "data": {}}))
        .await;
    let pong = client.recv_event("pusher:pong").await;
    assert_eq!(pong["data"], json!({}));
}

#[tokio::test]
async fn websocket_pings_are_answered() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send_message(Message::Ping(b"hello".to_vec().into()))
        .await;
    match client.next_message().await {
        Message::Pong(payload) => assert_eq!(&payload[..], b"hello"),
        other => panic!("expected a pong, got {other:?}"),
    }
}

#[tokio::test]
async fn an_idle_client_is_pinged_then_closed_with_4201_without_a_reply() {
    let server = TestServer::start_with(&quick_keepalive_config());
    let mut client = Client::connect(&server).await;
    client.recv_event("pusher:ping").await;
    let error = client.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4201);
    assert_eq!(client.expect_close().await, 4201);
}

#[tokio::test]
async fn answering_the_ping_keeps_the_connection_open() {
    let server = TestServer::start_with(&quick_keepalive_config());
    let mut client = Client::connect(&server).await;
    for _ in 0..2 {
        client.recv_event("pusher:ping").await;
        client
            .send(json!({"event": "pusher:pong", "data": {}}))
            .await;
    }
    // Still served: a third idle period brings a third ping, not a close.
    client.recv_event("pusher:ping").await;
}
