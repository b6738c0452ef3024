//! Public, private and encrypted channel subscriptions, name rules and unsubscription.

mod common;

use common::{APP_KEY, Client, TestServer, private_auth, sign};
use serde_json::{Value, json};

/// The reference's §9 app: key 278d425bdf160c739803, secret 7ad3773142a6692b25b8.
const VECTOR_KEY: &str = "278d425bdf160c739803";
const VECTOR_SECRET: &str = "7ad3773142a6692b25b8";

/// Asserts a subscription refusal: the channel-scoped error, then a `pusher:error`.
async fn assert_refused(client: &mut Client, reply: Value, channel: &str, kind: &str, status: u64) {
    assert_eq!(reply["event"], "pusher:subscription_error", "{reply}");
    assert_eq!(reply["channel"], channel);
    assert_eq!(reply["data"]["type"], kind);
    assert_eq!(reply["data"]["status"], status);
    let error = client.recv_event("pusher:error").await;
    assert!(
        error["data"]["message"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
}

#[tokio::test]
async fn public_channels_need_no_auth() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let reply = client.subscribe_with("news", None, None).await;
    assert_eq!(
        reply,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "news", "data": "{}"})
    );
}

#[tokio::test]
async fn pusher_js_style_empty_auth_on_public_channels_is_fine() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let reply = client.subscribe_with("news", Some(""), None).await;
    assert_eq!(reply["event"], "pusher_internal:subscription_succeeded");
}

#[tokio::test]
async fn the_reference_signature_vectors_hold() {
    // The test-side signer reproduces the reference vectors, so live subscriptions signed with
    // it below prove the server agrees with the reference algorithm.
    assert_eq!(
        sign(VECTOR_SECRET, "1234.1234:private-foobar"),
        "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
    );
    assert_eq!(
        sign(
            VECTOR_SECRET,
            r#"1234.1234:presence-foobar:{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#
        ),
        "afaed3695da2ffd16931f457e338e6c9f2921fa133ce7dac49f529792be6304c"
    );
    let config =
        format!("[[apps]]\nid = \"3\"\nkey = \"{VECTOR_KEY}\"\nsecret = \"{VECTOR_SECRET}\"\n");
    let server = TestServer::start_with(&config);
    let mut client = Client::connect_to(&server, VECTOR_KEY).await;
    let private = format!(
        "{VECTOR_KEY}:{}",
        sign(
            VECTOR_SECRET,
            &format!("{}:private-foobar", client.socket_id)
        )
    );
    let reply = client
        .subscribe_with("private-foobar", Some(&private), None)
        .await;
    assert_eq!(
        reply["event"], "pusher_internal:subscription_succeeded",
        "{reply}"
    );
    let channel_data = r#"{"user_id":10,"user_info":{"name":"Mr. Pusher"}}"#;
    let presence = format!(
        "{VECTOR_KEY}:{}",
        sign(
            VECTOR_SECRET,
            &format!("{}:presence-foobar:{channel_data}", client.socket_id)
        )
    );
    let reply = client
        .subscribe_with("presence-foobar", Some(&presence), Some(channel_data))
        .await;
    assert_eq!(
        reply["event"], "pusher_internal:subscription_succeeded",
        "{reply}"
    );
}

#[tokio::test]
async fn private_channel_accepts_a_valid_signature() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let auth = private_auth(&client.socket_id, "private-a");
    let reply = client.subscribe_with("private-a", Some(&auth), None).await;
    assert_eq!(
        reply,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "private-a", "data": "{}"})
    );
}

