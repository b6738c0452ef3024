//! The state store in an embedded SQLite file: WAL mode (readers never wait for the writer,
//! and the server and the CLI may write at once, each waiting up to [`BUSY_TIMEOUT`] for the
//! other), every write one transaction, so a `kill -9` loses at most the last unflushed uses.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use super::{RevokedToken, Store, StoreError, TokenUse};

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
        let connection = Connection::open(path).map_err(error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(error)?;
        use_wal(&connection).map_err(error)?;
        connection.execute_batch(SCHEMA).map_err(error)?;
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
                    last_used: UNIX_EPOCH
                        + Duration::from_millis(u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0)),
                    last_address: address.and_then(|text| text.parse::<IpAddr>().ok()),
                })
            })?;
            rows.collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("state.db")).unwrap()
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn revocations_are_kept_once_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let first = store(&dir);
        assert!(first.revoke_token("1", "ci", at(5)).unwrap());
        assert!(
            !first.revoke_token("1", "ci", at(6)).unwrap(),
            "already revoked"
        );
        drop(first);
        let again = store(&dir);
        let revoked = again.revoked_tokens().unwrap();
        assert_eq!(
            revoked,
            vec![RevokedToken {
                app_id: "1".into(),
                name: "ci".into()
            }]
        );
    }

    #[test]
    fn uses_add_up_and_keep_the_latest_time_and_address() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let token_use = |count, ms, address: &str| TokenUse {
            app_id: "1".into(),
            name: "ci".into(),
            count,
            last_used: at(ms),
            last_address: address.parse().ok(),
        };
        store
            .record_token_uses(&[token_use(3, 100, "192.0.2.1")])
            .unwrap();
        store
            .record_token_uses(&[token_use(2, 50, "192.0.2.2")])
            .unwrap();
        let uses = store.token_uses("1").unwrap();
        assert_eq!(uses, vec![token_use(5, 100, "192.0.2.1")]);
        assert!(store.token_uses("2").unwrap().is_empty());
    }

    #[test]
    fn two_handles_on_one_file_write_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let writers: Vec<_> = (0..2)
            .map(|writer| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let store = SqliteStore::open(&path).unwrap();
                    for n in 0..50 {
                        store
                            .revoke_token("1", &format!("t{writer}-{n}"), at(n))
                            .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(
            SqliteStore::open(&path)
                .unwrap()
                .revoked_tokens()
                .unwrap()
                .len(),
            100
        );
    }
}
