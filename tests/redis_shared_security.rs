//! The security state is the cluster's, with real Relay processes on one private
//! redis-server holding the state store: a token revoked by the CLI against that Redis is
//! refused by every node, and still refused while Redis is away (each node keeps its last
//! copy); a brute-force ban made on one node holds on the other; a lockdown taken on one node
//! closes the app on both, and `relay security resolve` opens it on both; and a scheduled
//! rotation due on two nodes at once is made once.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::activity::{after_the_next_sync, store_of};
use common::http::{Response, raw_request_from, signed_path_as, signed_read_from, with_token_from};
use common::redis::RedisServer;
use common::{APP_ID, APP_KEY, APP_SECRET, TestServer, api_token, default_config, relay_cli};
use relay::config::{ConfigString, RedisConfig};
use relay::store::{RedisStore, Rotated, Rotation, RotationReason, Store};

/// How long a change may take to reach a node: a few syncs (every 2 s).
const PATIENCE: Duration = Duration::from_secs(15);

/// A previous pair whose grace ended long ago (presenting it is a critical event).
const EXPIRED_PAIR: &str = "[[apps.previous_credentials]]\nkey = \"old-key\"\n\
    secret = \"old-secret\"\nvalid_until = \"2020-01-01T00:00:00Z\"\n";

/// A node of the cluster on `redis` with the default app and its extra `app_lines`.
fn start_node(redis: &RedisServer, app_lines: &str) -> TestServer {
    TestServer::start_with(&format!(
        "{}{app_lines}\n[redis]\nurl = \"{}\"\nheartbeat_interval = 1\nnode_timeout = 8\n",
        default_config(),
        redis.url()
    ))
}

