//! Checks that types cannot express: uniqueness, non-empty credentials, sane ranges, and
//! features this build does not implement yet (refused rather than silently ignored when
//! ignoring them would weaken security or lose events).

use std::collections::{HashMap, HashSet};

use super::{AppConfig, Config, Environment, SecurityConfig};
use crate::protocol::{ChannelKind, ChannelName};

/// Longest duration any key may set (one year): far beyond any sensible value, and far from
/// the overflow a clock deadline would hit.
const MAX_DURATION_SECS: u64 = 365 * 24 * 3600;
/// Most worker threads (one per core is the default; this only stops a typo from spawning
/// millions).
const MAX_WORKERS: usize = 1024;
/// Smallest per-connection outbound byte bound: what a client that is behind may have waiting
/// must leave room for a frame of the default 64 KiB limit.
const MIN_OUTBOUND_QUEUE_BYTES: usize = 64 * 1024;
/// Most webhook requests one endpoint may queue.
const MAX_WEBHOOK_QUEUE_SIZE: usize = 1_000_000;
/// Most events in one webhook request.
const MAX_WEBHOOK_BATCH_EVENTS: usize = 10_000;
/// Most requests in flight to one webhook endpoint: each holds a connection.
const MAX_WEBHOOK_CONCURRENCY: usize = 256;

/// Shortest `rotation.every`: a secret replaced more often than this is a mistake.
const MIN_ROTATION_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Whether `key` can be an app key: it is a path segment and the prefix of `auth`.
fn is_valid_key(key: &str) -> bool {
    !key.is_empty() && !key.contains([':', '/', '?', '#', ' '])
}

/// Every duration key of `config` that exceeds [`MAX_DURATION_SECS`], named as in the file.
fn overlong_durations(config: &Config) -> Vec<String> {
    let server = &config.server;
    let mut durations = vec![
        ("server.pong_timeout".to_owned(), server.pong_timeout),
        (
            "server.shutdown_timeout".to_owned(),
            server.shutdown_timeout,
        ),
        (
            "server.request_body_timeout".to_owned(),
            server.request_body_timeout,
        ),
    ];
    for (index, app) in config.apps.iter().enumerate() {
        let at = |key: &str| format!("apps[{index}].{key}");
        durations.extend([
            (at("activity_timeout"), app.activity_timeout),
            (
                at("user_authentication_timeout"),
                app.user_authentication_timeout,
            ),
            (at("cache_ttl"), app.cache_ttl),
            (
                at("webhook_batch_window_ms"),
                app.webhook_batch_window_ms / 1000,
            ),
            (
                at("webhook_vacate_delay_ms"),
                app.webhook_vacate_delay_ms / 1000,
            ),
        ]);
        for (hook, webhook) in app.webhooks.iter().enumerate() {
            durations.push((at(&format!("webhooks[{hook}].timeout")), webhook.timeout));
            durations.push((
                at(&format!("webhooks[{hook}].retry_for")),
                webhook.retry_for,
            ));
        }
    }
    durations
        .into_iter()
        .filter(|(_, secs)| *secs > MAX_DURATION_SECS)
        .map(|(key, _)| format!("{key} is longer than a year"))
        .collect()
}

