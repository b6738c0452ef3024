//! What a reload of the guard's rules ([`Guard::prepare`], [`Guard::commit`]) keeps: the
//! counts of every part whose configuration is unchanged, and the state that must never be
//! reset (open connections per address, bans, lockdowns, the day's message count).

use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;

use super::*;
use crate::config::Config;

fn config(app_lines: &str) -> Config {
    let text = format!("[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n{app_lines}\n");
    Config::from_toml(&text, Path::new("test.toml")).unwrap()
}

fn reload(guard: &Guard, app_lines: &str) {
    let rules = guard.prepare(&config(app_lines)).unwrap();
    guard.commit(rules);
}

fn address(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

const LIMITS: &str = "[apps.limits]\napi_requests_per_second = 1\nconnections_per_ip = 1\n";

#[tokio::test]
async fn an_unchanged_limits_block_keeps_its_buckets() {
    let guard = Guard::from_config(&config(LIMITS)).unwrap();
    assert!(
        guard
            .limit_api("1", address("10.0.0.1"), false)
            .await
            .is_ok()
    );
    assert!(
        guard
            .limit_api("1", address("10.0.0.1"), false)
            .await
            .is_err()
    );
    reload(&guard, &format!("enable_client_messages = true\n{LIMITS}"));
    assert!(
        guard
            .limit_api("1", address("10.0.0.1"), false)
            .await
            .is_err(),
        "the spent bucket is the same one"
    );
}

#[tokio::test]
async fn a_changed_limits_block_still_counts_the_connections_already_open() {
    let guard = Guard::from_config(&config(LIMITS)).unwrap();
    let open = guard
        .limit_connection("1", address("10.0.0.1"))
        .await
        .unwrap();
    assert!(
        guard
            .limit_connection("1", address("10.0.0.1"))
            .await
            .is_err()
    );
    reload(
        &guard,
        "[apps.limits]\napi_requests_per_second = 50\nconnections_per_ip = 1\n",
    );
    assert!(
        guard
            .limit_connection("1", address("10.0.0.1"))
            .await
            .is_err(),
        "the open connection still counts"
    );
    drop(open);
    assert!(
        guard
            .limit_connection("1", address("10.0.0.1"))
            .await
            .is_ok()
    );
}

#[test]
fn bans_and_their_records_outlive_a_change_of_the_ban_rule() {
    let lines = |after: u32| format!("[apps.security]\nban_after_failures = {after}\n");
    let guard = Guard::from_config(&config(&lines(2))).unwrap();
    guard.auth_failed("1", address("10.0.0.7"), "channel auth");
    guard.auth_failed("1", address("10.0.0.7"), "channel auth");
    assert!(guard.check_ban("1", address("10.0.0.7")).is_err());
    reload(&guard, &lines(5));
    assert!(
        guard.check_ban("1", address("10.0.0.7")).is_err(),
        "still banned"
    );
    assert_eq!(
        guard.take_bans(SystemTime::now()).len(),
        1,
        "and still to be shared"
    );
    guard.auth_failed("1", address("10.0.0.8"), "channel auth");
    guard.auth_failed("1", address("10.0.0.8"), "channel auth");
    assert!(
        guard.check_ban("1", address("10.0.0.8")).is_ok(),
        "the new rule counts to 5"
    );
}

#[test]
fn a_lockdown_holds_across_a_reload_and_a_new_closing_rule_applies_to_it() {
    let lines = |closes: bool| {
        format!("[apps.security]\nauto_lockdown = true\nlockdown_closes_connections = {closes}\n")
    };
    let guard = Guard::from_config(&config(&lines(false))).unwrap();
    assert!(guard.set_locked_down("1", true));
    assert!(
        guard.lockdown_signal("1").is_none(),
        "connections are left open"
    );
    reload(&guard, &lines(true));
    assert!(guard.locked_down("1"), "a reload lifts no lockdown");
    let signal = guard
        .lockdown_signal("1")
        .expect("now a lockdown closes connections");
    assert!(signal.is_cancelled(), "and this one is on");
    reload(&guard, "enable_client_messages = true");
    assert!(!guard.locked_down("1"), "without the rule, no lockdown");
    reload(&guard, &lines(true));
    assert!(
        guard.locked_down("1"),
        "the app's state came back with its rule"
    );
}

#[test]
fn the_day_s_count_outlives_a_new_limit() {
    let lines = |per_day: u32| format!("[apps.limits]\ndaily_messages = {per_day}\n");
    let guard = Guard::from_config(&config(&lines(10))).unwrap();
    let quota = guard.daily_quotas.get("1").unwrap();
    quota.count(5);
    reload(&guard, &lines(5));
    let same = guard.daily_quotas.get("1").unwrap();
    assert!(
        Arc::ptr_eq(&quota, &same),
        "one quota object for the app's life"
    );
    assert!(guard.limit_client_event("1").is_err(), "5 of 5 delivered");
    reload(&guard, &lines(6));
    assert!(guard.limit_client_event("1").is_ok());
}

#[test]
fn a_removed_app_keeps_its_rules_until_forgotten() {
    let guard = Guard::from_config(&config("[apps.security]\nban_after_failures = 1\n")).unwrap();
    let other = "[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n";
    let rules = guard
        .prepare(&Config::from_toml(other, Path::new("test.toml")).unwrap())
        .unwrap();
    guard.commit(rules);
    guard.auth_failed("1", address("10.0.0.9"), "channel auth");
    assert!(guard.check_ban("1", address("10.0.0.9")).is_err());
    guard.forget_apps(&["1".to_owned()]);
    assert!(
        guard.check_ban("1", address("10.0.0.9")).is_ok(),
        "no rules left"
    );
}

#[test]
fn a_rebuilt_token_entry_keeps_its_uses_and_a_removed_one_s_are_flushed() {
    let token = generate_token();
    let hash = WellFormedToken::parse(&token).unwrap().hash();
    let lines = |scopes: &str| {
        format!("[[apps.tokens]]\nname = \"ci\"\nhash = \"{hash:?}\"\nscopes = [{scopes}]\n")
    };
    let guard = Guard::from_config(&config(&lines(""))).unwrap();
    let entry = guard.tokens.verify(&token, SystemTime::now()).unwrap();
    entry.record_use(address("10.0.0.1"), SystemTime::now());
    reload(&guard, &lines("\"events:publish\""));
    let uses = guard.tokens.take_uses();
    assert_eq!(uses.len(), 1);
    assert_eq!(uses[0].count, 1);
    let entry = guard.tokens.verify(&token, SystemTime::now()).unwrap();
    entry.record_use(address("10.0.0.1"), SystemTime::now());
    reload(&guard, "");
    assert!(
        guard.tokens.verify(&token, SystemTime::now()).is_err(),
        "removed"
    );
    assert_eq!(
        guard.tokens.take_uses().len(),
        1,
        "its last use still flushed"
    );
}
