//! HTTP API endpoints: triggers and batches reaching WebSocket subscribers, channel queries,
//! users, terminate, health, and every 400/413 for bad input.

mod common;

use common::http::{api, raw_request, raw_request_with_headers, trigger};
use common::{Client, TestServer};
use serde_json::{Value, json};

async fn subscribed(server: &TestServer, channels: &[&str]) -> Client {
    let mut client = Client::connect(server).await;
    for channel in channels {
        client.subscribe(channel).await;
    }
    client
}

async fn presence_member(server: &TestServer, channel: &str, user_id: &str) -> Client {
    let mut client = Client::connect(server).await;
    client
        .join_presence(channel, &json!({"user_id": user_id}).to_string())
        .await;
    client
}

#[tokio::test]
async fn trigger_delivers_the_data_string_verbatim() {
    let server = TestServer::start();
    let mut client = subscribed(&server, &["news"]).await;
    let response = trigger(
        &server,
        json!({"name": "my-event", "channels": ["news"], "data": "{\"a\":1}"}),
    )
    .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    let frame = client.next_message().await.into_text().unwrap();
    assert_eq!(
        frame.as_str(),
        r#"{"event":"my-event","channel":"news","data":"{\"a\":1}"}"#
    );
}

#[tokio::test]
async fn trigger_reaches_every_named_channel_and_accepts_php_singular_channel() {
    let server = TestServer::start();
    let mut a = subscribed(&server, &["a"]).await;
    let mut b = subscribed(&server, &["b"]).await;
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["a", "b"], "data": "1"}),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(a.recv_event("e").await["channel"], "a");
    assert_eq!(b.recv_event("e").await["channel"], "b");
    let response = trigger(
        &server,
        json!({"name": "single", "channel": "a", "data": "2"}),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(a.recv_event("single").await["data"], "2");
}

#[tokio::test]
async fn socket_id_excludes_that_connection() {
    let server = TestServer::start();
    let mut excluded = subscribed(&server, &["news"]).await;
    let mut other = subscribed(&server, &["news"]).await;
    let socket_id = excluded.socket_id.clone();
    let response = trigger(
        &server,
        json!({"name": "first", "channel": "news", "data": "1", "socket_id": socket_id}),
    )
    .await;
    assert_eq!(response.status, 200);
    other.recv_event("first").await;
    trigger(
        &server,
        json!({"name": "second", "channel": "news", "data": "2"}),
    )
    .await;
    // The excluded client's next event is the second one: the first never reached it.
    excluded.recv_event("second").await;
}

#[tokio::test]
async fn a_channel_named_twice_gets_the_event_once() {
    let server = TestServer::start();
    let mut client = subscribed(&server, &["news"]).await;
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["news", "news"], "data": "x"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    client.recv_event("e").await;
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn trigger_info_reports_counts_per_unique_channel() {
    let server = TestServer::start();
    let _alice = presence_member(&server, "presence-room", "alice").await;
    let _alice_tab = presence_member(&server, "presence-room", "alice").await;
    let _bob = presence_member(&server, "presence-room", "bob").await;
    let _news = subscribed(&server, &["news"]).await;
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["presence-room", "news", "news"], "data": "x", "info": "user_count,subscription_count"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"channels": {
            "presence-room": {"user_count": 2, "subscription_count": 3},
            "news": {"subscription_count": 1}
        }})
    );
}

#[tokio::test]
async fn batch_events_are_delivered_in_order_with_info_per_item() {
    let server = TestServer::start();
    let mut client = subscribed(&server, &["a", "b"]).await;
    let body = json!({"batch": [
        {"name": "one", "channel": "a", "data": "1"},
        {"name": "two", "channel": "b", "data": "2", "info": "subscription_count"},
        {"name": "three", "channel": "a", "data": "3"},
    ]});
    let response = api(&server, "POST", "/batch_events", &[], &body.to_string()).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"batch": [{}, {"subscription_count": 1}, {}]})
    );
    for name in ["one", "two", "three"] {
        client.recv_event(name).await;
    }
    let plain = json!({"batch": [{"name": "four", "channel": "a", "data": "4"}]});
    let response = api(&server, "POST", "/batch_events", &[], &plain.to_string()).await;
    assert_eq!(response.body, "{}");
}

#[tokio::test]
async fn batches_are_validated_whole_before_anything_is_sent() {
    let server = TestServer::start();
    let mut client = subscribed(&server, &["a"]).await;
    let eleven: Vec<Value> = (0..11)
        .map(|n| json!({"name": "e", "channel": "a", "data": n.to_string()}))
        .collect();
    let response = api(
        &server,
        "POST",
        "/batch_events",
        &[],
        &json!({"batch": eleven}).to_string(),
    )
    .await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (400, "At most 10 events per batch")
    );
    let body = json!({"batch": [{"name": "ok", "channel": "a", "data": "1"}, {"name": "bad", "channel": "a", "data": 5}]});
    let response = api(&server, "POST", "/batch_events", &[], &body.to_string()).await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (400, "batch[1]: \"data\" must be a string")
    );
    client.assert_nothing_pending().await;
}

