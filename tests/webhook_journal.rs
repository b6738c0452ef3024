//! Webhooks that survive a crash: a batch accepted by a process that is then killed with
//! `kill -9` is delivered by another, with its `X-Relay-Webhook-Id` unchanged. On one node
//! with `webhook_durable = true` the other process is the node restarted on the same state
//! store; in a cluster it is the surviving node, through Redis.

mod common;

use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::webhooks::{Answer, OCCUPANCY, Received, WebhookReceiver, occupied};
use common::{Client, TestServer, default_config};

/// How long the batch may take to come back: the dead process's lease (6 s) running out, the
/// claimer's next claim (every 2 s), and a retry.
const PATIENCE: Duration = Duration::from_secs(20);

/// The first attempt to deliver the `channel_occupied` of `channel` (the receiver is down).
async fn first_attempt(receiver: &mut WebhookReceiver, channel: &str) -> Received {
    let attempt = receiver.next().await;
    assert_eq!(attempt.event(), occupied(channel), "{}", attempt.body);
    attempt
}

/// Waits, within [`PATIENCE`], for a request carrying the batch `id`; skips the others
/// (retries before it, other events).
async fn until_delivered(receiver: &mut WebhookReceiver, id: &str) -> Received {
    let start = Instant::now();
    loop {
        let left = PATIENCE.saturating_sub(start.elapsed());
        let received = receiver
            .next_within(left)
            .await
            .unwrap_or_else(|| panic!("batch {id} never delivered again"));
        if received.headers["x-relay-webhook-id"] == id {
            return received;
        }
    }
}

/// Waits (bounded) until `kept()` says the journal holds a batch.
async fn until_journaled(kept: impl Fn() -> usize) {
    let start = Instant::now();
    while kept() == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never journaled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_durable_single_node_delivers_after_a_kill_and_restart_with_the_same_id() {
    let mut receiver = WebhookReceiver::answering(Answer::Switchable).await;
    receiver.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    let config = format!(
        "{}webhook_durable = true\n[[apps.webhooks]]\nurl = \"{}\"\n{OCCUPANCY}\n\n[store]\npath = \"{}\"\n",
        default_config(),
        receiver.url(),
        store.display()
    );
    let node = TestServer::start_with(&config);
    let mut client = Client::connect(&node).await;
    client.subscribe("news").await;
    let attempt = first_attempt(&mut receiver, "news").await;
    let id = attempt.headers["x-relay-webhook-id"].clone();
    until_journaled(|| kept_in_file(&store)).await;
    node.kill_9();

    receiver.set_down(false);
    let _restarted = TestServer::start_with(&config);
    let delivered = until_delivered(&mut receiver, &id).await;
    delivered.assert_signed();
    assert_eq!(delivered.event(), occupied("news"));
    let start = Instant::now();
    while kept_in_file(&store) != 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "never forgotten");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Batches the SQLite journal at `path` keeps.
fn kept_in_file(path: &std::path::Path) -> usize {
    let Ok(connection) = rusqlite::Connection::open(path) else {
        return 0;
    };
    connection
        .query_row("SELECT COUNT(*) FROM webhook_journal", [], |row| {
            row.get::<_, i64>(0)
        })
        .map_or(0, |count| count as usize)
}

#[tokio::test]
async fn a_batch_held_by_a_killed_node_is_delivered_by_the_survivor_with_the_same_id() {
    let redis = RedisServer::start();
    let mut receiver = WebhookReceiver::answering(Answer::Switchable).await;
    receiver.set_down(true);
    let config = format!(
        "{}[[apps.webhooks]]\nurl = \"{}\"\n{OCCUPANCY}\n\n[redis]\nurl = \"{}\"\n\
         heartbeat_interval = 1\nnode_timeout = 8\n",
        default_config(),
        receiver.url(),
        redis.url()
    );
    let doomed = TestServer::start_with(&config);
    let survivor = TestServer::start_with(&config);
    let mut client = Client::connect(&doomed).await;
    client.subscribe("news").await;
    let attempt = first_attempt(&mut receiver, "news").await;
    let id = attempt.headers["x-relay-webhook-id"].clone();
    until_journaled(|| kept_in_redis(&redis)).await;
    doomed.kill_9();

    receiver.set_down(false);
    let delivered = until_delivered(&mut receiver, &id).await;
    delivered.assert_signed();
    assert_eq!(delivered.event(), occupied("news"));
    assert!(
        survivor
            .log()
            .contains("delivering the webhook batches of a process that died"),
        "{}",
        survivor.log()
    );
}

/// Batches the Redis journal keeps, whoever owns them.
fn kept_in_redis(redis: &RedisServer) -> usize {
    redis
        .command(&["KEYS", "relay:store:webhooks:*"])
        .lines()
        .filter(|key| !key.is_empty())
        .map(|key| redis.command(&["HLEN", key]).parse::<usize>().unwrap_or(0))
        .sum()
}
