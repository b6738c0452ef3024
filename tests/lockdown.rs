//! `auto_lockdown` against the real server. Three distinct critical events lock the app down
//! (API 403, new WebSockets closed with 4003, open ones too with
//! `lockdown_closes_connections`, kept without it) and `relay security resolve` lifts it on the
//! running server within seconds, both changes in the activity log: a revoked API token
//! presented (one event however many addresses present it) and the secret of a pair past its
//! grace signing from two more addresses; that secret from three addresses; valid credentials
//! from a geo-blocked address are one. Two distinct events do not lock.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::activity::{after_the_next_sync, store_of, until_stored};
use common::http::{
    Response, now, raw_request_from, signed_path, signed_read_from, with_token_from,
};
use common::{APP_ID, APP_SECRET, Client, TestServer, api_token, default_config};
use relay::activity::{EventKind, EventQuery};

/// A previous pair whose grace ended long ago.
const EXPIRED_PAIR: &str = "[[apps.previous_credentials]]\nkey = \"old-key\"\n\
    secret = \"old-secret\"\nvalid_until = \"2020-01-01T00:00:00Z\"\n";

fn config(token_block: &str, closes: bool) -> String {
    format!(
        "{}{token_block}{EXPIRED_PAIR}[apps.security]\nauto_lockdown = true\n\
         lockdown_closes_connections = {closes}\n",
        default_config()
    )
}

/// A read signed with the expired pair from `source`: refused as an unknown key.
async fn expired_pair_from(server: &TestServer, source: &str) {
    let path = format!("/apps/{APP_ID}/channels");
    let pair = ("old-key", "old-secret");
    let target = common::http::signed_path_as("GET", &path, &[], "", pair, now());
    let refused = raw_request_from(server, source, "GET", &target, "", "").await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error(), "auth_key does not belong to this app");
}

