//! The state store on the cluster's Redis (`[redis]`), so that every node and every CLI
//! command run against it share one copy: a `relay token revoke` reaches all nodes at their
//! next sync, a lockdown is taken once for the cluster, and a scheduled rotation is made by
//! one node (the others meet a conflict and adopt it).
//!
//! The [`Store`] trait is synchronous (the server calls it on tokio's blocking pool, the CLI
//! directly), so this uses the redis crate's blocking connection: one, reconnected after any
//! error, each command bounded by [`COMMAND_TIMEOUT`]. What must happen in one step (adding
//! uses, a rotation, the activity log's merge, prune, resolve and lockdown) is a Lua script
//! (the `*.lua` files beside this one), so nodes writing at once never lose a count or both
//! rotate. Values are JSON; Lua's cjson reads and writes them as doubles, exact for the
//! millisecond times and counts kept here (below 2^53).
//!
//! Keys, under `P:store:` (`P` is `[redis] prefix`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `revoked` | hash | `[app, token]` → when revoked (ms) |
//! | `token-uses`, `pair-uses` | hash | `[app, name]` → `[count, last_ms, address, via]` |
//! | `pairs` | hash | `[app, generation]` → the stored pair |
//! | `generations` | hash | app → its current generation |
//! | `schedules` | hash | app → when its rotation schedule started (ms) |
//! | `daily:D` | hash (expiring) | app → messages delivered on UTC day `D` |
//! | `events:A`, `event-keys:A` | hash | app `A`'s activity log: id → event; `kind\|address\|window` → id |
//! | `event-apps`, `event-seq`, `event-count` | set, strings | apps with events; the last id; events kept |
//! | `lockdowns` | hash | app → since when (ms) |
//! | `bans` | sorted set | `[app, address]` → when the ban ends (ms) |
//! | `webhooks:O`, `webhook-lease:O`, `webhook-owners` | hash, string (expiring), set | owner `O`'s undelivered webhook batches (id → batch); its lease; the owners |
//!
//! The scripts build the per-app names themselves, which a single Redis allows (as the
//! adapter's do); Redis Cluster would need hash tags.

mod activity;
mod bans;
mod journal;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis::{self, Connection, RedisResult, Script};
use serde::{Deserialize, Serialize};

use super::{
    DailyMessages, JournaledBatch, Lockdown, PairUse, Resolved, RevokedToken, Rotated, Rotation,
    RotationReason, Store, StoreError, StoredBan, StoredPair, TokenUse,
};
use crate::activity::{ActivityEntry, EventQuery, StoredEvent};
use crate::config::RedisConfig;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one command may take to answer (a prune of a full activity log included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a day's message counts are kept (the quota reads only today's).
const DAILY_COUNTS_KEPT: Duration = Duration::from_secs(3 * 24 * 3600);

/// The store on one Redis.
pub struct RedisStore {
    client: redis::Client,
    /// Where, for errors and logs: host and port, never the password.
    address: String,
    /// `P:store:`.
    base: String,
    connection: Mutex<Option<Connection>>,
    scripts: Scripts,
}

struct Scripts {
    merge_uses: Script,
    rotate: Script,
    record_events: Script,
    resolve_events: Script,
    lock_down_if_due: Script,
    claim_webhooks: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.address)
            .finish()
    }
}

/// A stored pair as JSON (times in ms).
#[derive(Serialize, Deserialize)]
struct PairRecord {
    app_id: String,
    generation: u64,
    key: String,
    secret: String,
    created_at: f64,
    valid_until: Option<f64>,
    reason: String,
}

