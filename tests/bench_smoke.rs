//! Smoke runs of every `relay-bench` scenario at tiny sizes against the real server, so the
//! load tool cannot rot. These check that each scenario completes and reports sane figures;
//! performance itself is measured by hand (docs/benchmarks.md), never asserted here.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestServer;
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
    let scenario: Vec<&str> = command.split_whitespace().collect();
    let output = Command::new(bench_binary())
        .args(&scenario)
        .args(["--port", &server.port.to_string()])
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