#[tokio::test]
async fn private_channel_rejects_bad_signature_and_keeps_the_connection() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let signed_for_other_channel = private_auth(&client.socket_id, "private-b");
    let reply = client
        .subscribe_with("private-a", Some(&signed_for_other_channel), None)
        .await;
    assert_refused(&mut client, reply.clone(), "private-a", "AuthError", 401).await;
    let text = reply.to_string();
    let expected = private_auth(&client.socket_id, "private-a");
    let expected_signature = expected.split_once(':').unwrap().1;
    assert!(
        !text.contains(expected_signature),
        "reply leaks the expected signature"
    );
    assert!(
        !text.contains(&client.socket_id),
        "reply leaks the string to sign"
    );
    client.subscribe("news").await;
}

#[tokio::test]
async fn private_channel_rejects_missing_malformed_and_foreign_key_auth() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let good = private_auth(&client.socket_id, "private-a");
    let foreign_key = good.replacen(APP_KEY, "other-key", 1);
    let cases = [
        None,
        Some("no-colon"),
        Some(":abc"),
        Some(foreign_key.as_str()),
        Some("app-key:zz"),
    ];
    for auth in cases {
        let reply = client.subscribe_with("private-a", auth, None).await;
        assert_refused(&mut client, reply, "private-a", "AuthError", 401).await;
    }
}

#[tokio::test]
async fn private_cache_channels_still_require_a_signature() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let reply = client
        .subscribe_with("private-cache-a", Some("app-key:00"), None)
        .await;
    assert_refused(&mut client, reply, "private-cache-a", "AuthError", 401).await;
}

#[tokio::test]
async fn encrypted_channels_authorise_like_private_channels() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let reply = client
        .subscribe_with("private-encrypted-a", Some("app-key:00"), None)
        .await;
    assert_refused(&mut client, reply, "private-encrypted-a", "AuthError", 401).await;
    client.subscribe("private-encrypted-a").await;
}

#[tokio::test]
async fn channel_name_rules_are_enforced() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    for name in ["bad name", "bad*name", "#reserved", ""] {
        let reply = client.subscribe_with(name, None, None).await;
        assert_refused(&mut client, reply, name, "BadRequest", 400).await;
    }
    // A name over the limit is quoted cut to the limit, with a marker.
    let too_long = "a".repeat(165);
    let reply = client.subscribe_with(&too_long, None, None).await;
    let quoted = format!("{}…", "a".repeat(164));
    assert_refused(&mut client, reply, &quoted, "BadRequest", 400).await;
    client.subscribe(&"a".repeat(164)).await;
    client.subscribe("a-Z_0=9@,.;").await;
}

#[tokio::test]
async fn max_channel_name_length_is_configurable() {
    let config = common::default_config() + "max_channel_name_length = 10\n";
    let server = TestServer::start_with(&config);
    let mut client = Client::connect(&server).await;
    client.subscribe("abcdefghij").await;
    let reply = client.subscribe_with("abcdefghijk", None, None).await;
    assert_refused(&mut client, reply, "abcdefghij…", "BadRequest", 400).await;
}

#[tokio::test]
async fn resubscribing_is_acknowledged_again() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client.subscribe("private-a").await;
    client.subscribe("private-a").await;
}

#[tokio::test]
async fn unsubscribed_clients_stop_receiving_events() {
    let server = TestServer::start();
    let mut sender = Client::connect(&server).await;
    let mut receiver = Client::connect(&server).await;
    for client in [&mut sender, &mut receiver] {
        client.subscribe("private-a").await;
        client.subscribe("private-b").await;
    }
    receiver
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "private-a"}}))
        .await;
    // The ping round-trip proves the unsubscribe was processed before the next trigger.
    receiver.assert_nothing_pending().await;
    sender
        .trigger("private-a", "client-x", json!({"n": 1}))
        .await;
    sender
        .trigger("private-b", "client-x", json!({"n": 2}))
        .await;
    let frame = receiver.recv_event("client-x").await;
    assert_eq!(
        frame["channel"], "private-b",
        "event on an unsubscribed channel arrived"
    );
}

#[tokio::test]
async fn unsubscribing_an_unknown_channel_is_ignored() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "never"}}))
        .await;
    client.assert_nothing_pending().await;
}
