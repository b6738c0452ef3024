//! The two steps of a reload (see the module comment of [`reload`](super)): preparing
//! everything that can fail, then committing it in an order that never lets a request see
//! an app without its rules.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{info, warn};

use super::{ConfigSource, Plan, ReloadError};
use crate::activity::EventKind;
use crate::apps::{App, AppRegistry, rotation};
use crate::config::{AppConfig, Config};
use crate::guard::NewRules;
use crate::state::ServerState;
use crate::store::RevokedToken;
use crate::webhooks::RunningWebhooks;

/// A new configuration, checked and built, not yet in force.
pub struct Prepared {
    config: Config,
    plan: Plan,
    rules: NewRules,
    /// The apps, indexed by their keys at the commit (a rotation meanwhile may add a key).
    apps: Vec<Arc<App>>,
    /// The store's revoked tokens (a token the new file names under a revoked name is
    /// refused from the commit on, not from the next sync), if there is a store.
    revoked: Option<Vec<RevokedToken>>,
}

/// Reads and checks the file at `source` against `current` (the configuration in force) and
/// builds what it describes. Blocks (files, the state store).
pub fn prepare(
    state: &ServerState,
    source: &ConfigSource,
    current: &Config,
) -> Result<Prepared, ReloadError> {
    let config = source.load()?;
    let plan = Plan::between(current, &config);
    let rules = state.guard.prepare(&config)?;
    let store = state.store();
    let stored = match &store {
        Some(store) if !plan.added.is_empty() || !plan.changed.is_empty() => store.credentials()?,
        _ => Vec::new(),
    };
    let revoked = match &store {
        Some(store) => Some(store.revoked_tokens()?),
        None => None,
    };
    let in_force = state.apps.load();
    let now = SystemTime::now();
    let apps = config.apps.iter().map(|app_config| {
        let id = app_config.id.as_str();
        match in_force.by_id(id) {
            Some(app) if plan.keeps(id) => app.clone(),
            before => {
                let app = match before {
                    Some(before) => App::replacing(app_config, before),
                    None => App::from_config(app_config),
                };
                let keyring =
                    rotation::keyring_with_store(app.configured_keyring(), id, &stored, now);
                app.set_keyring(keyring);
                Arc::new(app)
            }
        }
    });
    let apps = apps.collect();
    Ok(Prepared {
        config,
        plan,
        rules,
        apps,
        revoked,
    })
}

/// Puts `prepared` in force and says so; returns its configuration (now the one in force)
/// and whether it removed an app.
pub fn commit(
    state: &ServerState,
    webhooks: &RunningWebhooks,
    prepared: Prepared,
    trigger: &str,
) -> (Config, bool) {
    let Prepared {
        config,
        plan,
        rules,
        apps,
        revoked,
    } = prepared;
    for secret in config.secret_values() {
        crate::logging::redaction::know(secret);
    }
    state.guard.commit(rules);
    if let Some(revoked) = revoked {
        state.guard.tokens.set_revoked(&revoked);
    }
    let registry = AppRegistry::indexed(apps);
    for app in &config.apps {
        if let Some(quota) = state.guard.daily_quotas.get(app.id.as_str()) {
            state.hub.count_deliveries_into(app.id.as_str(), &quota);
        }
    }
    swap_webhooks(state, webhooks, &config, &plan, &registry);
    let replaced = state.apps.replace(registry);
    let in_force = state.apps.load();
    for old in replaced.apps() {
        let kept = in_force
            .by_id(&old.id)
            .is_some_and(|new| Arc::ptr_eq(new, old));
        if !kept {
            old.retire();
            state.hub.app_changed(&old.id);
        }
    }
    // Only now: until the registry had lost them, their requests were judged by their rules.
    state.guard.forget_apps(&plan.removed);
    let summary = plan.summary();
    info!(trigger, "configuration reloaded: {summary}");
    if !plan.start_only.is_empty() {
        warn!(
            keys = %plan.start_only.join(", "),
            "config.toml changed keys that take effect only at start; restart to apply them"
        );
    }
    for warning in config
        .warnings()
        .into_iter()
        .chain(config.credential_warnings())
    {
        warn!("{warning}");
    }
    let message = format!("configuration reloaded ({trigger}): {summary}");
    for app_id in concerned(&config, &plan) {
        state
            .guard
            .record(&app_id, EventKind::ConfigReloaded, None, message.clone());
    }
    let removed_any = !plan.removed.is_empty();
    (config, removed_any)
}

/// Says that a new configuration was refused, and why, in the log (one line per problem) and
/// in the activity log of every app in force.
pub fn refused(state: &ServerState, current: &Config, error: &ReloadError, trigger: &str) {
    let problems: Vec<String> = error.to_string().lines().map(str::to_owned).collect();
    for problem in &problems {
        warn!(trigger, "configuration reload refused: {problem}");
    }
    warn!(
        trigger,
        "the configuration in force stays; fix config.toml and reload again"
    );
    let message = format!(
        "configuration reload ({trigger}) refused: {} problem(s), see the server log; the configuration in force stays",
        problems.len()
    );
    for app in &current.apps {
        let kind = EventKind::ConfigRefused;
        state
            .guard
            .record(app.id.as_str(), kind, None, message.clone());
    }
}

/// Every app a reload concerns: those of the new configuration and those it removed.
fn concerned(config: &Config, plan: &Plan) -> Vec<String> {
    config
        .apps
        .iter()
        .map(|app| app.id.as_str().to_owned())
        .chain(plan.removed.iter().cloned())
        .collect()
}

/// The webhook sinks of `config`: an app whose webhooks the reload leaves alone keeps its
/// sink and workers (their delays and batches in progress; they sign as the registry's app);
/// one whose webhooks changed, or an added one, gets new ones (started now), a removed one
/// none. An old sink dropped here ends its workers once they have sent what they hold.
fn swap_webhooks(
    state: &ServerState,
    webhooks: &RunningWebhooks,
    config: &Config,
    plan: &Plan,
    registry: &AppRegistry,
) {
    let current = state.webhooks.all();
    let mut sinks = HashMap::new();
    for app_config in &config.apps {
        let id = app_config.id.as_str();
        let old_sink = current.get(id);
        if !plan.rebuilds_webhooks(id) {
            if let Some(sink) = old_sink {
                sinks.insert(id.to_owned(), sink.clone());
            }
            continue;
        }
        let Some(app) = registry.by_id(id) else {
            continue;
        };
        warn_unjournaled(state, app_config);
        if let Some((sink, workers)) = state.webhook_wiring.build(app, app_config, old_sink) {
            sinks.insert(id.to_owned(), sink);
            webhooks.add(workers);
        }
    }
    for removed in &plan.removed {
        state.webhook_wiring.redelivery().remove_app(removed);
    }
    state.webhooks.replace(sinks);
}

/// Warns when an app's webhooks should be journaled and this process has no journal (none of
/// the apps it started with needed one, or there was no store yet): they are delivered, but
/// not kept, until a restart.
fn warn_unjournaled(state: &ServerState, app: &AppConfig) {
    if state.webhook_wiring.lacks_journal_for(app) {
        warn!(
            app = app.id.as_str(),
            "this app's webhook batches are not journaled until a restart (the process started without a journal)"
        );
    }
}
