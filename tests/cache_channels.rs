//! Cache channels: the last event published through the HTTP API is kept, and a new
//! subscriber gets it (or `pusher:cache_miss`) right after `subscription_succeeded`.

mod common;

use common::http::{api, trigger};
use common::{Client, TestServer};
use serde_json::json;

/// Subscribes and returns the frame that follows `subscription_succeeded`.
async fn subscribe_and_read_cache(client: &mut Client, channel: &str) -> serde_json::Value {
    client.subscribe(channel).await;
    client.recv().await
}

#[tokio::test]
async fn an_empty_cache_channel_answers_with_cache_miss() {
    let server = TestServer::start();
    let mut client = Client::connect(&server).await;
    let frame = subscribe_and_read_cache(&mut client, "cache-news").await;
    assert_eq!(
        frame,
        json!({"event": "pusher:cache_miss", "channel": "cache-news"})
    );
}

#[tokio::test]
async fn a_new_subscriber_gets_the_last_event_exactly_as_it_was_broadcast() {
    let server = TestServer::start();
    let mut watcher = Client::connect(&server).await;
    subscribe_and_read_cache(&mut watcher, "cache-news").await;
    for n in 1..=2 {
        let data = format!("{{\"n\":{n}}}");
        let response = trigger(
            &server,
            json!({"name": "update", "channels": ["cache-news", "news"], "data": data}),
        )
        .await;
        assert_eq!(response.status, 200, "{}", response.body);
    }
    watcher.recv_event("update").await;
    let live = watcher.recv_event("update").await;

    let mut late = Client::connect(&server).await;
    let cached = subscribe_and_read_cache(&mut late, "cache-news").await;
    assert_eq!(
        cached, live,
        "the cached frame is the second event's broadcast frame"
    );
    assert_eq!(cached["data"], "{\"n\":2}");
    late.assert_nothing_pending().await;

    // A plain channel named in the same trigger keeps nothing.
    let mut plain = Client::connect(&server).await;
    plain.subscribe("news").await;
    plain.assert_nothing_pending().await;
}

#[tokio::test]
async fn private_cache_channels_cache_api_events_but_never_client_events() {
    let server = TestServer::start();
    let channel = "private-cache-room";
    let mut sender = Client::connect(&server).await;
    let first = subscribe_and_read_cache(&mut sender, channel).await;
    assert_eq!(first["event"], "pusher:cache_miss");
    sender
        .trigger(channel, "client-typing", json!({"who": "a"}))
        .await;
    sender.assert_nothing_pending().await;
    let mut second = Client::connect(&server).await;
    let frame = subscribe_and_read_cache(&mut second, channel).await;
    assert_eq!(
        frame["event"], "pusher:cache_miss",
        "a client event was cached"
    );

    let response = trigger(
        &server,
        json!({"name": "state", "channel": channel, "data": "{\"open\":true}"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let mut third = Client::connect(&server).await;
    let frame = subscribe_and_read_cache(&mut third, channel).await;
    assert_eq!(frame["event"], "state");
    assert_eq!(frame["channel"], channel);
}

/// `GET channels/{channel}?info=cache`.
async fn cache_info(server: &TestServer, channel: &str) -> common::http::Response {
    let path = format!("/channels/{channel}");
    api(server, "GET", &path, &[("info", "cache")], "").await
}

#[tokio::test]
async fn channel_info_reports_the_cached_data_and_its_time_to_live() {
    let config = common::default_config() + "cache_ttl = 120\n";
    let server = TestServer::start_with(&config);
    let response = cache_info(&server, "cache-news").await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert!(response.json().get("cache").is_none(), "{}", response.body);

    trigger(
        &server,
        json!({"name": "update", "channel": "cache-news", "data": "v1"}),
    )
    .await;
    let response = cache_info(&server, "cache-news").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let cache = &response.json()["cache"];
    assert_eq!(cache["data"], "v1");
    let ttl = cache["ttl"].as_u64().expect("ttl in seconds");
    assert!(
        (118..=120).contains(&ttl),
        "ttl {ttl} is not the configured 120 s"
    );
}
