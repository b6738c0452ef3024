//! The private redis-server of the multi-node tests (tests/common/redis.rs): it answers on
//! its own port, keeps what is written, loses Redis when stopped, and comes back empty on
//! the same port when restarted.

mod common;

use common::redis::RedisServer;

#[test]
fn a_started_server_answers_ping_with_pong() {
    let redis = RedisServer::start();
    assert!(redis.ping());
    assert_eq!(redis.command(&["PING"]), "PONG");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
}

#[test]
fn set_then_get_round_trips_through_command() {
    let redis = RedisServer::start();
    assert_eq!(redis.command(&["SET", "relay:test", "hello world"]), "OK");
    assert_eq!(redis.command(&["GET", "relay:test"]), "hello world");
    assert_eq!(redis.command(&["GET", "relay:absent"]), "(nil)");
    assert_eq!(redis.command(&["DBSIZE"]), "1");
    assert_eq!(redis.command(&["RPUSH", "relay:list", "a", "b"]), "2");
    assert_eq!(redis.command(&["LRANGE", "relay:list", "0", "-1"]), "a\nb");
    assert!(
        redis
            .command(&["NOSUCHCOMMAND"])
            .starts_with("(error) ERR unknown command"),
        "errors come back as redis-cli prints them"
    );
}

#[test]
fn two_servers_share_nothing() {
    let first = RedisServer::start();
    let second = RedisServer::start();
    assert_ne!(first.port(), second.port());
    first.command(&["SET", "relay:test", "first"]);
    assert_eq!(second.command(&["GET", "relay:test"]), "(nil)");
}

#[test]
fn a_stopped_server_no_longer_answers() {
    let mut redis = RedisServer::start();
    assert!(redis.ping());
    redis.stop();
    assert!(!redis.ping());
}

#[test]
fn a_restarted_server_answers_on_the_same_port_with_no_data() {
    let mut redis = RedisServer::start();
    let port = redis.port();
    redis.command(&["SET", "relay:test", "before"]);
    redis.stop();
    assert!(!redis.ping());
    redis.restart();
    assert_eq!(redis.port(), port);
    assert!(redis.ping());
    assert_eq!(redis.command(&["GET", "relay:test"]), "(nil)");
    assert_eq!(redis.command(&["DBSIZE"]), "0");
}
