//! Presence channels: member lists, per-user add/remove, limits and clean-up.

mod common;

use common::{Client, TestServer, decode_data, presence_auth};
use serde_json::json;

const ROOM: &str = "presence-room";

fn user(id: &str, name: &str) -> String {
    json!({"user_id": id, "user_info": {"name": name}}).to_string()
}

#[tokio::test]
async fn subscription_succeeded_lists_every_member_including_self() {
    let server = TestServer::start();
    let mut alice = Client::connect(&server).await;
    let data = alice.join_presence(ROOM, &user("1", "A")).await;
    assert_eq!(
        data,
        json!({"presence": {"ids": ["1"], "hash": {"1": {"name": "A"}}, "count": 1}})
    );
    let mut bob = Client::connect(&server).await;
    let data = bob.join_presence(ROOM, &user("2", "B")).await;
    assert_eq!(data["presence"]["count"], 2);
    assert_eq!(
        data["presence"]["hash"],
        json!({"1": {"name": "A"}, "2": {"name": "B"}})
    );
    let mut ids: Vec<_> = data["presence"]["ids"].as_array().unwrap().clone();
    ids.sort_by_key(|v| v.to_string());
    assert_eq!(ids, vec![json!("1"), json!("2")]);
}

#[tokio::test]
async fn member_added_goes_to_others_and_member_removed_on_disconnect() {
    let server = TestServer::start();
    let mut alice = Client::connect(&server).await;
    alice.join_presence(ROOM, &user("1", "A")).await;
    let mut bob = Client::connect(&server).await;
    bob.join_presence(ROOM, &user("2", "B")).await;
    let added = alice.recv_event("pusher_internal:member_added").await;
    assert_eq!(added["channel"], ROOM);
    assert_eq!(
        decode_data(&added),
        json!({"user_id": "2", "user_info": {"name": "B"}})
    );
    bob.assert_nothing_pending().await; // no member_added about himself
    bob.close().await;
    let removed = alice.recv_event("pusher_internal:member_removed").await;
    assert_eq!(decode_data(&removed), json!({"user_id": "2"}));
}

#[tokio::test]
async fn a_users_second_connection_is_not_a_new_member() {
    let server = TestServer::start();
    let mut observer = Client::connect(&server).await;
    observer.join_presence(ROOM, &user("0", "O")).await;
    let mut tab1 = Client::connect(&server).await;
    tab1.join_presence(ROOM, &user("3", "C")).await;
    let added = observer.recv_event("pusher_internal:member_added").await;
    assert_eq!(decode_data(&added)["user_id"], "3");
    let mut tab2 = Client::connect(&server).await;
    let data = tab2.join_presence(ROOM, &user("3", "C")).await;
    assert_eq!(data["presence"]["count"], 2);
    tab2.assert_nothing_pending().await;
    observer.assert_nothing_pending().await; // no second member_added for "3"

    tab1.close().await; // returns once the server has cleaned up
    observer.assert_nothing_pending().await; // "3" is still present through tab2

    tab2.close().await;
    let removed = observer.recv_event("pusher_internal:member_removed").await;
    assert_eq!(decode_data(&removed), json!({"user_id": "3"}));
}

#[tokio::test]
async fn unsubscribe_removes_the_member() {
    let server = TestServer::start();
    let mut alice = Client::connect(&server).await;
    alice.join_presence(ROOM, &user("1", "A")).await;
    let mut bob = Client::connect(&server).await;
    bob.join_presence(ROOM, &user("2", "B")).await;
    alice.recv_event("pusher_internal:member_added").await;
    bob.send(json!({"event": "pusher:unsubscribe", "data": {"channel": ROOM}}))
        .await;
    let removed = alice.recv_event("pusher_internal:member_removed").await;
    assert_eq!(decode_data(&removed)["user_id"], "2");
}

