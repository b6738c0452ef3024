//! `[apps.limits]` against the real server: the app's API limit holds under concurrent
//! requests and answers 429 with `Retry-After` and the RateLimit headers naming the limit;
//! per-address limits keep addresses apart; reads have their own limit; a WebSocket over its
//! address's connection rate, or over its connections open at once, gets `pusher:error` and
//! close 4100, and a place comes back when a connection ends. The daily message quota counts
//! each subscriber reached, refuses triggers, batches (429 until midnight UTC) and client
//! events (4301) once reached, and keeps its count across restarts on one store file.
//! (Exactness with an injected clock and with threads racing, and midnight, are in the unit
//! tests of `guard::limits`.)

mod common;

use common::http::{Response, now, raw_request_from, signed_path, signed_read_from};
use common::{APP_ID, APP_SECRET, TestServer, default_config};
use serde_json::json;

fn limited(lines: &str) -> String {
    format!("{}[apps.limits]\n{lines}", default_config())
}

/// A signed trigger from `source`.
async fn write_from(server: &TestServer, source: &str) -> Response {
    let path = format!("/apps/{APP_ID}/events");
    let body = json!({"name": "e", "channels": ["c"], "data": "x"}).to_string();
    let target = signed_path("POST", &path, &[], &body, APP_SECRET, now());
    raw_request_from(server, source, "POST", &target, &body, "").await
}

fn assert_limited(response: &Response, scope: &str, per_second: u32) {
    assert_eq!(response.status, 429, "{}", response.body);
    let unit = match scope {
        "connections" => "connections",
        "events" => "events",
        _ => "requests",
    };
    assert_eq!(
        response.error(),
        format!("rate limited ({scope}): {per_second} {unit} per 1s")
    );
    let retry_after: u64 = response.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.header("RateLimit-Policy"),
        Some(format!("\"{scope}\";q={per_second};w=1").as_str())
    );
    assert_eq!(
        response.header("RateLimit"),
        Some(format!("\"{scope}\";r=0;t={retry_after}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_limit_holds_under_concurrent_requests() {
    let server = std::sync::Arc::new(TestServer::start_with(&limited(
        "api_requests_per_second = 2\n",
    )));
    let started = std::time::Instant::now();
    let requests: Vec<_> = (0..12)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move { signed_read_from(&server, "127.0.0.1", APP_SECRET).await })
        })
        .collect();
    let mut admitted = 0;
    for request in requests {
        let response = request.await.unwrap();
        if response.status == 200 {
            admitted += 1;
        } else {
            assert_limited(&response, "app", 2);
        }
    }
    // A burst of one second's worth; one more cell comes back every 500 ms of the run.
    let refills = (started.elapsed().as_millis() / 500) as usize;
    assert!(
        (2..=2 + refills).contains(&admitted),
        "{admitted} admitted in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn per_address_limits_keep_addresses_apart_and_reads_have_their_own() {
    let server = TestServer::start_with(&limited(
        "api_requests_per_second_per_ip = 1\nread_requests_per_second = 2\n",
    ));
    assert_eq!(
        signed_read_from(&server, "127.0.0.2", APP_SECRET)
            .await
            .status,
        200
    );
    assert_limited(
        &signed_read_from(&server, "127.0.0.2", APP_SECRET).await,
        "address",
        1,
    );
    assert_limited(&write_from(&server, "127.0.0.2").await, "address", 1);
    assert_eq!(
        signed_read_from(&server, "127.0.0.3", APP_SECRET)
            .await
            .status,
        200
    );
    assert_limited(
        &signed_read_from(&server, "127.0.0.4", APP_SECRET).await,
        "reads",
        2,
    );
    assert_eq!(
        write_from(&server, "127.0.0.5").await.status,
        200,
        "a write is not a read"
    );
}

