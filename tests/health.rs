//! `relay health`: the container health check asks `GET /ready` and exits 0 only on a 200;
//! refused connections, a 503 and a silent server exit 1 with one line on stderr.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::{TIMEOUT, TestServer};

/// How `relay health` ended: its exit code and what it wrote on stderr.
struct Outcome {
    code: Option<i32>,
    stderr: String,
}

/// Runs `relay ARGS`, waiting at most [`TIMEOUT`] (the command bounds itself at 3 s).
fn relay(args: &[&str]) -> Outcome {
    let child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx
        .recv_timeout(TIMEOUT)
        .expect("relay health did not end in time")
        .expect("wait for relay");
    Outcome {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A port nobody listens on: bound once to get it, then let go.
fn unused_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().port()
}

/// A one-shot HTTP server that answers its first request with `status_line`; the request
/// head it read comes back on the receiver.
fn answer_once(status_line: &'static str) -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        while !head.ends_with("\r\n\r\n") {
            if reader.read_line(&mut head).expect("read the request") == 0 {
                break;
            }
        }
        let mut stream = reader.into_inner();
        let answer = format!("{status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        stream.write_all(answer.as_bytes()).expect("answer");
        let _ = tx.send(head);
    });
    (port, rx)
}

#[test]
fn health_exits_0_when_the_server_is_ready() {
    let server = TestServer::start();
    let config = server.config_path();
    let config = config.to_str().unwrap();
    let port = server.port.to_string();
    let url = format!("http://127.0.0.1:{port}/ready");
    for args in [
        vec!["health", "--url", &url],
        vec!["health", "--config", config, "--port", &port],
        vec!["--config", config, "--port", &port, "health"],
    ] {
        let outcome = relay(&args);
        assert_eq!(outcome.code, Some(0), "{args:?}: {}", outcome.stderr);
        assert_eq!(outcome.stderr, "", "{args:?}");
    }
}

#[test]
fn health_reads_host_and_port_from_the_config_even_when_it_binds_0_0_0_0() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let config = common::default_config().replace(
        "host = \"127.0.0.1\"\n",
        &format!("host = \"0.0.0.0\"\nport = {}\n", server.port),
    );
    std::fs::write(&path, config).unwrap();
    let outcome = relay(&["health", "--config", path.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);
}

#[test]
fn health_exits_1_when_nobody_listens() {
    let port = unused_port();
    let outcome = relay(&["health", "--url", &format!("http://127.0.0.1:{port}/ready")]);
    assert_eq!(outcome.code, Some(1));
    assert!(
        outcome
            .stderr
            .starts_with(&format!("relay: cannot connect to 127.0.0.1:{port}: ")),
        "{}",
        outcome.stderr
    );
    assert_eq!(outcome.stderr.lines().count(), 1, "{}", outcome.stderr);
}

#[test]
fn health_exits_1_when_the_server_answers_503() {
    let (port, request) = answer_once("HTTP/1.1 503 Service Unavailable");
    let outcome = relay(&["health", "--url", &format!("http://127.0.0.1:{port}/ready")]);
    assert_eq!(outcome.code, Some(1));
    assert_eq!(
        outcome.stderr,
        format!("relay: not ready: http://127.0.0.1:{port}/ready answered 503\n")
    );
    let head = request.recv_timeout(TIMEOUT).expect("the request");
    assert!(head.starts_with("GET /ready HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
}

#[test]
fn health_exits_1_when_the_server_does_not_answer_within_3_s() {
    // The kernel completes the connection; nobody ever reads or answers it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let started = Instant::now();
    let outcome = relay(&["health", "--url", &format!("http://127.0.0.1:{port}/ready")]);
    assert_eq!(outcome.code, Some(1));
    assert_eq!(
        outcome.stderr,
        format!("relay: no answer from 127.0.0.1:{port} within 3 s\n")
    );
    assert!(started.elapsed() >= relay::health_cli::TIMEOUT);
    drop(listener);
}

#[test]
fn health_exits_1_when_the_config_does_not_load() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let outcome = relay(&["health", "--config", missing.to_str().unwrap()]);
    assert_eq!(outcome.code, Some(1));
    assert!(outcome.stderr.starts_with("relay: "), "{}", outcome.stderr);
    assert!(
        outcome.stderr.contains("missing.toml"),
        "{}",
        outcome.stderr
    );
}
