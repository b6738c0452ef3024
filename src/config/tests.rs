use std::path::Path;

use super::{Config, ConfigError};

const APP: &str = r#"
[[apps]]
id = "123456"
key = "app-key"
secret = "app-secret"
"#;

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text, Path::new("config.toml"))
}

fn problems(text: &str) -> Vec<String> {
    match load(text) {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected validation problems, got {other:?}"),
    }
}

#[test]
fn a_minimal_app_gets_the_documented_defaults() {
    let config = load(APP).unwrap();
    assert_eq!(config.server.host.as_str(), "127.0.0.1");
    assert_eq!(config.server.port, 6001);
    assert_eq!(config.server.max_frame_size, 65536);
    let app = &config.apps[0];
    assert!(app.enabled);
    assert!(!app.enable_client_messages);
    assert_eq!(app.max_presence_members, 100);
    assert_eq!(app.max_presence_member_size, 1024);
    assert_eq!(app.max_event_size, 10240);
    assert_eq!(app.max_channel_name_length, 164);
    assert_eq!(app.activity_timeout, 120);
    assert_eq!(app.max_connections, None);
    assert_eq!(app.max_channels_per_connection, 1000);
    let server = &config.server;
    assert_eq!(server.outbound_queue_bytes, 1024 * 1024);
    assert_eq!(server.request_body_timeout, 10);
    assert_eq!(server.max_pending_request_bytes, 64 * 1024 * 1024);
}

#[test]
fn the_memory_bounds_must_be_usable() {
    let text = format!(
        "[server]\noutbound_queue_bytes = 100\nrequest_body_timeout = 0\nmax_request_size = 4096\nmax_pending_request_bytes = 4095\n{APP}max_channels_per_connection = 0\n"
    );
    assert_eq!(
        problems(&text),
        [
            "server.outbound_queue_bytes must be at least 65536 bytes",
            "server.max_pending_request_bytes must be at least server.max_request_size",
            "server.request_body_timeout must be at least 1 second",
            "apps[0]: max_channels_per_connection must be at least 1",
        ]
    );
}

