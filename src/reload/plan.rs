//! What a new configuration changes, compared with the one in force: pure, so every rule of
//! the reload is tested without a server. Apps are compared whole by id (a changed app is
//! rebuilt; an unchanged one keeps its object, its webhooks and its counts), and each changed
//! app's change is named by the parts of its block that differ. Keys that only take effect
//! at start are named so that the operator is told they wait for a restart.

use crate::config::{AppConfig, Config};

/// The difference between the configuration in force and a new one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Apps only the new configuration has.
    pub added: Vec<String>,
    /// Apps only the old one has.
    pub removed: Vec<String>,
    /// Apps in both whose blocks differ, with the parts that do.
    pub changed: Vec<(String, Vec<&'static str>)>,
    /// Changed apps that the new configuration disables.
    pub disabled: Vec<String>,
    /// Changed keys that take effect only at start (kept as they are until a restart).
    pub start_only: Vec<&'static str>,
    /// Whether `[server] trusted_proxies` changed (applied at once).
    pub trusted_proxies: bool,
    /// Whether `[[admins]]` or `require_2fa` changed (the console's accounts).
    pub admins: bool,
}

impl Plan {
    /// What going from `old` to `new` changes.
    pub fn between(old: &Config, new: &Config) -> Plan {
        let mut plan = Plan {
            start_only: start_only_changes(old, new),
            trusted_proxies: old.server.trusted_proxies != new.server.trusted_proxies,
            admins: old.admins != new.admins || old.require_2fa != new.require_2fa,
            ..Plan::default()
        };
        let old_app = |id: &str| old.apps.iter().find(|app| app.id.as_str() == id);
        for app in &new.apps {
            let id = app.id.as_str().to_owned();
            match old_app(&id) {
                None => plan.added.push(id),
                Some(before) if before != app => {
                    if before.enabled && !app.enabled {
                        plan.disabled.push(id.clone());
                    }
                    plan.changed.push((id, changed_parts(before, app)));
                }
                Some(_) => {}
            }
        }
        for app in &old.apps {
            if !new.apps.iter().any(|kept| kept.id == app.id) {
                plan.removed.push(app.id.as_str().to_owned());
            }
        }
        plan
    }

    /// Whether the new configuration changes anything at all.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.start_only.is_empty()
            && !self.trusted_proxies
            && !self.admins
    }

    /// Whether `app_id` keeps its app object (neither added, removed nor changed).
    pub fn keeps(&self, app_id: &str) -> bool {
        !self.added.iter().any(|id| id == app_id)
            && !self.removed.iter().any(|id| id == app_id)
            && !self.changed.iter().any(|(id, _)| id == app_id)
    }

    /// Whether `app_id`'s webhooks are to be built anew: it is added, or its webhook keys
    /// changed.
    pub fn rebuilds_webhooks(&self, app_id: &str) -> bool {
        self.added.iter().any(|id| id == app_id)
            || self
                .changed
                .iter()
                .any(|(id, parts)| id == app_id && parts.contains(&"webhooks"))
    }

    /// One line saying what changed, for the log and the activity log (ids and key names
    /// only, never a value).
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let list = |ids: &[String]| ids.join(", ");
        if !self.added.is_empty() {
            parts.push(format!("apps added: {}", list(&self.added)));
        }
        if !self.removed.is_empty() {
            parts.push(format!("apps removed: {}", list(&self.removed)));
        }
        for (id, changed) in &self.changed {
            parts.push(format!("app {id} changed ({})", changed.join(", ")));
        }
        if self.trusted_proxies {
            parts.push("server.trusted_proxies changed".to_owned());
        }
        if self.admins {
            parts.push("admins changed".to_owned());
        }
        if !self.start_only.is_empty() {
            parts.push(format!(
                "not applied until a restart: {}",
                self.start_only.join(", ")
            ));
        }
        if parts.is_empty() {
            "nothing changed".to_owned()
        } else {
            parts.join("; ")
        }
    }
}

/// A named part of an app's block, with how to take that part from another block.
type Part = (&'static str, fn(&mut AppConfig, &AppConfig));

/// The parts a change is named by, in the order they are named; whatever else differs is one
/// of the app's plain `settings` (sizes, flags).
const PARTS: [Part; 7] = [
    ("enabled", |to, from| to.enabled = from.enabled),
    ("credentials", |to, from| {
        to.key = from.key.clone();
        to.secret = from.secret.clone();
        to.previous_credentials = from.previous_credentials.clone();
        to.rotation = from.rotation;
        to.rotation_webhook = from.rotation_webhook.clone();
    }),
    ("security", |to, from| to.security = from.security.clone()),
    ("limits", |to, from| to.limits = from.limits.clone()),
    ("tokens", |to, from| to.tokens = from.tokens.clone()),
    ("schemas", |to, from| to.schemas = from.schemas.clone()),
    ("webhooks", |to, from| {
        to.webhooks = from.webhooks.clone();
        to.webhook_durable = from.webhook_durable;
        to.webhook_signing = from.webhook_signing;
        to.webhook_batch_window_ms = from.webhook_batch_window_ms;
        to.webhook_batch_max_events = from.webhook_batch_max_events;
        to.webhook_queue_size = from.webhook_queue_size;
        to.webhook_vacate_delay_ms = from.webhook_vacate_delay_ms;
    }),
];

/// The parts of an app's block that differ: each part whose taking from `new` changes `old`,
/// and `settings` when `old` with every part taken is still not `new`.
fn changed_parts(old: &AppConfig, new: &AppConfig) -> Vec<&'static str> {
    let mut changed: Vec<&'static str> = PARTS
        .iter()
        .filter(|(_, take)| {
            let mut probe = old.clone();
            take(&mut probe, new);
            probe != *old
        })
        .map(|(name, _)| *name)
        .collect();
    let mut rest = old.clone();
    for (_, take) in PARTS {
        take(&mut rest, new);
    }
    if rest != *new {
        changed.push("settings");
    }
    changed
}

