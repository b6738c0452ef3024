//! The HTTP API under `[apps.security]`: the key and secret headers, mixed methods, IP
//! allowlists (IPv4 and IPv6 edges), trusted proxies (spoofed, chained, server-wide), Geo-IP
//! rules on a generated test database, and mTLS fingerprints. Clients arrive from other
//! loopback addresses (127.0.0.2, …) to be somewhere else.

mod common;

use common::http::{Response, now, raw_request_from, signed_path};
use common::{APP_ID, APP_KEY, APP_SECRET, TestServer, default_config};

/// The default config with `security` lines in `[apps.security]` and `top` lines after it.
fn secured(security: &str, top: &str) -> String {
    format!("{}[apps.security]\n{security}\n{top}\n", default_config())
}

/// A signed `GET /apps/{id}/channels` from `source`, with extra header lines.
async fn channels_from(server: &TestServer, source: &str, headers: &str) -> Response {
    let path = format!("/apps/{APP_ID}/channels");
    let target = signed_path("GET", &path, &[], "", APP_SECRET, now());
    raw_request_from(server, source, "GET", &target, "", headers).await
}

fn forwarded(chain: &str) -> String {
    format!("X-Forwarded-For: {chain}\r\n")
}

const EVENT: &str = r#"{"name":"e","channels":["news"],"data":"{}"}"#;

#[tokio::test]
async fn key_and_secret_headers_authenticate_every_endpoint_on_both_prefixes() {
    let server = TestServer::start();
    let pair = format!("X-Relay-Key: {APP_KEY}\r\nX-Relay-Secret: {APP_SECRET}\r\n");
    for prefix in ["", "/api/v1"] {
        let events = format!("{prefix}/apps/{APP_ID}/events");
        let response = raw_request_from(&server, "127.0.0.1", "POST", &events, EVENT, &pair).await;
        assert_eq!(
            (response.status, response.body.as_str()),
            (200, "{}"),
            "{prefix}"
        );
        let batch = format!("{prefix}/apps/{APP_ID}/batch_events");
        let body = r#"{"batch":[{"name":"e","channel":"news","data":"{}"}]}"#;
        let response = raw_request_from(&server, "127.0.0.1", "POST", &batch, body, &pair).await;
        assert_eq!(response.status, 200, "{prefix}: {}", response.body);
        let channels =
            format!("{prefix}/apps/{APP_ID}/channels?filter_by_prefix=presence-&info=user_count");
        let response = raw_request_from(&server, "127.0.0.1", "GET", &channels, "", &pair).await;
        assert_eq!(response.status, 200, "{prefix}: {}", response.body);
    }
    let terminate = "/users/someone/terminate_connections";
    let response = raw_request_from(&server, "127.0.0.1", "POST", terminate, "{}", &pair).await;
    assert_eq!(response.status, 200, "{}", response.body);
}

#[tokio::test]
async fn a_wrong_pair_or_half_a_pair_is_401_and_the_secret_is_never_echoed() {
    let server = TestServer::start();
    let events = format!("/apps/{APP_ID}/events");
    let cases = [
        (
            format!("X-Relay-Key: {APP_KEY}\r\nX-Relay-Secret: not-the-secret\r\n"),
            "Invalid X-Relay-Key or X-Relay-Secret",
        ),
        (
            format!("X-Relay-Key: other-key\r\nX-Relay-Secret: {APP_SECRET}\r\n"),
            "Invalid X-Relay-Key or X-Relay-Secret",
        ),
        (
            format!("X-Relay-Key: {APP_KEY}\r\n"),
            "X-Relay-Key and X-Relay-Secret must be sent together",
        ),
        (
            format!("X-Relay-Secret: {APP_SECRET}\r\n"),
            "X-Relay-Key and X-Relay-Secret must be sent together",
        ),
    ];
    for (headers, message) in cases {
        let response =
            raw_request_from(&server, "127.0.0.1", "POST", &events, EVENT, &headers).await;
        assert_eq!(response.status, 401, "{headers}");
        assert_eq!(response.error(), message, "{headers}");
        assert!(!response.body.contains(APP_SECRET) && !response.body.contains("not-the-secret"));
    }
}

