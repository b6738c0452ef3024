//! The cluster's shared state with real Relay processes on one private redis-server: the
//! HTTP API answers for every node, an app's `max_connections` holds across the cluster,
//! occupancy webhooks fire once per cluster transition, and a node killed with `kill -9` is
//! cleaned up by exactly one survivor within `node_timeout`, and subscription counts are the
//! cluster's.

mod common;

use std::time::{Duration, Instant};

use common::http::api;
use common::redis::RedisServer;
use common::webhooks::{OCCUPANCY, WebhookReceiver, occupied, unsubscribe, vacated};
use common::{Client, TestServer, default_config};
use serde_json::Value;

/// Seconds by which a killed node is gone in the node-loss test.
const NODE_TIMEOUT: u64 = 4;
/// The node timeout of the other tests: long enough that a node starved of CPU on a loaded
/// machine is never taken for dead (which would add a vacate and an occupy to their webhooks).
const RELAXED_NODE_TIMEOUT: u64 = 8;

fn start_node(redis: &RedisServer, app_lines: &str) -> TestServer {
    start_node_timing_out(redis, app_lines, RELAXED_NODE_TIMEOUT)
}

fn start_node_timing_out(redis: &RedisServer, app_lines: &str, node_timeout: u64) -> TestServer {
    TestServer::start_with(&format!(
        "{}{app_lines}\n\n[redis]\nurl = \"{}\"\nheartbeat_interval = 1\nnode_timeout = {node_timeout}\n",
        default_config(),
        redis.url()
    ))
}

/// The app `lines` with one webhook endpoint at `receiver` for occupancy events.
fn with_occupancy_webhooks(receiver: &WebhookReceiver, lines: &str) -> String {
    format!(
        "{lines}\n[[apps.webhooks]]\nurl = \"{}\"\n{OCCUPANCY}\n",
        receiver.url()
    )
}

