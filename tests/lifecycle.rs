//! Process-level behaviour: graceful shutdown, slow clients, and the command line.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Client, TestServer, open, private_auth};
use serde_json::json;

#[tokio::test]
async fn sigterm_closes_clients_with_4200_and_exits_within_the_deadline() {
    let config = common::default_config().replace("[server]\n", "[server]\nshutdown_timeout = 3\n");
    let mut server = TestServer::start_with(&config);
    let mut a = Client::connect(&server).await;
    let mut b = Client::connect(&server).await;
    a.subscribe("news").await;
    server.terminate();
    for client in [&mut a, &mut b] {
        let error = client.recv_event("pusher:error").await;
        assert_eq!(error["data"]["code"], 4200);
        assert_eq!(client.expect_close().await, 4200);
    }
    assert!(
        server.wait_for_exit(Duration::from_secs(4)),
        "non-zero exit"
    );
    let refused = tokio_tungstenite::connect_async(server.ws_url("/app/app-key?protocol=7")).await;
    assert!(
        refused.is_err(),
        "still accepting connections after shutdown"
    );
}

#[tokio::test]
async fn a_client_that_cannot_keep_up_is_closed_with_4100_and_nobody_else_waits() {
    // A tiny queue and large events: the stalled client's socket buffers fill, then its queue.
    let config = "[metrics]\nport = 0\n".to_owned()
        + &common::default_config().replace("[server]\n", "[server]\noutbound_queue_size = 4\n")
        + "max_event_size = 60000\nmax_client_events_per_second = 100000\n";
    let server = TestServer::start_with(&config);
    let channel = "private-firehose";
    let mut sender = Client::connect(&server).await;
    let mut healthy = Client::connect(&server).await;
    let mut stalled = Client::connect(&server).await;
    for client in [&mut sender, &mut healthy, &mut stalled] {
        client.subscribe(channel).await;
    }
    // `stalled` reads nothing while a few megabytes are sent, though it keeps sending pings.
    // (That its requests cannot move its backlog out of the bounded queue is proven by
    // ws::outbound's unit test.)
    let payload = "z".repeat(50_000);
    const EVENTS: usize = 400;
    for n in 0..EVENTS {
        sender
            .trigger(channel, "client-blob", json!({"n": n, "p": payload}))
            .await;
        stalled
            .send(json!({"event": "pusher:ping", "data": {}}))
            .await;
        let frame = healthy.recv_event("client-blob").await;
        assert_eq!(
            frame["data"]["n"], n,
            "the healthy client missed or reordered an event"
        );
    }
    let mut received = 0;
    let code = loop {
        match stalled.next_message().await {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                received += usize::from(text.contains("client-blob"));
            }
            tokio_tungstenite::tungstenite::Message::Close(Some(frame)) => {
                break u16::from(frame.code);
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(
        received < EVENTS,
        "the stalled client got all {EVENTS} events, so it was never cut off"
    );
    assert_eq!(code, 4100);
    // Counted as an overflow, and as a connection closed with 4100.
    let port = server.metrics_port();
    let overflows = common::metrics::app_series("relay_outbound_overflows_total", common::APP_ID);
    let text = common::metrics::until(port, &overflows, 1.0).await;
    let closed = format!(
        "relay_connections_closed_total{{app_id=\"{}\",code=\"4100\"}}",
        common::APP_ID
    );
    assert_eq!(common::metrics::sample(&text, &closed), Some(1.0), "{text}");
}

#[tokio::test]
async fn secrets_can_come_from_the_environment() {
    let config = common::default_config().replace("\"app-secret\"", "\"${RELAY_TEST_SECRET}\"");
    let server = TestServer::start_with_env(&config, &[("RELAY_TEST_SECRET", "app-secret")]);
    let mut client = Client::connect(&server).await;
    let auth = private_auth(&client.socket_id, "private-env");
    let reply = client
        .subscribe_with("private-env", Some(&auth), None)
        .await;
    assert_eq!(reply["event"], "pusher_internal:subscription_succeeded");
}

fn relay(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .env_remove("RELAY_CONFIG")
        .output()
        .expect("run relay")
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn check_config_accepts_the_bundled_config() {
    let bundled = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let output = relay(&["check-config", bundled]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("ok (1 apps)"));
}

#[test]
fn check_config_reports_each_problem_on_its_own_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"\"\n[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n",
    );
    let output = relay(&["check-config", &path]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<_> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].ends_with("apps[0]: secret must not be empty"),
        "{stderr}"
    );
    assert!(
        lines[1].ends_with("apps[1]: duplicate app id \"1\""),
        "{stderr}"
    );
    assert!(
        lines[2].ends_with("apps[1]: duplicate app key \"k\""),
        "{stderr}"
    );
}

#[test]
fn serving_with_an_unknown_field_fails_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "[server]\nprot = 1\n");
    let output = relay(&["--config", &path, "--port", "0"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(":2: unknown field `prot`"), "{stderr}");
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let output = relay(&["--config", "/nonexistent/relay.toml"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/relay.toml: cannot read"),
        "{stderr}"
    );
}

#[tokio::test]
async fn host_and_port_flags_override_the_file() {
    // TestServer passes --port 0; the bound port must not be the file's 6001.
    let server = TestServer::start_with(
        &(common::default_config().replace("[server]\n", "[server]\nport = 6001\n")),
    );
    assert_ne!(server.port, 6001);
    open(&server.ws_url("/app/app-key?protocol=7")).await;
}
