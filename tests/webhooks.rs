//! Webhooks, received by a local HTTP receiver: every event type, signed as Pusher signs them;
//! the vacate delay and its cancellation; filters, headers and batching; retries, giving up,
//! and a receiver that never answers holding up nothing else.

mod common;

use std::time::{Duration, Instant};

use common::http::trigger;
use common::webhooks::{
    Answer, OCCUPANCY, WebhookReceiver, config, occupied, unsubscribe, vacated,
};
use common::{Client, TestServer};
use serde_json::json;

#[tokio::test]
async fn occupied_and_vacated_are_signed_and_vacated_waits_three_seconds_by_default() {
    let mut receiver = WebhookReceiver::start().await;
    let server = TestServer::start_with(&config("", &[(&receiver.url(), OCCUPANCY)]));
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    receiver.expect_event(occupied("news")).await;
    let left = Instant::now();
    unsubscribe(&mut client, "news").await;
    let received = receiver.expect_event(vacated("news")).await;
    let waited = received.at.duration_since(left);
    assert!(waited >= Duration::from_secs(3), "vacated after {waited:?}");
}

#[tokio::test]
async fn coming_back_within_the_delay_sends_neither_vacated_nor_occupied_again() {
    let mut receiver = WebhookReceiver::start().await;
    let app = "webhook_vacate_delay_ms = 1000";
    let server = TestServer::start_with(&config(app, &[(&receiver.url(), OCCUPANCY)]));
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    receiver.expect_event(occupied("news")).await;
    unsubscribe(&mut client, "news").await;
    client.subscribe("news").await;
    receiver
        .expect_nothing_within(Duration::from_millis(1500))
        .await;
    client.close().await;
    receiver.expect_event(vacated("news")).await;
}

#[tokio::test]
async fn members_are_added_and_removed_per_user_not_per_connection() {
    let mut receiver = WebhookReceiver::start().await;
    let app = "webhook_vacate_delay_ms = 300";
    let hook = r#"events = ["member_added", "member_removed"]"#;
    let server = TestServer::start_with(&config(app, &[(&receiver.url(), hook)]));
    let alice = r#"{"user_id":"alice"}"#;
    let mut first_tab = Client::connect(&server).await;
    first_tab.join_presence("presence-room", alice).await;
    let added = json!({"name": "member_added", "channel": "presence-room", "user_id": "alice"});
    receiver.expect_event(added).await;
    let mut second_tab = Client::connect(&server).await;
    second_tab.join_presence("presence-room", alice).await;
    first_tab.close().await;
    receiver
        .expect_nothing_within(Duration::from_millis(800))
        .await;
    second_tab.close().await;
    let removed = json!({"name": "member_removed", "channel": "presence-room", "user_id": "alice"});
    receiver.expect_event(removed).await;
}

#[tokio::test]
async fn a_member_back_within_the_delay_is_neither_removed_nor_added_again() {
    let mut receiver = WebhookReceiver::start().await;
    let app = "webhook_vacate_delay_ms = 1000";
    let hook = r#"events = ["member_added", "member_removed"]"#;
    let server = TestServer::start_with(&config(app, &[(&receiver.url(), hook)]));
    let bob = r#"{"user_id":"bob"}"#;
    let mut client = Client::connect(&server).await;
    client.join_presence("presence-room", bob).await;
    let added = json!({"name": "member_added", "channel": "presence-room", "user_id": "bob"});
    receiver.expect_event(added).await;
    // A page reload: the old connection goes, a new one joins at once.
    client.close().await;
    let mut reloaded = Client::connect(&server).await;
    reloaded.join_presence("presence-room", bob).await;
    receiver
        .expect_nothing_within(Duration::from_millis(1500))
        .await;
}

#[tokio::test]
async fn shutting_down_sends_the_delayed_events_at_once() {
    let mut receiver = WebhookReceiver::start().await;
    // A delay far longer than the test may wait: only the shutdown flush can send it.
    let app = "webhook_vacate_delay_ms = 60000";
    let mut server = TestServer::start_with(&config(app, &[(&receiver.url(), OCCUPANCY)]));
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    receiver.expect_event(occupied("news")).await;
    server.terminate();
    receiver.expect_event(vacated("news")).await;
    assert!(
        server.wait_for_exit(common::TIMEOUT),
        "the server did not exit"
    );
}