/// Every problem that makes `config` unusable, one human line each.
pub(super) fn problems(config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if config.environment == Environment::Production {
        let refused = super::hygiene::weak_credentials(config);
        problems.extend(refused.into_iter().map(|line| {
            // Said once here, with the setting that refuses it.
            format!("{line} (environment = \"production\")")
        }));
    }
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(config.log_level.as_str()) {
        problems.push(format!("log_level is not a level or filter: {error}"));
    }
    if config
        .metrics
        .as_ref()
        .is_some_and(|metrics| metrics.host.is_empty())
    {
        problems.push("metrics.host must not be empty".to_owned());
    }
    let server = &config.server;
    if let Some(tls) = &server.tls
        && tls.client_ca.is_some() != tls.client_port.is_some()
    {
        problems.push(
            "server.tls.client_ca and server.tls.client_port go together: the client-certificate listener needs both"
                .to_owned(),
        );
    }
    if server.host.is_empty() {
        problems.push("server.host must not be empty".to_owned());
    }
    if server.max_frame_size < 1024 {
        problems.push("server.max_frame_size must be at least 1024 bytes".to_owned());
    }
    if server.pong_timeout == 0 {
        problems.push("server.pong_timeout must be at least 1 second".to_owned());
    }
    if server.outbound_queue_size == 0 {
        problems.push("server.outbound_queue_size must be at least 1".to_owned());
    }
    if server.outbound_queue_bytes < MIN_OUTBOUND_QUEUE_BYTES {
        problems.push(format!(
            "server.outbound_queue_bytes must be at least {MIN_OUTBOUND_QUEUE_BYTES} bytes"
        ));
    }
    if server.max_request_size < 1024 {
        problems.push("server.max_request_size must be at least 1024 bytes".to_owned());
    }
    if server.max_pending_request_bytes < server.max_request_size {
        problems.push(
            "server.max_pending_request_bytes must be at least server.max_request_size".to_owned(),
        );
    }
    if server.request_body_timeout == 0 {
        problems.push("server.request_body_timeout must be at least 1 second".to_owned());
    }
    if server
        .workers
        .is_some_and(|workers| !(1..=MAX_WORKERS).contains(&workers))
    {
        problems.push(format!(
            "server.workers must be between 1 and {MAX_WORKERS}"
        ));
    }
    if server.max_connections == Some(0) {
        problems.push("server.max_connections must be at least 1".to_owned());
    }
    if let Some(redis) = &config.redis {
        problems.extend(redis.problems());
    }
    if config.apps.is_empty() {
        problems.push("no [[apps]] configured; add at least one".to_owned());
    }
    problems.extend(overlong_durations(config));
    problems.extend(super::admins::problems(config));
    let mut ids = HashSet::new();
    // Each key names one app: a previous pair may share its own app's keys, not another's.
    let mut key_owners: HashMap<&str, usize> = HashMap::new();
    let mut token_hashes = HashSet::new();
    for (index, app) in config.apps.iter().enumerate() {
        let at = format!("apps[{index}]");
        if !ids.insert(app.id.as_str()) {
            problems.push(format!("{at}: duplicate app id {:?}", app.id.as_str()));
        }
        if key_owners.insert(app.key.as_str(), index).is_some() {
            problems.push(format!("{at}: duplicate app key {:?}", app.key.as_str()));
        }
        for previous in &app.previous_credentials {
            let owner = *key_owners.entry(previous.key.as_str()).or_insert(index);
            if owner != index {
                problems.push(format!(
                    "{at}: previous_credentials key {:?} is the key of apps[{owner}]",
                    previous.key.as_str()
                ));
            }
        }
        for token in &app.tokens {
            if !token_hashes.insert(token.hash) {
                problems.push(format!(
                    "{at}: token {:?} has the hash of another token (each token names one app)",
                    token.name
                ));
            }
        }
        app_problems(app, config, &at, &mut problems);
    }
    problems
}

