//! Relay API tokens on the HTTP API: tokens made by `relay token create`, each scope's
//! boundary on both path prefixes, full access, and one 401 for every kind of bad token
//! (malformed, wrong checksum, unknown, expired, another app's).

mod common;

use std::process::Command;

use common::http::{Response, now, raw_request_from, signed_path};
use common::{APP_ID, APP_SECRET, TestServer, default_config};

/// Runs `relay token create` for the default app; the token and its config block.
fn create_token(name: &str, scopes: &[&str], expires: Option<&str>) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, default_config()).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
    command
        .arg("--config")
        .arg(&path)
        .args(["token", "create", "--app", APP_ID, "--name", name]);
    for scope in scopes {
        command.args(["--scope", scope]);
    }
    if let Some(expires) = expires {
        command.args(["--expires", expires]);
    }
    let output = command.output().expect("run relay token create");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let block = stderr
        .split_once("\n\n")
        .map(|(_, block)| block.trim().to_owned())
        .expect("the config block after the notice");
    assert!(
        !block.contains(&token),
        "the block holds the hash, not the token"
    );
    (token, block)
}

/// `method path` with `Authorization: Bearer token` (and `body`).
async fn with_token(
    server: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Response {
    let header = format!("Authorization: Bearer {token}\r\n");
    raw_request_from(server, "127.0.0.1", method, path, body, &header).await
}

const EVENT: &str = r#"{"name":"e","channels":["news"],"data":"{}"}"#;
const BATCH: &str = r#"{"batch":[{"name":"e","channel":"news","data":"{}"}]}"#;

/// Every endpoint, with the scope it needs.
fn endpoints(prefix: &str) -> Vec<(&'static str, String, &'static str, &'static str)> {
    let app = format!("{prefix}/apps/{APP_ID}");
    vec![
        ("POST", format!("{app}/events"), EVENT, "events:publish"),
        ("POST", format!("{app}/batch_events"), BATCH, "events:batch"),
        ("GET", format!("{app}/channels"), "", "channels:read"),
        ("GET", format!("{app}/channels/news"), "", "channels:read"),
        (
            "GET",
            format!("{app}/channels/presence-room/users"),
            "",
            "presence:read",
        ),
        (
            "POST",
            format!("{app}/users/u1/terminate_connections"),
            "{}",
            "connections:manage",
        ),
        (
            "POST",
            "/users/u1/terminate_connections".to_owned(),
            "{}",
            "connections:manage",
        ),
    ]
}

#[tokio::test]
async fn each_scope_opens_its_endpoints_and_no_other_on_both_prefixes() {
    let scopes = [
        "events:publish",
        "events:batch",
        "channels:read",
        "presence:read",
        "connections:manage",
    ];
    let tokens: Vec<(&str, String, String)> = scopes
        .iter()
        .map(|scope| {
            let (token, block) = create_token(&scope.replace(':', "-"), &[scope], None);
            (*scope, token, block)
        })
        .collect();
    let blocks: Vec<&str> = tokens.iter().map(|(_, _, block)| block.as_str()).collect();
    let server = TestServer::start_with(&format!("{}{}\n", default_config(), blocks.join("\n")));
    for prefix in ["", "/api/v1"] {
        for (method, path, body, needed) in endpoints(prefix) {
            for (scope, token, _) in &tokens {
                let response = with_token(&server, token, method, &path, body).await;
                if scope == &needed {
                    assert_eq!(
                        response.status, 200,
                        "{scope} on {method} {path}: {}",
                        response.body
                    );
                } else {
                    assert_eq!(response.status, 403, "{scope} on {method} {path}");
                    assert_eq!(response.error(), format!("token lacks scope {needed}"));
                }
            }
        }
    }
}

#[tokio::test]
async fn a_token_without_scopes_has_full_access_and_one_with_several_has_each() {
    let (full, full_block) = create_token("admin", &[], None);
    let (both, both_block) = create_token("publisher", &["events:publish", "channels:read"], None);
    let server =
        TestServer::start_with(&format!("{}{full_block}\n{both_block}\n", default_config()));
    for (method, path, body, _) in endpoints("") {
        let response = with_token(&server, &full, method, &path, body).await;
        assert_eq!(response.status, 200, "{method} {path}: {}", response.body);
    }
    let events = format!("/apps/{APP_ID}/events");
    assert_eq!(
        with_token(&server, &both, "POST", &events, EVENT)
            .await
            .status,
        200
    );
    let channels = format!("/apps/{APP_ID}/channels");
    assert_eq!(
        with_token(&server, &both, "GET", &channels, "")
            .await
            .status,
        200
    );
    let batch = format!("/apps/{APP_ID}/batch_events");
    assert_eq!(
        with_token(&server, &both, "POST", &batch, BATCH)
            .await
            .status,
        403
    );
}

/// `token` with its last character changed: the checksum no longer matches.
fn with_bad_checksum(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "a" { "b" } else { "a" })
}

#[tokio::test]
async fn every_bad_token_gets_the_same_401() {
    let (valid, block) = create_token("ci", &[], None);
    // Registered with an expiry that has passed.
    let (expired, expired_block) = create_token("old", &[], None);
    let expired_block = format!("{expired_block}\nexpires_at = \"2020-01-01T00:00:00Z\"");
    // Well formed, never registered.
    let (unknown, _) = create_token("nowhere", &[], None);
    let config = format!("{}{block}\n{expired_block}\n", default_config());
    let server = TestServer::start_with(&config);
    let events = format!("/apps/{APP_ID}/events");
    assert_eq!(
        with_token(&server, &valid, "POST", &events, EVENT)
            .await
            .status,
        200
    );
    let bad = [
        ("malformed", "not-a-token".to_owned()),
        ("bad checksum", with_bad_checksum(&valid)),
        ("too short", valid[..valid.len() - 1].to_owned()),
        ("unknown", unknown),
        ("expired", expired),
    ];
    for (what, token) in bad {
        let response = with_token(&server, &token, "POST", &events, EVENT).await;
        assert_eq!(response.status, 401, "{what}");
        assert_eq!(response.error(), "Invalid API token", "{what}");
        assert!(
            !response.body.contains(&token),
            "{what}: the token is not echoed"
        );
    }
}

#[tokio::test]
async fn another_app_s_token_is_refused_on_this_app_s_paths() {
    let (token, block) = create_token("elsewhere", &[], None);
    let config = format!(
        "{}[[apps]]\nid = \"2\"\nkey = \"key-2\"\nsecret = \"secret-2\"\n{block}\n",
        default_config()
    );
    let server = TestServer::start_with(&config);
    let here = format!("/apps/{APP_ID}/events");
    let response = with_token(&server, &token, "POST", &here, EVENT).await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (401, "Invalid API token")
    );
    assert_eq!(
        with_token(&server, &token, "POST", "/apps/2/events", EVENT)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_token_with_a_signature_is_two_methods() {
    let (token, block) = create_token("ci", &[], None);
    let server = TestServer::start_with(&format!("{}{block}\n", default_config()));
    let path = format!("/apps/{APP_ID}/events");
    let signed = signed_path("POST", &path, &[], EVENT, APP_SECRET, now());
    let response = with_token(&server, &token, "POST", &signed, EVENT).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.error(),
        "Use one authentication method, not an HMAC query signature and a Bearer token"
    );
}
