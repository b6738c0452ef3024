//! Secret scanning of event payloads against the real server: `reject` refuses with 422 (a
//! batch as a whole) or a `pusher:error` for a client event and delivers nothing; `redact`
//! delivers valid JSON with `[REDACTED]`; `warn` delivers unchanged and logs the detector and
//! position only; encrypted channels are never scanned; personal-data detectors are off
//! unless named and any detector can be skipped; a live API token seen in a payload is revoked
//! at once and the app's own secret is reported; an unknown detector stops the start-up.

mod common;

use std::process::Command;

use common::http::{raw_request_from, trigger};
use common::{APP_ID, APP_SECRET, Client, TestServer, default_config};
use serde_json::{Value, json};

/// A real-looking AWS access key id (not the published example).
const AWS_KEY: &str = "AKIAZ7Q3KXJ4M2P5LR6T";
/// A GitHub token shape.
const GITHUB_TOKEN: &str = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R";
/// A Luhn-valid Visa test number.
const CARD: &str = "4111 1111 1111 1111";

fn scanning(mode: &str, extra: &str) -> String {
    format!(
        "{}[apps.security]\nsecret_scanning = \"{mode}\"\n{extra}",
        default_config()
    )
}

async fn subscriber(server: &TestServer, channel: &str) -> Client {
    let mut client = Client::connect(server).await;
    client.subscribe(channel).await;
    client
}

#[tokio::test]
async fn reject_refuses_with_422_naming_the_detectors_and_delivers_nothing() {
    let server = TestServer::start_with(&scanning("reject", ""));
    let mut client = subscriber(&server, "orders").await;
    let data = json!({"note": format!("keys {AWS_KEY} and {GITHUB_TOKEN}")}).to_string();
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["orders"], "data": data}),
    )
    .await;
    assert_eq!(response.status, 422, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"error": "payload contains a secret", "detectors": ["aws-access-key", "github-token"]})
    );
    assert!(!response.body.contains(AWS_KEY), "never echoed");
    let batch = json!({"batch": [
        {"name": "ok", "channel": "orders", "data": "fine"},
        {"name": "bad", "channel": "orders", "data": format!("token {GITHUB_TOKEN}")},
    ]});
    let response =
        common::http::api(&server, "POST", "/batch_events", &[], &batch.to_string()).await;
    assert_eq!(response.status, 422, "{}", response.body);
    assert_eq!(
        response.json()["error"],
        "batch[1]: payload contains a secret"
    );
    client.assert_nothing_pending().await;
    let clean = trigger(
        &server,
        json!({"name": "e", "channels": ["orders"], "data": "nothing secret"}),
    )
    .await;
    assert_eq!(clean.status, 200);
    assert_eq!(client.recv_event("e").await["data"], "nothing secret");
    assert!(
        !server.log().contains(AWS_KEY),
        "the log holds no matched text"
    );
}

#[tokio::test]
async fn redact_delivers_valid_json_with_each_secret_replaced() {
    let server = TestServer::start_with(&scanning("redact", ""));
    let mut client = subscriber(&server, "orders").await;
    let data = json!({"note": format!("key {AWS_KEY}"), "n": 1}).to_string();
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["orders"], "data": data}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let event = client.recv_event("e").await;
    let delivered: Value = serde_json::from_str(event["data"].as_str().unwrap()).unwrap();
    assert_eq!(delivered, json!({"note": "key [REDACTED]", "n": 1}));
}

#[tokio::test]
async fn warn_delivers_unchanged_and_logs_only_the_detector_and_position() {
    let server = TestServer::start_with(&scanning("warn", ""));
    let mut client = subscriber(&server, "orders").await;
    let data = format!("key {AWS_KEY}");
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["orders"], "data": data}),
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(client.recv_event("e").await["data"], data.as_str());
    let log = server.log();
    assert!(log.contains("secret found in an event's data"), "{log}");
    assert!(log.contains("aws-access-key@4..24"), "{log}");
    assert!(!log.contains(AWS_KEY), "{log}");
}

#[tokio::test]
async fn encrypted_channels_are_never_scanned() {
    let server = TestServer::start_with(&scanning("reject", ""));
    let mut client = subscriber(&server, "private-encrypted-vault").await;
    let data = json!({"nonce": "x", "ciphertext": AWS_KEY}).to_string();
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["private-encrypted-vault"], "data": data}),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(client.recv_event("e").await["data"], data.as_str());
}

