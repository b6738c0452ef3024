//! The activity log against the real server and CLI: `GET /apps/{id}/activity` answers the
//! stored events on both path prefixes, newest first, with each filter, refuses a bad filter
//! with a 400 naming the parameter (never its value), lets in an API token with
//! `analytics:read` and no other scope; a server without a store answers an empty list, one
//! whose store fails a 503.
//! `relay security events` and `relay security resolve` read and resolve the same store.
//! The events are written into the store file before the server starts.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use common::http::{Response, now, raw_request, raw_request_from, signed_path};
use common::{APP_ID, APP_SECRET, TestServer, api_token, default_config};
use relay::activity::{ActivityEntry, EventKind, EventQuery, window_start};
use relay::store::{SqliteStore, Store};
use serde_json::{Value, json};

const OTHER_APP: &str = "654321";

fn at(text: &str) -> SystemTime {
    humantime::parse_rfc3339(text).unwrap()
}

fn unix(text: &str) -> String {
    at(text)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

fn entry(
    app: &str,
    kind: EventKind,
    address: Option<&str>,
    (first, last): (&str, &str),
    count: u64,
) -> ActivityEntry {
    ActivityEntry {
        app_id: app.to_owned(),
        kind,
        address: address.map(|text| text.parse().unwrap()),
        message: format!("{} (written by the test)", kind.as_str()),
        window_start: window_start(at(first)),
        first_seen: at(first),
        last_seen: at(last),
        count,
    }
}

/// Writes the events into a new store at `path`: for the app, three auth failures from
/// 192.0.2.7 (10:00 to 10:04), its ban (10:05), a secret found (10:20) and a leaked token
/// (10:30, resolved at 10:40); for the other app, one leaked token.
fn write_events(path: &Path) {
    let store = SqliteStore::open(path).unwrap();
    store
        .record_events(&[
            entry(
                APP_ID,
                EventKind::AuthFailure,
                Some("192.0.2.7"),
                ("2026-12-01T10:00:00Z", "2026-12-01T10:04:00Z"),
                3,
            ),
            entry(
                APP_ID,
                EventKind::AddressBanned,
                Some("192.0.2.7"),
                ("2026-12-01T10:05:00Z", "2026-12-01T10:05:00Z"),
                1,
            ),
            entry(
                APP_ID,
                EventKind::SecretFound,
                None,
                ("2026-12-01T10:20:00Z", "2026-12-01T10:20:00Z"),
                1,
            ),
            entry(
                APP_ID,
                EventKind::TokenLeaked,
                None,
                ("2026-12-01T10:30:00Z", "2026-12-01T10:30:00Z"),
                1,
            ),
            entry(
                OTHER_APP,
                EventKind::TokenLeaked,
                None,
                ("2026-12-01T10:10:00Z", "2026-12-01T10:10:00Z"),
                1,
            ),
        ])
        .unwrap();
    let leaked = store
        .events(&EventQuery {
            kind: Some(EventKind::TokenLeaked),
            ..EventQuery::newest(APP_ID, 1)
        })
        .unwrap();
    let resolved = store
        .resolve_events(APP_ID, Some(leaked[0].id), at("2026-12-01T10:40:00Z"))
        .unwrap();
    assert_eq!(resolved.events, 1);
}

/// The default app with `tokens`, another app, and the store at `store`.
fn config(tokens: &str, store: &Path) -> String {
    format!(
        "{}{tokens}\n[[apps]]\nid = \"{OTHER_APP}\"\nkey = \"other-key\"\nsecret = \"other-secret\"\n\
         \n[store]\npath = \"{}\"\n",
        default_config(),
        store.display()
    )
}

/// A signed `GET {prefix}/apps/{id}/activity` with `params`.
async fn activity(server: &TestServer, prefix: &str, params: &[(&str, &str)]) -> Response {
    let path = format!("{prefix}/apps/{APP_ID}/activity");
    let target = signed_path("GET", &path, params, "", APP_SECRET, now());
    raw_request(server, "GET", &target, "").await
}

/// The kinds of a 200's events, in order.
fn kinds(response: &Response) -> Vec<String> {
    assert_eq!(response.status, 200, "{}", response.body);
    response.json()["events"]
        .as_array()
        .expect("an events list")
        .iter()
        .map(|event| event["kind"].as_str().unwrap().to_owned())
        .collect()
}

struct Recorded {
    server: TestServer,
    analytics: String,
    publisher: String,
    _dir: tempfile::TempDir,
}

fn start_with_events() -> Recorded {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    write_events(&store);
    let (analytics, analytics_block) = api_token("dashboard", &["analytics:read"]);
    let (publisher, publisher_block) = api_token("publisher", &["events:publish"]);
    let tokens = format!("{analytics_block}{publisher_block}");
    Recorded {
        server: TestServer::start_with(&config(&tokens, &store)),
        analytics,
        publisher,
        _dir: dir,
    }
}

#[tokio::test]
async fn the_stored_events_are_answered_newest_first_on_both_prefixes() {
    let recorded = start_with_events();
    for prefix in ["", "/api/v1"] {
        let response = activity(&recorded.server, prefix, &[]).await;
        assert_eq!(
            kinds(&response),
            [
                "token_leaked",
                "secret_found",
                "address_banned",
                "auth_failure"
            ],
            "{prefix}: the other app's event is not among them"
        );
        let events = response.json()["events"].clone();
        let failures = &events[3];
        assert!(failures["id"].is_u64(), "{failures}");
        assert_eq!(
            without_id(failures),
            json!({
                "app_id": APP_ID,
                "kind": "auth_failure",
                "severity": "info",
                "address": "192.0.2.7",
                "message": "auth_failure (written by the test)",
                "count": 3,
                "first_seen": "2026-12-01T10:00:00Z",
                "last_seen": "2026-12-01T10:04:00Z",
                "resolved_at": null,
            })
        );
        assert_eq!(
            without_id(&events[0]),
            json!({
                "app_id": APP_ID,
                "kind": "token_leaked",
                "severity": "critical",
                "address": null,
                "message": "token_leaked (written by the test)",
                "count": 1,
                "first_seen": "2026-12-01T10:30:00Z",
                "last_seen": "2026-12-01T10:30:00Z",
                "resolved_at": "2026-12-01T10:40:00Z",
            })
        );
    }
}

fn without_id(event: &Value) -> Value {
    let mut event = event.clone();
    event.as_object_mut().unwrap().remove("id");
    event
}

/// Query parameters, and the kinds they answer.
type FilterCase<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

#[tokio::test]
async fn each_filter_narrows_the_answer() {
    let recorded = start_with_events();
    let server = &recorded.server;
    let cases: [FilterCase<'_>; 8] = [
        (&[("kind", "address_banned")], &["address_banned"]),
        (
            &[("severity", "warning")],
            &["token_leaked", "secret_found", "address_banned"],
        ),
        (&[("severity", "critical")], &["token_leaked"]),
        (
            &[("since", &unix("2026-12-01T10:05:00Z"))],
            &["token_leaked", "secret_found", "address_banned"],
        ),
        (
            &[("until", &unix("2026-12-01T10:05:00Z"))],
            &["auth_failure"],
        ),
        (
            &[("unresolved", "true")],
            &["secret_found", "address_banned", "auth_failure"],
        ),
        (&[("limit", "2")], &["token_leaked", "secret_found"]),
        (
            &[
                ("since", &unix("2026-12-01T10:04:00Z")),
                ("until", &unix("2026-12-01T10:30:00Z")),
                ("unresolved", "true"),
                ("severity", "warning"),
            ],
            &["secret_found", "address_banned"],
        ),
    ];
    for (params, expected) in cases {
        let response = activity(server, "", params).await;
        assert_eq!(kinds(&response), expected, "{params:?}");
    }
}

#[tokio::test]
async fn a_bad_filter_is_400_naming_the_parameter_without_its_value() {
    let recorded = start_with_events();
    let cases = [
        ("kind", "nope-kind", "Invalid kind parameter"),
        ("severity", "grave-ish", "Invalid severity parameter"),
        ("since", "yesterday", "Invalid since parameter"),
        ("until", "-5", "Invalid until parameter"),
        ("until", "99999999999999999999", "Invalid until parameter"),
        ("unresolved", "maybe", "Invalid unresolved parameter"),
        ("limit", "0", "limit must be 1 to 1000"),
        ("limit", "1001", "limit must be 1 to 1000"),
        ("limit", "lots", "limit must be 1 to 1000"),
    ];
    for (name, value, message) in cases {
        let response = activity(&recorded.server, "", &[(name, value)]).await;
        assert_eq!(response.status, 400, "{name}={value}: {}", response.body);
        assert_eq!(
            response.json(),
            json!({ "error": message }),
            "{name}={value}"
        );
        if value.len() >= 4 {
            assert!(!response.body.contains(value), "{}", response.body);
        }
    }
}

/// `GET /apps/{id}/activity?unresolved=true` with `Authorization: Bearer token`.
async fn with_token(server: &TestServer, token: &str) -> Response {
    let path = format!("/apps/{APP_ID}/activity?unresolved=true");
    let header = format!("Authorization: Bearer {token}\r\n");
    raw_request_from(server, "127.0.0.1", "GET", &path, "", &header).await
}

#[tokio::test]
async fn a_token_needs_the_analytics_read_scope() {
    let recorded = start_with_events();
    let allowed = with_token(&recorded.server, &recorded.analytics).await;
    assert_eq!(
        kinds(&allowed),
        ["secret_found", "address_banned", "auth_failure"]
    );
    let refused = with_token(&recorded.server, &recorded.publisher).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        refused.json(),
        json!({"error": "token lacks scope analytics:read"})
    );
}

