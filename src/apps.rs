//! The app registry: every hosted app, found by id (HTTP API) or by key (WebSocket), with its
//! credentials and limits.
//!
//! Credentials are checked here and only here, so that key rotation (a previous key/secret
//! pair accepted through a grace period) can later be added without touching callers.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AppConfig, Config};
use crate::protocol::signature::{self, AuthToken};

/// Why a client-supplied `auth` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// `auth` is missing or not `<key>:<signature>`.
    #[error("auth must be \"<app key>:<signature>\"")]
    Malformed,
    /// The key part is not this app's key.
    #[error("auth key does not match the app key")]
    WrongKey,
    /// The signature does not match.
    #[error("invalid signature")]
    BadSignature,
    /// The `X-Relay-Secret` is not the app's secret.
    #[error("invalid secret")]
    WrongSecret,
}

/// Per-app limits, from `config.toml`.
#[derive(Debug, Clone)]
pub struct AppLimits {
    /// Connections allowed at once on this node; `None`: unlimited.
    pub max_connections: Option<usize>,
    /// Channels one HTTP trigger may name.
    pub max_event_channels: usize,
    /// Events one batch trigger may carry.
    pub max_batch_size: usize,
    /// Longest event name.
    pub max_event_name_length: usize,
    /// Distinct users allowed in one presence channel.
    pub max_presence_members: usize,
    /// Largest presence `user_info`, in bytes.
    pub max_presence_member_size: usize,
    /// Largest event `data`, in bytes.
    pub max_event_size: usize,
    /// Longest channel name.
    pub max_channel_name_length: usize,
    /// Channels one connection may be subscribed to at once.
    pub max_channels_per_connection: usize,
    /// Client events per connection per second.
    pub max_client_events_per_second: u32,
    /// How long a cache channel keeps its last event.
    pub cache_ttl: Duration,
}

/// One hosted app.
pub struct App {
    /// The app id (HTTP API paths).
    pub id: String,
    /// The public key (WebSocket path, auth prefix).
    pub key: String,
    secret: String,
    /// Disabled apps refuse connections (4003).
    pub enabled: bool,
    /// Whether `client-*` events are accepted.
    pub enable_client_messages: bool,
    /// Whether subscribers are told their channel's subscription count.
    pub enable_subscription_count: bool,
    /// Whether watchlists in sign-ins get online/offline events.
    pub enable_watchlist_events: bool,
    /// With `enable_user_authentication`: how long a connection has to sign in or join a
    /// private or presence channel.
    pub user_authentication_timeout: Option<Duration>,
    /// Seconds of client silence before the server pings.
    pub activity_timeout: u64,
    /// Size and rate limits.
    pub limits: AppLimits,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Builds an app from its validated config entry.
    pub fn from_config(config: &AppConfig) -> Self {
        App {
            id: config.id.as_str().to_owned(),
            key: config.key.as_str().to_owned(),
            secret: config.secret.as_str().to_owned(),
            enabled: config.enabled,
            enable_client_messages: config.enable_client_messages,
            enable_subscription_count: config.enable_subscription_count,
            enable_watchlist_events: config.enable_watchlist_events,
            user_authentication_timeout: config
                .enable_user_authentication
                .then(|| Duration::from_secs(config.user_authentication_timeout)),
            activity_timeout: config.activity_timeout,
            limits: AppLimits {
                max_connections: config.max_connections,
                max_event_channels: config.max_event_channels,
                max_batch_size: config.max_batch_size,
                max_event_name_length: config.max_event_name_length,
                max_presence_members: config.max_presence_members,
                max_presence_member_size: config.max_presence_member_size,
                max_event_size: config.max_event_size,
                max_channel_name_length: config.max_channel_name_length,
                max_channels_per_connection: config.max_channels_per_connection,
                max_client_events_per_second: config.max_client_events_per_second,
                cache_ttl: Duration::from_secs(config.cache_ttl),
            },
        }
    }

