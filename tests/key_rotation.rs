//! Key rotation against the real server: a previous pair works in every place a pair is
//! checked (HTTP API, channel auth, sign-in, WebSocket key) until its `valid_until` and not
//! after; webhooks are signed by the pair `webhook_signing` chooses; a `relay keys rotate`
//! reaches the running server (which opens the store the CLI made) and the uses of the
//! replaced pair are counted; a scheduled rotation due while the server was down happens at
//! start-up and is announced, one not yet due is not redone, and a running server rotates
//! when the schedule comes due. The store's pairs win over config.toml's throughout.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::http::{now, raw_request, signed_path_as};
use common::webhooks::WebhookReceiver;
use common::{APP_ID, APP_KEY, APP_SECRET, Client, TestServer, default_config, sign};
use futures_util::StreamExt;
use relay::store::{Rotation, RotationReason, SqliteStore, Store};
use serde_json::{Value, json};

const OLD_KEY: &str = "old-key";
const OLD_SECRET: &str = "old-secret";
/// How long a test waits for something the server does on its own (a sync round, a grace
/// ending).
const PATIENCE: Duration = Duration::from_secs(15);

/// `GET /apps/{id}/channels` signed with `pair`: the status.
async fn status_as(server: &TestServer, pair: (&str, &str)) -> u16 {
    let path = format!("/apps/{APP_ID}/channels");
    let target = signed_path_as("GET", &path, &[], "", pair, now());
    raw_request(server, "GET", &target, "").await.status
}