#[tokio::test]
async fn a_server_without_a_store_answers_an_empty_list() {
    let server = TestServer::start_with(&default_config());
    let response = activity(&server, "", &[("severity", "info")]).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({"events": []}));
    assert!(
        !server
            .config_path()
            .with_file_name("relay-state.db")
            .exists(),
        "no store file is made"
    );
    let bad = activity(&server, "", &[("kind", "nope")]).await;
    assert_eq!(bad.status, 400, "the filters are checked all the same");
}

#[tokio::test]
async fn a_store_that_cannot_be_read_is_503_with_the_detail_only_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    write_events(&store);
    let server = TestServer::start_with(&config("", &store));
    assert_eq!(activity(&server, "", &[]).await.status, 200);
    // Another process breaks the file under the running server.
    let connection = rusqlite::Connection::open(&store).unwrap();
    connection
        .execute_batch("DROP TABLE security_events")
        .unwrap();
    let response = activity(&server, "", &[]).await;
    assert_eq!(response.status, 503, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"error": "activity log unavailable"})
    );
    let log = server.log();
    assert!(log.contains("cannot read the activity log"), "{log}");
    assert!(log.contains("no such table"), "{log}");
}

/// `relay --config <config> security <args…>`: success and stdout and stderr.
fn security(config: &Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(config)
        .arg("security")
        .args(args)
        .output()
        .expect("run relay security");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (
        output.status.success(),
        stdout + &String::from_utf8_lossy(&output.stderr),
    )
}

