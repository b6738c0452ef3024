//! Reloading `config.toml` without a restart (SIGHUP, or the file changing): a valid change
//! takes effect while the connections of unaffected apps (and of changed apps still enabled)
//! stay open; an invalid file is refused and the configuration in force keeps serving;
//! connections of a removed or disabled app are closed with 4003; webhooks added by a reload
//! are sent; keys that only take effect at start are named; each reload is in the activity
//! log.

mod common;

use common::activity::until_stored;
use common::http::{now, raw_request, signed_path_as, trigger};
use std::time::Duration;

use common::webhooks::{OCCUPANCY, WebhookReceiver, occupied, unsubscribe};
use common::{APP_ID, APP_KEY, APP_SECRET, Client, TestServer, sign};
use relay::activity::EventKind;
use serde_json::json;

/// A config of `apps` (id, key, secret, extra lines of its block), in order.
fn apps_config(apps: &[(&str, &str, &str, &str)]) -> String {
    let mut text = "[server]\nhost = \"127.0.0.1\"\n".to_owned();
    for (id, key, secret, extra) in apps {
        text.push_str(&format!(
            "\n[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \"{secret}\"\n{extra}\n"
        ));
    }
    text
}

/// The default app and two more, each with `extra` lines of its own (in order).
fn three_apps(default: &str, second: &str, third: &str) -> String {
    apps_config(&[
        (APP_ID, APP_KEY, APP_SECRET, default),
        ("222", "key-222", "secret-222", second),
        ("333", "key-333", "secret-333", third),
    ])
}

/// Triggers `event` on `channel` of app `id` (with its `secret`), with `data`; the status.
async fn trigger_on(server: &TestServer, id: &str, secret: &str, channel: &str, data: &str) -> u16 {
    let body = json!({"name": "update", "channels": [channel], "data": data}).to_string();
    let path = format!("/apps/{id}/events");
    let key = if id == APP_ID {
        APP_KEY.to_owned()
    } else {
        format!("key-{id}")
    };
    let target = signed_path_as("POST", &path, &[], &body, (&key, secret), now());
    raw_request(server, "POST", &target, &body).await.status
}

/// A connection to the app with `key`, subscribed to `channel`.
async fn subscribed(server: &TestServer, key: &str, channel: &str) -> Client {
    let mut client = Client::connect_to(server, key).await;
    client.subscribe(channel).await;
    client
}

/// Asserts that `client` (on `channel`) receives an event triggered now on app `id`.
async fn still_receives(
    server: &TestServer,
    client: &mut Client,
    id: &str,
    secret: &str,
    channel: &str,
) {
    assert_eq!(trigger_on(server, id, secret, channel, "after").await, 200);
    let event = client.recv_event("update").await;
    assert_eq!(event["channel"], channel);
    assert_eq!(event["data"], "after");
}

/// The close code a new connection to the app with `key` is refused with.
async fn refused_with(server: &TestServer, key: &str) -> u16 {
    let mut client =
        Client::from_socket(common::open(&server.ws_url(&format!("/app/{key}?protocol=7"))).await);
    client.expect_close().await
}

#[tokio::test]
async fn a_valid_change_takes_effect_and_every_connection_of_an_app_still_enabled_stays() {
    let server = TestServer::start_with(&three_apps("", "", ""));
    let mut unaffected = subscribed(&server, APP_KEY, "news").await;
    let mut changed = subscribed(&server, "key-222", "news").await;
    assert_eq!(
        trigger_on(&server, "222", "secret-222", "news", &"x".repeat(200)).await,
        200
    );
    assert_eq!(changed.recv_event("update").await["channel"], "news");
    assert_eq!(
        refused_with(&server, "key-444").await,
        4001,
        "no such app yet"
    );

    let added = "\n[[apps]]\nid = \"444\"\nkey = \"key-444\"\nsecret = \"secret-444\"\n";
    let limited = "max_event_size = 100\nmax_channels_per_connection = 1";
    server.rewrite_config(&(three_apps("", limited, "") + added));
    server.sighup();
    let log = server.until_logged("configuration reloaded", 1).await;
    assert!(
        log.contains("apps added: 444; app 222 changed (settings)"),
        "{log}"
    );

    // The changed app's new limits hold: on the API, and over the connection that was open
    // before them (it is subscribed to one channel, its new most).
    assert_eq!(
        trigger_on(&server, "222", "secret-222", "news", &"x".repeat(200)).await,
        413
    );
    changed
        .send(json!({"event": "pusher:subscribe", "data": {"channel": "second"}}))
        .await;
    let refused = changed.recv_event("pusher:subscription_error").await;
    assert_eq!(refused["channel"], "second", "{refused}");
    changed.recv_event("pusher:error").await;
    still_receives(&server, &mut changed, "222", "secret-222", "news").await;
    still_receives(&server, &mut unaffected, APP_ID, APP_SECRET, "news").await;
    let mut new_app = subscribed(&server, "key-444", "fresh").await;
    still_receives(&server, &mut new_app, "444", "secret-444", "fresh").await;

    let recorded = until_stored(&server, EventKind::ConfigReloaded).await;
    assert!(
        recorded[0]
            .entry
            .message
            .contains("app 222 changed (settings)"),
        "{:?}",
        recorded[0].entry.message
    );
}

