//! The secrets guard: credentials too weak for production. With `environment =
//! "production"` each finding that matters refuses the start (a problem of the file); in
//! development each is one warning line instead, so the bundled example still runs and says
//! what to change. Secrets shorter than 32 characters are only warned about in production:
//! Pusher's own are 20 hex characters, and migrated apps must start.

use std::collections::HashMap;

use super::{Config, Environment};

/// The bundled `config.toml`'s development credentials.
const DEVELOPMENT_KEY: &str = "app-key";
const DEVELOPMENT_SECRET: &str = "app-secret";
/// Shortest secret production accepts.
const SHORTEST_SECRET: usize = 16;
/// Shortest secret production accepts without a warning.
const SHORTEST_QUIET_SECRET: usize = 32;

/// Problems for production, warnings for development (one line each).
pub(super) fn weak_credentials(config: &Config) -> Vec<String> {
    let mut found = Vec::new();
    let mut first_with_secret: HashMap<&str, usize> = HashMap::new();
    for (index, app) in config.apps.iter().enumerate() {
        let secret = app.secret.as_str();
        if app.key.as_str() == DEVELOPMENT_KEY || secret == DEVELOPMENT_SECRET {
            found.push(format!(
                "apps[{index}]: the bundled development credentials (key or secret of the example config.toml); make new ones with `relay app new --id {}`",
                app.id.as_str()
            ));
        } else if !secret.is_empty() && secret.len() < SHORTEST_SECRET {
            found.push(format!(
                "apps[{index}]: secret is shorter than {SHORTEST_SECRET} characters; `relay secret` prints a new one"
            ));
        }
        if secret.is_empty() {
            continue;
        }
        match first_with_secret.get(secret) {
            Some(first) => found.push(format!(
                "apps[{index}]: secret is the same as apps[{first}]'s; each app needs its own (`relay secret`)"
            )),
            None => {
                first_with_secret.insert(secret, index);
            }
        }
    }
    found
}

/// Warnings production gives on top: secrets it accepts but could be longer.
pub(super) fn short_secrets(config: &Config) -> Vec<String> {
    if config.environment != Environment::Production {
        return Vec::new();
    }
    config
        .apps
        .iter()
        .enumerate()
        .filter(|(_, app)| {
            (SHORTEST_SECRET..SHORTEST_QUIET_SECRET).contains(&app.secret.len())
        })
        .map(|(index, _)| {
            format!(
                "apps[{index}]: secret is shorter than {SHORTEST_QUIET_SECRET} characters; consider a new one (`relay secret`)"
            )
        })
        .collect()
}