/// A config file in `dir` whose store is `dir/state.db`.
fn cli_config(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let store = dir.path().join("state.db");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config("", &store)).unwrap();
    (path, store)
}

#[test]
fn the_cli_lists_filters_and_resolves_the_stored_events() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = cli_config(&dir);
    write_events(&store);
    let (ok, listed) = security(&config, &["events", "--app", APP_ID]);
    assert!(ok, "{listed}");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 5, "{listed}");
    assert!(lines[0].starts_with("ID  LAST SEEN "), "{listed}");
    assert!(
        lines[1].contains("  2026-12-01T10:30:00Z  critical  token_leaked    -  "),
        "{listed}"
    );
    assert!(lines[1].contains("  2026-12-01T10:40:00Z  token_leaked (written by the test)"));
    assert!(
        lines[4].contains("  info      auth_failure    192.0.2.7  3      unresolved  "),
        "{listed}"
    );
    let (ok, filtered) = security(
        &config,
        &[
            "events",
            "--app",
            APP_ID,
            "--severity",
            "warning",
            "--unresolved",
            "--limit",
            "1",
        ],
    );
    assert!(ok, "{filtered}");
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    assert!(filtered.contains(" secret_found "), "{filtered}");
    let (ok, recent) = security(&config, &["events", "--app", APP_ID, "--since", "1h"]);
    assert!(ok, "{recent}");
    assert_eq!(
        recent.trim(),
        format!("no security events of app {APP_ID} match"),
        "all were last seen hours ago"
    );

    let relay_store = SqliteStore::open(&store).unwrap();
    relay_store
        .record_events(&[entry(
            APP_ID,
            EventKind::RevokedTokenUsed,
            None,
            ("2026-12-01T10:50:00Z", "2026-12-01T10:50:00Z"),
            1,
        )])
        .unwrap();
    let since = at("2026-12-01T10:00:00Z");
    assert!(
        relay_store
            .lock_down_if_due(APP_ID, since, 1, at("2026-12-01T10:51:00Z"))
            .unwrap()
    );
    let (ok, resolved) = security(&config, &["resolve", "--app", APP_ID, "1"]);
    assert!(ok, "{resolved}");
    assert_eq!(resolved.trim(), format!("resolved event 1 of app {APP_ID}"));
    let (ok, resolved) = security(&config, &["resolve", "--app", APP_ID]);
    assert!(ok, "{resolved}");
    assert_eq!(
        resolved.lines().collect::<Vec<_>>(),
        [
            format!("resolved 3 events of app {APP_ID}"),
            format!(
                "app {APP_ID} is no longer locked down; running servers pick this up within seconds"
            ),
        ]
    );
    assert!(relay_store.lockdowns().unwrap().is_empty());
    let other = relay_store
        .events(&EventQuery::newest(OTHER_APP, 10))
        .unwrap();
    assert_eq!(
        other[0].resolved_at, None,
        "the other app's event is untouched"
    );
}