/// Asks `node` with `request` until it answers `status`, within [`PATIENCE`].
async fn until_status(
    node: &TestServer,
    status: u16,
    request: impl AsyncFn(&TestServer) -> Response,
) -> Response {
    let start = Instant::now();
    loop {
        let response = request(node).await;
        if response.status == status {
            return response;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "never {status}: {} {}",
            response.status,
            response.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until_token_status(node: &TestServer, source: &str, token: &str, status: u16) {
    let start = Instant::now();
    while with_token_from(node, source, token).await != status {
        assert!(start.elapsed() < PATIENCE, "the token never got {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_revocation_by_the_cli_reaches_every_node_and_holds_while_redis_is_away() {
    let mut redis = RedisServer::start();
    let (token, block) = api_token("ci", &[]);
    let (a, b) = (start_node(&redis, &block), start_node(&redis, &block));
    assert_eq!(with_token_from(&a, "127.0.0.1", &token).await, 200);
    assert_eq!(with_token_from(&b, "127.0.0.1", &token).await, 200);

    let said = relay_cli(
        &a.config_path(),
        &["token", "revoke", "--app", APP_ID, "--name", "ci"],
    );
    assert!(said.contains("revoked"), "{said}");
    until_token_status(&a, "127.0.0.1", &token, 401).await;
    until_token_status(&b, "127.0.0.1", &token, 401).await;

    redis.stop();
    // Each node's next sync fails (and says so); the revocation it read before stays.
    for node in [&a, &b] {
        let start = Instant::now();
        while !node.log().contains("cannot sync with the state store") {
            assert!(
                start.elapsed() < PATIENCE,
                "no failed sync:\n{}",
                node.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(with_token_from(node, "127.0.0.1", &token).await, 401);
    }
    let log = a.log() + &b.log();
    assert!(!log.contains(&token), "no token in the logs");
}

#[tokio::test]
async fn a_ban_made_on_one_node_holds_on_the_other() {
    let redis = RedisServer::start();
    let rules = "[apps.security]\nban_after_failures = 3\nban_time = \"1h\"\n";
    let (a, b) = (start_node(&redis, rules), start_node(&redis, rules));
    for _ in 0..3 {
        let refused = signed_read_from(&a, "127.0.0.7", "wrong-secret").await;
        assert_eq!(refused.status, 401, "{}", refused.body);
    }
    let banned = signed_read_from(&a, "127.0.0.7", APP_SECRET).await;
    assert_eq!(banned.status, 403, "{}", banned.body);

    let read_from_banned =
        async |node: &TestServer| signed_read_from(node, "127.0.0.7", APP_SECRET).await;
    let on_b = until_status(&b, 403, read_from_banned).await;
    assert!(on_b.error().starts_with("Address banned"), "{}", on_b.body);
    let retry_after: u64 = on_b.header("Retry-After").unwrap().parse().unwrap();
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    let other = signed_read_from(&b, "127.0.0.8", APP_SECRET).await;
    assert_eq!(other.status, 200, "only that address");
}

#[tokio::test]
async fn a_lockdown_taken_on_one_node_closes_the_app_on_both_until_resolved() {
    let redis = RedisServer::start();
    let (leaked, block) = api_token("ci", &[]);
    let lines = format!("{block}{EXPIRED_PAIR}[apps.security]\nauto_lockdown = true\n");
    let (a, b) = (start_node(&redis, &lines), start_node(&redis, &lines));
    relay_cli(
        &a.config_path(),
        &["token", "revoke", "--app", APP_ID, "--name", "ci"],
    );
    until_token_status(&a, "127.0.0.2", &leaked, 401).await;
    // Three distinct critical events, all on node A: the revoked token, and the expired
    // pair's secret from two addresses.
    let path = format!("/apps/{APP_ID}/channels");
    for source in ["127.0.0.5", "127.0.0.6"] {
        let target = signed_path_as("GET", &path, &[], "", ("old-key", "old-secret"), now());
        let refused = raw_request_from(&a, source, "GET", &target, "", "").await;
        assert_eq!(refused.status, 401, "{}", refused.body);
    }
    let read = async |node: &TestServer| signed_read_from(node, "127.0.0.1", APP_SECRET).await;
    let locked = until_status(&b, 403, read).await;
    assert_eq!(locked.error(), "App is locked down");
    until_status(&a, 403, read).await;
    let store = store_of(&a);
    assert_eq!(store.lockdowns().unwrap().len(), 1, "one lockdown");

    let said = relay_cli(&b.config_path(), &["security", "resolve", "--app", APP_ID]);
    assert!(said.contains("is no longer locked down"), "{said}");
    until_status(&a, 200, read).await;
    until_status(&b, 200, read).await;
}

fn now() -> u64 {
    common::http::now()
}

#[tokio::test]
async fn a_rotation_due_on_two_nodes_is_made_once() {
    let redis = RedisServer::start();
    // Rotated 58 seconds ago on a one-minute schedule: due on both nodes two seconds in.
    let store = RedisStore::new(&RedisConfig {
        url: ConfigString::from(redis.url().as_str()),
        prefix: ConfigString::from("relay"),
        heartbeat_interval: 1,
        node_timeout: 8,
    })
    .unwrap();
    let at = SystemTime::now() - Duration::from_secs(58);
    let rotated = store.rotate(&Rotation {
        app_id: APP_ID,
        based_on: None,
        replaced: (APP_KEY, APP_SECRET),
        new_key: APP_KEY,
        new_secret: "stored-secret-1",
        at,
        replaced_valid_until: at + Duration::from_secs(3600),
        reason: RotationReason::Manual,
    });
    assert_eq!(rotated.unwrap(), Rotated::Done(1));
    let schedule = "rotation = { every = 60, grace = \"30s\" }\n";
    let (a, b) = (start_node(&redis, schedule), start_node(&redis, schedule));

    let start = Instant::now();
    let newest = loop {
        let pairs = store.credentials().unwrap();
        if let Some(newest) = pairs.iter().find(|pair| pair.generation == 2) {
            break newest.clone();
        }
        assert!(start.elapsed() < PATIENCE, "never rotated: {pairs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // Both nodes have synced since: the one that lost the race adopted the rotation.
    after_the_next_sync(&a).await;
    after_the_next_sync(&b).await;
    let generations: Vec<u64> = store
        .credentials()
        .unwrap()
        .iter()
        .map(|pair| pair.generation)
        .collect();
    assert_eq!(generations, [0, 1, 2], "one rotation");
    let pair = (newest.key.as_str(), newest.secret.as_str());
    for node in [&a, &b] {
        let target = signed_path_as(
            "GET",
            &format!("/apps/{APP_ID}/channels"),
            &[],
            "",
            pair,
            now(),
        );
        let read = async |node: &TestServer| {
            raw_request_from(node, "127.0.0.1", "GET", &target, "", "").await
        };
        until_status(node, 200, read).await;
    }
}
