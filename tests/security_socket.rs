//! WebSocket handshakes under `[apps.security]`: allowed origins (listed, wildcard, missing,
//! wrong), and `apply_to_websocket`, which puts the IP, geo and mTLS rules on handshakes too.
//! A refused handshake gets a `pusher:error` and close code 4009.

mod common;

use common::{APP_KEY, Client, TestServer, default_config, open_from};

const PATH: &str = "/app/app-key?protocol=7&client=js&version=8.4.0";

fn secured(security: &str) -> String {
    format!("{}[apps.security]\n{security}\n", default_config())
}

/// Connects from `source` with `headers`; `Ok(socket id)` when established, `Err(message)`
/// when refused with 4009 (the `pusher:error` and the close frame both checked).
async fn connect(
    server: &TestServer,
    source: &str,
    headers: &[(&'static str, &str)],
) -> Result<String, String> {
    let socket = open_from(server, source, PATH, headers).await;
    let mut client = Client::from_socket(socket);
    let first = client.recv().await;
    match first["event"].as_str() {
        Some("pusher:connection_established") => {
            let data: serde_json::Value =
                serde_json::from_str(first["data"].as_str().unwrap()).unwrap();
            Ok(data["socket_id"].as_str().unwrap().to_owned())
        }
        Some("pusher:error") => {
            assert_eq!(first["data"]["code"], 4009, "{first}");
            assert_eq!(client.expect_close().await, 4009);
            Err(first["data"]["message"].as_str().unwrap().to_owned())
        }
        _ => panic!("unexpected first frame {first}"),
    }
}

#[tokio::test]
async fn listed_and_wildcard_origins_connect_and_others_get_4009() {
    let rules = r#"allowed_origins = ["https://app.example.com", "https://*.example.org"]"#;
    let server = TestServer::start_with(&secured(rules));
    for origin in [
        "https://app.example.com",
        "https://eu.example.org",
        "https://a.b.example.org",
    ] {
        let result = connect(&server, "127.0.0.1", &[("origin", origin)]).await;
        assert!(result.is_ok(), "{origin}: {result:?}");
    }
    for origin in [
        "https://evil.example.com",
        "http://app.example.com",
        "https://example.org",
        "https://example.org.evil.com",
        "null",
    ] {
        let result = connect(&server, "127.0.0.1", &[("origin", origin)]).await;
        assert_eq!(result, Err("Origin not allowed".to_owned()), "{origin}");
    }
    let missing = connect(&server, "127.0.0.1", &[]).await;
    assert_eq!(missing, Err("Origin not allowed".to_owned()));
}

#[tokio::test]
async fn native_clients_without_an_origin_may_be_let_in() {
    let rules = "allowed_origins = [\"https://app.example.com\"]\nallow_missing_origin = true";
    let server = TestServer::start_with(&secured(rules));
    assert!(connect(&server, "127.0.0.1", &[]).await.is_ok());
    let wrong = connect(&server, "127.0.0.1", &[("origin", "https://evil.com")]).await;
    assert_eq!(wrong, Err("Origin not allowed".to_owned()));
}

#[tokio::test]
async fn network_rules_guard_handshakes_only_with_apply_to_websocket() {
    let rules = r#"ip_allowlist = ["127.0.0.2"]"#;
    let api_only = TestServer::start_with(&secured(rules));
    assert!(connect(&api_only, "127.0.0.3", &[]).await.is_ok());
    let both = TestServer::start_with(&secured(&format!("{rules}\napply_to_websocket = true")));
    assert!(connect(&both, "127.0.0.2", &[]).await.is_ok());
    let refused = connect(&both, "127.0.0.3", &[]).await;
    assert_eq!(refused, Err("Address not allowed".to_owned()));
}

#[tokio::test]
async fn geo_and_mtls_rules_guard_handshakes_with_apply_to_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let database = common::geoip::test_database(dir.path());
    let registered = format!("sha256:{}", "ab".repeat(32));
    let rules = format!(
        "apply_to_websocket = true\ngeo = {{ mode = \"block\", countries = [\"KP\"] }}\n\
         trusted_proxies = [\"127.0.0.1\"]\nmtls_required = true\nmtls_fingerprints = [\"{registered}\"]\n\
         [geoip]\ndatabase = \"{}\"",
        database.display()
    );
    let server = TestServer::start_with(&secured(&rules));
    let certified = [
        ("x-client-cert-fingerprint", registered.as_str()),
        ("x-forwarded-for", "127.0.0.2"),
    ];
    assert!(connect(&server, "127.0.0.1", &certified).await.is_ok());
    let from_kp = [
        ("x-client-cert-fingerprint", registered.as_str()),
        ("x-forwarded-for", "127.0.0.4"),
    ];
    let refused = connect(&server, "127.0.0.1", &from_kp).await;
    assert_eq!(refused, Err("Country not allowed".to_owned()));
    let uncertified = connect(&server, "127.0.0.1", &[("x-forwarded-for", "127.0.0.2")]).await;
    assert_eq!(uncertified, Err("Client certificate required".to_owned()));
}

#[tokio::test]
async fn other_apps_are_untouched_by_one_app_s_rules() {
    let config = format!(
        "{}[[apps]]\nid = \"2\"\nkey = \"open-key\"\nsecret = \"open-secret\"\n",
        secured(r#"allowed_origins = ["https://app.example.com"]"#)
    );
    let server = TestServer::start_with(&config);
    let socket = open_from(&server, "127.0.0.1", "/app/open-key?protocol=7", &[]).await;
    let mut client = Client::from_socket(socket);
    client.recv_event("pusher:connection_established").await;
    let refused = connect(&server, "127.0.0.1", &[("origin", "https://evil.com")]).await;
    assert!(refused.is_err(), "{APP_KEY} keeps its rule");
}