#[test]
fn unknown_fields_are_reported_with_their_line() {
    let err = load(&format!("{APP}colour = \"red\"\n")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("config.toml:6: unknown field `colour`"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn bad_values_are_reported_with_their_line() {
    let err = load(&format!("{APP}activity_timeout = \"soon\"\n")).unwrap_err();
    assert!(err.to_string().starts_with("config.toml:6:"), "{err}");
}

#[test]
fn duplicates_and_empty_secrets_are_each_one_line() {
    let text = format!("{APP}{APP}\n[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"\"\n");
    let found = problems(&text);
    assert_eq!(
        found,
        vec![
            "apps[1]: duplicate app id \"123456\"",
            "apps[1]: duplicate app key \"app-key\"",
            "apps[2]: secret must not be empty",
        ]
    );
    let err = load(&text).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 3);
    assert!(err.lines().all(|l| l.starts_with("config.toml: apps[")));
}

#[test]
fn environment_variables_fill_secrets() {
    // SAFETY: only this test reads or writes this variable.
    unsafe { std::env::set_var("RELAY_TEST_CONFIG_SECRET", "from-env") };
    let text = APP.replace("app-secret", "${RELAY_TEST_CONFIG_SECRET}");
    assert_eq!(load(&text).unwrap().apps[0].secret.as_str(), "from-env");
}

#[test]
fn a_missing_environment_variable_names_the_variable_and_line() {
    let text = APP.replace("app-secret", "${RELAY_TEST_UNSET_VARIABLE}");
    let err = load(&text).unwrap_err().to_string();
    assert_eq!(
        err,
        "config.toml:5: environment variable RELAY_TEST_UNSET_VARIABLE is not set"
    );
}

#[test]
fn production_refuses_the_example_secret() {
    let found = problems(&format!("environment = \"production\"\n{APP}"));
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("bundled development credentials"),
        "{found:?}"
    );
}

/// Two apps with these secrets (and keys of their own).
fn two_apps(first: &str, second: &str) -> String {
    format!(
        "[[apps]]\nid = \"1\"\nkey = \"k1\"\nsecret = \"{first}\"\n\
         [[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"{second}\"\n"
    )
}

#[test]
fn production_refuses_short_and_shared_secrets_and_warns_under_32() {
    let production = |apps: String| format!("environment = \"production\"\n{apps}");
    let short = problems(&production(two_apps("fifteen-chars!!", &"b".repeat(40))));
    assert_eq!(short.len(), 1, "{short:?}");
    assert!(
        short[0].starts_with("apps[0]: secret is shorter than 16"),
        "{short:?}"
    );
    let shared = "s".repeat(40);
    let reused = problems(&production(two_apps(&shared, &shared)));
    assert_eq!(reused.len(), 1, "{reused:?}");
    assert!(reused[0].contains("same as apps[0]'s"), "{reused:?}");
    // Pusher's own secrets are 20 hex characters: accepted, with a warning.
    let pusher_like = production(two_apps(&"a".repeat(20), &"b".repeat(32)));
    let warned = load(&pusher_like).expect("accepted").credential_warnings();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(
        warned[0].starts_with("apps[0]: secret is shorter than 32"),
        "{warned:?}"
    );
}

#[test]
fn development_warns_once_for_each_weak_credential_instead() {
    let config = load(&format!("{APP}{}", two_apps("short", "short"))).expect("accepted");
    let warned = config.credential_warnings();
    assert_eq!(warned.len(), 4, "{warned:?}");
    assert!(warned[0].contains("bundled development credentials"));
    assert!(warned[1].contains("apps[1]: secret is shorter than 16"));
    assert!(warned[2].contains("apps[2]: secret is shorter than 16"));
    assert!(warned[3].contains("apps[2]: secret is the same as apps[1]'s"));
}

#[test]
fn redis_and_the_node_ceiling_are_checked() {
    let config = load(&format!("{APP}[redis]\nurl = \"redis://x\"\n")).unwrap();
    assert_eq!(config.redis.unwrap().node_timeout, 10);
    let found = problems(&format!(
        "[server]\nmax_connections = 0\n{APP}[redis]\nurl = \"rediss://x\"\n"
    ));
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("server.max_connections"), "{found:?}");
    assert!(found[1].contains("not supported"), "{found:?}");
}

#[test]
fn closing_connections_on_lockdown_needs_the_lockdown() {
    let found = problems(&format!(
        "{APP}[apps.security]\nlockdown_closes_connections = true\n"
    ));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("needs auto_lockdown = true"), "{found:?}");
    let fine = "[apps.security]\nauto_lockdown = true\nlockdown_closes_connections = true\n";
    assert!(load(&format!("{APP}{fine}")).is_ok());
}

#[test]
fn security_rules_that_would_refuse_everyone_or_lack_a_database_are_problems() {
    let found = problems(&format!(
        "{APP}[apps.security]\nip_allowlist = []\nallowed_origins = []\nmtls_required = true\n\
         geo = {{ mode = \"allow\", countries = [] }}\n"
    ));
    let expected = [
        "ip_allowlist is empty",
        "allowed_origins is empty",
        "mtls_fingerprints is empty",
        "set [geoip] database",
        "geo.countries is empty",
    ];
    assert_eq!(found.len(), expected.len(), "{found:?}");
    for text in expected {
        assert!(found.iter().any(|p| p.contains(text)), "{text}: {found:?}");
    }
}