#[tokio::test]
async fn an_invalid_file_is_refused_with_its_problems_and_the_configuration_in_force_serves() {
    let server = TestServer::start_with(&three_apps("", "", ""));
    let mut client = subscribed(&server, APP_KEY, "news").await;

    server.rewrite_config("[server\nport = 1\n");
    server.sighup();
    let log = server.until_logged("configuration reload refused", 1).await;
    assert!(
        log.contains("config.toml:1:"),
        "the problem names its line:\n{log}"
    );
    still_receives(&server, &mut client, APP_ID, APP_SECRET, "news").await;

    // Valid TOML that validation refuses (two apps with one id): refused as a whole, so the
    // app whose block did change legitimately in the same file does not change either.
    let duplicate =
        three_apps("", "max_event_size = 100", "").replace("id = \"333\"", "id = \"222\"");
    server.rewrite_config(&duplicate);
    server.sighup();
    let log = server
        .until_logged("fix config.toml and reload again", 2)
        .await;
    assert!(log.contains("duplicate"), "{log}");
    assert_eq!(
        trigger_on(&server, "222", "secret-222", "news", &"x".repeat(200)).await,
        200
    );
    still_receives(&server, &mut client, APP_ID, APP_SECRET, "news").await;
    assert_eq!(
        open_or_code(&server, "key-333").await,
        0,
        "app 333 still serves"
    );

    // Fixed, the file is taken (and the store, which the helpers find through it, is read).
    server.rewrite_config(&three_apps("", "", ""));
    server.sighup();
    let log = server.until_logged("configuration reloaded", 1).await;
    assert!(log.contains("nothing changed"), "{log}");
    let refusals = until_stored(&server, EventKind::ConfigRefused).await;
    assert!(
        refusals[0].entry.message.contains("refused"),
        "{:?}",
        refusals[0].entry.message
    );
}

/// 0 when a connection to the app with `key` is established, its close code otherwise.
async fn open_or_code(server: &TestServer, key: &str) -> u16 {
    let mut client =
        Client::from_socket(common::open(&server.ws_url(&format!("/app/{key}?protocol=7"))).await);
    let first = client.recv().await;
    if first["event"] == "pusher:connection_established" {
        0
    } else {
        first["data"]["code"].as_u64().unwrap_or(1) as u16
    }
}

#[tokio::test]
async fn connections_of_a_removed_or_disabled_app_are_closed_with_4003_and_the_others_stay() {
    let server = TestServer::start_with(&three_apps("", "", ""));
    let mut kept = subscribed(&server, APP_KEY, "news").await;
    let mut removed = subscribed(&server, "key-222", "news").await;
    let mut disabled = subscribed(&server, "key-333", "news").await;

    let without_222 = apps_config(&[
        (APP_ID, APP_KEY, APP_SECRET, ""),
        ("333", "key-333", "secret-333", "enabled = false"),
    ]);
    server.rewrite_config(&without_222);
    server.sighup();
    let log = server.until_logged("configuration reloaded", 1).await;
    assert!(log.contains("apps removed: 222"), "{log}");

    let error = removed.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4003);
    assert_eq!(removed.expect_close().await, 4003);
    let error = disabled.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4003);
    assert_eq!(disabled.expect_close().await, 4003);
    assert_eq!(
        refused_with(&server, "key-222").await,
        4001,
        "the removed app is unknown"
    );
    assert_eq!(
        refused_with(&server, "key-333").await,
        4003,
        "the disabled app refuses"
    );
    still_receives(&server, &mut kept, APP_ID, APP_SECRET, "news").await;
}

#[tokio::test]
async fn a_changed_file_is_reloaded_without_a_signal() {
    let server = TestServer::start_with(&three_apps("", "", ""));
    let mut client = subscribed(&server, APP_KEY, "news").await;
    server.rewrite_config(&three_apps("max_event_size = 100", "", ""));
    let log = server.until_logged("configuration reloaded", 1).await;
    assert!(log.contains("file change"), "{log}");
    assert_eq!(
        trigger_on(&server, APP_ID, APP_SECRET, "news", &"x".repeat(200)).await,
        413
    );
    still_receives(&server, &mut client, APP_ID, APP_SECRET, "news").await;
}