#[tokio::test]
async fn channels_lists_occupied_channels_with_prefix_filter_and_user_count() {
    let server = TestServer::start();
    let _alice = presence_member(&server, "presence-a", "alice").await;
    let _bob = presence_member(&server, "presence-a", "bob").await;
    let _news = subscribed(&server, &["news", "private-x"]).await;
    let response = api(&server, "GET", "/channels", &[], "").await;
    assert_eq!(
        response.json(),
        json!({"channels": {"presence-a": {}, "news": {}, "private-x": {}}})
    );
    let params = [("filter_by_prefix", "presence-"), ("info", "user_count")];
    let response = api(&server, "GET", "/channels", &params, "").await;
    assert_eq!(
        response.json(),
        json!({"channels": {"presence-a": {"user_count": 2}}})
    );
    let response = api(&server, "GET", "/channels", &[("info", "user_count")], "").await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.error(),
        "info=user_count requires filter_by_prefix=presence-"
    );
}

#[tokio::test]
async fn channel_info_reports_occupied_and_applicable_attributes() {
    let server = TestServer::start();
    let _alice = presence_member(&server, "presence-a", "alice").await;
    let _news = subscribed(&server, &["news"]).await;
    let response = api(
        &server,
        "GET",
        "/channels/news",
        &[("info", "subscription_count")],
        "",
    )
    .await;
    assert_eq!(
        response.json(),
        json!({"occupied": true, "subscription_count": 1})
    );
    let response = api(&server, "GET", "/channels/empty", &[], "").await;
    assert_eq!(response.json(), json!({"occupied": false}));
    let response = api(
        &server,
        "GET",
        "/channels/presence-a",
        &[("info", "user_count")],
        "",
    )
    .await;
    assert_eq!(response.json(), json!({"occupied": true, "user_count": 1}));
    for (channel, info) in [
        ("news", "user_count"),
        ("presence-a", "subscription_count"),
        ("news", "cache"),
        ("news", "bogus"),
    ] {
        let response = api(
            &server,
            "GET",
            &format!("/channels/{channel}"),
            &[("info", info)],
            "",
        )
        .await;
        assert_eq!(response.status, 400, "{channel} {info}: {}", response.body);
    }
    let response = api(&server, "GET", "/channels/bad%20name", &[], "").await;
    assert_eq!(response.status, 400);
}

#[tokio::test]
async fn users_lists_each_presence_user_once() {
    let server = TestServer::start();
    let _a = presence_member(&server, "presence-a", "1").await;
    let _a2 = presence_member(&server, "presence-a", "1").await;
    let _b = presence_member(&server, "presence-a", "2").await;
    let response = api(&server, "GET", "/channels/presence-a/users", &[], "").await;
    let mut users = response.json()["users"].as_array().unwrap().clone();
    users.sort_by_key(|u| u["id"].to_string());
    assert_eq!(users, vec![json!({"id": "1"}), json!({"id": "2"})]);
    let response = api(&server, "GET", "/channels/news/users", &[], "").await;
    assert_eq!(response.status, 400);
}

#[tokio::test]
async fn terminate_connections_answers_on_both_paths() {
    let server = TestServer::start();
    let response = api(
        &server,
        "POST",
        "/users/42/terminate_connections",
        &[],
        "{}",
    )
    .await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
    // The Python SDK's path has no /apps/{id}; the app comes from auth_key.
    let target = common::http::signed_path(
        "POST",
        "/users/42/terminate_connections",
        &[],
        "{}",
        common::APP_SECRET,
        common::http::now(),
    );
    let response = raw_request(&server, "POST", &target, "{}").await;
    assert_eq!((response.status, response.body.as_str()), (200, "{}"));
}