#[test]
fn security_values_are_checked_with_their_line() {
    let cases = [
        (
            "ip_allowlist = [\"10.0.0.0/33\"]",
            "not an IP address or CIDR range",
        ),
        (
            "trusted_proxies = [\"proxy.local\"]",
            "not an IP address or CIDR range",
        ),
        ("allowed_origins = [\"app.example.com\"]", "scheme://host"),
        ("mtls_fingerprints = [\"abcd\"]", "64 hex digits"),
        (
            "geo = { mode = \"allow\", countries = [\"Germany\"] }",
            "two-letter",
        ),
        (
            "geo = { mode = \"deny\", countries = [\"DE\"] }",
            "unknown variant",
        ),
        ("ip_allow_list = []", "unknown field"),
    ];
    for (entry, expected) in cases {
        match load(&format!("{APP}[apps.security]\n{entry}\n")) {
            Err(ConfigError::Parse { line, message, .. }) => {
                assert!(message.contains(expected), "{entry}: {message}");
                assert!(line >= 5, "{entry}: line {line}");
            }
            other => panic!("{entry}: expected a parse error, got {other:?}"),
        }
    }
}

#[test]
fn a_webhook_gets_its_defaults_and_keeps_what_is_set() {
    let config = load(&format!(
        "{APP}webhook_batch_window_ms = 50\n[[apps.webhooks]]\nurl = \"https://example.com/hooks?token=t\"\n\
         events = [\"cache_miss\", \"client_event\"]\nchannel_prefix = \"presence-\"\n\
         headers = {{ Authorization = \"Bearer x\" }}\n"
    ))
    .unwrap();
    let app = &config.apps[0];
    assert_eq!(app.webhook_batch_window_ms, 50);
    assert_eq!(app.webhook_batch_max_events, 100);
    assert_eq!(app.webhook_queue_size, 1000);
    assert_eq!(app.webhook_vacate_delay_ms, 3000);
    let webhook = &app.webhooks[0];
    assert_eq!(webhook.url.uri().host(), Some("example.com"));
    // The path and query may carry a token: debug output leaves them out.
    let debug = format!("{webhook:?}");
    assert!(
        !debug.contains("token=t") && !debug.contains("Bearer"),
        "{debug}"
    );
    assert_eq!(webhook.events.as_ref().map(Vec::len), Some(2));
    assert_eq!(webhook.channel_prefix.as_deref(), Some("presence-"));
    assert_eq!(webhook.headers.iter().count(), 1);
    assert_eq!((webhook.timeout, webhook.retry_for), (10, 300));
    assert_eq!(webhook.concurrency, 8);
}

#[test]
fn webhook_mistakes_are_reported_with_their_line() {
    let cases = [
        ("url = \"ftp://example.com\"", "http:// or https://"),
        ("url = \"not a url\"", "not a valid URL"),
        (
            "url = \"http://x\"\nevents = [\"channel_existence\"]",
            "unknown webhook event",
        ),
        (
            "url = \"http://x\"\nheaders = { X-Pusher-Signature = \"f\" }",
            "set by Relay",
        ),
        (
            "url = \"http://x\"\nheaders = { \"bad name\" = \"f\" }",
            "not valid",
        ),
        ("url = \"http://x\"\nsecret = \"s\"", "unknown field"),
        ("url = \"https://u:p@x/h\"", "user:password"),
        (
            "url = \"http://x\"\nheaders = { X-A = \"1\", x-a = \"2\" }",
            "given twice",
        ),
        (
            "url = \"http://x\"\nheaders = { Connection = \"close\" }",
            "set by Relay",
        ),
    ];
    for (entry, expected) in cases {
        match load(&format!("{APP}[[apps.webhooks]]\n{entry}\n")) {
            Err(ConfigError::Parse { line, message, .. }) => {
                assert!(message.contains(expected), "{entry}: {message}");
                assert!(line >= 7, "{entry}: line {line}");
            }
            other => panic!("{entry}: expected a parse error, got {other:?}"),
        }
    }
    let found = problems(&format!(
        "{APP}[[apps.webhooks]]\nurl = \"http://x\"\ntimeout = 0\nevents = []\nconcurrency = 0\n"
    ));
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found
            .iter()
            .any(|problem| problem.contains("concurrency must be between 1 and 256")),
        "{found:?}"
    );
}

