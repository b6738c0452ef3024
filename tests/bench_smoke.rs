//! Smoke runs of every `relay-bench` scenario at tiny sizes against the real server, so the
//! load tool cannot rot. These check that each scenario completes and reports sane figures;
//! performance itself is measured by hand (docs/benchmarks.md), never asserted here.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;

use common::TestServer;
use common::closing_proxy::ClosingProxy;
use serde_json::Value;

/// The load tool's binary. It is a package of its own (`relay-bench/`), so cargo does not hand
/// this package its path: it sits beside the test binaries' `deps/` folder once
/// `cargo build -p relay-bench` has run (scripts/test builds it first).
fn bench_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join(format!("relay-bench{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p relay-bench` first (scripts/test does)",
        binary.display()
    );
    binary
}

/// Runs one scenario (`"fanout --events 10"`) with `--json` and returns its report.
fn bench(server: &TestServer, command: &str) -> Value {
    bench_through(server.port, server, command)
}

/// Runs one scenario against `port` (the server's, or a proxy's in front of it) and returns
/// its report; the CPU figures are `server`'s.
fn bench_through(port: u16, server: &TestServer, command: &str) -> Value {
    let scenario: Vec<&str> = command.split_whitespace().collect();
    let output = Command::new(bench_binary())
        .args(&scenario)
        .args(["--port", &port.to_string()])
        .args(["--server-pid", &server.pid().to_string()])
        .args(["--timeout", "30", "--json"])
        .output()
        .expect("run relay-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "relay-bench {scenario:?} failed: {stderr}"
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON report");
    assert_eq!(report["scenario"], scenario[0]);
    assert!(
        report["server_cpu_ms"].is_number(),
        "no server CPU figure: {report}"
    );
    report
}

#[test]
fn connect_opens_and_subscribes_every_socket() {
    let server = TestServer::start();
    let report = bench(&server, "connect --connections 20 --channels 4 --hold 0");
    assert_eq!(report["connections"], 20);
    assert!(
        report["server_rss_kib_per_connection"].is_number(),
        "{report}"
    );
}

#[test]
fn fanout_delivers_every_event_to_every_subscriber() {
    let server = TestServer::start();
    let report = bench(
        &server,
        "fanout --subscribers 20 --channels 2 --events 10 --rate 200",
    );
    assert_eq!(report["deliveries"], 200);
    assert_eq!(report["delivered_share"], 1.0);
    assert!(report["latency_p99_ms"].as_f64().unwrap() > 0.0, "{report}");
    // Relay keeps its API connections open.
    assert_eq!(report["api_reconnects"], 0, "{report}");
}

#[test]
fn fanout_as_fast_as_possible_delivers_everything() {
    let server = TestServer::start();
    let report = bench(&server, "fanout --subscribers 20 --events 20 --posters 2");
    assert_eq!(report["deliveries"], 400);
}

#[test]
fn trigger_counts_requests_and_failures() {
    let server = TestServer::start();
    let report = bench(&server, "trigger --clients 2 --duration 0.3");
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["non_2xx"], 0);
    assert_eq!(report["api_reconnects"], 0, "{report}");
}

#[test]
fn the_closing_proxy_answers_chunked_and_closes_the_connection() {
    let server = TestServer::start();
    let proxy = ClosingProxy::start(server.port);
    let body = r#"{"name":"e","channels":["c"],"data":"{}"}"#;
    let path = format!("/apps/{}/events", common::APP_ID);
    let target = common::http::signed_path(
        "POST",
        &path,
        &[],
        body,
        common::APP_SECRET,
        common::http::now(),
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    stream.set_read_timeout(Some(common::TIMEOUT)).unwrap();
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    // Ends only because the proxy closes the connection after its answer.
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, chunks) = answer.split_once("\r\n\r\n").expect("a whole answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("\r\ntransfer-encoding: chunked"), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    assert_eq!(
        chunks, "1\r\n{\r\n1\r\n}\r\n0\r\n\r\n",
        "the body {{}} in two chunks"
    );
    assert_eq!(proxy.requests(), 1);
}