#[tokio::test]
async fn client_events_carry_the_sender_and_on_presence_its_user() {
    let mut receiver = WebhookReceiver::start().await;
    let hook = r#"events = ["client_event"]"#;
    let server = TestServer::start_with(&config("", &[(&receiver.url(), hook)]));
    let mut sender = Client::connect(&server).await;
    let mut other = Client::connect(&server).await;
    sender.subscribe("private-chat").await;
    other.subscribe("private-chat").await;
    sender
        .trigger("private-chat", "client-typing", json!({"who": "me"}))
        .await;
    let event = json!({
        "name": "client_event", "channel": "private-chat", "event": "client-typing",
        "data": "{\"who\":\"me\"}", "socket_id": sender.socket_id,
    });
    receiver.expect_event(event).await;
    sender
        .join_presence("presence-chat", r#"{"user_id":"u1"}"#)
        .await;
    sender
        .trigger("presence-chat", "client-hi", json!("hello"))
        .await;
    let event = json!({
        "name": "client_event", "channel": "presence-chat", "event": "client-hi",
        "data": "hello", "socket_id": sender.socket_id, "user_id": "u1",
    });
    receiver.expect_event(event).await;
}

#[tokio::test]
async fn a_burst_of_cache_misses_is_one_webhook_and_a_hit_is_none() {
    let mut receiver = WebhookReceiver::start().await;
    let hook = r#"events = ["cache_miss"]"#;
    let server = TestServer::start_with(&config("", &[(&receiver.url(), hook)]));
    let mut first = Client::connect(&server).await;
    let mut second = Client::connect(&server).await;
    for client in [&mut first, &mut second] {
        client.subscribe("cache-scores").await;
        client.recv_event("pusher:cache_miss").await;
    }
    let miss = json!({"name": "cache_miss", "channel": "cache-scores"});
    receiver.expect_event(miss).await;
    let response = trigger(
        &server,
        json!({"name": "score", "channels": ["cache-scores"], "data": "1"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let mut late = Client::connect(&server).await;
    late.subscribe("cache-scores").await;
    late.recv_event("score").await;
    receiver
        .expect_nothing_within(Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn subscription_counts_reach_the_webhook_when_the_app_counts_subscriptions() {
    let mut receiver = WebhookReceiver::start().await;
    let hook = r#"events = ["subscription_count"]"#;
    let app = "enable_subscription_count = true";
    let server = TestServer::start_with(&config(app, &[(&receiver.url(), hook)]));
    let count = |n: usize| json!({"name": "subscription_count", "channel": "news", "subscription_count": n});
    let mut first = Client::connect(&server).await;
    first.subscribe("news").await;
    receiver.expect_event(count(1)).await;
    let mut second = Client::connect(&server).await;
    second.subscribe("news").await;
    receiver.expect_event(count(2)).await;
    second.close().await;
    receiver.expect_event(count(1)).await;
    first.close().await;
    receiver.expect_event(count(0)).await;
}

#[tokio::test]
async fn without_subscription_counting_no_count_webhook_is_sent() {
    let mut receiver = WebhookReceiver::start().await;
    // Every event kind (no `events` list), but the app does not count subscriptions.
    let server = TestServer::start_with(&config("", &[(&receiver.url(), "")]));
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    receiver.expect_event(occupied("news")).await;
    receiver
        .expect_nothing_within(Duration::from_millis(500))
        .await;
}

#[tokio::test]
async fn each_endpoint_gets_only_its_events_and_its_own_headers() {
    let mut presence_only = WebhookReceiver::start().await;
    let mut everything = WebhookReceiver::start().await;
    let filtered = "events = [\"channel_occupied\"]\nchannel_prefix = \"presence-\"\nheaders = { X-Relay-Test = \"${RELAY_TEST_HOOK_TOKEN}\" }";
    let text = config(
        "",
        &[
            (&presence_only.url(), filtered),
            (&everything.url(), OCCUPANCY),
        ],
    );
    let server = TestServer::start_with_env(&text, &[("RELAY_TEST_HOOK_TOKEN", "t0ken")]);
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    everything.expect_event(occupied("news")).await;
    client
        .join_presence("presence-room", r#"{"user_id":"u"}"#)
        .await;
    let received = presence_only.expect_event(occupied("presence-room")).await;
    assert_eq!(received.headers["x-relay-test"], "t0ken");
    assert!(!everything.next().await.headers.contains_key("x-relay-test"));
    presence_only
        .expect_nothing_within(Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn a_batch_window_gathers_events_into_one_request() {
    let mut receiver = WebhookReceiver::start().await;
    // A full batch goes at once; the long window only guards against a slow machine.
    let app = "webhook_batch_window_ms = 5000\nwebhook_batch_max_events = 3";
    let hook = r#"events = ["channel_occupied"]"#;
    let server = TestServer::start_with(&config(app, &[(&receiver.url(), hook)]));
    let mut client = Client::connect(&server).await;
    for channel in ["a", "b", "c"] {
        client.subscribe(channel).await;
    }
    let received = receiver.next().await;
    received.assert_signed();
    assert_eq!(
        received.events(),
        vec![occupied("a"), occupied("b"), occupied("c")]
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_the_events_again_with_growing_waits_until_it_answers() {
    let mut receiver = WebhookReceiver::answering(Answer::FailFirst(2)).await;
    let server = TestServer::start_with(&config("", &[(&receiver.url(), OCCUPANCY)]));
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    let first = receiver.expect_event(occupied("news")).await;
    let second = receiver.expect_event(occupied("news")).await;
    let third = receiver.expect_event(occupied("news")).await;
    let waits = [
        second.at.duration_since(first.at),
        third.at.duration_since(second.at),
    ];
    assert!(waits[0] >= Duration::from_millis(900), "{waits:?}");
    assert!(waits[1] >= Duration::from_millis(1900), "{waits:?}");
    // Delivered: the next event is sent once, not retried.
    client.subscribe("sport").await;
    receiver.expect_event(occupied("sport")).await;
    receiver
        .expect_nothing_within(Duration::from_millis(1500))
        .await;
}

#[tokio::test]
async fn every_event_type_is_retried_after_a_failure_and_signed_each_time() {
    let mut receiver = WebhookReceiver::answering(Answer::FailEveryOther).await;
    let app = "enable_subscription_count = true\nwebhook_vacate_delay_ms = 100\n\
               webhook_batch_window_ms = 300";
    let server = TestServer::start_with(&config(app, &[(&receiver.url(), "")]));
    let mut alice = Client::connect(&server).await;
    let mut bob = Client::connect(&server).await;
    alice.subscribe("cache-x").await;
    alice.recv_event("pusher:cache_miss").await;
    alice.recv_event("pusher_internal:subscription_count").await;
    alice
        .join_presence("presence-room", r#"{"user_id":"alice"}"#)
        .await;
    bob.subscribe("private-chat").await;
    alice.subscribe("private-chat").await;
    alice.trigger("private-chat", "client-x", json!({})).await;
    alice.close().await;
    let all = [
        "channel_occupied",
        "channel_vacated",
        "member_added",
        "member_removed",
        "client_event",
        "cache_miss",
        "subscription_count",
    ];
    let mut retried = std::collections::HashSet::new();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10 {
        let (failed, retry) = (receiver.next().await, receiver.next().await);
        failed.assert_signed();
        retry.assert_signed();
        assert_eq!(
            failed.events(),
            retry.events(),
            "a retry carries the same events"
        );
        assert_eq!(
            failed.headers["x-relay-webhook-id"], retry.headers["x-relay-webhook-id"],
            "a retry carries the same id"
        );
        assert!(
            ids.insert(retry.headers["x-relay-webhook-id"].clone()),
            "each batch has its own id"
        );
        for event in retry.events() {
            retried.insert(event["name"].as_str().expect("name").to_owned());
        }
        if all.iter().all(|name| retried.contains(*name)) {
            return;
        }
    }
    panic!("not every event type was retried: {retried:?}");
}

// Multi-threaded: the receiver must keep answering while the test waits for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_dropped_once_retry_for_is_spent_logged_and_counted() {
    let mut receiver = WebhookReceiver::answering(Answer::AlwaysFail).await;
    let hook = "retry_for = 2\nevents = [\"channel_occupied\"]";
    let mut server = TestServer::start_with(&config("", &[(&receiver.url(), hook)]));
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    // Attempts at 0 s and 1 s; the next would start after 3 s, beyond retry_for.
    receiver.expect_event(occupied("news")).await;
    receiver.expect_event(occupied("news")).await;
    receiver
        .expect_nothing_within(Duration::from_millis(2500))
        .await;
    client.subscribe("sport").await;
    receiver.expect_event(occupied("sport")).await;
    // The drop was logged before the next batch went out, and counted.
    let log = server.log();
    assert!(
        log.contains("webhook dropped after retrying for 2s"),
        "{log}"
    );
    server.terminate();
    assert!(
        server.wait_for_exit(common::TIMEOUT),
        "the server did not exit"
    );
    let log = server.log();
    let totals = log
        .lines()
        .find(|line| line.contains("webhook totals"))
        .unwrap_or_else(|| panic!("no totals logged: {log}"));
    // Both batches (news, then sport at shutdown) failed twice each and were dropped.
    let counted = "delivered=0 failed_attempts=4 dropped_after_retries=2";
    assert!(totals.contains(counted), "{totals}");
    assert!(
        !log.contains(&receiver.url()),
        "the URL's path stays out of the log"
    );
}

#[tokio::test]
async fn a_receiver_that_never_answers_holds_up_neither_messages_nor_other_endpoints() {
    let mut silent = WebhookReceiver::answering(Answer::Never).await;
    let mut healthy = WebhookReceiver::start().await;
    let silent_lines = format!("timeout = 30\n{OCCUPANCY}");
    let text = config(
        "webhook_queue_size = 2",
        &[(&silent.url(), &silent_lines), (&healthy.url(), OCCUPANCY)],
    );
    let server = TestServer::start_with(&text);
    let mut client = Client::connect(&server).await;
    for n in 0..10 {
        client.subscribe(&format!("channel-{n}")).await;
        healthy
            .expect_event(occupied(&format!("channel-{n}")))
            .await;
    }
    // The silent receiver got the first request and is still holding it: nothing more was
    // sent to it (the rest waits in, or overflows, its own small queue), while the healthy
    // endpoint got every event and messages still flow.
    silent.expect_event(occupied("channel-0")).await;
    silent
        .expect_nothing_within(Duration::from_millis(200))
        .await;
    let response = trigger(
        &server,
        json!({"name": "update", "channels": ["channel-9"], "data": "{}"}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    client.recv_event("update").await;
}