#[test]
fn a_count_webhook_without_subscription_counting_is_warned_about() {
    let hook = "[[apps.webhooks]]\nurl = \"http://x\"\nevents = [\"subscription_count\"]\n";
    let warnings = load(&format!("{APP}{hook}")).unwrap().warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("enable_subscription_count"));
    let counting = load(&format!("{APP}enable_subscription_count = true\n{hook}")).unwrap();
    assert!(counting.warnings().is_empty());
}

#[test]
fn no_apps_is_a_problem() {
    assert_eq!(
        problems(""),
        vec!["no [[apps]] configured; add at least one"]
    );
}

#[test]
fn durations_beyond_a_year_are_refused_before_they_can_overflow_a_deadline() {
    let found = problems(&format!(
        "[server]\npong_timeout = 18446744073709551615\n{APP}cache_ttl = 99999999999\n\
         webhook_vacate_delay_ms = 18446744073709551615\nwebhook_queue_size = 99999999999\n\
         [[apps.webhooks]]\nurl = \"http://x\"\nretry_for = 99999999999\n"
    ));
    assert_eq!(found.len(), 5, "{found:?}");
    for key in [
        "server.pong_timeout",
        "apps[0].cache_ttl",
        "apps[0].webhook_vacate_delay_ms",
        "apps[0].webhooks[0].retry_for",
        "webhook_queue_size",
    ] {
        assert!(found.iter().any(|p| p.contains(key)), "{key}: {found:?}");
    }
    let workers = problems(&format!("[server]\nworkers = 100000\n{APP}"));
    assert_eq!(workers, ["server.workers must be between 1 and 1024"]);
    let year = 365 * 24 * 3600;
    assert!(load(&format!("{APP}cache_ttl = {year}\n")).is_ok());
}

#[test]
fn previous_credentials_rotation_and_webhook_signing_are_read() {
    let config = load(&format!(
        "{APP}webhook_signing = \"newest\"\nrotation = {{ every = \"90d\", grace = 3600 }}\n\
         rotation_webhook = \"https://example.com/rotated\"\n\
         [[apps.previous_credentials]]\nkey = \"app-key\"\nsecret = \"old\"\nvalid_until = \"2999-01-01T00:00:00Z\"\n\
         [[apps.previous_credentials]]\nkey = \"older-key\"\nsecret = \"older\"\nvalid_until = \"2999-01-01T00:00:00Z\"\n"
    ))
    .unwrap();
    let app = &config.apps[0];
    assert_eq!(app.webhook_signing, super::WebhookSigning::Newest);
    let rotation = app.rotation.unwrap();
    assert_eq!(rotation.every.0.as_secs(), 90 * 24 * 3600);
    assert_eq!(rotation.grace.0.as_secs(), 3600);
    assert_eq!(app.previous_credentials.len(), 2);
    assert!(config.warnings().is_empty());
    let default = load(APP).unwrap();
    assert_eq!(
        default.apps[0].webhook_signing,
        super::WebhookSigning::Oldest
    );
}