#[tokio::test]
async fn numeric_user_ids_keep_their_type() {
    let server = TestServer::start();
    let mut alice = Client::connect(&server).await;
    let data = alice.join_presence(ROOM, r#"{"user_id":10}"#).await;
    assert_eq!(
        data,
        json!({"presence": {"ids": [10], "hash": {"10": null}, "count": 1}})
    );
    let mut bob = Client::connect(&server).await;
    bob.join_presence(ROOM, r#"{"user_id":11,"user_info":{"n":1}}"#)
        .await;
    let added = alice.recv_event("pusher_internal:member_added").await;
    assert_eq!(added["data"], r#"{"user_id":11,"user_info":{"n":1}}"#);
}

#[tokio::test]
async fn the_member_limit_refuses_new_users_but_not_new_tabs() {
    let config = common::default_config() + "max_presence_members = 1\n";
    let server = TestServer::start_with(&config);
    let mut alice = Client::connect(&server).await;
    alice.join_presence(ROOM, &user("1", "A")).await;
    let mut alice_tab = Client::connect(&server).await;
    alice_tab.join_presence(ROOM, &user("1", "A")).await;
    let mut bob = Client::connect(&server).await;
    let channel_data = user("2", "B");
    let auth = presence_auth(&bob.socket_id, ROOM, &channel_data);
    let reply = bob
        .subscribe_with(ROOM, Some(&auth), Some(&channel_data))
        .await;
    assert_eq!(reply["event"], "pusher:subscription_error");
    assert_eq!(reply["data"]["type"], "LimitReached");
    bob.recv_event("pusher:error").await;
    bob.assert_nothing_pending().await;
    alice.assert_nothing_pending().await; // no member_added for the refused user
}

#[tokio::test]
async fn oversized_user_info_is_refused() {
    let config = common::default_config() + "max_presence_member_size = 20\n";
    let server = TestServer::start_with(&config);
    let mut client = Client::connect(&server).await;
    let channel_data = user("1", "a name far longer than twenty bytes");
    let auth = presence_auth(&client.socket_id, ROOM, &channel_data);
    let reply = client
        .subscribe_with(ROOM, Some(&auth), Some(&channel_data))
        .await;
    assert_eq!(reply["event"], "pusher:subscription_error");
    assert_eq!(reply["data"]["type"], "LimitReached");
}

#[tokio::test]
async fn bad_presence_requests_are_subscription_errors() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    // Missing channel_data.
    let auth = presence_auth(&client.socket_id, ROOM, "");
    let reply = client.subscribe_with(ROOM, Some(&auth), None).await;
    assert_eq!(reply["data"]["type"], "BadRequest", "{reply}");
    client.recv_event("pusher:error").await;
    // Signed, but not a member description.
    for channel_data in ["not json", r#"{"user_info":{}}"#, r#"{"user_id":""}"#] {
        let auth = presence_auth(&client.socket_id, ROOM, channel_data);
        let reply = client
            .subscribe_with(ROOM, Some(&auth), Some(channel_data))
            .await;
        assert_eq!(
            reply["data"]["type"], "BadRequest",
            "{channel_data}: {reply}"
        );
        client.recv_event("pusher:error").await;
    }
    // Valid member, but the signature covers different channel_data.
    let auth = presence_auth(&client.socket_id, ROOM, &user("1", "A"));
    let reply = client
        .subscribe_with(ROOM, Some(&auth), Some(&user("2", "A")))
        .await;
    assert_eq!(reply["data"]["type"], "AuthError", "{reply}");
    client.recv_event("pusher:error").await;
    client.subscribe("still-works").await;
}

#[tokio::test]
async fn concurrent_joiners_each_learn_of_every_member_exactly_once() {
    const MEMBERS: usize = 16;
    let server = TestServer::start();
    let mut clients = Vec::new();
    for _ in 0..MEMBERS {
        clients.push(Client::connect(&server).await);
    }
    // Everyone joins at once, so joins interleave across the server's worker threads.
    let joins = clients
        .iter_mut()
        .enumerate()
        .map(|(i, client)| async move {
            let data = client.join_presence(ROOM, &user(&i.to_string(), "x")).await;
            let mut known: Vec<String> = data["presence"]["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect();
            while known.len() < MEMBERS {
                let added = decode_data(&client.recv_event("pusher_internal:member_added").await);
                let id = added["user_id"].as_str().unwrap().to_owned();
                assert!(!known.contains(&id), "member {id} was announced twice");
                known.push(id);
            }
            client.assert_nothing_pending().await;
        });
    futures_util::future::join_all(joins).await;
}