/// `GET /channels` of the default app on `node`: channel → subscription count.
async fn channels(node: &TestServer) -> Vec<(String, u64)> {
    let response = api(
        node,
        "GET",
        "/channels",
        &[("info", "subscription_count")],
        "",
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let mut found: Vec<(String, u64)> = response.json()["channels"]
        .as_object()
        .expect("channels")
        .iter()
        .map(|(name, info)| (name.clone(), info["subscription_count"].as_u64().unwrap()))
        .collect();
    found.sort();
    found
}

/// Asks until `GET /channels` on `node` answers `expected` (bounded: counts are written to
/// Redis just after each change); returns how long it took.
async fn wait_for_channels(
    node: &TestServer,
    expected: &[(&str, u64)],
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    let expected: Vec<(String, u64)> = expected
        .iter()
        .map(|(name, count)| ((*name).to_owned(), *count))
        .collect();
    loop {
        let found = channels(node).await;
        if found == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "GET /channels still {found:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn the_http_api_answers_for_the_whole_cluster() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis, ""), start_node(&redis, ""));
    let mut on_a = Client::connect(&a).await;
    let mut on_b = Client::connect(&b).await;
    let mut also_on_b = Client::connect(&b).await;
    on_a.subscribe("shared").await;
    on_b.subscribe("shared").await;
    also_on_b.subscribe("only-b").await;
    let expected = [("only-b", 1), ("shared", 2)];
    wait_for_channels(&a, &expected, Duration::from_secs(5)).await;
    wait_for_channels(&b, &expected, Duration::from_secs(5)).await;
    let one = api(
        &a,
        "GET",
        "/channels/only-b",
        &[("info", "subscription_count")],
        "",
    )
    .await;
    assert_eq!(one.json()["occupied"], Value::Bool(true), "{}", one.body);
    assert_eq!(one.json()["subscription_count"], 1);
    unsubscribe(&mut also_on_b, "only-b").await;
    wait_for_channels(&a, &[("shared", 2)], Duration::from_secs(5)).await;
}

#[tokio::test]
async fn max_connections_is_the_apps_quota_across_the_cluster() {
    let redis = RedisServer::start();
    let app = "max_connections = 2";
    let (a, b) = (start_node(&redis, app), start_node(&redis, app));
    let _on_a = Client::connect(&a).await;
    let on_b = Client::connect(&b).await;
    for node in [&a, &b] {
        let mut refused =
            Client::from_socket(common::open(&node.ws_url("/app/app-key?protocol=7")).await);
        let error = refused.recv_event("pusher:error").await;
        assert_eq!(error["data"]["code"], 4004, "{error}");
    }
    on_b.close().await;
    // The place is free once node B has written its count (bounded retries).
    let started = Instant::now();
    loop {
        let mut client =
            Client::from_socket(common::open(&a.ws_url("/app/app-key?protocol=7")).await);
        if client.recv().await["event"] == "pusher:connection_established" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never admitted again"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn occupancy_webhooks_fire_once_per_cluster_transition() {
    let redis = RedisServer::start();
    let mut receiver = WebhookReceiver::start().await;
    let app = with_occupancy_webhooks(&receiver, "webhook_vacate_delay_ms = 0");
    let (a, b) = (start_node(&redis, &app), start_node(&redis, &app));
    let mut on_a = Client::connect(&a).await;
    let mut on_b = Client::connect(&b).await;
    on_a.subscribe("news").await;
    receiver.expect_event(occupied("news")).await;
    on_b.subscribe("news").await;
    // Node A's subscriber leaves while node B's stays: the channel is still occupied.
    unsubscribe(&mut on_a, "news").await;
    wait_for_channels(&a, &[("news", 1)], Duration::from_secs(5)).await;
    unsubscribe(&mut on_b, "news").await;
    receiver.expect_event(vacated("news")).await;
    receiver
        .expect_nothing_within(Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn a_killed_node_is_cleaned_up_once_within_the_node_timeout() {
    let redis = RedisServer::start();
    let mut receiver = WebhookReceiver::start().await;
    let app = with_occupancy_webhooks(
        &receiver,
        "max_connections = 3\nwebhook_vacate_delay_ms = 0",
    );
    let (a, b, doomed) = (
        start_node_timing_out(&redis, &app, NODE_TIMEOUT),
        start_node_timing_out(&redis, &app, NODE_TIMEOUT),
        start_node_timing_out(&redis, &app, NODE_TIMEOUT),
    );
    let mut on_a = Client::connect(&a).await;
    on_a.subscribe("stays").await;
    receiver.expect_event(occupied("stays")).await;
    let mut first = Client::connect(&doomed).await;
    let mut second = Client::connect(&doomed).await;
    first.subscribe("stays").await;
    second.subscribe("goes").await;
    receiver.expect_event(occupied("goes")).await;
    wait_for_channels(&b, &[("goes", 1), ("stays", 2)], Duration::from_secs(5)).await;

    doomed.kill_9();
    let killed = Instant::now();
    // Gone within node_timeout of the last heartbeat; the margin is for a loaded machine.
    let limit = Duration::from_secs(NODE_TIMEOUT + 2);
    wait_for_channels(&b, &[("stays", 1)], limit).await;
    let cleaned_after = killed.elapsed();
    eprintln!(
        "node-loss clean-up: {} ms after kill -9 (node_timeout {NODE_TIMEOUT} s)",
        cleaned_after.as_millis()
    );
    // Exactly one survivor raised it, once.
    receiver.expect_event(vacated("goes")).await;
    receiver
        .expect_nothing_within(Duration::from_millis(1500))
        .await;
    let cleanups = [&a, &b]
        .iter()
        .map(|node| {
            node.log()
                .matches("removed a node that stopped heartbeating")
                .count()
        })
        .sum::<usize>();
    assert_eq!(cleanups, 1, "A:\n{}\nB:\n{}", a.log(), b.log());
    // The dead node's two connections left the quota: two more fit beside node A's one.
    let _again = Client::connect(&b).await;
    let _and_again = Client::connect(&a).await;
}

#[tokio::test]
async fn the_vacate_delay_is_cancelled_by_a_subscriber_on_another_node() {
    let redis = RedisServer::start();
    let mut receiver = WebhookReceiver::start().await;
    let app = with_occupancy_webhooks(&receiver, "webhook_vacate_delay_ms = 1000");
    let (a, b) = (start_node(&redis, &app), start_node(&redis, &app));
    let mut on_a = Client::connect(&a).await;
    let mut on_b = Client::connect(&b).await;
    on_a.subscribe("news").await;
    receiver.expect_event(occupied("news")).await;
    unsubscribe(&mut on_a, "news").await;
    // Back within the delay, on the other node: neither vacated nor occupied again.
    on_b.subscribe("news").await;
    receiver
        .expect_nothing_within(Duration::from_millis(1800))
        .await;
    unsubscribe(&mut on_b, "news").await;
    let left = Instant::now();
    receiver.expect_event(vacated("news")).await;
    assert!(
        left.elapsed() >= Duration::from_millis(900),
        "vacated before its delay"
    );
    receiver
        .expect_nothing_within(Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn a_stopped_node_leaves_at_once_and_a_survivor_raises_its_waiting_vacate() {
    let redis = RedisServer::start();
    let mut receiver = WebhookReceiver::start().await;
    let app = with_occupancy_webhooks(&receiver, "webhook_vacate_delay_ms = 500");
    let (a, mut leaving) = (start_node(&redis, &app), start_node(&redis, &app));
    let mut on_a = Client::connect(&a).await;
    on_a.subscribe("stays").await;
    receiver.expect_event(occupied("stays")).await;
    let mut on_leaving = Client::connect(&leaving).await;
    on_leaving.subscribe("goes").await;
    receiver.expect_event(occupied("goes")).await;
    wait_for_channels(&a, &[("goes", 1), ("stays", 1)], Duration::from_secs(5)).await;

    leaving.terminate();
    assert!(
        leaving.wait_for_exit(Duration::from_secs(15)),
        "no graceful exit"
    );
    // Gone well before its node_timeout (8 s) would have removed it.
    let took = wait_for_channels(&a, &[("stays", 1)], Duration::from_secs(3)).await;
    eprintln!(
        "a stopping node left the cluster's counts {} ms after its exit",
        took.as_millis()
    );
    assert!(
        leaving.log().contains("left the cluster"),
        "{}",
        leaving.log()
    );
    // Its vacate waited out the delay with nobody left to confirm it: node A's sweep raised it.
    receiver.expect_event(vacated("goes")).await;
    receiver
        .expect_nothing_within(Duration::from_millis(1000))
        .await;
}

/// The next frame, asserted to be a subscription count for `room`; returns the count.
async fn next_count(client: &mut Client) -> u64 {
    let frame = client
        .recv_event("pusher_internal:subscription_count")
        .await;
    assert_eq!(frame["channel"], "room", "{frame}");
    common::decode_data(&frame)["subscription_count"]
        .as_u64()
        .expect("numeric subscription_count")
}

#[tokio::test]
async fn subscription_counts_are_the_clusters() {
    let redis = RedisServer::start();
    let app = "enable_subscription_count = true";
    let (a, b) = (start_node(&redis, app), start_node(&redis, app));
    let mut on_a = Client::connect(&a).await;
    on_a.subscribe("room").await;
    assert_eq!(next_count(&mut on_a).await, 1);
    let mut on_b = Client::connect(&b).await;
    on_b.subscribe("room").await;
    assert_eq!(next_count(&mut on_b).await, 2);
    assert_eq!(next_count(&mut on_a).await, 2);
    let mut also_on_b = Client::connect(&b).await;
    also_on_b.subscribe("room").await;
    for client in [&mut also_on_b, &mut on_b, &mut on_a] {
        assert_eq!(next_count(client).await, 3);
    }
    unsubscribe(&mut on_a, "room").await;
    for client in [&mut on_b, &mut also_on_b] {
        assert_eq!(next_count(client).await, 2);
    }
    for client in [&mut on_a, &mut on_b, &mut also_on_b] {
        client.assert_nothing_pending().await;
    }
}
