//! The guard's decisions, from configuration text to verdict.

use std::net::SocketAddr;
use std::path::Path;

use actix_http::header::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::config::Config;

const APP: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

fn guard(server: &str, security: &str) -> Guard {
    let text = format!("[server]\n{server}\n{APP}[apps.security]\n{security}\n");
    let config = Config::from_toml(&text, Path::new("test.toml")).unwrap();
    Guard::from_config(&config).unwrap()
}

fn from(socket: &str, pairs: &[(&'static str, &str)]) -> PeerHeaders {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let socket: SocketAddr = format!("{socket}:5000").parse().unwrap();
    PeerHeaders::from_request(Some(socket), &headers)
}

fn fingerprint(byte: &str) -> String {
    format!("sha256:{}", byte.repeat(32))
}

#[test]
fn the_allowlist_refuses_other_addresses_and_an_app_without_rules_refuses_nothing() {
    let guard = guard("", r#"ip_allowlist = ["10.0.0.0/8", "2001:db8::/32"]"#);
    assert!(guard.admit_api("1", &from("10.1.2.3", &[])).is_ok());
    assert!(guard.admit_api("1", &from("[2001:db8::5]", &[])).is_ok());
    assert_eq!(
        guard.admit_api("1", &from("192.0.2.1", &[])),
        Err(Refusal::AddressNotAllowed)
    );
    assert!(guard.admit_api("other", &from("192.0.2.1", &[])).is_ok());
}

#[test]
fn the_app_s_trusted_proxies_replace_the_server_wide_ones() {
    let server = r#"trusted_proxies = ["10.0.0.1"]"#;
    let forwarded = [("x-forwarded-for", "203.0.113.7")];
    let own = guard(
        server,
        "trusted_proxies = [\"10.0.0.2\"]\nip_allowlist = [\"203.0.113.0/24\"]",
    );
    assert!(own.admit_api("1", &from("10.0.0.2", &forwarded)).is_ok());
    assert_eq!(
        own.admit_api("1", &from("10.0.0.1", &forwarded)),
        Err(Refusal::AddressNotAllowed),
        "the server-wide proxy is not the app's"
    );
    let default = guard(server, r#"ip_allowlist = ["203.0.113.0/24"]"#);
    assert!(
        default
            .admit_api("1", &from("10.0.0.1", &forwarded))
            .is_ok()
    );
    let unknown_app = default.peer(None, &from("10.0.0.1", &forwarded));
    assert_eq!(
        unknown_app.address,
        ClientAddress::Known("203.0.113.7".parse().unwrap())
    );
}

#[test]
fn mtls_fingerprints_are_checked_and_required_only_when_asked() {
    let registered = fingerprint("ab");
    let rules = format!("trusted_proxies = [\"10.0.0.1\"]\nmtls_fingerprints = [\"{registered}\"]");
    let optional = guard("", &rules);
    let with = |value: &str| from("10.0.0.1", &[("x-client-cert-fingerprint", value)]);
    assert!(optional.admit_api("1", &with(&registered)).is_ok());
    assert_eq!(
        optional.admit_api("1", &with(&fingerprint("cd"))),
        Err(Refusal::CertificateNotRegistered)
    );
    assert_eq!(
        optional.admit_api("1", &with("garbage")),
        Err(Refusal::CertificateNotRegistered)
    );
    assert!(optional.admit_api("1", &from("10.0.0.1", &[])).is_ok());
    let required = guard("", &format!("{rules}\nmtls_required = true"));
    assert_eq!(
        required.admit_api("1", &from("10.0.0.1", &[])),
        Err(Refusal::CertificateRequired)
    );
    // From a peer that is not a trusted proxy, the header does not count.
    assert_eq!(
        required.admit_api(
            "1",
            &from("192.0.2.1", &[("x-client-cert-fingerprint", &registered)])
        ),
        Err(Refusal::CertificateRequired)
    );
}

#[test]
fn origins_guard_handshakes_and_network_rules_only_with_apply_to_websocket() {
    let rules = "allowed_origins = [\"https://app.example.com\"]\nip_allowlist = [\"10.0.0.0/8\"]";
    let api_only = guard("", rules);
    let listed = [("origin", "https://app.example.com")];
    assert!(
        api_only
            .admit_socket("1", &from("192.0.2.1", &listed))
            .is_ok()
    );
    assert_eq!(
        api_only.admit_socket("1", &from("10.0.0.1", &[("origin", "https://evil.com")])),
        Err(Refusal::OriginNotAllowed)
    );
    assert_eq!(
        api_only.admit_socket("1", &from("10.0.0.1", &[])),
        Err(Refusal::OriginNotAllowed)
    );
    assert!(
        api_only
            .admit_api("1", &from("10.0.0.1", &[("origin", "https://evil.com")]))
            .is_ok(),
        "origins do not guard the API"
    );
    let both = guard("", &format!("{rules}\napply_to_websocket = true"));
    assert_eq!(
        both.admit_socket("1", &from("192.0.2.1", &listed)),
        Err(Refusal::AddressNotAllowed)
    );
    assert!(both.admit_socket("1", &from("10.0.0.1", &listed)).is_ok());
}

#[test]
fn a_geo_rule_without_a_readable_database_is_a_start_up_error() {
    let text = format!(
        "{APP}[apps.security]\ngeo = {{ mode = \"block\", countries = [\"KP\"] }}\n[geoip]\ndatabase = \"missing.mmdb\"\n"
    );
    let config = Config::from_toml(&text, Path::new("/nonexistent/relay.toml")).unwrap();
    let error = Guard::from_config(&config).unwrap_err().to_string();
    assert!(
        error.starts_with("[geoip] database /nonexistent/missing.mmdb: "),
        "{error}"
    );
}

#[test]
fn trusted_proxies_and_allowlisted_addresses_are_never_banned() {
    let server = r#"trusted_proxies = ["10.0.0.1/32"]"#;
    let proxied = guard(server, "ban_after_failures = 2\n");
    let address = |text: &str| Some(text.parse().unwrap());
    for _ in 0..5 {
        proxied.auth_failed("1", address("10.0.0.1"), "HTTP API authentication");
    }
    assert!(
        proxied.check_ban("1", address("10.0.0.1")).is_ok(),
        "a proxy"
    );
    proxied.auth_failed("1", address("10.0.0.2"), "HTTP API authentication");
    proxied.auth_failed("1", address("10.0.0.2"), "HTTP API authentication");
    assert!(proxied.check_ban("1", address("10.0.0.2")).is_err());
    proxied.auth_failed("1", None, "HTTP API authentication");
    assert!(
        proxied.check_ban("1", None).is_ok(),
        "an unknown address is never banned"
    );

    let allowlisted = guard(
        "",
        "ban_after_failures = 1\nip_allowlist = [\"10.9.0.0/16\"]\n",
    );
    allowlisted.auth_failed("1", address("10.9.1.1"), "channel auth");
    assert!(allowlisted.check_ban("1", address("10.9.1.1")).is_ok());
    let recorded = allowlisted.activity.take(std::time::SystemTime::now());
    assert_eq!(recorded.len(), 1, "the failure is still recorded");
    assert_eq!(recorded[0].kind, crate::activity::EventKind::AuthFailure);
}