/// `("server.<field>", whether it differs)` for each named field of two `[server]` tables.
macro_rules! server_keys_changed {
    ($a:ident, $b:ident: $($field:ident),*) => {
        [$((concat!("server.", stringify!($field)), $a.$field != $b.$field)),*]
    };
}

/// The keys that only take effect at start and differ between `old` and `new`.
fn start_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let (a, b) = (&old.server, &new.server);
    let tls_paths = |config: &Config| {
        config
            .server
            .tls
            .as_ref()
            .map(|tls| (tls.cert.clone(), tls.key.clone()))
    };
    let client_listener = |config: &Config| {
        config
            .server
            .tls
            .as_ref()
            .map(|tls| (tls.client_ca.clone(), tls.client_port))
    };
    let server = server_keys_changed!(
        a,
        b: host,
        port,
        workers,
        max_connections,
        max_frame_size,
        pong_timeout,
        shutdown_timeout,
        outbound_queue_size,
        outbound_queue_bytes,
        max_request_size,
        request_body_timeout,
        max_pending_request_bytes,
        max_auth_timestamp_skew
    );
    let rest = [
        ("server.tls", tls_paths(old) != tls_paths(new)),
        (
            "server.tls.client_ca",
            client_listener(old) != client_listener(new),
        ),
        ("metrics", old.metrics != new.metrics),
        ("redis", old.redis != new.redis),
        ("store", old.store != new.store),
        ("geoip", old.geoip != new.geoip),
    ];
    let top = [
        ("environment", old.environment != new.environment),
        ("log_format", old.log_format != new.log_format),
        ("log_level", old.log_level != new.log_level),
    ];
    let keys: Vec<(&'static str, bool)> = top.into_iter().chain(server).chain(rest).collect();
    keys.iter()
        .filter(|(_, differs)| *differs)
        .map(|(name, _)| *name)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"
[server]
port = 6001

[[apps]]
id = "1"
key = "key-one"
secret = "secret-one"

[[apps]]
id = "2"
key = "key-two"
secret = "secret-two"
"#;

    fn config(text: &str) -> Config {
        Config::from_toml(text, Path::new("config.toml")).unwrap()
    }

    #[test]
    fn the_same_file_changes_nothing() {
        let plan = Plan::between(&config(BASE), &config(BASE));
        assert!(plan.is_empty(), "{plan:?}");
        assert_eq!(plan.summary(), "nothing changed");
        assert!(plan.keeps("1") && plan.keeps("2"));
    }

    #[test]
    fn apps_added_removed_changed_and_disabled_are_told_apart() {
        let new = BASE.replace("id = \"2\"", "id = \"3\"").replace(
            "secret = \"secret-one\"",
            "secret = \"secret-one\"\nenabled = false\nmax_event_size = 100",
        );
        let plan = Plan::between(&config(BASE), &config(&new));
        assert_eq!(plan.added, ["3"]);
        assert_eq!(plan.removed, ["2"]);
        assert_eq!(
            plan.changed,
            [("1".to_owned(), vec!["enabled", "settings"])]
        );
        assert_eq!(plan.disabled, ["1"]);
        assert!(!plan.keeps("1") && !plan.keeps("2") && !plan.keeps("3"));
        assert_eq!(
            plan.summary(),
            "apps added: 3; apps removed: 2; app 1 changed (enabled, settings)"
        );
    }

    #[test]
    fn a_changed_part_is_named_and_no_value_is_shown() {
        let new = BASE.replace(
            "secret = \"secret-two\"",
            "secret = \"another-secret\"\n[apps.limits]\nevents_per_second = 5\n[apps.security]\nallowed_origins = [\"https://a.example\"]",
        );
        let plan = Plan::between(&config(BASE), &config(&new));
        assert_eq!(
            plan.changed,
            [("2".to_owned(), vec!["credentials", "security", "limits"])]
        );
        assert!(plan.keeps("1"));
        assert!(!plan.summary().contains("another-secret"));
    }

    #[test]
    fn moving_an_app_block_or_a_schema_entry_is_no_change() {
        let swapped = r#"
[server]
port = 6001

[[apps]]
id = "2"
key = "key-two"
secret = "secret-two"

[[apps]]
id = "1"
key = "key-one"
secret = "secret-one"
"#;
        assert!(Plan::between(&config(BASE), &config(swapped)).is_empty());
        let with_schema = |lead: &str| {
            format!(
                "{lead}{BASE}[[apps.schemas]]\nchannel_prefix = \"orders-\"\nschema = {{ type = \"object\" }}\n"
            )
        };
        let plan = Plan::between(&config(&with_schema("")), &config(&with_schema("\n\n\n")));
        assert!(plan.is_empty(), "{plan:?}");
    }

    #[test]
    fn keys_read_only_at_start_are_named() {
        let new = BASE.replace(
            "port = 6001",
            "port = 7001\nworkers = 2\ntrusted_proxies = [\"10.0.0.0/8\"]",
        ) + "\n[metrics]\nport = 9700\n";
        let plan = Plan::between(&config(BASE), &config(&new));
        assert_eq!(
            plan.start_only,
            ["server.port", "server.workers", "metrics"]
        );
        assert!(plan.trusted_proxies);
        assert!(plan.changed.is_empty());
        assert!(
            plan.summary()
                .ends_with("not applied until a restart: server.port, server.workers, metrics")
        );
    }
}