#[tokio::test]
async fn health_endpoints_answer() {
    let server = TestServer::start();
    for path in ["/", "/live", "/ready"] {
        let response = raw_request(&server, "GET", path, "").await;
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, "OK"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_start_is_one_log_line_with_version_addresses_apps_adapter_and_store() {
    let server = TestServer::start();
    // Written just after `relay: listening on`, which the harness waited for.
    let start = std::time::Instant::now();
    while !server.log().contains("relay started") {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "no start line"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let log = server.log();
    let started: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("relay started"))
        .collect();
    assert_eq!(started.len(), 1, "{log}");
    let line = started[0];
    let version = format!("version={}", env!("CARGO_PKG_VERSION"));
    assert!(line.contains(&version), "{line}");
    assert!(
        line.contains(&format!("127.0.0.1:{}", server.port)),
        "{line}"
    );
    assert!(line.contains("apps=1"), "{line}");
    assert!(line.contains("adapter=local (one node)"), "{line}");
    assert!(line.contains("store=none yet"), "{line}");
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let server = TestServer::start();
    let long_name = "n".repeat(201);
    let cases = [
        ("{", "Request body is not valid JSON"),
        ("[1]", "Request body must be a JSON object"),
        (r#"{"channel":"a","data":"x"}"#, "Missing \"name\""),
        (r#"{"name":"e","channel":"a"}"#, "Missing \"data\""),
        (
            r#"{"name":"e","channel":"a","data":{"x":1}}"#,
            "\"data\" must be a string",
        ),
        (
            r#"{"name":5,"channel":"a","data":"x"}"#,
            "\"name\" must be a string",
        ),
        (r#"{"name":"e","data":"x"}"#, "Missing \"channel\""),
        (
            r#"{"name":"e","channels":[],"data":"x"}"#,
            "\"channels\" must not be empty",
        ),
        (
            r#"{"name":"e","channels":"a","data":"x"}"#,
            "\"channels\" must be an array of strings",
        ),
        (
            r#"{"name":"e","channels":["bad name"],"data":"x"}"#,
            "Invalid channel \"bad name\": channel name may contain only A-Z, a-z, 0-9 and _ - = @ , . ;",
        ),
        (
            r#"{"name":"e","channel":"a","data":"x","socket_id":"abc"}"#,
            "\"socket_id\" must look like 123.456",
        ),
        (
            r#"{"name":"e","channel":"a","data":"x","info":"nope"}"#,
            "Unknown info attribute \"nope\"",
        ),
        (
            r#"{"name":"e","channels":["private-encrypted-a","b"],"data":"x"}"#,
            "An event for a private-encrypted- channel must name only that channel",
        ),
    ];
    for (body, error) in cases {
        let response = api(&server, "POST", "/events", &[], body).await;
        assert_eq!(
            (response.status, response.error().as_str()),
            (400, error),
            "{body}"
        );
    }
    let body = json!({"name": long_name, "channel": "a", "data": "x"}).to_string();
    let response = api(&server, "POST", "/events", &[], &body).await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (400, "\"name\" is longer than 200 characters")
    );
    let many: Vec<String> = (0..101).map(|n| format!("c{n}")).collect();
    let body = json!({"name": "e", "channels": many, "data": "x"}).to_string();
    let response = api(&server, "POST", "/events", &[], &body).await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (400, "At most 100 channels per event")
    );
}

#[tokio::test]
async fn data_over_max_event_size_is_413() {
    let server = TestServer::start();
    let body = json!({"name": "e", "channel": "a", "data": "x".repeat(10 * 1024 + 1)}).to_string();
    let response = api(&server, "POST", "/events", &[], &body).await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (413, "\"data\" is larger than 10240 bytes")
    );
    let body = json!({"name": "e", "channel": "a", "data": "x".repeat(10 * 1024)}).to_string();
    assert_eq!(
        api(&server, "POST", "/events", &[], &body).await.status,
        200
    );
}

#[tokio::test]
async fn an_oversized_body_is_413_before_it_is_read() {
    let config =
        common::default_config().replace("[server]\n", "[server]\nmax_request_size = 2048\n");
    let server = TestServer::start_with(&config);
    // Announces 10 MB but sends nothing: the answer must come from the Content-Length alone.
    let headers = "X-Pad: 1\r\n";
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "POST /apps/123456/events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: 10000000\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = vec![0; 4096];
    let n = tokio::time::timeout(common::TIMEOUT, stream.read(&mut response))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        text.contains(r#"{"error":"Request body is too large"}"#),
        "{text}"
    );
    let small =
        raw_request_with_headers(&server, "POST", "/apps/123456/events", "{}", headers).await;
    assert_eq!(small.status, 401, "a small body goes on to authentication");
}

#[tokio::test]
async fn triggers_never_wait_for_a_stalled_subscriber() {
    let config =
        common::default_config().replace("[server]\n", "[server]\noutbound_queue_size = 4\n");
    let server = TestServer::start_with(&config);
    let _stalled = subscribed(&server, &["firehose"]).await; // never reads again
    let mut healthy = subscribed(&server, &["firehose"]).await;
    let data = "d".repeat(10_000);
    // About 4 MB: more than the stalled client's socket buffers and queue can hold.
    for n in 0..400 {
        let body = json!({"name": "blob", "channel": "firehose", "data": data});
        let response = tokio::time::timeout(common::TIMEOUT, trigger(&server, body))
            .await
            .expect("a trigger waited on the stalled subscriber");
        assert_eq!(response.status, 200, "trigger {n}");
        healthy.recv_event("blob").await;
    }
}
