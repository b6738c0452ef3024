//! `relay admin add`: the password read from stdin, a block `relay check-config` and the server
//! take (with its TOTP secret from the environment), and no secret on the command line or in
//! the block.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{TestServer, default_config};

/// `relay admin add` with `args`, `stdin` written to it: (success, stdout, stderr).
fn admin_add(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["admin", "add"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn relay admin add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn an_added_admin_s_block_is_taken_by_check_config_and_the_server() {
    let (ok, out, err) = admin_add(
        &["--name", "ops", "--role", "admin"],
        "a long enough password\n",
    );
    assert!(ok, "{err}");
    let (block, rest) = out.split_once("\n\n").expect("the block, then the secrets");
    assert!(block.contains("role = \"admin\""), "{block}");
    assert!(
        block.contains("password_hash = \"$argon2id$v=19$"),
        "{block}"
    );
    assert!(
        block.contains("totp_secret = \"${RELAY_ADMIN_OPS_TOTP}\""),
        "{block}"
    );
    assert!(!out.contains("a long enough password"));
    let mut lines = rest.lines();
    let environment = lines.next().unwrap();
    let (variable, secret) = environment.split_once('=').unwrap();
    assert_eq!(variable, "RELAY_ADMIN_OPS_TOTP");
    assert!(!block.contains(secret));
    let uri = lines.next().unwrap();
    assert!(uri.starts_with("otpauth://totp/Relay:ops?secret="), "{uri}");
    assert!(uri.contains(secret) && uri.contains("digits=6") && uri.contains("period=30"));

    let config = format!("require_2fa = true\n{block}\n{}", default_config());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &config).unwrap();
    let check = |with_secret: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_relay"));
        command.arg("check-config").arg(&path).env_remove(variable);
        if with_secret {
            command.env(variable, secret);
        }
        command.output().unwrap()
    };
    let checked = check(true);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let unset = check(false);
    assert!(!unset.status.success());
    assert!(String::from_utf8_lossy(&unset.stderr).contains("RELAY_ADMIN_OPS_TOTP"));

    let server = TestServer::start_with_env(&config, &[(variable, secret)]);
    assert!(!server.log().contains(secret), "the secret is never logged");
}

#[test]
fn a_bad_name_or_a_short_password_makes_nothing() {
    let (ok, out, err) = admin_add(&["--name", "two words"], "a long enough password\n");
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("--name must be"), "{err}");
    let (ok, out, err) = admin_add(&["--name", "ops"], "short\n");
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("at least 12 characters"), "{err}");
}