#[test]
fn trigger_reconnects_for_each_request_to_a_server_that_closes_every_connection() {
    let server = TestServer::start();
    let proxy = ClosingProxy::start(server.port);
    let report = bench_through(proxy.port, &server, "trigger --clients 2 --duration 0.3");
    let requests = report["requests"].as_u64().unwrap();
    assert!(requests > 2, "{report}");
    assert_eq!(report["non_2xx"], 0, "{report}");
    // Each client's first request uses the connection opened before the timed phase.
    assert_eq!(report["api_reconnects"], requests - 2, "{report}");
    assert_eq!(
        proxy.requests() as u64,
        requests,
        "every request went through the proxy"
    );
}

#[test]
fn fanout_delivers_everything_through_a_server_that_closes_every_connection() {
    let server = TestServer::start();
    let proxy = ClosingProxy::start(server.port);
    let report = bench_through(
        proxy.port,
        &server,
        "fanout --subscribers 10 --channels 2 --events 12 --posters 3",
    );
    assert_eq!(report["deliveries"], 120, "{report}");
    assert_eq!(report["delivered_share"], 1.0);
    assert_eq!(report["api_reconnects"], 12 - 3, "{report}");
    assert_eq!(proxy.requests(), 12);
}

#[test]
fn fanout_with_an_api_port_triggers_there_and_subscribes_on_the_port() {
    let server = TestServer::start();
    // The proxy stands for another node: only the triggers may go through it.
    let proxy = ClosingProxy::start(server.port);
    let report = bench(
        &server,
        &format!(
            "fanout --subscribers 10 --events 6 --posters 2 --api-port {} --api-server-pid {}",
            proxy.port,
            server.pid()
        ),
    );
    assert_eq!(report["deliveries"], 60, "{report}");
    assert_eq!(proxy.requests(), 6, "every trigger went to --api-port");
    assert_eq!(report["api_reconnects"], 6 - 2, "{report}");
    assert!(report["api_server_cpu_ms"].is_number(), "{report}");
}

#[test]
fn presence_members_all_see_the_full_count() {
    let server = TestServer::start();
    let report = bench(&server, "presence --members 20");
    assert_eq!(report["final_member_count"], 20);
}

#[test]
fn client_events_round_trip_between_pairs() {
    let server = TestServer::start();
    let report = bench(
        &server,
        "client-events --pairs 3 --round-trips 3 --interval-ms 10",
    );
    assert_eq!(report["round_trips"], 9);
}

#[test]
fn churn_cycles_through_every_channel_kind_and_samples_rss() {
    let server = TestServer::start();
    let report = bench(&server, "churn --clients 6 --duration 2 --sample-every 1");
    // Six slots each cycle public, private and presence subscriptions for two seconds.
    assert!(report["cycles"].as_u64().unwrap() >= 18, "{report}");
    assert_eq!(report["rss_samples"], 2, "{report}");
    assert!(report["rss_drift_pct"].is_number(), "{report}");
}

#[test]
fn a_protocol_error_fails_the_run_loudly() {
    // The server refuses client events for this app, so the scenario must fail, not hang.
    let config = common::default_config().replace("enable_client_messages = true", "");
    let server = TestServer::start_with(&config);
    let output = Command::new(bench_binary())
        .args(["client-events", "--pairs", "1", "--round-trips", "1"])
        .args(["--port", &server.port.to_string(), "--timeout", "30"])
        .output()
        .expect("run relay-bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("client-events failed") && stderr.contains("not enabled"),
        "{stderr}"
    );
}

/// The default app, sending occupancy webhooks at once (no vacate delay) to a receiver on
/// `receiver_port`.
fn webhook_config(receiver_port: u16) -> String {
    format!(
        "{}webhook_vacate_delay_ms = 0\n\n[[apps.webhooks]]\nurl = \"http://127.0.0.1:{receiver_port}/webhooks\"\n\
         events = [\"channel_occupied\", \"channel_vacated\"]\n",
        common::default_config()
    )
}

