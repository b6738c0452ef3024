//! `[[apps.tokens]]`: an app's API tokens, each stored only as the SHA-256 of the token, with
//! its scopes and expiry. Parsed while the file is read, so a mistake is reported with its
//! line; what a token may do is the `guard`'s.

use std::time::SystemTime;

use serde::Deserialize;

use super::ConfigString;

/// One `[[apps.tokens]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// A name for people (`relay token revoke --name`, the logs).
    pub name: String,
    /// `sha256:<hex of the whole token>`.
    pub hash: TokenHash,
    /// What it may do; absent or empty: everything.
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// When it stops working (RFC 3339, UTC), if ever.
    #[serde(default)]
    pub expires_at: Option<Rfc3339>,
}

/// A token's SHA-256, the only form in which tokens are kept.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "ConfigString")]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl TryFrom<ConfigString> for TokenHash {
    type Error = String;

    fn try_from(text: ConfigString) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        text.as_str()
            .strip_prefix("sha256:")
            .and_then(|digits| hex::decode_to_slice(digits, &mut bytes).ok())
            .map(|()| TokenHash(bytes))
            .ok_or_else(|| {
                "token hash must be sha256: and 64 hex digits (of the whole token)".to_owned()
            })
    }
}

/// What a token may do. Some guard endpoints that arrive later; they are accepted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum Scope {
    /// `POST /apps/{id}/events`.
    #[serde(rename = "events:publish")]
    EventsPublish,
    /// `POST /apps/{id}/batch_events`.
    #[serde(rename = "events:batch")]
    EventsBatch,
    /// `GET /apps/{id}/channels` and `GET /apps/{id}/channels/{name}`.
    #[serde(rename = "channels:read")]
    ChannelsRead,
    /// `GET /apps/{id}/channels/{name}/users`.
    #[serde(rename = "presence:read")]
    PresenceRead,
    /// Reading connections (an endpoint that arrives later).
    #[serde(rename = "connections:read")]
    ConnectionsRead,
    /// `POST …/users/{id}/terminate_connections`.
    #[serde(rename = "connections:manage")]
    ConnectionsManage,
    /// Managing webhooks (later).
    #[serde(rename = "webhooks:manage")]
    WebhooksManage,
    /// Managing encryption keys (later).
    #[serde(rename = "encryption:manage")]
    EncryptionManage,
    /// Managing channel schemas (later).
    #[serde(rename = "schemas:manage")]
    SchemasManage,
    /// `GET /apps/{id}/activity` (the activity log), and analytics to come.
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 10] = [
        Scope::EventsPublish,
        Scope::EventsBatch,
        Scope::ChannelsRead,
        Scope::PresenceRead,
        Scope::ConnectionsRead,
        Scope::ConnectionsManage,
        Scope::WebhooksManage,
        Scope::EncryptionManage,
        Scope::SchemasManage,
        Scope::AnalyticsRead,
    ];

    /// The scope named `name`.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == name)
    }

    /// The name used in `config.toml` and in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsPublish => "events:publish",
            Scope::EventsBatch => "events:batch",
            Scope::ChannelsRead => "channels:read",
            Scope::PresenceRead => "presence:read",
            Scope::ConnectionsRead => "connections:read",
            Scope::ConnectionsManage => "connections:manage",
            Scope::WebhooksManage => "webhooks:manage",
            Scope::EncryptionManage => "encryption:manage",
            Scope::SchemasManage => "schemas:manage",
            Scope::AnalyticsRead => "analytics:read",
        }
    }
}

/// An RFC 3339 time in UTC (`2026-12-31T00:00:00Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Rfc3339(pub SystemTime);

impl TryFrom<String> for Rfc3339 {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        humantime::parse_rfc3339(&text)
            .map(Rfc3339)
            .map_err(|_| format!("{text:?} is not an RFC 3339 UTC time like 2026-12-31T00:00:00Z"))
    }
}
