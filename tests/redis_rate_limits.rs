//! Rate limits counted for the cluster, with real Relay processes on one private
//! redis-server: an app's `api_requests_per_second` holds across nodes (a client spreading its
//! requests over both gets the app's rate, not twice it), and while Redis is away the limits
//! fail open with one log line, until Redis is back and they count again.

mod common;

use std::time::{Duration, Instant};

use common::http::{Response, signed_read_from};
use common::redis::RedisServer;
use common::{APP_SECRET, TestServer, default_config};

const FAIL_OPEN_LINE: &str = "rate limits cannot be counted in Redis";

/// A node on `redis` whose default app allows one API request per second.
fn start_node(redis: &RedisServer) -> TestServer {
    TestServer::start_with(&format!(
        "{}[apps.limits]\napi_requests_per_second = 1\n\n[redis]\nurl = \"{}\"\n\
         heartbeat_interval = 1\nnode_timeout = 8\n",
        default_config(),
        redis.url()
    ))
}

async fn read(node: &TestServer) -> Response {
    signed_read_from(node, "127.0.0.1", APP_SECRET).await
}

#[tokio::test]
async fn an_apps_rate_holds_across_nodes() {
    let redis = RedisServer::start();
    let (a, b) = (start_node(&redis), start_node(&redis));
    let start = Instant::now();
    let mut admitted = 0;
    let mut refused_by = [0, 0];
    for round in 0..6 {
        let node = if round % 2 == 0 { &a } else { &b };
        let response = read(node).await;
        match response.status {
            200 => admitted += 1,
            429 => {
                refused_by[round % 2] += 1;
                assert!(
                    response.header("Retry-After").is_some(),
                    "{}",
                    response.body
                );
            }
            other => panic!("{other}: {}", response.body),
        }
    }
    let elapsed = start.elapsed();
    // One at once, then one a second, for both nodes together (each node alone would admit
    // one at once).
    assert!(
        admitted <= 1 + elapsed.as_secs(),
        "{admitted} admitted in {elapsed:?}"
    );
    if elapsed < Duration::from_secs(1) {
        assert_eq!(refused_by, [2, 3], "both nodes refuse past the app's rate");
    }
}

#[tokio::test]
async fn with_redis_away_limits_fail_open_with_one_log_line_and_count_again_after() {
    let mut redis = RedisServer::start();
    let node = start_node(&redis);
    // One a second: of a few requests in a row, some are refused.
    let mut limited = None;
    for _ in 0..10 {
        let response = read(&node).await;
        if response.status == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a request refused");
    assert!(
        limited.error().contains("rate limited (app)"),
        "{}",
        limited.body
    );

    redis.stop();
    // Answered from the node's own view while Redis is away, and never limited.
    for _ in 0..5 {
        let response = read(&node).await;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    assert_eq!(
        node.log().matches(FAIL_OPEN_LINE).count(),
        1,
        "{}",
        node.log()
    );

    redis.restart();
    let start = Instant::now();
    while read(&node).await.status != 429 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "never limited again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        node.log()
            .contains("rate limits are counted in Redis again")
    );
    assert_eq!(node.log().matches(FAIL_OPEN_LINE).count(), 1);
}