/// A loopback port that was free a moment ago, for relay-bench's receiver (the server's
/// config must name it before relay-bench starts).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address").port()
}

/// Asserts that a `webhooks` report of `expected` events saw every one, in order, signed.
fn assert_every_webhook_arrived(report: &Value, expected: u64) {
    assert_eq!(report["expected_webhooks"], expected, "{report}");
    assert_eq!(report["webhooks"], expected, "{report}");
    for fault in [
        "lost",
        "out_of_order",
        "unexpected",
        "bad_signatures",
        "malformed",
    ] {
        assert_eq!(report[fault], 0, "{fault}: {report}");
    }
    let requests = report["requests"].as_u64().unwrap();
    assert!((1..=expected).contains(&requests), "{report}");
    assert!(report["latency_p99_ms"].is_number(), "{report}");
    assert!(report["server_cpu_us_per_webhook"].is_number(), "{report}");
}

#[test]
fn webhooks_to_a_keep_alive_receiver_all_arrive_in_order() {
    let receiver_port = free_port();
    let server = TestServer::start_with(&webhook_config(receiver_port));
    let report = bench(
        &server,
        &format!(
            "webhooks --mode keep-alive --clients 4 --channels 3 --rounds 2 --receiver-port {receiver_port}"
        ),
    );
    // 4 clients x 3 channels x 2 rounds, each an occupied and a vacated.
    assert_every_webhook_arrived(&report, 48);
    assert_eq!(report["mode"], "keep-alive");
    let requests = report["requests"].as_u64().unwrap();
    assert!(
        report["receiver_connections"].as_u64().unwrap() < requests,
        "the server reused its connections: {report}"
    );
}

#[test]
fn webhooks_to_a_receiver_that_closes_every_connection_all_arrive_in_order() {
    let receiver_port = free_port();
    let server = TestServer::start_with(&webhook_config(receiver_port));
    let report = bench(
        &server,
        &format!(
            "webhooks --mode close --clients 4 --channels 3 --rounds 2 --receiver-port {receiver_port}"
        ),
    );
    assert_every_webhook_arrived(&report, 48);
    assert_eq!(report["mode"], "close");
    assert_eq!(
        report["receiver_connections"], report["requests"],
        "one connection per request: {report}"
    );
}

#[test]
fn webhooks_signed_with_another_secret_fail_the_run() {
    let receiver_port = free_port();
    let server = TestServer::start_with(&webhook_config(receiver_port));
    let output = Command::new(bench_binary())
        .args([
            "webhooks",
            "--clients",
            "1",
            "--channels",
            "1",
            "--rounds",
            "1",
        ])
        .args(["--receiver-port", &receiver_port.to_string()])
        .args(["--port", &server.port.to_string(), "--timeout", "30"])
        .args(["--secret", "not-the-app-secret"])
        .output()
        .expect("run relay-bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("webhooks failed") && stderr.contains("2 requests with a bad signature"),
        "{stderr}"
    );
}

#[test]
fn trigger_with_a_bearer_token_is_accepted_and_a_wrong_one_fails_the_run() {
    let token = relay::guard::generate_token();
    let hash = relay::guard::WellFormedToken::parse(&token).unwrap().hash();
    let config = format!(
        "{}[[apps.tokens]]\nname = \"bench\"\nhash = \"{hash:?}\"\nscopes = [\"events:publish\"]\n",
        common::default_config()
    );
    let server = TestServer::start_with(&config);
    let report = bench(
        &server,
        &format!("trigger --clients 2 --duration 0.3 --bearer {token}"),
    );
    assert!(report["requests"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["non_2xx"], 0, "{report}");
    let unknown = relay::guard::generate_token();
    let output = Command::new(bench_binary())
        .args([
            "trigger",
            "--clients",
            "1",
            "--duration",
            "0.2",
            "--bearer",
            &unknown,
        ])
        .args(["--port", &server.port.to_string(), "--timeout", "30"])
        .output()
        .expect("run relay-bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("401") && stderr.contains("Invalid API token"),
        "{stderr}"
    );
}