#[tokio::test]
async fn two_authentication_methods_at_once_are_401_naming_the_conflict() {
    let server = TestServer::start();
    let path = format!("/apps/{APP_ID}/events");
    let signed = signed_path("POST", &path, &[], EVENT, APP_SECRET, now());
    let pair = format!("X-Relay-Key: {APP_KEY}\r\nX-Relay-Secret: {APP_SECRET}\r\n");
    let response = raw_request_from(&server, "127.0.0.1", "POST", &signed, EVENT, &pair).await;
    assert_eq!(response.status, 401);
    assert_eq!(
        response.error(),
        "Use one authentication method, not an HMAC query signature and X-Relay-Key/X-Relay-Secret headers"
    );
    let bearer =
        format!("{pair}Authorization: Bearer rly_000000000000000000000000000000000000\r\n");
    let response = raw_request_from(&server, "127.0.0.1", "POST", &path, EVENT, &bearer).await;
    assert_eq!(response.status, 401);
    assert!(
        response.error().contains("headers and a Bearer token"),
        "{}",
        response.body
    );
}

#[tokio::test]
async fn the_allowlist_holds_its_ipv4_edges() {
    let server = TestServer::start_with(&secured(r#"ip_allowlist = ["127.0.0.2/31"]"#, ""));
    for (source, status) in [
        ("127.0.0.2", 200),
        ("127.0.0.3", 200),
        ("127.0.0.4", 403),
        ("127.0.0.1", 403),
    ] {
        let response = channels_from(&server, source, "").await;
        assert_eq!(response.status, status, "{source}: {}", response.body);
        if status == 403 {
            assert_eq!(response.error(), "Address not allowed");
        }
    }
}

#[tokio::test]
async fn the_allowlist_holds_its_ipv6_edges_through_a_trusted_proxy() {
    let rules = "trusted_proxies = [\"127.0.0.1\"]\nip_allowlist = [\"2001:db8::/127\"]";
    let server = TestServer::start_with(&secured(rules, ""));
    let cases = [
        ("2001:db8::", 200),
        ("2001:db8::1", 200),
        ("2001:db8::2", 403),
        ("[2001:db8::1]:443", 200),
    ];
    for (client, status) in cases {
        let response = channels_from(&server, "127.0.0.1", &forwarded(client)).await;
        assert_eq!(response.status, status, "{client}: {}", response.body);
    }
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored_and_a_trusted_chain_is_followed() {
    let rules = "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]\nip_allowlist = [\"127.0.0.2\"]";
    let server = TestServer::start_with(&secured(rules, ""));
    // 127.0.0.3 is no proxy: it cannot claim to be 127.0.0.2.
    let spoofed = channels_from(&server, "127.0.0.3", &forwarded("127.0.0.2")).await;
    assert_eq!(spoofed.status, 403);
    // Through two trusted proxies (10.0.0.5, then 127.0.0.1): the client is 127.0.0.2.
    let chained = channels_from(
        &server,
        "127.0.0.1",
        &forwarded("198.51.100.1, 127.0.0.2, 10.0.0.5"),
    )
    .await;
    assert_eq!(chained.status, 200, "{}", chained.body);
    // The left-most entry is the client's own claim, past the first untrusted hop: ignored.
    let claimed = channels_from(&server, "127.0.0.1", &forwarded("127.0.0.2, 198.51.100.1")).await;
    assert_eq!(claimed.status, 403);
}

#[tokio::test]
async fn the_server_wide_trusted_proxies_serve_apps_without_their_own() {
    let top = "[server]\ntrusted_proxies = [\"127.0.0.1\"]";
    // `[server]` is already in the default config: append the key to it instead.
    let config =
        secured("ip_allowlist = [\"203.0.113.7\"]", "").replace("[server]\n", &format!("{top}\n"));
    let server = TestServer::start_with(&config);
    let through = channels_from(&server, "127.0.0.1", &forwarded("203.0.113.7")).await;
    assert_eq!(through.status, 200, "{}", through.body);
    let other = channels_from(&server, "127.0.0.1", &forwarded("203.0.113.8")).await;
    assert_eq!(other.status, 403);
}

fn fingerprint(byte: &str) -> String {
    format!("sha256:{}", byte.repeat(32))
}

#[tokio::test]
async fn mtls_fingerprints_count_only_from_trusted_proxies_and_are_required_only_when_asked() {
    let registered = fingerprint("ab");
    let rules =
        format!("trusted_proxies = [\"127.0.0.1\"]\nmtls_fingerprints = [\"{registered}\"]");
    let header = |value: &str| format!("X-Client-Cert-Fingerprint: {value}\r\n");
    let optional = TestServer::start_with(&secured(&rules, ""));
    let cases = [
        ("127.0.0.1", header(&registered), 200),
        ("127.0.0.1", header(&fingerprint("cd")), 403),
        ("127.0.0.1", String::new(), 200),
        // Not a trusted proxy: the header is ignored, and missing is allowed here.
        ("127.0.0.2", header(&fingerprint("cd")), 200),
    ];
    for (source, headers, status) in &cases {
        let response = channels_from(&optional, source, headers).await;
        assert_eq!(
            response.status, *status,
            "optional {source} {headers}: {}",
            response.body
        );
    }
    let required = TestServer::start_with(&secured(&format!("{rules}\nmtls_required = true"), ""));
    let cases = [
        ("127.0.0.1", header(&registered), 200, ""),
        (
            "127.0.0.1",
            String::new(),
            403,
            "Client certificate required",
        ),
        (
            "127.0.0.1",
            header(&fingerprint("cd")),
            403,
            "Client certificate not registered",
        ),
        (
            "127.0.0.2",
            header(&registered),
            403,
            "Client certificate required",
        ),
    ];
    for (source, headers, status, message) in &cases {
        let response = channels_from(&required, source, headers).await;
        assert_eq!(
            response.status, *status,
            "required {source} {headers}: {}",
            response.body
        );
        if *status == 403 {
            assert_eq!(response.error(), *message);
        }
    }
}

/// A config whose app has a geo rule, on the generated test database in `dir`.
fn geo_config(dir: &std::path::Path, rule: &str) -> String {
    let database = common::geoip::test_database(dir);
    secured(
        &format!("geo = {rule}"),
        &format!("[geoip]\ndatabase = \"{}\"", database.display()),
    )
}

#[tokio::test]
async fn geo_rules_allow_block_and_decide_unknown_addresses() {
    let dir = tempfile::tempdir().unwrap();
    // 127.0.0.2 is DE, .3 FR, .4 KP in geoip/test-countries.txt; .9 is in no country.
    let cases = [
        (
            r#"{ mode = "block", countries = ["KP"] }"#,
            [200, 200, 403, 200],
        ),
        (
            r#"{ mode = "allow", countries = ["DE"] }"#,
            [200, 403, 403, 200],
        ),
        (
            r#"{ mode = "allow", countries = ["DE"], unknown = "deny" }"#,
            [200, 403, 403, 403],
        ),
        (
            r#"{ mode = "block", countries = ["de"], unknown = "allow" }"#,
            [403, 200, 200, 200],
        ),
    ];
    for (rule, statuses) in cases {
        let server = TestServer::start_with(&geo_config(dir.path(), rule));
        for (source, status) in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]
            .iter()
            .zip(statuses)
        {
            let response = channels_from(&server, source, "").await;
            assert_eq!(
                response.status, status,
                "{rule} from {source}: {}",
                response.body
            );
            if status == 403 {
                assert_eq!(response.error(), "Country not allowed");
            }
        }
    }
}

/// Runs `relay` on `config` (written to a file in `dir`) and returns its exit success and
/// stderr; a config that fails starts nothing, so this returns at once.
fn run_relay(dir: &std::path::Path, config: &str, args: &[&str]) -> (bool, String) {
    let path = dir.join("relay.toml");
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(&path)
        .args(["--port", "0"])
        .args(args)
        .output()
        .expect("run relay");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_broken_or_missing_database_stops_the_start_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.mmdb"), b"not a MaxMind database").unwrap();
    for database in ["broken.mmdb", "missing.mmdb"] {
        let config = secured(
            r#"geo = { mode = "block", countries = ["KP"] }"#,
            &format!("[geoip]\ndatabase = \"{database}\""),
        );
        let (started, stderr) = run_relay(dir.path(), &config, &[]);
        assert!(!started, "{database}");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("relay: "))
            .collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        let expected = format!("[geoip] database {}", dir.path().join(database).display());
        assert!(lines[0].contains(&expected), "{stderr}");
    }
}

#[test]
fn a_relative_database_path_is_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let database = common::geoip::test_database(dir.path());
    let name = database.file_name().unwrap().to_str().unwrap();
    let config = secured(
        r#"geo = { mode = "block", countries = ["KP"] }"#,
        &format!("[geoip]\ndatabase = \"{name}\""),
    );
    // Checked from another working directory: only the config's folder can find it.
    let path = dir.path().join("relay.toml");
    std::fs::write(&path, config).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run relay check-config");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(": ok (1 apps)"), "{stdout}");
}