/// Asks with `pair` until the answer is `status`, within [`PATIENCE`].
async fn until_status(server: &TestServer, pair: (&str, &str), status: u16) {
    let start = Instant::now();
    while status_as(server, pair).await != status {
        assert!(start.elapsed() < PATIENCE, "never {status} for {}", pair.0);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `relay --config <config> keys <args…>`: asserts success, returns stdout.
fn keys(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    common::relay_cli(config, &all)
}

/// `relay keys show`'s current secret and the rest of its first line.
fn current_secret(config: &Path) -> (String, String) {
    let shown = keys(config, &["show", "--app", APP_ID]);
    let first = shown.lines().next().expect("a current line").to_owned();
    let secret = first
        .split("  secret ")
        .nth(1)
        .and_then(|rest| rest.split("  ").next())
        .expect("the current secret")
        .to_owned();
    (secret, first)
}

/// `relay keys show` until one of its lines satisfies `wanted`, within [`PATIENCE`].
fn until_shown(config: &Path, wanted: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let shown = keys(config, &["show", "--app", APP_ID]);
        if shown.lines().any(&wanted) {
            return shown;
        }
        assert!(start.elapsed() < PATIENCE, "never shown: {shown}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

/// A store at `path` holding one rotation made `ago`: config.toml's pair replaced by
/// `app-key`/`secret`, the replaced pair valid for an hour after.
fn store_rotated(path: &Path, secret: &str, ago: Duration) {
    let at = SystemTime::now() - ago;
    let store = SqliteStore::open(path).unwrap();
    let rotated = store
        .rotate(&Rotation {
            app_id: APP_ID,
            based_on: None,
            replaced: (APP_KEY, APP_SECRET),
            new_key: APP_KEY,
            new_secret: secret,
            at,
            replaced_valid_until: at + Duration::from_secs(3600),
            reason: RotationReason::Manual,
        })
        .unwrap();
    assert_eq!(rotated, relay::store::Rotated::Done(1));
}

#[tokio::test]
async fn a_previous_pair_works_everywhere_until_valid_until_and_not_after() {
    // Whole seconds, as the file says it.
    let until =
        humantime::parse_rfc3339(&rfc3339(SystemTime::now() + Duration::from_secs(8))).unwrap();
    let config = format!(
        "{}[[apps.previous_credentials]]\nkey = \"{OLD_KEY}\"\nsecret = \"{OLD_SECRET}\"\nvalid_until = \"{}\"\n",
        default_config(),
        rfc3339(until)
    );
    let server = TestServer::start_with(&config);
    assert_eq!(status_as(&server, (OLD_KEY, OLD_SECRET)).await, 200);
    assert_eq!(status_as(&server, (APP_KEY, APP_SECRET)).await, 200);
    assert_eq!(
        status_as(&server, (OLD_KEY, APP_SECRET)).await,
        401,
        "a key goes with its own secret"
    );
    let mut old = Client::connect_to(&server, OLD_KEY).await;
    let channel = "private-orders";
    let auth = format!(
        "{OLD_KEY}:{}",
        sign(OLD_SECRET, &format!("{}:{channel}", old.socket_id))
    );
    let reply = old.subscribe_with(channel, Some(&auth), None).await;
    assert_eq!(reply["event"], "pusher_internal:subscription_succeeded");
    let user_data = json!({"id": "7"}).to_string();
    let auth = format!(
        "{OLD_KEY}:{}",
        sign(OLD_SECRET, &format!("{}::user::{user_data}", old.socket_id))
    );
    old.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    assert_eq!(old.recv().await["event"], "pusher:signin_success");

    until_status(&server, (OLD_KEY, OLD_SECRET), 401).await;
    assert!(SystemTime::now() >= until, "refused only after valid_until");
    let late = format!(
        "{OLD_KEY}:{}",
        sign(OLD_SECRET, &format!("{}:private-late", old.socket_id))
    );
    let reply = old.subscribe_with("private-late", Some(&late), None).await;
    assert_eq!(reply["event"], "pusher:subscription_error", "{reply}");
    let mut refused = common::open(&server.ws_url(&format!("/app/{OLD_KEY}?protocol=7"))).await;
    let error = refused.next().await;
    let text = match error {
        Some(Ok(message)) => message.into_text().unwrap().to_string(),
        other => panic!("no pusher:error: {other:?}"),
    };
    let frame: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(frame["event"], "pusher:error");
    assert_eq!(frame["data"]["code"], 4001, "{frame}");
    assert_eq!(status_as(&server, (APP_KEY, APP_SECRET)).await, 200);
}

/// One webhook from a server whose app has `lines`, as received.
async fn webhook_with(lines: &str) -> common::webhooks::Received {
    let mut receiver = WebhookReceiver::start().await;
    let config = common::webhooks::config(lines, &[(&receiver.url(), common::webhooks::OCCUPANCY)]);
    let server = TestServer::start_with(&config);
    let mut client = Client::connect(&server).await;
    client.subscribe("news").await;
    let received = receiver.next().await;
    assert_eq!(received.event()["name"], "channel_occupied");
    received
}

#[tokio::test]
async fn webhooks_are_signed_by_the_oldest_valid_pair_or_the_newest() {
    let previous = format!(
        "[[apps.previous_credentials]]\nkey = \"{OLD_KEY}\"\nsecret = \"{OLD_SECRET}\"\nvalid_until = \"2999-01-01T00:00:00Z\"\n"
    );
    let expired = "[[apps.previous_credentials]]\nkey = \"older-key\"\nsecret = \"older\"\nvalid_until = \"2000-01-01T00:00:00Z\"\n";
    for (signing, key, secret) in [
        ("", OLD_KEY, OLD_SECRET),
        ("webhook_signing = \"oldest\"\n", OLD_KEY, OLD_SECRET),
        ("webhook_signing = \"newest\"\n", APP_KEY, APP_SECRET),
    ] {
        // Keys of [[apps]] must come before its sub-tables.
        let received = webhook_with(&format!("{signing}{previous}{expired}")).await;
        assert_eq!(received.headers["x-pusher-key"], key, "{signing:?}");
        assert_eq!(
            received.headers["x-pusher-signature"],
            sign(secret, &received.body),
            "{signing:?}"
        );
    }
}

#[tokio::test]
async fn a_cli_rotation_reaches_the_running_server_and_counts_the_replaced_pair() {
    let server = TestServer::start();
    let store = server.config_path().with_file_name("relay-state.db");
    assert!(!store.exists(), "nothing needs the store yet");
    let said = keys(&server.config_path(), &["rotate", "--app", APP_ID]);
    assert!(said.contains("generation 1 (key app-key)"), "{said}");
    let (secret, line) = current_secret(&server.config_path());
    assert_ne!(secret, APP_SECRET);
    assert!(line.contains("generation 1 (manual, "), "{line}");
    until_status(&server, (APP_KEY, &secret), 200).await;
    // The replaced pair is in its grace (24 hours by default), and its uses are counted.
    for _ in 0..3 {
        assert_eq!(status_as(&server, (APP_KEY, APP_SECRET)).await, 200);
    }
    let shown = until_shown(&server.config_path(), |line| {
        line.contains("(generation 0)  3 uses, last ")
            && line.ends_with("from 127.0.0.1 (HTTP API)")
    });
    assert!(
        !shown.contains(APP_SECRET),
        "only the current secret is printed: {shown}"
    );
    assert!(server.log().contains("the state store is open"));
    assert!(
        !server.log().contains(&secret),
        "the log never holds a secret"
    );
}

#[tokio::test]
async fn a_rotation_due_while_the_server_was_down_happens_at_start_up_and_is_announced() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    store_rotated(
        &store,
        "stored-secret-1",
        Duration::from_secs(91 * 24 * 3600),
    );
    let mut receiver = WebhookReceiver::start().await;
    let config = format!(
        "{}rotation = {{ every = \"90d\", grace = \"1h\" }}\nrotation_webhook = \"{}\"\n[store]\npath = \"{}\"\n",
        default_config(),
        receiver.url(),
        store.display()
    );
    let server = TestServer::start_with(&config);
    let notice = receiver.next().await;
    let event = notice.event();
    assert_eq!(event["name"], "credentials_rotated");
    assert_eq!(event["app_id"], APP_ID);
    assert_eq!(event["generation"], 2);
    assert_eq!(event["reason"], "scheduled");
    assert_eq!(event["previous_key"], APP_KEY);
    // Signed by the replaced pair, which the receiver knows.
    assert_eq!(notice.headers["x-pusher-key"], APP_KEY);
    assert_eq!(
        notice.headers["x-pusher-signature"],
        sign("stored-secret-1", &notice.body)
    );
    let (secret, line) = current_secret(&server.config_path());
    assert!(line.contains("generation 2 (scheduled, "), "{line}");
    assert!(
        !notice.body.contains(&secret),
        "the notice carries no secret"
    );
    until_status(&server, (APP_KEY, &secret), 200).await;
    assert_eq!(status_as(&server, (APP_KEY, "stored-secret-1")).await, 200);
    assert_eq!(
        status_as(&server, (APP_KEY, APP_SECRET)).await,
        401,
        "config.toml's pair was replaced 91 days ago, its hour of grace long over"
    );
    let log = server.log();
    assert!(log.contains("win over config.toml"), "{log}");
    assert!(log.contains("secret rotated on schedule"), "{log}");
}

#[tokio::test]
async fn a_rotation_not_yet_due_is_not_redone_and_the_stored_secret_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    store_rotated(
        &store,
        "stored-secret-1",
        Duration::from_secs(89 * 24 * 3600),
    );
    let config = format!(
        "{}rotation = {{ every = \"90d\", grace = \"1h\" }}\n[store]\npath = \"{}\"\n\
         [[apps.previous_credentials]]\nkey = \"{OLD_KEY}\"\nsecret = \"{OLD_SECRET}\"\nvalid_until = \"2999-01-01T00:00:00Z\"\n",
        default_config(),
        store.display()
    );
    let server = TestServer::start_with(&config);
    assert_eq!(status_as(&server, (APP_KEY, "stored-secret-1")).await, 200);
    assert_eq!(status_as(&server, (APP_KEY, APP_SECRET)).await, 401);
    // A use of the configured previous pair shows once a sync round has run; by then a due
    // rotation would have been made.
    assert_eq!(status_as(&server, (OLD_KEY, OLD_SECRET)).await, 200);
    until_shown(&server.config_path(), |line| {
        line.contains(&format!("key {OLD_KEY}")) && line.contains("1 use, last ")
    });
    let (secret, line) = current_secret(&server.config_path());
    assert_eq!(secret, "stored-secret-1", "{line}");
    assert!(server.log().contains("win over config.toml"));
}

#[tokio::test]
async fn a_running_server_rotates_when_the_schedule_comes_due() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    // Rotated 58 seconds ago on a one-minute schedule: due two seconds from now.
    store_rotated(&store, "stored-secret-1", Duration::from_secs(58));
    let config = format!(
        "{}rotation = {{ every = 60, grace = \"30s\" }}\n[store]\npath = \"{}\"\n",
        default_config(),
        store.display()
    );
    let server = TestServer::start_with(&config);
    assert_eq!(status_as(&server, (APP_KEY, "stored-secret-1")).await, 200);
    until_shown(&server.config_path(), |line| {
        line.contains("generation 2 (scheduled, ")
    });
    let (secret, _) = current_secret(&server.config_path());
    until_status(&server, (APP_KEY, &secret), 200).await;
    assert_eq!(
        status_as(&server, (APP_KEY, "stored-secret-1")).await,
        200,
        "inside its 30 seconds of grace"
    );
}