/// Asks until a signed read is answered `status` (bounded).
async fn until_read_status(server: &TestServer, status: u16) -> Response {
    let start = Instant::now();
    loop {
        let response = signed_read_from(server, "127.0.0.1", APP_SECRET).await;
        if response.status == status {
            return response;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Revokes `name` with the real CLI and waits until the server refuses it from 127.0.0.2
/// (whose first refusal is the first critical event).
async fn revoke(server: &TestServer, name: &str, token: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(server.config_path())
        .args(["token", "revoke", "--app", APP_ID, "--name", name])
        .output()
        .expect("run relay token revoke");
    assert!(output.status.success(), "{output:?}");
    let start = Instant::now();
    while with_token_from(server, "127.0.0.2", token).await != 401 {
        assert!(start.elapsed() < Duration::from_secs(10), "never revoked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_critical_events_lock_the_app_until_they_are_resolved() {
    let (leaked, block) = api_token("ci", &[]);
    let server = TestServer::start_with(&config(&block, true));
    let mut open = Client::connect(&server).await;
    open.subscribe("news").await;
    revoke(&server, "ci", &leaked).await;
    // The probe's presentation and these are one event (one token); the expired pair from two
    // addresses, two more.
    for source in ["127.0.0.3", "127.0.0.4"] {
        assert_eq!(with_token_from(&server, source, &leaked).await, 401);
    }
    for source in ["127.0.0.5", "127.0.0.6"] {
        expired_pair_from(&server, source).await;
    }
    let refused = until_read_status(&server, 403).await;
    assert_eq!(refused.error(), "App is locked down");
    assert_eq!(
        open.expect_close().await,
        4003,
        "open connections are closed"
    );
    let socket = common::open(&server.ws_url("/app/app-key?protocol=7")).await;
    let mut late = Client::from_socket(socket);
    let error = late.recv_event("pusher:error").await;
    assert_eq!(error["data"]["message"], "Application is locked down");
    assert_eq!(late.expect_close().await, 4003);

    let critical = EventQuery {
        kind: Some(EventKind::RevokedTokenUsed),
        ..EventQuery::newest(APP_ID, 10)
    };
    let events = store_of(&server).events(&critical).unwrap();
    assert_eq!(events.len(), 3, "an entry per address: {events:?}");
    assert!(
        events
            .iter()
            .all(|event| event.entry.message.contains("\"ci\""))
    );
    until_stored(&server, EventKind::LockdownStarted).await;

    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(server.config_path())
        .args(["security", "resolve", "--app", APP_ID])
        .output()
        .expect("run relay security resolve");
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert!(said.contains("is no longer locked down"), "{said}");
    until_read_status(&server, 200).await;
    let mut back = Client::connect(&server).await;
    back.subscribe("news").await;
    until_stored(&server, EventKind::LockdownLifted).await;
}

#[tokio::test]
async fn without_closing_connections_open_ones_stay_through_a_lockdown() {
    let server = TestServer::start_with(&config("", false));
    let mut open = Client::connect(&server).await;
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        expired_pair_from(&server, source).await;
    }
    until_read_status(&server, 403).await;
    open.send(serde_json::json!({"event": "pusher:ping", "data": {}}))
        .await;
    open.recv_event("pusher:pong").await;
}

#[tokio::test]
async fn two_distinct_critical_events_do_not_lock() {
    let (leaked, block) = api_token("ci", &[]);
    let server = TestServer::start_with(&config(&block, false));
    revoke(&server, "ci", &leaked).await;
    // One token from four addresses is one event; the expired pair from one address another.
    for source in ["127.0.0.3", "127.0.0.4", "127.0.0.5"] {
        assert_eq!(with_token_from(&server, source, &leaked).await, 401);
    }
    expired_pair_from(&server, "127.0.0.6").await;
    until_stored(&server, EventKind::ExpiredPairUsed).await;
    after_the_next_sync(&server).await;
    assert!(store_of(&server).lockdowns().unwrap().is_empty());
    assert_eq!(
        signed_read_from(&server, "127.0.0.1", APP_SECRET)
            .await
            .status,
        200,
        "the app is open"
    );
    let revoked = EventQuery {
        kind: Some(EventKind::RevokedTokenUsed),
        ..EventQuery::newest(APP_ID, 10)
    };
    assert_eq!(store_of(&server).events(&revoked).unwrap().len(), 4);
}

#[tokio::test]
async fn an_expired_pair_still_signing_locks_the_app() {
    let server = TestServer::start_with(&config("", false));
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        expired_pair_from(&server, source).await;
    }
    let locked = until_read_status(&server, 403).await;
    assert_eq!(locked.error(), "App is locked down");
    let expired = EventQuery {
        kind: Some(EventKind::ExpiredPairUsed),
        ..EventQuery::newest(APP_ID, 10)
    };
    assert_eq!(store_of(&server).events(&expired).unwrap().len(), 3);
}

#[tokio::test]
async fn valid_credentials_from_a_geo_blocked_address_are_critical() {
    let dir = tempfile::tempdir().unwrap();
    let database = common::geoip::test_database(dir.path());
    // 127.0.0.2 is DE and 127.0.0.3 FR in geoip/test-countries.txt.
    let config = format!(
        "{}[apps.security]\ngeo = {{ mode = \"block\", countries = [\"DE\"] }}\n\
         [geoip]\ndatabase = \"{}\"\n",
        default_config(),
        database.display()
    );
    let server = TestServer::start_with(&config);
    let path = format!("/apps/{APP_ID}/channels");
    let wrong = signed_path("GET", &path, &[], "", "wrong", now());
    let refused = raw_request_from(&server, "127.0.0.2", "GET", &wrong, "", "").await;
    assert_eq!(
        refused.error(),
        "Country not allowed",
        "the same answer either way"
    );
    let valid = signed_path("GET", &path, &[], "", APP_SECRET, now());
    let refused = raw_request_from(&server, "127.0.0.2", "GET", &valid, "", "").await;
    assert_eq!(
        (refused.status, refused.error().as_str()),
        (403, "Country not allowed")
    );
    assert_eq!(
        raw_request_from(&server, "127.0.0.3", "GET", &valid, "", "")
            .await
            .status,
        200
    );
    until_stored(&server, EventKind::CredentialsFromBlockedAddress).await;
    let query = EventQuery {
        kind: Some(EventKind::CredentialsFromBlockedAddress),
        ..EventQuery::newest(APP_ID, 10)
    };
    let events = store_of(&server).events(&query).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].entry.count, 1, "the wrong secret did not count");
    assert_eq!(events[0].entry.address, Some("127.0.0.2".parse().unwrap()));
}