#[tokio::test]
async fn the_short_terminate_path_and_expect_continue_are_guarded_too() {
    let server = TestServer::start_with(&secured(r#"ip_allowlist = ["127.0.0.2"]"#, ""));
    let pair = format!("X-Relay-Key: {APP_KEY}\r\nX-Relay-Secret: {APP_SECRET}\r\n");
    let terminate = "/users/u1/terminate_connections";
    let refused = raw_request_from(&server, "127.0.0.3", "POST", terminate, "{}", &pair).await;
    assert_eq!(
        (refused.status, refused.error().as_str()),
        (403, "Address not allowed")
    );
    let allowed = raw_request_from(&server, "127.0.0.2", "POST", terminate, "{}", &pair).await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    // A client that waits for `100 Continue` is refused on its head, its body never asked for.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = common::connect_from("127.0.0.3", server.port).await;
    let head = format!(
        "POST /apps/{APP_ID}/events HTTP/1.1\r\nHost: x\r\n{pair}Content-Type: application/json\r\nContent-Length: 40\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let read = tokio::time::timeout(common::TIMEOUT, stream.read(&mut answer))
        .await
        .expect("an answer to the head")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[tokio::test]
async fn padding_forwarded_for_cannot_slip_past_a_geo_rule() {
    let dir = tempfile::tempdir().unwrap();
    let database = common::geoip::test_database(dir.path());
    let rules =
        "trusted_proxies = [\"127.0.0.1\"]\ngeo = { mode = \"block\", countries = [\"KP\"] }";
    let config = secured(
        rules,
        &format!("[geoip]\ndatabase = \"{}\"", database.display()),
    );
    let server = TestServer::start_with(&config);
    // The proxy appended the client's real address (127.0.0.4, KP) after what it sent.
    let padded = format!("{}, 127.0.0.4", "x".repeat(3000));
    let response = channels_from(&server, "127.0.0.1", &forwarded(&padded)).await;
    assert_eq!(
        (response.status, response.error().as_str()),
        (403, "Country not allowed")
    );
    // An entry the proxies vouch for that is not an address names no one: refused.
    let garbage = channels_from(&server, "127.0.0.1", &forwarded("not-an-address")).await;
    assert_eq!(garbage.status, 403);
    let plain = channels_from(&server, "127.0.0.1", &forwarded("127.0.0.2")).await;
    assert_eq!(plain.status, 200, "{}", plain.body);
}
