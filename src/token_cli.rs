//! `relay token create | list | revoke`. `create` makes a new API token for an app and prints
//! it once with the `[[apps.tokens]]` block (only the token's hash) to paste into
//! `config.toml`; the server never sees or stores the token itself. `list` shows an app's
//! tokens with their use and revocation from the state store; `revoke` records a revocation
//! there, which running servers pick up within `store::SYNC_INTERVAL`.

use std::time::{Duration, SystemTime};

use crate::config::{Config, Scope};
use crate::guard::{WellFormedToken, generate_token};
use crate::store::Store;

/// Why a token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TokenCliError {
    /// No app has the id.
    #[error("no app with id {0:?} in the configuration")]
    UnknownApp(String),
    /// A scope name that does not exist.
    #[error("unknown scope {name:?}; scopes are: {}", Scope::ALL.map(Scope::as_str).join(", "))]
    UnknownScope {
        /// The name given.
        name: String,
    },
    /// An `--expires` that is not a duration.
    #[error("--expires {0:?} is not a duration like 90d, 12h or 3600")]
    BadDuration(String),
    /// A name already used by one of the app's tokens.
    #[error("the app already has a token named {0:?}")]
    DuplicateName(String),
    /// No token of the app has the name.
    #[error("the app has no token named {0:?}")]
    UnknownToken(String),
    /// The state store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// What `relay token create` was asked for.
#[derive(Debug)]
pub struct CreateRequest<'a> {
    /// The app id.
    pub app: &'a str,
    /// The token's name.
    pub name: &'a str,
    /// Scope names; empty: full access.
    pub scopes: &'a [String],
    /// How long it is valid (`90d`, `12h`, seconds), if not forever.
    pub expires: Option<&'a str>,
}

/// A new token and the `[[apps.tokens]]` block that registers it.
#[derive(Debug)]
pub struct CreatedToken {
    /// The token; shown once, stored nowhere.
    pub token: String,
    /// The TOML block to add under the app.
    pub block: String,
}

