//! State that must outlive the process and be shared with the CLI: token revocations and
//! token use (later generated credentials, security events, bans and lockdowns). One node
//! keeps it in an embedded SQLite file ([`SqliteStore`], WAL mode, so the CLI writes while
//! the server runs); the Redis scale-out implements the same [`Store`] trait.
//!
//! The server never writes per request: uses are gathered in memory and flushed, and
//! revocations are read back, every [`SYNC_INTERVAL`] (see `state::sync`).

mod sqlite;

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

pub use sqlite::SqliteStore;

/// How often the server flushes token uses and reads revocations.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// Why the store could not be used.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {reason}")]
pub struct StoreError {
    path: String,
    reason: String,
}

/// A token taken out of service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    /// Its app.
    pub app_id: String,
    /// Its name in `[[apps.tokens]]`.
    pub name: String,
}

/// How a token has been used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    /// Its app.
    pub app_id: String,
    /// Its name.
    pub name: String,
    /// Requests it authenticated.
    pub count: u64,
    /// The last one's time.
    pub last_used: SystemTime,
    /// The last one's client address.
    pub last_address: Option<IpAddr>,
}

/// The state store.
pub trait Store: Send + Sync {
    /// Revokes the app's token `name`; `false` if it already was.
    fn revoke_token(&self, app_id: &str, name: &str, at: SystemTime) -> Result<bool, StoreError>;
    /// Every revoked token.
    fn revoked_tokens(&self) -> Result<Vec<RevokedToken>, StoreError>;
    /// Adds `uses` (counts added, the later time and its address kept), in one transaction.
    fn record_token_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError>;
    /// The app's tokens' uses so far.
    fn token_uses(&self, app_id: &str) -> Result<Vec<TokenUse>, StoreError>;
}
