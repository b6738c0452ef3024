//! The container files as a user gets them: `docker-compose.yml` is valid for docker-compose
//! (validated with `docker-compose config`, so no container engine is needed) with the
//! variables of `.env.example`, refuses to render without its Redis password, keeps Redis off
//! the host; the image runs as a non-root user and health-checks with `relay health`; and the
//! nodes' configuration passes `relay check-config` with the example's variables.
//!
//! The binary is `$RELAY_DOCKER_COMPOSE` (scripts/test sets it, installing the package if
//! needed), else `docker-compose` on PATH.

use std::path::Path;
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn docker_compose(args: &[&str], env_file: Option<&Path>) -> Output {
    let empty = tempfile::NamedTempFile::new().unwrap();
    let binary = std::env::var("RELAY_DOCKER_COMPOSE").unwrap_or("docker-compose".to_owned());
    let mut command = Command::new(&binary);
    command
        .current_dir(repo())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap());
    if let Some(env_file) = env_file {
        command.arg("--env-file").arg(env_file);
    } else {
        // No .env of the developer's may fill the variables in.
        command.arg("--env-file").arg(empty.path());
    }
    command
        .args(["-f", "docker-compose.yml"])
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run {binary}: {error}; scripts/test installs it \
                 (Debian: apt-get install docker-compose), or set RELAY_DOCKER_COMPOSE"
            )
        })
}

/// The variables of `.env.example`, as `docker compose` reads them.
fn example_variables() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join(".env.example")).unwrap();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains('='))
        .map(|line| {
            let (name, value) = line.split_once('=').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// The lines of service `name` in a rendered compose file (two-space indented services).
fn service_block<'a>(rendered: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("  {name}:");
    let mut lines = rendered.lines().skip_while(|line| *line != header);
    assert!(lines.next().is_some(), "no service {name} in:\n{rendered}");
    lines
        .take_while(|line| line.starts_with("    ") || line.trim().is_empty())
        .collect()
}

#[test]
fn the_compose_file_renders_with_the_example_variables_and_keeps_redis_private() {
    let output = docker_compose(&["config"], Some(&repo().join(".env.example")));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "docker-compose config failed: {stderr}"
    );
    let rendered = String::from_utf8(output.stdout).unwrap();
    let services = docker_compose(
        &["config", "--services"],
        Some(&repo().join(".env.example")),
    );
    let mut names: Vec<String> = String::from_utf8(services.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    names.sort();
    assert_eq!(names, ["balancer", "redis", "relay-a", "relay-b"]);
    let redis = service_block(&rendered, "redis");
    assert!(
        !redis
            .iter()
            .any(|line| line.trim_start().starts_with("ports:")),
        "Redis must not be published to the host: {redis:#?}"
    );
    assert!(redis.iter().any(|line| line.contains("--requirepass")));
    // docker-compose folds long lines: compare the words.
    let words = redis
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        words.contains("--appendonly yes") && words.contains("redis-data:/data"),
        "the state store survives a Redis restart: {redis:#?}"
    );
    for node in ["relay-a", "relay-b"] {
        let block = service_block(&rendered, node).join("\n");
        assert!(
            block.contains("build:"),
            "{node} is built from the Dockerfile: {block}"
        );
        assert!(block.contains("RELAY_REDIS_PASSWORD"), "{block}");
    }
    let balancer = service_block(&rendered, "balancer").join("\n");
    assert!(
        balancer.contains("127.0.0.1"),
        "published on loopback only: {balancer}"
    );
    assert!(balancer.contains("deploy/nginx.conf"), "{balancer}");
}

#[test]
fn without_the_redis_password_the_compose_file_refuses_to_render() {
    let output = docker_compose(&["config", "-q"], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "rendered without secrets");
    assert!(stderr.contains("RELAY_REDIS_PASSWORD"), "{stderr}");
}

#[test]
fn the_image_runs_unprivileged_and_health_checks_with_relay_health() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let runtime = dockerfile.rsplit("\nFROM ").next().unwrap();
    let user = runtime.lines().find(|line| line.starts_with("USER "));
    assert!(
        matches!(user, Some(user) if user != "USER root"),
        "the runtime stage runs as a user of its own"
    );
    assert!(runtime.contains(r#"HEALTHCHECK"#) && runtime.contains(r#"CMD ["relay", "health"]"#));
    let commands = runtime.lines().filter(|line| !line.starts_with('#'));
    assert!(
        !commands.collect::<String>().contains("curl"),
        "the health check needs no curl"
    );
}

#[test]
fn the_nodes_configuration_passes_check_config_with_the_example_variables() {
    let output = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("check-config")
        .arg(repo().join("deploy/cluster.toml"))
        .envs(example_variables())
        .output()
        .expect("run relay check-config");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "deploy/cluster.toml: {stderr}");
}
