//! API tokens and the state store: a `relay token revoke` reaches a running server within
//! seconds, a revocation made while the server is down holds from its first request, uses are
//! counted for `relay token list`, and the CLI writes while the server writes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::http::raw_request_from;
use common::{APP_ID, TestServer, api_token, default_config};

/// `relay --config <config> token <args…>`: success and stdout.
fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(config)
        .arg("token")
        .args(args)
        .output()
        .expect("run relay token");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() || !stderr.is_empty(),
        "a failure says why"
    );
    (output.status.success(), stdout + &stderr)
}

async fn status_with(server: &TestServer, token: &str) -> u16 {
    let path = format!("/apps/{APP_ID}/channels");
    let header = format!("Authorization: Bearer {token}\r\n");
    raw_request_from(server, "127.0.0.1", "GET", &path, "", &header)
        .await
        .status
}

/// Asks with `token` until the answer is `status` (bounded); how long that took.
async fn until_status(server: &TestServer, token: &str, status: u16) -> Duration {
    let start = Instant::now();
    loop {
        if status_with(server, token).await == status {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_cli_revocation_reaches_the_running_server_and_the_list_shows_use() {
    let (ci, block) = api_token("ci", &[]);
    let server = TestServer::start_with(&format!("{}{block}", default_config()));
    for _ in 0..3 {
        assert_eq!(status_with(&server, &ci).await, 200);
    }
    let (ok, said) = cli(
        &server.config_path(),
        &["revoke", "--app", APP_ID, "--name", "ci"],
    );
    assert!(ok, "{said}");
    let took = until_status(&server, &ci, 401).await;
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    let (ok, listed) = cli(&server.config_path(), &["list", "--app", APP_ID]);
    assert!(ok, "{listed}");
    // Three requests before the revocation, and those of the wait that it had not reached.
    let uses: u64 = listed
        .strip_prefix("ci  REVOKED  full access  no expiry  ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!(uses >= 3, "{listed}");
    assert!(listed.contains(" uses, last "), "{listed}");
    assert!(listed.contains("from 127.0.0.1"), "{listed}");
    let (ok, again) = cli(
        &server.config_path(),
        &["revoke", "--app", APP_ID, "--name", "ci"],
    );
    assert!(ok && again.contains("already revoked"), "{again}");
    let (ok, unknown) = cli(
        &server.config_path(),
        &["revoke", "--app", APP_ID, "--name", "nope"],
    );
    assert!(
        !ok && unknown.contains("no token named \"nope\""),
        "{unknown}"
    );
}

#[tokio::test]
async fn a_revocation_made_while_the_server_is_down_holds_from_its_first_request() {
    let dir = tempfile::tempdir().unwrap();
    let (ci, block) = api_token("ci", &[]);
    let (other, other_block) = api_token("other", &[]);
    let store = dir.path().join("state.db");
    let config = format!(
        "{}{block}{other_block}[store]\npath = \"{}\"\n",
        default_config(),
        store.display()
    );
    let config_path = dir.path().join("relay.toml");
    std::fs::write(&config_path, &config).unwrap();
    let (ok, said) = cli(&config_path, &["revoke", "--app", APP_ID, "--name", "ci"]);
    assert!(ok, "{said}");
    let server = TestServer::start_with(&config);
    assert_eq!(status_with(&server, &ci).await, 401);
    assert_eq!(status_with(&server, &other).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_while_the_server_flushes_uses() {
    let mut blocks = String::new();
    let (busy, block) = api_token("busy", &[]);
    blocks.push_str(&block);
    for n in 0..20 {
        blocks.push_str(&api_token(&format!("spare-{n}"), &[]).1);
    }
    let server = TestServer::start_with(&format!("{}{blocks}", default_config()));
    let config_path = server.config_path();
    // Revocations from the CLI while requests keep the server's uses flowing to the store
    // (a flush every 2 s, so the 3 s of this overlap at least one).
    let revoking = std::thread::spawn(move || {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed() < Duration::from_secs(3) && n < 20 {
            let name = format!("spare-{n}");
            let (ok, said) = cli(&config_path, &["revoke", "--app", APP_ID, "--name", &name]);
            assert!(ok, "{name}: {said}");
            n += 1;
        }
        n
    });
    let start = Instant::now();
    let mut requests = 0;
    while start.elapsed() < Duration::from_secs(3) {
        assert_eq!(status_with(&server, &busy).await, 200);
        requests += 1;
    }
    let revoked = revoking.join().expect("the CLI thread");
    assert!(revoked > 0);
    // Every request is counted once the server has flushed again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, listed) = cli(&server.config_path(), &["list", "--app", APP_ID]);
        assert!(ok, "{listed}");
        if listed.contains(&format!(
            "busy  active  full access  no expiry  {requests} uses"
        )) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uses never reached {requests}: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
