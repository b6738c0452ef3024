//! User sign-in (`pusher:signin`) and events sent to a user through the HTTP API
//! (`#server-to-user-<id>`, the official SDKs' `sendToUser`).

mod common;

use common::http::{api, trigger};
use common::{Client, TestServer, user_auth};
use serde_json::{Value, json};

async fn signin_with(client: &mut Client, auth: &str, user_data: &str) -> Value {
    client
        .send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    client.recv().await
}

async fn expect_signin_refused(client: &mut Client, auth: &str, user_data: &str, needle: &str) {
    let reply = signin_with(client, auth, user_data).await;
    assert_eq!(reply["event"], "pusher:error", "{reply}");
    assert_eq!(reply["data"]["code"], 4009);
    let message = reply["data"]["message"].as_str().unwrap();
    assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_correctly_signed_signin_succeeds_and_echoes_user_data() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client.sign_in("42").await;
    // Signing in again as the same user is fine.
    client.sign_in("42").await;
}

#[tokio::test]
async fn refused_signins_are_errors_that_keep_the_connection() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let user_data = r#"{"id":"42"}"#;
    let foreign = user_auth("1.2", user_data);
    expect_signin_refused(&mut client, &foreign, user_data, "signature").await;
    let no_id = r#"{"name":"x"}"#;
    let auth = user_auth(&client.socket_id, no_id);
    expect_signin_refused(&mut client, &auth, no_id, "\"id\"").await;
    let numeric = r#"{"id":42}"#;
    let auth = user_auth(&client.socket_id, numeric);
    expect_signin_refused(&mut client, &auth, numeric, "\"id\"").await;

    client.sign_in("42").await;
    let other = r#"{"id":"43"}"#;
    let auth = user_auth(&client.socket_id, other);
    expect_signin_refused(&mut client, &auth, other, "already signed in as user 42").await;
}

