//! `auto_lockdown` against the real server: a revoked API token presented from three
//! addresses is three critical events, which lock the app down (API 403, new WebSockets
//! closed with 4003, open ones too with `lockdown_closes_connections`, kept without it);
//! `relay security resolve` lifts it on the running server within seconds, and both changes
//! are in the activity log. The secret of a pair past its grace presented from three
//! addresses locks too; two critical events do not.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{Response, now, raw_request_from, signed_path};
use common::{APP_ID, APP_SECRET, Client, TestServer, default_config};
use relay::activity::{EventKind, EventQuery};
use relay::store::{SqliteStore, Store};

/// A token and its `[[apps.tokens]]` block named `name`.
fn token(name: &str) -> (String, String) {
    let token = relay::guard::generate_token();
    let hash = relay::guard::WellFormedToken::parse(&token).unwrap().hash();
    (
        token,
        format!("[[apps.tokens]]\nname = \"{name}\"\nhash = \"{hash:?}\"\n"),
    )
}

fn config(token_block: &str, closes: bool) -> String {
    format!(
        "{}{token_block}[apps.security]\nauto_lockdown = true\nlockdown_closes_connections = {closes}\n",
        default_config()
    )
}

/// A signed `GET /apps/{id}/channels` from 127.0.0.1.
async fn signed_read(server: &TestServer) -> Response {
    let path = format!("/apps/{APP_ID}/channels");
    let target = signed_path("GET", &path, &[], "", APP_SECRET, now());
    raw_request_from(server, "127.0.0.1", "GET", &target, "", "").await
}

async fn with_token_from(server: &TestServer, source: &str, token: &str) -> u16 {
    let path = format!("/apps/{APP_ID}/channels");
    let header = format!("Authorization: Bearer {token}\r\n");
    raw_request_from(server, source, "GET", &path, "", &header)
        .await
        .status
}

/// Asks until a signed read is answered `status` (bounded).
async fn until_read_status(server: &TestServer, status: u16) -> Response {
    let start = Instant::now();
    loop {
        let response = signed_read(server).await;
        if response.status == status {
            return response;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn store_of(server: &TestServer) -> SqliteStore {
    SqliteStore::open(
        &server
            .config_path()
            .parent()
            .unwrap()
            .join("relay-state.db"),
    )
    .unwrap()
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

fn kinds_stored(server: &TestServer) -> Vec<EventKind> {
    let events = store_of(server)
        .events(&EventQuery::newest(APP_ID, 100))
        .unwrap();
    events.into_iter().map(|event| event.entry.kind).collect()
}

/// Waits (boundedly) until the activity log holds an event of `kind`.
async fn until_stored(server: &TestServer, kind: EventKind) {
    let start = Instant::now();
    while !kinds_stored(server).contains(&kind) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {kind:?} stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn three_critical_events_lock_the_app_until_they_are_resolved() {
    let (leaked, block) = token("ci");
    let server = TestServer::start_with(&config(&block, true));
    let mut open = Client::connect(&server).await;
    open.subscribe("news").await;
    revoke(&server, "ci", &leaked).await;
    // Two presentations from one address are one event; three addresses (with the probe's),
    // three.
    for source in ["127.0.0.3", "127.0.0.4", "127.0.0.4"] {
        assert_eq!(with_token_from(&server, source, &leaked).await, 401);
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
    assert_eq!(events.len(), 3, "{events:?}");
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
    let (leaked, block) = token("ci");
    let server = TestServer::start_with(&config(&block, false));
    let mut open = Client::connect(&server).await;
    revoke(&server, "ci", &leaked).await;
    for source in ["127.0.0.3", "127.0.0.4"] {
        assert_eq!(with_token_from(&server, source, &leaked).await, 401);
    }
    until_read_status(&server, 403).await;
    open.send(serde_json::json!({"event": "pusher:ping", "data": {}}))
        .await;
    open.recv_event("pusher:pong").await;
}

#[tokio::test]
async fn two_critical_events_do_not_lock() {
    let (leaked, block) = token("ci");
    let server = TestServer::start_with(&config(&block, false));
    revoke(&server, "ci", &leaked).await;
    for source in ["127.0.0.3"] {
        assert_eq!(with_token_from(&server, source, &leaked).await, 401);
    }
    let start = Instant::now();
    while store_of(&server)
        .events(&EventQuery {
            kind: Some(EventKind::RevokedTokenUsed),
            ..EventQuery::newest(APP_ID, 10)
        })
        .unwrap()
        .len()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "events not stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The sync that stored them has decided; the app is still open.
    assert_eq!(signed_read(&server).await.status, 200);
}

#[tokio::test]
async fn an_expired_pair_still_signing_locks_the_app() {
    let config = format!(
        "{}[[apps.previous_credentials]]\nkey = \"old-key\"\nsecret = \"old-secret\"\n\
         valid_until = \"2020-01-01T00:00:00Z\"\n[apps.security]\nauto_lockdown = true\n",
        default_config()
    );
    let server = TestServer::start_with(&config);
    let path = format!("/apps/{APP_ID}/channels");
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        let target =
            common::http::signed_path_as("GET", &path, &[], "", ("old-key", "old-secret"), now());
        let refused = raw_request_from(&server, source, "GET", &target, "", "").await;
        assert_eq!(refused.status, 401);
        assert_eq!(refused.error(), "auth_key does not belong to this app");
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
