//! The `[metrics]` listener: a scripted session (two connections, a public and a presence
//! channel, a trigger, HTTP calls right and wrong, a refusal by an IP rule and by a rate
//! limit, webhooks, a connection closed), then a scrape whose counters and gauges must be
//! exactly what the session did.

mod common;

use common::http::{Response, api, now, raw_request_from, signed_path, signed_path_as};
use common::metrics::{app_series, sample, scrape, until};
use common::webhooks::WebhookReceiver;
use common::{APP_ID, Client, TestServer, default_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const GUARDED: (&str, &str, &str) = ("222222", "guarded-key", "guarded-secret-0000");
const LIMITED: (&str, &str, &str) = ("333333", "limited-key", "limited-secret-0000");

fn config(webhook_url: &str) -> String {
    let app = |(id, key, secret): (&str, &str, &str), extra: &str| {
        format!("\n[[apps]]\nid = \"{id}\"\nkey = \"{key}\"\nsecret = \"{secret}\"\n{extra}\n")
    };
    format!(
        "[metrics]\nport = 0\n{}\n[[apps.webhooks]]\nurl = \"{webhook_url}\"\nevents = [\"channel_occupied\"]\n{}{}",
        default_config(),
        app(GUARDED, "[apps.security]\nip_allowlist = [\"10.0.0.0/8\"]"),
        app(LIMITED, "[apps.limits]\nread_requests_per_second = 1"),
    )
}

async fn text_frame(client: &mut Client) -> String {
    loop {
        match client.next_message().await {
            Message::Text(text) => return text.to_string(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn signed_get(server: &TestServer, (id, key, secret): (&str, &str, &str)) -> Response {
    let path = format!("/apps/{id}/channels");
    let target = signed_path_as("GET", &path, &[], "", (key, secret), now());
    raw_request_from(server, "127.0.0.1", "GET", &target, "", "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_shows_exactly_what_a_session_did() {
    let mut receiver = WebhookReceiver::start().await;
    let server = TestServer::start_with(&config(&receiver.url()));
    let port = server.metrics_port();

    // Two connections: one on a public channel, one on a presence channel.
    let mut reader = Client::connect(&server).await;
    let mut member = Client::connect(&server).await;
    let subscribe = r#"{"event":"pusher:subscribe","data":{"channel":"news"}}"#;
    reader.send_text(subscribe).await;
    reader
        .recv_event("pusher_internal:subscription_succeeded")
        .await;
    let data = r#"{"user_id":"u1"}"#;
    let auth = common::presence_auth(&member.socket_id, "presence-room", data);
    let join = serde_json::json!({
        "event": "pusher:subscribe",
        "data": {"channel": "presence-room", "auth": auth, "channel_data": data},
    })
    .to_string();
    member.send_text(&join).await;
    member
        .recv_event("pusher_internal:subscription_succeeded")
        .await;
    let received_bytes = subscribe.len() + join.len();

    // One trigger reaching the reader, and HTTP calls right and wrong.
    let body = r#"{"name":"greeting","channels":["news"],"data":"{\"n\":1}"}"#;
    assert_eq!(api(&server, "POST", "/events", &[], body).await.status, 200);
    let delivered = text_frame(&mut reader).await;
    assert!(delivered.contains("greeting"), "{delivered}");
    assert_eq!(api(&server, "GET", "/channels", &[], "").await.status, 200);
    let path = format!("/apps/{APP_ID}/channels");
    let forged = signed_path("GET", &path, &[], "", "not-the-secret", now());
    let refused = raw_request_from(&server, "127.0.0.1", "GET", &forged, "", "").await;
    assert_eq!(refused.status, 401);
    let nobody = signed_path("GET", "/apps/999999/channels", &[], "", "x", now());
    let missing = raw_request_from(&server, "127.0.0.1", "GET", &nobody, "", "").await;
    assert_eq!(missing.status, 404);

    // A refusal by an IP rule, and as many by a rate limit as it takes to see one.
    assert_eq!(signed_get(&server, GUARDED).await.status, 403);
    let mut limited = 0;
    for _ in 0..20 {
        match signed_get(&server, LIMITED).await.status {
            200 => {}
            429 => limited += 1,
            other => panic!("unexpected status {other}"),
        }
        if limited == 2 {
            break;
        }
    }
    assert_eq!(limited, 2, "the read limit never refused twice");

    // The webhooks of both channels' occupation, in one request or two.
    let mut webhook_requests = 0;
    let mut occupied = Vec::new();
    while occupied.len() < 2 {
        let webhook = receiver.next().await;
        webhook_requests += 1;
        for event in webhook.events() {
            occupied.push(event["channel"].as_str().unwrap().to_owned());
        }
    }
    occupied.sort();
    assert_eq!(occupied, ["news", "presence-room"]);

    // The reader leaves (a close frame without a code: 1005).
    reader.close().await;
    let text = until(port, &app_series("relay_connections", APP_ID), 1.0).await;
    let text = if sample(&text, &app_series("relay_webhook_deliveries_total", APP_ID))
        == Some(f64::from(webhook_requests))
    {
        text
    } else {
        until(
            port,
            &app_series("relay_webhook_deliveries_total", APP_ID),
            f64::from(webhook_requests),
        )
        .await
    };

    let expected = [
        (app_series("relay_connections_opened_total", APP_ID), 2.0),
        (
            format!("relay_connections_closed_total{{app_id=\"{APP_ID}\",code=\"1005\"}}"),
            1.0,
        ),
        (app_series("relay_connections", APP_ID), 1.0),
        (app_series("relay_channels", APP_ID), 1.0),
        (app_series("relay_presence_subscriptions", APP_ID), 1.0),
        (app_series("relay_messages_sent_total", APP_ID), 1.0),
        (
            app_series("relay_sent_bytes_total", APP_ID),
            delivered.len() as f64,
        ),
        (app_series("relay_messages_received_total", APP_ID), 2.0),
        (
            app_series("relay_received_bytes_total", APP_ID),
            received_bytes as f64,
        ),
        (
            format!(
                "relay_http_requests_total{{app_id=\"{APP_ID}\",endpoint=\"events\",status=\"200\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "relay_http_requests_total{{app_id=\"{APP_ID}\",endpoint=\"channels\",status=\"200\"}}"
            ),
            1.0,
        ),
        (
            format!(
                "relay_http_requests_total{{app_id=\"{APP_ID}\",endpoint=\"channels\",status=\"401\"}}"
            ),
            1.0,
        ),
        (
            "relay_http_requests_total{app_id=\"unknown\",endpoint=\"channels\",status=\"404\"}"
                .to_owned(),
            1.0,
        ),
        (
            format!(
                "relay_guard_refusals_total{{app_id=\"{}\",rule=\"ip_allowlist\"}}",
                GUARDED.0
            ),
            1.0,
        ),
        (
            format!(
                "relay_security_events_total{{app_id=\"{}\",rule=\"address_denied\"}}",
                GUARDED.0
            ),
            1.0,
        ),
        (
            format!("relay_security_events_total{{app_id=\"{APP_ID}\",rule=\"auth_failure\"}}"),
            1.0,
        ),
        (
            format!(
                "relay_limit_refusals_total{{app_id=\"{}\",rule=\"read_requests_per_second\"}}",
                LIMITED.0
            ),
            2.0,
        ),
        (
            format!(
                "relay_http_requests_total{{app_id=\"{}\",endpoint=\"channels\",status=\"429\"}}",
                LIMITED.0
            ),
            2.0,
        ),
        (
            app_series("relay_webhook_deliveries_total", APP_ID),
            f64::from(webhook_requests),
        ),
        (app_series("relay_webhook_retries_total", APP_ID), 0.0),
        (app_series("relay_webhook_queue_depth", APP_ID), 0.0),
        (app_series("relay_webhook_pending_batches", APP_ID), 0.0),
    ];
    let mut wrong = Vec::new();
    for (series, value) in &expected {
        let found = sample(&text, series);
        if found != Some(*value) {
            wrong.push(format!("{series}: expected {value}, found {found:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
    // Nothing unbounded is a label: no channel name, user id, socket id or address.
    for private in [
        "news",
        "presence-room",
        "u1",
        &member.socket_id,
        "127.0.0.1",
    ] {
        assert!(
            !text.contains(private),
            "{private} is in the metrics:\n{text}"
        );
    }
}

#[tokio::test]
async fn the_metrics_listener_serves_openmetrics_text_and_nothing_else() {
    let server = TestServer::start_with(&format!("[metrics]\nport = 0\n{}", default_config()));
    let port = server.metrics_port();
    let (text, content_type) = scrape(port).await;
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE relay_adapter_publish_seconds histogram"),
        "{text}"
    );
    // The API is not on the metrics port, and /metrics is not on the API's.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    let api_side = common::http::raw_request(&server, "GET", "/metrics", "").await;
    assert_eq!(api_side.status, 404);
}