impl RedisStore {
    /// The store on `config`'s Redis; connects at the first call (so a node starts while Redis
    /// is away, and every call says so until it is back).
    pub fn new(config: &RedisConfig) -> Result<Self, StoreError> {
        let address = config.display_address();
        let client = redis::Client::open(config.url.as_str()).map_err(|_| StoreError {
            path: format!("redis {address}"),
            reason: "unusable [redis] url".to_owned(),
        })?;
        Ok(RedisStore {
            client,
            address,
            base: format!("{}:store:", config.prefix.as_str()),
            connection: Mutex::new(None),
            scripts: Scripts {
                merge_uses: Script::new(include_str!("redis/merge_uses.lua")),
                rotate: Script::new(include_str!("redis/rotate.lua")),
                record_events: Script::new(include_str!("redis/record_events.lua")),
                resolve_events: Script::new(include_str!("redis/resolve_events.lua")),
                lock_down_if_due: Script::new(include_str!("redis/lock_down_if_due.lua")),
                claim_webhooks: Script::new(include_str!("redis/claim_webhooks.lua")),
            },
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.base)
    }

    /// Runs `run` on the connection, connecting first when there is none; after an error the
    /// connection is dropped, so the next call starts on a fresh one.
    fn with<T>(
        &self,
        run: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut slot = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let connection = match slot.as_mut() {
            Some(connection) => connection,
            None => slot.insert(self.connect().map_err(|error| self.error(&error))?),
        };
        run(connection).map_err(|error| {
            *slot = None;
            self.error(&error)
        })
    }

    fn connect(&self) -> RedisResult<Connection> {
        let connection = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        connection.set_read_timeout(Some(COMMAND_TIMEOUT))?;
        connection.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(connection)
    }

    fn error(&self, error: &redis::RedisError) -> StoreError {
        StoreError {
            path: format!("redis {}", self.address),
            reason: error.to_string(),
        }
    }

    fn bad_value(&self, what: &str) -> StoreError {
        StoreError {
            path: format!("redis {}", self.address),
            reason: format!("unreadable {what}"),
        }
    }

    /// Adds `uses` to the hash `name`: (app, name, count, last used, address, via).
    fn merge_uses<'a>(
        &self,
        name: &str,
        uses: impl Iterator<Item = (&'a str, &'a str, u64, SystemTime, Option<IpAddr>, &'a str)>,
    ) -> Result<(), StoreError> {
        let mut invocation = self.scripts.merge_uses.key(self.key(name));
        let mut any = false;
        for (app_id, item, count, last_used, address, via) in uses {
            any = true;
            let address = address
                .map(|address| address.to_string())
                .unwrap_or_default();
            invocation
                .arg(field(app_id, item))
                .arg(count)
                .arg(millis(last_used))
                .arg(address)
                .arg(via);
        }
        if !any {
            return Ok(());
        }
        self.with(|connection| invocation.invoke::<i64>(connection))
            .map(drop)
    }

    /// The app's entries of the uses hash `name`: (name, count, last used, address, via).
    fn uses_of(&self, name: &str, app_id: &str) -> Result<Vec<StoredUse>, StoreError> {
        let all: Vec<(String, String)> =
            self.with(|connection| redis::cmd("HGETALL").arg(self.key(name)).query(connection))?;
        let mut found = Vec::new();
        for (field, value) in all {
            let (app, item): (String, String) =
                serde_json::from_str(&field).map_err(|_| self.bad_value("use"))?;
            if app != app_id {
                continue;
            }
            let (count, last, address, via): (f64, f64, String, String) =
                serde_json::from_str(&value).map_err(|_| self.bad_value("use"))?;
            found.push(StoredUse {
                name: item,
                count: count as u64,
                last_used: time(last),
                last_address: address.parse().ok(),
                via,
            });
        }
        Ok(found)
    }
}

/// One entry of a uses hash.
struct StoredUse {
    name: String,
    count: u64,
    last_used: SystemTime,
    last_address: Option<IpAddr>,
    via: String,
}

impl Store for RedisStore {
    fn revoke_token(&self, app_id: &str, name: &str, at: SystemTime) -> Result<bool, StoreError> {
        self.with(|connection| {
            redis::cmd("HSETNX")
                .arg(self.key("revoked"))
                .arg(field(app_id, name))
                .arg(millis(at))
                .query(connection)
        })
    }

    fn revoked_tokens(&self) -> Result<Vec<RevokedToken>, StoreError> {
        let fields: Vec<String> = self.with(|connection| {
            redis::cmd("HKEYS")
                .arg(self.key("revoked"))
                .query(connection)
        })?;
        fields
            .iter()
            .map(|field| {
                let (app_id, name) =
                    serde_json::from_str(field).map_err(|_| self.bad_value("revocation"))?;
                Ok(RevokedToken { app_id, name })
            })
            .collect()
    }

