//! Secrets tooling with the real binary: `relay secret` prints a fresh 256-bit secret,
//! `relay app new` a block that `relay check-config` accepts, even in production; a
//! `${file:…}` secret is read from its file; production refuses to start with the bundled
//! development credentials, and development starts with them and says so once.

mod common;

use std::process::Command;

use common::check_config_with_files;

fn relay(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .output()
        .expect("run relay");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn relay_secret_prints_a_new_256_bit_secret_each_time() {
    let (ok, first, _) = relay(&["secret"]);
    assert!(ok);
    let first = first.trim_end();
    assert_eq!(first.len(), 64, "{first}");
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    let (_, second, _) = relay(&["secret"]);
    assert_ne!(first, second.trim_end());
}

#[test]
fn an_app_block_from_relay_app_new_passes_the_production_check() {
    let (ok, block, _) = relay(&["app", "new", "--id", "424242"]);
    assert!(ok);
    let (literal, from_env) = block.split_once("\n\n").expect("two blocks");
    let config = format!("environment = \"production\"\n{literal}");
    let (accepted, said) = check_config_with_files(&config, &[]);
    assert!(accepted, "{said}");
    assert!(
        !said.contains("WARN"),
        "a 64-character secret warns of nothing: {said}"
    );
    assert!(
        from_env.contains("secret = \"${RELAY_APP_424242_SECRET}\""),
        "{from_env}"
    );
    let (accepted, printed, said) = relay(&["app", "new", "--id", "no spaces"]);
    assert!(!accepted);
    assert!(printed.is_empty(), "{printed}");
    assert!(said.contains("--id must be non-empty"), "{said}");
}

#[test]
fn a_secret_can_come_from_a_file() {
    let secret = "s".repeat(40);
    let config = "environment = \"production\"\n[[apps]]\nid = \"1\"\nkey = \"k1\"\n\
        secret = \"${file:secrets/app}\"\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app-secret");
    std::fs::write(&file, format!("{secret}\n")).unwrap();
    let config = config.replace("secrets/app", &file.display().to_string());
    let (accepted, said) = check_config_with_files(&config, &[]);
    assert!(accepted, "{said}");
    let missing = config.replace(&file.display().to_string(), "/nonexistent/relay-secret");
    let (accepted, said) = check_config_with_files(&missing, &[]);
    assert!(!accepted);
    assert!(
        said.contains("cannot read the secret file /nonexistent/relay-secret"),
        "{said}"
    );
}

#[test]
fn production_refuses_the_bundled_credentials_and_development_warns() {
    let bundled = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .expect("the bundled config.toml");
    let production = format!("environment = \"production\"\n{bundled}");
    let production = production.replacen("environment = \"development\"\n", "", 1);
    let (accepted, said) = check_config_with_files(&production, &[]);
    assert!(!accepted);
    assert!(
        said.contains("the bundled development credentials"),
        "{said}"
    );
    let (accepted, said) = check_config_with_files(&bundled, &[]);
    assert!(accepted, "{said}");
    assert_eq!(
        said.matches("the bundled development credentials").count(),
        1,
        "{said}"
    );
    assert!(
        !said.contains("app-secret"),
        "never the secret itself: {said}"
    );
}
