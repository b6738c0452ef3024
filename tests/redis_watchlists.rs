//! Watchlists across real Relay processes on one private redis-server: a watcher on one node
//! gets its users' cluster-wide state, then each online/offline transition once, however many
//! nodes and tabs a user has, and a user whose only node is killed goes offline.

mod common;

use std::process::Command;
use std::time::Duration;

use common::redis::RedisServer;
use common::{Client, TestServer, default_config, user_auth};
use serde_json::{Value, json};

/// Seconds by which a killed node is gone.
const NODE_TIMEOUT: u64 = 4;

fn start_node(redis: &RedisServer, node_timeout: u64) -> TestServer {
    TestServer::start_with(&format!(
        "{}enable_watchlist_events = true\n\n[redis]\nurl = \"{}\"\nheartbeat_interval = 1\nnode_timeout = {node_timeout}\n",
        default_config(),
        redis.url()
    ))
}

/// Signs in as `id` watching `watchlist`; returns the frame after `pusher:signin_success`.
async fn sign_in_watching(client: &mut Client, id: &str, watchlist: &[&str]) -> Value {
    let user_data = json!({"id": id, "watchlist": watchlist}).to_string();
    let auth = user_auth(&client.socket_id, &user_data);
    client
        .send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    let reply = client.recv().await;
    assert_eq!(reply["event"], "pusher:signin_success", "{reply}");
    client.recv().await
}

/// The `events` of a `pusher_internal:watchlist_events` frame.
fn events(frame: &Value) -> Value {
    assert_eq!(
        frame["event"], "pusher_internal:watchlist_events",
        "{frame}"
    );
    common::decode_data(frame)["events"].clone()
}

fn online(id: &str) -> Value {
    json!([{"name": "online", "user_ids": [id]}])
}

fn offline(id: &str) -> Value {
    json!([{"name": "offline", "user_ids": [id]}])
}

#[tokio::test]
async fn a_watcher_hears_each_users_cluster_wide_transitions_once() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis, 8), start_node(&redis, 8));
    let mut bob = Client::connect(&b).await;
    bob.sign_in("bob").await;

    let mut alice = Client::connect(&a).await;
    let initial = sign_in_watching(&mut alice, "alice", &["bob", "carol"]).await;
    assert_eq!(
        events(&initial),
        json!([
            {"name": "online", "user_ids": ["bob"]},
            {"name": "offline", "user_ids": ["carol"]}
        ])
    );
    let mut carol = Client::connect(&b).await;
    carol.sign_in("carol").await;
    assert_eq!(events(&alice.recv().await), online("carol"));
    // Carol's second tab, on alice's node: still the one transition.
    let mut carol_tab = Client::connect(&a).await;
    carol_tab.sign_in("carol").await;
    carol.close().await;
    carol_tab.assert_nothing_pending().await;
    alice.assert_nothing_pending().await;
    carol_tab.close().await;
    assert_eq!(events(&alice.recv().await), offline("carol"));
    bob.close().await;
    assert_eq!(events(&alice.recv().await), offline("bob"));
    alice.assert_nothing_pending().await;
}

#[tokio::test]
async fn a_user_on_a_killed_node_goes_offline_for_its_watchers() {
    let redis = RedisServer::start();
    let a = start_node(&redis, NODE_TIMEOUT);
    let doomed = start_node(&redis, NODE_TIMEOUT);
    let mut alice = Client::connect(&a).await;
    let initial = sign_in_watching(&mut alice, "alice", &["dave"]).await;
    assert_eq!(events(&initial), offline("dave"));
    let mut dave = Client::connect(&doomed).await;
    dave.sign_in("dave").await;
    assert_eq!(events(&alice.recv().await), online("dave"));

    let status = Command::new("kill")
        .args(["-KILL", &doomed.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let limit = Duration::from_secs(NODE_TIMEOUT + 2);
    let gone = tokio::time::timeout(limit, alice.recv())
        .await
        .expect("dave offline within the node timeout");
    assert_eq!(events(&gone), offline("dave"));
}

#[tokio::test]
async fn an_announcement_missed_while_pub_sub_was_down_is_told_after_it_returns() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis, 8), start_node(&redis, 8));
    let mut bob = Client::connect(&b).await;
    bob.sign_in("bob").await;
    let mut alice = Client::connect(&a).await;
    let initial = sign_in_watching(&mut alice, "alice", &["bob"]).await;
    assert_eq!(events(&initial), online("bob"));
    // Bob goes offline in Redis with no announcement (one sent while alice's node was
    // disconnected would be lost the same way); then every pub/sub connection is cut.
    let users = format!("relay:app:{}:users", common::APP_ID);
    assert_eq!(redis.command(&["HDEL", &users, "bob"]), "1");
    let killed: u32 = redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .parse()
        .expect("a count");
    assert!(killed >= 2, "both nodes' pub/sub connections: {killed}");
    let told = tokio::time::timeout(Duration::from_secs(10), alice.recv())
        .await
        .expect("told after the reconnection");
    assert_eq!(events(&told), offline("bob"));
    alice.assert_nothing_pending().await;
}
