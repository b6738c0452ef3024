//! The state store in an embedded SQLite file: WAL mode (readers never wait for the writer,
//! and the server and the CLI may write at once, each waiting up to [`BUSY_TIMEOUT`] for the
//! other), every write one transaction, so a `kill -9` loses at most the last unflushed uses.
//! The file holds rotated secrets, so a new one is made readable by its owner only.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod activity;

use rusqlite::{Connection, params};

use rusqlite::{OptionalExtension, TransactionBehavior};

use crate::activity::{ActivityEntry, EventQuery, StoredEvent};

pub use activity::MOST_STORED_EVENTS;

use super::{
    DailyMessages, JournaledBatch, Lockdown, PairUse, Resolved, RevokedToken, Rotated, Rotation,
    RotationReason, Store, StoreError, StoredBan, StoredPair, TokenUse,
};

/// How long a write waits for another process's write.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The tables, created when missing.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS token_revocations (
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    revoked_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, name)
);
CREATE TABLE IF NOT EXISTS token_uses (
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    last_address TEXT,
    PRIMARY KEY (app_id, name)
);
CREATE TABLE IF NOT EXISTS credentials (
    app_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    key TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    valid_until_ms INTEGER,
    reason TEXT NOT NULL,
    PRIMARY KEY (app_id, generation)
);
CREATE TABLE IF NOT EXISTS rotation_schedules (
    app_id TEXT PRIMARY KEY,
    started_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pair_uses (
    app_id TEXT NOT NULL,
    pair TEXT NOT NULL,
    count INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    last_address TEXT,
    last_via TEXT NOT NULL,
    PRIMARY KEY (app_id, pair)
);
CREATE TABLE IF NOT EXISTS bans (
    app_id TEXT NOT NULL,
    address TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, address)
);
CREATE TABLE IF NOT EXISTS webhook_journal (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    batch TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS webhook_leases (
    owner TEXT PRIMARY KEY,
    until_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS daily_messages (
    app_id TEXT NOT NULL,
    utc_day INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (app_id, utc_day)
);
";

/// A SQLite state store.
pub struct SqliteStore {
    path: String,
    connection: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let error = |reason: rusqlite::Error| StoreError {
            path: shown.clone(),
            reason: reason.to_string(),
        };
        let is_new = !path.exists();
        let connection = Connection::open(path).map_err(error)?;
        if is_new {
            owner_only(path).map_err(|reason| StoreError {
                path: shown.clone(),
                reason: format!("cannot make it readable by its owner only: {reason}"),
            })?;
        }
        connection.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
        use_wal(&connection).map_err(error)?;
        connection.execute_batch(SCHEMA).map_err(error)?;
        connection.execute_batch(activity::SCHEMA).map_err(error)?;
        Ok(SqliteStore {
            path: shown,
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        run: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        run(&mut connection).map_err(|reason| StoreError {
            path: self.path.clone(),
            reason: reason.to_string(),
        })
    }
}

impl Store for SqliteStore {
    fn revoke_token(&self, app_id: &str, name: &str, at: SystemTime) -> Result<bool, StoreError> {
        self.with(|connection| {
            let inserted = connection.execute(
                "INSERT OR IGNORE INTO token_revocations (app_id, name, revoked_at_ms) VALUES (?1, ?2, ?3)",
                params![app_id, name, millis(at)],
            )?;
            Ok(inserted == 1)
        })
    }

    fn revoked_tokens(&self) -> Result<Vec<RevokedToken>, StoreError> {
        self.with(|connection| {
            let mut query = connection.prepare("SELECT app_id, name FROM token_revocations")?;
            let rows = query.query_map([], |row| {
                Ok(RevokedToken {
                    app_id: row.get(0)?,
                    name: row.get(1)?,
                })
            })?;
            rows.collect()
        })
    }

    fn record_token_uses(&self, uses: &[TokenUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.with(|connection| {
            let transaction = connection.transaction()?;
            for token in uses {
                let address = token.last_address.map(|address| address.to_string());
                transaction.execute(
                    "INSERT INTO token_uses (app_id, name, count, last_used_ms, last_address)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (app_id, name) DO UPDATE SET
                         count = count + excluded.count,
                         last_address = CASE WHEN excluded.last_used_ms >= last_used_ms
                             THEN excluded.last_address ELSE last_address END,
                         last_used_ms = MAX(last_used_ms, excluded.last_used_ms)",
                    params![
                        token.app_id,
                        token.name,
                        token.count as i64,
                        millis(token.last_used),
                        address
                    ],
                )?;
            }
            transaction.commit()
        })
    }

    fn token_uses(&self, app_id: &str) -> Result<Vec<TokenUse>, StoreError> {
        self.with(|connection| {
            let mut query = connection.prepare(
                "SELECT name, count, last_used_ms, last_address FROM token_uses WHERE app_id = ?1",
            )?;
            let rows = query.query_map([app_id], |row| {
                let address: Option<String> = row.get(3)?;
                Ok(TokenUse {
                    app_id: app_id.to_owned(),
                    name: row.get(0)?,
                    count: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    last_used: time(row.get(2)?),
                    last_address: address.and_then(|text| text.parse::<IpAddr>().ok()),
                })
            })?;
            rows.collect()
        })
    }

    fn credentials(&self) -> Result<Vec<StoredPair>, StoreError> {
        self.with(|connection| {
            let mut query = connection.prepare(
                "SELECT app_id, generation, key, secret, created_at_ms, valid_until_ms, reason
                 FROM credentials ORDER BY app_id, generation",
            )?;
            let rows = query.query_map([], |row| {
                let reason: String = row.get(6)?;
                Ok(StoredPair {
                    app_id: row.get(0)?,
                    generation: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    key: row.get(2)?,
                    secret: row.get(3)?,
                    created_at: time(row.get(4)?),
                    valid_until: row.get::<_, Option<i64>>(5)?.map(time),
                    // Only this module writes the column; an unknown value is a manual one.
                    reason: RotationReason::parse(&reason).unwrap_or(RotationReason::Manual),
                })
            })?;
            rows.collect()
        })
    }

    fn rotate(&self, rotation: &Rotation<'_>) -> Result<Rotated, StoreError> {
        self.with(|connection| {
            // Immediate: the write lock is taken before the current generation is read, so two
            // processes rotating at once cannot both base a rotation on it.
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let current: Option<i64> = transaction.query_row(
                "SELECT MAX(generation) FROM credentials WHERE app_id = ?1",
                [rotation.app_id],
                |row| row.get(0),
            )?;
            let current = current.and_then(|generation| u64::try_from(generation).ok());
            if current != rotation.based_on {
                return Ok(Rotated::Conflict);
            }
            let replaced_until = millis(rotation.replaced_valid_until);
            let next = match current {
                None => {
                    let (key, secret) = rotation.replaced;
                    transaction.execute(
                        "INSERT INTO credentials VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            rotation.app_id,
                            key,
                            secret,
                            millis(rotation.at),
                            replaced_until,
                            RotationReason::Config.as_str()
                        ],
                    )?;
                    1
                }
                Some(generation) => {
                    transaction.execute(
                        "UPDATE credentials SET valid_until_ms = ?3
                         WHERE app_id = ?1 AND generation = ?2",
                        params![rotation.app_id, generation as i64, replaced_until],
                    )?;
                    generation + 1
                }
            };
            transaction.execute(
                "INSERT INTO credentials VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6)",
                params![
                    rotation.app_id,
                    next as i64,
                    rotation.new_key,
                    rotation.new_secret,
                    millis(rotation.at),
                    rotation.reason.as_str()
                ],
            )?;
            transaction.commit()?;
            Ok(Rotated::Done(next))
        })
    }

    fn rotation_schedule_start(
        &self,
        app_id: &str,
        now: SystemTime,
    ) -> Result<SystemTime, StoreError> {
        self.with(|connection| {
            connection.execute(
                "INSERT OR IGNORE INTO rotation_schedules (app_id, started_at_ms) VALUES (?1, ?2)",
                params![app_id, millis(now)],
            )?;
            Ok(schedule_start(connection, app_id)?.unwrap_or(now))
        })
    }

    fn rotation_schedule(&self, app_id: &str) -> Result<Option<SystemTime>, StoreError> {
        self.with(|connection| schedule_start(connection, app_id))
    }

    fn record_pair_uses(&self, uses: &[PairUse]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        self.with(|connection| {
            let transaction = connection.transaction()?;
            for pair in uses {
                let address = pair.last_address.map(|address| address.to_string());
                transaction.execute(
                    "INSERT INTO pair_uses (app_id, pair, count, last_used_ms, last_address, last_via)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (app_id, pair) DO UPDATE SET
                         count = count + excluded.count,
                         last_address = CASE WHEN excluded.last_used_ms >= last_used_ms
                             THEN excluded.last_address ELSE last_address END,
                         last_via = CASE WHEN excluded.last_used_ms >= last_used_ms
                             THEN excluded.last_via ELSE last_via END,
                         last_used_ms = MAX(last_used_ms, excluded.last_used_ms)",
                    params![
                        pair.app_id,
                        pair.pair,
                        pair.count as i64,
                        millis(pair.last_used),
                        address,
                        pair.last_via
                    ],
                )?;
            }
            transaction.commit()
        })
    }

    fn pair_uses(&self, app_id: &str) -> Result<Vec<PairUse>, StoreError> {
        self.with(|connection| {
            let mut query = connection.prepare(
                "SELECT pair, count, last_used_ms, last_address, last_via FROM pair_uses
                 WHERE app_id = ?1",
            )?;
            let rows = query.query_map([app_id], |row| {
                let address: Option<String> = row.get(3)?;
                Ok(PairUse {
                    app_id: app_id.to_owned(),
                    pair: row.get(0)?,
                    count: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                    last_used: time(row.get(2)?),
                    last_address: address.and_then(|text| text.parse::<IpAddr>().ok()),
                    last_via: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    fn record_events(&self, entries: &[ActivityEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.with(|connection| activity::record(connection, entries))
    }

    fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        self.with(|connection| activity::events(connection, query))
    }

    fn resolve_events(
        &self,
        app_id: &str,
        id: Option<u64>,
        at: SystemTime,
    ) -> Result<Resolved, StoreError> {
        self.with(|connection| activity::resolve(connection, app_id, id, at))
    }

    fn lock_down_if_due(
        &self,
        app_id: &str,
        since: SystemTime,
        threshold: u64,
        at: SystemTime,
    ) -> Result<bool, StoreError> {
        self.with(|connection| activity::lock_down_if_due(connection, app_id, since, threshold, at))
    }

    fn lockdowns(&self) -> Result<Vec<Lockdown>, StoreError> {
        self.with(|connection| activity::lockdowns(connection))
    }

    fn record_daily_messages(&self, counts: &[DailyMessages]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        self.with(|connection| {
            let transaction = connection.transaction()?;
            for daily in counts {
                transaction.execute(
                    "INSERT INTO daily_messages (app_id, utc_day, count) VALUES (?1, ?2, ?3)
                     ON CONFLICT (app_id, utc_day) DO UPDATE SET count = count + excluded.count",
                    params![
                        daily.app_id,
                        i64::try_from(daily.day).unwrap_or(i64::MAX),
                        i64::try_from(daily.count).unwrap_or(i64::MAX)
                    ],
                )?;
            }
            transaction.commit()
        })
    }

    fn daily_messages(&self, day: u64) -> Result<Vec<DailyMessages>, StoreError> {
        self.with(|connection| {
            let mut query = connection
                .prepare("SELECT app_id, count FROM daily_messages WHERE utc_day = ?1")?;
            let rows = query.query_map([i64::try_from(day).unwrap_or(i64::MAX)], |row| {
                Ok(DailyMessages {
                    app_id: row.get(0)?,
                    day,
                    count: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                })
            })?;
            rows.collect()
        })
    }

    fn record_bans(&self, bans: &[StoredBan]) -> Result<(), StoreError> {
        if bans.is_empty() {
            return Ok(());
        }
        let now = millis(SystemTime::now());
        self.with(|connection| {
            let transaction = connection.transaction()?;
            for ban in bans {
                transaction.execute(
                    "INSERT INTO bans (app_id, address, until_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT (app_id, address) DO UPDATE SET
                         until_ms = MAX(until_ms, excluded.until_ms)",
                    params![ban.app_id, ban.address.to_string(), millis(ban.until)],
                )?;
            }
            transaction.execute("DELETE FROM bans WHERE until_ms <= ?1", params![now])?;
            transaction.commit()
        })
    }

    fn bans(&self, now: SystemTime) -> Result<Vec<StoredBan>, StoreError> {
        self.with(|connection| {
            let mut query = connection
                .prepare("SELECT app_id, address, until_ms FROM bans WHERE until_ms > ?1")?;
            let rows = query.query_map([millis(now)], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get(2)?,
                ))
            })?;
            let mut bans = Vec::new();
            for row in rows {
                let (app_id, address, until) = row?;
                if let Ok(address) = address.parse() {
                    bans.push(StoredBan {
                        app_id,
                        address,
                        until: time(until),
                    });
                }
            }
            Ok(bans)
        })
    }

    fn keep_webhooks(&self, owner: &str, batches: &[JournaledBatch]) -> Result<(), StoreError> {
        if batches.is_empty() {
            return Ok(());
        }
        self.with(|connection| {
            let transaction = connection.transaction()?;
            for batch in batches {
                let text = serde_json::to_string(batch).unwrap_or_default();
                transaction.execute(
                    "INSERT INTO webhook_journal (id, owner, batch) VALUES (?1, ?2, ?3)
                     ON CONFLICT (id) DO UPDATE SET owner = excluded.owner, batch = excluded.batch",
                    params![batch.id, owner, text],
                )?;
            }
            transaction.commit()
        })
    }

    fn forget_webhooks(&self, owner: &str, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.with(|connection| {
            let transaction = connection.transaction()?;
            for id in ids {
                transaction.execute(
                    "DELETE FROM webhook_journal WHERE id = ?1 AND owner = ?2",
                    params![id, owner],
                )?;
            }
            transaction.commit()
        })
    }

    fn claim_webhooks(
        &self,
        owner: &str,
        lease: Duration,
    ) -> Result<Vec<JournaledBatch>, StoreError> {
        let now = SystemTime::now();
        self.with(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            transaction.execute(
                "INSERT INTO webhook_leases (owner, until_ms) VALUES (?1, ?2)
                 ON CONFLICT (owner) DO UPDATE SET until_ms = excluded.until_ms",
                params![owner, millis(now + lease)],
            )?;
            // Batches of an owner with no live lease (it died, or kept them before leases).
            let orphaned = "owner != ?1 AND owner NOT IN
                (SELECT owner FROM webhook_leases WHERE until_ms > ?2)";
            let mut claimed = Vec::new();
            {
                let mut query = transaction.prepare(&format!(
                    "SELECT batch FROM webhook_journal WHERE {orphaned}"
                ))?;
                let rows =
                    query.query_map(params![owner, millis(now)], |row| row.get::<_, String>(0))?;
                for row in rows {
                    if let Ok(batch) = serde_json::from_str(&row?) {
                        claimed.push(batch);
                    }
                }
            }
            transaction.execute(
                &format!("UPDATE webhook_journal SET owner = ?1 WHERE {orphaned}"),
                params![owner, millis(now)],
            )?;
            transaction.execute(
                "DELETE FROM webhook_leases WHERE until_ms <= ?1",
                params![millis(now)],
            )?;
            transaction.commit()?;
            Ok(claimed)
        })
    }
}

/// Puts the file in WAL mode (kept in the file, so only its first opening changes it). The
/// change needs the file to itself and SQLite's busy handler does not wait for it, so when
/// two processes open a new store at once the loser retries, for at most [`BUSY_TIMEOUT`].
fn use_wal(connection: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        let mode: rusqlite::Result<String> =
            connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0));
        match mode {
            Ok(_) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(other) => return Err(other),
        }
    }
}

/// Milliseconds since the Unix epoch, as SQLite's integer.
fn millis(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
    })
}

/// When the app's schedule started, if it has.
fn schedule_start(connection: &Connection, app_id: &str) -> rusqlite::Result<Option<SystemTime>> {
    connection
        .query_row(
            "SELECT started_at_ms FROM rotation_schedules WHERE app_id = ?1",
            [app_id],
            |row| row.get(0),
        )
        .optional()
        .map(|started| started.map(time))
}

/// The time SQLite's integer of milliseconds stands for.
fn time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Makes the new file at `path` readable and writable by its owner only.
fn owner_only(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests;
