//! Subscription counts (app opt-in `enable_subscription_count`): subscribers of a
//! non-presence channel are told its count when a connection joins or leaves, at most once per
//! 5 s above 100 subscribers, without losing the last change.

mod common;

use std::time::Duration;

use common::{Client, TestServer, decode_data};

fn counting_server() -> TestServer {
    TestServer::start_with(&(common::default_config() + "enable_subscription_count = true\n"))
}

/// The next frame, asserted to be a subscription count for `channel`; returns the count.
async fn next_count(client: &mut Client, channel: &str) -> u64 {
    let frame = client
        .recv_event("pusher_internal:subscription_count")
        .await;
    assert_eq!(frame["channel"], channel);
    decode_data(&frame)["subscription_count"]
        .as_u64()
        .expect("numeric subscription_count")
}

#[tokio::test]
async fn counts_are_off_unless_the_app_asks_for_them() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client.subscribe("room").await;
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn every_subscriber_hears_each_join_and_leave() {
    let server = counting_server();
    let mut watcher = Client::connect(&server).await;
    watcher.subscribe("room").await;
    assert_eq!(next_count(&mut watcher, "room").await, 1);

    let mut second = Client::connect(&server).await;
    second.subscribe("room").await;
    assert_eq!(next_count(&mut second, "room").await, 2);
    assert_eq!(next_count(&mut watcher, "room").await, 2);

    // Subscribing again changes nothing and is not announced.
    second.subscribe("room").await;
    second.assert_nothing_pending().await;

    second
        .send(serde_json::json!({"event": "pusher:unsubscribe", "data": {"channel": "room"}}))
        .await;
    assert_eq!(next_count(&mut watcher, "room").await, 1);

    let mut third = Client::connect(&server).await;
    third.subscribe("room").await;
    assert_eq!(next_count(&mut watcher, "room").await, 2);
    third.close().await;
    assert_eq!(
        next_count(&mut watcher, "room").await,
        1,
        "a disconnect is a leave"
    );
    watcher.assert_nothing_pending().await;
}

#[tokio::test]
async fn presence_channels_have_no_subscription_count() {
    let server = counting_server();
    let mut client = Client::connect(&server).await;
    client
        .join_presence("presence-room", r#"{"user_id":"u1"}"#)
        .await;
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn above_100_subscribers_changes_are_batched_into_one_announcement_per_window() {
    let server = counting_server();
    let mut watcher = Client::connect(&server).await;
    watcher.subscribe("big").await;
    assert_eq!(next_count(&mut watcher, "big").await, 1);
    let mut others = Vec::new();
    for expected in 2..=100 {
        let mut client = Client::connect(&server).await;
        client.subscribe("big").await;
        assert_eq!(next_count(&mut watcher, "big").await, expected);
        others.push(client);
    }
    // Two more join within the quiet window that the 100th announcement opened.
    for _ in 0..2 {
        let mut client = Client::connect(&server).await;
        client.subscribe("big").await;
        others.push(client);
    }
    // Not announced at once (the ping's pong comes first)...
    watcher.assert_nothing_pending().await;
    // ...but once, at the window's end, with the count as it is then.
    // The window is 5 s; allow for a loaded machine.
    let message = watcher.next_message_within(Duration::from_secs(15)).await;
    let text = message.into_text().expect("a text frame");
    let frame: serde_json::Value = serde_json::from_str(&text).expect("JSON frame");
    assert_eq!(
        frame["event"], "pusher_internal:subscription_count",
        "{frame}"
    );
    assert_eq!(decode_data(&frame)["subscription_count"], 102);
    watcher.assert_nothing_pending().await;
}