    fn record_token_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        self.merge_uses(
            "token-uses",
            uses.iter().map(|token| {
                let (app, name) = (token.app_id.as_str(), token.name.as_str());
                (
                    app,
                    name,
                    token.count,
                    token.last_used,
                    token.last_address,
                    "",
                )
            }),
        )
    }

    fn token_uses(&self, app_id: &str) -> Result<Vec<TokenUse>, StoreError> {
        Ok(self
            .uses_of("token-uses", app_id)?
            .into_iter()
            .map(|stored| TokenUse {
                app_id: app_id.to_owned(),
                name: stored.name,
                count: stored.count,
                last_used: stored.last_used,
                last_address: stored.last_address,
            })
            .collect())
    }

    fn credentials(&self) -> Result<Vec<StoredPair>, StoreError> {
        let values: Vec<String> =
            self.with(|connection| redis::cmd("HVALS").arg(self.key("pairs")).query(connection))?;
        let mut pairs = values
            .iter()
            .map(|value| {
                let record: PairRecord =
                    serde_json::from_str(value).map_err(|_| self.bad_value("pair"))?;
                Ok(StoredPair {
                    app_id: record.app_id,
                    generation: record.generation,
                    key: record.key,
                    secret: record.secret,
                    created_at: time(record.created_at),
                    valid_until: record.valid_until.map(time),
                    // Only this module writes it; an unknown value is a manual one.
                    reason: RotationReason::parse(&record.reason).unwrap_or(RotationReason::Manual),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        pairs.sort_by(|a, b| (&a.app_id, a.generation).cmp(&(&b.app_id, b.generation)));
        Ok(pairs)
    }

    fn rotate(&self, rotation: &Rotation<'_>) -> Result<Rotated, StoreError> {
        let app_id = rotation.app_id;
        let next = rotation.based_on.map_or(1, |generation| generation + 1);
        let replaced_generation = rotation.based_on.unwrap_or(0);
        let (config_key, config_secret) = rotation.replaced;
        let config_pair = PairRecord {
            app_id: app_id.to_owned(),
            generation: 0,
            key: config_key.to_owned(),
            secret: config_secret.to_owned(),
            created_at: millis(rotation.at) as f64,
            valid_until: Some(millis(rotation.replaced_valid_until) as f64),
            reason: RotationReason::Config.as_str().to_owned(),
        };
        let new_pair = PairRecord {
            app_id: app_id.to_owned(),
            generation: next,
            key: rotation.new_key.to_owned(),
            secret: rotation.new_secret.to_owned(),
            created_at: millis(rotation.at) as f64,
            valid_until: None,
            reason: rotation.reason.as_str().to_owned(),
        };
        let mut invocation = self.scripts.rotate.key(self.key("pairs"));
        invocation
            .key(self.key("generations"))
            .arg(app_id)
            .arg(rotation.based_on.map(|g| g.to_string()).unwrap_or_default())
            .arg(generation_field(app_id, replaced_generation))
            .arg(json(&config_pair))
            .arg(millis(rotation.replaced_valid_until))
            .arg(generation_field(app_id, next))
            .arg(json(&new_pair))
            .arg(next);
        let done: i64 = self.with(|connection| invocation.invoke(connection))?;
        Ok(if done == 1 {
            Rotated::Done(next)
        } else {
            Rotated::Conflict
        })
    }

    fn rotation_schedule_start(
        &self,
        app_id: &str,
        now: SystemTime,
    ) -> Result<SystemTime, StoreError> {
        let started: u64 = self.with(|connection| {
            let key = self.key("schedules");
            redis::pipe()
                .atomic()
                .cmd("HSETNX")
                .arg(&key)
                .arg(app_id)
                .arg(millis(now))
                .ignore()
                .cmd("HGET")
                .arg(&key)
                .arg(app_id)
                .query::<(u64,)>(connection)
                .map(|(started,)| started)
        })?;
        Ok(time(started as f64))
    }

    fn rotation_schedule(&self, app_id: &str) -> Result<Option<SystemTime>, StoreError> {
        let started: Option<u64> = self.with(|connection| {
            redis::cmd("HGET")
                .arg(self.key("schedules"))
                .arg(app_id)
                .query(connection)
        })?;
        Ok(started.map(|ms| time(ms as f64)))
    }

    fn record_pair_uses(&self, uses: &[PairUse]) -> Result<(), StoreError> {
        self.merge_uses(
            "pair-uses",
            uses.iter().map(|pair| {
                let (app, name, via) = (&*pair.app_id, &*pair.pair, &*pair.last_via);
                (
                    app,
                    name,
                    pair.count,
                    pair.last_used,
                    pair.last_address,
                    via,
                )
            }),
        )
    }

    fn pair_uses(&self, app_id: &str) -> Result<Vec<PairUse>, StoreError> {
        Ok(self
            .uses_of("pair-uses", app_id)?
            .into_iter()
            .map(|stored| PairUse {
                app_id: app_id.to_owned(),
                pair: stored.name,
                count: stored.count,
                last_used: stored.last_used,
                last_address: stored.last_address,
                last_via: stored.via,
            })
            .collect())
    }

    fn record_events(&self, entries: &[ActivityEntry]) -> Result<(), StoreError> {
        activity::record(self, entries)
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        activity::events(self, query)
    }

    fn resolve_events(
        &self,
        app_id: &str,
        id: Option<u64>,
        at: SystemTime,
    ) -> Result<Resolved, StoreError> {
        activity::resolve(self, app_id, id, at)
    }

    fn lock_down_if_due(
        &self,
        app_id: &str,
        since: SystemTime,
        threshold: u64,
        at: SystemTime,
    ) -> Result<bool, StoreError> {
        activity::lock_down_if_due(self, app_id, since, threshold, at)
    }

    fn lockdowns(&self) -> Result<Vec<Lockdown>, StoreError> {
        let all: Vec<(String, u64)> = self.with(|connection| {
            redis::cmd("HGETALL")
                .arg(self.key("lockdowns"))
                .query(connection)
        })?;
        Ok(all
            .into_iter()
            .map(|(app_id, since)| Lockdown {
                app_id,
                since: time(since as f64),
            })
            .collect())
    }

    fn record_daily_messages(&self, counts: &[DailyMessages]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for daily in counts {
            let key = self.key(&format!("daily:{}", daily.day));
            pipe.cmd("HINCRBY")
                .arg(&key)
                .arg(&daily.app_id)
                .arg(i64::try_from(daily.count).unwrap_or(i64::MAX))
                .ignore();
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg(DAILY_COUNTS_KEPT.as_secs())
                .ignore();
        }
        self.with(|connection| pipe.query::<()>(connection))
    }

    fn daily_messages(&self, day: u64) -> Result<Vec<DailyMessages>, StoreError> {
        let all: Vec<(String, u64)> = self.with(|connection| {
            redis::cmd("HGETALL")
                .arg(self.key(&format!("daily:{day}")))
                .query(connection)
        })?;
        Ok(all
            .into_iter()
            .map(|(app_id, count)| DailyMessages { app_id, day, count })
            .collect())
    }

    fn record_bans(&self, bans: &[StoredBan]) -> Result<(), StoreError> {
        bans::record(self, bans)
    }

    fn bans(&self, now: SystemTime) -> Result<Vec<StoredBan>, StoreError> {
        bans::bans(self, now)
    }

    fn keep_webhooks(&self, owner: &str, batches: &[JournaledBatch]) -> Result<(), StoreError> {
        journal::keep_webhooks(self, owner, batches)
    }

    fn forget_webhooks(&self, owner: &str, ids: &[String]) -> Result<(), StoreError> {
        journal::forget_webhooks(self, owner, ids)
    }

    fn claim_webhooks(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<JournaledBatch>, StoreError> {
        journal::claim_webhooks(self, owner, lease)
    }
}

/// The hash field of an app's item: `[app, item]` as JSON, unambiguous whatever they hold.
fn field(app_id: &str, item: &str) -> String {
    json(&(app_id, item))
}

/// The hash field of an app's pair.
fn generation_field(app_id: &str, generation: u64) -> String {
    json(&(app_id, generation))
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

/// The time a number of milliseconds (as JSON or cjson wrote it) stands for.
fn time(ms: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(if ms > 0.0 { ms as u64 } else { 0 })
}

#[cfg(test)]
mod tests;