#[tokio::test]
async fn a_websocket_over_its_addresss_connection_rate_gets_4100() {
    let server = TestServer::start_with(&limited("connections_per_second_per_ip = 1\n"));
    let path = "/app/app-key?protocol=7";
    let mut first =
        common::Client::from_socket(common::open_from(&server, "127.0.0.6", path, &[]).await);
    assert_eq!(first.recv().await["event"], "pusher:connection_established");
    let mut second =
        common::Client::from_socket(common::open_from(&server, "127.0.0.6", path, &[]).await);
    let error = second.recv().await;
    assert_eq!(error["event"], "pusher:error");
    assert_eq!(error["data"]["code"], 4100);
    assert_eq!(
        error["data"]["message"],
        "rate limited (connections): 1 connections per 1s"
    );
    assert_eq!(second.expect_close().await, 4100);
    let mut other =
        common::Client::from_socket(common::open_from(&server, "127.0.0.7", path, &[]).await);
    assert_eq!(other.recv().await["event"], "pusher:connection_established");
}

#[tokio::test]
async fn connections_open_at_once_per_address_are_bounded_and_given_back() {
    let server = TestServer::start_with(&limited("connections_per_ip = 2\n"));
    let path = "/app/app-key?protocol=7";
    let open = || common::open_from(&server, "127.0.0.8", path, &[]);
    let mut first = common::Client::from_socket(open().await);
    assert_eq!(first.recv().await["event"], "pusher:connection_established");
    let mut second = common::Client::from_socket(open().await);
    assert_eq!(
        second.recv().await["event"],
        "pusher:connection_established"
    );
    let mut third = common::Client::from_socket(open().await);
    let error = third.recv().await;
    assert_eq!(error["data"]["code"], 4100);
    assert_eq!(
        error["data"]["message"],
        "too many connections (address): 2 open at once"
    );
    assert_eq!(third.expect_close().await, 4100);
    let mut elsewhere =
        common::Client::from_socket(common::open_from(&server, "127.0.0.9", path, &[]).await);
    assert_eq!(
        elsewhere.recv().await["event"],
        "pusher:connection_established"
    );
    // A place comes back when a connection ends (the server notices the close at once).
    first.close().await;
    let start = std::time::Instant::now();
    loop {
        let mut again = common::Client::from_socket(open().await);
        if again.recv().await["event"] == "pusher:connection_established" {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the place never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn events_are_counted_per_channel_and_refused_whole() {
    let server = TestServer::start_with(&limited("events_per_second = 3\n"));
    let mut client = common::Client::connect(&server).await;
    client.subscribe("a").await;
    let two = json!({"name": "e", "channels": ["a", "b"], "data": "x"});
    assert_eq!(
        common::http::trigger(&server, two.clone()).await.status,
        200
    );
    assert_eq!(client.recv_event("e").await["channel"], "a");
    let refused = common::http::trigger(&server, two).await;
    assert_limited(&refused, "events", 3);
    let batch = json!({"batch": [
        {"name": "e", "channel": "a", "data": "1"},
        {"name": "e", "channel": "a", "data": "2"},
        {"name": "e", "channel": "a", "data": "3"},
        {"name": "e", "channel": "a", "data": "4"},
    ]});
    let refused =
        common::http::api(&server, "POST", "/batch_events", &[], &batch.to_string()).await;
    assert_limited(&refused, "events", 3);
    client.assert_nothing_pending().await;
}

/// Waits out the last seconds of a UTC day, so that a quota test never sees midnight reset
/// its count halfway.
async fn clear_of_midnight() {
    let into_day = now() % 86_400;
    if into_day > 86_400 - 20 {
        tokio::time::sleep(std::time::Duration::from_secs(86_400 - into_day + 1)).await;
    }
}

fn assert_over_daily_quota(response: &Response, per_day: u32) {
    assert_eq!(response.status, 429, "{}", response.body);
    assert_eq!(
        response.error(),
        format!("quota exceeded (daily messages): {per_day} messages per day")
    );
    let retry_after: u64 = response.header("Retry-After").unwrap().parse().unwrap();
    let until_midnight = 86_400 - now() % 86_400;
    assert!((1..=86_400).contains(&retry_after), "{retry_after}");
    assert!(
        retry_after.abs_diff(until_midnight) <= 2,
        "{retry_after} s, but midnight UTC is {until_midnight} s away"
    );
    assert_eq!(
        response.header("RateLimit-Policy"),
        Some(format!("\"daily\";q={per_day};w=86400").as_str())
    );
    assert_eq!(
        response.header("RateLimit"),
        Some(format!("\"daily\";r=0;t={retry_after}").as_str())
    );
}

/// A trigger of event `e` on `channel` with `data`.
async fn trigger_on(server: &TestServer, channel: &str, data: &str) -> Response {
    common::http::trigger(
        server,
        json!({"name": "e", "channels": [channel], "data": data}),
    )
    .await
}

#[tokio::test]
async fn the_daily_quota_counts_deliveries_and_refuses_publishes_once_reached() {
    clear_of_midnight().await;
    let server = TestServer::start_with(&limited("daily_messages = 6\n"));
    let mut alice = common::Client::connect(&server).await;
    let mut bob = common::Client::connect(&server).await;
    alice.subscribe("private-chat").await;
    bob.subscribe("private-chat").await;
    for n in 0..10 {
        let nobody = trigger_on(&server, "empty", &n.to_string()).await;
        assert_eq!(nobody.status, 200, "a publish to nobody counts 0");
    }
    alice
        .trigger("private-chat", "client-hi", json!({"n": 0}))
        .await;
    assert_eq!(bob.recv_event("client-hi").await["data"]["n"], 0);
    // 1 delivered so far; each trigger reaches 2. The third starts at 5 of 6 and is delivered
    // in full (7); the fourth is refused.
    let mut admitted = 0;
    let refused = loop {
        let response = trigger_on(&server, "private-chat", &admitted.to_string()).await;
        if response.status != 200 {
            break response;
        }
        admitted += 1;
        assert!(admitted <= 10, "the quota never held");
    };
    assert_eq!(admitted, 3);
    assert_over_daily_quota(&refused, 6);
    let batch = json!({"batch": [{"name": "e", "channel": "private-chat", "data": "b"}]});
    let refused =
        common::http::api(&server, "POST", "/batch_events", &[], &batch.to_string()).await;
    assert_over_daily_quota(&refused, 6);
    for client in [&mut alice, &mut bob] {
        for n in 0..3 {
            assert_eq!(client.recv_event("e").await["data"], n.to_string());
        }
        client.assert_nothing_pending().await;
    }
    alice
        .trigger("private-chat", "client-hi", json!({"n": 1}))
        .await;
    let error = alice.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4301);
    assert_eq!(
        error["data"]["message"],
        "Client event rejected: quota exceeded (daily messages): 6 messages per day"
    );
    bob.assert_nothing_pending().await;
    alice.assert_nothing_pending().await; // still open and served
}

/// Runs a server on the store file `store` with `daily_messages = 5` and one subscriber on
/// `news`, triggers until refused (at most `most` times), then stops it cleanly (its last
/// sync flushes the count). Returns the triggers admitted.
async fn run_until_refused_or(store: &std::path::Path, most: usize) -> usize {
    let config = format!(
        "{}[apps.limits]\ndaily_messages = 5\n[store]\npath = \"{}\"\n",
        default_config(),
        store.display()
    );
    let mut server = TestServer::start_with(&config);
    let mut client = common::Client::connect(&server).await;
    client.subscribe("news").await;
    let mut admitted = 0;
    while admitted < most {
        let response = trigger_on(&server, "news", "x").await;
        if response.status != 200 {
            assert_over_daily_quota(&response, 5);
            break;
        }
        admitted += 1;
        assert_eq!(client.recv_event("e").await["data"], "x");
    }
    drop(client);
    server.terminate();
    assert!(server.wait_for_exit(std::time::Duration::from_secs(10)));
    admitted
}

#[tokio::test]
async fn the_days_count_outlives_a_restart_on_the_same_store() {
    clear_of_midnight().await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    assert_eq!(run_until_refused_or(&store, 3).await, 3, "3 of 5");
    assert_eq!(
        run_until_refused_or(&store, 10).await,
        2,
        "the 3 counted before the restart are kept"
    );
    assert_eq!(
        run_until_refused_or(&store, 10).await,
        0,
        "the store holds 5: the second run added its 2 to the first run's 3"
    );
}
