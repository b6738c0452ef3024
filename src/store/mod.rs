//! State that must outlive the process and be shared with the CLI: token revocations and
//! uses, rotated credentials with their schedule, uses of previous pairs, the messages
//! delivered per app and UTC day for `daily_messages`, the activity log (security events),
//! lockdowns, brute-force bans and the webhook journal (batches not yet delivered). One node
//! keeps it in an embedded SQLite file ([`SqliteStore`], WAL mode, so the CLI writes while
//! the server runs); a cluster (`[redis]`) keeps it on its Redis ([`RedisStore`]), the same
//! [`Store`] trait, so the nodes and the CLI share one copy ([`open`] picks).
//!
//! The server never writes per request: uses are gathered in memory and flushed, and
//! revocations are read back, every [`SYNC_INTERVAL`] (see `state::sync`).

#[cfg(test)]
pub(crate) mod contract;
mod redis;
mod sqlite;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use redis::RedisStore;
pub use sqlite::{MOST_STORED_EVENTS, SqliteStore};

use crate::activity::{ActivityEntry, EventQuery, StoredEvent};
use crate::config::Config;

/// How often the server flushes token uses and reads revocations.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(2);

/// The store `config` names: on its Redis when `[redis]` is set (shared by the cluster's
/// nodes and every CLI command run with the same file), else the SQLite file of `[store]
/// path`, made if missing.
pub fn open(config: &Config) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match &config.redis {
        Some(redis) => Arc::new(RedisStore::new(redis)?),
        None => Arc::new(SqliteStore::open(
            &config.store.path_in(&config.config_dir),
        )?),
    })
}

/// The store `config` names if it may hold anything: Redis always, the file only if it
/// exists (opening it would make one).
pub fn open_existing(config: &Config) -> Result<Option<Arc<dyn Store>>, StoreError> {
    if config.redis.is_none() && !config.store.path_in(&config.config_dir).exists() {
        return Ok(None);
    }
    open(config).map(Some)
}

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

/// Why a pair was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationReason {
    /// The pair `config.toml` named, kept when the first rotation replaced it.
    Config,
    /// The schedule (`rotation.every`).
    Scheduled,
    /// `relay keys rotate`.
    Manual,
    /// `relay keys rotate --key`: a new key as well as a new secret.
    NewKey,
}

impl RotationReason {
    /// The name kept in the store and shown by `relay keys show`.
    pub fn as_str(self) -> &'static str {
        match self {
            RotationReason::Config => "config",
            RotationReason::Scheduled => "scheduled",
            RotationReason::Manual => "manual",
            RotationReason::NewKey => "new-key",
        }
    }

    /// The reason named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [
            RotationReason::Config,
            RotationReason::Scheduled,
            RotationReason::Manual,
            RotationReason::NewKey,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == name)
    }
}

/// One key/secret pair of an app as the store keeps it. The pair with the highest
/// generation is the app's current one; the others end at their `valid_until`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPair {
    /// Its app.
    pub app_id: String,
    /// 0 for the pair `config.toml` named, then 1, 2, … in rotation order.
    pub generation: u64,
    /// The key.
    pub key: String,
    /// The secret.
    pub secret: String,
    /// When it was made (for generation 0: when it was replaced).
    pub created_at: SystemTime,
    /// When it stops working; `None` while it is current.
    pub valid_until: Option<SystemTime>,
    /// Why it was made.
    pub reason: RotationReason,
}

impl std::fmt::Debug for StoredPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredPair")
            .field("app_id", &self.app_id)
            .field("generation", &self.generation)
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("valid_until", &self.valid_until)
            .field("reason", &self.reason)
            .finish()
    }
}

/// A rotation to record: `new_key`/`new_secret` become current, the pair they replace stays
/// valid until `replaced_valid_until`.
#[derive(Debug, Clone)]
pub struct Rotation<'a> {
    /// The app.
    pub app_id: &'a str,
    /// The generation the caller saw as current (`None`: config.toml's pair). If another
    /// process rotated since, nothing is written ([`Rotated::Conflict`]).
    pub based_on: Option<u64>,
    /// The pair replaced, kept as generation 0 when it is config.toml's (`based_on` is
    /// `None`); otherwise the stored current pair is the one replaced.
    pub replaced: (&'a str, &'a str),
    /// The new key.
    pub new_key: &'a str,
    /// The new secret.
    pub new_secret: &'a str,
    /// When.
    pub at: SystemTime,
    /// When the replaced pair stops working.
    pub replaced_valid_until: SystemTime,
    /// Why.
    pub reason: RotationReason,
}

/// What became of a [`Rotation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// Recorded: the new pair has this generation.
    Done(u64),
    /// Another process rotated the app first; nothing was written.
    Conflict,
}

/// How a previous pair has been used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairUse {
    /// Its app.
    pub app_id: String,
    /// The pair's label (`generation N`, or `config KEY VALID_UNTIL`).
    pub pair: String,
    /// Uses counted.
    pub count: u64,
    /// The last one's time.
    pub last_used: SystemTime,
    /// The last one's client address, when known.
    pub last_address: Option<IpAddr>,
    /// Where the last one was presented (`HTTP API`, `channel auth`, …).
    pub last_via: String,
}