#[test]
fn bad_previous_credentials_and_rotations_are_refused() {
    let other_app = "[[apps]]\nid = \"2\"\nkey = \"k2\"\nsecret = \"s2\"\n";
    let found = problems(&format!(
        "{APP}rotation = {{ every = \"30s\", grace = \"1m\" }}\n\
         [[apps.previous_credentials]]\nkey = \"k2\"\nsecret = \"\"\nvalid_until = \"2999-01-01T00:00:00Z\"\n\
         [[apps.previous_credentials]]\nkey = \"a:b\"\nsecret = \"x\"\nvalid_until = \"2999-01-01T00:00:00Z\"\n\
         {other_app}"
    ));
    for expected in [
        "previous_credentials[0].secret must not be empty",
        "previous_credentials[1].key must be non-empty",
        "rotation.every must be at least 1 minute",
        "rotation.grace must not be longer than rotation.every",
        "apps[1]: duplicate app key \"k2\"",
    ] {
        assert!(
            found.iter().any(|problem| problem.contains(expected)),
            "{expected}: {found:?}"
        );
    }
    let parse_error = |entry: &str| match load(&format!("{APP}{entry}\n")) {
        Err(ConfigError::Parse { message, .. }) => message,
        other => panic!("{entry}: expected a parse error, got {other:?}"),
    };
    assert!(parse_error("rotation = { every = \"1w\", grace = \"1h\" }").contains("90d, 12h"));
    assert!(parse_error("webhook_signing = \"middle\"").contains("oldest"));
    let expired = load(&format!(
        "{APP}[[apps.previous_credentials]]\nkey = \"old\"\nsecret = \"x\"\nvalid_until = \"2000-01-01T00:00:00Z\"\n"
    ))
    .unwrap();
    assert_eq!(expired.warnings().len(), 1);
    assert!(expired.warnings()[0].contains("expired at 2000-01-01T00:00:00Z"));
}

#[test]
fn log_format_and_level_default_to_text_at_info_and_are_checked() {
    let config = load(APP).unwrap();
    assert_eq!(config.log_format, super::LogFormat::Text);
    assert_eq!(config.log_level.as_str(), "info");
    let chosen = load(&format!(
        "log_format = \"json\"\nlog_level = \"info,relay::connections=debug\"\n{APP}"
    ))
    .unwrap();
    assert_eq!(chosen.log_format, super::LogFormat::Json);
    let refused = problems(&format!("log_level = \"loud=[\"\n{APP}"));
    assert!(
        refused[0].starts_with("log_level is not a level or filter"),
        "{refused:?}"
    );
    assert!(matches!(
        load(&format!("log_format = \"xml\"\n{APP}")),
        Err(ConfigError::Parse { line: 1, .. })
    ));
}

#[test]
fn secret_values_name_every_secret_the_file_holds() {
    let text = format!(
        "{APP}\n[[apps.previous_credentials]]\nkey = \"old\"\nsecret = \"old-secret\"\n\
         valid_until = \"2999-01-01T00:00:00Z\"\n\
         [[apps.webhooks]]\nurl = \"http://127.0.0.1:9/\"\nheaders = {{ Authorization = \"Bearer hook-token\", X-Env = \"prod\" }}\n\
         [redis]\nurl = \"redis://:redis-pass@127.0.0.1:6379\"\n"
    );
    let config = load(&text).unwrap();
    let mut values = config.secret_values();
    values.sort_unstable();
    assert_eq!(
        values,
        [
            "Bearer hook-token",
            "app-secret",
            "old-secret",
            "redis-pass"
        ]
    );
}

#[test]
fn the_client_certificate_listener_needs_its_ca_and_its_port() {
    let tls = "[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
    let config = load(&format!("{tls}{APP}")).unwrap();
    let parsed = config.server.tls.unwrap();
    assert_eq!(parsed.client_listener(Path::new("/etc/relay")), None);
    assert_eq!(
        parsed.cert_path(Path::new("/etc/relay")),
        Path::new("/etc/relay/c.pem")
    );
    for half in ["client_ca = \"ca.pem\"\n", "client_port = 6443\n"] {
        let refused = problems(&format!("{tls}{half}{APP}"));
        assert!(refused[0].contains("go together"), "{refused:?}");
    }
    let both = load(&format!(
        "{tls}client_ca = \"ca.pem\"\nclient_port = 6443\n{APP}"
    ))
    .unwrap();
    let listener = both
        .server
        .tls
        .unwrap()
        .client_listener(Path::new("/etc/relay"));
    assert_eq!(
        listener,
        Some((Path::new("/etc/relay/ca.pem").to_path_buf(), 6443))
    );
}
