//! Brute-force bans against the real server: failed authentications from one address ban
//! it from the app (403 with `Retry-After` for the API, 4009 for WebSockets) while other
//! addresses go on; channel-auth failures count too; an allowlisted address is never banned;
//! and failed logins from many addresses never lock an `auto_lockdown` app. (Growth and
//! expiry with a moved clock are in the unit tests of `guard::bans`.)

mod common;

use common::activity::{after_the_next_sync, store_of, until_stored};
use common::http::signed_read_from;
use common::{APP_ID, APP_SECRET, Client, TestServer, default_config};
use relay::activity::{EventKind, EventQuery};

fn with_security(lines: &str) -> String {
    format!("{}[apps.security]\n{lines}", default_config())
}

#[tokio::test]
async fn failures_ban_the_address_and_only_it() {
    let server = TestServer::start_with(&with_security(
        "ban_after_failures = 3\nban_time = \"1h\"\n",
    ));
    for _ in 0..3 {
        let response = signed_read_from(&server, "127.0.0.2", "wrong-secret").await;
        assert_eq!(response.status, 401, "{}", response.body);
    }
    let banned = signed_read_from(&server, "127.0.0.2", APP_SECRET).await;
    assert_eq!(banned.status, 403, "{}", banned.body);
    assert!(
        banned.error().starts_with("Address banned"),
        "{}",
        banned.body
    );
    let retry_after: u64 = banned.header("Retry-After").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&retry_after), "{retry_after}");
    assert_eq!(
        signed_read_from(&server, "127.0.0.3", APP_SECRET)
            .await
            .status,
        200
    );

    let socket = common::open_from(&server, "127.0.0.2", "/app/app-key?protocol=7", &[]).await;
    let mut client = Client::from_socket(socket);
    let error = client.recv_event("pusher:error").await;
    assert_eq!(error["data"]["code"], 4009);
    assert_eq!(client.expect_close().await, 4009);

    until_stored(&server, EventKind::AddressBanned).await;
    let query = EventQuery::newest(APP_ID, 10);
    let events = store_of(&server).events(&query).unwrap();
    let ban = events
        .iter()
        .find(|event| event.entry.kind == EventKind::AddressBanned)
        .unwrap();
    assert_eq!(ban.entry.address, Some("127.0.0.2".parse().unwrap()));
    assert!(ban.entry.message.contains("banned for 3600 s"));
    let failures = events
        .iter()
        .find(|event| event.entry.kind == EventKind::AuthFailure)
        .unwrap();
    assert_eq!(failures.entry.count, 3, "one entry for the three failures");
}

#[tokio::test]
async fn channel_auth_failures_count_and_a_banned_socket_cannot_guess_on() {
    let server = TestServer::start_with(&with_security("ban_after_failures = 2\n"));
    let socket = common::open_from(&server, "127.0.0.2", "/app/app-key?protocol=7", &[]).await;
    let mut client = Client::from_socket(socket);
    client.recv_event("pusher:connection_established").await;
    for attempt in 0..3 {
        let bad = serde_json::json!({
            "event": "pusher:subscribe",
            "data": {"channel": "private-a", "auth": "app-key:0000"}
        });
        client.send(bad).await;
        let refused = client.recv_event("pusher:subscription_error").await;
        client.recv_event("pusher:error").await;
        let message = refused["data"]["error"].as_str().unwrap().to_owned();
        if attempt == 2 {
            assert!(message.starts_with("Address banned"), "{message}");
        } else {
            assert!(!message.contains("banned"), "{message}");
        }
    }
    let banned = signed_read_from(&server, "127.0.0.2", APP_SECRET).await;
    assert_eq!(banned.status, 403, "{}", banned.body);
}

#[tokio::test]
async fn an_allowlisted_address_is_never_banned() {
    let server = TestServer::start_with(&with_security(
        "ban_after_failures = 2\nip_allowlist = [\"127.0.0.2/32\", \"127.0.0.3/32\"]\n",
    ));
    for _ in 0..6 {
        assert_eq!(
            signed_read_from(&server, "127.0.0.2", "wrong").await.status,
            401
        );
    }
    assert_eq!(
        signed_read_from(&server, "127.0.0.2", APP_SECRET)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn failed_logins_from_many_addresses_never_lock_the_app() {
    let server = TestServer::start_with(&with_security(
        "ban_after_failures = 2\nauto_lockdown = true\n",
    ));
    for host in 2..8 {
        let source = format!("127.0.0.{host}");
        for _ in 0..2 {
            assert_eq!(
                signed_read_from(&server, &source, "wrong").await.status,
                401
            );
        }
        // Still failing: a banned address with valid credentials would be a sign of a leak.
        assert_eq!(
            signed_read_from(&server, &source, "wrong").await.status,
            403
        );
    }
    until_stored(&server, EventKind::AddressBanned).await;
    after_the_next_sync(&server).await;
    assert!(store_of(&server).lockdowns().unwrap().is_empty());
    let response = signed_read_from(&server, "127.0.0.1", APP_SECRET).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let query = EventQuery {
        kind: Some(EventKind::LockdownStarted),
        ..EventQuery::newest(APP_ID, 10)
    };
    assert!(store_of(&server).events(&query).unwrap().is_empty());
}
