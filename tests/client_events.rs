//! Client events: who may send them, who receives them, and their limits.

mod common;

use common::{APP_ID, APP_KEY, APP_SECRET, Client, TestServer};
use serde_json::json;

async fn pair_on(server: &TestServer, channel: &str) -> (Client, Client) {
    let mut sender = Client::connect(server).await;
    let mut receiver = Client::connect(server).await;
    sender.subscribe(channel).await;
    receiver.subscribe(channel).await;
    (sender, receiver)
}

async fn expect_error(client: &mut Client, needle: &str) {
    let error = client.recv_event("pusher:error").await;
    let message = error["data"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
}

#[tokio::test]
async fn client_events_reach_other_members_byte_for_byte_but_not_the_sender() {
    let server = TestServer::start();
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender
        .send_text(r#"{"event":"client-typing","channel":"private-chat","data":{"b": 1,"a":"x"}}"#)
        .await;
    let frame = receiver.next_message().await;
    assert_eq!(
        frame.into_text().unwrap().as_str(),
        r#"{"event":"client-typing","channel":"private-chat","data":{"b": 1,"a":"x"}}"#
    );
    sender.assert_nothing_pending().await;
}

#[tokio::test]
async fn presence_client_events_carry_the_senders_user_id_not_a_spoofed_one() {
    let server = TestServer::start();
    let mut sender = Client::connect(&server).await;
    let mut receiver = Client::connect(&server).await;
    sender
        .join_presence("presence-chat", r#"{"user_id":"alice"}"#)
        .await;
    receiver
        .join_presence("presence-chat", r#"{"user_id":"bob"}"#)
        .await;
    sender.recv_event("pusher_internal:member_added").await;
    sender
        .send(json!({"event": "client-hi", "channel": "presence-chat", "data": {"x": 1}, "user_id": "mallory"}))
        .await;
    let frame = receiver.recv_event("client-hi").await;
    assert_eq!(frame["user_id"], "alice");
    assert_eq!(frame["data"], json!({"x": 1}));
}

#[tokio::test]
async fn client_events_are_refused_when_the_app_disables_them() {
    let config =
        format!("[[apps]]\nid = \"{APP_ID}\"\nkey = \"{APP_KEY}\"\nsecret = \"{APP_SECRET}\"\n");
    let server = TestServer::start_with(&config);
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender.trigger("private-chat", "client-x", json!({})).await;
    expect_error(&mut sender, "not enabled").await;
    receiver.assert_nothing_pending().await;
}

#[tokio::test]
async fn client_events_are_refused_on_public_and_encrypted_channels() {
    let server = TestServer::start();
    let (mut sender, mut receiver) = pair_on(&server, "public-chat").await;
    sender.trigger("public-chat", "client-x", json!({})).await;
    expect_error(&mut sender, "only allowed on private and presence").await;
    sender.subscribe("private-encrypted-chat").await;
    receiver.subscribe("private-encrypted-chat").await;
    sender
        .trigger("private-encrypted-chat", "client-x", json!({}))
        .await;
    expect_error(&mut sender, "encrypted").await;
    sender.assert_nothing_pending().await;
    receiver.assert_nothing_pending().await;
}

#[tokio::test]
async fn client_events_are_refused_from_non_members() {
    let server = TestServer::start();
    let mut outsider = Client::connect(&server).await;
    let mut member = Client::connect(&server).await;
    member.subscribe("private-chat").await;
    outsider
        .trigger("private-chat", "client-x", json!({}))
        .await;
    expect_error(&mut outsider, "not subscribed").await;
    outsider.assert_nothing_pending().await;
    member.assert_nothing_pending().await;
}

#[tokio::test]
async fn oversized_client_events_are_refused() {
    let config = common::default_config() + "max_event_size = 100\n";
    let server = TestServer::start_with(&config);
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    sender
        .trigger("private-chat", "client-big", json!("x".repeat(100)))
        .await;
    expect_error(&mut sender, "larger than 100 bytes").await;
    sender
        .trigger("private-chat", "client-small", json!("x".repeat(90)))
        .await;
    receiver.recv_event("client-small").await;
}

#[tokio::test]
async fn client_event_names_are_held_to_the_apps_max_event_name_length() {
    let config = common::default_config() + "max_event_name_length = 20\n";
    let server = TestServer::start_with(&config);
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    let long = format!("client-{}", "n".repeat(14));
    sender.trigger("private-chat", &long, json!({})).await;
    expect_error(&mut sender, "longer than 20 characters").await;
    let short = format!("client-{}", "n".repeat(13));
    sender.trigger("private-chat", &short, json!({})).await;
    receiver.recv_event(&short).await;
}

#[tokio::test]
async fn the_rate_limit_answers_4301_without_closing() {
    let config = common::default_config() + "max_client_events_per_second = 3\n";
    let server = TestServer::start_with(&config);
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    for n in 0..4 {
        sender
            .trigger("private-chat", "client-n", json!({"n": n}))
            .await;
    }
    let error = sender.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4301);
    for n in 0..3 {
        let frame = receiver.recv_event("client-n").await;
        assert_eq!(frame["data"]["n"], n);
    }
    receiver.assert_nothing_pending().await;
    sender.assert_nothing_pending().await; // still open and served
}

#[tokio::test]
async fn the_default_rate_limit_is_ten_per_second() {
    let server = TestServer::start();
    let (mut sender, mut receiver) = pair_on(&server, "private-chat").await;
    for n in 0..11 {
        sender
            .trigger("private-chat", "client-n", json!({"n": n}))
            .await;
    }
    let error = sender.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4301);
    for n in 0..10 {
        let frame = receiver.recv_event("client-n").await;
        assert_eq!(frame["data"]["n"], n);
    }
    receiver.assert_nothing_pending().await;
}
