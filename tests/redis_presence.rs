//! Presence across real Relay processes on one private redis-server: one roster for the
//! cluster, one member per user however many nodes and tabs, `member_added`/`member_removed`
//! once per user to clients and webhooks, each joiner seeing every other member exactly once
//! even when many join at once on different nodes, and a killed node's members removed and
//! announced by a survivor; a Redis restarted empty gets the roster back from the nodes, and
//! member events missed while the pub/sub connections were down are made up.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::api;
use common::redis::RedisServer;
use common::webhooks::{Received, WebhookReceiver, unsubscribe};
use common::{Client, TestServer, decode_data, default_config};
use serde_json::{Value, json};

const ROOM: &str = "presence-room";
/// Seconds by which a killed node is gone.
const NODE_TIMEOUT: u64 = 4;
/// The other tests': a node starved of CPU on a loaded machine is never taken for dead.
const RELAXED_NODE_TIMEOUT: u64 = 8;

const MEMBER_EVENTS: &str = r#"events = ["member_added", "member_removed"]"#;

fn start_node(redis: &RedisServer, app_lines: &str, node_timeout: u64) -> TestServer {
    TestServer::start_with(&format!(
        "{}{app_lines}\n\n[redis]\nurl = \"{}\"\nheartbeat_interval = 1\nnode_timeout = {node_timeout}\n",
        default_config(),
        redis.url()
    ))
}

fn with_member_webhooks(receiver: &WebhookReceiver) -> String {
    format!(
        "[[apps.webhooks]]\nurl = \"{}\"\n{MEMBER_EVENTS}\n",
        receiver.url()
    )
}

fn member(id: &str) -> String {
    json!({"user_id": id, "user_info": {"name": id}}).to_string()
}

fn added(id: &str) -> Value {
    json!({"name": "member_added", "channel": ROOM, "user_id": id})
}

fn removed(id: &str) -> Value {
    json!({"name": "member_removed", "channel": ROOM, "user_id": id})
}