/// Makes a token for `request` against `config`, valid from `now`.
pub fn create(
    config: &Config,
    request: &CreateRequest<'_>,
    now: SystemTime,
) -> Result<CreatedToken, TokenCliError> {
    let tokens = app_tokens(config, request.app)?;
    if tokens.iter().any(|token| token.name == request.name) {
        return Err(TokenCliError::DuplicateName(request.name.to_owned()));
    }
    let scopes = request
        .scopes
        .iter()
        .map(|name| {
            Scope::parse(name).ok_or_else(|| TokenCliError::UnknownScope { name: name.clone() })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let expires_at = request
        .expires
        .map(|text| parse_duration(text).map(|valid| now + valid))
        .transpose()?;
    let token = generate_token();
    let hash = WellFormedToken::parse(&token)
        .map(|token| token.hash())
        .expect("a generated token is well formed");
    let mut block = format!(
        "[[apps.tokens]]\nname = {}\nhash = \"{hash:?}\"\n",
        toml_string(request.name)
    );
    if !scopes.is_empty() {
        let names: Vec<String> = scopes
            .iter()
            .map(|scope| format!("\"{}\"", scope.as_str()))
            .collect();
        block.push_str(&format!("scopes = [{}]\n", names.join(", ")));
    }
    if let Some(at) = expires_at {
        block.push_str(&format!(
            "expires_at = \"{}\"\n",
            humantime::format_rfc3339_seconds(at)
        ));
    }
    Ok(CreatedToken { token, block })
}

/// Revokes the token `name` of app `app` in `store`; `false` if it already was revoked.
pub fn revoke(
    config: &Config,
    store: &dyn Store,
    app: &str,
    name: &str,
    now: SystemTime,
) -> Result<bool, TokenCliError> {
    let tokens = app_tokens(config, app)?;
    if !tokens.iter().any(|token| token.name == name) {
        return Err(TokenCliError::UnknownToken(name.to_owned()));
    }
    Ok(store.revoke_token(app, name, now)?)
}

/// One line per token of app `app`: name, scopes, expiry, uses, last use and its address,
/// and whether it is revoked.
pub fn list(config: &Config, store: &dyn Store, app: &str) -> Result<Vec<String>, TokenCliError> {
    let tokens = app_tokens(config, app)?;
    let uses = store.token_uses(app)?;
    let revoked = store.revoked_tokens()?;
    Ok(tokens
        .iter()
        .map(|token| {
            let scopes = if token.scopes.is_empty() {
                "full access".to_owned()
            } else {
                token
                    .scopes
                    .iter()
                    .map(|scope| scope.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let expires = token.expires_at.map_or_else(
                || "no expiry".to_owned(),
                |at| format!("expires {}", humantime::format_rfc3339_seconds(at.0)),
            );
            let used = uses
                .iter()
                .find(|used| used.name == token.name)
                .map_or_else(
                    || "never used".to_owned(),
                    |used| {
                        let from = used
                            .last_address
                            .map_or_else(String::new, |address| format!(" from {address}"));
                        format!(
                            "{} uses, last {}{from}",
                            used.count,
                            humantime::format_rfc3339_seconds(used.last_used)
                        )
                    },
                );
            let state = if revoked
                .iter()
                .any(|gone| gone.app_id == app && gone.name == token.name)
            {
                "REVOKED"
            } else {
                "active"
            };
            format!("{}  {state}  {scopes}  {expires}  {used}", token.name)
        })
        .collect())
}

fn app_tokens<'a>(
    config: &'a Config,
    app: &str,
) -> Result<&'a [crate::config::TokenConfig], TokenCliError> {
    config
        .apps
        .iter()
        .find(|candidate| candidate.id.as_str() == app)
        .map(|found| found.tokens.as_slice())
        .ok_or_else(|| TokenCliError::UnknownApp(app.to_owned()))
}

/// `90d`, `12h`, `30m`, `45s` or plain seconds, not zero.
fn parse_duration(text: &str) -> Result<Duration, TokenCliError> {
    crate::config::parse_duration(text)
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| TokenCliError::BadDuration(text.to_owned()))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const CONFIG: &str = "[[apps]]\nid = \"1\"\nkey = \"k\"\nsecret = \"s\"\n";

    fn request<'a>(scopes: &'a [String], expires: Option<&'a str>) -> CreateRequest<'a> {
        CreateRequest {
            app: "1",
            name: "deploy \"bot\"",
            scopes,
            expires,
        }
    }

    #[test]
    fn the_block_registers_the_printed_token_and_parses_back() {
        let config = Config::from_toml(CONFIG, Path::new("t.toml")).unwrap();
        let scopes = vec!["events:publish".to_owned()];
        let now = humantime::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        let created = create(&config, &request(&scopes, Some("90d")), now).unwrap();
        assert!(WellFormedToken::parse(&created.token).is_some());
        assert!(
            !created.block.contains(&created.token),
            "only the hash is written"
        );
        let with_block = format!("{CONFIG}{}", created.block);
        let config = Config::from_toml(&with_block, Path::new("t.toml")).unwrap();
        let token = &config.apps[0].tokens[0];
        assert_eq!(token.name, "deploy \"bot\"");
        assert_eq!(token.scopes, vec![Scope::EventsPublish]);
        let expires = humantime::parse_rfc3339("2027-03-01T00:00:00Z").unwrap();
        assert_eq!(token.expires_at.map(|at| at.0), Some(expires));
        let hash = WellFormedToken::parse(&created.token).unwrap().hash();
        assert_eq!(token.hash, hash);
    }

    #[test]
    fn unknown_apps_scopes_and_durations_are_refused() {
        let config = Config::from_toml(CONFIG, Path::new("t.toml")).unwrap();
        let now = SystemTime::now();
        let bad_scope = vec!["events:everything".to_owned()];
        let error = create(&config, &request(&bad_scope, None), now).unwrap_err();
        assert!(
            error.to_string().contains("events:publish, events:batch"),
            "{error}"
        );
        let error = create(&config, &request(&[], Some("soon")), now).unwrap_err();
        assert!(matches!(error, TokenCliError::BadDuration(_)));
        let other = CreateRequest {
            app: "2",
            ..request(&[], None)
        };
        assert!(matches!(
            create(&config, &other, now),
            Err(TokenCliError::UnknownApp(_))
        ));
    }
}
