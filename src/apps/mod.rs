//! The app registry: every hosted app, found by id (HTTP API) or by any of its keys
//! (WebSocket), with its credentials and limits.
//!
//! Credentials are checked here and only here, through the app's [`Keyring`]: the current
//! key/secret pair and the previous pairs still inside their grace period. Both can change
//! while the server runs (a rotation, a `relay keys rotate`): an app's keyring is swapped
//! whole, so a connection holding the app sees the new pairs at its next check; the registry
//! itself is swapped whole ([`Apps`]) when the set of keys changes, which the configuration
//! reload will reuse.

mod keyring;
mod pair_uses;
mod registry;
pub mod rotation;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, Guard};

pub use keyring::{Keyring, Matched, Mismatch, NoMatch, Pair, PreviousPair, Secret};
pub use pair_uses::{CredentialUse, ExpiredUse, PairUses, Via};
pub use registry::{AppRegistry, Apps};

use crate::config::{AppConfig, RotationConfig, WebhookUrl};
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
    pub max_client_events_per_second: NonZeroU32,
    /// How long a cache channel keeps its last event.
    pub cache_ttl: Duration,
}

/// One hosted app.
pub struct App {
    /// The app id (HTTP API paths).
    pub id: String,
    keyring: ArcSwap<Keyring>,
    /// The pairs `config.toml` names (the state store's rotations are laid over them).
    configured: Keyring,
    /// The secret's automatic rotation, if any.
    pub rotation: Option<RotationConfig>,
    /// Where rotations are announced.
    pub rotation_webhook: Option<WebhookUrl>,
    /// Shared with the app that replaces this one at a reload, so no use is lost.
    pair_uses: Arc<PairUses>,
    /// Set when a configuration reload replaces or removes this app: its connections then
    /// take the registry's app of the same id, or close with 4003 when there is none (or it
    /// is disabled). The hub tells the open ones; one admitted meanwhile looks here.
    retired: AtomicBool,
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
            .field("keyring", &self.keyring.load())
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A webhook's signature and the key of the pair that made it (`X-Pusher-Key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSignature {
    /// The pair's key.
    pub key: String,
    /// Hex HMAC-SHA256 of the body under the pair's secret.
    pub signature: String,
}

