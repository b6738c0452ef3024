//! Webhook delivery that keeps up: receivers that close every connection cost no failed
//! attempt, several requests are in flight while each channel's events keep their order, and
//! a receiver that comes back gets what was accepted while it was down without the newer
//! channels waiting for the older ones' backoff.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::webhooks::{
    Answer, OCCUPANCY, Received, WebhookReceiver, config, occupied, totals_at_shutdown, vacated,
};
use common::{Client, TestServer};
use serde_json::{Value, json};

/// Sends an unsubscribe without waiting for anything.
async fn leave(client: &mut Client, channel: &str) {
    client
        .send(json!({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
        .await;
}

/// Every event of the next requests until `count` events have arrived (bounded waits).
async fn events(receiver: &mut WebhookReceiver, count: usize) -> Vec<Value> {
    let mut events = Vec::with_capacity(count);
    while events.len() < count {
        let received = receiver.next().await;
        received.assert_signed();
        events.extend(received.events());
    }
    assert_eq!(events.len(), count, "no more than expected");
    events
}

/// The events' names in order, per key (`channel`, or `channel user` for member events).
fn per_key(events: &[Value]) -> HashMap<String, Vec<String>> {
    let mut lines: HashMap<String, Vec<String>> = HashMap::new();
    for event in events {
        let mut key = event["channel"].as_str().expect("channel").to_owned();
        if let Some(user) = event["user_id"].as_str() {
            key = format!("{key} {user}");
        }
        let name = event["name"].as_str().expect("name").to_owned();
        lines.entry(key).or_default().push(name);
    }
    lines
}

/// `arrival, departure` repeated `times` times.
fn alternating(arrival: &str, departure: &str, times: usize) -> Vec<String> {
    (0..times)
        .flat_map(|_| [arrival.to_owned(), departure.to_owned()])
        .collect()
}

/// 100 channels occupied and vacated: 200 webhooks, one per request.
async fn two_hundred_webhooks_to(answer: Answer) {
    let mut receiver = WebhookReceiver::answering(answer).await;
    let app = "webhook_vacate_delay_ms = 0";
    let mut server = TestServer::start_with(&config(app, &[(&receiver.url(), OCCUPANCY)]));
    let mut client = Client::connect(&server).await;
    for n in 0..100 {
        let channel = format!("c{n}");
        client.subscribe(&channel).await;
        leave(&mut client, &channel).await;
    }
    let events = events(&mut receiver, 200).await;
    let lines = per_key(&events);
    assert_eq!(lines.len(), 100);
    for (channel, names) in &lines {
        let expected = alternating("channel_occupied", "channel_vacated", 1);
        assert_eq!(names, &expected, "{channel}");
    }
    let totals = totals_at_shutdown(&mut server);
    assert!(
        totals.contains("delivered=200 failed_attempts=0 dropped_after_retries=0"),
        "{totals}"
    );
}

// Multi-threaded: the receiver must keep answering while the test waits for the exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_1_0_receiver_that_closes_every_connection_costs_no_failed_attempt() {
    two_hundred_webhooks_to(Answer::Http10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_hangs_up_after_each_answer_unannounced_costs_no_failed_attempt() {
    two_hundred_webhooks_to(Answer::HangUpAfterEach).await;
}

#[tokio::test]
async fn each_channel_keeps_its_order_while_requests_go_out_in_parallel() {
    // One receiver per endpoint, so the concurrency seen is one endpoint's.
    let mut receiver = WebhookReceiver::answering(Answer::RandomDelay(20)).await;
    let mut member_receiver = WebhookReceiver::answering(Answer::RandomDelay(20)).await;
    let (url, member_url) = (receiver.url(), member_receiver.url());
    let channels =
        "channel_prefix = \"public-\"\nevents = [\"channel_occupied\", \"channel_vacated\"]";
    let members = "channel_prefix = \"presence-\"\nevents = [\"member_added\", \"member_removed\"]";
    let app = "webhook_vacate_delay_ms = 0";
    let server = TestServer::start_with(&config(app, &[(&url, channels), (&member_url, members)]));
    let mut publisher = Client::connect(&server).await;
    let mut users = Vec::new();
    for _ in 0..5 {
        users.push(Client::connect(&server).await);
    }
    // Sent without waiting for the answers, so the events come faster than the receiver
    // answers (a connection's frames are handled in order, so each channel's order is set).
    for _ in 0..3 {
        for n in 0..20 {
            let channel = format!("public-{n}");
            publisher
                .send(json!({"event": "pusher:subscribe", "data": {"channel": &channel}}))
                .await;
            leave(&mut publisher, &channel).await;
        }
    }
    for _ in 0..2 {
        for (n, user) in users.iter_mut().enumerate() {
            // A room each, so no user hears of another's joins.
            let (room, data) = (
                format!("presence-room-{n}"),
                format!(r#"{{"user_id":"u{n}"}}"#),
            );
            user.join_presence(&room, &data).await;
            leave(user, &room).await;
        }
    }
    let mut seen = events(&mut receiver, 20 * 6).await;
    seen.extend(events(&mut member_receiver, 5 * 4).await);
    for (key, names) in per_key(&seen) {
        let expected = if key.starts_with("public-") {
            alternating("channel_occupied", "channel_vacated", 3)
        } else {
            alternating("member_added", "member_removed", 2)
        };
        assert_eq!(names, expected, "{key}");
    }
    assert!(
        receiver.most_in_flight() > 1,
        "requests went out one at a time"
    );
}

/// The next request, which must carry exactly one event; that event.
async fn next_event(receiver: &mut WebhookReceiver) -> (Value, Received) {
    let received = receiver.next().await;
    (received.event(), received)
}

#[tokio::test]
async fn a_receiver_back_from_an_outage_gets_everything_and_newer_channels_wait_for_no_older_backoff()
 {
    let mut receiver = WebhookReceiver::answering(Answer::Switchable).await;
    receiver.set_down(true);
    let app = "webhook_vacate_delay_ms = 0";
    let server = TestServer::start_with(&config(app, &[(&receiver.url(), OCCUPANCY)]));
    let mut client = Client::connect(&server).await;
    client.subscribe("old-a").await;
    client.subscribe("old-b").await;
    // First attempts at once, second ones a second later; the third wait two seconds more.
    for _ in 0..2 {
        let mut seen = vec![
            next_event(&mut receiver).await.0,
            next_event(&mut receiver).await.0,
        ];
        seen.sort_by_key(ToString::to_string);
        assert_eq!(seen, vec![occupied("old-a"), occupied("old-b")]);
    }
    client.subscribe("new-c").await;
    leave(&mut client, "old-a").await;
    // new-c goes out at once: the batches backing off hold no slot. It fails too.
    let (event, _) = next_event(&mut receiver).await;
    assert_eq!(event, occupied("new-c"));
    receiver.set_down(false);
    // Its retry, a second later, comes before the older channels' (two seconds later).
    let (event, _) = next_event(&mut receiver).await;
    assert_eq!(event, occupied("new-c"), "new-c waited for old backoff");
    let mut rest = Vec::new();
    for _ in 0..3 {
        rest.push(next_event(&mut receiver).await.0);
    }
    let position = |event: &Value| rest.iter().position(|seen| seen == event);
    let (old_a, old_b) = (position(&occupied("old-a")), position(&occupied("old-b")));
    let old_a_left = position(&vacated("old-a"));
    assert!(old_a.is_some() && old_b.is_some(), "{rest:?}");
    assert!(old_a_left > old_a, "vacated before occupied: {rest:?}");
    receiver
        .expect_nothing_within(Duration::from_millis(300))
        .await;
}
