//! Several real Relay processes on one private redis-server: what one node publishes reaches
//! the subscribers of the others exactly once, with the publisher's exclusion, in order; a
//! subscription acknowledged on one node catches a publish made on another right after it;
//! losing Redis leaves each node serving its own clients, `/ready` saying so, until Redis is
//! back and the subscriptions are restored; and a cache channel's last event is the cluster's.

mod common;

use std::time::Duration;

use common::http::{api, raw_request, trigger};
use common::redis::RedisServer;
use common::{Client, TestServer, default_config};
use serde_json::json;

/// The default test config on `redis`.
fn node_config(redis: &RedisServer) -> String {
    format!(
        "{}\n[redis]\nurl = \"{}\"\nheartbeat_interval = 1\nnode_timeout = 3\n",
        default_config(),
        redis.url()
    )
}

fn start_node(redis: &RedisServer) -> TestServer {
    TestServer::start_with(&node_config(redis))
}

/// Waits (bounded) until `GET /ready` answers `status`.
async fn wait_for_ready_status(node: &TestServer, status: u16) {
    for _ in 0..200 {
        if raw_request(node, "GET", "/ready", "").await.status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/ready never answered {status}:\n{}", node.log());
}

async fn trigger_on(node: &TestServer, channel: &str, event: &str, socket_id: Option<&str>) {
    let mut body = json!({"name": event, "channels": [channel], "data": event});
    if let Some(socket_id) = socket_id {
        body["socket_id"] = json!(socket_id);
    }
    let response = trigger(node, body).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn an_event_triggered_on_one_node_reaches_every_node_once_with_the_exclusion() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    let mut on_a = Client::connect(&a).await;
    let mut on_b = Client::connect(&b).await;
    let mut excluded = Client::connect(&b).await;
    for client in [&mut on_a, &mut on_b, &mut excluded] {
        client.subscribe("news").await;
    }
    let excluded_id = excluded.socket_id.clone();
    trigger_on(&a, "news", "first", Some(&excluded_id)).await;
    trigger_on(&a, "news", "second", None).await;
    for client in [&mut on_a, &mut on_b] {
        assert_eq!(client.recv().await["event"], "first");
        assert_eq!(client.recv().await["event"], "second");
    }
    // In order from one publisher: the excluded socket's next event is the second one.
    assert_eq!(excluded.recv().await["event"], "second");
    // Exactly once: nothing more is on its way on either node (a third event from node A,
    // published after the others, is the next frame everywhere).
    trigger_on(&a, "news", "third", None).await;
    for client in [&mut on_a, &mut on_b, &mut excluded] {
        assert_eq!(client.recv().await["event"], "third");
    }
}

#[tokio::test]
async fn an_acknowledged_subscription_never_misses_a_publish_from_another_node() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    let mut client = Client::connect(&b).await;
    // Each channel is new to node B, so each subscription waits for Redis's acknowledgement;
    // the publish on node A follows the greeting at once.
    for round in 0..25 {
        let channel = format!("fresh-{round}");
        client.subscribe(&channel).await;
        trigger_on(&a, &channel, "right-after", None).await;
        let event = client.recv().await;
        assert_eq!(
            (event["event"].as_str(), event["channel"].as_str()),
            (Some("right-after"), Some(channel.as_str())),
            "round {round}: {event}"
        );
    }
}

#[tokio::test]
async fn client_events_cross_nodes_and_skip_their_sender() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    let mut sender = Client::connect(&a).await;
    let mut receiver = Client::connect(&b).await;
    for client in [&mut sender, &mut receiver] {
        client.subscribe("private-room").await;
    }
    sender
        .trigger("private-room", "client-hello", json!({"n": 1}))
        .await;
    let event = receiver.recv().await;
    assert_eq!(event["event"], "client-hello", "{event}");
    assert_eq!(event["data"], json!({"n": 1}));
    // The sender gets nothing back; node A's own subscribers are not served twice.
    sender.assert_nothing_pending().await;
}

#[tokio::test]
async fn without_redis_each_node_serves_its_own_clients_and_recovers_when_it_returns() {
    let mut redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    wait_for_ready_status(&a, 200).await;
    let mut on_a = Client::connect(&a).await;
    let mut on_b = Client::connect(&b).await;
    on_a.subscribe("news").await;
    on_b.subscribe("news").await;

    redis.stop();
    wait_for_ready_status(&a, 503).await;
    let ready = raw_request(&a, "GET", "/ready", "").await;
    assert_eq!(ready.error(), "Redis unavailable");
    // Local delivery goes on; a new subscription is served at once.
    trigger_on(&a, "news", "local", None).await;
    assert_eq!(on_a.recv().await["event"], "local");
    on_a.subscribe("while-away").await;
    trigger_on(&a, "while-away", "still-local", None).await;
    assert_eq!(on_a.recv().await["event"], "still-local");
    assert_eq!(
        a.log().matches("lost Redis").count(),
        1,
        "logged once:\n{}",
        a.log()
    );

    redis.restart();
    wait_for_ready_status(&a, 200).await;
    wait_for_ready_status(&b, 200).await;
    // B's subscription is restored on the new connection before /ready is 200 again, but its
    // SUBSCRIBE may still be on the way: publish until one arrives (bounded), then check that
    // each later publish arrives exactly once and in order.
    let mut arrived = false;
    for attempt in 0..50 {
        trigger_on(&a, "news", &format!("probe-{attempt}"), None).await;
        assert_eq!(on_a.recv().await["event"], format!("probe-{attempt}"));
        if let Ok(frame) = tokio::time::timeout(Duration::from_millis(100), on_b.recv()).await {
            assert!(
                frame["event"].as_str().unwrap().starts_with("probe-"),
                "{frame}"
            );
            arrived = true;
            break;
        }
    }
    assert!(arrived, "node B never heard node A again:\n{}", b.log());
    // Drain any probe still in flight, then one marker event proves the link is whole.
    trigger_on(&a, "news", "after", None).await;
    loop {
        let frame = on_b.recv().await;
        if frame["event"] == "after" {
            break;
        }
        assert!(
            frame["event"].as_str().unwrap().starts_with("probe-"),
            "{frame}"
        );
    }
    assert!(a.log().contains("Redis is reachable again"), "{}", a.log());
}

