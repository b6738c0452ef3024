//! The Redis store's tests: the contract every store keeps, each test on a redis-server of
//! its own (`$RELAY_REDIS_SERVER`, else `redis-server` on PATH) listening on a Unix socket in
//! a temporary folder, so tests share nothing and need no free port. Then what is Redis's
//! own: two processes' stores rotating at once, and Redis going away and coming back.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::*;
use crate::config::ConfigString;
use crate::store::contract::{TestStore, at, store_contract_tests};

store_contract_tests!({
    let server = PrivateRedis::start();
    TestStore::new(server.store("relay"), server)
});

/// A redis-server on a Unix socket, killed on drop.
struct PrivateRedis {
    child: Child,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = spawn(&dir.path().join("redis.sock"), dir.path());
        PrivateRedis { child, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn store(&self, prefix: &str) -> RedisStore {
        let url = format!("redis+unix://{}", self.socket().display());
        RedisStore::new(&RedisConfig {
            url: ConfigString::from(url.as_str()),
            prefix: ConfigString::from(prefix),
            heartbeat_interval: 2,
            node_timeout: 10,
        })
        .unwrap()
    }

    /// Stops the server and starts it again on the same socket, empty.
    fn restart(&mut self) {
        self.stop();
        self.child = spawn(&self.socket(), self.dir.path());
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.socket());
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts redis-server on `socket` and waits, at most [`READY_WAIT`], until it says it is
/// ready.
fn spawn(socket: &Path, dir: &Path) -> Child {
    let binary = std::env::var_os("RELAY_REDIS_SERVER")
        .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
    let mut child = Command::new(&binary)
        .args(["--port", "0", "--save", "", "--appendonly", "no", "--unixsocket"])
        .arg(socket)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {} ({error}); set RELAY_REDIS_SERVER or run scripts/test, which installs it",
                binary.display()
            )
        });
    let output = BufReader::new(child.stdout.take().unwrap());
    let (ready, is_ready) = std::sync::mpsc::channel();
    // Reads the output to its end (the server's), so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in output.lines().map_while(Result::ok) {
            // "Ready to accept connections" (Redis 7.2+) or "ready to accept connections at …".
            if line
                .to_ascii_lowercase()
                .contains("ready to accept connections")
            {
                let _ = ready.send(());
            }
        }
    });
    if is_ready.recv_timeout(READY_WAIT).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("redis-server did not get ready within {READY_WAIT:?}");
    }
    child
}

/// How long redis-server may take to start.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[test]
fn two_clusters_on_one_redis_share_nothing() {
    let server = PrivateRedis::start();
    let (one, two) = (server.store("one"), server.store("two"));
    assert!(one.revoke_token("1", "ci", at(5)).unwrap());
    assert!(
        two.revoke_token("1", "ci", at(5)).unwrap(),
        "another prefix"
    );
    assert!(two.lockdowns().unwrap().is_empty());
}

#[test]
fn stores_rotating_at_once_make_one_rotation() {
    let server = PrivateRedis::start();
    let rotation = |secret| Rotation {
        app_id: "1",
        based_on: None,
        replaced: ("k", "config-secret"),
        new_key: "k",
        new_secret: secret,
        at: at(10),
        replaced_valid_until: at(1010),
        reason: RotationReason::Scheduled,
    };
    let outcomes: Vec<Rotated> = std::thread::scope(|scope| {
        let rotating: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|secret| {
                let store = server.store("relay");
                scope.spawn(move || store.rotate(&rotation(secret)).unwrap())
            })
            .collect();
        rotating
            .into_iter()
            .map(|one| one.join().unwrap())
            .collect()
    });
    let done = outcomes.iter().filter(|o| **o == Rotated::Done(1)).count();
    assert_eq!(done, 1, "{outcomes:?}");
    let pairs = server.store("relay").credentials().unwrap();
    assert_eq!(pairs.len(), 2, "config.toml's pair and one new one");
}

#[test]
fn calls_fail_while_redis_is_away_and_work_again_once_it_is_back() {
    let mut server = PrivateRedis::start();
    let store = server.store("relay");
    assert!(store.revoke_token("1", "ci", at(5)).unwrap());
    server.stop();
    let error = store.revoked_tokens().unwrap_err().to_string();
    assert!(error.starts_with("state store redis "), "{error}");
    server.restart();
    assert_eq!(
        store.revoked_tokens().unwrap(),
        [],
        "a fresh connection to the empty server"
    );
    assert!(store.revoke_token("1", "ci", at(6)).unwrap());
}

#[test]
fn errors_name_the_address_but_never_the_password() {
    let store = RedisStore::new(&RedisConfig {
        url: ConfigString::from("redis://:hunter2-secret@127.0.0.1:1"),
        prefix: ConfigString::from("relay"),
        heartbeat_interval: 2,
        node_timeout: 10,
    })
    .unwrap();
    let error = store.lockdowns().unwrap_err().to_string();
    assert!(error.contains("127.0.0.1:1"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    assert!(!format!("{store:?}").contains("hunter2"));
}