#[test]
fn the_cli_refuses_an_unknown_app_and_makes_no_store_file() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = cli_config(&dir);
    let (ok, said) = security(&config, &["events", "--app", "nope"]);
    assert!(!ok);
    assert_eq!(
        said.trim(),
        "relay: no app with id \"nope\" in the configuration"
    );
    let (ok, said) = security(&config, &["events", "--app", APP_ID]);
    assert!(ok, "{said}");
    assert_eq!(
        said.trim(),
        "no security events are recorded (no state store yet)"
    );
    let (ok, said) = security(&config, &["resolve", "--app", APP_ID]);
    assert!(ok, "{said}");
    assert_eq!(
        said.trim(),
        "nothing to resolve: no security events are recorded (no state store yet)"
    );
    let (ok, said) = security(&config, &["events", "--app", APP_ID, "--kind", "nope"]);
    assert!(!ok && said.contains("unknown kind \"nope\""), "{said}");
    assert!(!store.exists(), "no store file is made");
}

/// Asks the endpoint until an event of `kind` is in the answer (bounded); that event.
async fn until_answered(server: &TestServer, kind: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let response = activity(server, "", &[("kind", kind)]).await;
        assert_eq!(response.status, 200, "{}", response.body);
        if let Some(event) = response.json()["events"].get(0) {
            return event.clone();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "no {kind} recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn what_the_server_sees_is_recorded_without_the_secret() {
    let config = format!(
        "{}[apps.security]\nip_allowlist = [\"127.0.0.1/32\"]\nsecret_scanning = \"warn\"\n",
        default_config()
    );
    let server = TestServer::start_with(&config);
    let path = format!("/apps/{APP_ID}/channels");
    let target = signed_path("GET", &path, &[], "", APP_SECRET, now());
    for _ in 0..3 {
        let refused = raw_request_from(&server, "127.0.0.2", "GET", &target, "", "").await;
        assert_eq!(refused.status, 403);
    }
    let secret = "AKIAZ7QWERTYUIOPASDF";
    let body = json!({"name": "e", "channels": ["c"], "data": format!("key {secret}")}).to_string();
    let path = format!("/apps/{APP_ID}/events");
    let target = signed_path("POST", &path, &[], &body, APP_SECRET, now());
    assert_eq!(
        raw_request(&server, "POST", &target, &body).await.status,
        200
    );
    let bad = signed_path(
        "GET",
        &format!("/apps/{APP_ID}/channels"),
        &[],
        "",
        "wrong",
        now(),
    );
    assert_eq!(raw_request(&server, "GET", &bad, "").await.status, 401);

    let denied = until_answered(&server, "address_denied").await;
    assert_eq!(denied["address"], "127.0.0.2");
    assert_eq!(denied["count"], 3, "repeats are one entry");
    assert_eq!(denied["severity"], "info");
    let found = until_answered(&server, "secret_found").await;
    assert_eq!(found["severity"], "warning");
    let message = found["message"].as_str().unwrap();
    assert!(message.contains("aws-access-key"), "{message}");
    assert!(!message.contains(secret));
    let failure = until_answered(&server, "auth_failure").await;
    assert_eq!(failure["address"], "127.0.0.1");
    assert!(!server.log().contains(secret), "the secret is never logged");
    assert!(server.log().contains("security event"), "a structured line");
}