    /// Checks a client's `auth` (`<key>:<hex>`) against `string_to_sign`, in constant time.
    pub fn verify_auth(&self, auth: Option<&str>, string_to_sign: &str) -> Result<(), AuthError> {
        let token = auth
            .and_then(AuthToken::parse)
            .ok_or(AuthError::Malformed)?;
        self.verify_signature(token.key, string_to_sign, token.signature)
    }

    /// Checks that `signature_hex` signs `string_to_sign` with the secret of `key`, which must
    /// be this app's key. The one place credentials are compared (constant time).
    pub fn verify_signature(
        &self,
        key: &str,
        string_to_sign: &str,
        signature_hex: &str,
    ) -> Result<(), AuthError> {
        if key != self.key {
            return Err(AuthError::WrongKey);
        }
        if signature::verify(
            self.secret.as_bytes(),
            string_to_sign.as_bytes(),
            signature_hex,
        ) {
            Ok(())
        } else {
            Err(AuthError::BadSignature)
        }
    }

    /// Checks an `X-Relay-Key` and `X-Relay-Secret` pair: the key must be this app's, and the
    /// secret is compared in constant time.
    pub fn verify_key_and_secret(&self, key: &str, secret: &str) -> Result<(), AuthError> {
        use sha2::{Digest, Sha256};
        use subtle::ConstantTimeEq;
        if key != self.key {
            return Err(AuthError::WrongKey);
        }
        // Digests of equal length, so the comparison tells nothing, not even the length.
        let expected = Sha256::digest(self.secret.as_bytes());
        let given = Sha256::digest(secret.as_bytes());
        if bool::from(expected.ct_eq(&given)) {
            Ok(())
        } else {
            Err(AuthError::WrongSecret)
        }
    }

    /// The `X-Pusher-Signature` of a webhook body: hex HMAC-SHA256 under the app secret.
    /// (When key rotation comes, Pusher's rule applies: the oldest active secret signs.)
    pub fn sign_webhook(&self, body: &[u8]) -> String {
        signature::sign(self.secret.as_bytes(), body)
    }
}

/// Every app, by id and by key.
#[derive(Debug, Default)]
pub struct AppRegistry {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl AppRegistry {
    /// Builds the registry from a validated config (ids and keys are unique).
    pub fn from_config(config: &Config) -> Self {
        let mut registry = AppRegistry::default();
        for app in &config.apps {
            let app = Arc::new(App::from_config(app));
            registry.by_id.insert(app.id.clone(), app.clone());
            registry.by_key.insert(app.key.clone(), app);
        }
        registry
    }

    /// The app with this id.
    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    /// The app with this key.
    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn app() -> Arc<App> {
        let config = Config::from_toml(
            "[[apps]]\nid = \"1\"\nkey = \"278d425bdf160c739803\"\nsecret = \"7ad3773142a6692b25b8\"\n",
            Path::new("test.toml"),
        )
        .unwrap();
        AppRegistry::from_config(&config)
            .by_id("1")
            .unwrap()
            .clone()
    }

    #[test]
    fn verify_auth_checks_key_and_signature() {
        let app = app();
        let good =
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        assert_eq!(
            app.verify_auth(Some(good), "1234.1234:private-foobar"),
            Ok(())
        );
        assert_eq!(
            app.verify_auth(Some(good), "1234.1234:private-other"),
            Err(AuthError::BadSignature)
        );
        let wrong_key = good.replace("278d", "0000");
        assert_eq!(
            app.verify_auth(Some(&wrong_key), "1234.1234:private-foobar"),
            Err(AuthError::WrongKey)
        );
        assert_eq!(app.verify_auth(None, "x"), Err(AuthError::Malformed));
        assert_eq!(
            app.verify_auth(Some("nocolon"), "x"),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        assert!(!format!("{:?}", app()).contains("7ad3773142a6692b25b8"));
    }
}