#[tokio::test]
async fn personal_data_is_off_unless_named_and_detectors_can_be_skipped() {
    let default = TestServer::start_with(&scanning("reject", ""));
    let card = trigger(
        &default,
        json!({"name": "e", "channels": ["c"], "data": format!("card {CARD}")}),
    )
    .await;
    assert_eq!(card.status, 200, "cards are personal data, off by default");
    let named = TestServer::start_with(&scanning(
        "reject",
        "secret_scanning_pii = [\"card\"]\nsecret_scanning_skip = [\"aws-access-key\"]\n",
    ));
    let card = trigger(
        &named,
        json!({"name": "e", "channels": ["c"], "data": format!("card {CARD}")}),
    )
    .await;
    assert_eq!(card.status, 422);
    assert_eq!(card.json()["detectors"], json!(["card"]));
    let aws = trigger(
        &named,
        json!({"name": "e", "channels": ["c"], "data": format!("key {AWS_KEY}")}),
    )
    .await;
    assert_eq!(aws.status, 200, "skipped");
}

#[tokio::test]
async fn client_events_are_refused_to_the_sender_or_redacted_for_the_others() {
    for mode in ["reject", "redact"] {
        let server = TestServer::start_with(&scanning(mode, ""));
        let channel = "private-chat";
        let mut sender = subscriber(&server, channel).await;
        let mut other = subscriber(&server, channel).await;
        sender
            .trigger(
                channel,
                "client-msg",
                json!({"text": format!("key {AWS_KEY}")}),
            )
            .await;
        if mode == "reject" {
            let error = sender.recv_event("pusher:error").await;
            assert_eq!(
                error["data"]["message"],
                "Client event rejected: payload contains a secret (aws-access-key)"
            );
            other.assert_nothing_pending().await;
        } else {
            let event = other.recv_event("client-msg").await;
            // Client event data is forwarded as the JSON the client sent, here redacted.
            assert_eq!(event["data"], json!({"text": "key [REDACTED]"}));
        }
    }
}

/// `GET /apps/{id}/channels` with `token`: the status.
async fn status_with_token(server: &TestServer, token: &str) -> u16 {
    let path = format!("/apps/{APP_ID}/channels");
    let bearer = format!("Authorization: Bearer {token}\r\n");
    raw_request_from(server, "127.0.0.1", "GET", &path, "", &bearer)
        .await
        .status
}

#[tokio::test]
async fn a_live_token_in_a_payload_is_revoked_at_once_and_the_apps_secret_is_reported() {
    let token = relay::guard::generate_token();
    let hash = relay::guard::WellFormedToken::parse(&token).unwrap().hash();
    let config = format!(
        "{}[[apps.tokens]]\nname = \"ci\"\nhash = \"{hash:?}\"\n",
        scanning("warn", "")
    );
    let server = TestServer::start_with(&config);
    assert_eq!(status_with_token(&server, &token).await, 200);
    let response = trigger(
        &server,
        json!({"name": "e", "channels": ["c"], "data": format!("use {token} and {APP_SECRET}")}),
    )
    .await;
    assert_eq!(response.status, 200, "warn delivers");
    assert_eq!(
        status_with_token(&server, &token).await,
        401,
        "revoked at once, without a sync"
    );
    let log = server.log();
    assert!(log.contains("a live API token was published"), "{log}");
    assert!(log.contains("the app's secret was published"), "{log}");
    assert!(!log.contains(&token) && !log.contains(APP_SECRET), "{log}");
    // The revocation reaches the store (and so survives a restart).
    let start = std::time::Instant::now();
    loop {
        let listed = Command::new(env!("CARGO_BIN_EXE_relay"))
            .arg("--config")
            .arg(server.config_path())
            .args(["token", "list", "--app", APP_ID])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&listed.stdout).starts_with("ci  REVOKED") {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "never stored"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn an_unknown_detector_is_a_start_up_error() {
    let (passed, said) =
        common::check_config(&scanning("warn", "secret_scanning_skip = [\"aws-key\"]\n"));
    assert!(!passed);
    assert!(
        said.contains("unknown detector \"aws-key\"") && said.contains("aws-access-key"),
        "{said}"
    );
}