#[tokio::test]
async fn a_node_starts_and_serves_while_redis_is_away_and_never_logs_the_password() {
    let mut redis = RedisServer::start();
    redis.stop();
    let url = format!("redis://:hunter2@127.0.0.1:{}", redis.port());
    let config = format!("{}\n[redis]\nurl = \"{url}\"\n", default_config());
    let node = TestServer::start_with(&config);
    let ready = raw_request(&node, "GET", "/ready", "").await;
    assert_eq!(ready.status, 503);
    let mut client = Client::connect(&node).await;
    client.subscribe("news").await;
    trigger_on(&node, "news", "hello", None).await;
    assert_eq!(client.recv().await["event"], "hello");
    let channels = api(&node, "GET", "/channels", &[], "").await;
    assert_eq!(channels.status, 200);
    redis.restart();
    assert_eq!(
        redis.command(&["CONFIG", "SET", "requirepass", "hunter2"]),
        "OK"
    );
    wait_for_ready_status(&node, 200).await;
    let log = node.log();
    assert_eq!(log.matches("cannot reach Redis").count(), 1, "{log}");
    assert!(
        log.contains(&format!("127.0.0.1:{}", redis.port())),
        "{log}"
    );
    assert!(!log.contains("hunter2"), "the password was logged:\n{log}");
}

#[tokio::test]
async fn terminate_connections_on_one_node_closes_the_users_connections_on_every_node() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    let mut alice_on_b = Client::connect(&b).await;
    alice_on_b.sign_in("alice").await;
    let mut bob_on_b = Client::connect(&b).await;
    bob_on_b.sign_in("bob").await;
    let response = api(&a, "POST", "/users/alice/terminate_connections", &[], "{}").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let error = alice_on_b.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4009);
    assert_eq!(alice_on_b.expect_close().await, 4009);
    bob_on_b.assert_nothing_pending().await;
}

#[tokio::test]
async fn an_event_sent_to_a_user_reaches_the_users_connections_on_every_node() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    let mut tab_on_a = Client::connect(&a).await;
    let mut tab_on_b = Client::connect(&b).await;
    let mut bob_on_b = Client::connect(&b).await;
    tab_on_a.sign_in("alice").await;
    tab_on_b.sign_in("alice").await;
    bob_on_b.sign_in("bob").await;
    trigger_on(&a, "#server-to-user-alice", "greeting", None).await;
    for tab in [&mut tab_on_a, &mut tab_on_b] {
        let frame = tab.recv().await;
        assert_eq!(frame["event"], "greeting", "{frame}");
        assert_eq!(frame["channel"], "#server-to-user-alice");
    }
    // Bob gets nothing; a later event to him is his next frame (ordered behind any stray one).
    trigger_on(&a, "#server-to-user-bob", "for-bob", None).await;
    assert_eq!(bob_on_b.recv().await["event"], "for-bob");
}

#[tokio::test]
async fn a_cache_channels_last_event_is_the_clusters() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    let mut watcher_on_b = Client::connect(&b).await;
    watcher_on_b.subscribe("cache-news").await;
    assert_eq!(
        watcher_on_b.recv().await["event"],
        "pusher:cache_miss",
        "nothing cached yet"
    );
    trigger_on(&a, "cache-news", "first", None).await;
    assert_eq!(watcher_on_b.recv_event("first").await["data"], "first");

    // A node that never saw the channel greets its first subscriber with the cluster's event.
    let c = start_node(&redis);
    let mut late_on_c = Client::connect(&c).await;
    late_on_c.subscribe("cache-news").await;
    assert_eq!(late_on_c.recv_event("first").await["data"], "first");

    // Published on B: every subscriber, the publisher's node's included, gets it once.
    let mut on_b = Client::connect(&b).await;
    on_b.subscribe("cache-news").await;
    on_b.recv_event("first").await;
    trigger_on(&b, "cache-news", "second", None).await;
    for client in [&mut watcher_on_b, &mut late_on_c, &mut on_b] {
        assert_eq!(client.recv_event("second").await["data"], "second");
    }
    for client in [&mut watcher_on_b, &mut late_on_c, &mut on_b] {
        client.assert_nothing_pending().await;
    }
    let info = api(&a, "GET", "/channels/cache-news", &[("info", "cache")], "").await;
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.json()["cache"]["data"], "second", "{}", info.body);
}