/// The user ids in a `subscription_succeeded` payload, checking its count and hash agree.
fn roster_of(presence: &Value) -> BTreeSet<String> {
    let ids: BTreeSet<String> = presence["presence"]["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("string ids").to_owned())
        .collect();
    assert_eq!(presence["presence"]["count"], ids.len(), "{presence}");
    for id in &ids {
        assert_eq!(presence["presence"]["hash"][id]["name"], id.as_str());
    }
    ids
}

/// The next member event's kind and user id.
async fn member_event(client: &mut Client) -> (String, String) {
    member_event_within(client, Duration::from_secs(5)).await
}

/// The next member event's kind and user id, waiting at most `limit`.
async fn member_event_within(client: &mut Client, limit: Duration) -> (String, String) {
    let frame = client.recv_within(limit).await;
    let kind = frame["event"].as_str().unwrap_or_default().to_owned();
    assert!(kind.starts_with("pusher_internal:member_"), "{frame}");
    let user = decode_data(&frame)["user_id"].as_str().unwrap().to_owned();
    (kind, user)
}

/// `GET /channels/{ROOM}/users` on `node`.
async fn users_on(node: &TestServer) -> BTreeSet<String> {
    let response = api(node, "GET", &format!("/channels/{ROOM}/users"), &[], "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|user| user["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Two nodes; alice joins `ROOM` on the first, bob on the second, and alice hears of bob.
async fn alice_on_a_and_bob_on_b(redis: &RedisServer) -> (TestServer, TestServer, Client, Client) {
    let a = start_node(redis, "", RELAXED_NODE_TIMEOUT);
    let b = start_node(redis, "", RELAXED_NODE_TIMEOUT);
    let mut alice = Client::connect(&a).await;
    alice.join_presence(ROOM, &member("alice")).await;
    let mut bob = Client::connect(&b).await;
    bob.join_presence(ROOM, &member("bob")).await;
    assert_eq!(member_event(&mut alice).await.1, "bob");
    (a, b, alice, bob)
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

#[tokio::test]
async fn the_cluster_has_one_roster_and_announces_each_user_once() {
    let redis = RedisServer::start();
    let mut receiver = WebhookReceiver::start().await;
    let app = with_member_webhooks(&receiver);
    let a = start_node(&redis, &app, RELAXED_NODE_TIMEOUT);
    let b = start_node(&redis, &app, RELAXED_NODE_TIMEOUT);

    let mut alice = Client::connect(&a).await;
    assert_eq!(
        roster_of(&alice.join_presence(ROOM, &member("alice")).await),
        set(&["alice"])
    );
    receiver.expect_event(added("alice")).await;
    let mut bob_on_b = Client::connect(&b).await;
    let seen_by_bob = bob_on_b.join_presence(ROOM, &member("bob")).await;
    assert_eq!(roster_of(&seen_by_bob), set(&["alice", "bob"]));
    assert_eq!(
        member_event(&mut alice).await,
        ("pusher_internal:member_added".to_owned(), "bob".to_owned())
    );
    receiver.expect_event(added("bob")).await;

    // Bob's second tab, on the other node: not a new member anywhere.
    let mut bob_on_a = Client::connect(&a).await;
    let seen_by_tab = bob_on_a.join_presence(ROOM, &member("bob")).await;
    assert_eq!(roster_of(&seen_by_tab), set(&["alice", "bob"]));
    for node in [&a, &b] {
        assert_eq!(users_on(node).await, set(&["alice", "bob"]));
    }
    // Bob leaves node B but is still on node A: still a member.
    unsubscribe(&mut bob_on_b, ROOM).await;
    assert_eq!(users_on(&b).await, set(&["alice", "bob"]));
    bob_on_a.close().await;
    assert_eq!(
        member_event(&mut alice).await,
        (
            "pusher_internal:member_removed".to_owned(),
            "bob".to_owned()
        )
    );
    receiver.expect_event(removed("bob")).await;
    alice.assert_nothing_pending().await;
    assert_eq!(users_on(&b).await, set(&["alice"]));
    receiver
        .expect_nothing_within(Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn joiners_on_both_nodes_at_once_each_see_every_member_exactly_once() {
    const JOINERS: usize = 12;
    let redis = RedisServer::start();
    let nodes = [
        start_node(&redis, "", RELAXED_NODE_TIMEOUT),
        start_node(&redis, "", RELAXED_NODE_TIMEOUT),
    ];
    let mut clients = Vec::new();
    for index in 0..JOINERS {
        clients.push(Client::connect(&nodes[index % 2]).await);
    }
    // All join at once.
    let snapshots = futures_util::future::join_all(clients.iter_mut().enumerate().map(
        |(index, client)| async move {
            roster_of(
                &client
                    .join_presence(ROOM, &member(&format!("u{index}")))
                    .await,
            )
        },
    ))
    .await;
    let everyone: BTreeSet<String> = (0..JOINERS).map(|index| format!("u{index}")).collect();
    for (index, (client, mut known)) in clients.iter_mut().zip(snapshots).enumerate() {
        assert!(known.contains(&format!("u{index}")), "{known:?}");
        // Whoever is missing from the snapshot is announced, once; nobody in it is.
        while known.len() < JOINERS {
            let (kind, user) = member_event(client).await;
            assert_eq!(kind, "pusher_internal:member_added");
            assert!(
                known.insert(user.clone()),
                "u{index} was told of {user} twice"
            );
        }
        assert_eq!(known, everyone);
    }
    for client in &mut clients {
        client.assert_nothing_pending().await;
    }
}

#[tokio::test]
async fn a_killed_nodes_members_are_removed_and_announced_by_a_survivor() {
    let redis = RedisServer::start();
    let mut receiver = WebhookReceiver::start().await;
    let app = with_member_webhooks(&receiver);
    let a = start_node(&redis, &app, NODE_TIMEOUT);
    let doomed = start_node(&redis, &app, NODE_TIMEOUT);
    let mut alice = Client::connect(&a).await;
    alice.join_presence(ROOM, &member("alice")).await;
    let mut delivered = vec![receiver.expect_event(added("alice")).await];
    let mut carol = Client::connect(&doomed).await;
    carol.join_presence(ROOM, &member("carol")).await;
    delivered.push(receiver.expect_event(added("carol")).await);
    assert_eq!(member_event(&mut alice).await.1, "carol");

    let status = Command::new("kill")
        .args(["-KILL", &doomed.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let killed = Instant::now();
    // Within node_timeout of the last heartbeat; the margin is for a loaded machine.
    let limit = Duration::from_secs(NODE_TIMEOUT + 2);
    let announced = tokio::time::timeout(limit, member_event(&mut alice))
        .await
        .expect("carol's member_removed within the node timeout");
    assert_eq!(
        announced,
        (
            "pusher_internal:member_removed".to_owned(),
            "carol".to_owned()
        )
    );
    eprintln!(
        "presence clean-up: member_removed {} ms after kill -9 (node_timeout {NODE_TIMEOUT} s)",
        killed.elapsed().as_millis()
    );
    delivered.push(receiver.expect_event(removed("carol")).await);
    assert_eq!(users_on(&a).await, set(&["alice"]));
    // Nothing new. A batch the killed node had delivered but not yet marked done in its
    // journal may come again from the survivor (delivery is at least once), with its id.
    let id = |received: &Received| received.headers["x-relay-webhook-id"].clone();
    let known: Vec<String> = delivered.iter().map(id).collect();
    while let Some(again) = receiver.next_within(Duration::from_millis(1500)).await {
        assert!(
            known.contains(&id(&again)),
            "unexpected webhook: {}",
            again.body
        );
    }
}

#[tokio::test]
async fn a_redis_restarted_empty_gets_the_roster_back_from_the_nodes() {
    let mut redis = RedisServer::start();
    let (a, b, mut alice, bob) = alice_on_a_and_bob_on_b(&redis).await;

    redis.restart();
    // Each node writes its own connections back once it has reconnected.
    let started = Instant::now();
    while users_on(&a).await != set(&["alice", "bob"]) {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "roster not rebuilt: {:?}",
            users_on(&a).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Put back and announced again (a node that resubscribed first hears bob's return), and a
    // leave is announced as before.
    bob.close().await;
    let mut event = member_event(&mut alice).await;
    if event.0 == "pusher_internal:member_added" {
        assert_eq!(event.1, "bob", "only bob was put back for alice to hear of");
        event = member_event(&mut alice).await;
    }
    assert_eq!(
        event,
        (
            "pusher_internal:member_removed".to_owned(),
            "bob".to_owned()
        )
    );
    alice.assert_nothing_pending().await;
    assert_eq!(users_on(&b).await, set(&["alice"]));
}

#[tokio::test]
async fn member_events_missed_while_pub_sub_was_down_are_made_up_after_it_returns() {
    let redis = RedisServer::start();
    let (a, _b, mut alice, mut bob) = alice_on_a_and_bob_on_b(&redis).await;
    // Dave joins the roster with no announcement (one published while the nodes were
    // disconnected would be lost the same way); then every pub/sub connection is cut.
    let roster = format!("relay:app:{}:presence:{ROOM}", common::APP_ID);
    let dave = json!(["dave", {"name": "dave"}]).to_string();
    assert_eq!(redis.command(&["HSET", &roster, "dave", &dave]), "1");
    let killed: u32 = redis
        .command(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .parse()
        .expect("a count");
    assert!(killed >= 2, "both nodes' pub/sub connections: {killed}");
    let made_up = ("pusher_internal:member_added".to_owned(), "dave".to_owned());
    assert_eq!(member_event(&mut alice).await, made_up);
    assert_eq!(member_event(&mut bob).await, made_up);
    // Dave leaves, unannounced as well. A member missing from the roster read at once may
    // only not be written back yet, so leaves are made up by a second read one node timeout
    // after the reconnection.
    assert_eq!(redis.command(&["HDEL", &roster, "dave"]), "1");
    let started = Instant::now();
    let gone = (
        "pusher_internal:member_removed".to_owned(),
        "dave".to_owned(),
    );
    let within = Duration::from_secs(RELAXED_NODE_TIMEOUT + 5);
    for client in [&mut alice, &mut bob] {
        assert_eq!(member_event_within(client, within).await, gone);
    }
    assert!(started.elapsed() < within);
    alice.assert_nothing_pending().await;
    bob.assert_nothing_pending().await;
    assert_eq!(users_on(&a).await, set(&["alice", "bob"]));
}
