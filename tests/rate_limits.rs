//! `[apps.limits]` against the real server: the app's API limit holds under concurrent
//! requests and answers 429 with `Retry-After` and the RateLimit headers naming the limit;
//! per-address limits keep addresses apart; reads have their own limit; a WebSocket over its
//! address's connection rate, or over its connections open at once, gets `pusher:error` and
//! close 4100, and a place comes back when a connection ends. (Exactness with an injected
//! clock and with threads racing is in the unit tests of `guard::limits`.)

mod common;

use common::http::{Response, now, raw_request_from, signed_path};
use common::{APP_ID, APP_SECRET, TestServer, default_config};
use serde_json::json;

fn limited(lines: &str) -> String {
    format!("{}[apps.limits]\n{lines}", default_config())
}

/// A signed `GET /apps/{id}/channels` from `source`.
async fn read_from(server: &TestServer, source: &str) -> Response {
    let path = format!("/apps/{APP_ID}/channels");
    let target = signed_path("GET", &path, &[], "", APP_SECRET, now());
    raw_request_from(server, source, "GET", &target, "", "").await
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
            tokio::spawn(async move { read_from(&server, "127.0.0.1").await })
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
    assert_eq!(read_from(&server, "127.0.0.2").await.status, 200);
    assert_limited(&read_from(&server, "127.0.0.2").await, "address", 1);
    assert_limited(&write_from(&server, "127.0.0.2").await, "address", 1);
    assert_eq!(read_from(&server, "127.0.0.3").await.status, 200);
    assert_limited(&read_from(&server, "127.0.0.4").await, "reads", 2);
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

#[test]
fn limits_not_built_yet_are_refused_not_ignored() {
    let (passed, said) = common::check_config(&limited("daily_messages = 1000\n"));
    assert!(!passed);
    assert!(
        said.contains("limits.daily_messages is not supported"),
        "{said}"
    );
}