impl App {
    /// Builds an app from its validated config entry.
    pub fn from_config(config: &AppConfig) -> Self {
        let configured = rotation::configured_keyring(config);
        App {
            id: config.id.as_str().to_owned(),
            keyring: ArcSwap::from_pointee(configured.clone()),
            configured,
            rotation: config.rotation,
            rotation_webhook: config.rotation_webhook.clone(),
            pair_uses: Arc::default(),
            retired: AtomicBool::new(false),
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
                // check-config refuses 0 (client events are turned off another way).
                max_client_events_per_second: NonZeroU32::new(config.max_client_events_per_second)
                    .unwrap_or(NonZeroU32::MIN),
                cache_ttl: Duration::from_secs(config.cache_ttl),
            },
        }
    }

    /// The app `config` describes, replacing `old` (a reload changed its configuration): the
    /// uses of previous pairs `old` counted and has not flushed yet are this one's to flush.
    pub fn replacing(config: &AppConfig, old: &App) -> Self {
        App {
            pair_uses: old.pair_uses.clone(),
            ..App::from_config(config)
        }
    }

    /// Whether a reload has replaced or removed this app.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::SeqCst)
    }

    /// Marks this app replaced or removed (before its connections are told).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// The app's pairs now.
    pub fn keyring(&self) -> Guard<Arc<Keyring>> {
        self.keyring.load()
    }

    /// The pairs `config.toml` names, before any rotation.
    pub fn configured_keyring(&self) -> &Keyring {
        &self.configured
    }

    /// Replaces the app's pairs (a rotation, or the state store's pairs read at start-up).
    pub fn set_keyring(&self, keyring: Keyring) {
        self.keyring.store(Arc::new(keyring));
    }

    /// The uses of previous pairs counted since the last call.
    pub fn take_pair_uses(&self) -> Vec<crate::store::PairUse> {
        self.pair_uses.take()
    }

    /// The secrets of pairs past their grace presented since the last call.
    pub fn take_expired_uses(&self) -> Vec<ExpiredUse> {
        self.pair_uses.take_expired()
    }

    /// Checks a client's `auth` (`<key>:<hex>`) against `string_to_sign`, in constant time.
    pub fn verify_auth(
        &self,
        auth: Option<&str>,
        string_to_sign: &str,
        used: &CredentialUse,
    ) -> Result<(), AuthError> {
        let token = auth
            .and_then(AuthToken::parse)
            .ok_or(AuthError::Malformed)?;
        self.verify_signature(token.key, string_to_sign, token.signature, used)
    }

    /// Checks that `signature_hex` signs `string_to_sign` with the secret of a pair with
    /// `key` that is valid at `used.now`.
    pub fn verify_signature(
        &self,
        key: &str,
        string_to_sign: &str,
        signature_hex: &str,
        used: &CredentialUse,
    ) -> Result<(), AuthError> {
        let keyring = self.keyring.load();
        let matched = keyring
            .match_signature(key, string_to_sign.as_bytes(), signature_hex, used.now)
            .map_err(|no_match| self.refused(no_match, AuthError::BadSignature, used))?;
        self.count(matched, used);
        Ok(())
    }

    /// Checks an `X-Relay-Key` and `X-Relay-Secret` pair against the pairs valid at
    /// `used.now` (constant time).
    pub fn verify_key_and_secret(
        &self,
        key: &str,
        secret: &str,
        used: &CredentialUse,
    ) -> Result<(), AuthError> {
        let keyring = self.keyring.load();
        let matched = keyring
            .match_secret(key, secret, used.now)
            .map_err(|no_match| self.refused(no_match, AuthError::WrongSecret, used))?;
        self.count(matched, used);
        Ok(())
    }

    /// Whether a WebSocket may connect with `key` at `used.now`.
    pub fn accepts_key(&self, key: &str, used: &CredentialUse) -> bool {
        let keyring = self.keyring.load();
        let matched = keyring.match_key(key, used.now);
        if let Some(matched) = matched {
            self.count(matched, used);
        }
        matched.is_some()
    }

    /// Signs a webhook body with the pair `webhook_signing` chooses at `now`.
    pub fn sign_webhook(&self, body: &[u8], now: SystemTime) -> WebhookSignature {
        let keyring = self.keyring.load();
        let pair = keyring.webhook_pair(now);
        WebhookSignature {
            key: pair.key.clone(),
            signature: signature::sign(pair.secret.expose().as_bytes(), body),
        }
    }

    /// The answer to a credential that matched no valid pair (`wrong_secret` when the key is
    /// known); the secret of an expired pair is counted for the activity log, and answered as
    /// if the pair were unknown.
    fn refused(
        &self,
        no_match: NoMatch,
        wrong_secret: AuthError,
        used: &CredentialUse,
    ) -> AuthError {
        if no_match.expired_pair {
            self.pair_uses.record_expired(used);
        }
        match no_match.why {
            Mismatch::UnknownKey => AuthError::WrongKey,
            Mismatch::WrongSecret => wrong_secret,
        }
    }

    fn count(&self, matched: Matched<'_>, used: &CredentialUse) {
        if let Matched::Previous(previous) = matched {
            self.pair_uses.record(&self.id, &previous.label, used);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn app(extra: &str) -> Arc<App> {
        let config = Config::from_toml(
            &format!("[[apps]]\nid = \"1\"\nkey = \"278d425bdf160c739803\"\nsecret = \"7ad3773142a6692b25b8\"\n{extra}"),
            Path::new("test.toml"),
        )
        .unwrap();
        AppRegistry::from_config(&config)
            .by_id("1")
            .unwrap()
            .clone()
    }

    fn used() -> CredentialUse {
        CredentialUse::now(Via::ChannelAuth, None)
    }

    #[test]
    fn verify_auth_checks_key_and_signature() {
        let app = app("");
        let good =
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
        assert_eq!(
            app.verify_auth(Some(good), "1234.1234:private-foobar", &used()),
            Ok(())
        );
        assert_eq!(
            app.verify_auth(Some(good), "1234.1234:private-other", &used()),
            Err(AuthError::BadSignature)
        );
        let wrong_key = good.replace("278d", "0000");
        assert_eq!(
            app.verify_auth(Some(&wrong_key), "1234.1234:private-foobar", &used()),
            Err(AuthError::WrongKey)
        );
        assert_eq!(
            app.verify_auth(None, "x", &used()),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            app.verify_auth(Some("nocolon"), "x", &used()),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn a_previous_pair_is_accepted_and_counted_until_valid_until() {
        let app = app(
            "[[apps.previous_credentials]]\nkey = \"old-key\"\nsecret = \"old-secret\"\nvalid_until = \"2030-01-01T00:00:00Z\"\n",
        );
        let registry_keys: Vec<String> = app.keyring().keys().map(str::to_owned).collect();
        assert_eq!(registry_keys, ["278d425bdf160c739803", "old-key"]);
        let signed = signature::sign(b"old-secret", b"1.1:private-a");
        let inside = CredentialUse {
            now: humantime::parse_rfc3339("2029-12-31T23:59:59Z").unwrap(),
            ..used()
        };
        let after = CredentialUse {
            now: humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap(),
            ..used()
        };
        let auth = format!("old-key:{signed}");
        assert_eq!(
            app.verify_auth(Some(&auth), "1.1:private-a", &inside),
            Ok(())
        );
        assert_eq!(
            app.verify_auth(Some(&auth), "1.1:private-a", &after),
            Err(AuthError::WrongKey)
        );
        assert!(app.accepts_key("old-key", &inside));
        assert!(!app.accepts_key("old-key", &after));
        let uses = app.take_pair_uses();
        assert_eq!(uses.len(), 1);
        assert_eq!(uses[0].count, 2, "the auth and the key inside the grace");
        assert_eq!(uses[0].pair, "config old-key 2030-01-01T00:00:00Z");
        let expired = app.take_expired_uses();
        assert_eq!(expired.len(), 1, "the secret presented after its grace");
        assert_eq!((expired[0].count, expired[0].via), (1, Via::ChannelAuth));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        assert!(!format!("{:?}", app("")).contains("7ad3773142a6692b25b8"));
    }
}