#[tokio::test]
async fn a_webhook_added_by_a_reload_is_sent_and_a_changed_secret_signs_and_authenticates() {
    let mut receiver = WebhookReceiver::start().await;
    let server = TestServer::start_with(&three_apps("", "", ""));
    let webhook = format!(
        "[[apps.webhooks]]\nurl = \"{}\"\n{OCCUPANCY}\n",
        receiver.url()
    );
    let config = three_apps(&webhook, "", "").replace(
        &format!("secret = \"{APP_SECRET}\""),
        "secret = \"a-new-secret-for-the-default-app\"",
    );
    server.rewrite_config(&config);
    server.sighup();
    server.until_logged("configuration reloaded", 1).await;

    let mut client = Client::connect(&server).await;
    let auth = format!(
        "{APP_KEY}:{}",
        sign(
            "a-new-secret-for-the-default-app",
            &format!("{}:private-orders", client.socket_id)
        )
    );
    client
        .send(json!({"event": "pusher:subscribe", "data": {"channel": "private-orders", "auth": auth}}))
        .await;
    assert_eq!(
        client.recv().await["event"],
        "pusher_internal:subscription_succeeded"
    );
    let received = receiver.next().await;
    assert_eq!(received.event(), occupied("private-orders"));
    let signature = sign("a-new-secret-for-the-default-app", &received.body);
    assert_eq!(received.headers["x-pusher-signature"], signature);
    assert_eq!(
        trigger(&server, json!({"name": "e", "channel": "x", "data": "{}"}))
            .await
            .status,
        401,
        "the old secret no longer signs"
    );
}

#[tokio::test]
async fn keys_read_only_at_start_are_named_and_kept() {
    let server = TestServer::start_with(&three_apps("", "", ""));
    let mut client = subscribed(&server, APP_KEY, "news").await;
    let config = three_apps("", "", "").replace(
        "host = \"127.0.0.1\"",
        "host = \"127.0.0.1\"\nmax_frame_size = 32768\nworkers = 1",
    );
    server.rewrite_config(&config);
    server.sighup();
    let log = server.until_logged("take effect only at start", 1).await;
    assert!(
        log.contains("server.workers, server.max_frame_size"),
        "{log}"
    );
    // Still the frame size of the start (64 KiB): a 40000-byte message is no protocol error.
    client
        .send(json!({"event": "pusher:ping", "data": {"pad": "p".repeat(40_000)}}))
        .await;
    assert_eq!(client.recv().await["event"], "pusher:pong");
    still_receives(&server, &mut client, APP_ID, APP_SECRET, "news").await;
}

#[tokio::test]
async fn a_reload_that_leaves_an_app_s_webhooks_alone_keeps_their_delays() {
    let mut receiver = WebhookReceiver::start().await;
    let url = receiver.url();
    let webhook = |extra: &str| {
        format!(
            "webhook_vacate_delay_ms = 1500\n{extra}\n[[apps.webhooks]]\nurl = \"{url}\"\n{OCCUPANCY}\n"
        )
    };
    let server = TestServer::start_with(&three_apps(&webhook(""), "", ""));
    let mut client = subscribed(&server, APP_KEY, "news").await;
    receiver.expect_event(occupied("news")).await;
    unsubscribe(&mut client, "news").await;
    // The vacate is delayed; a reload that changes another key of the app comes first.
    server.rewrite_config(&three_apps(&webhook("max_event_size = 1000"), "", ""));
    server.sighup();
    server.until_logged("configuration reloaded", 1).await;
    client.subscribe("news").await;
    // Back within the delay: neither vacated nor occupied again, as without a reload.
    receiver.expect_nothing_within(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_changed_webhook_url_takes_the_events_from_then_on() {
    let mut before = WebhookReceiver::start().await;
    let mut after = WebhookReceiver::start().await;
    let webhook = |url: String| format!("[[apps.webhooks]]\nurl = \"{url}\"\n{OCCUPANCY}\n");
    let server = TestServer::start_with(&three_apps(&webhook(before.url()), "", ""));
    let mut client = subscribed(&server, APP_KEY, "first").await;
    before.expect_event(occupied("first")).await;
    server.rewrite_config(&three_apps(&webhook(after.url()), "", ""));
    server.sighup();
    let log = server.until_logged("configuration reloaded", 1).await;
    assert!(
        log.contains(&format!("app {APP_ID} changed (webhooks)")),
        "{log}"
    );
    client.subscribe("second").await;
    after.expect_event(occupied("second")).await;
    before
        .expect_nothing_within(Duration::from_millis(500))
        .await;
}