/// An app taken out of service by `auto_lockdown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockdown {
    /// The app.
    pub app_id: String,
    /// Since when.
    pub since: SystemTime,
}

/// What `relay security resolve` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// Events marked resolved.
    pub events: usize,
    /// Whether that lifted the app's lockdown (no unresolved critical event was left).
    pub lockdown_lifted: bool,
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
    /// Every app's stored pairs, by app and generation.
    fn credentials(&self) -> Result<Vec<StoredPair>, StoreError>;
    /// Records `rotation` in one transaction, unless another rotation came first.
    fn rotate(&self, rotation: &Rotation<'_>) -> Result<Rotated, StoreError>;
    /// When the app's rotation schedule started: `now` the first time it is asked, the same
    /// time ever after (so a restart does not reset the schedule).
    fn rotation_schedule_start(
        &self,
        app_id: &str,
        now: SystemTime,
    ) -> Result<SystemTime, StoreError>;
    /// When the app's rotation schedule started, if a server has started it.
    fn rotation_schedule(&self, app_id: &str) -> Result<Option<SystemTime>, StoreError>;
    /// Adds uses of previous pairs (counts added, the later one kept), in one transaction.
    fn record_pair_uses(&self, uses: &[PairUse]) -> Result<(), StoreError>;
    /// The app's previous pairs' uses so far.
    fn pair_uses(&self, app_id: &str) -> Result<Vec<PairUse>, StoreError>;
    /// Adds security events (counts added to their window's entry), keeping at most
    /// [`MOST_STORED_EVENTS`] entries, in one transaction.
    fn record_events(&self, entries: &[ActivityEntry]) -> Result<(), StoreError>;
    /// The stored events `query` asks for, newest first.
    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError>;
    /// Resolves the app's unresolved events (all, or the one with `id`), lifting its lockdown
    /// when no unresolved critical event is left.
    fn resolve_events(
        &self,
        app_id: &str,
        id: Option<u64>,
        at: SystemTime,
    ) -> Result<Resolved, StoreError>;
    /// Locks the app down if it is not and `threshold` of its critical events last seen since
    /// `since` are unresolved; whether it did (so one lockdown is announced once).
    fn lock_down_if_due(
        &self,
        app_id: &str,
        since: SystemTime,
        threshold: u64,
        at: SystemTime,
    ) -> Result<bool, StoreError>;
    /// Every app locked down.
    fn lockdowns(&self) -> Result<Vec<Lockdown>, StoreError>;
    /// Adds `counts` to the messages delivered per app and UTC day, in one transaction.
    fn record_daily_messages(&self, counts: &[DailyMessages]) -> Result<(), StoreError>;
    /// Every app's messages delivered on the UTC day `day`.
    fn daily_messages(&self, day: u64) -> Result<Vec<DailyMessages>, StoreError>;
    /// Records brute-force bans (an address's later end kept), dropping those over.
    fn record_bans(&self, bans: &[StoredBan]) -> Result<(), StoreError>;
    /// The bans in force at `now`.
    fn bans(&self, now: SystemTime) -> Result<Vec<StoredBan>, StoreError>;
    /// Keeps webhook batches accepted by `owner` (a process) until it forgets them; a batch
    /// kept again (same id) replaces the first.
    fn keep_webhooks(&self, owner: &str, batches: &[JournaledBatch]) -> Result<(), StoreError>;
    /// Forgets `owner`'s batches `ids` (delivered, or given up).
    fn forget_webhooks(&self, owner: &str, ids: &[String]) -> Result<(), StoreError>;
    /// Renews `owner`'s lease on its batches for `lease` from now, and takes over the
    /// batches of every other owner whose lease has run out (it died): they become
    /// `owner`'s, and are returned, each to one claimer only.
    fn claim_webhooks(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<JournaledBatch>, StoreError>;
}

/// A webhook batch accepted for delivery and not yet delivered or given up, as the journal
/// keeps it (so a crashed process's batches are delivered by another, with the same id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JournaledBatch {
    /// The app.
    pub app_id: String,
    /// Which of the app's `[[apps.webhooks]]` (its place in the file).
    pub endpoint: usize,
    /// The batch's id (`X-Relay-Webhook-Id`).
    pub id: String,
    /// Its serialized events.
    pub events: Vec<String>,
    /// The channels they are about.
    pub channels: Vec<String>,
    /// When it was accepted, in ms since the Unix epoch (0: unknown).
    #[serde(default)]
    pub accepted_ms: u64,
}

/// A brute-force ban a node made, kept so every node (and a restarted one) enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBan {
    /// The app the address is banned from.
    pub app_id: String,
    /// The address (an IPv6 /64 as its first address).
    pub address: IpAddr,
    /// When the ban ends.
    pub until: SystemTime,
}

/// Messages delivered to an app's subscribers on one UTC day (one per subscriber reached).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyMessages {
    /// The app.
    pub app_id: String,
    /// The UTC day: days since 1970-01-01.
    pub day: u64,
    /// Messages delivered.
    pub count: u64,
}