#[tokio::test]
async fn a_watchlist_over_100_ids_is_cut_with_4302() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let ids: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let user_data = json!({"id": "me", "watchlist": ids}).to_string();
    let auth = user_auth(&client.socket_id, &user_data);
    let reply = signin_with(&mut client, &auth, &user_data).await;
    assert_eq!(reply["event"], "pusher:signin_success");
    let error = client.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4302);
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn events_sent_to_a_user_reach_every_connection_of_that_user_only() {
    let server = TestServer::start();
    let mut tab_one = Client::connect(&server).await;
    let mut tab_two = Client::connect(&server).await;
    let mut someone_else = Client::connect(&server).await;
    let mut anonymous = Client::connect(&server).await;
    tab_one.sign_in("alice").await;
    tab_two.sign_in("alice").await;
    someone_else.sign_in("bob").await;

    let response = trigger(
        &server,
        json!({"name": "greeting", "channel": "#server-to-user-alice", "data": "{\"hi\":1}"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    for tab in [&mut tab_one, &mut tab_two] {
        let frame = tab.recv_event("greeting").await;
        assert_eq!(frame["channel"], "#server-to-user-alice");
        assert_eq!(frame["data"], "{\"hi\":1}");
    }
    someone_else.assert_nothing_pending().await;
    anonymous.assert_nothing_pending().await;

    // The user channels are not listed as channels.
    let listed = api(&server, "GET", "/channels", &[], "").await;
    assert_eq!(listed.json(), json!({"channels": {}}), "{}", listed.body);
}

#[tokio::test]
async fn only_the_signed_in_user_may_subscribe_to_its_user_channel() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let reply = client
        .subscribe_with("#server-to-user-alice", None, None)
        .await;
    assert_eq!(reply["event"], "pusher:subscription_error", "{reply}");
    client.recv_event("pusher:error").await;

    client.sign_in("alice").await;
    // pusher-js subscribes to its own user channel after signing in: acknowledged.
    let reply = client
        .subscribe_with("#server-to-user-alice", None, None)
        .await;
    assert_eq!(
        reply["event"], "pusher_internal:subscription_succeeded",
        "{reply}"
    );
    let reply = client
        .subscribe_with("#server-to-user-bob", None, None)
        .await;
    assert_eq!(reply["event"], "pusher:subscription_error", "{reply}");
}

#[tokio::test]
async fn terminating_a_user_closes_its_signed_in_connections_with_4009() {
    let server = TestServer::start();
    let mut tab_one = Client::connect(&server).await;
    let mut tab_two = Client::connect(&server).await;
    let mut bob = Client::connect(&server).await;
    let mut presence_only = Client::connect(&server).await;
    tab_one.sign_in("alice").await;
    tab_two.sign_in("alice").await;
    bob.sign_in("bob").await;
    presence_only
        .join_presence("presence-room", r#"{"user_id":"alice"}"#)
        .await;

    let response = api(
        &server,
        "POST",
        "/users/alice/terminate_connections",
        &[],
        "{}",
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({}));
    for tab in [&mut tab_one, &mut tab_two] {
        let error = tab.recv_event("pusher:error").await;
        assert_eq!(error["data"]["code"], 4009);
        assert_eq!(tab.expect_close().await, 4009);
    }
    // Another user, and a connection that only joined presence as "alice", stay.
    bob.assert_nothing_pending().await;
    presence_only.assert_nothing_pending().await;

    // A terminated user can connect and sign in again.
    let mut again = Client::connect(&server).await;
    again.sign_in("alice").await;
}

#[tokio::test]
async fn with_user_authentication_on_a_connection_must_authorize_itself_in_time() {
    let config = common::default_config()
        + "enable_user_authentication = true\nuser_authentication_timeout = 1\n";
    let server = TestServer::start_with(&config);
    // Opened first, so their deadlines have passed once the last one is closed.
    let mut signed_in = Client::connect(&server).await;
    signed_in.sign_in("alice").await;
    let mut private = Client::connect(&server).await;
    private.subscribe("private-room").await;
    let mut public_only = Client::connect(&server).await;
    public_only.subscribe("news").await;
    let mut idle = Client::connect(&server).await;

    for client in [&mut public_only, &mut idle] {
        let error = client.recv_event("pusher:error").await;
        assert_eq!(error["data"]["code"], 4009);
        assert_eq!(client.expect_close().await, 4009);
    }
    signed_in.assert_nothing_pending().await;
    private.assert_nothing_pending().await;
}

/// Signs in as `id` watching `watchlist`; returns the frame after `pusher:signin_success`.
async fn signin_watching(client: &mut Client, id: &str, watchlist: &[&str]) -> Value {
    let user_data = json!({"id": id, "watchlist": watchlist}).to_string();
    let auth = user_auth(&client.socket_id, &user_data);
    let reply = signin_with(client, &auth, &user_data).await;
    assert_eq!(reply["event"], "pusher:signin_success", "{reply}");
    client.recv().await
}

/// The `events` of a `pusher_internal:watchlist_events` frame.
fn watchlist_events(frame: &Value) -> Value {
    assert_eq!(
        frame["event"], "pusher_internal:watchlist_events",
        "{frame}"
    );
    common::decode_data(frame)["events"].clone()
}

#[tokio::test]
async fn watchers_get_the_initial_state_then_each_online_and_offline_change() {
    let config = common::default_config() + "enable_watchlist_events = true\n";
    let server = TestServer::start_with(&config);
    let mut bob = Client::connect(&server).await;
    bob.sign_in("bob").await;

    let mut alice = Client::connect(&server).await;
    let initial = signin_watching(&mut alice, "alice", &["bob", "carol"]).await;
    assert_eq!(
        watchlist_events(&initial),
        json!([
            {"name": "online", "user_ids": ["bob"]},
            {"name": "offline", "user_ids": ["carol"]}
        ])
    );

    let mut carol = Client::connect(&server).await;
    carol.sign_in("carol").await;
    let change = alice.recv().await;
    assert_eq!(
        watchlist_events(&change),
        json!([{"name": "online", "user_ids": ["carol"]}])
    );
    // A second connection of a user already online changes nothing.
    let mut carol_again = Client::connect(&server).await;
    carol_again.sign_in("carol").await;
    alice.assert_nothing_pending().await;

    bob.close().await;
    let change = alice.recv().await;
    assert_eq!(
        watchlist_events(&change),
        json!([{"name": "offline", "user_ids": ["bob"]}])
    );
    // carol goes offline only with her last connection; a termination counts.
    carol.close().await;
    alice.assert_nothing_pending().await;
    let response = api(
        &server,
        "POST",
        "/users/carol/terminate_connections",
        &[],
        "{}",
    )
    .await;
    assert_eq!(response.status, 200);
    let change = alice.recv().await;
    assert_eq!(
        watchlist_events(&change),
        json!([{"name": "offline", "user_ids": ["carol"]}])
    );
}

#[tokio::test]
async fn without_the_app_switch_a_watchlist_gets_no_events() {
    let server = TestServer::start();
    let mut alice = Client::connect(&server).await;
    let user_data = json!({"id": "alice", "watchlist": ["bob"]}).to_string();
    let auth = user_auth(&alice.socket_id, &user_data);
    let reply = signin_with(&mut alice, &auth, &user_data).await;
    assert_eq!(reply["event"], "pusher:signin_success");
    let mut bob = Client::connect(&server).await;
    bob.sign_in("bob").await;
    alice.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_signed_in_connection_keeps_its_user_channel_even_if_it_unsubscribes() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    client.sign_in("alice").await;
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": "#server-to-user-alice"}}))
        .await;
    client.assert_nothing_pending().await;
    let response = trigger(
        &server,
        json!({"name": "still-here", "channel": "#server-to-user-alice", "data": "{}"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    client.recv_event("still-here").await;
}