fn app_problems(app: &AppConfig, config: &Config, at: &str, problems: &mut Vec<String>) {
    let mut problem = |text: &str| problems.push(format!("{at}: {text}"));
    if app.id.is_empty()
        || !app
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        problem(
            "id must be non-empty and use only letters, digits, - and _ (digits for the Python SDK)",
        );
    }
    if !is_valid_key(app.key.as_str()) {
        problem("key must be non-empty and contain no : / ? # or spaces");
    }
    if app.secret.is_empty() {
        problem("secret must not be empty");
    }
    for (index, previous) in app.previous_credentials.iter().enumerate() {
        if !is_valid_key(previous.key.as_str()) {
            problem(&format!(
                "previous_credentials[{index}].key must be non-empty and contain no : / ? # or spaces"
            ));
        }
        if previous.secret.is_empty() {
            problem(&format!(
                "previous_credentials[{index}].secret must not be empty"
            ));
        }
    }
    if let Some(rotation) = &app.rotation {
        let (every, grace) = (rotation.every.0, rotation.grace.0);
        if every < MIN_ROTATION_INTERVAL {
            problem("rotation.every must be at least 1 minute (60)");
        }
        if every.as_secs() > MAX_DURATION_SECS {
            problem("rotation.every must be at most 365d");
        }
        if grace > every {
            problem("rotation.grace must not be longer than rotation.every");
        }
    }
    if app.activity_timeout == 0 {
        problem("activity_timeout must be at least 1 second");
    }
    if app.max_event_size == 0 || app.max_event_size > config.server.max_frame_size {
        problem("max_event_size must be between 1 and server.max_frame_size");
    }
    if !(1..=200).contains(&app.max_channel_name_length) {
        problem("max_channel_name_length must be between 1 and 200");
    }
    if app.max_channels_per_connection == 0 {
        problem("max_channels_per_connection must be at least 1");
    }
    if app.max_presence_members == 0 {
        problem("max_presence_members must be at least 1");
    }
    if app.max_event_channels == 0 || app.max_batch_size == 0 || app.max_event_name_length == 0 {
        problem("max_event_channels, max_batch_size and max_event_name_length must be at least 1");
    }
    if app.user_authentication_timeout == 0 {
        problem("user_authentication_timeout must be at least 1 second");
    }
    if app.cache_ttl == 0 {
        problem("cache_ttl must be at least 1 second");
    }
    if app.max_client_events_per_second == 0 {
        problem(
            "max_client_events_per_second must be at least 1 (set enable_client_messages = false to turn them off)",
        );
    }
    if app.webhook_batch_max_events == 0 || app.webhook_queue_size == 0 {
        problem("webhook_batch_max_events and webhook_queue_size must be at least 1");
    }
    if app.webhook_batch_max_events > MAX_WEBHOOK_BATCH_EVENTS {
        problem(&format!(
            "webhook_batch_max_events must be at most {MAX_WEBHOOK_BATCH_EVENTS}"
        ));
    }
    if app.webhook_queue_size > MAX_WEBHOOK_QUEUE_SIZE {
        problem(&format!(
            "webhook_queue_size must be at most {MAX_WEBHOOK_QUEUE_SIZE}"
        ));
    }
    for (index, webhook) in app.webhooks.iter().enumerate() {
        if webhook.timeout == 0 {
            problem(&format!(
                "webhooks[{index}].timeout must be at least 1 second"
            ));
        }
        if !(1..=MAX_WEBHOOK_CONCURRENCY).contains(&webhook.concurrency) {
            problem(&format!(
                "webhooks[{index}].concurrency must be between 1 and {MAX_WEBHOOK_CONCURRENCY}"
            ));
        }
        if webhook.events.as_ref().is_some_and(Vec::is_empty) {
            problem(&format!(
                "webhooks[{index}].events is empty; remove the webhook or list its events"
            ));
        }
    }
    let mut names = HashSet::new();
    for (index, token) in app.tokens.iter().enumerate() {
        if token.name.trim().is_empty() {
            problem(&format!("tokens[{index}].name must not be empty"));
        }
        if !names.insert(token.name.as_str()) {
            problem(&format!(
                "tokens[{index}]: duplicate token name {:?}",
                token.name
            ));
        }
    }
    if let Some(security) = &app.security {
        for line in security_problems(security, config.geoip.is_some()) {
            problem(&line);
        }
    }
}

