//! No secret, signature or `auth` value reaches the log, even at trace level: a session uses
//! every credential this build knows (HMAC-signed API calls, the key and secret headers and an
//! API token, right and wrong; private and presence `auth`; user sign-in; a signed webhook; a
//! previous pair inside its grace; a secret made by `relay keys rotate`), then the whole log is
//! searched for each of them: in the text format (trace from `RUST_LOG`) and in JSON (trace
//! from `log_level`). The same logs show each connection opening and closing and each failed
//! authentication, with the app and socket id.

mod common;

use common::http::{api, now, raw_request_from, signed_path, signed_path_as};
use common::webhooks::{WebhookReceiver, config};
use common::{APP_ID, APP_KEY, APP_SECRET, Client, TestServer, presence_auth, private_auth, sign};

const OLD_KEY: &str = "old-key-4713";
const OLD_SECRET: &str = "old-secret-4712";

/// What a session left in the log, and what it must not show.
struct Session {
    log: String,
    used: Vec<String>,
    /// The socket id of the connection that failed channel auth.
    socket_id: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_level_text_log_holds_no_secret_signature_or_auth_value() {
    let session = run_session("", &[("RUST_LOG", "trace")]).await;
    let log = &session.log;
    assert!(log.contains(" TRACE "), "trace logging was on: {log}");
    assert_nothing_used_is_shown(&session);
    let id = &session.socket_id;
    let line = |message: &str| {
        log.lines()
            .find(|line| line.contains(message) && line.contains(id.as_str()))
            .unwrap_or_else(|| panic!("no {message:?} line for {id}:\n{log}"))
            .to_owned()
    };
    assert!(line("connection opened").contains(&format!(" app={APP_ID} ")));
    assert!(line("authentication failed").contains("what=\"channel auth\""));
    assert!(line("connection closed").contains("code=1005"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_level_json_log_holds_no_secret_signature_or_auth_value() {
    let session = run_session("log_format = \"json\"\nlog_level = \"trace\"\n", &[]).await;
    assert_nothing_used_is_shown(&session);
    let lines: Vec<serde_json::Value> = session
        .log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(lines.iter().any(|line| line["level"] == "TRACE"));
    let about_the_client = |message: &str| {
        lines
            .iter()
            .find(|line| {
                line["fields"]["message"] == message
                    && line["fields"]["socket_id"] == session.socket_id.as_str()
            })
            .unwrap_or_else(|| panic!("no {message:?} line for {}", session.socket_id))
            .clone()
    };
    let opened = about_the_client("connection opened");
    assert_eq!(opened["target"], "relay::connections");
    assert_eq!(opened["fields"]["app"], APP_ID);
    assert_eq!(
        about_the_client("authentication failed")["target"],
        "relay::authentication"
    );
    assert_eq!(
        about_the_client("connection closed")["fields"]["code"],
        1005
    );
}

fn assert_nothing_used_is_shown(session: &Session) {
    for value in &session.used {
        assert!(
            !session.log.contains(value.as_str()),
            "{value} is in the log:\n{}",
            session.log
        );
    }
}

/// Runs the session on a server whose config starts with `top` (top-level keys), with `env`,
/// and returns its whole log once it has exited.
async fn run_session(top: &str, env: &[(&str, &str)]) -> Session {
    let mut receiver = WebhookReceiver::start().await;
    let token = relay::guard::generate_token();
    let hash = relay::guard::WellFormedToken::parse(&token).unwrap().hash();
    let tokens = format!("[[apps.tokens]]\nname = \"ci\"\nhash = \"{hash:?}\"");
    let previous = format!(
        "[[apps.previous_credentials]]\nkey = \"{OLD_KEY}\"\nsecret = \"{OLD_SECRET}\"\nvalid_until = \"2999-01-01T00:00:00Z\""
    );
    let app =
        format!("webhook_vacate_delay_ms = 0\nwebhook_signing = \"newest\"\n{tokens}\n{previous}");
    let text = format!("{top}{}", config(&app, &[(&receiver.url(), "")]));
    let mut server = TestServer::start_with_env(&text, env);
    let mut used: Vec<String> = vec![APP_SECRET.to_owned(), OLD_SECRET.to_owned()];

    // HMAC-signed API calls, one of them with a wrong signature.
    let response = api(&server, "GET", "/channels", &[], "").await;
    assert_eq!(response.status, 200, "{}", response.body);
    let path = format!("/apps/{APP_ID}/channels");
    let signed = signed_path("GET", &path, &[], "", APP_SECRET, now());
    used.push(signed.rsplit("auth_signature=").next().unwrap().to_owned());
    let wrong = signed_path("GET", &path, &[], "", "wrong-secret-value", now());
    used.push(wrong.rsplit("auth_signature=").next().unwrap().to_owned());
    assert_eq!(
        raw_request_from(&server, "127.0.0.1", "GET", &wrong, "", "")
            .await
            .status,
        401
    );

    // The key and secret headers, right and wrong.
    let headers = format!("X-Relay-Key: {APP_KEY}\r\nX-Relay-Secret: {APP_SECRET}\r\n");
    let ok = raw_request_from(&server, "127.0.0.1", "GET", &path, "", &headers).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let guessed = "guessed-secret-4711";
    used.push(guessed.to_owned());
    let bad = format!("X-Relay-Key: {APP_KEY}\r\nX-Relay-Secret: {guessed}\r\n");
    assert_eq!(
        raw_request_from(&server, "127.0.0.1", "GET", &path, "", &bad)
            .await
            .status,
        401
    );

    // An API token, right and wrong (one that is well formed but unknown).
    used.push(token.clone());
    let bearer = format!("Authorization: Bearer {token}\r\n");
    let ok = raw_request_from(&server, "127.0.0.1", "GET", &path, "", &bearer).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let unknown = relay::guard::generate_token();
    used.push(unknown.clone());
    let bearer = format!("Authorization: Bearer {unknown}\r\n");
    assert_eq!(
        raw_request_from(&server, "127.0.0.1", "GET", &path, "", &bearer)
            .await
            .status,
        401
    );

    // The previous pair, for the API and for channel auth.
    let old = signed_path_as("GET", &path, &[], "", (OLD_KEY, OLD_SECRET), now());
    used.push(old.rsplit("auth_signature=").next().unwrap().to_owned());
    let ok = raw_request_from(&server, "127.0.0.1", "GET", &old, "", "").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let mut old_client = Client::connect_to(&server, OLD_KEY).await;
    let message = format!("{}:private-old", old_client.socket_id);
    let old_auth = sign(OLD_SECRET, &message);
    used.push(old_auth.clone());
    let reply = old_client
        .subscribe_with("private-old", Some(&format!("{OLD_KEY}:{old_auth}")), None)
        .await;
    assert_eq!(reply["event"], "pusher_internal:subscription_succeeded");
    old_client.close().await;

    // Channel auth and sign-in, right and wrong.
    let mut client = Client::connect(&server).await;
    let socket_id = client.socket_id.clone();
    let private = private_auth(&client.socket_id, "private-room");
    used.push(private.split(':').nth(1).unwrap().to_owned());
    client
        .subscribe_with("private-room", Some(&private), None)
        .await;
    let data = r#"{"user_id":"u1"}"#;
    let presence = presence_auth(&client.socket_id, "presence-room", data);
    used.push(presence.split(':').nth(1).unwrap().to_owned());
    client.join_presence("presence-room", data).await;
    let forged = format!("{APP_KEY}:{}", "0".repeat(64));
    client
        .send(serde_json::json!({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": forged}}))
        .await;
    client.recv_event("pusher:subscription_error").await;
    client.recv_event("pusher:error").await;
    client.sign_in("u1").await;

    // A signed webhook went out.
    let webhook = receiver.next().await;
    webhook.assert_signed();
    used.push(webhook.headers["x-pusher-signature"].clone());
    client.close().await;

    // A rotated secret, used once the server has it.
    let rotate = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(server.config_path())
        .args(["keys", "rotate", "--app", APP_ID])
        .output()
        .unwrap();
    assert!(rotate.status.success());
    let shown = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(server.config_path())
        .args(["keys", "show", "--app", APP_ID])
        .output()
        .unwrap();
    let shown = String::from_utf8(shown.stdout).unwrap();
    let rotated = shown
        .split("  secret ")
        .nth(1)
        .and_then(|rest| rest.split("  ").next())
        .unwrap()
        .to_owned();
    used.push(rotated.clone());
    let start = std::time::Instant::now();
    loop {
        let target = signed_path_as("GET", &path, &[], "", (APP_KEY, &rotated), now());
        if raw_request_from(&server, "127.0.0.1", "GET", &target, "", "")
            .await
            .status
            == 200
        {
            used.push(target.rsplit("auth_signature=").next().unwrap().to_owned());
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "never rotated"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    server.terminate();
    assert!(
        server.wait_for_exit(common::TIMEOUT),
        "the server did not exit"
    );
    Session {
        log: server.log(),
        used,
        socket_id,
    }
}
