//! The `config.toml` schema, its loading and its validation.
//!
//! The key names are a contract (the design notes' "config.toml contract"): users and outside test suites rely on
//! them, so keys may be added but never renamed. Loading happens in three steps: TOML is parsed
//! into the typed [`Config`] (unknown keys are errors, reported with their line), `${VAR}`
//! references in string values are replaced from the environment while parsing
//! ([`interpolate`]), and [`validate`] checks what types cannot (duplicates, empty secrets,
//! ranges), reporting every problem on its own line.

mod admins;
mod credentials;
mod hygiene;
mod interpolate;
mod limits;
mod redis;
mod schema;
mod schemas;
mod security;
mod tokens;
mod validate;
mod webhook;

use std::path::{Path, PathBuf};

pub use admins::{AdminConfig, AdminRole};
pub use credentials::{
    ConfigDuration, PreviousCredentials, RotationConfig, WebhookSigning, format_duration,
    parse_duration,
};
pub use interpolate::ConfigString;
pub use limits::LimitsConfig;
pub use redis::RedisConfig;
pub use schema::{
    AppConfig, Config, Environment, LogFormat, MetricsConfig, ServerConfig, StoreConfig, TlsConfig,
};
pub use schemas::{SchemaConfig, SchemaSource};
pub use security::{
    CountryCode, Fingerprint, GeoConfig, GeoIpConfig, GeoMode, Network, OriginPattern,
    SecretScanning, SecurityConfig, UnknownCountry,
};
pub use tokens::{Rfc3339, Scope, TokenConfig, TokenHash};
pub use webhook::{WebhookConfig, WebhookHeaders, WebhookUrl, loggable_host};

/// Words in a webhook header's name that make its value a credential (names are lower case).
const CREDENTIAL_HEADER_WORDS: [&str; 7] = [
    "auth",
    "token",
    "secret",
    "key",
    "signature",
    "password",
    "cookie",
];

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for the schema (or names an unset environment variable).
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file parsed but describes an unusable configuration; one line per problem.
    #[error("{}", problems.iter().map(|p| format!("{}: {p}", path.display())).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Parses and validates TOML text; `path` is only used in messages.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: path.to_owned(),
            line: err.span().map_or(1, |span| line_of(text, span.start)),
            message: err.message().trim().to_owned(),
        })?;
        config.config_dir = path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        for schema in config.apps.iter_mut().flat_map(|app| &mut app.schemas) {
            schema.line = line_of(text, schema.offset());
        }
        let problems = validate::problems(&config);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            })
        }
    }

    /// Warnings about accepted keys that this build does not act on yet.
    pub fn warnings(&self) -> Vec<String> {
        validate::warnings(self)
    }

    /// Every secret value the file holds (the apps' secrets and previous pairs' secrets, the
    /// Redis URL's password, webhook headers that carry credentials), for the log's redaction
    /// to know. A header such as `X-Env: prod` is not one: redacting "prod" would blank it
    /// out of every log line.
    pub fn secret_values(&self) -> Vec<&str> {
        let mut values = Vec::new();
        for app in &self.apps {
            values.push(app.secret.as_str());
            values.extend(
                app.previous_credentials
                    .iter()
                    .map(|pair| pair.secret.as_str()),
            );
            for webhook in &app.webhooks {
                let credentials = webhook.headers.iter().filter(|(name, _)| {
                    let name = name.as_str();
                    CREDENTIAL_HEADER_WORDS
                        .iter()
                        .any(|word| name.contains(word))
                });
                values.extend(credentials.filter_map(|(_, value)| value.to_str().ok()));
            }
        }
        values.extend(self.redis.as_ref().and_then(RedisConfig::password));
        for admin in &self.admins {
            values.push(admin.password_hash.as_str());
            values.extend(admin.totp_secret.as_ref().map(ConfigString::as_str));
        }
        values
    }

    /// Warnings about credentials: in development each weak one (what production refuses),
    /// in production the secrets it accepts but could be longer.
    pub fn credential_warnings(&self) -> Vec<String> {
        match self.environment {
            Environment::Production => hygiene::short_secrets(self),
            Environment::Development => hygiene::weak_credentials(self),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests;