/// What is wrong with an `[apps.security]` table: rules that would refuse everyone, a geo rule
/// without a database, and keys of features this build does not have.
fn security_problems(security: &SecurityConfig, has_geoip: bool) -> Vec<String> {
    let mut problems = Vec::new();
    let empty = [
        (
            security.ip_allowlist.as_ref().is_some_and(Vec::is_empty),
            "ip_allowlist",
        ),
        (
            security.allowed_origins.as_ref().is_some_and(Vec::is_empty),
            "allowed_origins",
        ),
    ];
    for (is_empty, key) in empty {
        if is_empty {
            problems.push(format!(
                "security.{key} is empty, which would refuse everyone; remove it or list who may come in"
            ));
        }
    }
    if let Some(geo) = &security.geo {
        if !has_geoip {
            problems.push("security.geo needs a country database: set [geoip] database".to_owned());
        }
        if geo.countries.is_empty() {
            problems.push("security.geo.countries is empty; list ISO country codes".to_owned());
        }
    }
    if security.mtls_required && security.mtls_fingerprints.is_empty() {
        problems.push(
            "security.mtls_required is true but mtls_fingerprints is empty, which would refuse everyone"
                .to_owned(),
        );
    }
    let ban_times = [
        ("ban_window", security.ban_window),
        ("ban_time", security.ban_time),
        ("ban_max_time", security.ban_max_time),
    ];
    for (key, value) in ban_times {
        if value.is_some() && security.ban_after_failures.is_none() {
            problems.push(format!(
                "security.{key} needs ban_after_failures (which turns bans on)"
            ));
        }
        if value.is_some_and(|duration| duration.0.is_zero()) {
            problems.push(format!("security.{key} must be longer than 0 s"));
        }
    }
    if let (Some(first), Some(longest)) = (security.ban_time, security.ban_max_time)
        && first.0 > longest.0
    {
        problems.push("security.ban_time is longer than ban_max_time".to_owned());
    }
    if security.lockdown_closes_connections && !security.auto_lockdown {
        problems.push("security.lockdown_closes_connections needs auto_lockdown = true".to_owned());
    }
    problems
}

/// Accepted keys that this build does not act on yet.
pub(super) fn warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let no_server_proxies = config.server.trusted_proxies.is_empty();
    let client_listener = config
        .server
        .tls
        .as_ref()
        .is_some_and(|tls| tls.client_port.is_some());
    for (index, app) in config.apps.iter().enumerate() {
        let Some(security) = &app.security else {
            continue;
        };
        let no_proxies = security
            .trusted_proxies
            .as_ref()
            .map_or(no_server_proxies, Vec::is_empty);
        if !security.mtls_fingerprints.is_empty() && no_proxies && !client_listener {
            warnings.push(format!(
                "apps[{index}]: mtls_fingerprints are read from X-Client-Cert-Fingerprint, which is only believed from trusted_proxies, and none are set (or from [server.tls] client_port, which is not set either)"
            ));
        }
    }
    let now = std::time::SystemTime::now();
    for (index, app) in config.apps.iter().enumerate() {
        for (pair, previous) in app.previous_credentials.iter().enumerate() {
            if previous.valid_until.0 <= now {
                warnings.push(format!(
                    "apps[{index}]: previous_credentials[{pair}] expired at {}; it is refused and can be removed",
                    humantime::format_rfc3339_seconds(previous.valid_until.0)
                ));
            }
        }
    }
    for (index, app) in config.apps.iter().enumerate() {
        for (entry, schema) in app.schemas.iter().enumerate() {
            // A prefix is the start of a name, and as a name it has the kind of every channel
            // it begins.
            let encrypted = ChannelName::parse(&schema.channel_prefix, usize::MAX)
                .is_ok_and(|prefix| prefix.kind() == ChannelKind::PrivateEncrypted);
            if encrypted {
                warnings.push(format!(
                    "apps[{index}]: schemas[{entry}] (line {}) never applies: private-encrypted- channels carry ciphertext and are not validated",
                    schema.line
                ));
            }
        }
    }
    for (index, app) in config.apps.iter().enumerate() {
        let asks_for_counts = app.webhooks.iter().any(|webhook| {
            let kinds = webhook.events.as_deref().unwrap_or_default();
            kinds.contains(&crate::protocol::WebhookKind::SubscriptionCount)
        });
        if asks_for_counts && !app.enable_subscription_count {
            warnings.push(format!(
                "apps[{index}]: a webhook lists subscription_count, which is only sent with enable_subscription_count = true"
            ));
        }
    }
    warnings
}
